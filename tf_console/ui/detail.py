"""Order and job detail screens.

The order detail shows line items with their kind and the catalog rule that
decided it, the buyer and address (decrypted only here, masked until ``v``),
shipments with their confirmation state, the outbox history and the jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from tf_console.console.events import ConsoleEvent, EventKind
from tf_console.console.views import JobInfo, JobProjection, OrderDetail
from tf_console.ui import format as fmt
from tf_console.ui.keys import DETAIL_KEYS, JOB_KEYS, bindings

if TYPE_CHECKING:
    from tf_console.ui.app import ConsoleApp


def _table(*columns: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold", expand=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


OrderSection = Callable[[OrderDetail, "ConsoleApp"], RenderableType]
# Sections appended to the order detail (the audit trail of a later issue plugs in here).
EXTRA_ORDER_SECTIONS: list[OrderSection] = []

AUDIT_SHOWN = 12


def audit_section(detail: OrderDetail, app: ConsoleApp) -> RenderableType:
    """The audit trail of this order: who did what, when, with what outcome."""
    audit = app.service.runtime.audit
    heading = Text("\nAudit trail", style="bold")
    if audit is None:
        return Group(heading, Text("  (not available)", style="dim"))
    entries = audit.for_order(detail.key)[-AUDIT_SHOWN:]
    if not entries:
        return Group(heading, Text("  nothing recorded yet", style="dim"))
    table = _table("When", "Who", "Action", "Outcome", "Detail")
    for entry in entries:
        when = entry.when.astimezone(app.tz).strftime("%Y-%m-%d %H:%M")
        table.add_row(when, entry.user, entry.action, entry.outcome, entry.detail)
    return Group(heading, table)


EXTRA_ORDER_SECTIONS.append(audit_section)


def render_order(detail: OrderDetail, app: ConsoleApp) -> RenderableType:
    now = app.service.clock.now()
    tz = app.tz
    head = Text()
    head.append(f"{detail.platform.label} order {detail.order_id}", style="bold")
    head.append("  ")
    head.append_text(fmt.status_cell(detail.status, cancel_requested=detail.cancel_requested))
    if detail.raw_status:
        head.append(f" ({detail.raw_status})", style="dim")
    if detail.refunded:
        head.append("  refunded", style="magenta")
    facts = Text(
        f"created {fmt.local(detail.created_at, tz, now=now)} ({fmt.age(detail.created_at, now)} ago) · "
        f"updated {fmt.local(detail.updated_at, tz, now=now)} · total {detail.total or fmt.DASH} · "
        f"fulfilled by {detail.fulfilled_by}"
    )
    ship_by = Text("ship by ")
    ship_by.append(fmt.local(detail.ship_by, tz, now=now))
    ship_by.append(" ")
    ship_by.append_text(fmt.ship_by_cell(detail.ship_by, now, is_open=detail.status.is_open))

    items = _table("Line", "SKU", "Title", "Qty", "Shipped", "Kind", "Decided by", "Personalisation")
    for item in detail.items:
        kind_style = {"print": "cyan", "stock": "", "unknown": "bold yellow"}[item.kind.value]
        items.add_row(
            item.line_id,
            item.sku or fmt.DASH,
            item.title + (f" ({item.variation})" if item.variation else ""),
            str(item.quantity),
            str(item.quantity_shipped),
            Text(item.kind.value + (" — press c" if item.kind.value == "unknown" else ""), style=kind_style),
            item.kind_rule or fmt.DASH,
            item.personalisation or fmt.DASH,
        )

    if detail.pii_redacted:
        buyer: RenderableType = Text("Buyer data was purged (purge-pii).", style="dim")
    elif not detail.buyer_lines:
        buyer = Text("The marketplace gave no buyer address.", style="dim")
    else:
        buyer = Text("\n".join(detail.buyer_lines))
    buyer_title = Text("Buyer ", style="bold")
    buyer_title.append("(shown — v masks)" if detail.revealed else "(masked — v reveals)", style="dim")

    shipments: RenderableType
    if detail.shipments:
        table = _table("#", "Carrier", "Tracking", "Lines", "State", "Requested", "Updated", "Answer")
        for s in detail.shipments:
            table.add_row(
                s.shipment_id,
                s.carrier
                + (f" ({s.carrier_name})" if s.carrier_name and s.carrier_name != s.carrier else ""),
                s.tracking,
                ", ".join(f"{line} × {qty}" for line, qty in s.lines) or "all",
                fmt.shipment_cell(s.state),
                fmt.local(s.requested_at, tz, now=now),
                fmt.local(s.updated_at, tz, now=now),
                s.answer or fmt.DASH,
            )
        shipments = table
    else:
        shipments = Text(
            "No shipment yet" + (" — press s to ship." if detail.shippable else "."), style="dim"
        )
    tracking = Text(
        "Marketplace shows tracking: " + (", ".join(detail.marketplace_tracking) or fmt.DASH), style="dim"
    )

    outbox_parts: list[RenderableType] = []
    for sent in detail.outbox:
        line = Text(f"{sent.kind} {sent.item_id}: ", style="bold")
        line.append(
            sent.state,
            style="green" if sent.state == "done" else "red" if sent.state == "rejected" else "cyan",
        )
        line.append(f" · {sent.attempts} attempt(s)")
        if sent.active:
            line.append(f" · next {fmt.countdown(sent.next_attempt_at, now)}")
        if sent.answer:
            line.append(f" · {sent.answer}", style="dim")
        outbox_parts.append(line)
        for at, event, text_detail in sent.history[-8:]:
            outbox_parts.append(Text(f"   {fmt.local(at, tz, now=now)}  {event}  {text_detail}", style="dim"))
    outbox: RenderableType = (
        Group(*outbox_parts) if outbox_parts else Text("Nothing sent for this order.", style="dim")
    )

    jobs: RenderableType
    if detail.jobs:
        job_table = _table("Job", "State", "Qty", "Plates", "Printer", "Profile", "Flag")
        for job in detail.jobs:
            job_table.add_row(
                job.job_id,
                fmt.job_state_cell(job.state, job.priority, job.flag),
                str(job.quantity),
                f"{job.plates_done}/{job.plates}",
                job.printer or fmt.DASH,
                job.profile,
                job.flag or fmt.DASH,
            )
        jobs = job_table
    else:
        jobs = Text("No print jobs (nothing printed in this order).", style="dim")

    def title(name: str) -> Text:
        return Text(f"\n{name}", style="bold underline")

    extra = [section(detail, app) for section in EXTRA_ORDER_SECTIONS]
    return Group(
        head,
        facts,
        ship_by,
        title("Items"),
        items,
        Text(""),
        buyer_title,
        buyer,
        title("Shipments"),
        shipments,
        tracking,
        title("Outbox"),
        outbox,
        title("Jobs"),
        jobs,
        *extra,
    )


class OrderDetailScreen(Screen[None]):
    BINDINGS = bindings(DETAIL_KEYS)

    def __init__(self, key: str) -> None:
        super().__init__(classes="detail-screen")
        self.key = key
        self.revealed = False
        self.detail: OrderDetail | None = None
        self.body = Static("Loading…", id="order-detail-body")

    @property
    def tf_app(self) -> ConsoleApp:
        from tf_console.ui.app import ConsoleApp

        assert isinstance(self.app, ConsoleApp)
        return self.app

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="order-detail", classes="detail"):
            yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        self.tf_app.run_worker(self._load(), group=f"detail:{self.key}", exit_on_error=False)

    async def _load(self) -> None:
        detail = await self.tf_app.call_service(
            self.tf_app.service.order_detail, self.key, reveal=self.revealed
        )
        self.detail = detail
        if detail is None:
            self.body.update(Text(f"Order {self.key} is not in the store.", style="bold red"))
            return
        self.body.update(render_order(detail, self.tf_app))
        self.sub_title = f"{detail.platform.label} {detail.order_id}"

    def handle_event(self, event: ConsoleEvent) -> None:
        if event.kind in (EventKind.ORDERS, EventKind.OUTBOX, EventKind.JOBS) and (
            not event.keys or self.key in event.keys
        ):
            self.reload()

    def action_back(self) -> None:
        self.dismiss(None)

    def action_reveal(self) -> None:
        self.revealed = not self.revealed
        self.reload()
        self.notify("Buyer data shown; press v to mask it again." if self.revealed else "Buyer data masked.")

    def action_ship(self) -> None:
        self.tf_app.dashboard.start_ship(self.key)

    def action_classify(self) -> None:
        self.tf_app.dashboard.start_classify(self.key)


def render_job(
    job: JobInfo, projection: JobProjection | None, position: int | None, app: ConsoleApp
) -> RenderableType:
    tz = app.tz
    now = app.service.clock.now()
    head = Text(f"Job {job.job_id}", style="bold")
    head.append("  ")
    head.append_text(fmt.job_state_cell(job.state, job.priority, job.flag))
    table = _table("", "")
    rows: list[tuple[str, str]] = [
        ("Order", f"{job.platform.label} {job.order_id}, line {job.line_id}"),
        ("Item", f"{job.sku}  {job.title}"),
        ("Quantity", f"{job.quantity} ({job.plates_done}/{job.plates} plates done)"),
        ("Profile", f"{job.profile}: {job.material} {job.colour}".strip()),
        ("Estimate", f"{fmt.minutes_text(job.estimate_minutes)} (slicer)"),
        ("Priority", job.priority.value + (f", pinned at {job.pin}" if job.pin is not None else "")),
        ("Queue position", str(position + 1) if position is not None else fmt.DASH),
        ("Due (ship by)", fmt.local(job.due, tz, now=now)),
        ("Personalised", "yes (text shown in the order, masked)" if job.personalised else "no"),
        ("Flag", job.flag or fmt.DASH),
    ]
    if projection is not None:
        rows += [
            ("Printer", projection.printers or fmt.DASH),
            (
                "Projected",
                f"{fmt.local(projection.start, tz, now=now)} → {fmt.local(projection.end, tz, now=now)}",
            ),
            ("Expected", f"{fmt.minutes_text(projection.expected_minutes)} (learned)"),
            ("Slack", fmt.minutes_text(projection.slack_minutes)),
        ]
        if projection.problem:
            rows.append(("Not scheduled", projection.problem))
    for name, value in rows:
        table.add_row(Text(name, style="bold"), value)
    history = Text("\n".join(job.history) or "No history yet.", style="dim")
    return Group(head, Text(""), table, Text("\nHistory", style="bold underline"), history)


class JobDetailScreen(Screen[None]):
    BINDINGS = bindings(JOB_KEYS)

    def __init__(self, job_id: str) -> None:
        super().__init__(classes="detail-screen")
        self.job_id = job_id
        self.body = Static("", id="job-detail-body")
        self._shown_version = -1

    @property
    def tf_app(self) -> ConsoleApp:
        from tf_console.ui.app import ConsoleApp

        assert isinstance(self.app, ConsoleApp)
        return self.app

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="job-detail", classes="detail"):
            yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.render_job()
        self.set_interval(1.0, self._follow_queue)

    def _follow_queue(self) -> None:
        """Re-render when the dashboard's queue changed (a move, new projected times)."""
        if self.tf_app.dashboard.queue_version != self._shown_version:
            self.render_job()

    def render_job(self) -> None:
        self._shown_version = self.tf_app.dashboard.queue_version
        model = self.tf_app.dashboard.model
        job = model.jobs.get(self.job_id)
        if job is None:
            self.body.update(Text(f"Job {self.job_id} is no longer in the queue.", style="bold red"))
            return
        projection = model.projection.jobs.get(self.job_id) if model.projection else None
        position = model.sequence.index(self.job_id) if self.job_id in model.sequence else None
        self.body.update(render_job(job, projection, position, self.tf_app))

    def action_back(self) -> None:
        self.dismiss(None)

    def action_open_order(self) -> None:
        job = self.tf_app.dashboard.model.jobs.get(self.job_id)
        if job is not None:
            self.app.push_screen(OrderDetailScreen(job.order_key))
