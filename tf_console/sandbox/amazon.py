"""The Amazon part of the sandbox: SP-API's wire format over the seeded shop.

Two simulators, both named ``amazon`` (install one or the other):

* :class:`AmazonShopSimulator` — a live, stateful Selling Partner API over
  :mod:`tf_console.sandbox.shopgen`'s shop: Login with Amazon, Orders 2026-01-01
  search and get (key-set pages with ``+/=`` tokens, short pages now and then,
  the 2-minute rule on ``*Before``), v0 ``confirmShipment`` (204; shipping bumps
  the order's ``lastUpdatedTime`` and adds a package), Listings Items get/patch
  (an ACCEPTED patch applies after ``listing_delay`` seconds), FBA inventory
  summaries (``nextToken`` expires after 30 s) and marketplace participations.
  Amazon's own answers: 403 ``Unauthorized`` for an expired, revoked or missing
  token (without the word "expired"), 429 ``QuotaExceeded`` without rate headers,
  ``x-amzn-RequestId`` on everything and ``x-amzn-RateLimit-Limit`` on 2xx/400/404.
  ``pii="refused"`` answers 403 to requests asking for BUYER/RECIPIENT (no
  restricted role); ``pii="absent"`` leaves them out.
* :class:`AmazonReplaySimulator` — serves the conformance files
  (``../shared/conformance/amazon``) byte for byte, choosing the static-sandbox
  answer whose request parameters match, like Amazon's static sandbox.

=========================================================  ==========================
route name                                                 path
=========================================================  ==========================
``amazon.lwa.token``                                       ``POST /auth/o2/token``
``amazon.orders.search``                                   ``GET /orders/2026-01-01/orders``
``amazon.orders.get``                                      ``GET …/orders/{orderId}``
``amazon.shipment.confirm``                                ``POST /orders/v0/orders/{orderId}/
                                                           shipmentConfirmation``
``amazon.listings.get`` / ``amazon.listings.patch``        ``/listings/2021-08-01/items/
                                                           {sellerId}/{sku}``
``amazon.inventory.summaries``                             ``GET /fba/inventory/v1/summaries``
``amazon.sellers.participations``                          ``GET /sellers/v1/marketplaceParticipations``
``amazon.messaging.actions``                               ``GET /messaging/v1/orders/{orderId}``
``amazon.messaging.unexpectedProblem`` /                   ``POST …/orders/{orderId}/messages/
``amazon.messaging.confirmCustomizationDetails``           unexpectedProblem`` (or ``confirm…``)
=========================================================  ==========================

Messaging follows the model in ``messaging.json``: ``getMessagingActionsForOrder`` lists
``unexpectedProblem`` for an order that is not cancelled and ``confirmCustomizationDetails``
for one with a personalised line that is not shipped or cancelled; sending a type the order
does not list, an empty or too long text (2,000 characters; 800 for a customization check),
HTML or an e-mail address is refused with 400 ``InvalidInput``; a sent message answers 201 and
is kept in :attr:`AmazonShopSimulator.messages`.

For crash tests: ``confirmations`` lists every shipment confirmation Amazon accepted;
``sandbox.log.count("amazon.shipment.confirm", applied_only=True)`` (or
``GET /_sandbox/requests?route=amazon.shipment.confirm&applied=1``) counts every call
that reached the handler, refused ones included.  A ``slow`` fault on that route
(``Fault(FaultKind.SLOW, route="amazon.shipment.confirm", delay=…)``) holds the answer
back *after* the confirmation was applied, so a client can be killed mid-call.
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import json
import random
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from tf_console.sandbox.core import (
    BaseSimulator,
    RouteMatch,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    ServerRate,
    TokenAuthority,
    TokenStatus,
    compile_pattern,
)
from tf_console.sandbox.shopgen import GenOrder, GenShipment, GenStatus, OrderBook, ShipError, ShopGenerator

NAME = "amazon"
DEMO_SELLER_ID = "A2TFSANDBOX01"
DEMO_CLIENT_ID = "amzn1.application-oa2-client.tfsandbox"
DEMO_CLIENT_SECRET = "amzn1.oa2-cs.v1.tfsandboxsecret0000"
DEMO_REFRESH_TOKEN = "Atzr|tf-sandbox-refresh-0000"
US_MARKETPLACE = "ATVPDKIKX0DER"

SEARCH_PATH = "/orders/2026-01-01/orders"
ORDER_PATH = "/orders/2026-01-01/orders/{orderId}"
CONFIRM_PATH = "/orders/v0/orders/{orderId}/shipmentConfirmation"
LISTING_PATH = "/listings/2021-08-01/items/{sellerId}/{sku}"
FBA_PATH = "/fba/inventory/v1/summaries"
PARTICIPATIONS_PATH = "/sellers/v1/marketplaceParticipations"
LWA_PATH = "/auth/o2/token"

# Amazon's published usage plans (rate per second, burst), before the sandbox's rate_scale.
RATES: dict[str, ServerRate] = {
    "amazon.lwa.token": ServerRate(1.0, 5),
    "amazon.orders.search": ServerRate(0.0056, 20),
    "amazon.orders.get": ServerRate(0.5, 30),
    "amazon.shipment.confirm": ServerRate(2.0, 10),
    "amazon.listings.get": ServerRate(5.0, 10),
    "amazon.listings.patch": ServerRate(5.0, 5),
    "amazon.inventory.summaries": ServerRate(2.0, 2),
    "amazon.sellers.participations": ServerRate(0.016, 15),
    "amazon.messaging.actions": ServerRate(1.0, 5),
    "amazon.messaging.unexpectedProblem": ServerRate(1.0, 5),
    "amazon.messaging.confirmCustomizationDetails": ServerRate(1.0, 5),
}

MESSAGING_ACTIONS_PATH = "/messaging/v1/orders/{orderId}"
MESSAGE_TEXT_LIMITS: dict[str, int] = {"unexpectedProblem": 2000, "confirmCustomizationDetails": 800}
_HTML_TAG = re.compile(r"<\s*/?\s*[A-Za-z][^>]*>")
_EMAIL_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")


@dataclass(frozen=True, slots=True)
class SentBuyerMessage:
    """One Messaging API message Amazon accepted (for exactly-once checks)."""

    order_id: str
    message_type: str
    text: str
    at: datetime


@dataclass(frozen=True, slots=True)
class MarketplaceFacts:
    marketplace_id: str
    country: str
    name: str
    currency: str
    domain: str
    language: str


MARKETPLACE_FACTS: dict[str, MarketplaceFacts] = {
    "ATVPDKIKX0DER": MarketplaceFacts("ATVPDKIKX0DER", "US", "Amazon.com", "USD", "www.amazon.com", "en_US"),
    "A1F83G8C2ARO7P": MarketplaceFacts(
        "A1F83G8C2ARO7P", "GB", "Amazon.co.uk", "GBP", "www.amazon.co.uk", "en_GB"
    ),
    "A1PA6795UKMFR9": MarketplaceFacts("A1PA6795UKMFR9", "DE", "Amazon.de", "EUR", "www.amazon.de", "de_DE"),
    "A1VC38T7YXB528": MarketplaceFacts(
        "A1VC38T7YXB528", "JP", "Amazon.co.jp", "JPY", "www.amazon.co.jp", "ja_JP"
    ),
}

# Seller Central's carrier codes (those a small shop meets); anything else must be Other + carrierName.
CARRIER_CODES: frozenset[str] = frozenset(
    {
        "USPS",
        "UPS",
        "FedEx",
        "DHL",
        "DHL eCommerce",
        "Royal Mail",
        "Parcelforce",
        "Amazon Shipping",
        "OnTrac",
        "Canada Post",
        "Deutsche Post",
        "DPD",
        "Hermes",
        "GLS",
        "Japan Post",
        "Yamato Transport",
        "Other",
    }
)

FBA_SKUS: tuple[str, ...] = ("STK-NOZZLE-04", "STK-PEI-SHEET", "STK-BELT-GT2-5M")
_PRODUCT_TYPES: dict[str, str] = {
    "PRT-DRAGON-S": "TOY_FIGURE",
    "PRT-DRAGON-L": "TOY_FIGURE",
    "PRT-NAMEPLATE": "SIGNAGE",
    "PRT-KEYCHAIN-NAME": "KEYCHAIN",
    "PRT-PLANTER-M": "PLANTER",
    "PRT-CABLE-CLIP-10": "CABLE_TIE",
    "PRT-GRIDFINITY-2X2": "STORAGE_BOX",
    "PRT-LITHOPHANE": "LAMP",
    "PRT-MINI-TERRAIN": "TOY_FIGURE",
    "STK-NOZZLE-04": "3D_PRINTER_ACCESSORY",
    "STK-PLA-1KG-BLK": "3D_PRINTER_FILAMENT",
    "STK-PEI-SHEET": "3D_PRINTER_ACCESSORY",
    "STK-BELT-GT2-5M": "3D_PRINTER_ACCESSORY",
}
# Attributes a patch may touch in this sandbox (a misspelt name such as fulfillmentAvailability is INVALID).
_PATCHABLE = frozenset(
    {"fulfillment_availability", "item_name", "list_price", "purchasable_offer", "merchant_shipping_group"}
)

PAGINATION_TTL = timedelta(hours=24)
SEARCH_FILTERS = (
    "createdAfter",
    "createdBefore",
    "lastUpdatedAfter",
    "lastUpdatedBefore",
    "marketplaceIds",
    "fulfillmentStatuses",
    "fulfilledBy",
)
_STATUS_WIRE = {
    GenStatus.PENDING: "PENDING",
    GenStatus.UNSHIPPED: "UNSHIPPED",
    GenStatus.PARTIALLY_SHIPPED: "PARTIALLY_SHIPPED",
    GenStatus.SHIPPED: "SHIPPED",
    GenStatus.CANCELLED: "CANCELLED",
}
_ADDRESS_STATUSES = frozenset({GenStatus.UNSHIPPED, GenStatus.PARTIALLY_SHIPPED, GenStatus.SHIPPED})
# Page tokens start with these bytes so their base64 always carries the URL-unsafe "+" and "/",
# and are padded to end in "==": every token needs exact, single URL-encoding.
_TOKEN_MAGIC = b"\xfb\xff\xbf"
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$")


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    """ISO 8601 as SP-API accepts it: ``T`` mandatory and a zone (an unencoded ``+`` arrives as a space)."""
    if not _ISO_TIME.match(text):
        raise ValueError(f"{text!r} is not an ISO 8601 date-time")
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def amazon_order_id(rng: random.Random, seq: int) -> str:
    prefix = rng.choice(("111", "112", "113", "114"))
    return f"{prefix}-{rng.randrange(10**6, 10**7)}-{rng.randrange(10**6, 10**7)}"


def amazon_item_id(rng: random.Random, seq: int) -> str:
    return str(rng.randrange(10**13, 10**14))


def _money(amount: Decimal, currency: str) -> dict[str, str]:
    return {"amount": format(amount, "f"), "currencyCode": currency}


def _csv_param(request: SandboxRequest, name: str) -> list[str]:
    values: list[str] = []
    for raw in request.params(name):
        values.extend(part for part in raw.split(",") if part)
    return values


def _encode_token(payload: dict[str, Any]) -> str:
    raw = _TOKEN_MAGIC + json.dumps(payload, separators=(",", ":")).encode()
    raw += b" " * ((1 - len(raw)) % 3)  # JSON ignores trailing blanks; this length leaves "==" padding
    return base64.b64encode(raw).decode("ascii")


def _decode_token(token: str) -> dict[str, Any]:
    raw = base64.b64decode(token.encode("ascii"), validate=True)
    if not raw.startswith(_TOKEN_MAGIC):
        raise ValueError("not one of our tokens")
    data = json.loads(raw[len(_TOKEN_MAGIC) :])
    if not isinstance(data, dict):
        raise ValueError("not one of our tokens")
    return data


class BadInput(Exception):
    """A request Amazon answers with 400 InvalidInput; the message is Amazon-style detail."""


@dataclass(slots=True)
class SimListing:
    sku: str
    asin: str
    product_type: str
    title: str
    fulfilled_by_amazon: bool
    attributes: dict[str, Any]
    created: datetime
    updated: datetime
    #: (apply at, attribute name, new value or None to delete)
    pending: list[tuple[datetime, str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class FbaStockLevel:
    fulfillable: int
    inbound_working: int
    inbound_shipped: int
    reserved: int
    unfulfillable: int
    updated: datetime

    @property
    def total(self) -> int:
        return (
            self.fulfillable
            + self.inbound_working
            + self.inbound_shipped
            + self.reserved
            + self.unfulfillable
        )


@dataclass(frozen=True, slots=True)
class Confirmation:
    """One applied confirmShipment call (for exactly-once checks)."""

    order_id: str
    package_reference_id: str
    carrier: str
    tracking: str
    at: datetime
    edited: bool  # the package reference already existed: Amazon edits the package


def _error_body(code: str, message: str, details: str | None = None) -> dict[str, Any]:
    error: dict[str, str] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"errors": [error]}


class _AmazonAnswers(BaseSimulator):
    """What both Amazon simulators answer the same way: request ids, throttling, outages."""

    name = NAME

    def __init__(self, seed: int) -> None:
        self._ids = random.Random(seed ^ 0xA3A20)

    def request_id(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def answer(
        self,
        payload: Any,
        status: int = 200,
        match: RouteMatch | None = None,
        *,
        extra: Iterable[tuple[str, str]] = (),
    ) -> SandboxResponse:
        headers = [("x-amzn-RequestId", self.request_id()), *extra]
        if match is not None and match.rate_limit is not None and status in (200, 201, 204, 400, 404):
            headers.append(("x-amzn-RateLimit-Limit", f"{match.rate_limit:g}"))
        if status == 204:
            return SandboxResponse(204, b"", headers)
        return SandboxResponse.json(payload, status=status, headers=headers)

    def throttled_response(self, request: SandboxRequest, retry_after: float) -> SandboxResponse:
        # Amazon sends neither x-amzn-RateLimit-Limit nor Retry-After with a 429.
        return self.answer(
            _error_body("QuotaExceeded", "You exceeded your quota for the requested resource."), 429
        )

    def server_error_response(self, request: SandboxRequest, status: int) -> SandboxResponse:
        if status == 503:
            return self.answer(_error_body("ServiceUnavailable", "Service temporarily unavailable."), 503)
        return self.answer(
            _error_body("InternalFailure", "We encountered an internal error. Please try again."), status
        )


class AmazonShopSimulator(_AmazonAnswers):
    """The live Amazon simulator; ``book`` is the shop, ``listings``/``fba`` its stock."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        seed: int | None = None,
        orders_per_hour: float = 6.0,
        backfill: int = 60,
        backfill_days: float = 10.0,
        marketplace_id: str = US_MARKETPLACE,
        fba_share: float = 0.15,
        pii: str = "full",
        access_ttl: float = 3600.0,
        listing_delay: float = 120.0,
        fba_token_ttl: float = 30.0,
        inventory_page_size: int = 2,
        seller_id: str = DEMO_SELLER_ID,
        client_id: str = DEMO_CLIENT_ID,
        client_secret: str = DEMO_CLIENT_SECRET,
        refresh_token: str = DEMO_REFRESH_TOKEN,
        path_prefix: str = "",
    ) -> None:
        seed = sandbox.seed if seed is None else seed
        super().__init__(seed)
        if pii not in ("full", "absent", "refused"):
            raise ValueError("pii must be full, absent or refused")
        if marketplace_id not in MARKETPLACE_FACTS:
            raise ValueError(f"the sandbox knows marketplaces {', '.join(MARKETPLACE_FACTS)}")
        self._sandbox = sandbox
        self.marketplace = MARKETPLACE_FACTS[marketplace_id]
        self.pii = pii
        self.listing_delay = timedelta(seconds=listing_delay)
        self.fba_token_ttl = timedelta(seconds=fba_token_ttl)
        self.inventory_page_size = max(1, inventory_page_size)
        self.seller_id = seller_id
        self.client_id = client_id
        self.client_secret = client_secret
        self.initial_refresh_token = refresh_token
        self.prefix = path_prefix.rstrip("/")
        self._rng = random.Random(seed ^ 0xA11CE)
        self._fba_share = fba_share
        now = sandbox.now()
        self.generator = ShopGenerator(
            seed,
            currencies=((self.marketplace.currency, 1),),
            order_id=amazon_order_id,
            line_id=amazon_item_id,
            unpaid_share=0.1,
        )
        self.book = OrderBook(
            self.generator,
            now,
            orders_per_hour=orders_per_hour,
            backfill=backfill,
            backfill_days=backfill_days,
        )
        self.tokens = TokenAuthority(
            sandbox.clock,
            random.Random(seed ^ 0x70CE),
            prefix="Atza|tfsbx",
            refresh_tokens=[refresh_token],
            access_ttl=access_ttl,
            rotate_refresh=False,
            client_id=client_id,
        )
        self.authority = self.tokens  # the base class expires these on the expired-token fault
        self._events: list[tuple[datetime, int, str, str]] = []
        self._event_seq = 0
        self._package_refs: dict[str, str] = {}  # GenShipment.shipment_id -> packageReferenceId
        self._ship_times: dict[str, datetime] = {}  # GenShipment.shipment_id -> shipDate given
        self.confirmations: list[Confirmation] = []
        self.listing_patches: list[tuple[str, dict[str, Any]]] = []
        self.messages: list[SentBuyerMessage] = []
        self.listings: dict[str, SimListing] = {}
        self.fba: dict[str, FbaStockLevel] = {}
        self._seed_shop(now)
        self._now = now

    # -- the shop -----------------------------------------------------------------------

    def _schedule(self, when: datetime, action: str, order_id: str) -> None:
        self._event_seq += 1
        heapq.heappush(self._events, (when, self._event_seq, action, order_id))

    def _make_fba(self, order: GenOrder, now: datetime) -> None:
        order.fulfilled_by_marketplace = True
        ship_at = order.created_at + timedelta(hours=self._rng.randrange(4, 30))
        if ship_at <= now and order.status is GenStatus.UNSHIPPED:
            self._ship_by_amazon(order, ship_at)
        elif order.status in (GenStatus.PENDING, GenStatus.UNSHIPPED):
            self._schedule(ship_at, "fba-ship", order.order_id)

    def _ship_by_amazon(self, order: GenOrder, at: datetime) -> None:
        for line in order.lines:
            line.quantity_shipped = line.quantity
        order.status = GenStatus.SHIPPED
        order.updated_at = max(order.updated_at, at)

    def _seed_shop(self, now: datetime) -> None:
        for order in sorted(self.book.orders.values(), key=lambda o: o.seq):
            eligible = not order.shipments and order.status is not GenStatus.CANCELLED
            if eligible and self._rng.random() < self._fba_share:
                self._make_fba(order, now)
        # Something partially shipped, as real shops always have.
        for order in sorted(self.book.orders.values(), key=lambda o: o.seq):
            units = sum(line.quantity for line in order.lines)
            if order.status is GenStatus.UNSHIPPED and not order.fulfilled_by_marketplace and units >= 2:
                first = order.lines[0]
                shipped_at = min(now, order.created_at + timedelta(hours=3))
                self._record_ship(
                    order, "USPS", self.generator.tracking_for("USPS"), [(first.line_id, 1)], shipped_at
                )
                break
        # And an order placed minutes ago, not paid yet (no prices until it is).
        placed = now - timedelta(minutes=12)
        pending = self.generator.order(placed)
        pending.status, pending.paid_at = GenStatus.PENDING, None
        self.book.add(pending)
        self._schedule(placed + timedelta(minutes=45), "pay", pending.order_id)
        for product in self.generator.catalog:
            fba = product.sku in FBA_SKUS
            created = now - timedelta(days=200 + self._rng.randrange(0, 300))
            channel: dict[str, Any] = (
                {"fulfillment_channel_code": f"AMAZON_{self._region_code()}"}
                if fba
                else {"fulfillment_channel_code": "DEFAULT", "quantity": 25, "lead_time_to_ship_max_days": 3}
            )
            self.listings[product.sku] = SimListing(
                sku=product.sku,
                asin=f"B0{self._rng.randrange(10**7, 10**8)}",
                product_type=_PRODUCT_TYPES.get(product.sku, "HOME"),
                title=product.title,
                fulfilled_by_amazon=fba,
                attributes={
                    "item_name": [
                        {
                            "value": product.title,
                            "language_tag": self.marketplace.language,
                            "marketplace_id": self.marketplace.marketplace_id,
                        }
                    ],
                    "fulfillment_availability": [channel],
                },
                created=created,
                updated=created + timedelta(days=30),
            )
            if fba:
                self.fba[product.sku] = FbaStockLevel(
                    fulfillable=self._rng.randrange(20, 200),
                    inbound_working=self._rng.choice((0, 0, 24)),
                    inbound_shipped=self._rng.choice((0, 12)),
                    reserved=self._rng.randrange(0, 6),
                    unfulfillable=self._rng.choice((0, 0, 1)),
                    updated=now - timedelta(hours=self._rng.randrange(1, 48)),
                )

    def _region_code(self) -> str:
        return {"US": "NA", "GB": "EU", "DE": "EU", "JP": "JP"}[self.marketplace.country]

    def advance(self, now: datetime) -> None:
        for arrived in self.book.advance(now):
            if self._rng.random() < self._fba_share:
                self._make_fba(arrived, now)
        while self._events and self._events[0][0] <= now:
            when, _, action, order_id = heapq.heappop(self._events)
            order = self.book.get(order_id)
            if order is None:
                continue
            if action == "pay" and order.status is GenStatus.PENDING:
                order.status, order.paid_at, order.updated_at = GenStatus.UNSHIPPED, when, when
            elif action == "fba-ship" and order.status is GenStatus.UNSHIPPED:
                self._ship_by_amazon(order, when)
        for listing in self.listings.values():
            due = [p for p in listing.pending if p[0] <= now]
            for applied_at, name, value in due:
                if value is None:
                    listing.attributes.pop(name, None)
                else:
                    listing.attributes[name] = value
                listing.updated = applied_at
            listing.pending = [p for p in listing.pending if p[0] > now]
        self._now = now

    def _record_ship(
        self,
        order: GenOrder,
        carrier: str,
        tracking: str,
        lines: list[tuple[str, int]] | None,
        at: datetime,
        *,
        reference: str | None = None,
        ship_date: datetime | None = None,
    ) -> GenShipment:
        shipment = self.book.ship(order.order_id, carrier, tracking, lines, at)
        self._package_refs[shipment.shipment_id] = reference or str(len(order.shipments))
        self._ship_times[shipment.shipment_id] = ship_date or at
        return shipment

    def package_reference(self, shipment: GenShipment, order: GenOrder) -> str:
        return self._package_refs.get(shipment.shipment_id) or str(order.shipments.index(shipment) + 1)

    # -- installation ----------------------------------------------------------------------

    def install(self, sandbox: Sandbox) -> None:
        p = self.prefix

        def add(method: str, path: str, handler: Any, name: str, *, authenticated: bool = True) -> None:
            sandbox.route(
                self, method, p + path, handler, name=name, rate=RATES[name], authenticated=authenticated
            )

        add("POST", LWA_PATH, self._token, "amazon.lwa.token", authenticated=False)
        add("GET", SEARCH_PATH, self._search, "amazon.orders.search")
        add("GET", ORDER_PATH, self._get_order, "amazon.orders.get")
        add("POST", CONFIRM_PATH, self._confirm, "amazon.shipment.confirm")
        add("GET", LISTING_PATH, self._listing_get, "amazon.listings.get")
        add("PATCH", LISTING_PATH, self._listing_patch, "amazon.listings.patch")
        add("GET", FBA_PATH, self._fba_summaries, "amazon.inventory.summaries")
        add("GET", PARTICIPATIONS_PATH, self._participations, "amazon.sellers.participations")
        add("GET", MESSAGING_ACTIONS_PATH, self._messaging_actions, "amazon.messaging.actions")
        for message_type in MESSAGE_TEXT_LIMITS:
            add(
                "POST",
                f"{MESSAGING_ACTIONS_PATH}/messages/{message_type}",
                self._message_handler(message_type),
                f"amazon.messaging.{message_type}",
            )

    def describe(self) -> dict[str, str]:
        return {
            "AMAZON_SP_API_URL": f"<this address>{self.prefix}",
            "AMAZON_LWA_URL": f"<this address>{self.prefix}{LWA_PATH}",
            "AMAZON_SELLER_ID": self.seller_id,
            "AMAZON_CLIENT_ID": self.client_id,
            "AMAZON_CLIENT_SECRET": self.client_secret,
            "AMAZON_REFRESH_TOKEN": self.initial_refresh_token,
            "AMAZON_MARKETPLACE_IDS": self.marketplace.marketplace_id,
            "orders": str(len(self.book.orders)),
            "FBA SKUs": ", ".join(sorted(self.fba)),
        }

    # -- helpers -----------------------------------------------------------------------------

    def _refused(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse | None:
        token = request.header("x-amz-access-token")
        status = self.tokens.check(token)
        if status is TokenStatus.VALID:
            return None
        if not token:
            details = "Access token is missing in the request header."
        elif status is TokenStatus.UNKNOWN:
            details = "The access token you provided is revoked, malformed or invalid."
        else:
            details = ""  # an expired token gets Amazon's generic refusal: the word "expired" is not said
        return self.answer(
            _error_body("Unauthorized", "Access to requested resource is denied.", details), 403
        )

    def _restricted(self, datasets: set[str]) -> SandboxResponse | None:
        if self.pii == "refused" and datasets & {"BUYER", "RECIPIENT"}:
            return self.answer(
                _error_body("Unauthorized", "Access to requested resource is denied.", ""), 403
            )
        return None

    def _bad(self, match: RouteMatch, details: str, message: str = "Invalid Input") -> SandboxResponse:
        return self.answer(_error_body("InvalidInput", message, details), 400, match)

    # -- rendering ---------------------------------------------------------------------------

    def render(self, order: GenOrder, datasets: set[str]) -> dict[str, Any]:
        """One order as Orders API 2026-01-01 returns it with ``includedData`` = ``datasets``."""
        currency = order.currency
        pending = order.status is GenStatus.PENDING
        fba = order.fulfilled_by_marketplace
        data: dict[str, Any] = {
            "orderId": order.order_id,
            "createdTime": iso(order.created_at),
            "lastUpdatedTime": iso(order.updated_at),
        }
        if order.seq % 4 == 0:
            data["programs"] = ["PRIME"]
        data["salesChannel"] = {
            "channelName": "AMAZON",
            "marketplaceId": self.marketplace.marketplace_id,
            "marketplaceName": self.marketplace.name,
        }
        buyer = order.buyer
        if "BUYER" in datasets and self.pii == "full":
            buyer_data: dict[str, str] = {"buyerName": buyer.name}
            if not fba and order.status in _ADDRESS_STATUSES:
                handle = hashlib.sha256(order.order_id.encode()).hexdigest()[:16]
                buyer_data["buyerEmail"] = f"{handle}@marketplace.amazon.com"
            data["buyer"] = buyer_data
        if "RECIPIENT" in datasets and order.status in _ADDRESS_STATUSES:
            address: dict[str, str] = {}
            if self.pii == "full" and not fba:
                address["name"] = buyer.name
                address["addressLine1"] = buyer.line1
                if buyer.line2:
                    address["addressLine2"] = buyer.line2
            address["city"] = buyer.city
            if buyer.region:
                address["stateOrRegion"] = buyer.region
            address["postalCode"] = buyer.postal_code
            address["countryCode"] = buyer.country
            if self.pii == "full" and not fba:
                address["phone"] = buyer.phone
            address["addressType"] = "RESIDENTIAL"
            data["recipient"] = {"deliveryAddress": address}
        if "PROCEEDS" in datasets and not pending:
            breakdowns = [{"type": "ITEM", "subtotal": _money(order.subtotal, currency)}]
            if order.shipping_cost:
                breakdowns.append({"type": "SHIPPING", "subtotal": _money(order.shipping_cost, currency)})
            if order.tax:
                breakdowns.append({"type": "TAX", "subtotal": _money(order.tax, currency)})
            data["proceeds"] = {"grandTotal": _money(order.total, currency), "breakdowns": breakdowns}
        if "FULFILLMENT" in datasets:
            data["fulfillment"] = {
                "fulfillmentStatus": _STATUS_WIRE[order.status],
                "fulfilledBy": "AMAZON" if fba else "MERCHANT",
                "fulfillmentServiceLevel": "STANDARD",
                "shipByWindow": {
                    "earliestDateTime": iso(order.created_at),
                    "latestDateTime": iso(order.ship_by),
                },
                "deliverByWindow": {
                    "earliestDateTime": iso(order.ship_by + timedelta(days=2)),
                    "latestDateTime": iso(order.ship_by + timedelta(days=5)),
                },
            }
        items: list[dict[str, Any]] = []
        for line in order.lines:
            product: dict[str, Any] = {
                "asin": self.listings[line.sku].asin if line.sku in self.listings else "",
                "title": line.title,
                "sellerSku": line.sku,
                "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
            }
            if not pending:
                product["price"] = {"unitPrice": _money(line.unit_price, currency)}
            if line.personalisation and self.pii == "full":
                product["customization"] = {
                    "customizedUrl": f"https://sandbox.tf-console.invalid/custom/{order.order_id}/{line.line_id}.zip"
                }
            item: dict[str, Any] = {
                "orderItemId": line.line_id,
                "quantityOrdered": line.quantity,
                "product": product,
            }
            if "PROCEEDS" in datasets and not pending:
                line_total = line.unit_price * line.quantity
                item["proceeds"] = {
                    "proceedsTotal": _money(line_total, currency),
                    "breakdowns": [{"type": "ITEM", "subtotal": _money(line_total, currency)}],
                }
            if "CANCELLATION" in datasets and order.cancel_requested:
                item["cancellation"] = {
                    "cancellationRequest": {"requester": "BUYER", "cancelReason": "Buyer changed their mind"}
                }
            if "FULFILLMENT" in datasets:
                item["fulfillment"] = {
                    "quantityFulfilled": line.quantity_shipped,
                    "quantityUnfulfilled": line.quantity_unshipped,
                }
            items.append(item)
        data["orderItems"] = items
        if "PACKAGES" in datasets and not fba and order.shipments:
            data["packages"] = [self._render_package(order, s) for s in order.shipments]
        return data

    def _render_package(self, order: GenOrder, shipment: GenShipment) -> dict[str, Any]:
        age = self._now - shipment.shipped_at
        status = (
            "DELIVERED"
            if age > timedelta(days=3)
            else "IN_TRANSIT"
            if age > timedelta(hours=6)
            else "SHIPPED"
        )
        return {
            "packageReferenceId": self.package_reference(shipment, order),
            "createdTime": iso(shipment.shipped_at),
            "packageStatus": {"status": status},
            "carrier": shipment.carrier,
            "shipTime": iso(self._ship_times.get(shipment.shipment_id, shipment.shipped_at)),
            "trackingNumber": shipment.tracking,
            "packageItems": [{"orderItemId": line_id, "quantity": qty} for line_id, qty in shipment.lines],
        }

    # -- LWA --------------------------------------------------------------------------------

    def _token(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return SandboxResponse.json(
                {
                    "error": "unsupported_grant_type",
                    "error_description": "Only refresh_token is supported here.",
                },
                status=400,
            )
        if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
            return SandboxResponse.json(
                {"error": "invalid_client", "error_description": "Client authentication failed"}, status=401
            )
        refresh = form.get("refresh_token", "")
        issued = self.tokens.exchange(refresh, form.get("client_id"))
        if issued is None:
            return SandboxResponse.json(
                {
                    "error": "invalid_grant",
                    "error_description": "The request has an invalid grant parameter : refresh_token",
                },
                status=400,
            )
        return SandboxResponse.json(
            {
                "access_token": issued.access_token,
                "refresh_token": refresh,  # LWA echoes the refresh token; it does not rotate
                "token_type": "bearer",
                "expires_in": issued.expires_in,
            }
        )

    # -- orders ------------------------------------------------------------------------------

    def _search(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        datasets = set(_csv_param(request, "includedData"))
        restricted = self._restricted(datasets)
        if restricted:
            return restricted
        now = self._sandbox.now()
        try:
            query = self._search_query(request, now)
        except BadInput as exc:
            return self._bad(match, str(exc))
        candidates = self._matching_orders(query)
        if query.after is not None:
            candidates = [o for o in candidates if (query.key(o), o.order_id) > query.after]
        size = self._sandbox.page_size(query.page_size)
        page = candidates[:size]
        body: dict[str, Any] = {"orders": [self.render(o, datasets) for o in page]}
        if len(candidates) > size:
            last = page[-1]
            body["pagination"] = {
                "nextToken": _encode_token(
                    {
                        "f": query.fingerprint,
                        "c": query.cutoff.isoformat(),
                        "k": query.key(last).isoformat(),
                        "i": last.order_id,
                        "t": now.isoformat(),
                    }
                )
            }
        body["createdBefore" if query.by_created else "lastUpdatedBefore"] = iso(query.cutoff)
        return self.answer(body, 200, match)

    def _search_query(self, request: SandboxRequest, now: datetime) -> _SearchQuery:
        created_after = request.param("createdAfter")
        updated_after = request.param("lastUpdatedAfter")
        created_before = request.param("createdBefore")
        updated_before = request.param("lastUpdatedBefore")
        if (created_after is None) == (updated_after is None):
            raise BadInput("Exactly one of createdAfter and lastUpdatedAfter must be given.")
        by_created = created_after is not None
        if (by_created and updated_before is not None) or (not by_created and created_before is not None):
            raise BadInput(
                "createdAfter/createdBefore cannot be combined with lastUpdatedAfter/lastUpdatedBefore."
            )
        try:
            start = parse_iso((created_after if by_created else updated_after) or "")
            end_text = created_before if by_created else updated_before
            end = parse_iso(end_text) if end_text is not None else None
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        latest = now - timedelta(minutes=2)
        if end is not None and end > latest:
            raise BadInput("The *Before date must be at least two minutes before the time of the request.")
        if end is not None and end < start:
            raise BadInput("The *Before date must be on or after the *After date.")
        try:
            page_size = int(request.param("maxResultsPerPage") or 100)
        except ValueError:
            raise BadInput("maxResultsPerPage must be a whole number.") from None
        if not 1 <= page_size <= 100:
            raise BadInput("maxResultsPerPage must be between 1 and 100.")
        marketplaces = _csv_param(request, "marketplaceIds")
        if len(marketplaces) > 50:
            raise BadInput("At most 50 marketplaceIds may be given.")
        statuses = set(_csv_param(request, "fulfillmentStatuses"))
        unknown = statuses - {*_STATUS_WIRE.values(), "PENDING_AVAILABILITY", "UNFULFILLABLE"}
        if unknown:
            raise BadInput(f"Unknown fulfillmentStatuses {', '.join(sorted(unknown))}.")
        fulfilled_by = set(_csv_param(request, "fulfilledBy"))
        if fulfilled_by - {"MERCHANT", "AMAZON"}:
            raise BadInput("fulfilledBy must be MERCHANT or AMAZON.")
        fingerprint = hashlib.sha256(
            json.dumps([request.params(name) for name in SEARCH_FILTERS]).encode()
        ).hexdigest()[:24]
        query = _SearchQuery(
            by_created=by_created,
            start=start,
            cutoff=end or latest,
            page_size=page_size,
            marketplaces=marketplaces,
            statuses=statuses,
            fulfilled_by=fulfilled_by,
            fingerprint=fingerprint,
        )
        token = request.param("paginationToken")
        if token is not None:
            try:
                data = _decode_token(token)
                issued = datetime.fromisoformat(str(data["t"]))
                query.cutoff = datetime.fromisoformat(str(data["c"]))
                query.after = (datetime.fromisoformat(str(data["k"])), str(data["i"]))
            except (ValueError, KeyError, TypeError, UnicodeEncodeError):
                raise BadInput("We could not decode your paginationToken.") from None
            if data.get("f") != fingerprint:
                raise BadInput("The paginationToken was issued for different filters; send the same filters.")
            if now - issued > PAGINATION_TTL:
                raise BadInput("The paginationToken has expired.")
        return query

    def _matching_orders(self, query: _SearchQuery) -> list[GenOrder]:
        if query.marketplaces and self.marketplace.marketplace_id not in query.marketplaces:
            return []
        found = [
            o
            for o in self.book.orders.values()
            if query.start <= query.key(o) <= query.cutoff
            and (not query.statuses or _STATUS_WIRE[o.status] in query.statuses)
            and (
                not query.fulfilled_by
                or ("AMAZON" if o.fulfilled_by_marketplace else "MERCHANT") in query.fulfilled_by
            )
        ]
        found.sort(key=lambda o: (query.key(o), o.order_id))
        return found

    def _get_order(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        datasets = set(_csv_param(request, "includedData"))
        restricted = self._restricted(datasets)
        if restricted:
            return restricted
        order_id = match.params["orderId"]
        if not re.fullmatch(r"\d{3}-\d{7}-\d{7}", order_id):
            return self._bad(match, f"'{order_id}' is not a valid Amazon order id.")
        order = self.book.get(order_id)
        if order is None:
            return self.answer(_error_body("NotFound", f"Order {order_id} was not found."), 404, match)
        return self.answer({"order": self.render(order, datasets)}, 200, match)

    # -- shipment confirmation ----------------------------------------------------------------

    def _confirm(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        order_id = match.params["orderId"]
        order = self.book.get(order_id)
        if order is None:
            return self.answer(_error_body("NotFound", f"Order {order_id} was not found."), 404, match)
        try:
            body = request.json()
            detail = self._confirm_request(body, order)
        except ValueError as exc:
            return self._bad(match, str(exc) or "The request body is not valid JSON.")
        now = self._sandbox.now()
        reference = str(detail["packageReferenceId"])
        carrier = detail["carrierName"] if detail["carrierCode"] == "Other" else detail["carrierCode"]
        existing = next((s for s in order.shipments if self.package_reference(s, order) == reference), None)
        if existing is not None:
            # confirmShipment edits the package of an already confirmed reference.
            existing.carrier, existing.tracking = carrier, detail["trackingNumber"]
            self._ship_times[existing.shipment_id] = detail["shipDate"]
            order.updated_at = max(order.updated_at, now)
        else:
            try:
                self._record_ship(
                    order,
                    carrier,
                    detail["trackingNumber"],
                    detail["orderItems"],
                    now,
                    reference=reference,
                    ship_date=detail["shipDate"],
                )
            except ShipError as exc:
                return self._bad(match, str(exc))
        self.confirmations.append(
            Confirmation(order_id, reference, carrier, detail["trackingNumber"], now, existing is not None)
        )
        return self.answer(None, 204, match)

    def _confirm_request(self, body: Any, order: GenOrder) -> dict[str, Any]:
        """Validate a ConfirmShipmentRequest like Amazon does; ValueError carries Amazon's detail."""
        if not isinstance(body, dict):
            raise ValueError("The request body must be a ConfirmShipmentRequest object.")
        marketplace_id = body.get("marketplaceId")
        if marketplace_id != self.marketplace.marketplace_id:
            raise ValueError(f"marketplaceId {marketplace_id!r} is not the marketplace of this order.")
        detail = body.get("packageDetail")
        if not isinstance(detail, dict):
            raise ValueError("packageDetail is required.")
        for key in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems"):
            if detail.get(key) in (None, "", []):
                raise ValueError(f"packageDetail.{key} is required.")
        reference = detail["packageReferenceId"]
        if not isinstance(reference, str) or not reference.isdigit() or int(reference) <= 0:
            raise ValueError("PackageReferenceId must be a positive numeric value.")
        code = detail["carrierCode"]
        if code not in CARRIER_CODES:
            raise ValueError(
                f"carrierCode {code!r} is not on Amazon's carrier list; use Other with carrierName."
            )
        if code == "Other" and not str(detail.get("carrierName") or "").strip():
            raise ValueError("carrierName is required when carrierCode is Other.")
        try:
            ship_date = parse_iso(str(detail["shipDate"]))
        except ValueError:
            raise ValueError("shipDate must be an ISO 8601 date-time.") from None
        if order.fulfilled_by_marketplace:
            raise ValueError(
                f"Order {order.order_id} is fulfilled by Amazon; it cannot be confirmed by the seller."
            )
        lines: list[tuple[str, int]] = []
        known = {line.line_id for line in order.lines}
        for item in detail["orderItems"]:
            if not isinstance(item, dict) or str(item.get("orderItemId")) not in known:
                raise ValueError("OrderItemId is invalid for this order.")
            quantity = item.get("quantity")
            if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
                raise ValueError("quantity must be a positive whole number.")
            lines.append((str(item["orderItemId"]), quantity))
        return {
            "packageReferenceId": reference,
            "carrierCode": code,
            "carrierName": str(detail.get("carrierName") or "").strip(),
            "trackingNumber": str(detail["trackingNumber"]).strip(),
            "shipDate": ship_date,
            "orderItems": lines,
        }

    # -- listings -----------------------------------------------------------------------------

    def _listing_target(
        self, request: SandboxRequest, match: RouteMatch
    ) -> tuple[SimListing | None, SandboxResponse | None]:
        if match.params["sellerId"] != self.seller_id:
            return None, self._bad(match, "The sellerId does not match the authorised selling partner.")
        marketplaces = _csv_param(request, "marketplaceIds")
        if not marketplaces:
            return None, self._bad(match, "marketplaceIds is required.")
        sku = match.params["sku"]
        listing = self.listings.get(sku)
        if listing is None or self.marketplace.marketplace_id not in marketplaces:
            found = _error_body("NOT_FOUND", f"SKU '{sku}' not found in marketplace {','.join(marketplaces)}")
            return None, self.answer(found, 404, match)
        return listing, None

    def render_listing(self, listing: SimListing, datasets: set[str]) -> dict[str, Any]:
        data: dict[str, Any] = {"sku": listing.sku}
        if "summaries" in datasets:
            data["summaries"] = [
                {
                    "marketplaceId": self.marketplace.marketplace_id,
                    "asin": listing.asin,
                    "productType": listing.product_type,
                    "conditionType": "new_new",
                    "status": ["BUYABLE", "DISCOVERABLE"],
                    "itemName": listing.title,
                    "createdDate": iso(listing.created),
                    "lastUpdatedDate": iso(listing.updated),
                }
            ]
        if "attributes" in datasets:
            data["attributes"] = json.loads(json.dumps(listing.attributes))
        if "issues" in datasets:
            data["issues"] = []
        if "fulfillmentAvailability" in datasets:
            data["fulfillmentAvailability"] = self._availability(listing)
        return data

    def _availability(self, listing: SimListing) -> list[dict[str, Any]]:
        shown: list[dict[str, Any]] = []
        for entry in listing.attributes.get("fulfillment_availability") or []:
            code = str(entry.get("fulfillment_channel_code") or "")
            if not code:
                continue
            if code.startswith("AMAZON"):
                level = self.fba.get(listing.sku)
                shown.append({"fulfillmentChannelCode": code, "quantity": level.fulfillable if level else 0})
            else:
                shown.append({"fulfillmentChannelCode": code, "quantity": int(entry.get("quantity") or 0)})
        return shown

    def _listing_get(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        listing, problem = self._listing_target(request, match)
        if problem is not None or listing is None:
            return problem or self._bad(match, "Unknown listing.")
        datasets = set(_csv_param(request, "includedData")) or {"summaries"}
        return self.answer(self.render_listing(listing, datasets), 200, match)

    def _listing_patch(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        listing, problem = self._listing_target(request, match)
        if problem is not None or listing is None:
            return problem or self._bad(match, "Unknown listing.")
        try:
            body = request.json()
        except ValueError:
            return self._bad(match, "The request body is not valid JSON.")
        if not isinstance(body, dict) or not isinstance(body.get("patches"), list) or not body["patches"]:
            return self._bad(match, "productType and at least one patch are required.")
        if not isinstance(body.get("productType"), str) or not body["productType"]:
            return self._bad(match, "productType is required.")
        self.listing_patches.append((listing.sku, json.loads(json.dumps(body))))
        issues = self._patch_issues(listing, body)
        submission = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        if issues:
            return self.answer(
                {"sku": listing.sku, "status": "INVALID", "submissionId": submission, "issues": issues},
                200,
                match,
            )
        if request.param("mode") == "VALIDATION_PREVIEW":
            return self.answer(
                {"sku": listing.sku, "status": "VALID", "submissionId": submission, "issues": []}, 200, match
            )
        apply_at = self._sandbox.now() + self.listing_delay
        for patch in body["patches"]:
            name = patch["path"].split("/")[2]
            value = patch.get("value")
            if patch["op"] == "delete":
                listing.pending.append((apply_at, name, None))
            elif patch["op"] == "merge":
                merged = {
                    str(e.get("fulfillment_channel_code", i)): e
                    for i, e in enumerate(listing.attributes.get(name) or [])
                }
                for i, entry in enumerate(value or []):
                    merged[str(entry.get("fulfillment_channel_code", f"new{i}"))] = entry
                listing.pending.append((apply_at, name, list(merged.values())))
            else:
                listing.pending.append((apply_at, name, value))
        return self.answer(
            {"sku": listing.sku, "status": "ACCEPTED", "submissionId": submission, "issues": []}, 200, match
        )

    def _patch_issues(self, listing: SimListing, body: dict[str, Any]) -> list[dict[str, Any]]:
        issues: list[dict[str, Any]] = []

        def issue(code: str, message: str, attribute: str | None = None) -> None:
            found: dict[str, Any] = {"code": code, "message": message, "severity": "ERROR"}
            if attribute:
                found["attributeNames"] = [attribute]
            found["categories"] = ["INVALID_ATTRIBUTE"]
            issues.append(found)

        if body["productType"] != listing.product_type:
            issue(
                "4000003",
                f"The product type {body['productType']} does not match the listing's product type.",
            )
        for patch in body["patches"]:
            if not isinstance(patch, dict) or patch.get("op") not in ("add", "replace", "merge", "delete"):
                issue("4000001", "Each patch needs an op of add, replace, merge or delete.")
                continue
            path = patch.get("path")
            parts = path.split("/") if isinstance(path, str) else []
            if len(parts) != 3 or parts[0] != "" or parts[1] != "attributes" or not parts[2]:
                issue("4000002", f"Only top-level attributes can be patched, not {path!r}.")
                continue
            name = parts[2]
            if name not in _PATCHABLE:
                issue("90000900", "The attributes are invalid.", name)
                continue
            value = patch.get("value")
            if patch["op"] != "delete" and not isinstance(value, list):
                issue("4000004", f"The value of {name} must be an array.", name)
                continue
            if name == "fulfillment_availability" and isinstance(value, list):
                for entry in value:
                    if not isinstance(entry, dict) or not entry.get("fulfillment_channel_code"):
                        issue("99010", "'fulfillment_channel_code' is required but not supplied.", name)
                    elif "quantity" in entry and (
                        not isinstance(entry["quantity"], int) or entry["quantity"] < 0
                    ):
                        issue("99011", "'quantity' must be a whole number of at least 0.", name)
        return issues

    # -- FBA inventory ------------------------------------------------------------------------

    def _fba_summaries(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        marketplace_id = self.marketplace.marketplace_id
        if request.param("granularityType") != "Marketplace":
            return self._bad(match, "granularityType must be Marketplace.")
        if request.param("granularityId") != marketplace_id or _csv_param(request, "marketplaceIds") != [
            marketplace_id
        ]:
            return self._bad(
                match, "granularityId and marketplaceIds must name one marketplace of this seller."
            )
        wanted = _csv_param(request, "sellerSkus")
        if len(wanted) > 50:
            return self._bad(match, "At most 50 sellerSkus may be given.")
        skus = sorted(sku for sku in self.fba if not wanted or sku in wanted)
        now = self._sandbox.now()
        start = 0
        token = request.param("nextToken")
        if token is not None:
            try:
                data = _decode_token(token)
                start = int(data["o"])
                issued = datetime.fromisoformat(str(data["t"]))
            except (ValueError, KeyError, TypeError, UnicodeEncodeError):
                return self._bad(match, "The nextToken is not valid.")
            if now - issued > self.fba_token_ttl:
                return self._bad(match, "The nextToken has expired; request the first page again.")
        page = skus[start : start + self.inventory_page_size]
        details = request.param("details") == "true"
        body: dict[str, Any] = {}
        if start + self.inventory_page_size < len(skus):
            body["pagination"] = {"nextToken": _encode_token({"o": start + len(page), "t": now.isoformat()})}
        body["payload"] = {
            "granularity": {"granularityType": "Marketplace", "granularityId": marketplace_id},
            "inventorySummaries": [self._summary(sku, details) for sku in page],
        }
        return self.answer(body, 200, match)

    def _summary(self, sku: str, details: bool) -> dict[str, Any]:
        level, listing = self.fba[sku], self.listings[sku]
        summary: dict[str, Any] = {
            "asin": listing.asin,
            "fnSku": f"X00{listing.asin[-7:]}",
            "sellerSku": sku,
            "condition": "NewItem",
        }
        if details:
            summary["inventoryDetails"] = {
                "fulfillableQuantity": level.fulfillable,
                "inboundWorkingQuantity": level.inbound_working,
                "inboundShippedQuantity": level.inbound_shipped,
                "inboundReceivingQuantity": 0,
                "reservedQuantity": {
                    "totalReservedQuantity": level.reserved,
                    "pendingCustomerOrderQuantity": level.reserved,
                    "pendingTransshipmentQuantity": 0,
                    "fcProcessingQuantity": 0,
                },
                "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
                "unfulfillableQuantity": {
                    "totalUnfulfillableQuantity": level.unfulfillable,
                    "customerDamagedQuantity": level.unfulfillable,
                    "warehouseDamagedQuantity": 0,
                    "distributorDamagedQuantity": 0,
                    "carrierDamagedQuantity": 0,
                    "defectiveQuantity": 0,
                    "expiredQuantity": 0,
                },
            }
        summary["lastUpdatedTime"] = iso(level.updated)
        summary["productName"] = listing.title
        summary["totalQuantity"] = level.total
        return summary

    # -- sellers ------------------------------------------------------------------------------

    def _participations(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        m = self.marketplace
        return self.answer(
            {
                "payload": [
                    {
                        "marketplace": {
                            "id": m.marketplace_id,
                            "countryCode": m.country,
                            "name": m.name,
                            "defaultCurrencyCode": m.currency,
                            "defaultLanguageCode": m.language,
                            "domainName": m.domain,
                        },
                        "participation": {"isParticipating": True, "hasSuspendedListings": False},
                        "storeName": "TitanForge Prints",
                    }
                ]
            },
            200,
            match,
        )


    # -- messaging ------------------------------------------------------------------------------

    def allowed_messages(self, order: GenOrder) -> list[str]:
        """The message types getMessagingActionsForOrder lists for ``order`` now."""
        if order.status is GenStatus.CANCELLED:
            return []
        allowed = ["unexpectedProblem"]
        personalised = any(line.personalisation for line in order.lines)
        if personalised and order.status is not GenStatus.SHIPPED:
            allowed.append("confirmCustomizationDetails")
        return allowed

    def _messaging_order(
        self, request: SandboxRequest, match: RouteMatch
    ) -> GenOrder | SandboxResponse:
        refused = self._refused(request, match)
        if refused:
            return refused
        wanted = _csv_param(request, "marketplaceIds")
        if wanted != [self.marketplace.marketplace_id]:
            return self._bad(match, "marketplaceIds must name the one marketplace of the order.")
        order = self.book.get(match.params["orderId"])
        if order is None:
            return self.answer(
                _error_body("NotFound", f"Order {match.params['orderId']} was not found."), 404, match
            )
        return order

    def _messaging_actions(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        found = self._messaging_order(request, match)
        if isinstance(found, SandboxResponse):
            return found
        base = f"/messaging/v1/orders/{found.order_id}"
        query = f"?marketplaceIds={self.marketplace.marketplace_id}"
        actions = [
            {"href": f"{base}/messages/{name}{query}", "name": name} for name in self.allowed_messages(found)
        ]
        embedded = [
            {
                "_links": {
                    "schema": {"href": f"{base}/messages/{a['name']}/schema", "name": a["name"]},
                    "self": {"href": a["href"], "name": a["name"]},
                }
            }
            for a in actions
        ]
        body = {
            "_links": {"actions": actions, "self": {"href": f"{base}{query}"}},
            "_embedded": {"actions": embedded},
        }
        return self.answer(body, 200, match)

    def _message_handler(self, message_type: str) -> Callable[[SandboxRequest, RouteMatch], SandboxResponse]:
        def send(request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
            found = self._messaging_order(request, match)
            if isinstance(found, SandboxResponse):
                return found
            if message_type not in self.allowed_messages(found):
                return self._bad(match, f"{message_type} is not available for order {found.order_id}.")
            try:
                body = request.json()
            except ValueError:
                return self._bad(match, "The request body is not valid JSON.")
            text = body.get("text") if isinstance(body, dict) else None
            limit = MESSAGE_TEXT_LIMITS[message_type]
            if not isinstance(text, str) or not 1 <= len(text) <= limit:
                return self._bad(match, f"text must be 1 to {limit} characters.")
            if _HTML_TAG.search(text) or _EMAIL_ADDRESS.search(text):
                return self._bad(match, "text must not contain HTML or e-mail addresses.")
            self.messages.append(SentBuyerMessage(found.order_id, message_type, text, self._sandbox.now()))
            return self.answer({}, 201, match)

        return send


@dataclass(slots=True)
class _SearchQuery:
    by_created: bool
    start: datetime
    cutoff: datetime
    page_size: int
    marketplaces: list[str]
    statuses: set[str]
    fulfilled_by: set[str]
    fingerprint: str
    after: tuple[datetime, str] | None = None

    def key(self, order: GenOrder) -> datetime:
        return order.created_at if self.by_created else order.updated_at


# ---------------------------------------------------------------------------
# Replay of the conformance files


@dataclass(frozen=True, slots=True)
class ReplayOperation:
    method: str
    pattern: str


#: operation prefix of a conformance file → where that operation lives
REPLAY_OPERATIONS: dict[str, ReplayOperation] = {
    "orders2026.searchOrders": ReplayOperation("GET", SEARCH_PATH),
    "orders2026.getOrder": ReplayOperation("GET", ORDER_PATH),
    "getOrders": ReplayOperation("GET", "/orders/v0/orders"),
    "getOrder": ReplayOperation("GET", "/orders/v0/orders/{orderId}"),
    "getOrderItems": ReplayOperation("GET", "/orders/v0/orders/{orderId}/orderItems"),
    "getOrderAddress": ReplayOperation("GET", "/orders/v0/orders/{orderId}/address"),
    "getOrderBuyerInfo": ReplayOperation("GET", "/orders/v0/orders/{orderId}/buyerInfo"),
    "getOrderItemsBuyerInfo": ReplayOperation("GET", "/orders/v0/orders/{orderId}/orderItems/buyerInfo"),
    "confirmShipment": ReplayOperation("POST", CONFIRM_PATH),
    "updateShipmentStatus": ReplayOperation("POST", "/orders/v0/orders/{orderId}/shipment"),
    "createRestrictedDataToken": ReplayOperation("POST", "/tokens/2021-03-01/restrictedDataToken"),
    "getInventorySummaries": ReplayOperation("GET", FBA_PATH),
    "getListingsItem": ReplayOperation("GET", LISTING_PATH),
    "patchListingsItem": ReplayOperation("PATCH", LISTING_PATH),
}
_SANDBOX_FILE = re.compile(r"^(?P<op>.+)\.sandbox\.(?P<status>\d{3})(?:\.(?P<n>\d+))?\.request\.json$")
# ``includedData`` only selects datasets; it does not tell the static cases apart.
_IGNORED_PARAMETERS = frozenset({"includedData"})


def _wanted_value(value: Any) -> list[str] | str:
    if isinstance(value, list):
        return [str(v) for v in value]
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _replay_predicate(pattern: str, parameters: Mapping[str, Any]) -> Callable[[SandboxRequest], bool]:
    """True for requests carrying every parameter of a static-sandbox case (others may be added)."""
    regex = compile_pattern(pattern)
    path_names = set(regex.groupindex)
    wanted: dict[str, Any] = {}
    body: Any = None
    has_body = False
    for name, spec in parameters.items():
        if name in _IGNORED_PARAMETERS or not isinstance(spec, dict):
            continue
        if name in ("body", "payload"):
            if "value" in spec:
                has_body, body = True, spec["value"]
            continue
        if "value" in spec:
            wanted[name] = _wanted_value(spec["value"])

    def matches(request: SandboxRequest) -> bool:
        found = regex.fullmatch(request.path)
        if found is None:
            return False
        path_values = {k: unquote(v) for k, v in found.groupdict().items()}
        for name, value in wanted.items():
            if name in path_names:
                if path_values.get(name) != value:
                    return False
            elif isinstance(value, list):
                if sorted(_csv_param(request, name)) != sorted(value):
                    return False
            elif request.param(name) != value:
                return False
        if has_body:
            try:
                return bool(request.json() == body)
            except ValueError:
                return False
        return True

    return matches


class AmazonReplaySimulator(_AmazonAnswers):
    """Serves the conformance files of ``folder`` byte for byte (204 answers without a body)."""

    def __init__(self, sandbox: Sandbox, folder: Path, *, seed: int = 0) -> None:
        super().__init__(seed)
        self.folder = folder
        self.served: list[str] = []

    def install(self, sandbox: Sandbox) -> None:
        cases: list[tuple[int, str, ReplayOperation, Path, int, Callable[[SandboxRequest], bool]]] = []
        for request_file in sorted(self.folder.glob("*.sandbox.*.request.json")):
            found = _SANDBOX_FILE.match(request_file.name)
            if found is None or found.group("op") not in REPLAY_OPERATIONS:
                continue
            operation = REPLAY_OPERATIONS[found.group("op")]
            response_file = request_file.with_name(
                request_file.name.replace(".request.json", ".response.json")
            )
            if not response_file.exists():
                continue
            parameters = json.loads(request_file.read_text("utf-8")).get("parameters") or {}
            specificity = sum(
                1 for name, spec in parameters.items() if name not in _IGNORED_PARAMETERS and spec
            )
            predicate = _replay_predicate(operation.pattern, parameters)
            cases.append(
                (
                    -specificity,
                    request_file.name,
                    operation,
                    response_file,
                    int(found.group("status")),
                    predicate,
                )
            )
        # Model examples of getOrder answer for the order they show.
        for name, key in (("orders2026.getOrder.response.200.json", "order"),):
            example = self.folder / name
            if example.exists():
                order_id = json.loads(example.read_text("utf-8"))[key]["orderId"]
                predicate = _replay_predicate(ORDER_PATH, {"orderId": {"value": order_id}})
                cases.append((-1, name, REPLAY_OPERATIONS["orders2026.getOrder"], example, 200, predicate))
        cases.sort(key=lambda case: (case[0], case[1]))
        for _, file_name, operation, response_file, status, predicate in cases:
            self._serve(sandbox, operation, response_file, status, predicate, file_name)
        lwa = self.folder / "lwa.token.response.200.json"
        if lwa.exists():
            self._serve(sandbox, ReplayOperation("POST", LWA_PATH), lwa, 200, None, lwa.name)
        for op_name, operation in REPLAY_OPERATIONS.items():
            sandbox.route(
                self,
                operation.method,
                operation.pattern,
                self._no_match,
                name=f"amazon.replay.{op_name}.unmatched",
            )

    def _serve(
        self,
        sandbox: Sandbox,
        operation: ReplayOperation,
        response_file: Path,
        status: int,
        predicate: Callable[[SandboxRequest], bool] | None,
        label: str,
    ) -> None:
        body = b"" if status == 204 else response_file.read_bytes()

        def replay(_request: SandboxRequest, _match: RouteMatch) -> SandboxResponse:
            self.served.append(response_file.name)
            headers = [("x-amzn-RequestId", self.request_id())]
            if status != 204:
                headers.insert(0, ("Content-Type", "application/json"))
            return SandboxResponse(status, body, headers)

        sandbox.route(
            self, operation.method, operation.pattern, replay, name=f"amazon.replay.{label}", when=predicate
        )

    def _no_match(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        return self.answer(_error_body("InvalidInput", "Could not match input arguments"), 400)

    def describe(self) -> dict[str, str]:
        return {"replaying": str(self.folder)}


def create_simulator(sandbox: Sandbox, *, seed: int) -> AmazonShopSimulator:
    """The factory ``tf-console sandbox serve`` calls (see :mod:`tf_console.sandbox.registry`)."""
    return AmazonShopSimulator(sandbox, seed=seed)


def create_replay_simulator(sandbox: Sandbox, folder: Path, *, seed: int = 0) -> AmazonReplaySimulator:
    return AmazonReplaySimulator(sandbox, folder, seed=seed)
