"""eBay through the Trading API (XML over HTTPS POST), implementing :class:`Marketplace`.

Every call is a POST of ``<{Call}Request xmlns="urn:ebay:apis:eBLBaseComponents">`` to
``EBAY_TRADING_URL`` with the ``X-EBAY-API-*`` headers; the answer's ``Ack`` is the
truth, not the HTTP status (business failures arrive as HTTP 200).  This module is
the only place that reads or writes eBay's XML.  Answers are parsed with
``defusedxml`` (DTDs, entities and external references refused) after the
:class:`ApiClient` has enforced its size cap while streaming, and a markup budget
bounds the element count, so a hostile answer costs bounded time and memory.

Credentials.  ``EBAY_USER_TOKEN`` is told apart by its prefix: an Auth'n'Auth token
(``AgAAAA…``, about 18 months) travels in ``RequesterCredentials/eBayAuthToken``; an
OAuth user access token (``v^1.1#…``, 2 hours) in ``X-EBAY-API-IAF-TOKEN``, renewed
single-flight with ``EBAY_REFRESH_TOKEN`` at ``{EBAY_API_URL}/identity/v1/oauth2/token``
(Basic auth App ID:Cert ID; eBay does not rotate the refresh token).  Renewed access
tokens are kept in the token vault under ``EBAY_USER_TOKEN``.

Status mapping (the eBay row of :mod:`tf_console.models`):

==============================================  ==================================
eBay                                            canonical
==============================================  ==================================
``Active`` unpaid (CheckoutStatus not Complete  pending
or eBayPaymentStatus not NoPaymentFailure)
``Completed``/``Active`` paid, nothing shipped  unshipped
``CancelPending`` (or CancelStatus              unshipped/pending + cancel_requested
CancelRequested/CancelPending)
some transactions carry ``ShippedTime``         partially_shipped
``Completed`` with ``ShippedTime``, ``Shipped`` shipped
``Cancelled``, ``Inactive``, CancelStatus       cancelled
``CancelComplete``/``CancelClosedWithRefund``
anything else                                   the order is skipped with a sentence
==============================================  ==================================
"""

from __future__ import annotations

import enum
import random
import weakref
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TypeVar

import defusedxml.ElementTree as SafeET
import httpx
from defusedxml import DefusedXmlException
from pydantic import SecretStr

from tf_console.clock import Clock
from tf_console.marketplaces.auth import (
    AuthProvider,
    OAuthRefreshProvider,
    RotateCallback,
    StaticTokenProvider,
    TokenGrant,
)
from tf_console.marketplaces.base import (
    ConfirmState,
    CredentialCheck,
    MalformedResponse,
    MarketplaceError,
    NotConfigured,
    OrderPage,
    OutcomeUnknown,
    PermanentError,
    PushResult,
    PushState,
    QuotaExhausted,
    ReauthNeeded,
    RemoteShipments,
    ShipmentResult,
    TransientError,
)
from tf_console.marketplaces.deps import PlatformDeps
from tf_console.marketplaces.health import HealthRecorder, Sink
from tf_console.marketplaces.http import MIB, ApiClient, Classifier, ClientSettings, PlatformHooks
from tf_console.marketplaces.ratelimit import EBAY_TRADING_DAILY, BucketSpec, RateLimiter, RateUpdate
from tf_console.marketplaces.redact import REDACTOR, Redactor
from tf_console.models import (
    Address,
    FulfilledBy,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
)

T = TypeVar("T")

PLATFORM = Platform.EBAY
NS = "urn:ebay:apis:eBLBaseComponents"
_NSMAP = {"e": NS}
# 1113 is the first level that returns the current order-id format; this is a recent one.
COMPATIBILITY_LEVEL = 1349

USER_TOKEN_VARIABLE = "EBAY_USER_TOKEN"
REFRESH_VARIABLE = "EBAY_REFRESH_TOKEN"
CERT_VARIABLE = "EBAY_CERT_ID"
TOKEN_PATH = "/identity/v1/oauth2/token"
AUTHNAUTH_PREFIX = "AgAAAA"
OAUTH_PREFIX = "v^1.1#"

ENTRIES_PER_PAGE = 100
ORDER_ID_BATCH = 50
INVENTORY_BATCH = 4  # ReviseInventoryStatus takes at most four listings or variations a call
SELLER_LIST_PAGE = 200
SELLER_LIST_SPAN = timedelta(days=119)  # GetSellerList's time window must stay under 120 days
MOD_TIME_LAG = timedelta(minutes=2)  # eBay: ModTimeTo = now - 2 min so late-indexed changes are not missed
HISTORY = timedelta(days=90)  # eBay keeps no older orders and refuses older ModTimeFrom values
HISTORY_MARGIN = timedelta(minutes=10)  # our clock and eBay's differ; stay clear of the 90-day edge
# AddMemberMessageAAQToPartner: allowed only within 90 days of the sale, about 75 calls a minute
# per seller; eBay's schema caps the subject at 100 and the body at 2,000 characters.
MESSAGE_CALL = "AddMemberMessageAAQToPartner"
MESSAGE_WINDOW = timedelta(days=90)
MESSAGE_SUBJECT_MAX = 100
MESSAGE_BODY_MAX = 2000
MESSAGE_BUCKET = BucketSpec(75 / 60, 5)
MAX_PAGES = 500
MAX_PASSES = 3
# A 100-order page has about 25,000 tags; the cap keeps a hostile answer's tree small in memory.
MAX_MARKUP = 600_000
MAX_RESPONSE_BYTES = 8 * MIB

# 931 token invalid, 932 hard-expired or revoked, 21916984 IAF (OAuth) token invalid.
REAUTH_CODES = frozenset({"931", "932", "21916984"})
QUOTA_CODES = frozenset({"518"})  # the application's call limit is used up
_FIXED_PRICE = frozenset({"FixedPriceItem", "StoresFixedPrice", ""})
_CANCELLED_CANCEL_STATES = frozenset({"CancelComplete", "CancelClosedWithRefund"})
_REQUESTED_CANCEL_STATES = frozenset({"CancelRequested", "CancelPending"})

REAUTH_SENTENCE = (
    f"eBay token invalid or expired — set a new one with `tf-console creds set {USER_TOKEN_VARIABLE}`."
)

