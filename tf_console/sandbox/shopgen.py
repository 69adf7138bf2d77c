"""A seeded, believable 3D-print shop: catalogue, buyers and orders arriving over time.

Everything here is platform-neutral (its own dataclasses, not ``models.Order``):
each platform simulator renders :class:`GenOrder`\\ s into its own wire format.
The same seed always gives the same shop, the same backfill and the same
arrival times.

:class:`OrderBook` is the stateful part a simulator keeps: it lets orders
arrive on the sandbox clock, moves unpaid orders to paid, ships them (bumping
their last-modified time) and cancels some — optionally without bumping the
last-modified time, as a marketplace whose "modified since" filter misses
cancellations does.
"""

from __future__ import annotations

import enum
import heapq
import random
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

# ---------------------------------------------------------------------------
# Catalogue


@dataclass(frozen=True, slots=True)
class GenProduct:
    sku: str
    title: str
    kind: str  # "print" | "stock"
    price_usd: Decimal
    personalised: bool = False
    variations: tuple[str, ...] = ()  # e.g. colour choices
    weight: float = 1.0  # how often it sells relative to others


CATALOG: tuple[GenProduct, ...] = (
    GenProduct(
        "PRT-DRAGON-S",
        "Articulated Crystal Dragon, Small (15 cm), 3D Printed",
        "print",
        Decimal("18.99"),
        variations=("Galaxy Silk", "Rainbow Silk", "Matte Black"),
        weight=5,
    ),
    GenProduct(
        "PRT-DRAGON-L",
        "Articulated Crystal Dragon, Large (45 cm), 3D Printed Fidget Toy",
        "print",
        Decimal("44.00"),
        variations=("Galaxy Silk", "Copper Silk"),
        weight=2,
    ),
    GenProduct(
        "PRT-NAMEPLATE",
        "Custom Desk Name Plate, 3D Printed, Personalised Office Sign",
        "print",
        Decimal("24.50"),
        personalised=True,
        variations=("White/Black", "Black/Gold"),
        weight=4,
    ),
    GenProduct(
        "PRT-KEYCHAIN-NAME",
        "Personalised Name Keychain, Dual Colour, 3D Printed",
        "print",
        Decimal("7.99"),
        personalised=True,
        weight=4,
    ),
    GenProduct(
        "PRT-PLANTER-M",
        "Low-Poly Geometric Planter, Medium, with Drainage Tray",
        "print",
        Decimal("21.00"),
        variations=("Sage", "Terracotta", "White"),
        weight=3,
    ),
    GenProduct(
        "PRT-CABLE-CLIP-10",
        "Cable Management Clips (Pack of 10), 3D Printed PETG",
        "print",
        Decimal("9.49"),
        weight=3,
    ),
    GenProduct(
        "PRT-GRIDFINITY-2X2",
        "Gridfinity 2x2 Storage Bin, 3D Printed, Stackable",
        "print",
        Decimal("6.50"),
        weight=2,
    ),
    GenProduct(
        "PRT-LITHOPHANE",
        "Custom Photo Lithophane Night Light Panel",
        "print",
        Decimal("34.00"),
        personalised=True,
        weight=1,
    ),
    GenProduct(
        "PRT-MINI-TERRAIN",
        "Tabletop Ruined Tower Terrain Set, 28 mm Scale",
        "print",
        Decimal("29.99"),
        weight=1,
    ),
    GenProduct(
        "STK-NOZZLE-04", "Hardened Steel Nozzle 0.4 mm (MK8), 3-Pack", "stock", Decimal("12.99"), weight=2
    ),
    GenProduct(
        "STK-PLA-1KG-BLK", "PLA Filament 1.75 mm, 1 kg Spool, Black", "stock", Decimal("19.99"), weight=2
    ),
    GenProduct(
        "STK-PEI-SHEET",
        "Textured PEI Spring Steel Build Sheet 235 x 235 mm",
        "stock",
        Decimal("27.50"),
        weight=1,
    ),
    GenProduct(
        "STK-BELT-GT2-5M", "GT2 Timing Belt 6 mm, 5 m, with 2 Pulleys", "stock", Decimal("10.99"), weight=1
    ),
)

