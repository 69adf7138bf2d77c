"""The sandbox's Etsy Open API v3: the seeded shop in Etsy's own wire format.

Stateful (tracking posts ship receipts and bump their last-modified time, sales
take stock off listings, inventory PUTs replace products), strict where Etsy is
strict, and shaped like ``../shared/conformance/etsy/`` (tests check keys and
types against those files).  :class:`EtsyReplaySimulator` serves those files
byte for byte instead.

=================================================================  ===================================
``POST /v3/public/oauth/token``                                    form ``grant_type=refresh_token``,
                                                                   ``client_id``, ``refresh_token`` →
                                                                   a new access *and* refresh token
``GET  /v3/application/openapi-ping``                              ``{"application_id"}`` (key only)
``GET  /v3/application/users/me``                                  ``{"user_id", "shop_id"}``
``GET  /v3/application/shops/{shop_id}/receipts``                  ``min_last_modified`` … ``limit``
                                                                   (1–100), ``offset``, ``sort_on``,
                                                                   ``sort_order`` → ``{count, results}``
``GET  /v3/application/shops/{shop_id}/receipts/{receipt_id}``     one ShopReceipt
``POST /v3/application/shops/{shop_id}/receipts/{receipt_id}/``    ``tracking_code``, ``carrier_name``,
``tracking``                                                       ``note_to_buyer`` (JSON or form, as
                                                                   the Content-Type says) → the receipt
``GET  /v3/application/shops/{shop_id}/listings``                  ``state``, ``limit``, ``offset``
``GET|PUT /v3/application/listings/{listing_id}/inventory``        ListingInventory (PUT: full
                                                                   replacement, validated)
=================================================================  ===================================

Every call needs ``x-api-key: keystring:shared_secret`` (a keystring alone is
refused with 403, as Etsy does since 2026); OAuth routes need a bearer token
(``<user_id>.<token>``, one hour).  Every refresh rotates the refresh token and
retires the old one.  All routes share one per-second bucket (10/s before the
sandbox's ``rate_scale``) and a rolling daily budget; answers carry
``x-limit-per-second``, ``x-remaining-this-second``, ``x-limit-per-day`` and
``x-remaining-today``; a 429 carries ``retry-after``.  Errors are ``{"error": ...}``.
"""

from __future__ import annotations

import json
import random
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from tf_console.sandbox.core import (
    BaseSimulator,
    Handler,
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
    CURRENCY_EXPONENT,
    GenOrder,
    GenProduct,
    GenShipment,
    GenStatus,
    OrderBook,
    ShipError,
    ShopGenerator,
    price_in,
)

NAME = "etsy"
API = "/v3/application"
TOKEN_PATH = "/v3/public/oauth/token"

DEMO_CLIENT_ID = "tfsandboxetsykeystring01"
DEMO_SHARED_SECRET = "tfsandboxetsysharedsecret01"
DEMO_USER_ID = 81726354
DEMO_SHOP_ID = 29384756
DEMO_REFRESH_TOKEN = f"{DEMO_USER_ID}.tfsandbox-etsy-refresh-0000000000"
APPLICATION_ID = 1357913

ROUTE_TOKEN = "etsy.token"
ROUTE_PING = "etsy.ping"
ROUTE_ME = "etsy.me"
ROUTE_RECEIPTS = "etsy.receipts.list"
ROUTE_RECEIPT = "etsy.receipts.get"
ROUTE_TRACKING = "etsy.receipts.tracking"
ROUTE_LISTINGS = "etsy.listings.list"
ROUTE_INVENTORY_GET = "etsy.inventory.get"
ROUTE_INVENTORY_PUT = "etsy.inventory.put"

# Etsy's limits apply per API key across every endpoint: one shared bucket.
RATE = ServerRate(10.0, 10)
RATE_BUCKET = "etsy.api"
DAILY_LIMIT = 10_000
DAY_SECONDS = 86_400.0
EARLIEST_FILTER_EPOCH = 946684800
MAX_QUANTITY = 999

COLOR_PROPERTY = 200
CUSTOM_PROPERTY = 513
PERSONALIZATION_PROPERTY = 54
READINESS_STATE_ID = 18201076875
# The shop left the SKU field empty on these listings (common on Etsy): lines carry sku "".
EMPTY_SKU_PRODUCTS = frozenset({"PRT-LITHOPHANE", "STK-BELT-GT2-5M"})
# One listing has two variations (colour × size) and a SKU per size: the inventory-push test bed.
SIZED_PRODUCT = "PRT-PLANTER-M"
SIZED_EXTRA_SKU = "PRT-PLANTER-L"
SIZED_EXTRA_PRICE_USD = Decimal("9.00")
INITIAL_STOCK = 25

_PRODUCT_READ_ONLY = ("product_id", "is_deleted")
_PROPERTY_READ_ONLY = ("scale_name", "value_pairs")
_OFFERING_READ_ONLY = ("offering_id", "is_deleted")
_ON_PROPERTY = ("price_on_property", "quantity_on_property", "sku_on_property", "readiness_state_on_property")


@cache
def etsy_carriers() -> dict[str, str]:
    """Etsy's carrier codes → display names (the Fulfillment tutorial's table)."""
    raw = json.loads(resources.files("tf_console.data").joinpath("etsy_carriers.json").read_text("utf-8"))
    table = {str(e["carrier_name"]).lower(): str(e["carrier"]) for e in raw}
    table.setdefault("other", "Other")
    return table


def _error(status: int, message: str, headers: Iterable[tuple[str, str]] = ()) -> SandboxResponse:
    return SandboxResponse.json({"error": message}, status=status, headers=headers)


def _oauth_error(status: int, code: str, description: str) -> SandboxResponse:
    return SandboxResponse.json({"error": code, "error_description": description}, status=status)


