"""Amazon Selling Partner API: orders, shipment confirmation, inventory.

The one module that knows SP-API's wire format.  Reads use the Orders API
**2026-01-01** (``searchOrders`` / ``getOrder``; the v0 read operations are
deprecated and stop on 2027-03-27, so there is no v0 path here); shipments are
confirmed with v0 ``confirmShipment`` (not deprecated); merchant-fulfilled stock is
set with Listings Items ``patchListingsItem``; FBA stock is only read
(``getInventorySummaries``).  Buyer messages use the Messaging API: only the two
kinds a print shop needs and Amazon allows unprompted — ``createUnexpectedProblem``
(a delay notice) and ``confirmCustomizationDetails`` — each after
``getMessagingActionsForOrder`` lists it for the order.

Every call goes through :class:`ApiClient` with the published per-operation
limits (:data:`AMAZON_OPERATIONS`), corrected by ``x-amzn-RateLimit-Limit`` when
Amazon sends it.  Login with Amazon access tokens are cached until a minute before
``expires_in`` — in the token vault when there is one, so short-lived CLI runs do
not mint a token each — and an answer of 403 ``Unauthorized`` (Amazon's word for
an expired token as well as a revoked one) refreshes once and retries.

Status mapping (``fulfillment.fulfillmentStatus``; see :mod:`tf_console.models`):
PENDING_AVAILABILITY, PENDING → pending; UNSHIPPED → unshipped; UNFULFILLABLE →
unshipped, flagged with ``extra["unfulfillable"]``; PARTIALLY_SHIPPED →
partially_shipped; SHIPPED → shipped; CANCELLED → cancelled.  ``fulfilledBy``
AMAZON (FBA) → :attr:`FulfilledBy.MARKETPLACE`.  ``Order.total`` is
``proceeds.grandTotal`` — what the seller receives, not what the buyer paid — so
``total_is_proceeds`` is set.

Buyer and recipient data need restricted roles.  When Amazon refuses them (403 on
a request that asked for BUYER/RECIPIENT while the same request without them
works) or simply leaves them out, orders are read without PII and
:attr:`AmazonMarketplace.pii_note` says so (also reported once to health).
"""

from __future__ import annotations

import functools
import json
import platform as host_platform
import random
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

import anyio.to_thread
import httpx

from tf_console import __version__
from tf_console.clock import Clock
from tf_console.errors import UserError
from tf_console.marketplaces.auth import OAuthRefreshProvider, TokenGrant
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
from tf_console.marketplaces.ratelimit import BucketSpec, RateLimiter, RateUpdate
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

if TYPE_CHECKING:
    from tf_console.vault import TokenVault

PLATFORM = Platform.AMAZON
SELLER_VARIABLE = "AMAZON_SELLER_ID"
REFRESH_VARIABLE = "AMAZON_REFRESH_TOKEN"
CLIENT_ID_VARIABLE = "AMAZON_CLIENT_ID"
CLIENT_SECRET_VARIABLE = "AMAZON_CLIENT_SECRET"
#: name under which the current LWA access token is cached in the token vault
ACCESS_TOKEN_CACHE = "AMAZON_ACCESS_TOKEN_CACHE"

SEARCH_PATH = "/orders/2026-01-01/orders"
ORDER_PATH = "/orders/2026-01-01/orders/{order_id}"
CONFIRM_PATH = "/orders/v0/orders/{order_id}/shipmentConfirmation"
LISTING_PATH = "/listings/2021-08-01/items/{seller_id}/{sku}"
FBA_SUMMARIES_PATH = "/fba/inventory/v1/summaries"
PARTICIPATIONS_PATH = "/sellers/v1/marketplaceParticipations"
MESSAGING_ACTIONS_PATH = "/messaging/v1/orders/{order_id}"
MESSAGE_PATH = "/messaging/v1/orders/{order_id}/messages/{message_type}"

# Messaging API message types (the model's path segments) and their text limits.
UNEXPECTED_PROBLEM = "unexpectedProblem"
CONFIRM_CUSTOMIZATION = "confirmCustomizationDetails"
MESSAGE_TEXT_LIMITS: dict[str, int] = {UNEXPECTED_PROBLEM: 2000, CONFIRM_CUSTOMIZATION: 800}

PAGE_SIZE = 100
#: ``*Before`` filters must be at least two minutes in the past; a little more absorbs clock skew.
BEFORE_MARGIN = timedelta(minutes=2, seconds=10)
#: an LWA token is used until this long before it expires
TOKEN_MARGIN = timedelta(seconds=60)
#: after Amazon refused restricted data, ask for it again only this much later
PII_RETRY_AFTER = timedelta(hours=6)
FBA_SKUS_PER_CALL = 50

PII_DATASETS: tuple[str, ...] = ("BUYER", "RECIPIENT")
ORDER_DATASETS: tuple[str, ...] = ("FULFILLMENT", "PROCEEDS", "PACKAGES", "CANCELLATION")

# Published usage plans (rate per second, burst) from the model files; Amazon may raise them
# per seller, which ``x-amzn-RateLimit-Limit`` then tells us.
AMAZON_OPERATIONS: dict[str, BucketSpec] = {
    "token": BucketSpec(1.0, 5),  # LWA publishes no limit; a token is needed about once an hour
    "orders.search": BucketSpec(0.0056, 20),
    "orders.get": BucketSpec(0.5, 30),
    "shipment.confirm": BucketSpec(2.0, 10),
    "listings.get": BucketSpec(5.0, 10),
    "listings.patch": BucketSpec(5.0, 5),
    "inventory.summaries": BucketSpec(2.0, 2),
    "sellers.participations": BucketSpec(0.016, 15),  # Sellers API getMarketplaceParticipations
    "messaging.actions": BucketSpec(1.0, 5),
    f"messaging.{UNEXPECTED_PROBLEM}": BucketSpec(1.0, 5),
    f"messaging.{CONFIRM_CUSTOMIZATION}": BucketSpec(1.0, 5),
}

_STATUSES: dict[str, OrderStatus] = {
    "PENDING_AVAILABILITY": OrderStatus.PENDING,
    "PENDING": OrderStatus.PENDING,
    "UNSHIPPED": OrderStatus.UNSHIPPED,
    "UNFULFILLABLE": OrderStatus.UNSHIPPED,
    "PARTIALLY_SHIPPED": OrderStatus.PARTIALLY_SHIPPED,
    "SHIPPED": OrderStatus.SHIPPED,
    "CANCELLED": OrderStatus.CANCELLED,
}
_ADDRESS_EXPECTED = frozenset({"UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"})

T = TypeVar("T")