CURRENCY_EXPONENT = {"USD": 2, "GBP": 2, "EUR": 2, "JPY": 0, "CAD": 2, "AUD": 2}
_RATE_FROM_USD = {"USD": Decimal("1"), "GBP": Decimal("0.79"), "EUR": Decimal("0.92"), "JPY": Decimal("150")}
_CURRENCY_WEIGHTS = (("USD", 60), ("GBP", 18), ("EUR", 15), ("JPY", 7))
_COUNTRY_FOR = {"USD": "US", "GBP": "GB", "EUR": "DE", "JPY": "JP"}

_FIRST = (
    "Mira",
    "Jonas",
    "Priya",
    "Tomasz",
    "Aiko",
    "Elena",
    "Marcus",
    "Sofia",
    "Liam",
    "Hannah",
    "Kwame",
    "Chloe",
    "Mateo",
    "Ingrid",
    "Ravi",
    "Yuki",
    "Oliver",
    "Amara",
    "Felix",
    "Nadia",
)
_LAST = (
    "Okafor",
    "Lindqvist",
    "Sharma",
    "Nowak",
    "Tanaka",
    "Rossi",
    "Bennett",
    "García",
    "Walsh",
    "Schneider",
    "Mensah",
    "Dubois",
    "Herrera",
    "Berg",
    "Iyer",
    "Sato",
    "Price",
    "Adeyemi",
    "Vogel",
)
_STREETS = (
    "Maple Avenue",
    "High Street",
    "Lindenstraße",
    "Sakura-dori",
    "Church Lane",
    "Elm Street",
    "Station Road",
    "Hauptstraße",
    "Oak Drive",
    "Mill Lane",
)
_CITIES = {
    "US": (("Springfield", "IL", "62704"), ("Portland", "OR", "97205"), ("Austin", "TX", "78701")),
    "GB": (("Leeds", "West Yorkshire", "LS1 4AP"), ("Bristol", "", "BS1 5TR"), ("York", "", "YO1 7HH")),
    "DE": (("Berlin", "BE", "10115"), ("Köln", "NW", "50667"), ("Leipzig", "SN", "04109")),
    "JP": (
        ("Osaka", "Osaka", "530-0001"),
        ("Sapporo", "Hokkaido", "060-0001"),
        ("Kyoto", "Kyoto", "600-8216"),
    ),
}
_NAMEPLATE_TITLES = ("Dr.", "", "", "Prof.", "")
_CARRIERS = {
    "US": ("USPS", "UPS", "FedEx"),
    "GB": ("Royal Mail", "DPD"),
    "DE": ("DHL", "Hermes"),
    "JP": ("Japan Post", "Yamato"),
}


def quantize(amount: Decimal, currency: str) -> Decimal:
    exponent = CURRENCY_EXPONENT.get(currency, 2)
    return amount.quantize(Decimal(1).scaleb(-exponent), rounding=ROUND_HALF_UP)


def price_in(price_usd: Decimal, currency: str) -> Decimal:
    converted = price_usd * _RATE_FROM_USD[currency]
    if currency == "JPY":  # shops price yen in round tens
        return (converted / 10).quantize(Decimal(1), rounding=ROUND_HALF_UP) * 10
    return quantize(converted, currency)


# ---------------------------------------------------------------------------
# Orders


class GenStatus(enum.StrEnum):
    PENDING = "pending"  # placed, not paid yet
    UNSHIPPED = "unshipped"  # paid, waiting to be shipped
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"


@dataclass(slots=True)
class GenBuyer:
    name: str
    email: str
    phone: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str
    user_id: str