def epoch(when: datetime) -> int:
    return int(when.timestamp())


def money(value: Decimal, currency: str) -> dict[str, Any]:
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    scaled = value.scaleb(exponent)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} {currency} has more decimals than the currency allows")
    return {"amount": int(scaled), "divisor": 10**exponent, "currency_code": currency}


class EtsyTokenAuthority(TokenAuthority):
    """Etsy's tokens start with the numeric user id and a dot."""

    def __init__(self, *args: Any, user_id: int, **kwargs: Any) -> None:
        super().__init__(*args, prefix=str(user_id), **kwargs)

    def _mint(self, kind: str) -> str:
        return f"{self._prefix}.{kind}{self._rng.getrandbits(256):064x}"


class _Ids:
    """Etsy-looking numeric ids, unique and deterministic by seed."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(f"etsy-ids:{seed}")
        self._next_transaction = 3_700_000_000 + self._rng.randrange(10**6)
        self._next_product = 17_000_000_000 + self._rng.randrange(10**6)

    def receipt_id(self, _rng: random.Random, seq: int) -> str:
        return str(3_000_000_000 + seq * 97 + self._rng.randrange(97))

    def transaction_id(self, _rng: random.Random, _seq: int) -> str:
        self._next_transaction += self._rng.randrange(1, 40)
        return str(self._next_transaction)

    def product_id(self) -> int:
        self._next_product += self._rng.randrange(1, 400)
        return self._next_product


@dataclass(slots=True)
class SimListing:
    listing_id: int
    title: str
    products: list[dict[str, Any]]  # Etsy's GET shape: ids, Money prices
    price_on_property: list[int] = field(default_factory=list)
    quantity_on_property: list[int] = field(default_factory=list)
    sku_on_property: list[int] = field(default_factory=list)
    readiness_state_on_property: list[int] = field(default_factory=list)
    state: str = "active"
    updated_at: int = 0

    @property
    def quantity(self) -> int:
        return sum(
            int(o["quantity"])
            for p in self.products
            for o in p["offerings"]
            if o.get("is_enabled", True) and not o.get("is_deleted")
        )

    @property
    def skus(self) -> list[str]:
        found: list[str] = []
        for product in self.products:
            sku = str(product.get("sku") or "")
            if sku and sku not in found:
                found.append(sku)
        return found

    def inventory(self) -> dict[str, Any]:
        return {
            "products": json.loads(json.dumps(self.products)),
            "price_on_property": list(self.price_on_property),
            "quantity_on_property": list(self.quantity_on_property),
            "sku_on_property": list(self.sku_on_property),
            "readiness_state_on_property": list(self.readiness_state_on_property),
            "listing": None,
        }


@dataclass(frozen=True, slots=True)
class TrackingRequest:
    """What a createReceiptShipment call carried, for tests (encoding, carrier, note)."""

    receipt_id: str
    content_type: str
    fields: dict[str, str]


class EtsySimulator(BaseSimulator):
    """The Etsy shop: ``book`` holds receipts, ``listings`` the inventory, ``tokens`` the OAuth state."""

    name = NAME

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        seed: int | None = None,
        orders_per_hour: float = 6.0,
        backfill: int = 60,
        backfill_days: float = 7.0,
        access_ttl: float = 3600.0,
        client_id: str = DEMO_CLIENT_ID,
        shared_secret: str = DEMO_SHARED_SECRET,
        refresh_token: str = DEMO_REFRESH_TOKEN,
        user_id: int = DEMO_USER_ID,
        shop_id: int = DEMO_SHOP_ID,
        shop_currency: str = "USD",
        daily_limit: int = DAILY_LIMIT,
        catalog: Sequence[GenProduct] = CATALOG,
    ) -> None:
        if shop_currency not in ("USD", "GBP", "EUR", "JPY"):
            raise ValueError("the simulated Etsy shop sells in USD, GBP, EUR or JPY")
        self._sandbox = sandbox
        seed = sandbox.seed if seed is None else seed
        self._ids = _Ids(seed)
        self.currency = shop_currency
        self.client_id = client_id
        self.shared_secret = shared_secret
        self.initial_refresh_token = refresh_token
        self.user_id = user_id
        self.shop_id = shop_id
        self.daily_limit = daily_limit
        self.report_shop_in_me = True  # False: users/me omits shop_id (an account without a shop)
        self.generator = ShopGenerator(
            seed,
            catalog=catalog,
            currencies=((shop_currency, 1),),
            order_id=self._ids.receipt_id,
            line_id=self._ids.transaction_id,
        )
        self.catalog = {p.sku: p for p in self.generator.catalog}
        self.listings: dict[int, SimListing] = {}
        self._listing_of_sku: dict[str, int] = {}
        self._build_listings(sandbox.now())
        self.book = OrderBook(
            self.generator,
            sandbox.now(),
            orders_per_hour=orders_per_hour,
            backfill=backfill,
            backfill_days=backfill_days,
        )
        self.tokens = EtsyTokenAuthority(
            sandbox.clock,
            random.Random(f"etsy-tokens:{seed}"),
            user_id=user_id,
            refresh_tokens=[refresh_token],
            access_ttl=access_ttl,
            rotate_refresh=True,
            client_id=client_id,
        )
        self.authority = self.tokens
        self.carrier_codes: set[str] = set(etsy_carriers())
        self.partial_refunds: dict[str, Decimal] = {}
        self.tracking_requests: list[TrackingRequest] = []
        # (receipt id, tracking) of every shipment notice: Etsy e-mails the buyer on each call.
        self.buyer_emails: list[tuple[str, str]] = []
        # receipt id → a change applied to its rendered JSON (bad input: divisor 0, unknown currency…)
        self.render_hooks: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._daily_calls: deque[float] = deque()

    # -- catalogue ------------------------------------------------------------------

    def _offering(self, price: Decimal, quantity: int) -> dict[str, Any]:
        return {
            "offering_id": self._ids.product_id(),
            "quantity": quantity,
            "is_enabled": True,
            "is_deleted": False,
            "price": money(price, self.currency),
            "readiness_state_id": READINESS_STATE_ID,
        }

    def _property(self, property_id: int, name: str, value: str) -> dict[str, Any]:
        value_id = 52_000_000_000 + zlib.crc32(f"{property_id}:{value}".encode()) % 10**9
        return {
            "property_id": property_id,
            "property_name": name,
            "scale_id": None,
            "scale_name": None,
            "value_ids": [value_id],
            "values": [value],
        }

    def _build_listings(self, now: datetime) -> None:
        base_id = 1_500_000_000 + self._ids.product_id() % 10**6
        for number, product in enumerate(self.generator.catalog):
            listing_id = base_id + number * 7919
            sku = "" if product.sku in EMPTY_SKU_PRODUCTS else product.sku
            price = price_in(product.price_usd, self.currency)
            colours = product.variations or ("",)
            products: list[dict[str, Any]] = []
            listing = SimListing(listing_id, product.title, products, updated_at=epoch(now))
            sizes: list[tuple[str, str, Decimal]] = [("", sku, price)]
            if product.sku == SIZED_PRODUCT:
                extra = price + price_in(SIZED_EXTRA_PRICE_USD, self.currency)
                sizes = [("Medium", sku, price), ("Large", SIZED_EXTRA_SKU, extra)]
                listing.price_on_property = [CUSTOM_PROPERTY]
                listing.sku_on_property = [CUSTOM_PROPERTY]
                listing.quantity_on_property = [COLOR_PROPERTY, CUSTOM_PROPERTY]
            elif product.variations:
                listing.quantity_on_property = [COLOR_PROPERTY]
            for colour in colours:
                for size, size_sku, size_price in sizes:
                    values = []
                    if colour:
                        values.append(self._property(COLOR_PROPERTY, "Primary color", colour))
                    if size:
                        values.append(self._property(CUSTOM_PROPERTY, "Size", size))
                    products.append(
                        {
                            "product_id": self._ids.product_id(),
                            "sku": size_sku,
                            "is_deleted": False,
                            "offerings": [self._offering(size_price, INITIAL_STOCK)],
                            "property_values": values,
                        }
                    )
            self.listings[listing_id] = listing
            self._listing_of_sku[product.sku] = listing_id

    def listing_for(self, sku: str) -> SimListing:
        """The listing of a catalogue SKU (also the ones whose SKU field is empty on Etsy)."""
        return self.listings[self._listing_of_sku[sku]]

    def _product_for(self, catalog_sku: str, variation: str) -> dict[str, Any] | None:
        """The listing product a sold line came from (its SKU as listed, and its colour)."""
        listing = self.listings.get(self._listing_of_sku.get(catalog_sku, -1))
        if listing is None:
            return None
        listed_sku = "" if catalog_sku in EMPTY_SKU_PRODUCTS else catalog_sku
        for product in listing.products:
            values = [v for pv in product["property_values"] for v in pv["values"]]
            if product["sku"] == listed_sku and (not variation or variation in values):
                return product
        return None

    # -- installation ---------------------------------------------------------------

    def install(self, sandbox: Sandbox) -> None:
        def add(method: str, pattern: str, handler: Handler, name: str, *, oauth: bool) -> None:
            sandbox.route(
                self,
                method,
                pattern,
                handler,
                name=name,
                rate=RATE,
                rate_bucket=RATE_BUCKET,
                authenticated=oauth,
            )

        add("POST", TOKEN_PATH, self._token, ROUTE_TOKEN, oauth=False)
        add("GET", f"{API}/openapi-ping", self._ping, ROUTE_PING, oauth=False)
        add("GET", f"{API}/users/me", self._me, ROUTE_ME, oauth=True)
        add("GET", f"{API}/shops/{{shop_id}}/receipts", self._receipts, ROUTE_RECEIPTS, oauth=True)
        add(
            "GET",
            f"{API}/shops/{{shop_id}}/receipts/{{receipt_id}}",
            self._receipt,
            ROUTE_RECEIPT,
            oauth=True,
        )
        add(
            "POST",
            f"{API}/shops/{{shop_id}}/receipts/{{receipt_id}}/tracking",
            self._tracking,
            ROUTE_TRACKING,
            oauth=True,
        )
        add("GET", f"{API}/shops/{{shop_id}}/listings", self._listings, ROUTE_LISTINGS, oauth=True)
        add(
            "GET",
            f"{API}/listings/{{listing_id}}/inventory",
            self._inventory,
            ROUTE_INVENTORY_GET,
            oauth=True,
        )
        add(
            "PUT",
            f"{API}/listings/{{listing_id}}/inventory",
            self._put_inventory,
            ROUTE_INVENTORY_PUT,
            oauth=True,
        )

    def advance(self, now: datetime) -> None:
        for order in self.book.advance(now):
            self._take_stock(order)

    def _take_stock(self, order: GenOrder) -> None:
        for line in order.lines:
            product = self._product_for(line.sku, line.variation)
            if product is None:
                continue
            offering = product["offerings"][0]
            offering["quantity"] = max(0, int(offering["quantity"]) - line.quantity)
            listing = self.listings[self._listing_of_sku[line.sku]]
            listing.updated_at = epoch(order.created_at)
            listing.state = "active" if listing.quantity > 0 else "sold_out"

    def describe(self) -> dict[str, str]:
        return {
            "ETSY_API_URL": "the address above (paths /v3/application/… are appended)",
            "ETSY_OAUTH_URL": f"the address above + {TOKEN_PATH}",
            "ETSY_CLIENT_ID": self.client_id,
            "ETSY_CLIENT_SECRET": self.shared_secret,
            "ETSY_REFRESH_TOKEN": self.initial_refresh_token,
            "ETSY_SHOP_ID": str(self.shop_id),
            "receipts": str(len(self.book.orders)),
            "note": "refresh tokens rotate: after a restart of this sandbox, set ETSY_REFRESH_TOKEN again",
        }

    # -- the wire's common parts -----------------------------------------------------

    def _rate_headers(
        self, match: RouteMatch | None, remaining_today: int | None = None
    ) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if match is not None and match.rate_limit is not None:
            headers.append(("x-limit-per-second", f"{match.rate_limit:g}"))
            headers.append(("x-remaining-this-second", str(int(match.rate_remaining or 0))))
        left = self.remaining_today() if remaining_today is None else remaining_today
        headers.append(("x-limit-per-day", str(self.daily_limit)))
        headers.append(("x-remaining-today", str(left)))
        return headers

    def remaining_today(self) -> int:
        """Calls left in the rolling day (what ``x-remaining-today`` says)."""
        cutoff = self._sandbox.now().timestamp() - DAY_SECONDS
        while self._daily_calls and self._daily_calls[0] <= cutoff:
            self._daily_calls.popleft()
        return max(0, self.daily_limit - len(self._daily_calls))

    def throttled_response(self, request: SandboxRequest, retry_after: float) -> SandboxResponse:
        seconds = max(1, int(retry_after) + (1 if retry_after > int(retry_after) else 0))
        return _error(
            429,
            "Exceeded per second rate limit",
            headers=[
                ("retry-after", str(seconds)),
                ("x-limit-per-second", f"{RATE.rate * self._sandbox.rate_scale:g}"),
                ("x-remaining-this-second", "0"),
            ],
        )

    def server_error_response(self, request: SandboxRequest, status: int) -> SandboxResponse:
        return _error(status, "Internal server error; please try again later.")

    def _guard(self, request: SandboxRequest, match: RouteMatch, *, oauth: bool) -> SandboxResponse | None:
        """API key, daily budget and (for OAuth routes) the bearer token, in Etsy's order."""
        key = request.header("x-api-key")
        if not key:
            return _error(403, "Missing API key: send x-api-key: keystring:shared_secret.")
        keystring, colon, secret = key.partition(":")
        if not colon:
            return _error(403, "Shared secret is required in x-api-key header.")
        if not keystring or not secret or ":" in secret:
            return _error(403, "Invalid API key: should be in the format 'keystring:shared_secret'.")
        if keystring != self.client_id or secret != self.shared_secret:
            return _error(403, "Invalid API key.")
        remaining = self.remaining_today()
        if remaining <= 0:
            oldest = self._daily_calls[0] if self._daily_calls else self._sandbox.now().timestamp()
            wait = max(1, int(oldest + DAY_SECONDS - self._sandbox.now().timestamp()) + 1)
            return _error(
                429,
                "Exceeded daily rate limit",
                headers=[("retry-after", str(wait)), *self._rate_headers(match, remaining_today=0)],
            )
        self._daily_calls.append(self._sandbox.now().timestamp())
        if oauth:
            status = self.tokens.check(request.bearer_token())
            if status is not TokenStatus.VALID:
                why = (
                    "access token is expired" if status is TokenStatus.EXPIRED else "access token is invalid"
                )
                answer = _oauth_error(401, "invalid_token", why)
                answer.headers.extend(self._rate_headers(match))
                return answer
        return None

    def _shop_guard(self, match: RouteMatch) -> SandboxResponse | None:
        if match.params.get("shop_id") != str(self.shop_id):
            return _error(403, "The token does not have access to this shop.", self._rate_headers(match))
        return None

    def _ok(self, payload: Any, match: RouteMatch) -> SandboxResponse:
        return SandboxResponse.json(payload, headers=self._rate_headers(match))

    # -- rendering ------------------------------------------------------------------

    def _money(self, value: Decimal) -> dict[str, Any]:
        return money(value, self.currency)

    def _status(self, order: GenOrder) -> str:
        if order.status is GenStatus.CANCELLED:
            return "Fully Refunded" if order.paid_at is not None else "Canceled"
        if order.order_id in self.partial_refunds:
            return "Partially Refunded"
        if order.status in (GenStatus.SHIPPED, GenStatus.PARTIALLY_SHIPPED):
            return "Completed"
        if order.status is GenStatus.UNSHIPPED:
            return "Paid"
        return "Payment Processing" if order.seq % 3 == 0 else "Open"

    def _transaction(self, order: GenOrder, index: int, buyer_id: int) -> dict[str, Any]:
        line = order.lines[index]
        product = self._product_for(line.sku, line.variation)
        variations: list[dict[str, Any]] = []
        product_data: list[dict[str, Any]] = []
        for value in product["property_values"] if product else []:
            product_data.append(
                {
                    "property_id": value["property_id"],
                    "property_name": value["property_name"],
                    "scale_id": None,
                    "scale_name": None,
                    "value_ids": list(value["value_ids"]),
                    "values": list(value["values"]),
                }
            )
            variations.append(
                {
                    "property_id": value["property_id"],
                    "value_id": value["value_ids"][0],
                    "formatted_name": "Color"
                    if value["property_id"] == COLOR_PROPERTY
                    else value["property_name"],
                    "formatted_value": value["values"][0],
                }
            )
        if line.personalisation:
            variations.append(
                {
                    "property_id": PERSONALIZATION_PROPERTY,
                    "value_id": None,
                    "formatted_name": "Personalization",
                    "formatted_value": line.personalisation,
                }
            )
        shipped_at = order.shipments[0].shipped_at if order.shipments and line.quantity_shipped else None
        return {
            "transaction_id": int(line.line_id),
            "title": line.title,
            "description": f"{line.title}. Printed to order in our workshop.",
            "seller_user_id": self.user_id,
            "buyer_user_id": buyer_id,
            "create_timestamp": epoch(order.created_at),
            "created_timestamp": epoch(order.created_at),
            "paid_timestamp": epoch(order.paid_at) if order.paid_at else None,
            "shipped_timestamp": epoch(shipped_at) if shipped_at else None,
            "quantity": line.quantity,
            "listing_image_id": 5_000_000_000 + self._listing_of_sku.get(line.sku, 0) % 10**8,
            "receipt_id": int(order.order_id),
            "is_digital": False,
            "file_data": "",
            "listing_id": self._listing_of_sku.get(line.sku),
            "sku": "" if line.sku in EMPTY_SKU_PRODUCTS else line.sku,
            "product_id": product["product_id"] if product else None,
            "transaction_type": "listing",
            "price": self._money(line.unit_price),
            "shipping_cost": self._money(order.shipping_cost if index == 0 else Decimal(0)),
            "variations": variations,
            "product_data": product_data,
            "shipping_profile_id": 208_100_000_000 + self.shop_id % 10**6,
            "min_processing_days": 1,
            "max_processing_days": 3,
            "shipping_method": None,
            "shipping_upgrade": None,
            "expected_ship_date": epoch(order.ship_by),
            "buyer_coupon": 0.0,
            "shop_coupon": 0.0,
        }

    def render(self, order: GenOrder) -> dict[str, Any]:
        """A ShopReceipt as Etsy sends it (capitalised status, Money objects, epoch seconds)."""
        buyer = order.buyer
        buyer_id = int(buyer.user_id.lstrip("u") or 0)
        status = self._status(order)
        refunds: list[dict[str, Any]] = []
        if status == "Fully Refunded":
            refunds.append(self._refund(order.total, order.updated_at, "Order canceled"))
        elif status == "Partially Refunded":
            refunds.append(
                self._refund(self.partial_refunds[order.order_id], order.updated_at, "Partial refund")
            )
        lines = [
            buyer.name,
            buyer.line1,
            buyer.line2,
            f"{buyer.city}, {buyer.region} {buyer.postal_code}".strip(),
        ]
        shipped = order.status in (GenStatus.SHIPPED, GenStatus.PARTIALLY_SHIPPED)
        receipt = {
            "receipt_id": int(order.order_id),
            "receipt_type": 0,
            "seller_user_id": self.user_id,
            "seller_email": "workshop@titanforge.example",
            "buyer_user_id": buyer_id,
            "buyer_email": buyer.email,
            "name": buyer.name,
            "first_line": buyer.line1,
            "second_line": buyer.line2 or None,
            "city": buyer.city,
            "state": buyer.region or None,
            "zip": buyer.postal_code,
            "status": status,
            "formatted_address": "\n".join([*(x for x in lines if x), buyer.country]),
            "country_iso": buyer.country,
            "payment_method": "cc",
            "payment_email": None,
            "message_from_payment": None,
            "message_from_seller": "",
            "message_from_buyer": order.buyer_message,
            "is_shipped": shipped,
            "is_paid": order.paid_at is not None,
            "create_timestamp": epoch(order.created_at),
            "created_timestamp": epoch(order.created_at),
            "update_timestamp": epoch(order.updated_at),
            "updated_timestamp": epoch(order.updated_at),
            "is_gift": False,
            "gift_message": "",
            "gift_sender": "",
            "grandtotal": self._money(order.total),
            "subtotal": self._money(order.subtotal),
            "total_price": self._money(order.subtotal),
            "total_shipping_cost": self._money(order.shipping_cost),
            "total_tax_cost": self._money(order.tax),
            "total_vat_cost": self._money(Decimal(0)),
            "discount_amt": self._money(Decimal(0)),
            "gift_wrap_price": self._money(Decimal(0)),
            "shipments": [self._shipment(s) for s in order.shipments],
            "transactions": [self._transaction(order, i, buyer_id) for i in range(len(order.lines))],
            "refunds": refunds,
        }
        hook = self.render_hooks.get(order.order_id)
        if hook is not None:
            hook(receipt)
        return receipt

    def _refund(self, amount: Decimal, at: datetime, reason: str) -> dict[str, Any]:
        return {
            "reason": reason,
            "note_from_issuer": "",
            "status": "SUCCESS",
            "amount": self._money(amount),
            "created_timestamp": epoch(at),
        }

    @staticmethod
    def _shipment(shipment: GenShipment) -> dict[str, Any]:
        digits = "".join(c for c in shipment.shipment_id if c.isdigit()) or "0"
        return {
            "receipt_shipping_id": int(digits),
            "shipment_notification_timestamp": epoch(shipment.shipped_at),
            "carrier_name": shipment.carrier,
            "tracking_code": shipment.tracking,
        }

    # -- changes tests can make ------------------------------------------------------------

    def refund_partially(self, receipt_id: str, amount: Decimal) -> None:
        order = self.book.orders[receipt_id]
        self.partial_refunds[receipt_id] = amount
        order.updated_at = max(order.updated_at, self._sandbox.now())

    def revoke_refresh_tokens(self) -> None:
        """What a seller's password change does: every refresh token stops working."""
        self.tokens.revoke_refresh_tokens()

    @property
    def tracking_calls(self) -> int:
        """createReceiptShipment calls whose handler ran (for exactly-once checks)."""
        return self._sandbox.log.count(ROUTE_TRACKING, applied_only=True)

    # -- routes ------------------------------------------------------------------------

    def _token(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=False)
        if refused:
            return refused
        if "application/x-www-form-urlencoded" not in (request.header("content-type") or "").lower():
            return _oauth_error(400, "invalid_request", "The body must be application/x-www-form-urlencoded.")
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return _oauth_error(400, "unsupported_grant_type", "Only refresh_token is supported here.")
        if form.get("client_id") != self.client_id:
            return _oauth_error(401, "invalid_client", "client_id is not a valid keystring")
        issued = self.tokens.exchange(form.get("refresh_token", ""), form.get("client_id"))
        if issued is None:
            return _oauth_error(400, "invalid_grant", "refresh_token is revoked")
        body = {
            "access_token": issued.access_token,
            "token_type": "Bearer",
            "expires_in": issued.expires_in,
            "refresh_token": issued.refresh_token,
        }
        return self._ok(body, match)

    def _ping(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        return self._guard(request, match, oauth=False) or self._ok({"application_id": APPLICATION_ID}, match)

    def _me(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True)
        if refused:
            return refused
        body: dict[str, Any] = {"user_id": self.user_id}
        if self.report_shop_in_me:
            body["shop_id"] = self.shop_id
        return self._ok(body, match)

    def _receipts(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True) or self._shop_guard(match)
        if refused:
            return refused
        try:
            query = _ReceiptQuery.parse(request)
        except ValueError as exc:
            return _error(400, str(exc), self._rate_headers(match))
        candidates = [o for o in self.book.orders.values() if query.matches(self, o)]
        candidates.sort(key=query.sort_key, reverse=query.descending)
        size = self._sandbox.page_size(query.limit)
        page = candidates[query.offset : query.offset + size]
        return self._ok({"count": len(candidates), "results": [self.render(o) for o in page]}, match)

    def _find(self, match: RouteMatch) -> GenOrder | None:
        return self.book.get(match.params["receipt_id"])

    def _receipt(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True) or self._shop_guard(match)
        if refused:
            return refused
        order = self._find(match)
        if order is None:
            return _error(
                404, f"Receipt {match.params['receipt_id']} was not found.", self._rate_headers(match)
            )
        return self._ok(self.render(order), match)

    def _requires_tracking(self, order: GenOrder) -> bool:
        # Etsy: US orders over $10 and orders to India need a tracking number and carrier.
        if order.buyer.country == "IN":
            return True
        return order.buyer.country == "US" and self.currency == "USD" and order.total > Decimal(10)

    def _tracking(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True) or self._shop_guard(match)
        if refused:
            return refused
        headers = self._rate_headers(match)
        order = self._find(match)
        if order is None:
            return _error(404, f"Receipt {match.params['receipt_id']} was not found.", headers)
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        fields: dict[str, str]
        if content_type == "application/json":
            try:
                raw = request.json()
            except ValueError:
                return _error(400, "The request body is not valid JSON.", headers)
            if not isinstance(raw, dict):
                return _error(400, "The request body must be a JSON object.", headers)
            fields = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in raw.items()}
        elif content_type == "application/x-www-form-urlencoded":
            # A JSON text sent as a form parses into one odd key: the tracking is silently lost, as on Etsy.
            fields = request.form()
        else:
            return _error(415, f"Unsupported Content-Type {content_type or '(none)'}.", headers)
        self.tracking_requests.append(TrackingRequest(order.order_id, content_type, dict(fields)))
        tracking = fields.get("tracking_code", "").strip()
        carrier = fields.get("carrier_name", "").strip().lower()
        note = fields.get("note_to_buyer", "").strip()
        if order.status is GenStatus.CANCELLED:
            return _error(409, "This receipt was canceled and cannot be marked as shipped.", headers)
        if order.paid_at is None:
            return _error(409, "This receipt is not paid yet and cannot be marked as shipped.", headers)
        if not tracking and not carrier:
            if self._requires_tracking(order):
                return _error(400, "A tracking number is required", headers)
            self._ship_without_tracking(order)
            return self._ok(self.render(order), match)
        if not tracking:
            return _error(400, "A tracking number is required", headers)
        if carrier not in self.carrier_codes:
            return _error(400, f"carrier_name '{carrier}' is not a supported shipping carrier.", headers)
        label = etsy_carriers().get(carrier, carrier)
        now = self._sandbox.now()
        if any(line.quantity_unshipped > 0 for line in order.lines):
            try:
                self.book.ship(order.order_id, label, tracking, None, now, note=note)
            except ShipError as exc:
                return _error(409, str(exc), headers)
        else:
            # A receipt may hold several shipment records; each one e-mails the buyer again.
            order.shipments.append(
                GenShipment(f"S{self._ids.product_id()}", label, tracking, now, [], note=note)
            )
            order.updated_at = max(order.updated_at, now)
        self.buyer_emails.append((order.order_id, tracking))
        return self._ok(self.render(order), match)

    def _ship_without_tracking(self, order: GenOrder) -> None:
        now = self._sandbox.now()
        for line in order.lines:
            line.quantity_shipped = line.quantity
        order.status = GenStatus.SHIPPED
        order.updated_at = max(order.updated_at, now)
        self.buyer_emails.append((order.order_id, ""))

    def _listings(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True) or self._shop_guard(match)
        if refused:
            return refused
        headers = self._rate_headers(match)
        state = request.param("state", "active") or "active"
        if state not in ("active", "inactive", "sold_out", "draft", "expired"):
            return _error(
                400, f"state '{state}' is not one of active, inactive, sold_out, draft, expired.", headers
            )
        try:
            limit = int(request.param("limit") or 25)
            offset = int(request.param("offset") or 0)
        except ValueError:
            return _error(400, "limit and offset must be whole numbers.", headers)
        if not 1 <= limit <= 100 or offset < 0:
            return _error(400, "limit must be between 1 and 100 and offset at least 0.", headers)
        found = [
            lst for lst in sorted(self.listings.values(), key=lambda x: x.listing_id) if lst.state == state
        ]
        page = found[offset : offset + self._sandbox.page_size(limit)]
        return self._ok({"count": len(found), "results": [self._render_listing(lst) for lst in page]}, match)

    def _render_listing(self, listing: SimListing) -> dict[str, Any]:
        prices = [Decimal(o["price"]["amount"]) for p in listing.products for o in p["offerings"]]
        divisor = 10 ** CURRENCY_EXPONENT.get(self.currency, 2)
        return {
            "listing_id": listing.listing_id,
            "user_id": self.user_id,
            "shop_id": self.shop_id,
            "title": listing.title,
            "state": listing.state,
            "quantity": listing.quantity,
            "has_variations": any(p["property_values"] for p in listing.products),
            "price": {"amount": int(min(prices)), "divisor": divisor, "currency_code": self.currency},
            "skus": listing.skus,
            "updated_timestamp": listing.updated_at,
            "last_modified_timestamp": listing.updated_at,
        }

    def _listing(self, match: RouteMatch) -> SimListing | None:
        raw = match.params["listing_id"]
        return self.listings.get(int(raw)) if raw.isdigit() else None

    def _inventory(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True)
        if refused:
            return refused
        listing = self._listing(match)
        if listing is None:
            return _error(
                404, f"Listing {match.params['listing_id']} was not found.", self._rate_headers(match)
            )
        return self._ok(listing.inventory(), match)

    def _put_inventory(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._guard(request, match, oauth=True)
        if refused:
            return refused
        headers = self._rate_headers(match)
        listing = self._listing(match)
        if listing is None:
            return _error(404, f"Listing {match.params['listing_id']} was not found.", headers)
        content_type = (request.header("content-type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return _error(
                400, "updateListingInventory takes a JSON body (Content-Type: application/json).", headers
            )
        try:
            body = request.json()
            products = self._validated_products(listing, body)
        except ValueError as exc:
            return _error(400, str(exc) or "The request body is not valid JSON.", headers)
        listing.products = products
        for name in _ON_PROPERTY:
            setattr(listing, name, [int(v) for v in body.get(name) or []])
        listing.updated_at = epoch(self._sandbox.now())
        listing.state = "active" if listing.quantity > 0 else "sold_out"
        return self._ok(listing.inventory(), match)

    def _validated_products(self, listing: SimListing, body: Any) -> list[dict[str, Any]]:
        """Etsy's checks on a full replacement; raises ValueError with Etsy-like words."""
        if not isinstance(body, dict) or not isinstance(body.get("products"), list) or not body["products"]:
            raise ValueError("products is required and must be a non-empty array.")
        has_variations = any(p["property_values"] for p in listing.products)
        for name in _ON_PROPERTY:
            value = body.get(name, [])
            if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
                raise ValueError(f"{name} must be an array of property ids.")
        products: list[dict[str, Any]] = []
        for index, raw in enumerate(body["products"]):
            where = f"products[{index}]"
            if not isinstance(raw, dict):
                raise ValueError(f"{where} must be an object.")
            for key in _PRODUCT_READ_ONLY:
                if key in raw:
                    raise ValueError(f"{where}.{key} is read-only and must not be sent.")
            values = raw.get("property_values") or []
            if has_variations and not values:
                raise ValueError("Property values can't be empty")
            clean_values: list[dict[str, Any]] = []
            for value in values:
                if not isinstance(value, dict) or not {"property_id", "value_ids", "values"} <= value.keys():
                    raise ValueError(f"{where}.property_values need property_id, value_ids and values.")
                for key in _PROPERTY_READ_ONLY:
                    if key in value:
                        raise ValueError(f"{where}.property_values.{key} is read-only and must not be sent.")
                clean_values.append({**value, "scale_name": None})
            offerings_raw = raw.get("offerings")
            if not isinstance(offerings_raw, list) or not offerings_raw:
                raise ValueError(f"{where}.offerings must be a non-empty array.")
            offerings: list[dict[str, Any]] = []
            for number, offering in enumerate(offerings_raw):
                at = f"{where}.offerings[{number}]"
                if not isinstance(offering, dict):
                    raise ValueError(f"{at} must be an object.")
                for key in _OFFERING_READ_ONLY:
                    if key in offering:
                        raise ValueError(f"{at}.{key} is read-only and must not be sent.")
                price = offering.get("price")
                if isinstance(price, bool) or not isinstance(price, int | float):
                    raise ValueError(f"Expected type 'float' for {at}.price.")
                quantity = offering.get("quantity")
                if (
                    isinstance(quantity, bool)
                    or not isinstance(quantity, int)
                    or not 0 <= quantity <= MAX_QUANTITY
                ):
                    raise ValueError(f"{at}.quantity must be a whole number from 0 to {MAX_QUANTITY}.")
                if not isinstance(offering.get("is_enabled"), bool):
                    raise ValueError(f"{at}.is_enabled is required.")
                try:
                    amount = Decimal(repr(price)) if isinstance(price, float) else Decimal(price)
                    price_money = self._money(amount)
                except (ValueError, InvalidOperation):
                    raise ValueError(
                        f"{at}.price {price} has too many decimals for {self.currency}."
                    ) from None
                offerings.append(
                    {
                        "offering_id": self._ids.product_id(),
                        "quantity": quantity,
                        "is_enabled": offering["is_enabled"],
                        "is_deleted": False,
                        "price": price_money,
                        "readiness_state_id": offering.get("readiness_state_id", READINESS_STATE_ID),
                    }
                )
            products.append(
                {
                    "product_id": self._ids.product_id(),
                    "sku": str(raw.get("sku") or ""),
                    "is_deleted": False,
                    "offerings": offerings,
                    "property_values": clean_values,
                }
            )
        if (
            not body.get("quantity_on_property")
            and len({o["quantity"] for p in products for o in p["offerings"]}) > 1
        ):
            raise ValueError(
                "All offerings must have the same quantity when quantity does not vary by property."
            )
        return products


@dataclass(slots=True)
class _ReceiptQuery:
    limit: int
    offset: int
    sort_on: str
    descending: bool
    bounds: dict[str, int]
    flags: dict[str, bool]

    @classmethod
    def parse(cls, request: SandboxRequest) -> _ReceiptQuery:
        def whole(name: str, default: int | None) -> int | None:
            raw = request.param(name)
            if raw is None or raw == "":
                return default
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"Expected an integer for '{name}'.") from None

        limit = whole("limit", 25) or 0
        if not 1 <= limit <= 100:
            raise ValueError("limit must be between 1 and 100.")
        offset = whole("offset", 0) or 0
        if offset < 0:
            raise ValueError("offset must be at least 0.")
        bounds: dict[str, int] = {}
        for name in ("min_created", "max_created", "min_last_modified", "max_last_modified"):
            value = whole(name, None)
            if value is not None:
                if value < EARLIEST_FILTER_EPOCH:
                    raise ValueError(f"{name} must be at least {EARLIEST_FILTER_EPOCH}.")
                bounds[name] = value
        sort_on = request.param("sort_on", "created") or "created"
        if sort_on not in ("created", "updated", "receipt_id"):
            raise ValueError("sort_on must be one of created, updated, receipt_id.")
        order = (request.param("sort_order", "desc") or "desc").lower()
        if order not in ("asc", "ascending", "up", "desc", "descending", "down"):
            raise ValueError("sort_order must be asc or desc.")
        flags: dict[str, bool] = {}
        for name in ("was_paid", "was_shipped", "was_canceled"):
            raw = request.param(name)
            if raw is not None:
                if raw.lower() not in ("true", "false", "1", "0"):
                    raise ValueError(f"{name} must be true or false.")
                flags[name] = raw.lower() in ("true", "1")
        return cls(limit, offset, sort_on, order in ("desc", "descending", "down"), bounds, flags)

    def matches(self, sim: EtsySimulator, order: GenOrder) -> bool:
        created, updated = epoch(order.created_at), epoch(order.updated_at)
        checks: dict[str, Callable[[int], bool]] = {
            "min_created": lambda v: created >= v,
            "max_created": lambda v: created <= v,
            "min_last_modified": lambda v: updated >= v,
            "max_last_modified": lambda v: updated <= v,
        }
        if not all(checks[name](value) for name, value in self.bounds.items()):
            return False
        states = {
            "was_paid": order.paid_at is not None,
            "was_shipped": order.status in (GenStatus.SHIPPED, GenStatus.PARTIALLY_SHIPPED),
            "was_canceled": order.status is GenStatus.CANCELLED,
        }
        return all(states[name] == wanted for name, wanted in self.flags.items())

    def sort_key(self, order: GenOrder) -> tuple[int, int]:
        receipt = int(order.order_id)
        if self.sort_on == "updated":
            return epoch(order.updated_at), receipt
        if self.sort_on == "created":
            return epoch(order.created_at), receipt
        return receipt, receipt


# ---------------------------------------------------------------------------
# Replay: the conformance files, byte for byte


REPLAY_FILES: dict[str, tuple[str, str, str]] = {
    # route name: (method, path pattern, file)
    ROUTE_TOKEN: ("POST", TOKEN_PATH, "oauthToken.refresh.response.200.json"),
    ROUTE_RECEIPTS: ("GET", f"{API}/shops/{{shop_id}}/receipts", "getShopReceipts.response.200.json"),
    ROUTE_RECEIPT: (
        "GET",
        f"{API}/shops/{{shop_id}}/receipts/{{receipt_id}}",
        "getShopReceipt.response.200.json",
    ),
    ROUTE_TRACKING: (
        "POST",
        f"{API}/shops/{{shop_id}}/receipts/{{receipt_id}}/tracking",
        "getShopReceipt.response.200.json",
    ),
    ROUTE_INVENTORY_GET: (
        "GET",
        f"{API}/listings/{{listing_id}}/inventory",
        "getListingInventory.response.200.json",
    ),
}


class EtsyReplaySimulator(BaseSimulator):
    """Serves ``../shared/conformance/etsy/`` files unchanged; a keystring-only ``x-api-key``
    gets the recorded 403.  Files that are missing are simply not served."""

    name = NAME

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def install(self, sandbox: Sandbox) -> None:
        refusal = self.folder / "error.403.shared-secret-required.json"
        for route, (method, pattern, file_name) in REPLAY_FILES.items():
            path = self.folder / file_name
            if not path.is_file():
                continue
            if refusal.is_file():
                sandbox.add_replay(
                    self, method, pattern, refusal, name=f"{route}.refused", status=403, when=_keystring_only
                )
            sandbox.add_replay(self, method, pattern, path, name=route)


def _keystring_only(request: SandboxRequest) -> bool:
    return ":" not in (request.header("x-api-key") or "")


def create_simulator(sandbox: Sandbox, *, seed: int) -> EtsySimulator:
    """The factory ``tf-console sandbox serve`` calls (see :mod:`tf_console.sandbox.registry`)."""
    return EtsySimulator(sandbox, seed=seed)
