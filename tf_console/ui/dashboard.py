"""The dashboard: platform health, incoming orders and the production queue, live.

Updates are incremental.  Service events mark what is stale; a coalescing
refresher per pane re-reads it in a worker thread (one run at a time, one more
if anything changed meanwhile) and the pane repaints only the cells whose text
changed.  A cheap stat of the state files every two seconds catches changes
made by other processes (a daemon, ``tf-console ship``).  With nothing changing,
nothing repaints.

Queue moves show at once: the new order is computed locally and the rows move;
the write goes to the service's FIFO write thread, and the projected times
follow when the reschedule (a worker thread) finishes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Input, ProgressBar, Static

from tf_console.console import SORT_KEYS, OrderFilter, OrderQuery
from tf_console.console.events import ConsoleEvent, EventKind
from tf_console.console.service import AREA_ARCHIVE, AREA_JOBS, AREA_ORDERS, AREA_OUTBOX, AREA_POLLS
from tf_console.errors import UserError
from tf_console.models import ItemKind, Platform
from tf_console.production.scheduler import Move
from tf_console.ui.alerts_widget import AlertsBanner
from tf_console.ui.detail import JobDetailScreen, OrderDetailScreen
from tf_console.ui.health_view import HealthScreen
from tf_console.ui.keys import DASHBOARD_KEYS, bindings
from tf_console.ui.modals import ClassifyModal, PriorityModal, ShipModal, UnknownItem
from tf_console.ui.panes import ConsoleModel, HealthPane, OrdersPane, Pane, QueuePane

if TYPE_CHECKING:
    from tf_console.ui.app import ConsoleApp

# Moves are written once the keys pause: a burst of K/J is one write, and no store write
# competes (for the GIL) with painting the rows while the operator is still pressing.
MOVE_DEBOUNCE_SECONDS = 0.4
TICK_SECONDS = 1.0
WATCH_SECONDS = 2.0
HEALTH_MIN_INTERVAL = 0.5
ARCHIVE_INDEX_LATEST_SECONDS = 10.0  # start the archive scan by then even if the queue is slow


class Coalescer:
    """Run ``refresh`` in a worker; requests made while it runs collapse into one more run."""

    def __init__(
        self, app: ConsoleApp, name: str, refresh: Callable[[], Awaitable[None]], *, min_interval: float = 0.0
    ) -> None:
        self.app = app
        self.name = name
        self.refresh = refresh
        self.min_interval = min_interval
        self.dirty = False
        self.running = False
        self.runs = 0

    def request(self) -> None:
        self.dirty = True
        if not self.running:
            self.running = True
            # The function, not a coroutine: a worker refused at shutdown leaves nothing unawaited.
            # Textual's overloads infer Never for a bound async method; it is awaited as a coroutine function.
            self.app.run_worker(self._loop, name=self.name, group=self.name, exit_on_error=False)  # type: ignore[arg-type]

    async def _loop(self) -> None:
        try:
            while self.dirty:
                self.dirty = False
                self.runs += 1
                await self.refresh()
                if self.dirty and self.min_interval:
                    await asyncio.sleep(self.min_interval)
        finally:
            self.running = False


class DashboardScreen(Screen[None]):
    BINDINGS = bindings(DASHBOARD_KEYS)

    def __init__(self, app: ConsoleApp) -> None:
        super().__init__(id="dashboard")
        self.tf_app = app
        self.service = app.service
        self.model = ConsoleModel(now=self.service.clock.now, tz=app.tz, summary_of=self.service.index.get)
        self.health_pane = HealthPane(self.model)
        self.orders_pane = OrdersPane(self.model)
        self.queue_pane = QueuePane(self.model)
        self.status = Static("", id="status-line", markup=False)
        self.banner = Static("", id="banner", markup=False)
        self.progress = ProgressBar(total=1, show_eta=False, show_percentage=True, id="backfill")
        self.queue_version = 0
        self._pending_keys: set[str] = set()
        self._rescan_hot = False
        self._rescan_all = False
        self._poll_requested = False
        self._progress_pages: dict[Platform, tuple[int, int]] = {}
        self._status_text = ""
        self._active_pane = "orders"
        self._archive_started = False
        self._pending_moves: list[tuple[str, Move]] = []
        self._pending_words: list[str] = []
        self._move_timer: Timer | None = None
        self.refresh_orders = Coalescer(app, "orders", self._refresh_orders)
        self.refresh_queue = Coalescer(app, "queue", self._refresh_queue)
        self.refresh_projection = Coalescer(app, "projection", self._refresh_projection)
        self.refresh_health = Coalescer(app, "health", self._refresh_health, min_interval=HEALTH_MIN_INTERVAL)
        self.refresh_status = Coalescer(app, "status", self._refresh_status)

    # ------------------------------------------------------------------ layout

    def compose(self) -> ComposeResult:
        yield self.status
        yield self.banner
        alerts = self.service.runtime.alerts
        if alerts is not None:
            yield AlertsBanner(alerts, tz=self.tf_app.tz)
        yield self.progress
        yield self.health_pane
        yield self.orders_pane
        yield self.queue_pane
        yield Footer()

    def on_mount(self) -> None:
        self.banner.display = False
        self.progress.display = False
        self.orders_pane.table.focus()
        self.set_interval(TICK_SECONDS, self._tick)
        self.set_interval(WATCH_SECONDS, self._watch_disk)
        self.set_timer(ARCHIVE_INDEX_LATEST_SECONDS, self._index_archive)
        self.tf_app.run_worker(self._build_index(), name="index", group="index", exit_on_error=False)
        self.refresh_health.request()
        self.refresh_queue.request()
        self.refresh_status.request()

    def show_banner(self, text: str) -> None:
        """A line above the panes for something the owner must see (alerts use this)."""
        self.banner.update(text)
        self.banner.display = bool(text)

    def focused_pane(self) -> str:
        """The pane keys act on: the one last focused (set at once by 1/2/3, before focus moves)."""
        return self._active_pane

    def on_descendant_focus(self, event: Any) -> None:
        widget = event.widget
        for name, pane in (
            ("health", self.health_pane),
            ("orders", self.orders_pane),
            ("queue", self.queue_pane),
        ):
            if widget is pane or pane in widget.ancestors:
                self._active_pane = name

    # ------------------------------------------------------------------ service events

    def handle_event(self, event: ConsoleEvent) -> None:
        kind = event.kind
        if kind is EventKind.ORDERS:
            self._pending_keys.update(event.keys)
            self.refresh_orders.request()
        elif kind is EventKind.OUTBOX:
            self._pending_keys.update(event.keys)
            self.refresh_orders.request()
            self.refresh_health.request()
        elif kind is EventKind.JOBS:
            self.refresh_queue.request()
        elif kind in (EventKind.HEALTH, EventKind.POLL_STARTED):
            self.refresh_health.request()
        elif kind is EventKind.POLL_FINISHED:
            self.refresh_health.request()
            if event.platform is not None:
                self._progress_pages.pop(event.platform, None)
                self._show_progress()
            if self._poll_requested:
                self.notify(event.text, severity="information" if event.ok else "error", timeout=6)
        elif kind is EventKind.PROGRESS and event.platform is not None:
            if event.total and event.total > 1:
                self._progress_pages[event.platform] = (event.page, event.total)
            self._show_progress()
        elif kind is EventKind.INDEX:
            self.model.indexed = event.count
            self.model.index_done = event.done
            self.refresh_orders.request()
        elif kind is EventKind.POLLER:
            self.refresh_status.request()
            self.refresh_health.request()

    def _show_progress(self) -> None:
        """Backfills that know their page count show one bar (all platforms together)."""
        running = [(page, total) for page, total in self._progress_pages.values() if page < total]
        if not running:
            self.progress.display = False
            return
        self.progress.display = True
        self.progress.update(total=sum(t for _p, t in running), progress=sum(p for p, _t in running))

    # ------------------------------------------------------------------ timers

    def _tick(self) -> None:
        """Time-dependent cells (countdowns, ages): repainted only where the text changed."""
        try:
            self.health_pane.table.refresh_rows()
            self.orders_pane.table.refresh_rows()
        except Exception as exc:  # a timer must never reach Textual's crash screen
            self.tf_app.report_error(exc, "updating the times on screen")
        self.refresh_status.request()

    def _watch_disk(self) -> None:
        try:
            changed = self.service.changed_areas()
        except Exception as exc:  # a vanished file mid-scan: look again next time
            self.tf_app.report_error(exc, "watching the state folder")
            return
        if AREA_ARCHIVE in changed:
            self._rescan_all = True
        if AREA_ORDERS in changed:
            self._rescan_hot = True
        if changed & {AREA_ORDERS, AREA_ARCHIVE}:
            self.refresh_orders.request()
        if AREA_JOBS in changed:
            self.refresh_queue.request()
        if changed & {AREA_OUTBOX, AREA_POLLS}:
            self.refresh_health.request()

    # ------------------------------------------------------------------ refreshers

    async def _build_index(self) -> None:
        await self.tf_app.call_service(self.service.index_hot)

    def _index_archive(self) -> None:
        """The archives after the first full frame: the scan is long and must not slow it down."""
        if not self._archive_started:
            self._archive_started = True
            self.tf_app.run_worker(
                self.tf_app.call_service(self.service.index_archive),
                name="indexing the archived orders",
                group="index",
                exit_on_error=False,
            )

    async def _refresh_orders(self) -> None:
        keys, self._pending_keys = self._pending_keys, set()
        rescan_all, self._rescan_all = self._rescan_all, False
        rescan_hot, self._rescan_hot = self._rescan_hot, False
        changed: list[str] = []
        if rescan_all and self.service.index.complete:
            changed += await self.tf_app.call_service(lambda: self.service.rescan(include_archive=True))
        elif rescan_hot or rescan_all:
            changed += await self.tf_app.call_service(self.service.rescan)
        if keys:
            changed += await self.tf_app.call_service(self.service.refresh_orders, keys)
        listing = await self.tf_app.call_service(self.service.listing, self.model.query)
        self.orders_pane.show(listing, set(changed) | keys)

    async def _refresh_queue(self) -> None:
        if self.service.writes_pending or self._pending_moves:
            return  # the last write's completion asks again
        view = await self.tf_app.call_service(self.service.load_queue)
        if self.service.writes_pending or view.generation != self.service.generation:
            self.refresh_queue.request()
            return
        self.model.jobs = view.jobs
        self.model.pin_overrides.clear()
        self.queue_pane.show_sequence(view.sequence)
        self.queue_pane.table.refresh_rows()
        self.queue_version += 1
        self.refresh_projection.request()

    async def _refresh_projection(self) -> None:
        projection = await self.tf_app.call_service(self.service.project)
        before = self.model.projection
        self.model.projection = projection
        self.queue_pane.table.refresh_rows()
        self.queue_pane.update_title()
        self.queue_version += 1
        self._index_archive()
        flagged_before = (before.late_orders | before.at_risk_orders) if before else frozenset()
        flagged_now = projection.late_orders | projection.at_risk_orders
        if flagged_before != flagged_now:
            self.orders_pane.table.refresh_rows(set(flagged_before ^ flagged_now))

    async def _refresh_health(self) -> None:
        rows = await self.tf_app.call_service(self.service.health_rows)
        self.health_pane.show(rows)

    async def _refresh_status(self) -> None:
        info = await self.tf_app.call_service(self.service.poller_info)
        now = self.service.clock.now().astimezone(self.tf_app.tz)
        parts = [self.tf_app.title_text]
        if self.tf_app.mode_label:
            parts.append(self.tf_app.mode_label)
        parts.append(info.description)
        if info.read_only:
            parts.append("READ-ONLY: nothing is sent to a marketplace")
        parts.append(now.strftime("%a %d %b %H:%M %Z"))
        text = " · ".join(parts)
        if text != self._status_text:
            self._status_text = text
            self.status.update(text)

    # ------------------------------------------------------------------ selection

    def selected_order_key(self) -> str | None:
        pane = self.focused_pane()
        if pane == "queue":
            job_id = self.queue_pane.table.cursor_key
            job = self.model.jobs.get(job_id) if job_id else None
            return job.order_key if job is not None else None
        return self.orders_pane.table.cursor_key

    def selected_job(self) -> str | None:
        if self.focused_pane() != "queue":
            self.notify("Select a job in the queue first (press 3).", severity="warning", timeout=3)
            return None
        job_id = self.queue_pane.table.cursor_key
        if job_id is None:
            self.notify("The queue is empty.", severity="warning", timeout=3)
        return job_id

    # ------------------------------------------------------------------ actions: navigation

    def _panes(self) -> dict[str, Pane]:
        return {"health": self.health_pane, "orders": self.orders_pane, "queue": self.queue_pane}

    def action_focus_pane(self, name: str) -> None:
        pane = self._panes().get(name)
        if pane is not None:
            self._active_pane = name
            pane.focus_table()

    def action_zoom(self) -> None:
        if self.maximized is not None:
            self.minimize()
            return
        pane = self._panes().get(self._active_pane, self.orders_pane)
        self.maximize(pane, container=False)
        pane.focus_table()

    def action_detail(self) -> None:
        pane = self.focused_pane()
        if pane == "queue":
            job_id = self.queue_pane.table.cursor_key
            if job_id is not None:
                self.app.push_screen(JobDetailScreen(job_id))
        elif pane == "health":
            key = self.health_pane.table.cursor_key
            self.app.push_screen(HealthScreen(Platform(key) if key else None))
        else:
            order_key = self.orders_pane.table.cursor_key
            if order_key is None:
                self.notify("No order is selected.", severity="warning", timeout=3)
                return
            self.app.push_screen(OrderDetailScreen(order_key))

    def action_filter(self) -> None:
        field = self.orders_pane.filter_input
        field.display = True
        field.focus()

    def action_back(self) -> None:
        field = self.orders_pane.filter_input
        if field.has_focus or field.display:
            if field.value:
                field.value = ""
            field.display = False
            self._set_filter("")
            self.orders_pane.table.focus()

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._set_filter(event.value)

    @on(Input.Submitted, "#filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if not event.value.strip():
            self.orders_pane.filter_input.display = False
        self.orders_pane.table.focus()
        flt = self.model.query.filter
        if flt.problems:
            self.notify(
                f"Not understood and ignored: {', '.join(flt.problems)}. Press ? for the filter syntax.",
                severity="warning",
            )

    def _set_filter(self, text: str) -> None:
        flt = OrderFilter.parse(text)
        if flt != self.model.query.filter:
            self.model.query = OrderQuery(flt, self.model.query.sort)
            self.orders_pane.update_title()
            self.refresh_orders.request()

    def action_sort(self) -> None:
        current = SORT_KEYS.index(self.model.query.sort) if self.model.query.sort in SORT_KEYS else 0
        sort = SORT_KEYS[(current + 1) % len(SORT_KEYS)]
        self.model.query = OrderQuery(self.model.query.filter, sort)
        self.orders_pane.update_title()
        self.refresh_orders.request()
        self.notify(f"Orders sorted by {sort}.", timeout=2)

    def action_poll_now(self) -> None:
        self.tf_app.run_worker(self._poll_now(), group="poll-now", exit_on_error=False)

    async def _poll_now(self) -> None:
        try:
            sentence = await self.service.poll_now()
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self._poll_requested = True
        self.notify(sentence, timeout=4)
        self.refresh_status.request()

    # ------------------------------------------------------------------ actions: queue

    def _move(self, where: Move) -> None:
        job_id = self.selected_job()
        if job_id is None:
            return
        sequence = self.model.sequence
        if job_id not in sequence:
            return
        order, pins = self.service.preview_move(sequence, self.model.pinned(), job_id, where)
        if tuple(order) == sequence:
            edge = "last" if where == "down" else "first"
            self.notify(f"Job {job_id} is already {edge} in the queue.", timeout=2)
            return
        self.model.pin_overrides.update(pins)
        self.queue_pane.show_sequence(tuple(order), follow=job_id)
        self.queue_version += 1
        words = {"up": "up one place", "down": "down one place", "top": "to the top"}[where]
        self._pending_moves.append((job_id, where))
        self._pending_words.append(f"{job_id} {words}")
        if self._move_timer is not None:
            self._move_timer.stop()
        self._move_timer = self.set_timer(MOVE_DEBOUNCE_SECONDS, self.flush_moves)

    @property
    def moves_pending(self) -> bool:
        return bool(self._pending_moves)

    def flush_moves(self) -> None:
        """Write the moves made so far (one write job, in the order pressed)."""
        if self._move_timer is not None:
            self._move_timer.stop()
            self._move_timer = None
        if not self._pending_moves:
            return
        moves, self._pending_moves = self._pending_moves, []
        words, self._pending_words = self._pending_words, []
        sentence = (
            f"Moved {words[0]}." if len(words) == 1 else f"{len(words)} moves saved; last: {words[-1]}."
        )
        self._after_write(self.service.apply_moves(moves), sentence)

    def action_move_up(self) -> None:
        self._move("up")

    def action_move_down(self) -> None:
        self._move("down")

    def action_move_top(self) -> None:
        self._move("top")

    def action_unpin(self) -> None:
        self.flush_moves()
        job_id = self.selected_job()
        if job_id is None:
            return
        if self.model.pin_of(job_id) is None:
            self.notify(f"Job {job_id} is not pinned; the scheduler already places it.", timeout=3)
            return
        self._after_write(self.service.unpin(job_id), f"Unpinned {job_id}; the scheduler places it again.")

    def action_hold(self) -> None:
        self.flush_moves()
        job_id = self.selected_job()
        if job_id is not None:
            self._after_write(self.service.toggle_hold(job_id), None)

    def action_priority(self) -> None:
        self.flush_moves()
        job_id = self.selected_job()
        if job_id is None:
            return
        job = self.model.jobs.get(job_id)
        if job is not None:
            self.tf_app.run_worker(
                self._priority(job_id, job.priority), group="priority", exit_on_error=False
            )

    async def _priority(self, job_id: str, current: Any) -> None:
        chosen = await self.app.push_screen_wait(PriorityModal(job_id, current))
        if chosen is not None and chosen != current:
            self._after_write(self.service.set_priority(job_id, chosen), None)

    def _after_write(
        self, future: Any, done_sentence: str | None, then: Callable[[], None] | None = None
    ) -> None:
        self.tf_app.run_worker(
            self._await_write(future, done_sentence, then), group="writes", exit_on_error=False
        )

    async def _await_write(
        self, future: Any, done_sentence: str | None, then: Callable[[], None] | None
    ) -> None:
        try:
            result = await asyncio.wrap_future(future)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            result = None
        else:
            sentence = done_sentence or (result if isinstance(result, str) else None)
            if sentence:
                self.notify(sentence, timeout=3)
        finally:
            if then is not None:
                then()
            if not self.service.writes_pending:
                self.refresh_queue.request()

    # ------------------------------------------------------------------ actions: orders

    def action_ship(self) -> None:
        key = self.selected_order_key()
        if key is None:
            self.notify("Select an order to ship.", severity="warning", timeout=3)
            return
        self.start_ship(key)

    def start_ship(self, key: str) -> None:
        self.tf_app.run_worker(self._ship(key), group="ship", exit_on_error=False)

    async def _ship(self, key: str) -> None:
        try:
            form = await self.tf_app.call_service(self.service.ship_form, key)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        request = await self.app.push_screen_wait(ShipModal(form, self.service))
        if request is None:
            self.notify("Nothing was shipped.", timeout=2)
            return
        try:
            receipt = await self.tf_app.call_service(self.service.ship, request)
        except UserError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(receipt.sentence, severity="warning" if receipt.already else "information", timeout=6)
        self._pending_keys.add(key)
        self.refresh_orders.request()

    def action_classify(self) -> None:
        key = self.selected_order_key()
        if key is None:
            self.notify("Select an order with an unknown item (Mix shows ?N).", severity="warning", timeout=3)
            return
        self.start_classify(key)

    def start_classify(self, key: str) -> None:
        self.tf_app.run_worker(self._classify(key), group="classify", exit_on_error=False)

    async def _classify(self, key: str) -> None:
        detail = await self.tf_app.call_service(self.service.order_detail, key)
        if detail is None:
            self.notify(f"Order {key} is not in the store.", severity="error")
            return
        unknown = [UnknownItem(i.line_id, i.sku, i.title) for i in detail.items if i.kind is ItemKind.UNKNOWN]
        if not unknown:
            self.notify(
                f"{detail.platform.label} order {detail.order_id} has no unknown item; "
                "c classifies items the catalog does not know (Mix shows ?N).",
                timeout=4,
            )
            return
        profiles = await self.tf_app.call_service(self.service.profiles)
        choice = await self.app.push_screen_wait(
            ClassifyModal(detail.platform, detail.order_id, unknown, profiles)
        )
        if choice is None:
            return
        future = self.service.classify(
            choice.sku, choice.kind, profile=choice.profile, platform=choice.platform
        )
        self._after_write(future, None, then=self._orders_reclassified)

    def _orders_reclassified(self) -> None:
        self._rescan_hot = True
        self.refresh_orders.request()