# eBay publishes no per-second Trading limit, only the daily budget; stay gentle (a few calls in flight).
TRADING_BUCKET = BucketSpec(4.0, 8)
TOKEN_BUCKET = BucketSpec(1.0, 5)


class EbayTokenKind(enum.StrEnum):
    AUTHNAUTH = "authnauth"
    OAUTH = "oauth"

    @property
    def description(self) -> str:
        if self is EbayTokenKind.AUTHNAUTH:
            return "an Auth'n'Auth token (sent as RequesterCredentials/eBayAuthToken; lasts about 18 months)"
        return "an OAuth user access token (sent in X-EBAY-API-IAF-TOKEN; lasts 2 hours)"


def token_kind_of(token: str) -> EbayTokenKind | None:
    """Which kind of user token ``token`` is, by eBay's documented prefixes (None: neither)."""
    if token.startswith(AUTHNAUTH_PREFIX):
        return EbayTokenKind.AUTHNAUTH
    if token.startswith(OAUTH_PREFIX):
        return EbayTokenKind.OAUTH
    return None


# ---------------------------------------------------------------------------
# XML helpers


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _path(path: str) -> str:
    return "/".join(f"e:{part}" for part in path.split("/"))


def _child(element: ET.Element, path: str) -> ET.Element | None:
    return element.find(_path(path), _NSMAP)


def _children(element: ET.Element, path: str) -> list[ET.Element]:
    return element.findall(_path(path), _NSMAP)


def _text(element: ET.Element, path: str) -> str:
    found = _child(element, path)
    return (found.text or "").strip() if found is not None else ""


def _sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
    child = ET.SubElement(parent, _q(tag))
    if text is not None:
        child.text = text
    return child


