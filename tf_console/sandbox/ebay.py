"""The eBay Trading API, simulated: the seeded shop rendered in eBay's own XML.

Everything is a POST to ``/ws/api.dll`` (the path of ``EBAY_TRADING_URL``) with the
call named in ``X-EBAY-API-CALL-NAME``; each call is its own sandbox route
(``ebay.GetOrders``, ``ebay.CompleteSale`` …) so faults and counts can target it.
OAuth refreshes go to ``/identity/v1/oauth2/token`` (the path under ``EBAY_API_URL``).

=================================  =====================================================
``GetOrders``                      ``ModTimeFrom``/``ModTimeTo`` (≤ 90 days, none older),
                                   ``CreateTimeFrom``/``To`` or ``NumberOfDays``, or
                                   ``OrderIDArray`` (the only way to see Cancelled orders);
                                   offset paging (``EntriesPerPage`` ≤ 100, ``PageNumber``)
                                   over the live set, now and then with a smaller
                                   ``OrdersPerPage`` than asked
``CompleteSale``                   ``OrderID`` | ``OrderLineItemID`` | ``ItemID`` +
                                   ``TransactionID``; ``Shipped``, ``Shipment/
                                   ShipmentTrackingDetails``, ``ShippedTime``: ships the
                                   order (or line) and bumps its LastModifiedTime; again on
                                   a shipped order it adds the tracking, as eBay does
``GetSellerList``                  ``EndTimeFrom``/``To`` or ``StartTimeFrom``/``To``,
                                   ``IncludeVariations``, paging (≤ 200)
``ReviseInventoryStatus``          ≤ 4 ``InventoryStatus`` (ItemID and/or SKU, Quantity);
                                   250 revisions per listing per day
``GetUser``, ``GeteBayOfficialTime``  the seller, the time
``AddMemberMessageAAQToPartner``   a message to the buyer of an item, within 90 days of
                                   the sale (eBay's own sandbox cannot test it)
=================================  =====================================================

Checks as eBay makes them: the call-name header must match the body's root (error 2),
numeric ``X-EBAY-API-SITEID``/``COMPATIBILITY-LEVEL`` (10012), a valid token —
Auth'n'Auth in ``RequesterCredentials`` or OAuth in ``X-EBAY-API-IAF-TOKEN`` (931
invalid, 932 expired) — and the daily call budget (518).  Business failures are HTTP
200 with ``Ack=Failure``.  Faults in eBay's own shapes: 500 ``text/plain`` "an
internal error occured", 503 HTML, throttling as 429 with ``Retry-After``.  Error codes
our sources do not document for a case use the simulator's own ``21919xxx`` codes.

For crash tests: ``sandbox.faults.inject("slow", route=COMPLETE_SALE_ROUTE, delay=30)``
applies a CompleteSale and then sits on the answer; :attr:`EbaySimulator.completed_sales`
counts the CompleteSale calls that took effect.  :meth:`EbaySimulator.answer_next`
replaces the next answer of a call with any bytes (XML bombs, malformed XML, odd
orders).  :class:`EbayReplaySimulator` serves the conformance files byte for byte.
"""

from __future__ import annotations

import base64
import random
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from tf_console.sandbox.core import (
    BaseSimulator,
    RouteMatch,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    ServerRate,
    TokenAuthority,
    TokenStatus,
)
from tf_console.sandbox.shopgen import (
    CATALOG,
    GenOrder,
    GenProduct,
    GenShipment,
    GenStatus,
    OrderBook,
    ShipError,
    ShopGenerator,
)

_Item = TypeVar("_Item")

NAME = "ebay"
NS = "urn:ebay:apis:eBLBaseComponents"
TRADING_PATH = "/ws/api.dll"
TOKEN_PATH = "/identity/v1/oauth2/token"
XML_TYPE = "text/xml;charset=utf-8"
VERSION = "1349"
BUILD = "E1349_CORE_APISIGNIN_19151597_R1"

DEMO_APP_ID = "TitanFor-tfconsol-SBX-5a1b2c3d4-6e7f8a9b"
DEMO_DEV_ID = "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6"
DEMO_CERT_ID = "SBX-5a1b2c3d4e5f-6a7b-4c8d-9e0f-1a2b"
DEMO_AUTHNAUTH_TOKEN = (
    "AgAAAA**AQAAAA**aAAAAA**tfSandboxDemoToken0001**nY+sHZ2PrBmdj6wVnY+sEZ2PrA2dj6wFk4GhDJKDpwidj6x9nY+seQ=="
)
DEMO_REFRESH_TOKEN = (
    "v^1.1#i^1#r^1#f^0#p^3#I^3#t^Ul4xMF8xOkRFMEQ2MUJDRThBNUEwQUJFQ0YxRkIzMTk2N0VGMEZEXzFfMSNFXjI2MA=="
)
OAUTH_ACCESS_PREFIX = "v^1.1#i^1#p^3#r^0#I^3#f^0#t^H4sI"
SELLER_USER_ID = "titanforge3d"

CALLS: tuple[str, ...] = (
    "GetOrders",
    "CompleteSale",
    "GetSellerList",
    "ReviseInventoryStatus",
    "GetUser",
    "GeteBayOfficialTime",
    "AddMemberMessageAAQToPartner",
)
COMPLETE_SALE_ROUTE = "ebay.CompleteSale"
GET_ORDERS_ROUTE = "ebay.GetOrders"
TOKEN_ROUTE = "ebay.token"
UNSUPPORTED_ROUTE = "ebay.unsupported"

MAX_ORDER_PAGE = 100
MAX_LISTING_PAGE = 200
HISTORY = timedelta(days=90)
# A client's clock may trail a sped-up demo sandbox; windows off by more than this are client bugs.
CLOCK_TOLERANCE = timedelta(days=1)
REVISIONS_PER_LISTING_PER_DAY = 250
MESSAGE_MAX_CHARS = 2000
# No per-second Trading limit is published; the sandbox still protects itself like a server would.
TRADING_RATE = ServerRate(10.0, 20)
TOKEN_RATE = ServerRate(2.0, 10)

# The simulator's own codes, for cases our sources give no eBay code for.
ORDER_NOT_FOUND = "21919301"
ORDER_CANCELLED = "21919302"
ORDER_NOT_PAID = "21919303"
TOO_MANY_STATUSES = "21919304"
NO_SUCH_LISTING = "21919305"
REVISION_LIMIT = "21919306"
MESSAGE_REFUSED = "21919307"

_PACIFIC = ZoneInfo("America/Los_Angeles")
_CURRENCIES = (("USD", 65), ("GBP", 20), ("EUR", 15))
_SITES = {"USD": "US", "GBP": "UK", "EUR": "Germany"}
_COUNTRY_NAMES = {"US": "United States", "GB": "United Kingdom", "DE": "Germany"}