@dataclass(slots=True)
class GenLine:
    line_id: str
    sku: str
    title: str
    kind: str
    quantity: int
    unit_price: Decimal  # per unit, in the order's currency
    listing_id: str
    variation: str = ""
    personalisation: str = ""
    quantity_shipped: int = 0

    @property
    def quantity_unshipped(self) -> int:
        return self.quantity - self.quantity_shipped


@dataclass(slots=True)
class GenShipment:
    shipment_id: str
    carrier: str
    tracking: str
    shipped_at: datetime
    lines: list[tuple[str, int]]  # (line_id, quantity)
    note: str = ""


@dataclass(slots=True)
class GenOrder:
    order_id: str
    created_at: datetime
    updated_at: datetime
    status: GenStatus
    currency: str
    lines: list[GenLine]
    buyer: GenBuyer
    shipping_cost: Decimal
    tax: Decimal
    ship_by: datetime
    paid_at: datetime | None = None
    shipments: list[GenShipment] = field(default_factory=list)
    fulfilled_by_marketplace: bool = False  # Amazon FBA: the marketplace ships it
    cancel_requested: bool = False
    buyer_message: str = ""
    seq: int = 0

    @property
    def subtotal(self) -> Decimal:
        return quantize(sum((ln.unit_price * ln.quantity for ln in self.lines), Decimal(0)), self.currency)

    @property
    def total(self) -> Decimal:
        return quantize(self.subtotal + self.shipping_cost + self.tax, self.currency)

    @property
    def is_open(self) -> bool:
        return self.status in (GenStatus.PENDING, GenStatus.UNSHIPPED, GenStatus.PARTIALLY_SHIPPED)

    def tracking_numbers(self) -> list[str]:
        return [s.tracking for s in self.shipments]


IdMaker = Callable[[random.Random, int], str]


def default_order_id(rng: random.Random, seq: int) -> str:
    return f"TST-{100000 + seq}"


def default_line_id(rng: random.Random, seq: int) -> str:
    return f"L{rng.randrange(10**9, 10**10)}"