# ---------------------------------------------------------------------------
# Hooks for ApiClient


def amazon_auth_headers(token: str) -> dict[str, str]:
    return {"x-amz-access-token": token}


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class AmazonErrorInfo:
    code: str
    message: str
    details: str


def error_info(content: bytes) -> AmazonErrorInfo | None:
    """The first error of an SP-API ``{"errors": [{code, message, details?}]}`` body."""
    body = _json(content)
    if not isinstance(body, dict):
        return None
    errors = body.get("errors")
    if not isinstance(errors, list) or not errors or not isinstance(errors[0], dict):
        return None
    first = errors[0]
    return AmazonErrorInfo(
        code=str(first.get("code") or ""),
        message=str(first.get("message") or "").strip().rstrip("."),
        details=str(first.get("details") or "").strip().rstrip("."),
    )


def _amazon_words(info: AmazonErrorInfo | None, status: int, request_id: str) -> str:
    said = ""
    if info is not None:
        said = info.message
        if info.details and info.details != info.message:
            said = f"{said} — {info.details}" if said else info.details
    facts = [part for part in ((info.code if info else ""), f"HTTP {status}") if part]
    if request_id:
        facts.append(f"request id {request_id}")
    return f"{said or 'no reason given'} ({', '.join(facts)})"


def classify(response: httpx.Response) -> MarketplaceError | None:
    """SP-API answers → our errors; every sentence quotes Amazon's words and the request id."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    info = error_info(response.content)
    request_id = response.headers.get("x-amzn-requestid", "")
    words = _amazon_words(info, status, request_id)
    code = info.code if info and info.code else str(status)
    if status in (401, 403):
        # 403 Unauthorized is also how an expired access token is answered: the client
        # refreshes once and retries; only a second refusal reaches the owner.
        return ReauthNeeded(
            f"Amazon refused access even with a fresh token: {words}. Authorise the app again in "
            f"Seller Central and set the new token with `tf-console creds set {REFRESH_VARIABLE}`.",
            variable=REFRESH_VARIABLE,
            code=code,
            status=status,
            request_id=request_id,
        )
    if status == 429:
        return RateLimited(
            f"Amazon is throttling these calls: {words}; they are retried after a pause.",
            code=code,
            status=status,
            request_id=request_id,
        )
    if status >= 500:
        return TransientError(
            f"Amazon had a server problem: {words}; it is retried later.",
            code=code,
            status=status,
            request_id=request_id,
        )
    return PermanentError(
        f"Amazon refused the request: {words}.", code=code, status=status, request_id=request_id
    )


def rate_headers(operation: str, headers: httpx.Headers) -> RateUpdate | None:
    """``x-amzn-RateLimit-Limit`` (requests per second) when present — never on 429 or auth errors."""
    raw = headers.get("x-amzn-ratelimit-limit")
    if not raw:
        return None
    try:
        rate = float(raw.strip())
    except ValueError:
        return None
    if not rate > 0:
        return None
    return RateUpdate(rate=rate)


# ---------------------------------------------------------------------------
# Wire helpers


def iso(when: datetime) -> str:
    """UTC with milliseconds and ``Z`` (no ``+`` that would need %2B in a query string)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value.strip():
        raise MalformedResponse(f"its {what} is missing")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise MalformedResponse(f"its {what} {value!r} is not an ISO 8601 time") from exc
    if parsed.tzinfo is None:
        raise MalformedResponse(f"its {what} has no time zone")
    return parsed.astimezone(UTC)


def _optional_time(value: Any, what: str) -> datetime | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _time(value, what)


def _money(value: Any, what: str) -> Money | None:
    """An SP-API ``Money`` ``{amount: "12.50", currencyCode}``; None when absent (pending orders)."""
    if not isinstance(value, dict) or value.get("amount") in (None, ""):
        return None
    amount, currency = value.get("amount"), _text(value.get("currencyCode"))
    if isinstance(amount, float):  # keep exactness: never go through binary floating point
        amount = repr(amount)
    try:
        return Money(amount=Decimal(str(amount)), currency=currency)
    except (InvalidOperation, ValueError) as exc:
        raise MalformedResponse(f"its {what} {amount!r} {currency!r} is not an amount of money") from exc


def _int(value: Any, what: str, default: int | None = None) -> int:
    if value is None and default is not None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise MalformedResponse(f"its {what} is missing or not a whole number")
    try:
        number = int(value)
    except ValueError as exc:
        raise MalformedResponse(f"its {what} {value!r} is not a whole number") from exc
    if number < 0:
        raise MalformedResponse(f"its {what} is negative")
    return number


# ---------------------------------------------------------------------------
# Orders (2026-01-01)


def _address(order: dict[str, Any]) -> Address | None:
    buyer = _obj(order.get("buyer"))
    delivery = _obj(_obj(order.get("recipient")).get("deliveryAddress"))
    name = _text(delivery.get("name")) or _text(buyer.get("buyerName"))
    company = _text(delivery.get("companyName")) or _text(buyer.get("buyerCompanyName"))
    if company and company != name:
        name = f"{name}, {company}" if name else company
    second = ", ".join(
        p for p in (_text(delivery.get("addressLine2")), _text(delivery.get("addressLine3"))) if p
    )
    address = Address(
        name=name,
        email=_text(buyer.get("buyerEmail")),
        phone=_text(delivery.get("phone")),
        line1=_text(delivery.get("addressLine1")),
        line2=second,
        city=_text(delivery.get("city")) or _text(delivery.get("municipality")),
        region=_text(delivery.get("stateOrRegion")) or _text(delivery.get("districtOrCounty")),
        postal_code=_text(delivery.get("postalCode")),
        country=_text(delivery.get("countryCode")).upper(),
    )
    return None if address.is_empty() else address


def has_delivery_address(order: dict[str, Any]) -> bool:
    delivery = _obj(_obj(order.get("recipient")).get("deliveryAddress"))
    return bool(_text(delivery.get("addressLine1")) or _text(delivery.get("name")))


def _line(item: Any, position: int) -> LineItem:
    if not isinstance(item, dict):
        raise MalformedResponse(f"its item {position} is not an object")
    line_id = _text(item.get("orderItemId"))
    if not line_id:
        raise MalformedResponse(f"its item {position} has no orderItemId")
    product = _obj(item.get("product"))
    quantity = _int(item.get("quantityOrdered"), f"item {line_id} quantity")
    fulfilment = _obj(item.get("fulfillment"))
    shipped = _int(fulfilment.get("quantityFulfilled"), f"item {line_id} quantity fulfilled", default=0)
    customised = _text(_obj(product.get("customization")).get("customizedUrl"))
    return LineItem(
        line_id=line_id,
        sku=_text(product.get("sellerSku")),
        title=_text(product.get("title")),
        quantity=quantity,
        quantity_shipped=min(quantity, shipped),
        # unitPrice is per unit (v0's ItemPrice was the whole line); absent while the order is pending.
        unit_price=_money(_obj(product.get("price")).get("unitPrice"), f"item {line_id} price"),
        listing_id=_text(product.get("asin")),
        personalisation=f"Amazon Custom design: {customised}" if customised else "",
    )


