"""The health view for troubleshooting one platform at a time.

The last requests (time, operation, status, latency, rate-limit headers,
request id), error codes with their sentences, success rate over time, token
state, the credential check with a "test connection" action, and the outbox
items pending or failed with their next retry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static, Tab, Tabs

from tf_console.console.events import ConsoleEvent, EventKind
from tf_console.console.views import HealthDetail
from tf_console.errors import UserError
from tf_console.models import Platform
from tf_console.ui import format as fmt
from tf_console.ui.keys import HEALTH_KEYS, bindings

if TYPE_CHECKING:
    from tf_console.ui.app import ConsoleApp

REQUESTS_SHOWN = 25


AUDIT_SHOWN = 10


def _table(*columns: str) -> Table:
    table = Table(box=None, show_edge=False, pad_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    return table


def render_health(detail: HealthDetail, app: ConsoleApp) -> RenderableType:
    now = app.service.clock.now()
    tz = app.tz
    h = detail.row.health
    head = Text(f"{h.platform.label}  ", style="bold")
    head.append_text(fmt.platform_state_cell(h.state))
    if h.reason:
        head.append(f"  {h.reason}")
    source = (
        "from this console's own calls"
        if detail.row.source == "live"
        else "from the poller's health log"
        if detail.row.source == "log"
        else "configuration"
    )
    facts = Text(
        f"last poll {fmt.since(h.last_poll_at, now)} · next {fmt.countdown(h.next_poll_at, now)} · "
        f"polled by {h.poller or 'nobody'} · success {fmt.percent(h.success_rate)} · {source}",
        style="dim",
    )
    if detail.disabled_reason:
        return Group(head, Text(""), Text(f"Disabled: {detail.disabled_reason}"), facts)
    token = Text("Token: ", style="bold")
    token.append(detail.token_state)
    check = Text("Credential check: ", style="bold")
    check.append(detail.credential_check or "not run yet — press T to test the connection.")
    rates = Text("Rate limits: ", style="bold")
    rates.append(
        f"{fmt.meter(h.calls_in_window, h.window_budget) if h.window_budget else fmt.DASH} in the window · "
        f"bucket {f'{h.bucket_level:.1f}/{h.bucket_capacity:.0f}' if h.bucket_level is not None and h.bucket_capacity else fmt.DASH} · "  # noqa: E501
        f"daily left {h.daily_remaining if h.daily_remaining is not None else fmt.DASH}"
    )
    spark = Text("Success over the last hour: ", style="bold")
    spark.append(
        fmt.sparkline(
            [v if v is not None else None for v in detail.success_over_time], len(detail.success_over_time)
        ),
        style="cyan",
    )
    spark.append(f"  ({detail.bucket_minutes}-minute buckets, · = no calls)", style="dim")
    poll = Text("Last poll: ", style="bold")
    poll.append(detail.poll_summary or fmt.DASH)

    requests: RenderableType
    if detail.requests:
        table = _table("Time", "Operation", "Status", "ms", "Try", "Rate headers", "Request id", "Message")
        for r in detail.requests[:REQUESTS_SHOWN]:
            status = str(r.status) if r.status is not None else ("note" if r.kind != "call" else "none")
            table.add_row(
                fmt.local(r.at, tz, with_day=False),
                f"{r.method} {r.operation}".strip(),
                Text(status, style="green" if r.ok else "bold red"),
                f"{r.latency_ms:.0f}",
                str(r.attempt),
                " ".join(f"{k}={v}" for k, v in r.rate_headers) or fmt.DASH,
                r.request_id or fmt.DASH,
                r.message or "",
            )
        requests = table
    else:
        requests = Text("No requests recorded yet.", style="dim")

    errors: RenderableType
    if detail.errors:
        table = _table("Code", "Times", "Last", "What it means")
        for e in detail.errors:
            table.add_row(e.code, str(e.count), fmt.local(e.last_at, tz, with_day=False), e.sentence)
        errors = table
    else:
        errors = Text("No errors in the recorded requests.", style="dim")

    outbox: RenderableType
    if detail.outbox:
        table = _table("Item", "State", "Tries", "Next retry", "Answer")
        for item in detail.outbox:
            table.add_row(
                item.item_id,
                Text(
                    item.state,
                    style="red" if item.state == "rejected" else "cyan" if item.active else "green",
                ),
                str(item.attempts),
                fmt.countdown(item.next_attempt_at, now) if item.active else fmt.DASH,
                item.answer or "",
            )
        outbox = table
    else:
        outbox = Text("The outbox is empty for this platform.", style="dim")

    def title(name: str) -> Text:
        return Text(f"\n{name}", style="bold underline")

    audit_log = app.service.runtime.audit
    recent = audit_log.recent(AUDIT_SHOWN) if audit_log is not None else []
    if recent:
        audit = _table("When", "Who", "Action", "Target", "Outcome")
        for entry in reversed(recent):
            when = entry.when.astimezone(app.tz).strftime("%m-%d %H:%M")
            audit.add_row(when, entry.user, entry.action, entry.target, entry.outcome)
        audit_view: RenderableType = audit
    else:
        audit_view = Text("Nothing has been done through the console yet.", style="dim")

    return Group(
        head,
        facts,
        Text(""),
        token,
        check,
        rates,
        spark,
        poll,
        title("Last requests (newest first)"),
        requests,
        title("Errors"),
        errors,
        title("Outbox"),
        outbox,
        title("Recent actions (audit trail, all platforms)"),
        audit_view,
    )


class HealthScreen(Screen[None]):
    BINDINGS = bindings(HEALTH_KEYS)

    def __init__(self, platform: Platform | None = None) -> None:
        super().__init__(classes="health-screen")
        self.platform = platform
        self.body = Static("Loading…", id="health-body")
        self._dirty = False

    @property
    def tf_app(self) -> ConsoleApp:
        from tf_console.ui.app import ConsoleApp

        assert isinstance(self.app, ConsoleApp)
        return self.app

    def compose(self) -> ComposeResult:
        platforms = self.tf_app.service.platforms()
        if self.platform is None and platforms:
            self.platform = platforms[0]
        yield Tabs(
            *[Tab(p.label, id=f"tab-{p.value}") for p in platforms],
            active=f"tab-{self.platform.value}" if self.platform else None,
            id="health-tabs",
        )
        with VerticalScroll(id="health-scroll"):
            yield self.body
        yield Footer()

    def on_mount(self) -> None:
        self.reload()
        self.set_interval(2.0, self._refresh_if_dirty)

    def on_tabs_tab_activated(self, event: Tabs.TabActivated) -> None:
        if event.tab.id is None:
            return
        platform = Platform(event.tab.id.removeprefix("tab-"))
        if platform != self.platform:
            self.platform = platform
            self.reload()

    def reload(self) -> None:
        self._dirty = False
        if self.platform is not None:
            self.tf_app.run_worker(self._load(self.platform), group="health-view", exit_on_error=False)

    async def _load(self, platform: Platform) -> None:
        detail = await self.tf_app.call_service(self.tf_app.service.health_detail, platform)
        if platform == self.platform:
            self.body.update(render_health(detail, self.tf_app))

    def _refresh_if_dirty(self) -> None:
        if self._dirty:
            self.reload()

    def handle_event(self, event: ConsoleEvent) -> None:
        if event.kind in (EventKind.HEALTH, EventKind.POLL_FINISHED, EventKind.OUTBOX) and (
            event.platform is None or event.platform == self.platform
        ):
            self._dirty = True

    def action_back(self) -> None:
        self.dismiss(None)

    def action_next_platform(self) -> None:
        self.query_one(Tabs).action_next_tab()

    def action_previous_platform(self) -> None:
        self.query_one(Tabs).action_previous_tab()

    def action_poll_now(self) -> None:
        self.tf_app.dashboard.action_poll_now()

    def action_test_connection(self) -> None:
        if self.platform is not None:
            self.tf_app.run_worker(self._test(self.platform), group="test-connection", exit_on_error=False)

    async def _test(self, platform: Platform) -> None:
        self.notify(f"Testing the {platform.label} connection…", timeout=2)
        try:
            result = await self.tf_app.service.test_connection(platform)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(result.sentence, severity="information" if result.ok else "error")
        self.reload()