class ShopGenerator:
    """Deterministic by seed: the n-th order drawn is always the same."""

    def __init__(
        self,
        seed: int,
        *,
        catalog: Sequence[GenProduct] = CATALOG,
        currencies: Sequence[tuple[str, int]] = _CURRENCY_WEIGHTS,
        order_id: IdMaker = default_order_id,
        line_id: IdMaker = default_line_id,
        fulfilled_by_marketplace_share: float = 0.0,
        unpaid_share: float = 0.1,
    ) -> None:
        self.rng = random.Random(seed)
        self.catalog = tuple(catalog)
        self._currencies = tuple(currencies)
        self._order_id = order_id
        self._line_id = line_id
        self._fba_share = fulfilled_by_marketplace_share
        self._unpaid_share = unpaid_share
        self._seq = 0
        self._listing_ids = {p.sku: str(1_000_000_000 + self.rng.randrange(10**8)) for p in self.catalog}

    def _buyer(self, country: str) -> GenBuyer:
        rng = self.rng
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        city, region, postal = rng.choice(_CITIES[country])
        ascii_name = unicodedata.normalize("NFKD", f"{first}.{last}").encode("ascii", "ignore").decode()
        handle = ascii_name.lower()
        return GenBuyer(
            name=f"{first} {last}",
            email=f"{handle}{rng.randrange(10, 99)}@buyers.example",
            phone=f"+{rng.randrange(10, 99)} 555 {rng.randrange(1000, 9999)}",
            line1=f"{rng.randrange(1, 240)} {rng.choice(_STREETS)}",
            line2=rng.choice(("", "", "", f"Apt {rng.randrange(1, 40)}")),
            city=city,
            region=region,
            postal_code=postal,
            country=country,
            user_id=f"u{rng.randrange(10**7, 10**8)}",
        )

    def _personalisation(self, product: GenProduct, buyer: GenBuyer) -> str:
        first = buyer.name.split()[0]
        if product.sku == "PRT-NAMEPLATE":
            title = self.rng.choice(_NAMEPLATE_TITLES)
            return f"Name: {title + ' ' if title else ''}{first} {self.rng.choice(_LAST)}"
        if product.sku == "PRT-LITHOPHANE":
            return "Photo sent by message; caption: Our first home"
        return f"Text: {self.rng.choice((first, first.upper(), 'Best Mum', 'Happy Birthday'))}"

    def order(self, created_at: datetime) -> GenOrder:
        rng = self.rng
        self._seq += 1
        currency = rng.choices([c for c, _ in self._currencies], weights=[w for _, w in self._currencies])[0]
        buyer = self._buyer(_COUNTRY_FOR.get(currency, "US"))
        line_count = rng.choices((1, 2, 3), weights=(70, 22, 8))[0]
        products = rng.choices(self.catalog, weights=[p.weight for p in self.catalog], k=line_count)
        lines: list[GenLine] = []
        seen: set[str] = set()
        for product in products:
            if product.sku in seen:
                continue
            seen.add(product.sku)
            quantity = rng.choices((1, 2, 3, 4, 10), weights=(72, 16, 6, 4, 2))[0]
            lines.append(
                GenLine(
                    line_id=self._line_id(rng, self._seq),
                    sku=product.sku,
                    title=product.title,
                    kind=product.kind,
                    quantity=quantity,
                    unit_price=price_in(product.price_usd, currency),
                    listing_id=self._listing_ids[product.sku],
                    variation=rng.choice(product.variations) if product.variations else "",
                    personalisation=self._personalisation(product, buyer) if product.personalised else "",
                )
            )
        shipping = price_in(Decimal(rng.choice(("0", "3.99", "4.99", "7.50"))), currency)
        subtotal = sum((ln.unit_price * ln.quantity for ln in lines), Decimal(0))
        # US sales tax collected by the marketplace on some orders; elsewhere prices include VAT.
        taxed = currency == "USD" and rng.random() < 0.3
        tax = quantize(subtotal * Decimal("0.0725"), currency) if taxed else quantize(Decimal(0), currency)
        unpaid = rng.random() < self._unpaid_share
        fba = rng.random() < self._fba_share
        return GenOrder(
            order_id=self._order_id(rng, self._seq),
            created_at=created_at,
            updated_at=created_at,
            status=GenStatus.PENDING if unpaid else GenStatus.UNSHIPPED,
            currency=currency,
            lines=lines,
            buyer=buyer,
            shipping_cost=shipping,
            tax=tax,
            ship_by=created_at + timedelta(days=rng.choice((2, 3, 3, 5))),
            paid_at=None if unpaid else created_at + timedelta(seconds=rng.randrange(5, 300)),
            fulfilled_by_marketplace=fba,
            buyer_message=rng.choice(("", "", "", "Could you gift-wrap it please?", "No rush, thanks!")),
            seq=self._seq,
        )

    def tracking_for(self, carrier: str) -> str:
        rng = self.rng
        if carrier == "UPS":
            return "1Z" + "".join(rng.choice("0123456789ABCDEFGHJKLMNPRSTUVWXYZ") for _ in range(16))
        if carrier == "USPS":
            return "9400" + "".join(rng.choice("0123456789") for _ in range(18))
        return "".join(rng.choice("0123456789") for _ in range(12))