def _cancel_requested(order: dict[str, Any], status: OrderStatus) -> bool:
    if not status.is_open:
        return False
    for item in _list(order.get("orderItems")):
        cancellation = _obj(_obj(item).get("cancellation"))
        if cancellation.get("cancellationRequest") and not cancellation.get("cancellationExecution"):
            return True
    return False


def _active_packages(order: dict[str, Any]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for package in _list(order.get("packages")):
        package = _obj(package)
        if _text(_obj(package.get("packageStatus")).get("status")).upper() == "CANCELLED":
            continue  # a cancelled label is not a shipment the buyer can track
        found.append(package)
    return found


def parse_order(data: Any, redactor: Redactor = REDACTOR) -> Order:
    """One 2026-01-01 ``Order`` → :class:`Order`; raises MalformedResponse (a sentence fragment)."""
    if not isinstance(data, dict) or not _text(data.get("orderId")):
        raise MalformedResponse("an order without an orderId")
    order_id = _text(data["orderId"])
    try:
        fulfilment = _obj(data.get("fulfillment"))
        raw_status = _text(fulfilment.get("fulfillmentStatus")).upper()
        if not raw_status:
            raise MalformedResponse("it has no fulfillment status")
        status = _STATUSES.get(raw_status)
        if status is None:
            raise MalformedResponse(f"its fulfillment status {raw_status!r} is unknown")
        items = [_line(item, n) for n, item in enumerate(_list(data.get("orderItems")), start=1)]
        total = _money(_obj(data.get("proceeds")).get("grandTotal"), "proceeds")
        currency = (
            total.currency if total else next((i.unit_price.currency for i in items if i.unit_price), "")
        )
        buyer = _address(data)
        if buyer is not None:
            redactor.register_pii([buyer.name, buyer.email, buyer.phone, buyer.line1])
        channel = _obj(data.get("salesChannel"))
        extra: dict[str, str] = {}
        if _text(channel.get("marketplaceId")):
            extra["marketplace_id"] = _text(channel["marketplaceId"])
        if _text(fulfilment.get("fulfillmentServiceLevel")):
            extra["service_level"] = _text(fulfilment["fulfillmentServiceLevel"])
        programs = [p for p in _list(data.get("programs")) if isinstance(p, str)]
        if programs:
            extra["programs"] = ",".join(programs)
        if raw_status == "UNFULFILLABLE":
            extra["unfulfillable"] = "Amazon reports it cannot fulfil this order"
        packages = _active_packages(data)
        return Order(
            platform=PLATFORM,
            order_id=order_id,
            status=status,
            raw_status=raw_status,
            created_at=_time(data.get("createdTime"), "createdTime"),
            updated_at=_time(data.get("lastUpdatedTime"), "lastUpdatedTime"),
            ship_by=_optional_time(
                _obj(fulfilment.get("shipByWindow")).get("latestDateTime"), "ship-by time"
            ),
            currency=currency,
            total=total,
            total_is_proceeds=True,
            items=items,
            buyer=buyer,
            fulfilled_by=FulfilledBy.MARKETPLACE
            if _text(fulfilment.get("fulfilledBy")).upper() == "AMAZON"
            else FulfilledBy.MERCHANT,
            cancel_requested=_cancel_requested(data, status),
            marketplace_tracking=[t for p in packages if (t := _text(p.get("trackingNumber")))],
            extra=extra,
        )
    except MalformedResponse as exc:
        raise MalformedResponse(f"order {order_id}: {exc}") from exc
    except ValueError as exc:  # pydantic validation of the assembled order
        raise MalformedResponse(f"order {order_id} has values out of range ({type(exc).__name__})") from exc


@dataclass(slots=True)
class SearchPage:
    orders: list[Order]
    errors: list[str]
    next_token: str | None
    #: merchant-fulfilled orders that should carry a delivery address: without / with one
    missing_addresses: int = 0
    present_addresses: int = 0


def address_expected(raw: dict[str, Any]) -> bool:
    """Amazon gives the delivery address of merchant-fulfilled orders that are ready to ship or shipped."""
    fulfilment = _obj(raw.get("fulfillment"))
    return (
        _text(fulfilment.get("fulfilledBy")).upper() != "AMAZON"
        and _text(fulfilment.get("fulfillmentStatus")).upper() in _ADDRESS_EXPECTED
    )


def parse_search_page(content: bytes, redactor: Redactor = REDACTOR) -> SearchPage:
    body = _json(content)
    if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
        raise MalformedResponse(
            "Amazon's answer to the order search could not be read (no order list); the next poll retries.",
            code="malformed",
        )
    orders: list[Order] = []
    errors: list[str] = []
    missing = present = 0
    for raw in body["orders"]:
        try:
            orders.append(parse_order(raw, redactor))
        except MalformedResponse as exc:
            errors.append(f"An Amazon order could not be read: {exc}.")
            continue
        if address_expected(raw):
            if has_delivery_address(raw):
                present += 1
            else:
                missing += 1
    token = _obj(body.get("pagination")).get("nextToken")
    return SearchPage(orders, errors, token if isinstance(token, str) and token else None, missing, present)


def parse_get_order(content: bytes, redactor: Redactor = REDACTOR) -> tuple[Order, bool | None]:
    """``{"order": {...}}`` → (order, whether it came with its delivery address; None: not expected)."""
    body = _json(content)
    if not isinstance(body, dict) or not isinstance(body.get("order"), dict):
        raise MalformedResponse(
            "Amazon's answer to an order lookup could not be read (no order).", code="malformed"
        )
    raw = body["order"]
    return parse_order(raw, redactor), has_delivery_address(raw) if address_expected(raw) else None


# ---------------------------------------------------------------------------
# Shipment confirmation (v0)


def confirm_shipment_body(order: Order, shipment: Shipment, marketplace_id: str) -> dict[str, Any]:
    """The ``ConfirmShipmentRequest`` for ``shipment``; raises PermanentError for what Amazon
    would refuse anyway (a package reference that is not a positive number, no lines)."""
    reference = shipment.shipment_id.strip()
    if not reference.isdigit() or int(reference) <= 0:
        raise PermanentError(
            f"Amazon needs a positive number as the package reference of order {order.order_id}, "
            f"not {reference!r}; nothing was sent.",
            code="bad_package_reference",
        )
    lines = [(ln.line_id, ln.quantity) for ln in shipment.lines] or [
        (item.line_id, item.quantity_unshipped) for item in order.items if item.quantity_unshipped > 0
    ]
    if not lines:
        raise PermanentError(
            f"Amazon order {order.order_id} has nothing left to ship; nothing was sent.",
            code="nothing_to_ship",
        )
    carrier = shipment.carrier.strip()
    detail: dict[str, Any] = {"packageReferenceId": str(int(reference))}
    if not carrier or carrier.lower() == "other":
        name = shipment.carrier_name.strip() or carrier
        if not name or name.lower() == "other":
            raise PermanentError(
                f"Amazon needs the carrier's name when the carrier is 'Other' (order {order.order_id}); "
                "nothing was sent.",
                code="carrier_name_required",
            )
        detail["carrierCode"] = "Other"
        detail["carrierName"] = name
    else:
        detail["carrierCode"] = carrier
    detail["trackingNumber"] = shipment.tracking.strip()
    detail["shipDate"] = iso(shipment.shipped_at)
    detail["orderItems"] = [{"orderItemId": line_id, "quantity": quantity} for line_id, quantity in lines]
    return {"marketplaceId": marketplace_id, "packageDetail": detail}


# ---------------------------------------------------------------------------
# Listings and FBA inventory


@dataclass(frozen=True, slots=True)
class ListingInfo:
    """What ``getListingsItem`` told about a SKU, as far as stock is concerned."""

    sku: str
    product_type: str
    asin: str = ""
    #: ``attributes.fulfillment_availability`` entries exactly as Amazon holds them
    availability: tuple[dict[str, Any], ...] = ()
    #: ``fulfillmentChannelCode`` → quantity from ``fulfillmentAvailability``
    channels: dict[str, int | None] = field(default_factory=dict)

    @property
    def fulfilled_by_amazon(self) -> bool:
        codes = set(self.channels) | {
            _text(entry.get("fulfillment_channel_code")) for entry in self.availability
        }
        return any(code.upper().startswith("AMAZON") for code in codes)

    @property
    def merchant_quantity(self) -> int | None:
        if "DEFAULT" in self.channels:
            return self.channels["DEFAULT"]
        for entry in self.availability:
            if _text(entry.get("fulfillment_channel_code")) == "DEFAULT" and isinstance(
                entry.get("quantity"), int
            ):
                return int(entry["quantity"])
        return None


def parse_listing(content: bytes, sku: str, marketplace_ids: Sequence[str] = ()) -> ListingInfo:
    body = _json(content)
    if not isinstance(body, dict):
        raise MalformedResponse(f"Amazon's listing answer for SKU {sku} is not JSON.", code="malformed")
    summaries = [_obj(s) for s in _list(body.get("summaries"))]
    wanted = [s for s in summaries if _text(s.get("marketplaceId")) in marketplace_ids] or summaries
    product_type = next((_text(s.get("productType")) for s in wanted if _text(s.get("productType"))), "")
    asin = next((_text(s.get("asin")) for s in wanted if _text(s.get("asin"))), "")
    attributes = _obj(body.get("attributes"))
    availability = tuple(
        _obj(e) for e in _list(attributes.get("fulfillment_availability")) if isinstance(e, dict)
    )
    channels: dict[str, int | None] = {}
    for entry in _list(body.get("fulfillmentAvailability")):
        entry = _obj(entry)
        code = _text(entry.get("fulfillmentChannelCode"))
        if code:
            quantity = entry.get("quantity")
            channels[code] = int(quantity) if isinstance(quantity, int) else None
    return ListingInfo(
        sku=_text(body.get("sku")) or sku,
        product_type=product_type,
        asin=asin,
        availability=availability,
        channels=channels,
    )


def fulfillment_availability_value(listing: ListingInfo, quantity: int) -> list[dict[str, Any]]:
    """The new ``fulfillment_availability`` for a ``replace``: the merchant (DEFAULT) entry with
    the new quantity and every other key it had (a replace drops what is not re-sent, e.g.
    ``lead_time_to_ship_max_days``), other entries unchanged."""
    current = [dict(entry) for entry in listing.availability]
    default = next((e for e in current if _text(e.get("fulfillment_channel_code")) == "DEFAULT"), None)
    kept = {k: v for k, v in (default or {}).items() if k not in ("fulfillment_channel_code", "quantity")}
    merchant = {"fulfillment_channel_code": "DEFAULT", "quantity": quantity, **kept}
    others = [e for e in current if e is not default]
    return [merchant, *others]


def patch_body(listing: ListingInfo, quantity: int) -> dict[str, Any]:
    return {
        "productType": listing.product_type,
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": fulfillment_availability_value(listing, quantity),
            }
        ],
    }


