"""Etsy Open API v3: receipts, tracking, rotating OAuth tokens and listing inventory.

The one module that knows Etsy's wire format.  Every call goes through
:class:`~tf_console.marketplaces.http.ApiClient` with ``x-api-key:
keystring:shared_secret`` (Etsy refuses a keystring alone with 403) and a bearer
token renewed by :class:`EtsyTokenProvider`; Etsy hands out a new refresh token on
every refresh, and :func:`from_deps` persists each one (encrypted) so the next
start uses the newest.

Receipts are read with ``min_last_modified`` (epoch seconds), ``sort_on=updated``,
newest first, ``limit=100`` and ``offset`` paging.  Newest first matters with
offset paging: a receipt that changes while we page moves to the front, which can
only repeat a receipt on the next page (dropped here), never skip one.  Money is
``amount / divisor`` exactly; statuses arrive capitalised and are compared
case-insensitively (the table is in :mod:`tf_console.models`).

Quantities are pushed with ``updateListingInventory``, a full replacement: the
current inventory is read fresh, only quantities change, prices become decimals,
read-only fields are dropped and the ``*_on_property`` arrays go back unchanged,
so no variation is ever wiped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import decimal
import json
import math
import random
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any, TypeGuard

import anyio.to_thread
import httpx

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
    PermanentError,
    PushResult,
    PushState,
    RateLimited,
    ReauthNeeded,
    RemoteShipments,
    ShipmentResult,
    TransientError,
)
from tf_console.marketplaces.deps import PlatformDeps
from tf_console.marketplaces.health import HealthRecorder, Sink
from tf_console.marketplaces.http import ApiClient, ClientSettings, PlatformHooks
from tf_console.marketplaces.ratelimit import BucketSpec, DailyBudgetSpec, RateLimiter, RateUpdate
from tf_console.marketplaces.redact import REDACTOR, Redactor, redacting_logger
from tf_console.models import (
    Address,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
)

log = redacting_logger(__name__)

PLATFORM = Platform.ETSY
API_PREFIX = "/v3/application"
CLIENT_ID_VARIABLE = "ETSY_CLIENT_ID"
SECRET_VARIABLE = "ETSY_CLIENT_SECRET"
ACCESS_VARIABLE = "ETSY_ACCESS_TOKEN"
REFRESH_VARIABLE = "ETSY_REFRESH_TOKEN"
SHOP_VARIABLE = "ETSY_SHOP_ID"

PAGE_LIMIT = 100
# Etsy rejects timestamps before 2000-01-01 (the spec's minimum for every *_created/_modified filter).
EARLIEST_FILTER_EPOCH = 946684800
# A runaway guard only: 5,000 pages of 100 is far beyond any backfill window.
MAX_RECEIPT_PAGES = 5000
MAX_LISTING_PAGES = 50
# Etsy's ceiling for one offering's quantity.
MAX_OFFERING_QUANTITY = 999
SCOPES = "transactions_r transactions_w listings_r listings_w shops_r"

# Etsy's historic defaults (10 calls a second, 10,000 a day); the headers of every answer correct them.
DEFAULT_RATE = BucketSpec(10.0, 10)
DEFAULT_DAILY_LIMIT = 10_000
# Listing states where a SKU's stock matters (a sold-out listing comes back when stock returns).
LISTING_STATES: tuple[str, ...] = ("active", "sold_out")

_READ_ONLY_PRODUCT_FIELDS = frozenset({"product_id", "is_deleted"})
_READ_ONLY_PROPERTY_FIELDS = frozenset({"scale_name", "value_pairs"})
_READ_ONLY_OFFERING_FIELDS = frozenset({"offering_id", "is_deleted"})
_ON_PROPERTY_FIELDS = (
    "price_on_property",
    "quantity_on_property",
    "sku_on_property",
    "readiness_state_on_property",
)

# Active ISO 4217 codes (funds, metals and test codes left out): anything else is "an unknown currency".
_ISO_4217_CODES = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN "
    "BZD CAD CDF CHF CLP CNY COP CRC CUC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL "
    "GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW "
    "KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN "
    "NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK "
    "SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU "
    "UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG ZWL "
)
ISO_4217: frozenset[str] = frozenset(_ISO_4217_CODES.split())

_KNOWN_STATUSES = frozenset(
    {
        "open",
        "paid",
        "completed",
        "payment processing",
        "canceled",
        "cancelled",
        "fully refunded",
        "partially refunded",
    }
)


# ---------------------------------------------------------------------------
# Carriers


@cache
def carrier_codes() -> frozenset[str]:
    """Etsy's ``carrier_name`` codes (the Fulfillment tutorial's table, shipped in ``tf_console.data``)."""
    raw = json.loads(resources.files("tf_console.data").joinpath("etsy_carriers.json").read_text("utf-8"))
    return frozenset({str(entry["carrier_name"]).lower() for entry in raw} | {"other"})


def tracking_body(shipment: Shipment, note: str = "") -> dict[str, str]:
    """The createReceiptShipment body.  A carrier Etsy does not list is sent as ``other`` (an
    unknown name can silently lose the tracking) and named for the buyer in ``note_to_buyer``;
    the shipment's own ``note_to_buyer`` (or, without one, ``note``) follows that sentence."""
    code = shipment.carrier.strip().lower()
    body = {"tracking_code": shipment.tracking.strip()}
    notes: list[str] = []
    if code in carrier_codes() and code != "other":
        body["carrier_name"] = code
    else:
        body["carrier_name"] = "other"
        name = (shipment.carrier_name or shipment.carrier).strip()
        if name and name.lower() != "other":
            notes.append(f"Shipped with {name}, tracking number {shipment.tracking.strip()}.")
    extra = (shipment.note_to_buyer or note).strip()
    if extra:
        notes.append(extra)
    if notes:
        body["note_to_buyer"] = " ".join(notes)
    return body