class ShipError(Exception):
    """A shipment the marketplace would refuse; ``code`` is machine-readable, the message a sentence."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


OLD_ORDERS_SHIPPED = 0.92  # share of backfilled orders older than 4 days already shipped


class OrderBook:
    """The simulated shop's orders, advancing on the sandbox clock.

    Not locked itself: the sandbox calls simulators under its own lock.
    """

    def __init__(
        self,
        generator: ShopGenerator,
        start: datetime,
        *,
        orders_per_hour: float = 6.0,
        backfill: int = 0,
        backfill_days: float = 7.0,
        cancel_share: float = 0.03,
        shipped_share_of_backfill: float = 0.5,
    ) -> None:
        self.gen = generator
        self.rng = random.Random(generator.rng.random())
        self.orders: dict[str, GenOrder] = {}
        self.orders_per_hour = orders_per_hour
        self.cancel_share = cancel_share
        self._events: list[tuple[datetime, int, str, str]] = []  # (when, tie-break, action, order_id)
        self._event_seq = 0
        self._now = start
        self._next_arrival = self._draw_arrival(start)
        if backfill:
            self._backfill(backfill, start - timedelta(days=backfill_days), start, shipped_share_of_backfill)

    # -- time -------------------------------------------------------------------

    def _draw_arrival(self, after: datetime) -> datetime | None:
        if self.orders_per_hour <= 0:
            return None
        return after + timedelta(hours=self.gen.rng.expovariate(self.orders_per_hour))

    def _schedule(self, when: datetime, action: str, order_id: str) -> None:
        self._event_seq += 1
        heapq.heappush(self._events, (when, self._event_seq, action, order_id))

    def advance(self, now: datetime) -> list[GenOrder]:
        """Let orders arrive and scheduled changes happen up to ``now``; returns the new orders."""
        if now <= self._now:
            return []
        arrived: list[GenOrder] = []
        while True:
            next_event = self._events[0][0] if self._events else None
            arrival = self._next_arrival
            candidates = [t for t in (next_event, arrival) if t is not None and t <= now]
            if not candidates:
                break
            if arrival is not None and arrival <= now and (next_event is None or arrival <= next_event):
                order = self._arrive(arrival)
                arrived.append(order)
                self._next_arrival = self._draw_arrival(arrival)
            else:
                when, _, action, order_id = heapq.heappop(self._events)
                self._apply(when, action, order_id)
        self._now = now
        return arrived

    def _arrive(self, at: datetime) -> GenOrder:
        order = self.gen.order(at)
        self.orders[order.order_id] = order
        if order.status is GenStatus.PENDING:
            self._schedule(at + timedelta(minutes=self.rng.randrange(2, 90)), "pay", order.order_id)
        if self.rng.random() < self.cancel_share:
            self._schedule(at + timedelta(minutes=self.rng.randrange(5, 240)), "cancel", order.order_id)
        return order

    def _apply(self, when: datetime, action: str, order_id: str) -> None:
        order = self.orders.get(order_id)
        if order is None:
            return
        if action == "pay" and order.status is GenStatus.PENDING:
            order.status = GenStatus.UNSHIPPED
            order.paid_at = when
            order.updated_at = when
        elif action == "cancel" and order.status in (GenStatus.PENDING, GenStatus.UNSHIPPED):
            self.cancel(order_id, when)

    def _backfill(self, count: int, start: datetime, end: datetime, shipped_share: float) -> None:
        span = (end - start).total_seconds()
        times = sorted(start + timedelta(seconds=self.gen.rng.uniform(0, span)) for _ in range(count))
        for at in times:
            order = self.gen.order(at)
            self.orders[order.order_id] = order
            age = end - at
            if order.status is GenStatus.PENDING and age > timedelta(hours=2):
                order.status = GenStatus.UNSHIPPED
                order.paid_at = at + timedelta(minutes=30)
                order.updated_at = order.paid_at
            if order.status is GenStatus.UNSHIPPED and age > timedelta(days=1):
                roll = self.rng.random()
                # A believable shop has shipped nearly every order older than its ship-by date;
                # the few left open are what the late-risk views are for.
                share = max(shipped_share, OLD_ORDERS_SHIPPED) if age > timedelta(days=4) else shipped_share
                if roll < share:
                    carrier = self.rng.choice(_CARRIERS.get(order.buyer.country, ("USPS",)))
                    # Settled before the shop's "now", so no change sits inside a client's lag window.
                    latest = end - timedelta(minutes=10)
                    shipped_at = min(latest, at + timedelta(hours=self.rng.randrange(6, 48)))
                    self.ship(order.order_id, carrier, self.gen.tracking_for(carrier), None, shipped_at)
                elif roll < share + self.cancel_share:
                    self.cancel(order.order_id, min(end, at + timedelta(hours=3)))

    # -- queries ------------------------------------------------------------------

    def get(self, order_id: str) -> GenOrder | None:
        return self.orders.get(order_id)

    def modified_since(self, since: datetime) -> list[GenOrder]:
        """Orders with ``updated_at >= since``, oldest change first (ties by id): a stable order
        for key-set paging, where a changed order moves to the end instead of shifting pages."""
        found = [o for o in self.orders.values() if o.updated_at >= since]
        found.sort(key=lambda o: (o.updated_at, o.order_id))
        return found

    # -- changes ------------------------------------------------------------------

    def add(self, order: GenOrder) -> GenOrder:
        self.orders[order.order_id] = order
        return order

    def ship(
        self,
        order_id: str,
        carrier: str,
        tracking: str,
        lines: Iterable[tuple[str, int]] | None,
        at: datetime,
        *,
        note: str = "",
    ) -> GenShipment:
        """Record a shipment (``lines`` None: everything unshipped) and bump the order's modified time."""
        order = self.orders.get(order_id)
        if order is None:
            raise ShipError("not_found", f"Order {order_id} does not exist.")
        if order.status is GenStatus.CANCELLED:
            raise ShipError("order_cancelled", f"Order {order_id} was cancelled.")
        if order.status is GenStatus.PENDING:
            raise ShipError("not_paid", f"Order {order_id} is not paid yet.")
        if order.fulfilled_by_marketplace:
            raise ShipError("fulfilled_by_marketplace", f"Order {order_id} is fulfilled by the marketplace.")
        if not tracking.strip():
            raise ShipError("tracking_required", "A tracking number is required.")
        by_id = {ln.line_id: ln for ln in order.lines}
        wanted = (
            [(ln.line_id, ln.quantity_unshipped) for ln in order.lines if ln.quantity_unshipped > 0]
            if lines is None
            else list(lines)
        )
        if not wanted:
            raise ShipError("nothing_to_ship", f"Order {order_id} has nothing left to ship.")
        for line_id, quantity in wanted:
            line = by_id.get(line_id)
            if line is None:
                raise ShipError("unknown_line", f"Order {order_id} has no line {line_id}.")
            if quantity <= 0 or quantity > line.quantity_unshipped:
                raise ShipError("bad_quantity", f"Line {line_id} has {line.quantity_unshipped} left to ship.")
        for line_id, quantity in wanted:
            by_id[line_id].quantity_shipped += quantity
        shipment = GenShipment(
            shipment_id=f"S{self.rng.randrange(10**9, 10**10)}",
            carrier=carrier,
            tracking=tracking,
            shipped_at=at,
            lines=wanted,
            note=note,
        )
        order.shipments.append(shipment)
        everything = all(ln.quantity_unshipped == 0 for ln in order.lines)
        order.status = GenStatus.SHIPPED if everything else GenStatus.PARTIALLY_SHIPPED
        order.updated_at = max(order.updated_at, at)
        return shipment

    def cancel(self, order_id: str, at: datetime, *, bump_modified: bool = True) -> GenOrder:
        """Cancel an order; ``bump_modified=False`` leaves its modified time alone (a change the
        marketplace's "modified since" filter will not surface)."""
        order = self.orders[order_id]
        order.status = GenStatus.CANCELLED
        if bump_modified:
            order.updated_at = max(order.updated_at, at)
        return order