def parse_submission(content: bytes, sku: str, quantity: int) -> PushResult:
    body = _json(content)
    if not isinstance(body, dict) or not isinstance(body.get("status"), str):
        raise MalformedResponse(f"Amazon's answer to the stock update of SKU {sku} has no status.")
    status = body["status"].upper()
    issues = [_obj(i) for i in _list(body.get("issues"))]
    said = "; ".join(
        f"{_text(i.get('severity')) or 'ISSUE'} {_text(i.get('code'))}: {_text(i.get('message')).rstrip('.')}"
        for i in issues
    )
    if status == "ACCEPTED":
        submission = _text(body.get("submissionId"))
        answer = (
            f"Amazon accepted quantity {quantity} for SKU {sku} (submission {submission}); "
            "it shows on Amazon within minutes and is read back before it counts as applied."
        )
        return PushResult(PushState.QUEUED, answer=f"{answer} Amazon noted: {said}." if said else answer)
    if status == "INVALID":
        return PushResult(
            PushState.REJECTED,
            answer=f"Amazon refused quantity {quantity} for SKU {sku}: {said or 'no reason given'}.",
        )
    raise MalformedResponse(f"Amazon answered the stock update of SKU {sku} with status {status!r}.")


@dataclass(frozen=True, slots=True)
class FbaStock:
    """Amazon-held (FBA) stock of one SKU in one marketplace; read only, never written."""

    sku: str
    asin: str
    product_name: str
    fulfillable: int
    inbound: int
    reserved: int
    unfulfillable: int
    researching: int
    total: int
    updated_at: datetime | None


def _count(value: Any) -> int:
    return int(value) if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _total_of(data: dict[str, Any], key: str, total_key: str) -> int:
    return _count(_obj(data.get(key)).get(total_key))