def wire_time(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_wire_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a time needs a UTC offset")
    return value.astimezone(UTC)


def _money(amount: Decimal) -> str:
    text = format(amount, "f")
    return text if "." in text else f"{text}.0"


# ---------------------------------------------------------------------------
# XML building and reading


def _q(tag: str) -> str:
    return f"{{{NS}}}{tag}"


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    # Built without namespace: the root's xmlns puts them in eBay's (ElementTree refuses a
    # default namespace next to unqualified attributes such as currencyID).
    child = ET.SubElement(parent, tag, attributes)
    if text is not None:
        child.text = text
    return child


def _amount(parent: ET.Element, tag: str, amount: Decimal, currency: str) -> ET.Element:
    return _sub(parent, tag, _money(amount), currencyID=currency)


def _find(element: ET.Element, path: str) -> ET.Element | None:
    return element.find("/".join(f"e:{part}" for part in path.split("/")), {"e": NS})


def _findall(element: ET.Element, path: str) -> list[ET.Element]:
    return element.findall("/".join(f"e:{part}" for part in path.split("/")), {"e": NS})


def _text(element: ET.Element, path: str) -> str:
    found = _find(element, path)
    return (found.text or "").strip() if found is not None else ""


def serialise(root: ET.Element) -> bytes:
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return body


@dataclass(frozen=True, slots=True)
class WireError:
    code: str
    short: str
    long: str = ""
    severity: str = "Error"
    classification: str = "RequestError"
    parameters: tuple[str, ...] = ()


def envelope(
    call: str,
    *,
    ack: str = "Success",
    errors: Iterable[WireError] = (),
    now: datetime | None = None,
    fill: Callable[[ET.Element], None] | None = None,
) -> ET.Element:
    """``<{call}Response>`` with Timestamp, Ack, Errors, Version and Build, then the call's fields."""
    root = ET.Element(f"{call}Response", {"xmlns": NS})
    _sub(root, "Timestamp", wire_time(now or datetime.now(UTC)))
    _sub(root, "Ack", ack)
    for error in errors:
        node = _sub(root, "Errors")
        _sub(node, "ShortMessage", error.short)
        _sub(node, "LongMessage", error.long or error.short)
        _sub(node, "ErrorCode", error.code)
        _sub(node, "SeverityCode", error.severity)
        for index, value in enumerate(error.parameters):
            parameter = _sub(node, "ErrorParameters", ParamID=str(index))
            _sub(parameter, "Value", value)
        _sub(node, "ErrorClassification", error.classification)
    _sub(root, "Version", VERSION)
    _sub(root, "Build", BUILD)
    if fill is not None:
        fill(root)
    return root


def xml_response(root: ET.Element, status: int = 200) -> SandboxResponse:
    return SandboxResponse(status, serialise(root), [("Content-Type", XML_TYPE)])


# ---------------------------------------------------------------------------
# Listings


@dataclass(slots=True)
class SimVariation:
    sku: str
    name: str  # the value of its one specific (Color)
    quantity: int
    sold: int = 0


@dataclass(slots=True)
class SimListing:
    item_id: str
    sku: str
    title: str
    price: Decimal
    quantity: int
    start_time: datetime
    end_time: datetime
    listing_type: str = "FixedPriceItem"
    tracking: str = "ItemID"  # InventoryTrackingMethod
    status: str = "Active"
    variations: list[SimVariation] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SentMessage:
    item_id: str
    recipient: str
    subject: str
    body: str
    sent_at: datetime


@dataclass(slots=True)
class _Call:
    """One Trading request being answered."""

    name: str
    request: SandboxRequest
    root: ET.Element
    now: datetime


def ebay_order_id(_rng: random.Random, seq: int) -> str:
    # eBay's current order-id shape (NN-NNNNN-NNNNN); the middle part keeps ids unique.
    return f"{10 + seq % 89:02d}-{10000 + seq % 90000:05d}-{(seq * 7919) % 90000 + 10000:05d}"


def ebay_transaction_id(rng: random.Random, _seq: int) -> str:
    return str(rng.randrange(10**12, 10**13))


class EbaySimulator(BaseSimulator):
    """The eBay Trading API over the seeded shop; ``book`` holds its orders, ``listings`` its items."""

    name = NAME

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        seed: int | None = None,
        orders_per_hour: float = 6.0,
        backfill: int = 80,
        backfill_days: float = 20.0,
        access_ttl: float = 7200.0,
        daily_limit: int = 5000,
        app_id: str = DEMO_APP_ID,
        dev_id: str = DEMO_DEV_ID,
        cert_id: str = DEMO_CERT_ID,
        authnauth_token: str = DEMO_AUTHNAUTH_TOKEN,
        refresh_token: str = DEMO_REFRESH_TOKEN,
        seller: str = SELLER_USER_ID,
        catalog: Iterable[GenProduct] = CATALOG,
    ) -> None:
        self._sandbox = sandbox
        self.seed = sandbox.seed if seed is None else seed
        products = tuple(catalog)
        self.generator = ShopGenerator(
            self.seed,
            catalog=products,
            currencies=_CURRENCIES,
            order_id=ebay_order_id,
            line_id=ebay_transaction_id,
        )
        rng = random.Random(f"ebay-listings:{self.seed}")
        now = sandbox.now()
        self.item_ids: dict[str, str] = {
            p.sku: str(rng.randrange(110_000_000_000, 400_000_000_000)) for p in products
        }
        self.listings: dict[str, SimListing] = {}
        for product in products:
            self._list(product, now, rng)
        self.book = OrderBook(
            self.generator,
            now,
            orders_per_hour=orders_per_hour,
            backfill=backfill,
            backfill_days=backfill_days,
        )
        self.tokens = TokenAuthority(
            sandbox.clock,
            self.generator.rng,
            prefix=OAUTH_ACCESS_PREFIX,
            refresh_tokens=[refresh_token],
            access_ttl=access_ttl,
            rotate_refresh=False,  # eBay's refresh token lasts ~18 months and is not replaced
        )
        self.authority = self.tokens
        self.app_id = app_id
        self.dev_id = dev_id
        self.cert_id = cert_id
        self.refresh_token = refresh_token
        self.authnauth: dict[str, bool] = {authnauth_token: False}  # token -> expired
        self.initial_authnauth = authnauth_token
        self.seller = seller
        self.daily_limit = daily_limit
        self.calls_per_day: Counter[str] = Counter()
        self.revisions: Counter[tuple[str, str]] = Counter()
        self.messages: list[SentMessage] = []
        self.completed_sales: list[tuple[str, str]] = []  # (order id, tracking) of CompleteSale calls applied
        self._canned: dict[str, deque[SandboxResponse]] = {}

    # -- set-up ---------------------------------------------------------------------

    def _list(self, product: GenProduct, now: datetime, rng: random.Random) -> None:
        item_id = self.item_ids[product.sku]
        listing = SimListing(
            item_id=item_id,
            sku=product.sku,
            title=product.title,
            price=product.price_usd,
            quantity=25,
            start_time=now - timedelta(days=rng.randrange(20, 200)),
            end_time=now + timedelta(days=rng.randrange(1, 30)),  # Good 'Til Cancelled: renews monthly
            tracking="SKU" if product.kind == "stock" and product.sku.startswith("STK-PLA") else "ItemID",
            # A shop tracking stock per design gives every colour of a listing the design's SKU.
            variations=[SimVariation(product.sku, name, 25) for name in product.variations],
        )
        if listing.variations:
            listing.quantity = sum(v.quantity for v in listing.variations)
        self.listings[item_id] = listing
        if product.sku == "STK-NOZZLE-04":
            # An auction for the same SKU: no quantity can be set on it.
            auction_id = str(rng.randrange(400_000_000_000, 500_000_000_000))
            self.listings[auction_id] = SimListing(
                item_id=auction_id,
                sku=product.sku,
                title=f"{product.title} (auction)",
                price=product.price_usd,
                quantity=1,
                start_time=now - timedelta(days=2),
                end_time=now + timedelta(days=5),
                listing_type="Chinese",
            )

    def install(self, sandbox: Sandbox) -> None:
        sandbox.route(self, "POST", TOKEN_PATH, self._token, name=TOKEN_ROUTE, rate=TOKEN_RATE)
        handlers: dict[str, Callable[[_Call], SandboxResponse]] = {
            "GetOrders": self._get_orders,
            "CompleteSale": self._complete_sale,
            "GetSellerList": self._get_seller_list,
            "ReviseInventoryStatus": self._revise_inventory_status,
            "GetUser": self._get_user,
            "GeteBayOfficialTime": self._official_time,
            "AddMemberMessageAAQToPartner": self._member_message,
        }
        for call, handler in handlers.items():
            sandbox.route(
                self,
                "POST",
                TRADING_PATH,
                self._trading(call, handler),
                name=f"ebay.{call}",
                rate=TRADING_RATE,
                rate_bucket="ebay.trading",
                authenticated=True,
                when=_call_is(call),
            )
        sandbox.route(self, "POST", TRADING_PATH, self._unsupported, name=UNSUPPORTED_ROUTE)

    def advance(self, now: datetime) -> None:
        self.book.advance(now)

    def describe(self) -> dict[str, str]:
        return {
            "EBAY_TRADING_URL": f"<address above>{TRADING_PATH}",
            "EBAY_API_URL": "<address above>",
            "EBAY_APP_ID": self.app_id,
            "EBAY_DEV_ID": self.dev_id,
            "EBAY_CERT_ID": self.cert_id,
            "EBAY_USER_TOKEN": f"{self.initial_authnauth} (Auth'n'Auth)",
            "EBAY_REFRESH_TOKEN": f"{self.refresh_token} (OAuth; leave EBAY_USER_TOKEN unset to use it)",
            "orders": str(len(self.book.orders)),
        }

    # -- controls for tests and demos ----------------------------------------------

    def answer_next(
        self,
        call: str,
        body: bytes | str,
        *,
        status: int = 200,
        content_type: str = XML_TYPE,
        times: int = 1,
    ) -> None:
        """The next ``times`` answers to ``call`` are ``body`` instead of the real one (nothing applied)."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        queue = self._canned.setdefault(call, deque())
        for _ in range(times):
            queue.append(SandboxResponse(status, raw, [("Content-Type", content_type)]))

    def issue_oauth_token(self) -> str:
        """An OAuth user access token, as the consent flow would give the owner."""
        issued = self.tokens.exchange(self.refresh_token)
        assert issued is not None
        return issued.access_token

    def expire_tokens(self) -> None:
        """OAuth access tokens expire; an Auth'n'Auth token hard-expires (932) until renewed."""
        super().expire_tokens()
        for token in self.authnauth:
            self.authnauth[token] = True

    def renew_authnauth(self) -> str:
        """A fresh Auth'n'Auth token (the owner fetched a new one from the developer site)."""
        suffix = f"{self.generator.rng.getrandbits(96):024x}"
        token = f"AgAAAA**AQAAAA**aAAAAA**renewed{len(self.authnauth):04d}**{suffix}"
        self.authnauth[token] = False
        return token

    def order_line_id(self, order: GenOrder, transaction_id: str) -> str:
        line = next(ln for ln in order.lines if ln.line_id == transaction_id)
        return f"{self.item_ids[line.sku]}-{line.line_id}"

    # -- eBay's fault answers ------------------------------------------------------------

    def throttled_response(self, request: SandboxRequest, retry_after: float) -> SandboxResponse:
        call = request.header("x-ebay-api-call-name") or "GeteBayOfficialTime"
        root = envelope(
            call,
            ack="Failure",
            errors=[WireError("21919144", "Too many requests.", "The application is calling too fast.")],
            now=self._sandbox.now(),
        )
        response = xml_response(root, status=429)
        response.set_header("Retry-After", str(max(1, int(retry_after + 0.999))))
        return response

    def server_error_response(self, request: SandboxRequest, status: int) -> SandboxResponse:
        if status == 503:
            page = (
                "<html><head><title>503 Service Unavailable</title></head>"
                "<body>Service Unavailable</body></html>"
            )
            return SandboxResponse.text(page, status=503, content_type="text/html")
        # eBay's own words (and spelling) on its plain-text 500s.
        return SandboxResponse.text("an internal error occured", status=status)

    # -- the Trading envelope --------------------------------------------------------------

    def _failure(self, call: str, now: datetime, *errors: WireError) -> SandboxResponse:
        return xml_response(envelope(call, ack="Failure", errors=errors, now=now))

    def _trading(
        self, call: str, handler: Callable[[_Call], SandboxResponse]
    ) -> Callable[[SandboxRequest, RouteMatch], SandboxResponse]:
        def answer(request: SandboxRequest, _match: RouteMatch) -> SandboxResponse:
            now = self._sandbox.now()
            canned = self._canned.get(call)
            if canned:
                return canned.popleft()
            day = now.astimezone(_PACIFIC).date().isoformat()
            self.calls_per_day[day] += 1
            if self.calls_per_day[day] > self.daily_limit:
                return self._failure(
                    call,
                    now,
                    WireError(
                        "518",
                        "Call usage limit has been reached.",
                        "Your application has exceeded usage limit on this call.",
                    ),
                )
            for header in ("x-ebay-api-siteid", "x-ebay-api-compatibility-level"):
                value = request.header(header) or ""
                if not value.strip().isdigit():
                    name = header.upper()
                    return self._failure(
                        call,
                        now,
                        WireError(
                            "10012",
                            f'Invalid value for header "{name}".',
                            f'Header "{name}" with value "{value}" is out of range.',
                            parameters=(name, value),
                        ),
                    )
            try:
                root: ET.Element = SafeET.fromstring(request.body, forbid_dtd=True)
            except (ET.ParseError, DefusedXmlException):
                return self._failure(
                    call, now, WireError("5", "XML Parse error.", "XML Error Text: bad request body.")
                )
            if root.tag != _q(f"{call}Request"):
                return self._unsupported_answer(root.tag.rsplit("}", 1)[-1].removesuffix("Request"), now)
            refused = self._refused(call, request, root, now)
            if refused is not None:
                return refused
            return handler(_Call(call, request, root, now))

        return answer

    def _refused(
        self, call: str, request: SandboxRequest, root: ET.Element, now: datetime
    ) -> SandboxResponse | None:
        iaf = request.header("x-ebay-api-iaf-token")
        if iaf:
            status = self.tokens.check(iaf)
            expired = status is TokenStatus.EXPIRED
            valid = status is TokenStatus.VALID
        else:
            token = _text(root, "RequesterCredentials/eBayAuthToken")
            known = token in self.authnauth
            expired = known and self.authnauth[token]
            valid = known and not expired
        if valid:
            return None
        if expired:
            return self._failure(
                call,
                now,
                WireError(
                    "932",
                    "Auth token is hard expired.",
                    "Auth token is hard expired, User needs to generate a new token for this application.",
                ),
            )
        return self._failure(
            call,
            now,
            WireError(
                "931",
                "Auth token is invalid.",
                "Validation of the authentication token in API request failed.",
            ),
        )

    def _unsupported_answer(self, call: str, now: datetime) -> SandboxResponse:
        return self._failure(
            f"{call or 'Unknown'}",
            now,
            WireError(
                "2",
                "Unsupported API call.",
                f'The API call "{call}" is invalid or not supported in this release.',
            ),
        )

    def _unsupported(self, request: SandboxRequest, _match: RouteMatch) -> SandboxResponse:
        return self._unsupported_answer(request.header("x-ebay-api-call-name") or "", self._sandbox.now())

    # -- OAuth -------------------------------------------------------------------------

    def _token(self, request: SandboxRequest, _match: RouteMatch) -> SandboxResponse:
        scheme, _, encoded = (request.header("authorization") or "").partition(" ")
        try:
            pair = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            pair = ""
        if scheme.lower() != "basic" or pair != f"{self.app_id}:{self.cert_id}":
            return SandboxResponse.json(
                {"error": "invalid_client", "error_description": "client authentication failed"}, status=401
            )
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return SandboxResponse.json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type in request is not supported by the authorization server",
                },
                status=400,
            )
        if not form.get("scope", "").strip():
            return SandboxResponse.json(
                {
                    "error": "invalid_scope",
                    "error_description": "the requested scope is invalid, unknown, malformed, or exceeds "
                    "the scope granted to the client",
                },
                status=400,
            )
        issued = self.tokens.exchange(form.get("refresh_token", ""))
        if issued is None:
            return SandboxResponse.json(
                {
                    "error": "invalid_grant",
                    "error_description": "the provided authorization refresh token is invalid or was "
                    "issued to another client",
                },
                status=400,
            )
        return SandboxResponse.json(
            {
                "access_token": issued.access_token,
                "expires_in": issued.expires_in,
                "token_type": "User Access Token",
            }
        )

    # -- GetOrders ------------------------------------------------------------------------

    def _get_orders(self, c: _Call) -> SandboxResponse:
        root, now = c.root, c.now
        paging = self._pagination(c, MAX_ORDER_PAGE)
        if isinstance(paging, SandboxResponse):
            return paging
        per_page, page_number = paging
        ids = [(e.text or "").strip() for e in _findall(root, "OrderIDArray/OrderID")]
        if ids:
            found = [self.book.orders[i] for i in dict.fromkeys(ids) if i in self.book.orders]
            key = "ids:" + ",".join(ids)
        else:
            window = self._order_window(c)
            if isinstance(window, SandboxResponse):
                return window
            field_name, start, end = window
            wanted = _text(root, "OrderStatus") or "All"
            found = []
            for order in self.book.orders.values():
                moment = order.updated_at if field_name == "Mod" else order.created_at
                if not start <= moment <= end:
                    continue
                status = self._wire_status(order)
                if status in ("Cancelled", "Inactive"):
                    continue  # only an OrderIDArray request shows these
                if wanted == "All" or wanted == status or (wanted == "Completed" and status != "Active"):
                    found.append(order)
            key = f"{field_name}:{wire_time(start)}:{wire_time(end)}:{wanted}"
        found.sort(key=lambda o: (o.created_at, o.order_id))
        size = self._page_size(per_page, key)
        page, total_pages = _page_of(found, size, page_number)

        def fill(response: ET.Element) -> None:
            _pagination_result(response, total_pages, len(found), "HasMoreOrders", page_number)
            array = _sub(response, "OrderArray")
            for order in page:
                array.append(self.render_order(order))
            _sub(response, "OrdersPerPage", str(size))
            _sub(response, "PageNumber", str(page_number))
            _sub(response, "ReturnedOrderCountActual", str(len(page)))

        return xml_response(envelope("GetOrders", now=now, fill=fill))

    def _order_window(self, c: _Call) -> tuple[str, datetime, datetime] | SandboxResponse:
        root, now = c.root, c.now
        for prefix in ("Mod", "Create"):
            start_text = _text(root, f"{prefix}TimeFrom")
            if not start_text:
                continue
            try:
                start = parse_wire_time(start_text)
                end_text = _text(root, f"{prefix}TimeTo")
                end = parse_wire_time(end_text) if end_text else now
            except ValueError:
                return self._invalid(c, f"{prefix}TimeFrom")
            if (
                start > end
                or start < now - HISTORY - CLOCK_TOLERANCE
                or end - start > HISTORY + CLOCK_TOLERANCE
            ):
                return self._invalid(
                    c, f"{prefix}TimeFrom", "orders can be read for at most the last 90 days"
                )
            return prefix, start, end
        days = _text(root, "NumberOfDays")
        if days:
            if not days.isdigit() or not 1 <= int(days) <= 30:
                return self._invalid(c, "NumberOfDays")
            return "Mod", now - timedelta(days=int(days)), now
        return self._failure(
            c.name,
            now,
            WireError(
                "10009",
                "No date filter.",
                "Specify CreateTimeFrom/To, ModTimeFrom/To, NumberOfDays or OrderIDArray.",
            ),
        )

    def _pagination(self, c: _Call, maximum: int) -> tuple[int, int] | SandboxResponse:
        """(EntriesPerPage capped at ``maximum``, PageNumber) of the request."""
        try:
            per_page = min(maximum, max(1, int(_text(c.root, "Pagination/EntriesPerPage") or 25)))
            return per_page, max(1, int(_text(c.root, "Pagination/PageNumber") or 1))
        except ValueError:
            return self._invalid(c, "Pagination")

    def _invalid(self, c: _Call, tag: str, why: str = "") -> SandboxResponse:
        detail = f" ({why})" if why else ""
        return self._failure(
            c.name,
            c.now,
            WireError(
                "37",
                "Input data is invalid.",
                f"Input data for tag <{tag}> is invalid or missing{detail}. Please check API documentation.",
                parameters=(tag,),
            ),
        )

    def _page_size(self, requested: int, key: str) -> int:
        # The same query always pages the same way, or offset paging could not work at all.
        rng = random.Random(f"{self.seed}:{key}:{requested}")
        if requested > 1 and rng.random() < self._sandbox.short_page_probability:
            return rng.randint(max(1, requested // 2), requested - 1)
        return requested

    @staticmethod
    def _wire_status(order: GenOrder) -> str:
        if order.status is GenStatus.CANCELLED:
            return "Cancelled"
        if order.status is GenStatus.PENDING:
            return "Active"
        if order.cancel_requested:
            return "CancelPending"
        return "Completed"

    # -- rendering an order ------------------------------------------------------------------

    def render_order(self, order: GenOrder) -> ET.Element:
        """One order in GetOrders' shape (the fields of the conformance samples)."""
        currency = order.currency
        paid = order.status is not GenStatus.PENDING and order.paid_at is not None
        fully_shipped = order.status is GenStatus.SHIPPED
        shipped_times = [s.shipped_at for s in order.shipments]
        element = ET.Element("Order")
        _sub(element, "OrderID", order.order_id)
        _sub(element, "OrderStatus", self._wire_status(order))
        _amount(element, "AdjustmentAmount", Decimal(0), currency)
        _amount(element, "AmountPaid", order.total if paid else Decimal(0), currency)
        _amount(element, "AmountSaved", Decimal(0), currency)
        checkout = _sub(element, "CheckoutStatus")
        _sub(checkout, "eBayPaymentStatus", "NoPaymentFailure")
        _sub(checkout, "LastModifiedTime", wire_time(order.updated_at))
        _sub(checkout, "PaymentMethod", "CreditCard" if paid else "None")
        _sub(checkout, "Status", "Complete" if paid else "Incomplete")
        _sub(checkout, "IntegratedMerchantCreditCardEnabled", "true")
        _sub(checkout, "PaymentInstrument", "CreditCard" if paid else "None")
        details = _sub(element, "ShippingDetails")
        sales_tax = _sub(details, "SalesTax")
        _sub(sales_tax, "SalesTaxPercent", "7.25" if order.tax else "0.0")
        _sub(sales_tax, "SalesTaxState", order.buyer.region if order.tax else "")
        _sub(sales_tax, "ShippingIncludedInTax", "false")
        _amount(sales_tax, "SalesTaxAmount", order.tax, currency)
        options = _sub(details, "ShippingServiceOptions")
        service = (
            "USPSPriority"
            if currency == "USD"
            else "UK_RoyalMailFirstClassStandard"
            if currency == "GBP"
            else "DE_DHLPaket"
        )
        _sub(options, "ShippingService", service)
        _amount(options, "ShippingServiceCost", order.shipping_cost, currency)
        _sub(options, "ShippingServicePriority", "1")
        _sub(options, "ExpeditedService", "false")
        _sub(options, "ShippingTimeMin", "2")
        _sub(options, "ShippingTimeMax", "5")
        _sub(details, "SellingManagerSalesRecordNumber", str(order.seq))
        _sub(details, "GetItFast", "false")
        _sub(element, "CreatingUserRole", "Buyer")
        _sub(element, "CreatedTime", wire_time(order.created_at))
        _sub(element, "PaymentMethods", "CreditCard")
        _sub(element, "SellerEmail", f"{self.seller}@shop.example")
        buyer = order.buyer
        address = _sub(element, "ShippingAddress")
        _sub(address, "Name", buyer.name)
        _sub(address, "Street1", buyer.line1)
        _sub(address, "Street2", buyer.line2)
        _sub(address, "CityName", buyer.city)
        _sub(address, "StateOrProvince", buyer.region)
        _sub(address, "Country", buyer.country)
        _sub(address, "CountryName", _COUNTRY_NAMES.get(buyer.country, buyer.country))
        _sub(address, "Phone", buyer.phone)
        _sub(address, "PostalCode", buyer.postal_code)
        _sub(address, "AddressID", str(1_000_000 + order.seq))
        _sub(address, "AddressOwner", "eBay")
        _sub(address, "ExternalAddressID", "")
        selected = _sub(element, "ShippingServiceSelected")
        _sub(selected, "ShippingService", service)
        _amount(selected, "ShippingServiceCost", order.shipping_cost, currency)
        _amount(element, "Subtotal", order.subtotal, currency)
        _amount(element, "Total", order.total, currency)
        _sub(element, "eBayCollectAndRemitTax", "true" if order.tax else "false")
        transactions = _sub(element, "TransactionArray")
        first, _, last = buyer.name.partition(" ")
        for index, line in enumerate(order.lines):
            item_id = self.item_ids.get(line.sku, "110000000000")
            covering = [
                s for s in order.shipments if not s.lines or any(lid == line.line_id for lid, _ in s.lines)
            ]
            line_shipped = line.quantity_shipped >= line.quantity
            transaction = _sub(transactions, "Transaction")
            buyer_node = _sub(transaction, "Buyer")
            _sub(buyer_node, "Email", buyer.email)
            _sub(buyer_node, "VATStatus", "NoVATTax")
            _sub(buyer_node, "UserFirstName", first)
            _sub(buyer_node, "UserLastName", last)
            line_details = _sub(transaction, "ShippingDetails")
            _sub(line_details, "SellingManagerSalesRecordNumber", str(order.seq))
            for shipment in covering:
                tracking = _sub(line_details, "ShipmentTrackingDetails")
                _sub(tracking, "ShippingCarrierUsed", shipment.carrier)
                _sub(tracking, "ShipmentTrackingNumber", shipment.tracking)
            _sub(transaction, "CreatedDate", wire_time(order.created_at))
            item = _sub(transaction, "Item")
            _sub(item, "ItemID", item_id)
            _sub(item, "Site", _SITES.get(currency, "US"))
            title = f"{line.title}[{line.variation}]" if line.variation else line.title
            _sub(item, "Title", title)
            if not line.variation:
                _sub(item, "SKU", line.sku)
            _sub(item, "ConditionID", "1000")
            _sub(item, "ConditionDisplayName", "New")
            _sub(transaction, "QuantityPurchased", str(line.quantity))
            status = _sub(transaction, "Status")
            _sub(status, "PaymentHoldStatus", "None")
            _sub(status, "InquiryStatus", "NotApplicable")
            _sub(status, "ReturnStatus", "NotApplicable")
            _sub(transaction, "TransactionID", line.line_id)
            _amount(transaction, "TransactionPrice", line.unit_price, currency)
            _sub(transaction, "eBayCollectAndRemitTax", "true" if order.tax else "false")
            line_selected = _sub(transaction, "ShippingServiceSelected")
            package = _sub(line_selected, "ShippingPackageInfo")
            _sub(package, "EstimatedDeliveryTimeMin", wire_time(order.ship_by + timedelta(days=2)))
            _sub(package, "EstimatedDeliveryTimeMax", wire_time(order.ship_by + timedelta(days=6)))
            _sub(package, "HandleByTime", wire_time(order.ship_by))
            if line_shipped and covering:
                _sub(transaction, "ShippedTime", wire_time(min(s.shipped_at for s in covering)))
            _sub(transaction, "TransactionSiteID", _SITES.get(currency, "US"))
            _sub(transaction, "Platform", "eBay")
            if line.variation:
                variation = _sub(transaction, "Variation")
                _sub(variation, "SKU", line.sku)
                specifics = _sub(variation, "VariationSpecifics")
                pair = _sub(specifics, "NameValueList")
                _sub(pair, "Name", "Color")
                _sub(pair, "Value", line.variation)
                _sub(variation, "VariationTitle", title)
                _sub(variation, "VariationViewItemURL", f"https://www.ebay.com/itm/{item_id}?var={index}")
            if order.tax and index == 0:
                taxes = _sub(transaction, "eBayCollectAndRemitTaxes")
                _amount(taxes, "TotalTaxAmount", order.tax, currency)
                tax_details = _sub(taxes, "TaxDetails")
                _sub(tax_details, "Imposition", "SalesTax")
                _sub(tax_details, "TaxDescription", "SalesTax")
                _amount(tax_details, "TaxAmount", order.tax, currency)
                _amount(tax_details, "TaxOnSubtotalAmount", order.tax, currency)
                _amount(tax_details, "TaxOnShippingAmount", Decimal(0), currency)
                _amount(tax_details, "TaxOnHandlingAmount", Decimal(0), currency)
                _sub(tax_details, "CollectionMethod", "NET")
            _amount(
                transaction, "ActualShippingCost", order.shipping_cost if index == 0 else Decimal(0), currency
            )
            _amount(transaction, "ActualHandlingCost", Decimal(0), currency)
            _sub(transaction, "OrderLineItemID", f"{item_id}-{line.line_id}")
            _sub(transaction, "ExtendedOrderID", order.order_id)
            _sub(transaction, "eBayPlusTransaction", "false")
            _sub(transaction, "GuaranteedShipping", "false")
            _sub(transaction, "GuaranteedDelivery", "false")
        _sub(element, "BuyerUserID", buyer.user_id)
        if paid and order.paid_at is not None:
            _sub(element, "PaidTime", wire_time(order.paid_at))
        if fully_shipped and shipped_times:
            _sub(element, "ShippedTime", wire_time(max(shipped_times)))
        _sub(element, "IntegratedMerchantCreditCardEnabled", "false")
        message = self._checkout_message(order)
        if message:
            _sub(element, "BuyerCheckoutMessage", message)
        _sub(element, "EIASToken", f"nY+sHZ2PrBmdj6wVnY+sEZ2PrA2dj6w{order.seq:06d}==")
        _sub(element, "PaymentHoldStatus", "None")
        _sub(element, "IsMultiLegShipping", "false")
        _sub(element, "SellerUserID", self.seller)
        _sub(element, "SellerEIASToken", "nY+sHZ2PrBmdj6wVnY+sEZ2PrA2dj6wFk4GhC5eEpg2dj6x9nY+seQ==")
        if order.status is GenStatus.CANCELLED:
            cancel = "CancelComplete"
        elif order.cancel_requested:
            cancel = "CancelRequested"
        else:
            cancel = "NotApplicable"
        _sub(element, "CancelStatus", cancel)
        _sub(element, "ExtendedOrderID", order.order_id)
        _sub(element, "ContainseBayPlusTransaction", "false")
        return element

    @staticmethod
    def _checkout_message(order: GenOrder) -> str:
        # eBay has one buyer message per order: personalisation goes there, line by line.
        parts = [
            f"{line.sku}: {line.personalisation}" if len(order.lines) > 1 else line.personalisation
            for line in order.lines
            if line.personalisation
        ]
        if order.buyer_message:
            parts.append(order.buyer_message)
        return "\n".join(parts)

    # -- CompleteSale ------------------------------------------------------------------------

    def _complete_sale(self, c: _Call) -> SandboxResponse:
        root, now = c.root, c.now
        order_id = _text(root, "OrderID")
        line_item = _text(root, "OrderLineItemID")
        if not line_item and _text(root, "ItemID") and _text(root, "TransactionID"):
            line_item = f"{_text(root, 'ItemID')}-{_text(root, 'TransactionID')}"
        order: GenOrder | None = None
        lines: list[tuple[str, int]] | None = None
        if order_id:
            order = self.book.get(order_id)
        elif line_item:
            for candidate in self.book.orders.values():
                for line in candidate.lines:
                    if f"{self.item_ids.get(line.sku)}-{line.line_id}" == line_item:
                        order, lines = candidate, [(line.line_id, line.quantity_unshipped)]
        else:
            return self._invalid(c, "OrderID")
        what = order_id or line_item
        if order is None:
            return self._failure(
                c.name,
                now,
                WireError(
                    ORDER_NOT_FOUND, "Order not found.", f"The order {what} does not exist or is not yours."
                ),
            )
        if _text(root, "Shipped") != "true":
            return xml_response(envelope(c.name, now=now))
        trackings = [
            (_text(d, "ShipmentTrackingNumber"), _text(d, "ShippingCarrierUsed"))
            for d in _findall(root, "Shipment/ShipmentTrackingDetails")
        ]
        if not trackings or any(not number or not carrier for number, carrier in trackings):
            return self._invalid(c, "ShipmentTrackingDetails", "a tracking number needs its carrier")
        shipped_text = _text(root, "Shipment/ShippedTime")
        try:
            shipped_at = parse_wire_time(shipped_text) if shipped_text else now
        except ValueError:
            return self._invalid(c, "ShippedTime")
        if shipped_at > now + timedelta(days=3):
            return self._invalid(c, "ShippedTime", "it may be at most 3 days in the future")
        # Tracking sent again for what is already shipped only adds the tracking (KB 1557).
        update_only: list[tuple[str, int]] | None = None
        if lines is not None and lines[0][1] <= 0:
            update_only = [(lines[0][0], 0)]
        elif all(line.quantity_unshipped == 0 for line in order.lines):
            update_only = []
        extra = trackings
        if update_only is None:
            number, carrier = trackings[0]
            try:
                shipment = self.book.ship(order.order_id, carrier, number, lines, now)
            except ShipError as exc:
                if exc.code == "order_cancelled":
                    return self._failure(
                        c.name, now, WireError(ORDER_CANCELLED, "The order was cancelled.", str(exc))
                    )
                if exc.code == "not_paid":
                    return self._failure(
                        c.name, now, WireError(ORDER_NOT_PAID, "The order is not paid.", str(exc))
                    )
                return self._invalid(c, "Shipment", str(exc).rstrip("."))
            shipment.shipped_at = shipped_at
            extra = trackings[1:]
        for more_number, more_carrier in extra:
            order.shipments.append(
                GenShipment(
                    shipment_id=f"S{self.generator.rng.randrange(10**9, 10**10)}",
                    carrier=more_carrier,
                    tracking=more_number,
                    shipped_at=shipped_at,
                    lines=list(update_only or []),
                )
            )
        order.updated_at = max(order.updated_at, now)
        self.completed_sales.append((order.order_id, trackings[0][0]))
        return xml_response(envelope(c.name, now=now))

    # -- listings --------------------------------------------------------------------------------

    def _get_seller_list(self, c: _Call) -> SandboxResponse:
        root, now = c.root, c.now
        window: tuple[str, datetime, datetime] | None = None
        for prefix in ("End", "Start"):
            start_text, end_text = _text(root, f"{prefix}TimeFrom"), _text(root, f"{prefix}TimeTo")
            if start_text and end_text:
                try:
                    window = (prefix, parse_wire_time(start_text), parse_wire_time(end_text))
                except ValueError:
                    return self._invalid(c, f"{prefix}TimeFrom")
                break
        if window is None:
            return self._invalid(c, "EndTimeFrom", "a StartTime or EndTime range is required")
        prefix, start, end = window
        if end < start or end - start > timedelta(days=120):
            return self._invalid(c, f"{prefix}TimeTo", "the range may be at most 120 days")
        paging = self._pagination(c, MAX_LISTING_PAGE)
        if isinstance(paging, SandboxResponse):
            return paging
        per_page, page_number = paging
        with_variations = _text(root, "IncludeVariations") == "true"
        found = sorted(
            (
                listing
                for listing in self.listings.values()
                if start <= (listing.end_time if prefix == "End" else listing.start_time) <= end
            ),
            key=lambda listing: listing.item_id,
        )
        page, total_pages = _page_of(found, per_page, page_number)

        def fill(response: ET.Element) -> None:
            _pagination_result(response, total_pages, len(found), "HasMoreItems", page_number)
            array = _sub(response, "ItemArray")
            for listing in page:
                array.append(self._render_listing(listing, with_variations))
            _sub(response, "ItemsPerPage", str(per_page))
            _sub(response, "PageNumber", str(page_number))
            _sub(response, "ReturnedItemCountActual", str(len(page)))
            seller = _sub(response, "Seller")
            _sub(seller, "UserID", self.seller)
            _sub(seller, "Site", "US")
            _sub(seller, "Status", "Confirmed")

        return xml_response(envelope(c.name, now=now, fill=fill))

    @staticmethod
    def _render_listing(listing: SimListing, with_variations: bool) -> ET.Element:
        item = ET.Element("Item")
        _sub(item, "ItemID", listing.item_id)
        details = _sub(item, "ListingDetails")
        _sub(details, "StartTime", wire_time(listing.start_time))
        _sub(details, "EndTime", wire_time(listing.end_time))
        _sub(item, "ListingType", listing.listing_type)
        _sub(item, "InventoryTrackingMethod", listing.tracking)
        _sub(item, "Quantity", str(listing.quantity))
        selling = _sub(item, "SellingStatus")
        _sub(selling, "QuantitySold", "0")
        _sub(selling, "ListingStatus", listing.status)
        _sub(item, "SKU", listing.sku)
        _amount(item, "StartPrice", listing.price, "USD")
        _sub(item, "Title", listing.title)
        if with_variations and listing.variations:
            variations = _sub(item, "Variations")
            for variation in listing.variations:
                node = _sub(variations, "Variation")
                _sub(node, "SKU", variation.sku)
                _amount(node, "StartPrice", listing.price, "USD")
                _sub(node, "Quantity", str(variation.quantity))
                specifics = _sub(node, "VariationSpecifics")
                pair = _sub(specifics, "NameValueList")
                _sub(pair, "Name", "Color")
                _sub(pair, "Value", variation.name)
                sold = _sub(node, "SellingStatus")
                _sub(sold, "QuantitySold", str(variation.sold))
        return item

    def _revise_inventory_status(self, c: _Call) -> SandboxResponse:
        root, now = c.root, c.now
        statuses = _findall(root, "InventoryStatus")
        if not statuses:
            return self._invalid(c, "InventoryStatus")
        if len(statuses) > 4:
            return self._failure(
                c.name,
                now,
                WireError(
                    TOO_MANY_STATUSES,
                    "Too many InventoryStatus.",
                    "At most 4 InventoryStatus containers are allowed per call.",
                ),
            )
        changes: list[tuple[SimListing, SimVariation | None, int, str]] = []
        day = now.astimezone(_PACIFIC).date().isoformat()
        for status in statuses:
            item_id, sku, quantity_text = (
                _text(status, "ItemID"),
                _text(status, "SKU"),
                _text(status, "Quantity"),
            )
            if not quantity_text.isdigit():
                return self._invalid(c, "Quantity")
            target = self._inventory_target(item_id, sku)
            if target is None:
                return self._failure(
                    c.name,
                    now,
                    WireError(
                        NO_SUCH_LISTING,
                        "No such listing.",
                        f"No active fixed-price listing matches ItemID {item_id or '-'} / SKU {sku or '-'}.",
                    ),
                )
            listing, variations = target
            if self.revisions[(listing.item_id, day)] >= REVISIONS_PER_LISTING_PER_DAY:
                return self._failure(
                    c.name,
                    now,
                    WireError(
                        REVISION_LIMIT,
                        "Revision limit reached.",
                        f"Listing {listing.item_id} was revised {REVISIONS_PER_LISTING_PER_DAY} times today.",
                    ),
                )
            chosen: list[SimVariation | None] = list(variations) or [None]
            for variation in chosen:
                changes.append((listing, variation, int(quantity_text), sku))
        touched: list[SimListing] = []
        for listing, variation, quantity, _sku in changes:
            if variation is not None:
                variation.quantity = quantity
                listing.quantity = sum(v.quantity for v in listing.variations)
            else:
                listing.quantity = quantity
            if listing not in touched:
                touched.append(listing)
                self.revisions[(listing.item_id, day)] += 1

        def fill(response: ET.Element) -> None:
            for listing, variation, quantity, sku in changes:
                echo = _sub(response, "InventoryStatus")
                _sub(echo, "SKU", variation.sku if variation else sku)
                _sub(echo, "ItemID", listing.item_id)
                _sub(echo, "StartPrice", _money(listing.price))
                _sub(echo, "Quantity", str(quantity))
            for listing in touched:
                fees = _sub(response, "Fees")
                _sub(fees, "ItemID", listing.item_id)
                for name in ("AuctionLengthFee", "InsertionFee", "ListingFee"):
                    fee = _sub(fees, "Fee")
                    _sub(fee, "Name", name)
                    _amount(fee, "Fee", Decimal(0), "USD")

        return xml_response(envelope(c.name, now=now, fill=fill))

    def _inventory_target(self, item_id: str, sku: str) -> tuple[SimListing, list[SimVariation]] | None:
        candidates = [self.listings[item_id]] if item_id in self.listings else []
        if not item_id:
            candidates = [
                listing
                for listing in self.listings.values()
                if listing.tracking == "SKU"
                and (listing.sku == sku or any(v.sku == sku for v in listing.variations))
            ]
        for listing in candidates:
            if listing.status != "Active" or listing.listing_type not in (
                "FixedPriceItem",
                "StoresFixedPrice",
            ):
                continue
            if listing.variations:
                variations = [v for v in listing.variations if v.sku == sku]
                if variations:
                    return listing, variations
                continue
            if not sku or sku == listing.sku:
                return listing, []
        return None

    # -- the rest ------------------------------------------------------------------------------------

    def _get_user(self, c: _Call) -> SandboxResponse:
        def fill(response: ET.Element) -> None:
            user = _sub(response, "User")
            _sub(user, "AboutMePage", "false")
            _sub(user, "EIASToken", "nY+sHZ2PrBmdj6wVnY+sEZ2PrA2dj6wFk4GhC5eEpg2dj6x9nY+seQ==")
            _sub(user, "Email", f"{self.seller}@shop.example")
            _sub(user, "FeedbackScore", "1287")
            _sub(user, "RegistrationDate", "2019-03-14T10:21:09.000Z")
            _sub(user, "Site", "US")
            _sub(user, "Status", "Confirmed")
            _sub(user, "UserID", self.seller)

        return xml_response(envelope(c.name, now=c.now, fill=fill))

    def _official_time(self, c: _Call) -> SandboxResponse:
        return xml_response(envelope(c.name, now=c.now))

    def _member_message(self, c: _Call) -> SandboxResponse:
        root, now = c.root, c.now
        item_id = _text(root, "ItemID")
        recipient = _text(root, "MemberMessage/RecipientID")
        subject = _text(root, "MemberMessage/Subject")
        body = _text(root, "MemberMessage/Body")
        if not item_id or not recipient or not body:
            return self._invalid(c, "MemberMessage", "ItemID, RecipientID and Body are required")
        if len(body) > MESSAGE_MAX_CHARS:
            return self._invalid(c, "Body", f"at most {MESSAGE_MAX_CHARS} characters")
        sale = next(
            (
                order
                for order in self.book.orders.values()
                if order.buyer.user_id == recipient
                and any(self.item_ids.get(line.sku) == item_id for line in order.lines)
                and now - order.created_at <= HISTORY
            ),
            None,
        )
        if sale is None:
            return self._failure(
                c.name,
                now,
                WireError(
                    MESSAGE_REFUSED,
                    "Message not allowed.",
                    f"{recipient} did not buy item {item_id} within the last 90 days.",
                ),
            )
        self.messages.append(SentMessage(item_id, recipient, subject, body, now))
        return xml_response(envelope(c.name, now=now))