#: Gives the note for a shipment that carries none (opted-in customer updates install one).
ShipmentNote = Callable[[Order, Shipment], str]


# ---------------------------------------------------------------------------
# Hooks for ApiClient


def _json(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def _error_words(response: httpx.Response) -> tuple[str, str]:
    """(machine code or sentence from ``error``, ``error_description``) of an Etsy error body."""
    body = _json(response)
    if not isinstance(body, dict):
        return "", ""
    said = str(body.get("error") or "").strip()
    description = str(body.get("error_description") or "").strip()
    return said[:300], description[:300]


def _detail(said: str, description: str) -> str:
    words = description or said
    return words.rstrip(". ")


def classify(response: httpx.Response) -> MarketplaceError | None:
    """Etsy's errors are ``{"error": "..."}`` (OAuth ones add ``error_description``)."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    said, description = _error_words(response)
    detail = _detail(said, description)
    lowered = f"{said} {description}".lower()
    if status == 401:
        return ReauthNeeded(
            f"Etsy refused the access token ({detail or 'HTTP 401'}); if renewing it does not help, "
            f"authorise the app again and run `tf-console creds set {REFRESH_VARIABLE}`.",
            variable=REFRESH_VARIABLE,
            code=said if said.isidentifier() else "401",
            status=status,
        )
    if status == 403 and ("api key" in lowered or "shared secret" in lowered or "x-api-key" in lowered):
        return ReauthNeeded(
            f"Etsy refused the app key ({detail}); check {CLIENT_ID_VARIABLE} and the shared secret "
            f"with `tf-console creds set {SECRET_VARIABLE}`.",
            variable=SECRET_VARIABLE,
            code="api_key",
            status=status,
        )
    if status == 403 and "insufficient_scope" in lowered:
        return ReauthNeeded(
            f"Etsy says the token lacks a permission this call needs (insufficient_scope); authorise the app "
            f"again with the scopes {SCOPES} and run `tf-console creds set {REFRESH_VARIABLE}`.",
            variable=REFRESH_VARIABLE,
            code="insufficient_scope",
            status=status,
        )
    if status == 429:
        daily = response.headers.get("x-remaining-today", "").strip() == "0"
        what = "Etsy's daily call budget is used up" if daily else "Etsy is throttling calls"
        return RateLimited(
            f"{what} ({detail or 'HTTP 429'}); calls resume after the wait Etsy asks for.",
            code="daily_limit" if daily else "429",
            status=status,
        )
    if status >= 500:
        return TransientError(
            f"Etsy had a server problem (HTTP {status}{': ' + detail if detail else ''}); "
            "it will be retried later.",
            code=str(status),
            status=status,
        )
    return PermanentError(
        f"Etsy refused the request (HTTP {status}): {detail or 'no reason given'}.",
        code=said if said.isidentifier() else str(status),
        status=status,
    )


def _int_header(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    if value is None or not value.strip():
        return None
    return int(float(value.strip()))


def rate_headers(operation: str, headers: httpx.Headers) -> RateUpdate | None:
    """``x-limit-per-second``, ``x-remaining-this-second``, ``x-limit-per-day``, ``x-remaining-today``."""
    per_second = _int_header(headers, "x-limit-per-second")
    left_this_second = _int_header(headers, "x-remaining-this-second")
    per_day = _int_header(headers, "x-limit-per-day")
    left_today = _int_header(headers, "x-remaining-today")
    if per_second is None and left_this_second is None and per_day is None and left_today is None:
        return None
    rate = float(per_second) if per_second and per_second > 0 else None
    return RateUpdate(
        rate=rate,
        burst=rate,
        remaining=float(left_this_second) if left_this_second is not None else None,
        daily_limit=per_day if per_day and per_day > 0 else None,
        daily_remaining=max(0, left_today) if left_today is not None else None,
    )


# ---------------------------------------------------------------------------
# Parsing


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _epoch(value: Any, what: str) -> datetime:
    if not (_is_int(value) or isinstance(value, float)) or value < 0:
        raise MalformedResponse(f"its {what} is missing or not a time")
    return datetime.fromtimestamp(value, UTC)


def _first(data: Mapping[str, Any], *names: str) -> Any:
    for name in names:
        if data.get(name) is not None:
            return data[name]
    return None


def money_value(raw: Any, what: str) -> Money:
    """Etsy Money ``{amount, divisor, currency_code}`` → exact :class:`Money` (amount / divisor)."""
    if not isinstance(raw, Mapping):
        raise MalformedResponse(f"its {what} is missing")
    amount, divisor, code = raw.get("amount"), raw.get("divisor"), raw.get("currency_code")
    if not _is_int(amount):
        raise MalformedResponse(f"its {what} amount {amount!r} is not a whole number")
    if not _is_int(divisor) or divisor <= 0:
        raise MalformedResponse(f"its {what} has divisor {divisor!r}, so the amount cannot be worked out")
    if not isinstance(code, str) or code.strip().upper() not in ISO_4217:
        raise MalformedResponse(f"its {what} is in an unknown currency {code!r}")
    digits = len(str(divisor)) - 1
    if divisor == 10**digits:
        value = Decimal(amount).scaleb(-digits)
    else:
        with decimal.localcontext() as ctx:
            ctx.traps[decimal.Inexact] = True
            try:
                value = Decimal(amount) / Decimal(divisor)
            except decimal.Inexact:
                raise MalformedResponse(f"its {what} ({amount}/{divisor}) is not an exact amount") from None
    return Money(amount=value, currency=code.strip().upper())


def map_status(raw_status: str, *, is_paid: bool, is_shipped: bool) -> tuple[OrderStatus, bool]:
    """Etsy's status (any capitalisation) and flags → (canonical status, refunded)."""
    word = " ".join(raw_status.split()).lower()
    if word in ("canceled", "cancelled"):
        return OrderStatus.CANCELLED, False
    if word == "fully refunded":
        return OrderStatus.CANCELLED, True
    if word == "partially refunded":
        return (OrderStatus.SHIPPED if is_shipped else OrderStatus.UNSHIPPED), True
    if word == "completed" or is_shipped:
        return OrderStatus.SHIPPED, False
    if word == "paid":
        return OrderStatus.UNSHIPPED, False
    if word == "open":
        return (OrderStatus.UNSHIPPED if is_paid else OrderStatus.PENDING), False
    if word == "payment processing":
        return OrderStatus.PENDING, False
    # A status Etsy added later: the flags still say where the order is.
    return (OrderStatus.UNSHIPPED if is_paid else OrderStatus.PENDING), False


def _is_personalisation(name: str) -> bool:
    lowered = name.lower()
    return "personali" in lowered


def _line(data: Any, *, shipped: bool, buyer_note: str) -> tuple[LineItem, datetime | None]:
    if not isinstance(data, Mapping):
        raise MalformedResponse("a transaction is not an object")
    transaction_id = data.get("transaction_id")
    if not _is_int(transaction_id):
        raise MalformedResponse("a transaction has no transaction_id")
    quantity = data.get("quantity")
    if not _is_int(quantity) or quantity < 0:
        raise MalformedResponse(f"transaction {transaction_id} has no usable quantity")
    unit_price = money_value(data.get("price"), f"transaction {transaction_id} price")
    variations: list[str] = []
    personal: list[str] = []
    for variation in data.get("variations") or []:
        if not isinstance(variation, Mapping):
            continue
        name = str(variation.get("formatted_name") or "").strip()
        value = str(variation.get("formatted_value") or "").strip()
        if not value:
            continue
        if _is_personalisation(name):
            personal.append(value)
        else:
            variations.append(f"{name}: {value}" if name else value)
    if buyer_note:
        personal.append(f"Buyer's note: {buyer_note}")
    was_shipped = shipped or data.get("shipped_timestamp") not in (None, 0)
    expected = data.get("expected_ship_date")
    ship_by = _epoch(expected, "expected_ship_date") if expected not in (None, 0) else None
    listing_id = data.get("listing_id")
    item = LineItem(
        line_id=str(transaction_id),
        sku=str(data.get("sku") or "").strip(),
        title=str(data.get("title") or "").strip(),
        quantity=quantity,
        unit_price=unit_price,
        listing_id=str(listing_id) if listing_id is not None else "",
        variation=", ".join(variations),
        personalisation="\n".join(personal),
        quantity_shipped=quantity if was_shipped else 0,
    )
    return item, ship_by


def parse_receipt(data: Any, redactor: Redactor = REDACTOR) -> Order:
    """One ShopReceipt → :class:`Order`.  Raises MalformedResponse (a sentence fragment) when unusable."""
    if not isinstance(data, Mapping):
        raise MalformedResponse("the receipt is not an object")
    receipt_id = data.get("receipt_id")
    if not _is_int(receipt_id) or receipt_id <= 0:
        raise MalformedResponse("the receipt has no receipt_id")
    raw_status = data.get("status")
    if not isinstance(raw_status, str) or not raw_status.strip():
        raise MalformedResponse("its status is missing")
    is_paid = bool(data.get("is_paid"))
    is_shipped = bool(data.get("is_shipped"))
    status, refunded = map_status(raw_status, is_paid=is_paid, is_shipped=is_shipped)
    created = _epoch(_first(data, "created_timestamp", "create_timestamp"), "created time")
    updated = _epoch(_first(data, "updated_timestamp", "update_timestamp"), "last-modified time")
    total = money_value(data.get("grandtotal"), "grandtotal")
    transactions = data.get("transactions")
    if not isinstance(transactions, list):
        raise MalformedResponse("its transactions are missing")
    buyer_note = str(data.get("message_from_buyer") or "").strip()
    shipped_lines = status is OrderStatus.SHIPPED or is_shipped
    items: list[LineItem] = []
    ship_by: datetime | None = None
    for raw in transactions:
        item, expected = _line(raw, shipped=shipped_lines, buyer_note=buyer_note)
        items.append(item)
        if expected is not None and (ship_by is None or expected < ship_by):
            ship_by = expected
    buyer = Address(
        name=str(data.get("name") or "").strip(),
        email=str(data.get("buyer_email") or "").strip(),
        line1=str(data.get("first_line") or "").strip(),
        line2=str(data.get("second_line") or "").strip(),
        city=str(data.get("city") or "").strip(),
        region=str(data.get("state") or "").strip(),
        postal_code=str(data.get("zip") or "").strip(),
        country=str(data.get("country_iso") or "").strip(),
    )
    redactor.register_pii([buyer.name, buyer.email, buyer.line1, buyer.line2, buyer_note])
    tracking = [
        str(s["tracking_code"]).strip()
        for s in data.get("shipments") or []
        if isinstance(s, Mapping) and str(s.get("tracking_code") or "").strip()
    ]
    extra: dict[str, str] = {}
    if data.get("buyer_user_id") is not None:
        extra["buyer_user_id"] = str(data["buyer_user_id"])
    return Order(
        platform=PLATFORM,
        order_id=str(receipt_id),
        status=status,
        raw_status=raw_status.strip(),
        created_at=created,
        updated_at=updated,
        ship_by=ship_by,
        currency=total.currency,
        total=total,
        items=items,
        buyer=None if buyer.is_empty() else buyer,
        refunded=refunded,
        marketplace_tracking=tracking,
        extra=extra,
    )


@dataclass(slots=True)
class ReceiptPage:
    orders: list[Order]
    errors: list[str]
    warnings: list[str]
    count: int | None  # Etsy's total of matching receipts, when it says
    size: int  # receipts on the page, readable or not (offset paging advances by this)


def _receipt_label(raw: Any) -> str:
    receipt_id = raw.get("receipt_id") if isinstance(raw, Mapping) else None
    return f"Etsy receipt {receipt_id}" if receipt_id is not None else "An Etsy receipt without an id"


def parse_receipts_page(response: httpx.Response, redactor: Redactor = REDACTOR) -> ReceiptPage:
    """A getShopReceipts answer ``{count, results}``: unreadable receipts become error sentences."""
    body = json.loads(response.content)
    if not isinstance(body, Mapping) or not isinstance(body.get("results"), list):
        raise MalformedResponse("Etsy's receipt page has no results list.", code="malformed")
    count = body.get("count")
    page = ReceiptPage([], [], [], count if _is_int(count) else None, len(body["results"]))
    for raw in body["results"]:
        try:
            order = parse_receipt(raw, redactor)
        except (MalformedResponse, KeyError, ValueError, TypeError, AttributeError, ArithmeticError) as exc:
            page.errors.append(f"{_receipt_label(raw)} could not be read: {exc}; it was skipped.")
            continue
        page.orders.append(order)
        if order.raw_status.lower() not in _KNOWN_STATUSES:
            page.warnings.append(
                f"Etsy receipt {order.order_id} has the unfamiliar status {order.raw_status!r}; "
                f"it was treated as {order.status.value} from its paid/shipped flags."
            )
    return page


def receipt_trackings(body: Any) -> tuple[list[str], bool]:
    """(tracking codes, is_shipped) of a receipt, read leniently: enough to reconcile a shipment
    even when some other field of the receipt is unreadable."""
    if not isinstance(body, Mapping) or not _is_int(body.get("receipt_id")):
        raise MalformedResponse("Etsy answered without a receipt.")
    codes = [
        str(s["tracking_code"]).strip()
        for s in body.get("shipments") or []
        if isinstance(s, Mapping) and str(s.get("tracking_code") or "").strip()
    ]
    return codes, bool(body.get("is_shipped"))


# ---------------------------------------------------------------------------
# Inventory (full replacement)


def _decimal_price(raw: Any, where: str) -> float:
    """An offering's price for the PUT body: the Money object as a decimal number.

    JSON has no decimal type; a float whose shortest form is exactly the decimal is sent.
    """
    if isinstance(raw, Mapping):
        value = money_value(raw, where).amount
    elif isinstance(raw, int | float) and not isinstance(raw, bool):
        value = Decimal(str(raw))
    else:
        raise MalformedResponse(f"{where} has no price")
    as_float = float(value)
    if Decimal(repr(as_float)) != value:
        raise MalformedResponse(f"{where} price {value} cannot be sent exactly")
    return as_float


@dataclass(slots=True)
class InventoryUpdate:
    body: dict[str, Any]
    changed: int  # offerings whose quantity was set
    other_skus: list[str] = field(default_factory=list)  # other SKUs in the listing


def build_inventory_update(inventory: Any, sku: str, quantity: int) -> InventoryUpdate:
    """getListingInventory answer → updateListingInventory body with ``sku``'s offerings at ``quantity``.

    Everything else is sent back as read (minus read-only fields), so no product or
    variation is dropped.  Deleted products and offerings are left out, as Etsy would.
    """
    if not isinstance(inventory, Mapping) or not isinstance(inventory.get("products"), list):
        raise MalformedResponse("Etsy's listing inventory has no products.")
    products: list[dict[str, Any]] = []
    changed = 0
    other: list[str] = []
    for index, product in enumerate(inventory["products"]):
        if not isinstance(product, Mapping):
            raise MalformedResponse(f"product {index} of the inventory is not an object")
        if product.get("is_deleted"):
            continue
        out = {k: v for k, v in product.items() if k not in _READ_ONLY_PRODUCT_FIELDS}
        out["sku"] = str(product.get("sku") or "")
        out["property_values"] = [
            {k: v for k, v in value.items() if k not in _READ_ONLY_PROPERTY_FIELDS}
            for value in product.get("property_values") or []
            if isinstance(value, Mapping)
        ]
        matches = out["sku"].strip() == sku
        if not matches and out["sku"] and out["sku"] not in other:
            other.append(out["sku"])
        offerings: list[dict[str, Any]] = []
        for number, offering in enumerate(product.get("offerings") or []):
            if not isinstance(offering, Mapping):
                raise MalformedResponse(f"an offering of product {index} is not an object")
            if offering.get("is_deleted"):
                continue
            where = f"offering {number} of product {index}"
            sent = {k: v for k, v in offering.items() if k not in _READ_ONLY_OFFERING_FIELDS}
            sent["price"] = _decimal_price(offering.get("price"), where)
            if not _is_int(offering.get("quantity")):
                raise MalformedResponse(f"{where} has no quantity")
            if matches:
                sent["quantity"] = quantity
                changed += 1
            offerings.append(sent)
        out["offerings"] = offerings
        products.append(out)
    body: dict[str, Any] = {"products": products}
    for name in _ON_PROPERTY_FIELDS:
        value = inventory.get(name)
        if isinstance(value, list):
            body[name] = list(value)
    return InventoryUpdate(body, changed, other)


def _listing_ids_with_sku(response: httpx.Response, sku: str) -> tuple[list[str], int, int | None]:
    """(listing ids whose ``skus`` hold ``sku``, listings on the page, Etsy's count)."""
    body = json.loads(response.content)
    if not isinstance(body, Mapping) or not isinstance(body.get("results"), list):
        raise MalformedResponse("Etsy's listing page has no results list.")
    found = [
        str(listing["listing_id"])
        for listing in body["results"]
        if isinstance(listing, Mapping)
        and listing.get("listing_id") is not None
        and sku in [str(s).strip() for s in listing.get("skus") or []]
    ]
    count = body.get("count")
    return found, len(body["results"]), count if _is_int(count) else None


def _offering_quantities(response: httpx.Response, sku: str) -> list[int]:
    body = json.loads(response.content)
    if not isinstance(body, Mapping) or not isinstance(body.get("products"), list):
        raise MalformedResponse("Etsy answered the inventory update without products.")
    return [
        int(offering["quantity"])
        for product in body["products"]
        if isinstance(product, Mapping) and str(product.get("sku") or "").strip() == sku
        for offering in product.get("offerings") or []
        if isinstance(offering, Mapping) and not offering.get("is_deleted")
    ]


# ---------------------------------------------------------------------------
# Tokens


class EtsyTokenProvider(OAuthRefreshProvider):
    """Etsy's refresh grant, with Etsy's own words for a refused refresh or app key."""

    def classify_token_answer(self, response: httpx.Response) -> MarketplaceError | None:
        status = response.status_code
        said, description = _error_words(response)
        lowered = f"{said} {description}".lower()
        if status == 403 and ("api key" in lowered or "shared secret" in lowered):
            return ReauthNeeded(
                f"Etsy refused the app key while renewing the token ({_detail(said, description)}); check "
                f"{CLIENT_ID_VARIABLE} and `tf-console creds set {SECRET_VARIABLE}`.",
                variable=SECRET_VARIABLE,
                platform=PLATFORM,
                code="api_key",
                status=status,
            )
        if said == "invalid_grant":
            return ReauthNeeded(
                f"Etsy refused the saved refresh token ({description or 'invalid_grant'}): it expired "
                f"(unused for 90 days), was revoked (e.g. the shop owner changed the Etsy password) or "
                f"was replaced. Authorise TitanForge again on Etsy and run "
                f"`tf-console creds set {REFRESH_VARIABLE}` with the new refresh token.",
                variable=REFRESH_VARIABLE,
                platform=PLATFORM,
                code="invalid_grant",
                status=status,
            )
        return super().classify_token_answer(response)


# ---------------------------------------------------------------------------
# The marketplace


class EtsyMarketplace:
    """Etsy through an :class:`ApiClient` whose ``base_url`` is ``ETSY_API_URL``."""

    platform = PLATFORM
    max_backfill_days: int | None = None
    min_poll_interval = 0.0

    def __init__(
        self, client: ApiClient, *, shop_id: str | None = None, page_limit: int = PAGE_LIMIT
    ) -> None:
        self.client = client
        self.page_limit = page_limit
        self._configured_shop_id = shop_id
        self._shop_id = shop_id
        self.shop_id_source = SHOP_VARIABLE if shop_id else ""
        self.user_id: str | None = None
        self.shipment_note: ShipmentNote | None = None

    # -- shop ------------------------------------------------------------------

    @property
    def shop_id(self) -> str | None:
        """The shop id in use: ``ETSY_SHOP_ID``, or the one ``users/me`` reported (for doctor)."""
        return self._shop_id

    async def _me(self, *, cache: bool) -> tuple[str, str | None]:
        def parse(response: httpx.Response) -> tuple[str, str | None]:
            body = json.loads(response.content)
            if not isinstance(body, Mapping) or body.get("user_id") is None:
                raise MalformedResponse("Etsy's users/me answer has no user_id.")
            shop = body.get("shop_id")
            return str(body["user_id"]), (str(shop) if shop not in (None, 0, "") else None)

        user_id, shop_id = await self.client.request_parsed(
            "users.me", "GET", f"{API_PREFIX}/users/me", idempotent=True, cache=cache, parse=parse
        )
        self.user_id = user_id
        return user_id, shop_id

    async def ensure_shop_id(self) -> str:
        if self._shop_id:
            return self._shop_id
        user_id, shop_id = await self._me(cache=True)
        if shop_id is None:
            raise NotConfigured(
                f"The Etsy account the token belongs to (user {user_id}) has no shop; authorise with the "
                f"shop owner's Etsy account or set {SHOP_VARIABLE}.",
                platform=PLATFORM,
                code="no_shop",
            )
        self._shop_id = shop_id
        self.shop_id_source = "users/me"
        return shop_id

    # -- receipts --------------------------------------------------------------

    async def fetch_orders(
        self, since: datetime, *, until: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        shop_id = await self.ensure_shop_id()
        min_modified = max(EARLIEST_FILTER_EPOCH, math.floor(since.timestamp()))
        offset = 0
        page_number = 0
        seen: set[str] = set()
        known_count: int | None = None
        unreadable: MarketplaceError | None = None
        while page_number < MAX_RECEIPT_PAGES:
            page_number += 1
            params: list[tuple[str, str | int]] = [
                ("min_last_modified", min_modified),
                ("sort_on", "updated"),
                ("sort_order", "desc"),
                ("limit", self.page_limit),
                ("offset", offset),
            ]
            try:
                page = await self._receipts_page(shop_id, params)
            except MalformedResponse as exc:
                # Keep reading the rest; the cursor must not move past a page we could not read.
                unreadable = unreadable or exc
                yield OrderPage(
                    orders=[],
                    errors=[
                        f"Etsy's receipts from offset {offset} were unreadable twice "
                        f"({exc.code or 'malformed'}); they will be read again on the next poll."
                    ],
                    page_number=page_number,
                )
                offset += self.page_limit
                if known_count is None or offset >= known_count:
                    break
                continue
            for error in page.errors:
                self.client.report_error("receipts.list", error)
            for warning in page.warnings:
                self.client.report_warning("receipts.list", warning)
            fresh = [o for o in page.orders if o.order_id not in seen]
            seen.update(o.order_id for o in fresh)
            if until is not None:
                fresh = [o for o in fresh if o.updated_at <= until]
            known_count = page.count if page.count is not None else known_count
            total_pages = math.ceil(page.count / self.page_limit) if page.count else None
            yield OrderPage(
                orders=fresh, errors=page.errors, page_number=page_number, total_pages=total_pages
            )
            offset += page.size
            if page.size == 0:
                break
            if page.count is not None:
                if offset >= page.count:
                    break
            elif page.size < self.page_limit:
                break
        if unreadable is not None:
            raise TransientError(
                "Some of Etsy's receipt pages could not be read; the readable ones were stored and "
                "the rest will be read again on the next poll.",
                platform=PLATFORM,
                code="unreadable_page",
            )

    async def _receipts_page(self, shop_id: str, params: list[tuple[str, str | int]]) -> ReceiptPage:
        url = f"{API_PREFIX}/shops/{shop_id}/receipts"
        try:
            return await self.client.request_parsed(
                "receipts.list", "GET", url, params=params, idempotent=True, parse=self._parse_page
            )
        except PermanentError as exc:
            if exc.status == 403 and self.shop_id_source == SHOP_VARIABLE:
                raise PermanentError(
                    f"{exc.sentence.rstrip('.')}; check that {SHOP_VARIABLE} ({shop_id}) is the shop the "
                    f"Etsy token belongs to, or unset it to use the token's shop.",
                    platform=PLATFORM,
                    code=exc.code,
                    status=exc.status,
                    request_id=exc.request_id,
                ) from exc
            raise
        except MalformedResponse:
            # One more read: a garbled answer is usually a one-off.
            return await self.client.request_parsed(
                "receipts.list", "GET", url, params=params, idempotent=True, parse=self._parse_page
            )

    def _parse_page(self, response: httpx.Response) -> ReceiptPage:
        return parse_receipts_page(response, self.client.redactor)

    async def _get_receipt(self, order_id: str) -> Any | None:
        """The receipt's JSON, or None when Etsy has no such receipt."""
        shop_id = await self.ensure_shop_id()
        if not order_id.isdigit():
            return None
        try:
            return await self.client.request_parsed(
                "receipts.get",
                "GET",
                f"{API_PREFIX}/shops/{shop_id}/receipts/{order_id}",
                idempotent=True,
                parse=lambda r: json.loads(r.content),
            )
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    async def fetch_orders_by_id(self, order_ids: Sequence[str]) -> list[Order]:
        found: list[Order] = []
        for order_id in order_ids:
            body = await self._get_receipt(order_id)
            if body is None:
                continue
            try:
                found.append(parse_receipt(body, self.client.redactor))
            except (
                MalformedResponse,
                KeyError,
                ValueError,
                TypeError,
                AttributeError,
                ArithmeticError,
            ) as exc:
                self.client.report_error("receipts.get", f"{_receipt_label(body)} could not be read: {exc}.")
        return found

    # -- shipments ---------------------------------------------------------------

    async def confirm_shipment(self, order: Order, shipment: Shipment) -> ShipmentResult:
        shop_id = await self.ensure_shop_id()
        body = tracking_body(shipment, self._note_for(order, shipment))
        try:
            codes, _shipped = await self.client.request_parsed(
                "receipts.tracking",
                "POST",
                f"{API_PREFIX}/shops/{shop_id}/receipts/{order.order_id}/tracking",
                json=body,  # sent as application/json: the encoding matches the Content-Type
                idempotent=False,
                parse=lambda r: receipt_trackings(json.loads(r.content)),
            )
        except PermanentError as exc:
            said = exc.sentence.rstrip(".")
            return ShipmentResult(
                ConfirmState.REJECTED,
                answer=f"{said}. Nothing was recorded on Etsy; correct the shipment and ship again.",
                request_id=exc.request_id,
            )
        wanted = _norm(shipment.tracking)
        if wanted in {_norm(c) for c in codes}:
            return ShipmentResult(
                ConfirmState.CONFIRMED,
                answer=f"Etsy shows tracking {shipment.tracking} on receipt {order.order_id} "
                "(Etsy e-mailed the buyer).",
            )
        return ShipmentResult(
            ConfirmState.PENDING,
            answer=f"Etsy accepted the shipment but receipt {order.order_id} does not show tracking "
            f"{shipment.tracking} yet; it will be checked again, never re-sent.",
        )

    def _note_for(self, order: Order, shipment: Shipment) -> str:
        if self.shipment_note is None or shipment.note_to_buyer:
            return ""
        try:
            return self.shipment_note(order, shipment)
        except Exception:  # a broken note must never stop a shipment confirmation
            log.exception("the note for the buyer could not be made; the shipment goes without it")
            return ""

    async def read_shipments(self, order: Order) -> RemoteShipments:
        body = await self._get_receipt(order.order_id)
        if body is None:
            return RemoteShipments(order_found=False)
        codes, shipped = receipt_trackings(body)
        parsed: Order | None = None
        with contextlib.suppress(MalformedResponse, KeyError, ValueError, TypeError, ArithmeticError):
            parsed = parse_receipt(body, self.client.redactor)
        return RemoteShipments(order_found=True, tracking_numbers=codes, shipped=shipped, order=parsed)

    # -- inventory ---------------------------------------------------------------

    async def _listings_for_sku(self, shop_id: str, sku: str) -> list[str]:
        """Listing ids holding ``sku``; listing pages are cached for MARKETPLACE_CACHE_TTL."""
        found: list[str] = []
        for state in LISTING_STATES:
            offset = 0
            for _ in range(MAX_LISTING_PAGES):
                ids, size, count = await self.client.request_parsed(
                    "listings.list",
                    "GET",
                    f"{API_PREFIX}/shops/{shop_id}/listings",
                    params=[("state", state), ("limit", PAGE_LIMIT), ("offset", offset)],
                    idempotent=True,
                    cache=True,
                    parse=lambda r: _listing_ids_with_sku(r, sku),
                )
                found.extend(i for i in ids if i not in found)
                offset += size
                if (
                    size == 0
                    or (count is not None and offset >= count)
                    or (count is None and size < PAGE_LIMIT)
                ):
                    break
        return found

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        sku = sku.strip()
        if not sku:
            return PushResult(PushState.SKIPPED, answer="An empty SKU cannot be matched to an Etsy listing.")
        if quantity < 0:
            return PushResult(PushState.REJECTED, answer=f"A quantity cannot be negative (got {quantity}).")
        note = ""
        if quantity > MAX_OFFERING_QUANTITY:
            note = f" Etsy allows at most {MAX_OFFERING_QUANTITY} per offering, so that was sent."
            quantity = MAX_OFFERING_QUANTITY
        shop_id = await self.ensure_shop_id()
        listing_ids = await self._listings_for_sku(shop_id, sku)
        if not listing_ids:
            return PushResult(PushState.SKIPPED, answer=f"No active or sold-out Etsy listing has SKU {sku}.")
        results = await self._push_listings(listing_ids, sku, quantity)
        if not results:
            # The cached listing map is stale (the SKU moved): look once more, fresh.
            self.client.cache.clear()
            listing_ids = await self._listings_for_sku(shop_id, sku)
            results = await self._push_listings(listing_ids, sku, quantity)
        if not results:
            return PushResult(PushState.SKIPPED, answer=f"No active or sold-out Etsy listing has SKU {sku}.")
        for state in (PushState.REJECTED, PushState.QUEUED):
            refused = [r for r in results if r.state is state]
            if refused:
                return PushResult(state, answer=" ".join(r.answer for r in refused))
        return PushResult(PushState.APPLIED, answer=" ".join(r.answer for r in results) + note)

    async def _push_listings(self, listing_ids: Sequence[str], sku: str, quantity: int) -> list[PushResult]:
        results: list[PushResult] = []
        for listing_id in listing_ids:
            result = await self._push_listing(listing_id, sku, quantity)
            if result is not None:
                results.append(result)
        return results

    async def _push_listing(self, listing_id: str, sku: str, quantity: int) -> PushResult | None:
        url = f"{API_PREFIX}/listings/{listing_id}/inventory"
        try:
            # Never from the cache: a full replacement must start from what Etsy holds now.
            update = await self.client.request_parsed(
                "inventory.get",
                "GET",
                url,
                idempotent=True,
                parse=lambda r: build_inventory_update(json.loads(r.content), sku, quantity),
            )
        except PermanentError as exc:
            if exc.status == 404:
                return None
            return PushResult(PushState.REJECTED, answer=exc.sentence)
        if update.changed == 0:
            return None
        quantity_varies = bool(update.body.get("quantity_on_property"))
        if update.other_skus and not quantity_varies:
            return PushResult(
                PushState.REJECTED,
                answer=f"Etsy listing {listing_id} shares one quantity between SKU {sku} and "
                f"{', '.join(update.other_skus)}; make quantity vary by variation on Etsy so SKU {sku} "
                "can be set on its own.",
            )
        try:
            # An absolute quantity: sending the same body twice changes nothing, so it may be retried.
            quantities = await self.client.request_parsed(
                "inventory.put",
                "PUT",
                url,
                json=update.body,
                idempotent=True,
                parse=lambda r: _offering_quantities(r, sku),
            )
        except PermanentError as exc:
            return PushResult(
                PushState.REJECTED,
                answer=f"Etsy refused the inventory of listing {listing_id}: {exc.sentence}",
            )
        if quantities and all(q == quantity for q in quantities):
            return PushResult(
                PushState.APPLIED,
                answer=f"Etsy listing {listing_id}: {update.changed} offering(s) of SKU {sku} "
                f"set to {quantity}.",
            )
        return PushResult(
            PushState.QUEUED,
            answer=f"Etsy accepted listing {listing_id}'s inventory but does not show quantity {quantity} "
            f"for SKU {sku} yet.",
        )

    # -- credentials ---------------------------------------------------------------

    async def check_credentials(self) -> CredentialCheck:
        try:
            user_id, shop_id = await self._me(cache=False)
        except MarketplaceError as exc:
            return CredentialCheck(ok=False, sentence=exc.sentence)
        details = {"user_id": user_id}
        if shop_id is not None:
            details["shop_id_from_token"] = shop_id
        configured = self._configured_shop_id
        if configured:
            details["shop_id"] = configured
            details["shop_id_source"] = SHOP_VARIABLE
            if shop_id is not None and shop_id != configured:
                return CredentialCheck(
                    ok=False,
                    sentence=f"The Etsy token belongs to shop {shop_id}, but {SHOP_VARIABLE} is "
                    f"{configured}; "
                    f"fix {SHOP_VARIABLE} or unset it to use the token's shop.",
                    details=details,
                )
        elif shop_id is None:
            return CredentialCheck(
                ok=False,
                sentence=f"The Etsy credentials work (user {user_id}), but that account has no shop; "
                f"authorise with the shop owner's account or set {SHOP_VARIABLE}.",
                details=details,
            )
        else:
            self._shop_id = shop_id
            self.shop_id_source = "users/me"
            details["shop_id"] = shop_id
            details["shop_id_source"] = "discovered with GET /v3/application/users/me"
        return CredentialCheck(
            ok=True,
            sentence=f"Etsy credentials work (user {user_id}, shop {details['shop_id']}).",
            details=details,
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def _norm(tracking: str) -> str:
    return "".join(tracking.split()).upper()


# ---------------------------------------------------------------------------
# Wiring


def create_etsy_marketplace(
    *,
    base_url: str,
    oauth_url: str,
    client_id: str,
    shared_secret: str,
    refresh_token: str | None,
    clock: Clock,
    rng: random.Random,
    access_token: TokenGrant | None = None,
    shop_id: str | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    settings: ClientSettings | None = None,
    rate_limit_per_minute: int | None = None,
    rate_scale: float = 1.0,
    on_rotate: RotateCallback | None = None,
    health_sink: Sink | None = None,
    redactor: Redactor = REDACTOR,
) -> EtsyMarketplace:
    """Wire limiter, health, client and token refresh for Etsy.

    ``access_token`` is a saved grant to start from; without ``refresh_token`` it is
    used until Etsy refuses it.  ``on_rotate`` receives every new grant (persist it).
    """
    if not client_id.strip() or not shared_secret.strip():
        raise NotConfigured(
            f"Etsy needs both {CLIENT_ID_VARIABLE} and the shared secret {SECRET_VARIABLE}.",
            platform=PLATFORM,
        )
    if not refresh_token and (access_token is None or not access_token.access_token):
        raise NotConfigured(
            f"Etsy needs {REFRESH_VARIABLE} (or at least {ACCESS_VARIABLE}); authorise the app and run "
            f"`tf-console creds set {REFRESH_VARIABLE}`.",
            platform=PLATFORM,
        )
    api_key = f"{client_id.strip()}:{shared_secret.strip()}"
    redactor.register_secret(shared_secret)
    redactor.register_secret(api_key)
    base_settings = settings or ClientSettings()
    settings = dataclasses.replace(
        base_settings, default_headers={**base_settings.default_headers, "x-api-key": api_key}
    )
    limiter = RateLimiter(
        PLATFORM,
        clock,
        default=DEFAULT_RATE.scaled(rate_scale),
        per_minute_cap=rate_limit_per_minute,
        daily=DailyBudgetSpec(limit=DEFAULT_DAILY_LIMIT),
    )
    health = HealthRecorder(PLATFORM, clock, sink=health_sink, redactor=redactor)
    client = ApiClient(
        PLATFORM,
        clock=clock,
        rng=rng,
        limiter=limiter,
        health=health,
        hooks=PlatformHooks(
            classify=classify, rate_headers=rate_headers, credential_variable=REFRESH_VARIABLE
        ),
        base_url=base_url,
        transport=transport,
        settings=settings,
        redactor=redactor,
    )
    auth: AuthProvider
    if refresh_token:
        auth = EtsyTokenProvider(
            client,
            token_url=oauth_url,
            refresh_token=refresh_token,
            client_id=client_id.strip(),
            client_auth="client_id",
            refresh_variable=REFRESH_VARIABLE,
            client_variable=CLIENT_ID_VARIABLE,
            on_rotate=on_rotate,
            initial=access_token,
            redactor=redactor,
        )
    else:
        assert access_token is not None
        auth = StaticTokenProvider(
            access_token.access_token,
            platform=PLATFORM,
            variable=REFRESH_VARIABLE,
            expires_at=access_token.expires_at,
            redactor=redactor,
        )
    client.attach_auth(auth)
    return EtsyMarketplace(client, shop_id=shop_id)


def _saved_access_grant(deps: PlatformDeps) -> TokenGrant | None:
    """The access token to start from: the vault's (with its expiry) or the configured one."""
    secret = deps.secret(ACCESS_VARIABLE)
    if secret is None or not secret.get_secret_value().strip():
        return None
    expires_at: datetime | None = None
    vault = deps.vault
    if vault is not None and vault.persisted_wins(ACCESS_VARIABLE, deps.settings.value(ACCESS_VARIABLE)):
        expires_at = vault.expires_at(ACCESS_VARIABLE)
        if expires_at is not None and deps.clock.now() >= expires_at:
            return None  # expired while we were away: refresh before the first call
    return TokenGrant(secret.get_secret_value().strip(), expires_at)


def from_deps(deps: PlatformDeps) -> EtsyMarketplace:
    """Build Etsy from the configuration; raises NotConfigured with a sentence."""
    settings = deps.settings
    client_id = settings.value(CLIENT_ID_VARIABLE)
    if not client_id:
        raise NotConfigured(
            f"{CLIENT_ID_VARIABLE} (the Etsy app keystring) is not set; run "
            f"`tf-console creds set {CLIENT_ID_VARIABLE}`.",
            platform=PLATFORM,
        )
    secret = deps.secret(SECRET_VARIABLE)
    if secret is None or not secret.get_secret_value().strip():
        raise NotConfigured(
            f"{SECRET_VARIABLE} (the Etsy shared secret) is not set; Etsy refuses every call without it. "
            f"Copy it from your Etsy app page and run `tf-console creds set {SECRET_VARIABLE}`.",
            platform=PLATFORM,
        )
    refresh = deps.secret(REFRESH_VARIABLE)
    shop_id = settings.value(SHOP_VARIABLE)

    async def persist(grant: TokenGrant) -> None:
        def save() -> None:
            # The refresh token first: Etsy has already retired the old one.
            if grant.refresh_token:
                deps.store_rotated(REFRESH_VARIABLE, grant.refresh_token)
            deps.store_rotated(ACCESS_VARIABLE, grant.access_token, expires_at=grant.expires_at)

        await anyio.to_thread.run_sync(save)

    overrides = dict(deps.client_overrides)
    overrides.setdefault("cache_ttl", float(settings.marketplace_cache_ttl))
    per_minute = max(1, math.ceil(settings.marketplace_api_rate_limit * deps.rate_scale))
    return create_etsy_marketplace(
        base_url=settings.etsy_api_url,
        oauth_url=settings.etsy_oauth_url,
        client_id=client_id,
        shared_secret=secret.get_secret_value(),
        refresh_token=refresh.get_secret_value().strip() if refresh is not None else None,
        access_token=_saved_access_grant(deps),
        shop_id=shop_id,
        clock=deps.clock,
        rng=deps.rng,
        transport=deps.transport,
        settings=ClientSettings(**overrides),
        rate_limit_per_minute=per_minute,
        rate_scale=deps.rate_scale,
        on_rotate=persist,
        health_sink=deps.health_sink,
    )