@dataclass(slots=True)
class FbaPage:
    stock: list[FbaStock]
    next_token: str | None


def parse_fba_page(content: bytes) -> FbaPage:
    body = _json(content)
    payload = _obj(body.get("payload")) if isinstance(body, dict) else {}
    if not isinstance(payload.get("inventorySummaries"), list):
        raise MalformedResponse("Amazon's FBA inventory answer has no inventory summaries.", code="malformed")
    stock: list[FbaStock] = []
    for raw in payload["inventorySummaries"]:
        raw = _obj(raw)
        sku = _text(raw.get("sellerSku"))
        if not sku:
            continue
        details = _obj(raw.get("inventoryDetails"))
        stock.append(
            FbaStock(
                sku=sku,
                asin=_text(raw.get("asin")),
                product_name=_text(raw.get("productName")),
                fulfillable=_count(details.get("fulfillableQuantity")),
                inbound=sum(
                    _count(details.get(key))
                    for key in (
                        "inboundWorkingQuantity",
                        "inboundShippedQuantity",
                        "inboundReceivingQuantity",
                    )
                ),
                reserved=_total_of(details, "reservedQuantity", "totalReservedQuantity"),
                unfulfillable=_total_of(details, "unfulfillableQuantity", "totalUnfulfillableQuantity"),
                researching=_total_of(details, "researchingQuantity", "totalResearchingQuantity"),
                total=_count(raw.get("totalQuantity")),
                updated_at=_optional_time(raw.get("lastUpdatedTime"), "lastUpdatedTime"),
            )
        )
    # ``pagination`` is a sibling of ``payload`` in this API.
    token = _obj(body.get("pagination")).get("nextToken") if isinstance(body, dict) else None
    return FbaPage(stock, token if isinstance(token, str) and token else None)


@dataclass(frozen=True, slots=True)
class Participation:
    marketplace_id: str
    country: str
    name: str
    participating: bool


def parse_participations(content: bytes) -> list[Participation]:
    body = _json(content)
    payload = body.get("payload") if isinstance(body, dict) else None
    if not isinstance(payload, list):
        raise MalformedResponse("Amazon did not say which marketplaces the seller account sells in.")
    found: list[Participation] = []
    for entry in payload:
        marketplace = _obj(_obj(entry).get("marketplace"))
        participation = _obj(_obj(entry).get("participation"))
        if _text(marketplace.get("id")):
            found.append(
                Participation(
                    marketplace_id=_text(marketplace["id"]),
                    country=_text(marketplace.get("countryCode")),
                    name=_text(marketplace.get("name")),
                    participating=participation.get("isParticipating") is not False,
                )
            )
    return found


# ---------------------------------------------------------------------------
# Messaging

_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")
_EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


def message_text_problem(message_type: str, text: str) -> str:
    """Why Amazon would refuse ``text`` as a ``message_type`` message ("" when it is acceptable):
    1 to 2,000 characters (800 for a customization check), no HTML and no e-mail address."""
    limit = MESSAGE_TEXT_LIMITS.get(message_type)
    if limit is None:
        return f"{message_type} is not a message type this console sends on Amazon."
    if not text.strip():
        return "the message is empty"
    if len(text) > limit:
        return f"the message has {len(text)} characters; Amazon takes at most {limit}"
    if _HTML_TAG.search(text):
        return "the message contains HTML, which Amazon refuses"
    if _EMAIL_ADDRESS.search(text):
        return "the message contains an e-mail address, which Amazon refuses"
    return ""


def parse_messaging_actions(content: bytes) -> frozenset[str]:
    """The names under ``_links.actions`` of a ``getMessagingActionsForOrder`` answer."""
    body = _json(content)
    links = body.get("_links") if isinstance(body, dict) else None
    actions = links.get("actions") if isinstance(links, dict) else None
    if not isinstance(actions, list):
        raise MalformedResponse("Amazon did not list the messaging actions of the order.")
    return frozenset(_text(_obj(action).get("name")) for action in actions if _text(_obj(action).get("name")))


# ---------------------------------------------------------------------------
# The marketplace


def _csv(values: Sequence[str]) -> str:
    return ",".join(values)