def _page_of(items: list[_Item], size: int, number: int) -> tuple[list[_Item], int]:
    """Offset paging: page ``number`` (from 1) of ``size`` items, and the page count."""
    return items[(number - 1) * size : number * size], max(1, -(-len(items) // size))


def _pagination_result(
    response: ET.Element, total_pages: int, entries: int, more_tag: str, number: int
) -> None:
    pagination = _sub(response, "PaginationResult")
    _sub(pagination, "TotalNumberOfPages", str(total_pages))
    _sub(pagination, "TotalNumberOfEntries", str(entries))
    _sub(response, more_tag, "true" if number < total_pages else "false")


def _call_is(call: str) -> Callable[[SandboxRequest], bool]:
    def match(request: SandboxRequest) -> bool:
        return (request.header("x-ebay-api-call-name") or "").strip() == call

    return match


# ---------------------------------------------------------------------------
# Replay of the conformance files


REPLAY_FILES: Mapping[str, str] = {
    "GetOrders": "trading.GetOrders.response.xml",
    "CompleteSale": "trading.CompleteSale.response.xml",
    "GetSellerList": "trading.GetSellerList.response.xml",
    "ReviseInventoryStatus": "trading.ReviseInventoryStatus.response.xml",
}
REPLAY_TOKEN_FILE = "oauth.token.refresh_token.response.json"
REPLAY_UNSUPPORTED_FILE = "trading.error.UnsupportedCall.response.xml"


class EbayReplaySimulator(BaseSimulator):
    """Answers every call with a conformance file, byte for byte (``files`` maps call → file name)."""

    name = NAME

    def __init__(self, folder: Path, *, files: Mapping[str, str] | None = None) -> None:
        self.folder = folder
        self.files = dict(REPLAY_FILES if files is None else files)

    def install(self, sandbox: Sandbox) -> None:
        token_file = self.folder / REPLAY_TOKEN_FILE
        if token_file.is_file():
            sandbox.add_replay(self, "POST", TOKEN_PATH, token_file, name=TOKEN_ROUTE)
        for call, file_name in self.files.items():
            sandbox.add_replay(
                self,
                "POST",
                TRADING_PATH,
                self.folder / file_name,
                name=f"ebay.{call}",
                content_type=XML_TYPE,
                when=_call_is(call),
            )
        sandbox.add_replay(
            self,
            "POST",
            TRADING_PATH,
            self.folder / REPLAY_UNSUPPORTED_FILE,
            name=UNSUPPORTED_ROUTE,
            content_type=XML_TYPE,
        )

    def describe(self) -> dict[str, str]:
        return {"replaying": str(self.folder), **{call: name for call, name in self.files.items()}}


def create_simulator(sandbox: Sandbox, *, seed: int, **options: Any) -> EbaySimulator:
    """The factory ``tf-console sandbox serve`` calls (see :mod:`tf_console.sandbox.registry`)."""
    return EbaySimulator(sandbox, seed=seed, **options)
