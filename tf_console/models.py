"""The domain model every layer shares.

Wire formats are parsed into these types in exactly one module per platform
(``tf_console.marketplaces.<platform>``); nothing else knows a marketplace's JSON
or XML.  Money is ``Decimal`` (never float) and every time is timezone-aware UTC.

Canonical order status and how each platform's documented values map onto it
(implemented in ``marketplaces/amazon.py``, ``ebay.py``, ``etsy.py``; a value a
platform does not document is a page error for that order, never a guess):

=================  ==========================================================
canonical          platform values
=================  ==========================================================
pending            Amazon (2026-01-01 ``fulfillmentStatus``) PENDING,
                   PENDING_AVAILABILITY; eBay Active/Completed/CancelPending
                   not paid yet; Etsy "Payment Processing", "Open" unpaid
unshipped          Amazon UNSHIPPED, UNFULFILLABLE (stays open; flagged in
                   ``extra["unfulfillable"]``); eBay Active/Completed paid with
                   no line shipped, CancelPending (also ``cancel_requested``:
                   never printed, never shipped); Etsy "Paid", "Open" paid,
                   "Partially Refunded" not shipped (``refunded``)
partially_shipped  Amazon PARTIALLY_SHIPPED; eBay some lines shipped
shipped            Amazon SHIPPED; eBay Shipped, or every line shipped;
                   Etsy "Completed", ``is_shipped``, "Partially Refunded"
                   when shipped (``refunded``)
cancelled          Amazon CANCELLED; eBay Cancelled, Inactive, or a closed
                   cancellation (CancelStatus; ``refunded`` when closed with
                   a refund); Etsy "Canceled", "Fully Refunded" (``refunded``)
=================  ==========================================================
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    field_validator,
)


def _require_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("times must be timezone-aware")
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_require_utc)]
"""A timezone-aware datetime normalised to UTC."""

DecimalStr = Annotated[
    Decimal,
    PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json"),
]
"""A Decimal that serialises to a plain decimal string in JSON (``"12.50"``)."""


_PII_FIELDS = frozenset({"personalisation", "buyer"})


def _masked_repr_args(model: BaseModel) -> Iterable[tuple[str | None, Any]]:
    """Repr arguments with PII replaced, so a log line or crash screen never shows it."""
    for name, value in BaseModel.__repr_args__(model):
        yield name, ("<redacted>" if name in _PII_FIELDS and value else value)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Platform(enum.StrEnum):
    AMAZON = "amazon"
    EBAY = "ebay"
    ETSY = "etsy"
    TEST = "test"  # the sandbox framework's own small platform, used by core tests

    @property
    def label(self) -> str:
        return {"amazon": "Amazon", "ebay": "eBay", "etsy": "Etsy", "test": "Test"}[self.value]


MARKETPLACES: tuple[Platform, ...] = (Platform.AMAZON, Platform.EBAY, Platform.ETSY)


class OrderStatus(enum.StrEnum):
    PENDING = "pending"
    UNSHIPPED = "unshipped"
    PARTIALLY_SHIPPED = "partially_shipped"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self in (OrderStatus.PENDING, OrderStatus.UNSHIPPED, OrderStatus.PARTIALLY_SHIPPED)


class ItemKind(enum.StrEnum):
    PRINT = "print"
    STOCK = "stock"
    UNKNOWN = "unknown"


class FulfilledBy(enum.StrEnum):
    MERCHANT = "merchant"
    MARKETPLACE = "marketplace"  # Amazon FBA: shown, never shipped or printed by us


class Money(BaseModel):
    """An exact amount in an ISO 4217 currency."""

    model_config = ConfigDict(frozen=True)

    amount: DecimalStr
    currency: str = Field(min_length=3, max_length=3)

    @field_validator("currency")
    @classmethod
    def _upper(cls, v: str) -> str:
        if not v.isalpha():
            raise ValueError(f"currency {v!r} is not an ISO 4217 code")
        return v.upper()

    @field_validator("amount", mode="before")
    @classmethod
    def _no_float(cls, v: Any) -> Any:
        if isinstance(v, float):
            raise ValueError("money must not be a float; pass a Decimal or a string")
        return v

    def __str__(self) -> str:
        return f"{self.amount:f} {self.currency}"


class Address(BaseModel):
    """Buyer identity and shipping address.  PII: encrypted at rest, never logged."""

    model_config = ConfigDict(frozen=True)

    name: str = ""
    email: str = ""
    phone: str = ""
    line1: str = ""
    line2: str = ""
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    def is_empty(self) -> bool:
        return not any(self.model_dump().values())

    def __repr__(self) -> str:  # never leak PII through a repr in logs or crash screens
        return "Address(<redacted>)"

    __str__ = __repr__


class LineItem(BaseModel):
    line_id: str  # the platform's line id (Amazon orderItemId, eBay OrderLineItemID, Etsy transaction_id)
    sku: str = ""
    title: str = ""
    quantity: int = Field(ge=0)
    unit_price: Money | None = None  # per unit; None when the platform has no price yet (Amazon pending)
    kind: ItemKind = ItemKind.UNKNOWN
    kind_rule: str = ""  # which catalog rule decided the kind
    personalisation: str = ""  # PII-adjacent: encrypted at rest with the buyer
    listing_id: str = ""  # eBay ItemID / Etsy listing_id / Amazon ASIN
    variation: str = ""  # human-readable variation summary
    quantity_shipped: int = Field(default=0, ge=0)

    __repr_args__ = _masked_repr_args

    @property
    def quantity_unshipped(self) -> int:
        return max(0, self.quantity - self.quantity_shipped)


class ShipmentState(enum.StrEnum):
    REQUESTED = "requested"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # sent but the outcome is not known yet: reconcile before any re-send


class ShipmentLine(BaseModel):
    line_id: str
    quantity: int = Field(gt=0)


class Shipment(BaseModel):
    shipment_id: str  # our id (stable; also the outbox idempotency key)
    carrier: str
    carrier_name: str = ""  # free text when carrier is "Other"
    tracking: str
    shipped_at: UtcDatetime
    lines: list[ShipmentLine] = Field(default_factory=list)  # empty = every unshipped unit
    state: ShipmentState = ShipmentState.REQUESTED
    marketplace_answer: str = ""  # the marketplace's words when it rejected or answered oddly
    requested_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)
    source: str = "console"  # console | marketplace (seen on the marketplace, not sent by us)
    # Etsy only: a note the marketplace shows the buyer with the shipment. Stored in clear with
    # the order, so it must never carry PII (opted-in customer notes are added at send time).
    note_to_buyer: str = ""


class Order(BaseModel):
    platform: Platform
    order_id: str
    status: OrderStatus
    raw_status: str = ""  # the platform's own word, for display and troubleshooting
    created_at: UtcDatetime
    updated_at: UtcDatetime
    ship_by: UtcDatetime | None = None
    currency: str = ""
    total: Money | None = None  # what the marketplace reports (Amazon: seller proceeds)
    total_is_proceeds: bool = False  # True for Amazon: the total is what the seller receives
    items: list[LineItem] = Field(default_factory=list)
    buyer: Address | None = None  # PII
    fulfilled_by: FulfilledBy = FulfilledBy.MERCHANT
    cancel_requested: bool = False
    refunded: bool = False
    shipments: list[Shipment] = Field(default_factory=list)
    marketplace_tracking: list[str] = Field(default_factory=list)  # tracking numbers the marketplace shows
    pii_redacted: bool = False
    extra: dict[str, str] = Field(default_factory=dict)  # platform ids needed later (e.g. Etsy buyer_user_id)

    @property
    def key(self) -> str:
        return order_key(self.platform, self.order_id)

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    @property
    def shippable(self) -> bool:
        """Whether the ship flow may act on this order."""
        return (
            self.fulfilled_by is FulfilledBy.MERCHANT
            and self.status in (OrderStatus.UNSHIPPED, OrderStatus.PARTIALLY_SHIPPED)
            and not self.cancel_requested
            and any(i.quantity_unshipped > 0 for i in self.items)
        )

    @property
    def tracking_numbers(self) -> list[str]:
        seen = [s.tracking for s in self.shipments if s.state is not ShipmentState.REJECTED]
        for t in self.marketplace_tracking:
            if t not in seen:
                seen.append(t)
        return seen

    def __repr__(self) -> str:
        return f"Order({self.platform.value}:{self.order_id} {self.status.value})"


def order_key(platform: Platform | str, order_id: str) -> str:
    return f"{Platform(platform).value}:{order_id}"


class JobState(enum.StrEnum):
    QUEUED = "queued"
    PRINTING = "printing"
    PRINTED = "printed"
    PACKED = "packed"
    HELD = "held"
    FAILED = "failed"
    WITHDRAWN = "withdrawn"  # its order was cancelled or its quantity went away


class Priority(enum.StrEnum):
    RUSH = "rush"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        return {"rush": 0, "normal": 1, "low": 2}[self.value]


class PrintJob(BaseModel):
    job_id: str  # stable: f"{platform}:{order_id}:{line_id}"
    platform: Platform
    order_id: str
    line_id: str
    sku: str
    title: str = ""
    quantity: int = Field(ge=0)
    profile: str = ""  # catalog profile name
    material: str = ""
    colour: str = ""
    minutes_per_unit: float = 0.0
    units_per_plate: int = Field(default=1, ge=1)
    plates: int = Field(default=1, ge=0)
    plates_done: int = Field(default=0, ge=0)
    state: JobState = JobState.QUEUED
    priority: Priority = Priority.NORMAL
    pin: int | None = None  # manual position; pinned jobs come first, in pin order
    printer: str = ""
    due: UtcDatetime | None = None
    personalisation: str = ""  # PII-adjacent: encrypted at rest
    created_at: UtcDatetime = Field(default_factory=utcnow)
    updated_at: UtcDatetime = Field(default_factory=utcnow)
    started_at: UtcDatetime | None = None
    finished_at: UtcDatetime | None = None
    flag: str = ""  # e.g. "order cancelled while printing"
    history: list[str] = Field(default_factory=list)

    __repr_args__ = _masked_repr_args


class PlatformState(enum.StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"
    DISABLED = "disabled"
    REAUTH = "re-auth needed"

    @property
    def glyph(self) -> str:
        return {"ok": "●", "degraded": "◐", "down": "✖", "disabled": "○", "re-auth needed": "⚠"}[self.value]


class PlatformHealth(BaseModel):
    platform: Platform
    state: PlatformState = PlatformState.OK
    reason: str = ""  # a sentence for the user when not ok
    last_poll_at: UtcDatetime | None = None
    next_poll_at: UtcDatetime | None = None
    last_error: str = ""
    calls_in_window: int = 0
    window_budget: int = 0
    bucket_level: float | None = None
    bucket_capacity: float | None = None
    daily_remaining: int | None = None
    daily_budget: int | None = None
    success_rate: float | None = None  # 0..1 over the rolling window
    latencies_ms: list[float] = Field(default_factory=list)
    token_expires_at: UtcDatetime | None = None
    poller: str = ""  # "this console" | "daemon pid 123" | ""