class AmazonMarketplace:
    """Amazon through an :class:`ApiClient`; ``api_url`` is the SP-API host (or the sandbox)."""

    platform = PLATFORM
    #: searchOrders returns orders of the last two years
    max_backfill_days: int | None = 730
    #: searchOrders refills one call every ~180 s; polling faster only queues behind the limiter
    min_poll_interval = 180.0

    def __init__(
        self,
        client: ApiClient,
        *,
        api_url: str,
        seller_id: str,
        marketplace_ids: Sequence[str],
        page_size: int = PAGE_SIZE,
        redactor: Redactor = REDACTOR,
    ) -> None:
        if not marketplace_ids:
            raise NotConfigured(
                "Amazon needs at least one marketplace id; set AMAZON_MARKETPLACE_IDS.", platform=PLATFORM
            )
        self.client = client
        self.api_url = api_url.rstrip("/")
        self.seller_id = seller_id
        self.marketplace_ids = tuple(marketplace_ids)
        self.page_size = max(1, min(PAGE_SIZE, page_size))
        self._redactor = redactor
        self._pii_refused_at: datetime | None = None
        self._pii_note = ""

    # -- restricted data -------------------------------------------------------------

    @property
    def pii_note(self) -> str:
        """A sentence when Amazon withholds buyer names and addresses ("" when it sends them)."""
        return self._pii_note

    def _set_pii_note(self, operation: str, sentence: str) -> None:
        if sentence and sentence != self._pii_note:
            self.client.report_warning(operation, sentence)
        self._pii_note = sentence

    def _ask_for_pii(self) -> bool:
        refused = self._pii_refused_at
        return refused is None or self.client.clock.now() - refused >= PII_RETRY_AFTER

    def _included_data(self, with_pii: bool) -> str:
        return _csv((*ORDER_DATASETS, *PII_DATASETS) if with_pii else ORDER_DATASETS)

    async def _with_pii_fallback(self, operation: str, call: Callable[[bool], Awaitable[T]]) -> T:
        """Run ``call(with_pii)``; when a request asking for BUYER/RECIPIENT is refused with 403
        but the same request without them works, the role is missing: carry on without PII."""
        with_pii = self._ask_for_pii()
        try:
            return await call(with_pii)
        except ReauthNeeded as exc:
            # Only an SP-API 403 can mean "role missing"; a refused LWA refresh (400/401) cannot.
            if not with_pii or exc.status != 403:
                raise
            result = await call(False)
        self._pii_refused_at = self.client.clock.now()
        self._set_pii_note(
            operation,
            "Amazon refused buyer and address data (the app lacks the restricted Direct-to-Consumer "
            "Shipping role), so Amazon orders show no buyer name or address; print packing slips in "
            "Seller Central, or have the role granted and authorise the app again.",
        )
        return result

    def _note_addresses(self, operation: str, with_pii: bool, missing: int, present: int) -> None:
        """After a request that asked for BUYER/RECIPIENT: say so when addresses were left out, and
        withdraw the note once they arrive again (pages with neither change nothing)."""
        if not with_pii:
            return
        if missing:
            self._set_pii_note(
                operation,
                "Amazon sends merchant-fulfilled orders without the delivery address (the app is not "
                "granted restricted buyer data), so they show no buyer address; use Seller Central's "
                "packing slips, or have the restricted role granted.",
            )
        elif present:
            self._pii_note = ""

    # -- orders ------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.api_url}{path}"

    async def fetch_orders(
        self, since: datetime, *, until: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        filters: list[tuple[str, str | int]] = [("lastUpdatedAfter", iso(since))]
        latest_allowed = self.client.clock.now() - BEFORE_MARGIN
        if until is not None and since <= min(until, latest_allowed):
            filters.append(("lastUpdatedBefore", iso(min(until, latest_allowed))))
        filters.append(("marketplaceIds", _csv(self.marketplace_ids)))
        filters.append(("maxResultsPerPage", self.page_size))
        token: str | None = None
        page_number = 0
        while True:
            page_number += 1
            params = [*filters, ("paginationToken", token)] if token else list(filters)
            page = await self._with_pii_fallback("orders.search", functools.partial(self._search, params))
            for error in page.errors:
                self.client.report_error("orders.search", error)
            orders = page.orders
            if until is not None:
                orders = [o for o in orders if o.updated_at <= until]
            yield OrderPage(orders=orders, errors=page.errors, page_number=page_number)
            if page.next_token is not None and page.next_token == token:
                raise MalformedResponse(
                    "Amazon answered the order search with the same page token twice; the search stopped "
                    "there and is repeated at the next poll.",
                    platform=PLATFORM,
                    code="repeated_token",
                )
            token = page.next_token
            if not token:
                return

    async def _search(self, params: Sequence[tuple[str, str | int]], with_pii: bool) -> SearchPage:
        page = await self.client.request_parsed(
            "orders.search",
            "GET",
            self._url(SEARCH_PATH),
            params=[*params, ("includedData", self._included_data(with_pii))],
            idempotent=True,
            parse=lambda r: parse_search_page(r.content, self._redactor),
        )
        self._note_addresses("orders.search", with_pii, page.missing_addresses, page.present_addresses)
        return page

    async def _get_order(self, order_id: str) -> Order | None:
        async def get(with_pii: bool) -> Order:
            order, with_address = await self.client.request_parsed(
                "orders.get",
                "GET",
                self._url(ORDER_PATH.format(order_id=quote(order_id, safe=""))),
                params=[("includedData", self._included_data(with_pii))],
                idempotent=True,
                parse=lambda r: parse_get_order(r.content, self._redactor),
            )
            self._note_addresses("orders.get", with_pii, int(with_address is False), int(bool(with_address)))
            return order

        try:
            return await self._with_pii_fallback("orders.get", get)
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    async def fetch_orders_by_id(self, order_ids: Sequence[str]) -> list[Order]:
        found: list[Order] = []
        for order_id in order_ids:
            order = await self._get_order(order_id)
            if order is not None:
                found.append(order)
        return found

    # -- shipments ------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, shipment: Shipment) -> ShipmentResult:
        if order.fulfilled_by is FulfilledBy.MARKETPLACE:
            return ShipmentResult(
                ConfirmState.REJECTED,
                answer=f"Amazon order {order.order_id} is fulfilled by Amazon (FBA); nothing was sent.",
            )
        marketplace_id = order.extra.get("marketplace_id") or self.marketplace_ids[0]
        try:
            body = confirm_shipment_body(order, shipment, marketplace_id)
        except PermanentError as exc:
            return ShipmentResult(ConfirmState.REJECTED, answer=exc.sentence)
        try:
            response = await self.client.request(
                "shipment.confirm",
                "POST",
                self._url(CONFIRM_PATH.format(order_id=quote(order.order_id, safe=""))),
                json=body,
                idempotent=False,
                ok_statuses=frozenset({200, 204}),
            )
        except PermanentError as exc:
            return ShipmentResult(
                ConfirmState.REJECTED,
                answer=f"Amazon refused the shipment of order {order.order_id}: {exc.sentence}",
                request_id=exc.request_id,
            )
        return ShipmentResult(
            ConfirmState.CONFIRMED,
            answer=f"Amazon accepted the shipment confirmation (tracking {shipment.tracking}).",
            request_id=response.headers.get("x-amzn-requestid", ""),
        )

    async def read_shipments(self, order: Order) -> RemoteShipments:
        remote = await self._get_order(order.order_id)
        if remote is None:
            return RemoteShipments(order_found=False)
        return RemoteShipments(
            order_found=True,
            tracking_numbers=list(remote.marketplace_tracking),
            shipped=remote.status is OrderStatus.SHIPPED,
            order=remote,
        )

    # -- inventory ------------------------------------------------------------------------

    def _listing_url(self, sku: str) -> str:
        return self._url(
            LISTING_PATH.format(seller_id=quote(self.seller_id, safe=""), sku=quote(sku, safe=""))
        )

    async def listing(self, sku: str, *, fresh: bool = False) -> ListingInfo | None:
        """The listing of ``sku`` (product type, channels, fulfillment attribute); None when
        Amazon has no listing with that SKU.  Cached for MARKETPLACE_CACHE_TTL unless ``fresh``."""
        try:
            return await self.client.request_parsed(
                "listings.get",
                "GET",
                self._listing_url(sku),
                params=[
                    ("marketplaceIds", _csv(self.marketplace_ids)),
                    ("includedData", "summaries,attributes,fulfillmentAvailability"),
                ],
                idempotent=True,
                cache=not fresh,
                parse=lambda r: parse_listing(r.content, sku, self.marketplace_ids),
            )
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        """Set the merchant-fulfilled quantity of ``sku``; ACCEPTED is :attr:`PushState.QUEUED`
        (read it back with :meth:`confirm_quantity`).  FBA SKUs are never written."""
        if quantity < 0:
            return PushResult(PushState.REJECTED, answer=f"A quantity cannot be negative (SKU {sku}).")
        listing = await self.listing(sku)
        if listing is None:
            return PushResult(PushState.SKIPPED, answer=f"No Amazon listing has SKU {sku}.")
        if listing.fulfilled_by_amazon:
            return PushResult(
                PushState.SKIPPED,
                answer=f"SKU {sku} is fulfilled by Amazon (FBA): Amazon holds that stock, so it is "
                "never set from here.",
            )
        if not listing.product_type:
            return PushResult(
                PushState.REJECTED,
                answer=f"Amazon did not say the product type of SKU {sku}, which a stock update needs.",
            )
        try:
            # An absolute quantity is idempotent: a retry after a lost answer sets the same value.
            return await self.client.request_parsed(
                "listings.patch",
                "PATCH",
                self._listing_url(sku),
                params=[("marketplaceIds", _csv(self.marketplace_ids)), ("includedData", "issues")],
                json=patch_body(listing, quantity),
                idempotent=True,
                parse=lambda r: parse_submission(r.content, sku, quantity),
            )
        except PermanentError as exc:
            return PushResult(
                PushState.REJECTED, answer=f"Amazon refused the stock update of SKU {sku}: {exc}"
            )

    async def confirm_quantity(self, sku: str, quantity: int) -> PushResult:
        """Read back a queued update: APPLIED once Amazon shows ``quantity`` for the merchant channel."""
        listing = await self.listing(sku, fresh=True)
        if listing is None:
            return PushResult(PushState.SKIPPED, answer=f"No Amazon listing has SKU {sku} any more.")
        shown = listing.merchant_quantity
        if shown == quantity:
            return PushResult(PushState.APPLIED, answer=f"Amazon shows quantity {quantity} for SKU {sku}.")
        return PushResult(
            PushState.QUEUED,
            answer=f"Amazon still shows quantity {shown if shown is not None else 'none'} for SKU {sku}, "
            f"not {quantity}; the update is still being processed.",
        )

    async def fba_stock(self, skus: Sequence[str] | None = None) -> dict[str, FbaStock]:
        """Amazon-held (FBA) stock per SKU in the first marketplace; read only."""
        marketplace_id = self.marketplace_ids[0]
        batches: list[list[str] | None] = (
            [list(skus[i : i + FBA_SKUS_PER_CALL]) for i in range(0, len(skus), FBA_SKUS_PER_CALL)]
            if skus
            else [None]
        )
        found: dict[str, FbaStock] = {}
        for batch in batches:
            base: list[tuple[str, str | int]] = [
                ("details", "true"),
                ("granularityType", "Marketplace"),
                ("granularityId", marketplace_id),
                ("marketplaceIds", marketplace_id),
            ]
            if batch:
                base.append(("sellerSkus", _csv(batch)))
            token: str | None = None
            restarted = False
            while True:
                params = [*base, ("nextToken", token)] if token else base
                try:
                    page = await self.client.request_parsed(
                        "inventory.summaries",
                        "GET",
                        self._url(FBA_SUMMARIES_PATH),
                        params=params,
                        idempotent=True,
                        parse=lambda r: parse_fba_page(r.content),
                    )
                except PermanentError as exc:
                    # nextToken lives only 30 s: a stale one is refused; start the listing over once.
                    if token is None or restarted or exc.status != 400:
                        raise
                    restarted, token = True, None
                    continue
                for stock in page.stock:
                    found[stock.sku] = stock
                token = page.next_token
                if not token:
                    break
        return found

    # -- buyer messages ---------------------------------------------------------------------

    async def get_messaging_actions_for_order(
        self, order_id: str, *, marketplace_id: str | None = None
    ) -> frozenset[str]:
        """The message types Amazon allows for ``order_id`` right now (getMessagingActionsForOrder)."""
        return await self.client.request_parsed(
            "messaging.actions",
            "GET",
            self._url(MESSAGING_ACTIONS_PATH.format(order_id=quote(order_id, safe=""))),
            params=[("marketplaceIds", marketplace_id or self.marketplace_ids[0])],
            idempotent=True,
            parse=lambda r: parse_messaging_actions(r.content),
        )

    async def _send_message(
        self, message_type: str, order_id: str, text: str, marketplace_id: str | None
    ) -> str:
        problem = message_text_problem(message_type, text)
        if problem:
            raise PermanentError(
                f"The message for Amazon order {order_id} was not sent: {problem}.", code="bad_message"
            )
        response = await self.client.request(
            f"messaging.{message_type}",
            "POST",
            self._url(MESSAGE_PATH.format(order_id=quote(order_id, safe=""), message_type=message_type)),
            params=[("marketplaceIds", marketplace_id or self.marketplace_ids[0])],
            json={"text": text},
            # A message cannot be read back: a lost answer is OutcomeUnknown, never re-sent here.
            idempotent=False,
            ok_statuses=frozenset({200, 201}),
        )
        return str(response.headers.get("x-amzn-requestid", ""))

    async def create_unexpected_problem(
        self, order_id: str, text: str, *, marketplace_id: str | None = None
    ) -> str:
        """Tell the buyer of ``order_id`` about a problem (a delay); returns Amazon's request id.
        Raises PermanentError (nothing sent) for a text Amazon would refuse."""
        return await self._send_message(UNEXPECTED_PROBLEM, order_id, text, marketplace_id)

    async def create_confirm_customization_details(
        self, order_id: str, text: str, *, marketplace_id: str | None = None
    ) -> str:
        """Ask the buyer of ``order_id`` to confirm the personalisation (confirmCustomizationDetails)."""
        return await self._send_message(CONFIRM_CUSTOMIZATION, order_id, text, marketplace_id)

    # -- credentials ----------------------------------------------------------------------

    async def check_credentials(self) -> CredentialCheck:
        try:
            participations = await self.client.request_parsed(
                "sellers.participations",
                "GET",
                self._url(PARTICIPATIONS_PATH),
                idempotent=True,
                cache=True,
                parse=lambda r: parse_participations(r.content),
            )
        except MarketplaceError as exc:
            return CredentialCheck(ok=False, sentence=exc.sentence)
        selling = {p.marketplace_id: p for p in participations if p.participating}
        seller = f"{self.seller_id[:4]}…" if len(self.seller_id) > 4 else self.seller_id
        details = {
            "seller_id": seller,
            "marketplaces": ", ".join(sorted(selling)) or "none",
        }
        if self.pii_note:
            details["restricted_data"] = self.pii_note
        missing = [m for m in self.marketplace_ids if m not in selling]
        if missing:
            return CredentialCheck(
                ok=False,
                sentence=f"Amazon credentials work (seller {seller}), but the account does not sell in "
                f"marketplace(s) {', '.join(missing)}; fix AMAZON_MARKETPLACE_IDS.",
                details=details,
            )
        named = ", ".join(f"{selling[m].country or selling[m].name or m} ({m})" for m in self.marketplace_ids)
        return CredentialCheck(
            ok=True,
            sentence=f"Amazon credentials work (seller {seller}, marketplace {named}).",
            details=details,
        )

    async def aclose(self) -> None:
        await self.client.aclose()


# ---------------------------------------------------------------------------
# Wiring


def user_agent() -> str:
    python = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    return f"TitanForgeConsole/{__version__} (Language=Python/{python}; Platform={host_platform.system()})"


@dataclass(frozen=True, slots=True)
class AccessTokenCache:
    """Keeps the LWA access token in the token vault, tied to the refresh token it came from
    (a changed AMAZON_REFRESH_TOKEN makes the cached token unusable)."""

    vault: TokenVault
    refresh_token: str = field(repr=False)  # a secret: never in a repr, a log or a crash screen

    def load(self, now: datetime) -> TokenGrant | None:
        try:
            entry = self.vault.entry(ACCESS_TOKEN_CACHE)
            usable = entry is not None and self.vault.persisted_wins(ACCESS_TOKEN_CACHE, self.refresh_token)
        except UserError:
            return None  # a damaged vault only costs a fresh token; doctor reports the vault itself
        if entry is None or not usable or entry.expired(now):
            return None
        return TokenGrant(access_token=entry.value.get_secret_value(), expires_at=entry.expires_at)

    async def save(self, grant: TokenGrant) -> None:
        await anyio.to_thread.run_sync(self._store, grant)

    def _store(self, grant: TokenGrant) -> None:
        self.vault.store(
            ACCESS_TOKEN_CACHE, grant.access_token, env_value=self.refresh_token, expires_at=grant.expires_at
        )


def create_amazon_marketplace(
    *,
    api_url: str,
    lwa_url: str,
    seller_id: str,
    marketplace_ids: Sequence[str],
    client_id: str,
    client_secret: str,
    refresh_token: str,
    clock: Clock,
    rng: random.Random,
    transport: httpx.AsyncBaseTransport | None = None,
    settings: ClientSettings | None = None,
    rate_limit_per_minute: int | None = None,
    rate_scale: float = 1.0,
    token_cache: AccessTokenCache | None = None,
    health_sink: Sink | None = None,
    redactor: Redactor = REDACTOR,
    page_size: int = PAGE_SIZE,
) -> AmazonMarketplace:
    """Wire limiter, health, client and LWA refresh for Amazon (tests call this directly)."""
    limiter = RateLimiter(
        PLATFORM,
        clock,
        operations={name: spec.scaled(rate_scale) for name, spec in AMAZON_OPERATIONS.items()},
        per_minute_cap=rate_limit_per_minute,
    )
    health = HealthRecorder(PLATFORM, clock, sink=health_sink, redactor=redactor)
    client = ApiClient(
        PLATFORM,
        clock=clock,
        rng=rng,
        limiter=limiter,
        health=health,
        hooks=PlatformHooks(
            classify=classify,
            rate_headers=rate_headers,
            auth_headers=amazon_auth_headers,
            request_id_headers=("x-amzn-requestid",),
            credential_variable=REFRESH_VARIABLE,
        ),
        transport=transport,
        settings=settings or ClientSettings(user_agent=user_agent()),
        redactor=redactor,
    )
    initial = token_cache.load(clock.now()) if token_cache is not None else None
    auth = OAuthRefreshProvider(
        client,
        token_url=lwa_url,
        refresh_token=refresh_token,
        client_id=client_id,
        client_secret=client_secret,
        client_auth="body",
        refresh_variable=REFRESH_VARIABLE,
        client_variable=CLIENT_SECRET_VARIABLE,
        on_rotate=token_cache.save if token_cache is not None else None,
        margin=TOKEN_MARGIN,
        initial=initial,
        redactor=redactor,
    )
    client.attach_auth(auth)
    return AmazonMarketplace(
        client,
        api_url=api_url,
        seller_id=seller_id,
        marketplace_ids=marketplace_ids,
        page_size=page_size,
        redactor=redactor,
    )


def client_settings(overrides: Mapping[str, Any], cache_ttl: float) -> ClientSettings:
    fields: dict[str, Any] = {"user_agent": user_agent(), "cache_ttl": float(cache_ttl)}
    fields.update(overrides)
    return ClientSettings(**fields)


def from_deps(deps: PlatformDeps) -> AmazonMarketplace:
    """Build Amazon from the configuration; raises NotConfigured with a sentence when it cannot."""
    settings = deps.settings
    seller_id = settings.value(SELLER_VARIABLE)
    client_id = settings.value(CLIENT_ID_VARIABLE)
    refresh = deps.secret(REFRESH_VARIABLE)
    secret = deps.secret(CLIENT_SECRET_VARIABLE)
    missing = [
        name
        for name, value in (
            (SELLER_VARIABLE, seller_id),
            (REFRESH_VARIABLE, refresh),
            (CLIENT_ID_VARIABLE, client_id),
            (CLIENT_SECRET_VARIABLE, secret),
        )
        if value is None or (isinstance(value, str) and not value.strip())
    ]
    if missing:
        raise NotConfigured(
            f"Amazon is disabled: set {', '.join(missing)} (tf-console creds set NAME).", platform=PLATFORM
        )
    marketplace_ids = tuple(settings.amazon_marketplace_ids or ())
    if not marketplace_ids:
        raise NotConfigured(
            f"Amazon is disabled: set AMAZON_MARKETPLACE_IDS (required for region {settings.amazon_region}).",
            platform=PLATFORM,
        )
    assert seller_id is not None and client_id is not None and refresh is not None and secret is not None
    refresh_token = refresh.get_secret_value()
    token_cache = AccessTokenCache(deps.vault, refresh_token) if deps.vault is not None else None
    return create_amazon_marketplace(
        api_url=settings.amazon_sp_api_url,
        lwa_url=settings.amazon_lwa_url,
        seller_id=seller_id.strip(),
        marketplace_ids=marketplace_ids,
        client_id=client_id.strip(),
        client_secret=secret.get_secret_value(),
        refresh_token=refresh_token,
        clock=deps.clock,
        rng=deps.rng,
        transport=deps.transport,
        settings=client_settings(deps.client_overrides, settings.marketplace_cache_ttl),
        rate_limit_per_minute=settings.marketplace_api_rate_limit,
        rate_scale=deps.rate_scale,
        token_cache=token_cache,
        health_sink=deps.health_sink,
    )
