"""The dashboard's three live panes: platform health, incoming orders, production queue.

Each pane renders rows from the dashboard's :class:`ConsoleModel` through a
:class:`~tf_console.ui.table.WindowedTable`; the dashboard decides when to
refresh, the panes decide how rows look.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Input

from tf_console.console import OrderListing, OrderQuery, OrderSummary
from tf_console.console.summary import PLATFORM_SHORT
from tf_console.console.views import HealthRow, JobInfo, Projection
from tf_console.models import FulfilledBy, Platform
from tf_console.ui import format as fmt
from tf_console.ui.table import Cells, Column, WindowedTable


@dataclass
class ConsoleModel:
    """What the dashboard currently shows; panes render from it."""

    now: Callable[[], datetime]
    tz: ZoneInfo
    summary_of: Callable[[str], OrderSummary | None]
    health: dict[Platform, HealthRow] = field(default_factory=dict)
    query: OrderQuery = field(default_factory=OrderQuery)
    listing: OrderListing | None = None
    indexed: int = 0
    index_done: bool = False
    sequence: tuple[str, ...] = ()
    jobs: dict[str, JobInfo] = field(default_factory=dict)
    pin_overrides: dict[str, int | None] = field(default_factory=dict)
    projection: Projection | None = None

    def pin_of(self, job_id: str) -> int | None:
        if job_id in self.pin_overrides:
            return self.pin_overrides[job_id]
        job = self.jobs.get(job_id)
        return job.pin if job is not None else None

    def pinned(self) -> set[str]:
        return {job_id for job_id in self.sequence if self.pin_of(job_id) is not None}


class Pane(Vertical):
    """A bordered pane around one table; ``border_title`` says what it shows."""

    ALLOW_MAXIMIZE = True
    table: WindowedTable

    def focus_table(self) -> None:
        self.table.focus()


# ---------------------------------------------------------------------------
# Health


HEALTH_COLUMNS = (
    Column("platform", "Platform", 8),
    Column("state", "State", 11),
    Column("last", "Last poll", 9),
    Column("next", "Next", 8),
    Column("calls", "Calls/window", 12),
    Column("bucket", "Bucket", 6),
    Column("daily", "Daily left", 10),
    Column("success", "OK", 4),
    Column("latency", "Latency", 10),
    Column("token", "Token", 6),
    Column("poller", "Polled by", 10),
)


def short_poller(description: str) -> str:
    """``daemon (pid 123 on host)`` → ``daemon 123``; ``this console`` → ``console``."""
    if description.startswith("this console"):
        return "console"
    kind, _, rest = description.partition(" (pid ")
    pid = rest.split(" ", 1)[0] if rest else ""
    return f"{kind} {pid}".strip()


class HealthPane(Pane):
    def __init__(self, model: ConsoleModel) -> None:
        super().__init__(id="health-pane", classes="pane")
        self.model = model
        self.table = WindowedTable(HEALTH_COLUMNS, self.render_row, id="health-table", fit_all=True)
        self.border_title = "1 Platforms"

    def compose(self) -> ComposeResult:
        yield self.table

    def show(self, rows: list[HealthRow]) -> None:
        self.model.health = {row.platform: row for row in rows}
        keys = [row.platform.value for row in rows]
        if tuple(keys) != self.table.item_keys:
            self.table.set_keys(keys)
        else:
            self.table.refresh_rows()

    def render_row(self, key: str) -> Cells | None:
        row = self.model.health.get(Platform(key))
        if row is None:
            return None
        h = row.health
        now = self.model.now()
        if row.polling_now:
            next_cell = fmt.text("polling…", "cyan")
        elif h.next_poll_at is None:
            next_cell = fmt.text(fmt.DASH, "dim")
        else:
            next_cell = fmt.text(fmt.countdown(h.next_poll_at, now))
        bucket = (
            f"{h.bucket_level:.0f}/{h.bucket_capacity:.0f}"
            if h.bucket_level is not None and h.bucket_capacity
            else fmt.DASH
        )
        daily = f"{h.daily_remaining:,}" if h.daily_remaining is not None else fmt.DASH
        poller = short_poller(h.poller) or ("—" if row.source == "config" else "nobody")
        return (
            fmt.text(h.platform.label, "bold"),
            fmt.platform_state_cell(h.state),
            fmt.text(
                fmt.since(h.last_poll_at, now) if h.last_poll_at else "never", "" if h.last_poll_at else "dim"
            ),
            next_cell,
            fmt.meter_cell(h.calls_in_window, h.window_budget, width=4),
            fmt.text(bucket),
            fmt.text(daily),
            fmt.percent_cell(h.success_rate),
            fmt.text(fmt.sparkline(h.latencies_ms, 10), "cyan"),
            fmt.token_cell(h.token_expires_at, now),
            fmt.text(poller, "dim" if poller in ("—", "nobody") else ""),
        )


# ---------------------------------------------------------------------------
# Orders


# The columns an operator acts on come first: at 80 columns they are the ones in view.
ORDER_COLUMNS = (
    Column("platform", "Plat", 4),
    Column("order", "Order", 19),
    Column("age", "Age", 5),
    Column("ship_by", "Ship by", 10),
    Column("status", "Status", 12),
    Column("shipment", "Shipment", 11),
    Column("mix", "Mix", 8),
    Column("units", "Qty", 3),
    Column("total", "Total", 13),
)


class OrdersPane(Pane):
    def __init__(self, model: ConsoleModel) -> None:
        super().__init__(id="orders-pane", classes="pane")
        self.model = model
        self.table = WindowedTable(ORDER_COLUMNS, self.render_row, id="orders-table")
        self.filter_input = Input(placeholder="filter: words, platform:etsy, status:open, late…", id="filter")
        self.filter_input.display = False
        self.update_title()

    def compose(self) -> ComposeResult:
        yield self.filter_input
        yield self.table

    def update_title(self) -> None:
        listing = self.model.listing
        shown = len(listing) if listing is not None else 0
        total = self.model.indexed
        parts = [f"2 Orders — {shown:,}"]
        if not self.model.query.filter.is_empty:
            parts.append(f" of {total:,}")
        parts.append(f" · {self.model.query.sort}")
        if not self.model.query.filter.is_empty:
            parts.append(f" · /{self.model.query.filter.text}")
        if not self.model.index_done:
            parts.append(f" · indexing {total:,}…")
        self.border_title = "".join(parts)

    def show(self, listing: OrderListing, changed: set[str]) -> None:
        self.model.listing = listing
        self.model.indexed = listing.total_indexed
        if listing.keys != self.table.item_keys:
            self.table.set_keys(listing.keys)
        elif changed:
            self.table.refresh_rows(changed)
        self.update_title()

    def render_row(self, key: str) -> Cells | None:
        s = self.model.summary_of(key)
        if s is None:
            return None
        now = self.model.now()
        projection = self.model.projection
        at_risk = projection is not None and (
            key in projection.late_orders or key in projection.at_risk_orders
        )
        total = fmt.money(s.total, s.currency)
        return (
            fmt.text(PLATFORM_SHORT.get(s.platform, s.platform.value[:3].upper()), "bold"),
            fmt.text(s.order_id),
            fmt.text(fmt.age(s.created_at, now)),
            fmt.ship_by_cell(s.ship_by, now, is_open=s.is_open, at_risk=at_risk),
            fmt.status_cell(
                s.status, cancel_requested=s.cancel_requested, fba=s.fulfilled_by is FulfilledBy.MARKETPLACE
            ),
            fmt.shipment_cell(s.shipment_state),
            fmt.mix(s.printed_units, s.stock_units, s.unknown_units),
            fmt.text(str(s.units)),
            fmt.text(total + ("*" if s.total_is_proceeds else "")),
        )


# ---------------------------------------------------------------------------
# Queue


QUEUE_COLUMNS = (
    Column("position", "#", 5),
    Column("sku", "SKU", 14),
    Column("qty", "Qty", 3),
    Column("state", "State", 10),
    Column("printer", "Printer", 9),
    Column("end", "Proj. end", 9),
    Column("slack", "Slack", 8),
    Column("due", "Due", 9),
    Column("estimate", "Est", 5),
    Column("material", "Material", 9),
    Column("job", "Order", 19),
)


class QueuePane(Pane):
    def __init__(self, model: ConsoleModel) -> None:
        super().__init__(id="queue-pane", classes="pane")
        self.model = model
        self.table = WindowedTable(QUEUE_COLUMNS, self.render_row, id="queue-table")
        self.update_title()

    def compose(self) -> ComposeResult:
        yield self.table

    def update_title(self, note: str = "") -> None:
        count = len(self.model.sequence)
        projection = self.model.projection
        text = f"3 Queue — {count:,} job{'s' if count != 1 else ''}"
        if projection is None:
            text += " · projecting…" if count else ""
        elif projection.late_orders:
            text += f" · {len(projection.late_orders)} order(s) projected late"
        if note:
            text += f" · {note}"
        self.border_title = text

    def show_sequence(self, sequence: tuple[str, ...], *, follow: str | None = None) -> None:
        self.model.sequence = sequence
        self.table.set_keys(sequence, follow=follow)
        self.update_title()

    def render_row(self, key: str) -> Cells | None:
        job = self.model.jobs.get(key)
        if job is None:
            return None
        now = self.model.now()
        position = self.table.position_of(key)
        pin = self.model.pin_of(key)
        number = f"{(position or 0) + 1}"
        projection = self.model.projection.jobs.get(key) if self.model.projection else None
        position_cell = Text(no_wrap=True)
        if pin is not None:
            position_cell.append("⚑", style="bold")
        position_cell.append(number)
        if projection is None:
            printer, end, slack = (
                fmt.text(job.printer or "…", "dim"),
                fmt.text("…", "dim"),
                fmt.text("…", "dim"),
            )
        else:
            printer = fmt.text(
                projection.printers or job.printer or fmt.DASH, "" if projection.printers else "dim"
            )
            end_text = (
                fmt.local(projection.end, self.model.tz, now=now)
                if projection.end
                else (projection.problem or fmt.DASH)
            )
            end = fmt.text(end_text, "red" if projection.late else "")
            slack = fmt.slack_cell(projection.slack_minutes, projection.late, projection.late_risk)
        material = job.material + (f" {job.colour}" if job.colour else "")
        return (
            position_cell,
            fmt.text(job.sku),
            fmt.text(str(job.quantity)),
            fmt.job_state_cell(job.state, job.priority, job.flag),
            printer,
            end,
            slack,
            fmt.text(fmt.local(job.due, self.model.tz, now=now)),
            fmt.text(fmt.minutes_text(job.estimate_minutes)),
            fmt.text(material),
            fmt.text(f"{PLATFORM_SHORT.get(job.platform, '')} {job.order_id}"),
        )
