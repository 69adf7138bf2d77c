"""What the console shows, as plain frozen values the UI renders.

Nothing here holds a secret; buyer data appears only in :class:`OrderDetail`
and only masked unless the operator asked to reveal it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tf_console.models import (
    ItemKind,
    JobState,
    OrderStatus,
    Platform,
    PlatformHealth,
    Priority,
    ShipmentState,
)

# ---------------------------------------------------------------------------
# Health


@dataclass(frozen=True, slots=True)
class HealthRow:
    """One platform in the health pane."""

    health: PlatformHealth
    polling_now: bool = False
    source: str = "live"  # live: this process's calls | log: read from the poller's health log

    @property
    def platform(self) -> Platform:
        return self.health.platform


@dataclass(frozen=True, slots=True)
class RequestView:
    at: datetime
    operation: str
    method: str
    status: int | None
    latency_ms: float
    ok: bool
    attempt: int
    error_code: str
    message: str
    request_id: str
    rate_headers: tuple[tuple[str, str], ...]
    kind: str


@dataclass(frozen=True, slots=True)
class ErrorView:
    code: str
    sentence: str
    count: int
    last_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxView:
    item_id: str
    kind: str
    platform: Platform
    order_id: str
    sku: str
    state: str
    attempts: int
    next_attempt_at: datetime
    answer: str
    history: tuple[tuple[datetime, str, str], ...] = ()

    @property
    def active(self) -> bool:
        return self.state in ("pending", "sending", "verifying")


@dataclass(frozen=True, slots=True)
class HealthDetail:
    row: HealthRow
    requests: tuple[RequestView, ...]
    errors: tuple[ErrorView, ...]
    success_over_time: tuple[float | None, ...]  # oldest first, one per bucket
    bucket_minutes: int
    token_state: str  # a sentence
    credential_check: str  # a sentence, or "" when never run
    outbox: tuple[OutboxView, ...]
    poll_summary: str
    disabled_reason: str = ""


# ---------------------------------------------------------------------------
# Queue


@dataclass(frozen=True, slots=True)
class JobInfo:
    """A print job without its personalisation text."""

    job_id: str
    platform: Platform
    order_id: str
    line_id: str
    sku: str
    title: str
    quantity: int
    material: str
    colour: str
    profile: str
    state: JobState
    priority: Priority
    pin: int | None
    printer: str
    due: datetime | None
    plates: int
    plates_done: int
    minutes_per_unit: float
    flag: str
    personalised: bool
    history: tuple[str, ...] = ()

    @property
    def order_key(self) -> str:
        return f"{self.platform.value}:{self.order_id}"

    @property
    def estimate_minutes(self) -> float:
        return self.quantity * self.minutes_per_unit


@dataclass(frozen=True, slots=True)
class JobProjection:
    printers: str
    start: datetime | None
    end: datetime | None
    slack_minutes: float | None
    late: bool
    late_risk: bool
    expected_minutes: float
    problem: str


@dataclass(frozen=True, slots=True)
class QueueView:
    sequence: tuple[str, ...]
    jobs: dict[str, JobInfo]
    generation: int  # bumps on every reload; a projection names the generation it was made for


@dataclass(frozen=True, slots=True)
class Projection:
    generation: int
    sequence: tuple[str, ...]
    jobs: dict[str, JobProjection]
    late_orders: frozenset[str]
    at_risk_orders: frozenset[str]
    warnings: tuple[str, ...]
    computed_ms: float


# ---------------------------------------------------------------------------
# Orders


@dataclass(frozen=True, slots=True)
class ItemView:
    line_id: str
    sku: str
    title: str
    variation: str
    quantity: int
    quantity_shipped: int
    unit_price: str
    kind: ItemKind
    kind_rule: str
    personalisation: str  # masked unless revealed


@dataclass(frozen=True, slots=True)
class ShipmentView:
    shipment_id: str
    carrier: str
    carrier_name: str
    tracking: str
    state: ShipmentState
    requested_at: datetime
    updated_at: datetime
    answer: str
    lines: tuple[tuple[str, int], ...]
    source: str


@dataclass(frozen=True, slots=True)
class OrderDetail:
    key: str
    platform: Platform
    order_id: str
    status: OrderStatus
    raw_status: str
    created_at: datetime
    updated_at: datetime
    ship_by: datetime | None
    total: str
    fulfilled_by: str
    cancel_requested: bool
    refunded: bool
    shippable: bool
    items: tuple[ItemView, ...]
    buyer_lines: tuple[str, ...]  # masked unless revealed
    revealed: bool
    pii_redacted: bool
    shipments: tuple[ShipmentView, ...]
    marketplace_tracking: tuple[str, ...]
    outbox: tuple[OutboxView, ...]
    jobs: tuple[JobInfo, ...]


@dataclass(frozen=True, slots=True)
class CarrierChoice:
    code: str
    label: str
    family: str
    is_other: bool


@dataclass(frozen=True, slots=True)
class ShipLine:
    line_id: str
    sku: str
    title: str
    unshipped: int


@dataclass(frozen=True, slots=True)
class ShipForm:
    platform: Platform
    order_id: str
    carriers: tuple[CarrierChoice, ...]
    lines: tuple[ShipLine, ...]
    in_flight: str = ""  # a sentence when a shipment is already being confirmed


@dataclass(frozen=True, slots=True)
class TrackingVerdict:
    ok: bool
    hard: bool
    sentence: str


@dataclass(frozen=True, slots=True)
class ShipReceipt:
    item_id: str
    sentence: str
    already: bool = False


# ---------------------------------------------------------------------------
# Status line


@dataclass(frozen=True, slots=True)
class PollerInfo:
    """Who polls this data folder."""

    this_console: bool
    description: str  # "this console polls" / "daemon (pid 12 on host) polls" / "nobody polls"
    read_only: bool


@dataclass(frozen=True, slots=True)
class ProfileChoice:
    name: str
    description: str


@dataclass
class CredentialResult:
    ok: bool
    sentence: str
    at: datetime
    details: dict[str, str] = field(default_factory=dict)