def wire_time(when: datetime) -> str:
    """eBay's time format: UTC with milliseconds and ``Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _time(text: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise MalformedResponse(f"its {what} {text!r} is not a time") from None
    if parsed.tzinfo is None:  # eBay's times are UTC even when an answer forgets the Z
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def parse_xml(body: bytes, what: str) -> ET.Element:
    """Parse an answer; DTDs, entities and external references are refused outright.

    ``what`` names the answer in the sentence of the :class:`MalformedResponse` raised.
    """
    start = body.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not start.startswith(b"<"):
        raise MalformedResponse(f"eBay's answer to {what} is not XML, so nothing from it was used.")
    if body.count(b"<") > MAX_MARKUP:
        raise MalformedResponse(
            f"eBay's answer to {what} has more elements than any real answer, so it was not read."
        )
    try:
        root: ET.Element = SafeET.fromstring(
            body, forbid_dtd=True, forbid_entities=True, forbid_external=True
        )
    except DefusedXmlException:
        raise MalformedResponse(
            f"eBay's answer to {what} contained a document type or entity declaration, which is "
            "refused for safety; nothing from it was used."
        ) from None
    except ET.ParseError as exc:
        raise MalformedResponse(
            f"eBay's answer to {what} is not well-formed XML ({exc}); nothing from it was used."
        ) from None
    if not root.tag.startswith(f"{{{NS}}}"):
        raise MalformedResponse(
            f"eBay's answer to {what} is not in the Trading API's namespace; nothing from it was used."
        )
    return root


# ---------------------------------------------------------------------------
# The response envelope


@dataclass(frozen=True, slots=True)
class EbayError:
    code: str
    short: str
    long: str
    severity: str  # Error | Warning
    classification: str  # RequestError | SystemError

    @property
    def sentence(self) -> str:
        text = self.short.rstrip(".") or "no message"
        if self.long and self.long.rstrip(".") != self.short.rstrip("."):
            text += f" — {self.long.rstrip('.')}"
        return f"{text} (error {self.code or '?'})"


@dataclass(frozen=True, slots=True)
class Envelope:
    root: ET.Element
    call: str  # the response root without "Response"
    ack: str  # Success | Warning | Failure | PartialFailure
    errors: tuple[EbayError, ...]
    hard_expiration: str = ""  # HardExpirationWarning: when an Auth'n'Auth token expires (7 days ahead)

    @property
    def warnings(self) -> list[EbayError]:
        return [e for e in self.errors if e.severity == "Warning"]

    @property
    def failures(self) -> list[EbayError]:
        return [e for e in self.errors if e.severity != "Warning"] or list(self.errors)


_ENVELOPES: weakref.WeakKeyDictionary[httpx.Response, Envelope] = weakref.WeakKeyDictionary()


def parse_envelope(body: bytes, what: str) -> Envelope:
    root = parse_xml(body, what)
    name = root.tag.rsplit("}", 1)[-1]
    errors = tuple(
        EbayError(
            code=_text(e, "ErrorCode"),
            short=_text(e, "ShortMessage"),
            long=_text(e, "LongMessage"),
            severity=_text(e, "SeverityCode") or "Error",
            classification=_text(e, "ErrorClassification"),
        )
        for e in _children(root, "Errors")
    )
    ack = _text(root, "Ack")
    if ack not in ("Success", "Warning", "Failure", "PartialFailure"):
        raise MalformedResponse(
            f"eBay's answer to {what} has no recognisable Ack ({ack or 'none'}); nothing from it was used."
        )
    return Envelope(
        root=root,
        call=name.removesuffix("Response"),
        ack=ack,
        errors=errors,
        hard_expiration=_text(root, "HardExpirationWarning"),
    )


def read_envelope(response: httpx.Response, what: str) -> Envelope:
    """The parsed envelope of ``response`` (parsed once, shared by classify and parse)."""
    cached = _ENVELOPES.get(response)
    if cached is None:
        cached = parse_envelope(response.content, what)
        _ENVELOPES[response] = cached
    return cached


def classify_envelope(envelope: Envelope, call: str, *, side_effect: bool) -> MarketplaceError | None:
    """Failure/PartialFailure → our error; Success and Warning → None."""
    if envelope.ack in ("Success", "Warning"):
        return None
    failures = envelope.failures
    codes = {e.code for e in failures}
    first = failures[0].code if failures else ""
    said = "; ".join(e.sentence for e in failures) or "no reason given"
    reauth = codes & REAUTH_CODES
    if reauth:
        return ReauthNeeded(REAUTH_SENTENCE, variable=USER_TOKEN_VARIABLE, code=sorted(reauth)[0])
    if codes & QUOTA_CODES:
        return QuotaExhausted(
            "eBay says this app's daily Trading API call limit is used up (error 518); "
            "calls resume after midnight Pacific time.",
            code="518",
        )
    if any(e.classification == "SystemError" for e in failures):
        if side_effect:
            return OutcomeUnknown(
                f"eBay reported an internal problem answering {call} ({said}), so it may or may not have "
                "taken effect; it will be checked on eBay before anything is sent again.",
                code=first,
            )
        return TransientError(
            f"eBay had an internal problem answering {call} ({said}); it will be retried.", code=first
        )
    return PermanentError(f"eBay refused {call}: {said}.", code=first)


# ---------------------------------------------------------------------------
# Parsing orders


def _money(element: ET.Element, path: str, what: str) -> Money:
    found = _child(element, path)
    if found is None or not (found.text or "").strip():
        raise MalformedResponse(f"it has no {what}")
    currency = found.get("currencyID") or ""
    try:
        return Money(amount=Decimal((found.text or "").strip()), currency=currency)
    except (InvalidOperation, ValueError):
        raise MalformedResponse(f"its {what} {found.text!r} {currency} is not an amount") from None


def _message(text: str) -> str:
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def _order_status(raw: str, paid: bool, lines_shipped: list[bool], order_shipped: bool) -> OrderStatus | None:
    if raw in ("Cancelled", "Inactive"):
        return OrderStatus.CANCELLED
    if raw == "Shipped" or order_shipped:
        return OrderStatus.SHIPPED
    if raw not in ("Completed", "Active", "CancelPending"):
        return None
    if lines_shipped and all(lines_shipped):
        return OrderStatus.SHIPPED
    if any(lines_shipped):
        return OrderStatus.PARTIALLY_SHIPPED
    return OrderStatus.UNSHIPPED if paid else OrderStatus.PENDING


def parse_order(element: ET.Element, redactor: Redactor = REDACTOR) -> Order:
    """One ``Order`` element → :class:`Order`.  Raises MalformedResponse whose text completes
    "eBay order N could not be read: …" when the order is unusable."""
    order_id = _text(element, "OrderID")
    raw_status = _text(element, "OrderStatus")
    paid = (
        _text(element, "CheckoutStatus/Status") == "Complete"
        and _text(element, "CheckoutStatus/eBayPaymentStatus") == "NoPaymentFailure"
    )
    shipped_time = _text(element, "ShippedTime")
    transactions = _children(element, "TransactionArray/Transaction")
    if not transactions:
        raise MalformedResponse("it has no transactions")
    total = _money(element, "Total", "Total")
    message = _message(_text(element, "BuyerCheckoutMessage"))
    items: list[LineItem] = []
    lines_shipped: list[bool] = []
    handle_by: list[datetime] = []
    tracking: list[str] = []
    email = ""
    for transaction in transactions:
        item_id = _text(transaction, "Item/ItemID")
        transaction_id = _text(transaction, "TransactionID")
        line_id = _text(transaction, "OrderLineItemID") or (
            f"{item_id}-{transaction_id}" if item_id and transaction_id else ""
        )
        if not line_id:
            raise MalformedResponse("a transaction has no OrderLineItemID")
        quantity_text = _text(transaction, "QuantityPurchased")
        if not quantity_text.isdigit():
            raise MalformedResponse(f"transaction {line_id} has no whole QuantityPurchased")
        quantity = int(quantity_text)
        line_shipped = bool(shipped_time) or bool(_text(transaction, "ShippedTime"))
        lines_shipped.append(line_shipped)
        specifics = [
            f"{_text(pair, 'Name')}: {_text(pair, 'Value')}"
            for pair in _children(transaction, "Variation/VariationSpecifics/NameValueList")
        ]
        items.append(
            LineItem(
                line_id=line_id,
                sku=_text(transaction, "Variation/SKU") or _text(transaction, "Item/SKU"),
                title=_text(transaction, "Item/Title"),
                quantity=quantity,
                quantity_shipped=quantity if line_shipped else 0,
                unit_price=_money(transaction, "TransactionPrice", f"TransactionPrice on line {line_id}"),
                listing_id=item_id,
                variation=", ".join(specifics),
                personalisation=message,
            )
        )
        handle = _text(transaction, "ShippingServiceSelected/ShippingPackageInfo/HandleByTime")
        if handle:
            handle_by.append(_time(handle, "HandleByTime"))
        buyer_email = _text(transaction, "Buyer/Email")
        if not email and "@" in buyer_email:
            email = buyer_email
    for details in element.iter(_q("ShipmentTrackingDetails")):
        number = _text(details, "ShipmentTrackingNumber")
        if number and number not in tracking:
            tracking.append(number)
    order_handle = _text(element, "ShippingServiceSelected/ShippingPackageInfo/HandleByTime")
    if order_handle:
        handle_by.append(_time(order_handle, "HandleByTime"))
    status = _order_status(raw_status, paid, lines_shipped, bool(shipped_time))
    if status is None:
        raise MalformedResponse(f"its OrderStatus {raw_status or '(none)'!r} is not one eBay documents")
    cancel_state = _text(element, "CancelStatus")
    refunded = False
    if cancel_state in _CANCELLED_CANCEL_STATES and status is not OrderStatus.SHIPPED:
        status = OrderStatus.CANCELLED
        refunded = cancel_state == "CancelClosedWithRefund"
    cancel_requested = status is not OrderStatus.CANCELLED and (
        raw_status == "CancelPending" or cancel_state in _REQUESTED_CANCEL_STATES
    )
    created_text = _text(element, "CreatedTime")
    if not created_text:
        raise MalformedResponse("it has no CreatedTime")
    created_at = _time(created_text, "CreatedTime")
    # The poll cursor follows updated_at, so it comes from eBay's modification time only: a
    # ShippedTime may lie up to 3 days ahead and would push the cursor past orders not yet read.
    modified = _text(element, "CheckoutStatus/LastModifiedTime")
    paid_time = _text(element, "PaidTime")
    if modified:
        updated_at = _time(modified, "LastModifiedTime")
    elif paid_time:
        updated_at = _time(paid_time, "PaidTime")
    else:
        updated_at = created_at
    updated_at = max(updated_at, created_at)
    address = _child(element, "ShippingAddress")
    buyer = Address(
        name=_text(address, "Name") if address is not None else "",
        email=email,
        phone=_text(address, "Phone") if address is not None else "",
        line1=_text(address, "Street1") if address is not None else "",
        line2=_text(address, "Street2") if address is not None else "",
        city=_text(address, "CityName") if address is not None else "",
        region=_text(address, "StateOrProvince") if address is not None else "",
        postal_code=_text(address, "PostalCode") if address is not None else "",
        country=_text(address, "Country") if address is not None else "",
    )
    redactor.register_pii([buyer.name, buyer.email, buyer.line1, buyer.phone])
    extra: dict[str, str] = {}
    buyer_user = _text(element, "BuyerUserID")
    if buyer_user:
        extra["buyer_user_id"] = buyer_user
    raw = (
        raw_status
        if not cancel_state or cancel_state == "NotApplicable"
        else f"{raw_status} ({cancel_state})"
    )
    return Order(
        platform=PLATFORM,
        order_id=order_id,
        status=status,
        raw_status=raw,
        created_at=created_at,
        updated_at=updated_at,
        ship_by=min(handle_by) if handle_by else None,
        currency=total.currency,
        total=total,
        items=items,
        buyer=None if buyer.is_empty() else buyer,
        fulfilled_by=FulfilledBy.MERCHANT,
        cancel_requested=cancel_requested,
        refunded=refunded,
        marketplace_tracking=tracking,
        extra=extra,
    )


@dataclass(slots=True)
class OrdersPage:
    orders: list[Order]
    errors: list[str]
    has_more: bool | None
    total_pages: int | None
    total_entries: int | None


def _int_or_none(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def parse_orders_envelope(envelope: Envelope, redactor: Redactor = REDACTOR) -> OrdersPage:
    """A GetOrders answer → orders plus one sentence per order that could not be read."""
    root = envelope.root
    if envelope.call != "GetOrders":
        raise MalformedResponse(f"eBay answered GetOrders with a {envelope.call} answer.")
    orders: list[Order] = []
    errors: list[str] = []
    for element in _children(root, "OrderArray/Order"):
        order_id = _text(element, "OrderID")
        try:
            if not order_id:
                raise MalformedResponse("it has no OrderID")
            orders.append(parse_order(element, redactor))
        except (MalformedResponse, ValueError) as exc:
            errors.append(
                f"eBay order {order_id or '(no id)'} could not be read: {str(exc).rstrip('.')}; "
                "it was skipped."
            )
    has_more_text = _text(root, "HasMoreOrders")
    return OrdersPage(
        orders=orders,
        errors=errors,
        has_more=None if not has_more_text else has_more_text == "true",
        total_pages=_int_or_none(_text(root, "PaginationResult/TotalNumberOfPages")),
        total_entries=_int_or_none(_text(root, "PaginationResult/TotalNumberOfEntries")),
    )


# ---------------------------------------------------------------------------
# Listings (GetSellerList) for quantity pushes


@dataclass(frozen=True, slots=True)
class ListingTarget:
    """Where a SKU's quantity lives on eBay: a listing, or a variation of one."""

    item_id: str
    sku: str
    variation: bool
    tracked_by_sku: bool  # InventoryTrackingMethod=SKU: address it by SKU alone


@dataclass(slots=True)
class ListingsPage:
    targets: list[ListingTarget]
    has_more: bool
    total_pages: int | None


def parse_seller_list_envelope(envelope: Envelope) -> ListingsPage:
    root = envelope.root
    if envelope.call != "GetSellerList":
        raise MalformedResponse(f"eBay answered GetSellerList with a {envelope.call} answer.")
    targets: list[ListingTarget] = []
    for item in _children(root, "ItemArray/Item"):
        item_id = _text(item, "ItemID")
        status = _text(item, "SellingStatus/ListingStatus")
        if not item_id or (status and status != "Active"):
            continue
        if _text(item, "ListingType") not in _FIXED_PRICE:
            continue  # auctions take no quantity
        by_sku = _text(item, "InventoryTrackingMethod") == "SKU"
        variations = _children(item, "Variations/Variation")
        for variation in variations:
            sku = _text(variation, "SKU")
            if sku:
                targets.append(ListingTarget(item_id, sku, variation=True, tracked_by_sku=by_sku))
        item_sku = _text(item, "SKU")
        if not variations and item_sku:
            targets.append(ListingTarget(item_id, item_sku, variation=False, tracked_by_sku=by_sku))
    return ListingsPage(
        targets=targets,
        has_more=_text(root, "HasMoreItems") == "true",
        total_pages=_int_or_none(_text(root, "PaginationResult/TotalNumberOfPages")),
    )


def parse_user_id(envelope: Envelope) -> str:
    user_id = _text(envelope.root, "User/UserID")
    if not user_id:
        raise MalformedResponse("eBay did not say which seller the token belongs to.")
    return user_id


# ---------------------------------------------------------------------------
# The marketplace


@dataclass(frozen=True)
class TradingKeys:
    """The keyset and site every Trading call carries in its headers."""

    app_id: str
    dev_id: str
    cert_id: SecretStr
    site_id: int = 0
    environment: str = "production"

    def __repr__(self) -> str:
        return f"TradingKeys(app_id={self.app_id!r}, site_id={self.site_id}, {self.environment})"


class _Unsendable(Exception):
    """A shipment eBay cannot represent; the message is the sentence for the operator."""


@dataclass(slots=True)
class _PagingState:
    last_total: int | None = None
    shifted: bool = False  # the result set shrank while paging: later orders moved forward


class EbayMarketplace:
    """eBay through an :class:`ApiClient` whose ``base_url`` is ``EBAY_TRADING_URL``."""

    platform = PLATFORM
    max_backfill_days: int | None = 90
    # eBay suggests polling every 15 minutes (EBAY_POLL_INTERVAL defaults to that); this floor
    # only stops a runaway loop, so the sandbox and tests may poll faster.
    min_poll_interval = 60.0

    def __init__(
        self,
        client: ApiClient,
        *,
        trading_url: str,
        keys: TradingKeys,
        token_kind: EbayTokenKind,
        authnauth_token: SecretStr | None = None,
        refreshable: bool = False,
        entries_per_page: int = ENTRIES_PER_PAGE,
    ) -> None:
        self.client = client
        self.trading_url = trading_url
        self.keys = keys
        self.token_kind = token_kind
        self.refreshable = refreshable
        self.entries_per_page = entries_per_page
        self._authnauth = authnauth_token
        self._authnauth_expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"EbayMarketplace({self.trading_url!r}, {self.token_kind.value})"

    # -- doctor ------------------------------------------------------------------

    @property
    def token_expires_at(self) -> datetime | None:
        auth = self.client.auth
        if auth is not None:
            return auth.token_expires_at
        return self._authnauth_expires_at

    def describe_token(self) -> str:
        """A sentence for ``doctor``: which kind of token, and when it expires if known."""
        text = f"EBAY_USER_TOKEN is {self.token_kind.description}"
        if self.token_kind is EbayTokenKind.OAUTH:
            text += (
                ", renewed automatically with EBAY_REFRESH_TOKEN"
                if self.refreshable
                else ", and cannot be renewed without EBAY_REFRESH_TOKEN"
            )
        expires = self.token_expires_at
        if expires is not None:
            text += f"; the current one expires {expires:%Y-%m-%d %H:%M} UTC"
        return text + "."

    # -- the call ------------------------------------------------------------------

    def _headers(self, call: str) -> dict[str, str]:
        return {
            "X-EBAY-API-CALL-NAME": call,
            "X-EBAY-API-SITEID": str(self.keys.site_id),
            "X-EBAY-API-COMPATIBILITY-LEVEL": str(COMPATIBILITY_LEVEL),
            "X-EBAY-API-APP-NAME": self.keys.app_id,
            "X-EBAY-API-DEV-NAME": self.keys.dev_id,
            "X-EBAY-API-CERT-NAME": self.keys.cert_id.get_secret_value(),
            "Content-Type": "text/xml",
        }

    def build_request(self, call: str, fill: Callable[[ET.Element], None]) -> bytes:
        """The XML body of ``call``; ``fill`` adds the call's own fields."""
        root = ET.Element(_q(f"{call}Request"))
        if self._authnauth is not None:
            credentials = _sub(root, "RequesterCredentials")
            _sub(credentials, "eBayAuthToken", self._authnauth.get_secret_value())
        _sub(root, "ErrorLanguage", "en_US")
        _sub(root, "WarningLevel", "High")
        fill(root)
        body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True, default_namespace=NS)
        return body

    def _classifier(self, call: str, *, side_effect: bool) -> Classifier:
        def classify(response: httpx.Response) -> MarketplaceError | None:
            if response.status_code == 429:
                return None  # the client's own 429 handling (Retry-After) applies
            ok = 200 <= response.status_code < 300
            try:
                envelope = read_envelope(response, call)
            except MalformedResponse as exc:
                # A non-XML 5xx (eBay has answered "an internal error occured" as text/plain) is
                # the client's ordinary server error; an unreadable 2xx is malformed.
                return exc if ok else None
            self._note_envelope(envelope, call)
            error = classify_envelope(envelope, call, side_effect=side_effect)
            if isinstance(error, QuotaExhausted):
                self.client.limiter.apply(call, RateUpdate(daily_remaining=0))
            return error

        return classify

    def _note_envelope(self, envelope: Envelope, call: str) -> None:
        if envelope.ack in ("Success", "Warning"):
            for warning in envelope.warnings:
                self.client.report_warning(call, f"eBay warned about {call}: {warning.sentence}.")
        if envelope.hard_expiration:
            try:
                expires = _time(envelope.hard_expiration, "HardExpirationWarning")
            except MalformedResponse:
                return
            if self._authnauth_expires_at != expires:
                self._authnauth_expires_at = expires
                self.client.health.set_token_expiry(expires)
                self.client.report_warning(
                    call,
                    f"The eBay token expires {expires:%Y-%m-%d %H:%M} UTC; get a new one and set it with "
                    f"`tf-console creds set {USER_TOKEN_VARIABLE}` before then.",
                )

    async def _call(
        self,
        call: str,
        fill: Callable[[ET.Element], None],
        parse: Callable[[Envelope], T],
        *,
        idempotent: bool,
        side_effect: bool = False,
        cache: bool = False,
    ) -> T:
        def parse_response(response: httpx.Response) -> T:
            envelope = read_envelope(response, call)
            error = classify_envelope(envelope, call, side_effect=side_effect)
            if error is not None:  # a cached answer skips classify; it was a success anyway
                raise error
            return parse(envelope)

        return await self.client.request_parsed(
            call,
            "POST",
            self.trading_url,
            content=self.build_request(call, fill),
            headers=self._headers(call),
            idempotent=idempotent,
            cache=cache,
            classify=self._classifier(call, side_effect=side_effect),
            parse=parse_response,
        )

    # -- orders --------------------------------------------------------------------

    def _order_filters(self, fill: Callable[[ET.Element], None]) -> Callable[[ET.Element, int], None]:
        def build(root: ET.Element, page_number: int) -> None:
            _sub(root, "DetailLevel", "ReturnAll")
            _sub(root, "OrderRole", "Seller")
            _sub(root, "OrderStatus", "All")
            pagination = _sub(root, "Pagination")
            _sub(pagination, "EntriesPerPage", str(self.entries_per_page))
            _sub(pagination, "PageNumber", str(page_number))
            fill(root)

        return build

    async def _order_pages(self, fill: Callable[[ET.Element], None]) -> AsyncIterator[OrderPage]:
        """Page through one GetOrders query.  Offset paging over a live set: an order modified
        while we page leaves the window and shifts later ones forward, so a shrinking total
        means another pass (upserts make the repeats harmless)."""
        build = self._order_filters(fill)
        redactor = self.client.redactor
        for pass_number in range(1, MAX_PASSES + 1):
            state = _PagingState()
            page_number = 0
            while True:
                page_number += 1

                def filters(root: ET.Element, number: int = page_number) -> None:
                    build(root, number)

                page = await self._call(
                    "GetOrders",
                    filters,
                    lambda envelope: parse_orders_envelope(envelope, redactor),
                    idempotent=True,
                )
                for error in page.errors:
                    self.client.report_error("GetOrders", error)
                total = page.total_entries
                if total is not None:
                    if state.last_total is not None and total < state.last_total:
                        state.shifted = True
                    state.last_total = total
                yield OrderPage(
                    orders=page.orders,
                    errors=page.errors,
                    page_number=page_number,
                    total_pages=page.total_pages,
                )
                if page.has_more is False:
                    break
                if page.total_pages is not None and page_number >= page.total_pages:
                    break
                if page.has_more is None and page.total_pages is None:
                    break
                if not page.orders and not page.errors:
                    self.client.report_error(
                        "GetOrders", "eBay said more orders follow but sent an empty page; paging stopped."
                    )
                    break
                if page_number >= MAX_PAGES:
                    self.client.report_error(
                        "GetOrders", f"eBay kept paging past {MAX_PAGES} pages; the rest is read next poll."
                    )
                    break
            if not state.shifted:
                return
            if pass_number == MAX_PASSES:
                self.client.report_warning(
                    "GetOrders",
                    "eBay orders kept changing while they were read; any missed now are read next poll.",
                )

    async def fetch_orders(
        self, since: datetime, *, until: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        now = self.client.clock.now()
        end = now - MOD_TIME_LAG
        if until is not None:
            end = min(end, until)
        earliest = now - HISTORY + HISTORY_MARGIN
        start = since
        if start < earliest:
            start = earliest
            if since < now - HISTORY:
                self.client.report_warning(
                    "GetOrders",
                    "eBay keeps only 90 days of orders; changes older than that cannot be read.",
                )
        if start >= end:
            return

        def window(root: ET.Element) -> None:
            _sub(root, "ModTimeFrom", wire_time(start))
            _sub(root, "ModTimeTo", wire_time(end))

        async for page in self._order_pages(window):
            yield page

    async def fetch_orders_by_id(self, order_ids: Sequence[str]) -> list[Order]:
        wanted = list(dict.fromkeys(i for i in order_ids if i))
        found: dict[str, Order] = {}
        for start in range(0, len(wanted), ORDER_ID_BATCH):
            batch = wanted[start : start + ORDER_ID_BATCH]

            def ids(root: ET.Element, batch: list[str] = batch) -> None:
                array = _sub(root, "OrderIDArray")
                for order_id in batch:
                    _sub(array, "OrderID", order_id)

            async for page in self._order_pages(ids):
                for order in page.orders:
                    found[order.order_id] = order
        return [found[i] for i in wanted if i in found]

    # -- shipping ------------------------------------------------------------------

    @staticmethod
    def sale_target(order: Order, shipment: Shipment) -> tuple[str, str]:
        """How CompleteSale names what ``shipment`` covers: ("OrderID", id) for everything left,
        ("OrderLineItemID", id) for one whole line.  eBay records shipments per whole line, so
        anything else raises :class:`_Unsendable` with a sentence."""
        where = f"eBay order {order.order_id}"
        wanted: dict[str, int] = {}
        for line in shipment.lines:
            wanted[line.line_id] = wanted.get(line.line_id, 0) + line.quantity
        items = {item.line_id: item for item in order.items}
        remaining = {i.line_id for i in order.items if i.quantity_unshipped > 0}
        if not wanted:
            wanted = {i.line_id: i.quantity_unshipped for i in order.items if i.quantity_unshipped > 0}
        for line_id, quantity in wanted.items():
            item = items.get(line_id)
            if item is None:
                raise _Unsendable(f"{where} has no line {line_id}; nothing was sent.")
            if quantity < item.quantity_unshipped:
                raise _Unsendable(
                    f"eBay marks whole order lines shipped: line {line_id} of {where} has "
                    f"{item.quantity_unshipped} unit(s) left but the shipment covers {quantity}; "
                    "ship the whole line. Nothing was sent."
                )
        if set(wanted) == remaining:
            return "OrderID", order.order_id
        if len(wanted) == 1:
            return "OrderLineItemID", next(iter(wanted))
        raise _Unsendable(
            f"eBay confirms either the whole of {where} or one line at a time; send these lines as "
            "separate shipments. Nothing was sent."
        )

    async def confirm_shipment(self, order: Order, shipment: Shipment) -> ShipmentResult:
        try:
            key, value = self.sale_target(order, shipment)
        except _Unsendable as exc:
            return ShipmentResult(ConfirmState.REJECTED, answer=str(exc))
        carrier = shipment.carrier
        if carrier.lower() == "other" and shipment.carrier_name:
            carrier = shipment.carrier_name

        def fill(root: ET.Element) -> None:
            _sub(root, key, value)
            _sub(root, "Shipped", "true")
            details = _sub(root, "Shipment")
            tracking = _sub(details, "ShipmentTrackingDetails")
            _sub(tracking, "ShipmentTrackingNumber", shipment.tracking)
            _sub(tracking, "ShippingCarrierUsed", carrier)
            _sub(details, "ShippedTime", wire_time(shipment.shipped_at))

        try:
            await self._call("CompleteSale", fill, lambda _e: None, idempotent=False, side_effect=True)
        except PermanentError as exc:
            return ShipmentResult(ConfirmState.REJECTED, answer=exc.sentence, request_id=exc.request_id)
        return ShipmentResult(
            ConfirmState.CONFIRMED, answer=f"eBay accepted tracking {shipment.tracking} ({carrier})."
        )

    async def read_shipments(self, order: Order) -> RemoteShipments:
        found = await self.fetch_orders_by_id([order.order_id])
        if not found:
            return RemoteShipments(order_found=False)
        remote = found[0]
        return RemoteShipments(
            order_found=True,
            tracking_numbers=list(remote.marketplace_tracking),
            shipped=remote.status is OrderStatus.SHIPPED,
            order=remote,
        )

    # -- inventory -----------------------------------------------------------------

    async def listing_targets(self) -> dict[str, list[ListingTarget]]:
        """SKU → the active fixed-price listings/variations carrying it (GetSellerList, cached
        for ``MARKETPLACE_CACHE_TTL``: the request is the same all day, so the cache hits)."""
        day = self.client.clock.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        by_sku: dict[str, list[ListingTarget]] = {}
        page_number = 0
        while True:
            page_number += 1

            def fill(root: ET.Element, number: int = page_number) -> None:
                _sub(root, "DetailLevel", "ReturnAll")
                _sub(root, "EndTimeFrom", wire_time(day))
                _sub(root, "EndTimeTo", wire_time(day + SELLER_LIST_SPAN))
                _sub(root, "IncludeVariations", "true")
                pagination = _sub(root, "Pagination")
                _sub(pagination, "EntriesPerPage", str(SELLER_LIST_PAGE))
                _sub(pagination, "PageNumber", str(number))
                for selector in (
                    "HasMoreItems",
                    "PaginationResult",
                    "ItemArray.Item.ItemID",
                    "ItemArray.Item.SKU",
                    "ItemArray.Item.ListingType",
                    "ItemArray.Item.InventoryTrackingMethod",
                    "ItemArray.Item.SellingStatus.ListingStatus",
                    "ItemArray.Item.Variations.Variation.SKU",
                ):
                    _sub(root, "OutputSelector", selector)

            page = await self._call(
                "GetSellerList", fill, parse_seller_list_envelope, idempotent=True, cache=True
            )
            for target in page.targets:
                entries = by_sku.setdefault(target.sku, [])
                if target not in entries:
                    entries.append(target)
            done = not page.has_more or (page.total_pages is not None and page_number >= page.total_pages)
            if done or page_number >= MAX_PAGES:
                return by_sku

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        if quantity < 0:
            return PushResult(PushState.REJECTED, answer=f"A quantity cannot be negative ({quantity}).")
        targets = (await self.listing_targets()).get(sku, [])
        if not targets:
            return PushResult(
                PushState.SKIPPED, answer=f"No active eBay fixed-price listing or variation has SKU {sku}."
            )
        applied: list[str] = []
        for start in range(0, len(targets), INVENTORY_BATCH):
            chunk = targets[start : start + INVENTORY_BATCH]

            def fill(root: ET.Element, chunk: list[ListingTarget] = chunk) -> None:
                for target in chunk:
                    status = _sub(root, "InventoryStatus")
                    if not target.tracked_by_sku:
                        _sub(status, "ItemID", target.item_id)
                    if target.variation or target.tracked_by_sku:
                        _sub(status, "SKU", target.sku)
                    _sub(status, "Quantity", str(quantity))

            try:
                # An absolute quantity: sending it again changes nothing, so it may be retried.
                await self._call("ReviseInventoryStatus", fill, lambda _e: None, idempotent=True)
            except PermanentError as exc:
                done = f" (listing(s) {', '.join(applied)} were updated first)" if applied else ""
                return PushResult(PushState.REJECTED, answer=f"{exc.sentence.rstrip('.')}{done}.")
            applied.extend(t.item_id for t in chunk if t.item_id not in applied)
        return PushResult(
            PushState.APPLIED, answer=f"eBay listing(s) {', '.join(applied)} now offer {quantity} of {sku}."
        )

    # -- buyer messages ------------------------------------------------------------

    async def add_member_message_aaq_to_partner(
        self, *, item_id: str, recipient_id: str, subject: str, body: str, sold_at: datetime
    ) -> None:
        """Send the buyer ``recipient_id`` of listing ``item_id`` a message through eBay.

        Raises PermanentError (nothing sent) past eBay's 90 days after the sale or for a
        message eBay would refuse, OutcomeUnknown when the answer was lost (never re-sent)."""
        age = self.client.clock.now() - sold_at
        if age > MESSAGE_WINDOW:
            raise PermanentError(
                f"eBay lets a seller message a buyer only within 90 days of the sale; item {item_id} was "
                f"sold {age.days} days ago, so nothing was sent.",
                code="message_window",
            )
        problem = ""
        if not item_id or not recipient_id:
            problem = "the listing or the buyer's eBay user id is missing"
        elif not body.strip() or not subject.strip():
            problem = "the subject or the body is empty"
        elif len(subject) > MESSAGE_SUBJECT_MAX:
            problem = f"the subject has {len(subject)} characters; eBay takes at most {MESSAGE_SUBJECT_MAX}"
        elif len(body) > MESSAGE_BODY_MAX:
            problem = f"the body has {len(body)} characters; eBay takes at most {MESSAGE_BODY_MAX}"
        if problem:
            raise PermanentError(
                f"The eBay message about item {item_id} was not sent: {problem}.", code="bad_message"
            )

        def fill(root: ET.Element) -> None:
            _sub(root, "ItemID", item_id)
            message = _sub(root, "MemberMessage")
            _sub(message, "Subject", subject)
            _sub(message, "Body", body)
            _sub(message, "QuestionType", "CustomizedSubject")
            _sub(message, "RecipientID", recipient_id)

        await self._call(MESSAGE_CALL, fill, lambda _e: None, idempotent=False, side_effect=True)

    # -- credentials ---------------------------------------------------------------

    async def check_credentials(self) -> CredentialCheck:
        try:
            user_id = await self._call(
                "GetUser", lambda _root: None, parse_user_id, idempotent=True, cache=False
            )
        except MarketplaceError as exc:
            return CredentialCheck(ok=False, sentence=exc.sentence, details=self._details())
        details = {**self._details(), "user_id": user_id}
        return CredentialCheck(
            ok=True,
            sentence=(
                f"eBay credentials work (seller {user_id}, site {self.keys.site_id}, "
                f"{self.keys.environment}). {self.describe_token()}"
            ),
            details=details,
        )

    def _details(self) -> dict[str, str]:
        details = {
            "token_kind": self.token_kind.value,
            "token": self.describe_token(),
            "site_id": str(self.keys.site_id),
            "environment": self.keys.environment,
            "trading_url": self.trading_url,
        }
        expires = self.token_expires_at
        if expires is not None:
            details["token_expires_at"] = expires.isoformat()
        return details

    async def aclose(self) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------------------
# Wiring


def create_ebay_marketplace(
    *,
    trading_url: str,
    api_url: str,
    app_id: str,
    dev_id: str,
    cert_id: str,
    user_token: str | None,
    refresh_token: str | None,
    scopes: str,
    clock: Clock,
    rng: random.Random,
    site_id: int = 0,
    environment: str = "production",
    token_expires_at: datetime | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    settings: ClientSettings | None = None,
    rate_scale: float = 1.0,
    rate_limit_per_minute: int | None = None,
    on_new_token: RotateCallback | None = None,
    health_sink: Sink | None = None,
    redactor: Redactor = REDACTOR,
    entries_per_page: int = ENTRIES_PER_PAGE,
) -> EbayMarketplace:
    """Wire limiter, health, client and the token for eBay.  Raises :class:`NotConfigured`
    with a sentence when the credentials cannot work."""
    missing = [
        name
        for name, value in (("EBAY_APP_ID", app_id), ("EBAY_DEV_ID", dev_id), (CERT_VARIABLE, cert_id))
        if not value
    ]
    if missing:
        raise NotConfigured(
            f"eBay needs {', '.join(missing)}; set it with `tf-console creds set {missing[0]}`.",
            platform=PLATFORM,
        )
    kind = token_kind_of(user_token) if user_token else None
    if user_token and kind is None and not refresh_token:
        raise NotConfigured(
            f"{USER_TOKEN_VARIABLE} is neither an Auth'n'Auth token ({AUTHNAUTH_PREFIX}…) nor an OAuth user "
            f"token ({OAUTH_PREFIX}…); copy the whole token again and set it with "
            f"`tf-console creds set {USER_TOKEN_VARIABLE}`.",
            platform=PLATFORM,
        )
    if not user_token and not refresh_token:
        raise NotConfigured(
            f"eBay needs {USER_TOKEN_VARIABLE} or {REFRESH_VARIABLE}; set one with "
            f"`tf-console creds set {USER_TOKEN_VARIABLE}`.",
            platform=PLATFORM,
        )
    for secret in (cert_id, user_token, refresh_token):
        redactor.register_secret(secret)
    limiter = RateLimiter(
        PLATFORM,
        clock,
        operations={
            "token": TOKEN_BUCKET.scaled(rate_scale),
            MESSAGE_CALL: MESSAGE_BUCKET.scaled(rate_scale),
        },
        default=TRADING_BUCKET.scaled(rate_scale),
        per_minute_cap=rate_limit_per_minute,
        daily=EBAY_TRADING_DAILY,
    )
    health = HealthRecorder(PLATFORM, clock, sink=health_sink, redactor=redactor)
    client = ApiClient(
        PLATFORM,
        clock=clock,
        rng=rng,
        limiter=limiter,
        health=health,
        hooks=PlatformHooks(
            auth_headers=lambda token: {"X-EBAY-API-IAF-TOKEN": token},
            credential_variable=USER_TOKEN_VARIABLE,
        ),
        base_url=trading_url,
        transport=transport,
        settings=settings or ClientSettings(max_response_bytes=MAX_RESPONSE_BYTES),
        redactor=redactor,
    )
    # Auth'n'Auth travels in the body and cannot be renewed: no token provider then.
    authnauth = SecretStr(user_token) if kind is EbayTokenKind.AUTHNAUTH and user_token else None
    if authnauth is None:
        initial = user_token if kind is EbayTokenKind.OAUTH else None
        auth: AuthProvider
        if refresh_token:
            auth = OAuthRefreshProvider(
                client,
                token_url=api_url.rstrip("/") + TOKEN_PATH,
                refresh_token=refresh_token,
                client_id=app_id,
                client_secret=cert_id,
                client_auth="basic",
                scope=scopes,
                refresh_variable=REFRESH_VARIABLE,
                client_variable=CERT_VARIABLE,
                on_rotate=on_new_token,
                initial=TokenGrant(initial, token_expires_at) if initial else None,
                redactor=redactor,
            )
        else:
            assert initial is not None
            auth = StaticTokenProvider(
                initial,
                platform=PLATFORM,
                variable=USER_TOKEN_VARIABLE,
                expires_at=token_expires_at,
                redactor=redactor,
            )
        client.attach_auth(auth)
    return EbayMarketplace(
        client,
        trading_url=trading_url,
        keys=TradingKeys(app_id, dev_id, SecretStr(cert_id), site_id=site_id, environment=environment),
        token_kind=EbayTokenKind.OAUTH if authnauth is None else EbayTokenKind.AUTHNAUTH,
        authnauth_token=authnauth,
        refreshable=authnauth is None and bool(refresh_token),
        entries_per_page=entries_per_page,
    )


def _plain(secret: SecretStr | None) -> str | None:
    value = secret.get_secret_value().strip() if secret is not None else ""
    return value or None


def from_deps(deps: PlatformDeps) -> EbayMarketplace:
    """Build eBay from the configuration (the registry calls this)."""
    settings = deps.settings
    user_token = _plain(deps.secret(USER_TOKEN_VARIABLE))
    expires_at: datetime | None = None
    if user_token and deps.vault is not None:
        entry = deps.vault.entry(USER_TOKEN_VARIABLE)
        if entry is not None and entry.value.get_secret_value() == user_token:
            expires_at = entry.expires_at

    def keep(grant: TokenGrant) -> None:
        deps.store_rotated(USER_TOKEN_VARIABLE, grant.access_token, expires_at=grant.expires_at)

    overrides = {
        "cache_ttl": float(settings.marketplace_cache_ttl),
        "max_response_bytes": MAX_RESPONSE_BYTES,
        **deps.client_overrides,
    }
    return create_ebay_marketplace(
        trading_url=settings.value("EBAY_TRADING_URL") or "",
        api_url=settings.value("EBAY_API_URL") or "",
        app_id=settings.value("EBAY_APP_ID") or "",
        dev_id=settings.value("EBAY_DEV_ID") or "",
        cert_id=_plain(deps.secret(CERT_VARIABLE)) or "",
        user_token=user_token,
        refresh_token=_plain(deps.secret(REFRESH_VARIABLE)),
        scopes=settings.ebay_oauth_scopes,
        site_id=settings.ebay_site_id,
        environment=str(settings.ebay_environment),
        token_expires_at=expires_at,
        clock=deps.clock,
        rng=deps.rng,
        transport=deps.transport,
        settings=ClientSettings(**overrides),
        rate_scale=deps.rate_scale,
        rate_limit_per_minute=settings.marketplace_api_rate_limit,
        on_new_token=keep,
        health_sink=deps.health_sink,
    )
