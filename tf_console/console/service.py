"""The console's one door to the rest of the program (no Textual here).

:class:`ConsoleService` wraps a started :class:`~tf_console.runtime.Runtime`: the
store, the sync engine, the production service and each platform's health
recorder.  The UI calls it and renders what it returns; it never touches the
store, HTTP or TinyDB itself.

Threading: methods marked *blocking* read or write the store and must run in a
worker thread; ``async`` methods run on the event loop (the engine's).  Queue
writes go through one FIFO thread (:meth:`submit`), so a burst of key presses
is applied in the order pressed.  Every listener call is guarded: a failing UI
callback never breaks syncing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread

from tf_console.carriers import CarrierFamily, carriers_for, check_tracking, find_carrier
from tf_console.clock import Clock
from tf_console.console.events import ConsoleEvent, EventKind
from tf_console.console.summary import OrderIndex, OrderListing, OrderQuery, OrderSummary, summarize
from tf_console.console.views import (
    CarrierChoice,
    CredentialResult,
    ErrorView,
    HealthDetail,
    HealthRow,
    ItemView,
    JobInfo,
    JobProjection,
    OrderDetail,
    OutboxView,
    PollerInfo,
    ProfileChoice,
    Projection,
    QueueView,
    RequestView,
    ShipForm,
    ShipLine,
    ShipmentView,
    ShipReceipt,
    TrackingVerdict,
)
from tf_console.errors import UserError
from tf_console.marketplaces.base import MarketplaceError
from tf_console.marketplaces.health import DEGRADED_BELOW, DOWN_AFTER_FAILURES
from tf_console.models import (
    MARKETPLACES,
    Address,
    FulfilledBy,
    ItemKind,
    JobState,
    Order,
    OrderStatus,
    Platform,
    PlatformHealth,
    PlatformState,
    PrintJob,
    Priority,
    ShipmentState,
)
from tf_console.production.scheduler import Move, compute_schedule, plan_move, queue_order
from tf_console.runtime import HEALTH_LOG, Runtime
from tf_console.sync.engine import PollStatus
from tf_console.sync.lease import LeaseInfo
from tf_console.sync.outbox import OutboxItem
from tf_console.sync.poller import PollResult
from tf_console.sync.shipping import AlreadyShipped, ShipRequest, enqueue_shipment

log = logging.getLogger(__name__)

T = TypeVar("T")
Listener = Callable[[ConsoleEvent], None]

SCAN_BATCH = 2000
HEALTH_WINDOW = timedelta(minutes=30)
SUCCESS_BUCKET_MINUTES = 5
SUCCESS_BUCKETS = 12
LOG_TAIL = 400
BACKFILL_DAYS = 7
HOLDER_CACHE_SECONDS = 1.0

# Areas of the state folder, so a change on disk refreshes only what it touches.
AREA_ORDERS = "orders"
AREA_ARCHIVE = "archive"
AREA_JOBS = "jobs"
AREA_OUTBOX = "outbox"
AREA_POLLS = "polls"
_COLLECTION_AREAS = {
    "jobs.json": AREA_JOBS,
    "plate_runs.json": AREA_JOBS,
    "outbox.json": AREA_OUTBOX,
    "poll_status.json": AREA_POLLS,
}


def mask_text(text: str) -> str:
    """Keep the first letter of each word, star the rest: enough to recognise, not to read."""
    return " ".join(word[:1] + "•" * min(len(word) - 1, 6) if word else word for word in text.split(" "))


def address_lines(address: Address | None, *, reveal: bool) -> tuple[str, ...]:
    if address is None or address.is_empty():
        return ()
    show: Callable[[str], str] = (lambda s: s) if reveal else mask_text
    lines = [
        show(address.name),
        show(address.line1),
        show(address.line2),
        " ".join(p for p in (show(address.city), show(address.region), show(address.postal_code)) if p),
        address.country,  # a country alone identifies nobody, and tells which carrier to use
        show(address.email),
        show(address.phone),
    ]
    return tuple(line for line in lines if line.strip())


def job_info(job: PrintJob) -> JobInfo:
    return JobInfo(
        job_id=job.job_id,
        platform=job.platform,
        order_id=job.order_id,
        line_id=job.line_id,
        sku=job.sku,
        title=job.title,
        quantity=job.quantity,
        material=job.material,
        colour=job.colour,
        profile=job.profile,
        state=job.state,
        priority=job.priority,
        pin=job.pin,
        printer=job.printer,
        due=job.due,
        plates=job.plates,
        plates_done=job.plates_done,
        minutes_per_unit=job.minutes_per_unit,
        flag=job.flag,
        personalised=bool(job.personalisation),
        history=tuple(job.history[-20:]),
    )


def outbox_view(item: OutboxItem) -> OutboxView:
    return OutboxView(
        item_id=item.item_id,
        kind=item.kind.value,
        platform=item.platform,
        order_id=item.order_id,
        sku=item.sku,
        state=item.state.value,
        attempts=item.attempts,
        next_attempt_at=item.next_attempt_at,
        answer=item.answer,
        history=tuple((e.at, e.event, e.detail) for e in item.history[-30:]),
    )


def _record_view(raw: dict[str, Any]) -> RequestView | None:
    try:
        at = datetime.fromisoformat(str(raw["at"]))
    except (KeyError, ValueError):
        return None
    status = raw.get("status")
    headers = raw.get("rate_headers") or {}
    return RequestView(
        at=at,
        operation=str(raw.get("operation", "")),
        method=str(raw.get("method", "")),
        status=int(status) if isinstance(status, int) else None,
        latency_ms=float(raw.get("latency_ms") or 0.0),
        ok=bool(raw.get("ok")),
        attempt=int(raw.get("attempt") or 0),
        error_code=str(raw.get("error_code", "")),
        message=str(raw.get("message", "")),
        request_id=str(raw.get("request_id", "")),
        rate_headers=tuple(sorted((str(k), str(v)) for k, v in dict(headers).items())),
        kind=str(raw.get("kind", "call")),
    )


def health_from_records(
    platform: Platform, records: Sequence[RequestView], now: datetime, status: PollStatus | None, poller: str
) -> PlatformHealth:
    """Health derived from another process's health log (the rules of the live recorder)."""
    horizon = now - HEALTH_WINDOW
    calls = [r for r in records if r.kind == "call" and r.at >= horizon]
    state, reason = PlatformState.OK, ""
    failures = [r for r in records if not r.ok and r.kind != "warning" and r.message]
    if calls:
        tail = calls[-DOWN_AFTER_FAILURES:]
        unreachable = [r for r in tail if not r.ok and (r.status is None or r.status >= 500)]
        rate = sum(1 for r in calls if r.ok) / len(calls)
        if len(tail) == DOWN_AFTER_FAILURES and len(unreachable) == DOWN_AFTER_FAILURES:
            state, reason = PlatformState.DOWN, f"{platform.label} is not answering: {tail[-1].message}"
        elif not calls[-1].ok and calls[-1].status == 401:
            state, reason = PlatformState.REAUTH, calls[-1].message
        elif not calls[-1].ok:
            state, reason = PlatformState.DEGRADED, calls[-1].message
        elif rate < DEGRADED_BELOW:
            state, reason = PlatformState.DEGRADED, f"Only {rate:.0%} of recent calls succeeded."
    return PlatformHealth(
        platform=platform,
        state=state,
        reason=reason,
        last_poll_at=status.last_poll_at if status else None,
        next_poll_at=status.next_poll_at if status else None,
        last_error=failures[-1].message if failures else "",
        success_rate=(sum(1 for r in calls if r.ok) / len(calls)) if calls else None,
        latencies_ms=[r.latency_ms for r in calls[-60:]],
        calls_in_window=len(calls),
        poller=poller,
    )


class ConsoleService:
    """See the module docstring.  Build it on a started runtime; call :meth:`close` at the end."""

    def __init__(self, runtime: Runtime, *, read_only: bool = False, clock: Clock | None = None) -> None:
        self.runtime = runtime
        self.store = runtime.store
        self.engine = runtime.engine
        self.production = runtime.production
        self.clock: Clock = clock or runtime.clock
        self.read_only = read_only or runtime.read_only
        self.index = OrderIndex()
        self._listeners: list[Listener] = []
        self._listeners_lock = threading.Lock()
        self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tf-console-write")
        self._pending_writes = 0
        self._pending_lock = threading.Lock()
        self._generation = 0
        self._credential_results: dict[Platform, CredentialResult] = {}
        self._polling: set[Platform] = set()
        self._tokens: dict[str, tuple[tuple[str, int, int, int], ...]] = self._area_tokens()
        self._detach: list[Callable[[], None]] = []
        self._closed = False
        self._was_poller = False
        self.engine_running = False  # set while run_engine runs (tests and snapshots run without it)
        self._holder_lock = threading.Lock()
        self._holder_cache: tuple[float, LeaseInfo | None] | None = None
        self._attach()

    # ------------------------------------------------------------------ events

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        with self._listeners_lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._listeners_lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def emit(self, event: ConsoleEvent) -> None:
        with self._listeners_lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # the UI must never break syncing
                log.exception("console listener failed")

    def _attach(self) -> None:
        listeners = self.engine.listeners
        hooks: list[tuple[list[Any], Callable[..., None]]] = [
            (listeners.poll_started, self._on_poll_started),
            (listeners.poll_finished, self._on_poll_finished),
            (listeners.orders_changed, self._on_orders_changed),
            (listeners.outbox_changed, self._on_outbox_changed),
            (listeners.progress, self._on_progress),
        ]
        for registry, hook in hooks:
            registry.append(hook)
            self._detach.append(functools.partial(_remove, registry, hook))
        for platform in self.runtime.marketplaces:
            recorder = self.runtime.health(platform)
            if recorder is not None:
                self._detach.append(recorder.add_listener(self._health_listener(platform)))

    def _health_listener(self, platform: Platform) -> Callable[[PlatformHealth], None]:
        def listener(_snapshot: PlatformHealth) -> None:
            self._on_health(platform)

        return listener

    def _on_poll_started(self, platform: Platform) -> None:
        self._polling.add(platform)
        self._check_poller()
        self.emit(ConsoleEvent(EventKind.POLL_STARTED, platform=platform))

    def _on_poll_finished(self, result: PollResult) -> None:
        self._polling.discard(result.platform)
        recorder = self.runtime.health(result.platform)
        if recorder is not None:
            recorder.set_poll_times(result.finished_at, self.engine.next_poll_at(result.platform))
            recorder.set_poller("this console" if self.engine.is_poller else "")
        text = result.summary
        self.emit(ConsoleEvent(EventKind.POLL_FINISHED, platform=result.platform, text=text, ok=result.ok))

    def _on_orders_changed(self, orders: list[Order]) -> None:
        keys = tuple(o.key for o in orders)
        self.emit(ConsoleEvent(EventKind.ORDERS, keys=keys))
        self.emit(ConsoleEvent(EventKind.JOBS))

    def _on_outbox_changed(self, item: OutboxItem) -> None:
        keys = (f"{item.platform.value}:{item.order_id}",) if item.order_id else ()
        self.emit(ConsoleEvent(EventKind.OUTBOX, keys=keys, platform=item.platform))

    def _on_progress(self, platform: Platform, page: int, total: int | None) -> None:
        self.emit(ConsoleEvent(EventKind.PROGRESS, platform=platform, page=page, total=total))

    def _on_health(self, platform: Platform) -> None:
        self.emit(ConsoleEvent(EventKind.HEALTH, platform=platform))

    # ------------------------------------------------------------------ lifecycle

    def _check_poller(self) -> None:
        polling = self.engine.is_poller
        if polling == self._was_poller:
            return
        self._was_poller = polling
        for platform in self.runtime.marketplaces:
            recorder = self.runtime.health(platform)
            if recorder is not None:
                recorder.set_poller("this console" if polling else "")
        self.emit(ConsoleEvent(EventKind.POLLER))

    async def run_engine(self, stop: asyncio.Event) -> None:
        """Poll and deliver while this console holds the lease; attach otherwise (read-only never polls)."""
        self.engine_running = True
        try:
            await self.engine.run(stop, days=BACKFILL_DAYS, take_lease=not self.read_only)
        finally:
            self.engine_running = False
            self._check_poller()

    def close(self) -> None:
        """Stop listening and finish queued queue writes (they are local and quick)."""
        if self._closed:
            return
        self._closed = True
        for detach in self._detach:
            with contextlib.suppress(Exception):
                detach()
        self._writes.shutdown(wait=True)

    # ------------------------------------------------------------------ who polls

    def holder(self) -> LeaseInfo | None:
        """Who holds the poller lease (blocking; cached for a second).

        Probes are serialised: the lease is probed by trying to take it, so two probes
        at the same moment would each see the other and report an unknown holder.
        """
        with self._holder_lock:
            now = time.monotonic()
            if self._holder_cache is not None and now - self._holder_cache[0] < HOLDER_CACHE_SECONDS:
                return self._holder_cache[1]
            found = None if self.engine.is_poller else self.engine.holder()
            self._holder_cache = (now, found)
            return found

    def poller_info(self) -> PollerInfo:
        """Blocking (probes the lease file)."""
        if self.engine.is_poller:
            return PollerInfo(True, "this console polls", self.read_only)
        holder = self.holder()
        if holder is not None:
            return PollerInfo(False, f"{holder.describe()} polls", self.read_only)
        if self.read_only:
            return PollerInfo(False, "nobody polls (read-only: r polls once)", True)
        if not self.runtime.marketplaces:
            return PollerInfo(False, "nothing to poll: no marketplace is configured", False)
        if not self.engine_running:
            return PollerInfo(False, "not polling (view only)", False)
        return PollerInfo(False, "taking over polling…", False)

    def platforms(self) -> list[Platform]:
        known = set(self.runtime.marketplaces) | set(self.runtime.disabled)
        ordered = [p for p in MARKETPLACES if p in known]
        return ordered + sorted((p for p in known if p not in MARKETPLACES), key=lambda p: p.value)

    def can_ship_on(self, platform: Platform) -> bool:
        return platform in self.runtime.marketplaces

    # ------------------------------------------------------------------ health

    def _poll_statuses(self) -> dict[Platform, PollStatus]:
        try:
            return self.engine.poll_statuses()
        except Exception:
            log.exception("could not read poll statuses")
            return {}

    def _log_records(self) -> dict[Platform, list[RequestView]]:
        found: dict[Platform, list[RequestView]] = {}
        try:
            raw = self.store.log(HEALTH_LOG).tail(LOG_TAIL)
        except Exception:
            log.exception("could not read the health log")
            return found
        for entry in raw:
            try:
                platform = Platform(str(entry.get("platform")))
            except ValueError:
                continue
            view = _record_view(entry)
            if view is not None:
                found.setdefault(platform, []).append(view)
        return found

    def _live(self, platform: Platform) -> bool:
        recorder = self.runtime.health(platform)
        return recorder is not None and (self.engine.is_poller or bool(recorder.records(1)))

    def health_rows(self) -> list[HealthRow]:
        """Blocking (reads poll statuses and, when another process polls, its health log)."""
        now = self.clock.now()
        statuses = self._poll_statuses()
        rows: list[HealthRow] = []
        logged: dict[Platform, list[RequestView]] | None = None
        holder_text = ""
        if not self.engine.is_poller:
            holder = self.holder()
            holder_text = holder.describe() if holder is not None else ""
        for platform in self.platforms():
            reason = self.runtime.disabled.get(platform)
            if reason is not None:
                health = PlatformHealth(platform=platform, state=PlatformState.DISABLED, reason=reason)
                rows.append(HealthRow(health, source="config"))
                continue
            recorder = self.runtime.health(platform)
            status = statuses.get(platform)
            if recorder is not None and self._live(platform):
                snapshot = recorder.snapshot()
                update: dict[str, Any] = {}
                if snapshot.last_poll_at is None and status is not None:
                    update["last_poll_at"] = status.last_poll_at
                next_at = self.engine.next_poll_at(platform) if self.engine.is_poller else None
                if next_at is None and status is not None:
                    next_at = status.next_poll_at
                update["next_poll_at"] = next_at
                update["poller"] = "this console" if self.engine.is_poller else holder_text
                rows.append(HealthRow(snapshot.model_copy(update=update), platform in self._polling, "live"))
                continue
            if logged is None:
                logged = self._log_records()
            health = health_from_records(platform, logged.get(platform, []), now, status, holder_text)
            if recorder is not None:
                expiry = recorder.snapshot().token_expires_at
                health = health.model_copy(update={"token_expires_at": expiry})
            rows.append(HealthRow(health, platform in self._polling, "log"))
        return rows

    def health_detail(self, platform: Platform) -> HealthDetail:
        """Blocking: the troubleshooting view of one platform."""
        now = self.clock.now()
        rows = {row.platform: row for row in self.health_rows()}
        row = rows.get(platform) or HealthRow(PlatformHealth(platform=platform, state=PlatformState.DISABLED))
        recorder = self.runtime.health(platform)
        if recorder is not None and self._live(platform):
            requests = [
                RequestView(
                    at=r.at,
                    operation=r.operation,
                    method=r.method,
                    status=r.status,
                    latency_ms=r.latency_ms,
                    ok=r.ok,
                    attempt=r.attempt,
                    error_code=r.error_code,
                    message=r.message,
                    request_id=r.request_id,
                    rate_headers=tuple(sorted(r.rate_headers.items())),
                    kind=r.kind,
                )
                for r in recorder.records()
            ]
        else:
            requests = self._log_records().get(platform, [])
        errors: dict[tuple[str, str], ErrorView] = {}
        counts: Counter[tuple[str, str]] = Counter()
        for r in requests:
            if r.ok:
                continue
            key = (r.error_code or (str(r.status) if r.status else "no answer"), r.message)
            counts[key] += 1
            errors[key] = ErrorView(key[0], r.message, counts[key], r.at)
        span = timedelta(minutes=SUCCESS_BUCKET_MINUTES)
        start = now - span * SUCCESS_BUCKETS
        tallies: list[list[int]] = [[0, 0] for _ in range(SUCCESS_BUCKETS)]  # [ok, calls]
        for r in requests:
            if r.kind != "call" or r.at < start or r.at > now:
                continue
            slot = min(SUCCESS_BUCKETS - 1, int((r.at - start) / span))
            tallies[slot][0] += int(r.ok)
            tallies[slot][1] += 1
        buckets = [ok / calls if calls else None for ok, calls in tallies]
        outbox = [v for v in self.outbox_items() if v.platform is platform]
        outbox.sort(key=lambda v: (not v.active, v.next_attempt_at))
        status = self._poll_statuses().get(platform)
        check = self._credential_results.get(platform)
        return HealthDetail(
            row=row,
            requests=tuple(reversed(requests[-60:])),
            errors=tuple(sorted(errors.values(), key=lambda e: e.last_at, reverse=True)),
            success_over_time=tuple(buckets),
            bucket_minutes=SUCCESS_BUCKET_MINUTES,
            token_state=token_sentence(row.health, now),
            credential_check=(f"{check.sentence} (checked {check.at:%H:%M:%S} UTC)" if check else ""),
            outbox=tuple(outbox[:40]),
            poll_summary=status.summary if status is not None else "",
            disabled_reason=self.runtime.disabled.get(platform, ""),
        )

    async def test_connection(self, platform: Platform) -> CredentialResult:
        """One cheap authenticated call (a read: allowed in read-only mode)."""
        market = self.runtime.marketplaces.get(platform)
        if market is None:
            reason = self.runtime.disabled.get(platform, "it is not configured")
            raise UserError(f"{platform.label} is disabled: {reason}")
        try:
            check = await market.check_credentials()
            result = CredentialResult(check.ok, check.sentence, self.clock.now(), dict(check.details))
        except MarketplaceError as exc:
            result = CredentialResult(False, exc.sentence, self.clock.now())
        self._credential_results[platform] = result
        alerts = self.runtime.alerts
        if alerts is not None:  # an on-demand check feeds the credential alert like the daily one
            from tf_console.alerts.state import CheckResult

            checked = {platform: CheckResult(at=result.at, ok=result.ok, sentence=result.sentence)}
            await anyio.to_thread.run_sync(alerts.record_checks, checked)
        self.emit(ConsoleEvent(EventKind.HEALTH, platform=platform))
        return result

    # ------------------------------------------------------------------ polling

    async def poll_now(self) -> str:
        """Ask for a poll of every platform now; returns a sentence saying what will happen."""
        if not self.runtime.marketplaces:
            raise UserError("No marketplace is configured; run `tf-console doctor` to see what to set.")
        if self.engine.is_poller:
            self.engine.request_poll_now()
            return "Polling every platform now."
        holder = await asyncio.to_thread(self.holder)
        if holder is not None:
            await asyncio.to_thread(lambda: self.engine.ask_holder_to_poll(days=BACKFILL_DAYS))
            return f"Asked the {holder.describe()} to poll now."
        if self.read_only:
            results = await self.engine.poll_all(days=BACKFILL_DAYS)
            failed = [r.platform.label for r in results if not r.ok]
            return (
                "Polled once (read-only)." if not failed else f"Polled once; failed for {', '.join(failed)}."
            )
        return "Nobody was polling; this console takes over and polls within a second."

    # ------------------------------------------------------------------ the order index

    def build_index(self) -> int:
        """Blocking: summarise every order (hot shards first, then archives) into the index."""
        return self.index_hot() + self.index_archive()

    def index_hot(self) -> int:
        """Blocking: the open and recent orders (the hot shards), what the first screen shows."""
        added = self._scan(include_archive=False)
        self.emit(ConsoleEvent(EventKind.INDEX, count=len(self.index)))
        return added

    def index_archive(self) -> int:
        """Blocking and long with a big history: every other order, archives included."""
        added = self._scan(include_archive=True)
        self.index.mark_complete()
        self.emit(ConsoleEvent(EventKind.INDEX, count=len(self.index), done=True))
        return added

    def _scan(self, *, include_archive: bool) -> int:
        added = 0
        batch: list[OrderSummary] = []
        for order in self.store.orders.iter_all(include_archive=include_archive, include_pii=False):
            batch.append(summarize(order))
            if len(batch) >= SCAN_BATCH:
                added += self.index.add_scanned(batch)
                batch = []
                if added and include_archive:
                    self.emit(ConsoleEvent(EventKind.INDEX, count=len(self.index)))
        return added + self.index.add_scanned(batch)

    def rescan(self, *, include_archive: bool = False) -> list[str]:
        """Blocking: re-read the stored orders (hot shards, or everything) into the index;
        returns the keys whose summary changed."""
        changed: list[str] = []
        batch: list[OrderSummary] = []
        for order in self.store.orders.iter_all(include_archive=include_archive, include_pii=False):
            batch.append(summarize(order))
            if len(batch) >= SCAN_BATCH:
                changed += self.index.put(batch)
                batch = []
        return changed + self.index.put(batch)

    def refresh_orders(self, keys: Iterable[str]) -> list[str]:
        """Blocking: re-read these orders from the store; returns the keys whose summary changed."""
        summaries: list[OrderSummary] = []
        for key in dict.fromkeys(keys):
            platform, _, order_id = key.partition(":")
            try:
                order = self.store.orders.get(platform, order_id)
            except ValueError:
                continue
            if order is not None:
                summaries.append(summarize(order))
        return self.index.put(summaries)

    def listing(self, query: OrderQuery) -> OrderListing:
        """Blocking-ish (sorts and filters up to every order in memory): run it in a thread."""
        return self.index.listing(query, self.clock.now())

    def summaries(self, keys: Iterable[str]) -> list[OrderSummary]:
        return self.index.many(keys)

    # ------------------------------------------------------------------ changes on disk

    def _area_tokens(self) -> dict[str, tuple[tuple[str, int, int, int], ...]]:
        areas: dict[str, list[tuple[str, int, int, int]]] = {}
        for entry in self.store.change_token():
            path = Path(entry[0])
            if path.parent.name == "orders":
                area = AREA_ARCHIVE if path.name.startswith("archive-") else AREA_ORDERS
            elif path.parent.name == "collections":
                found = _COLLECTION_AREAS.get(path.name)
                if found is None:
                    continue
                area = found
            else:
                continue
            areas.setdefault(area, []).append(entry)
        return {area: tuple(entries) for area, entries in areas.items()}

    def changed_areas(self) -> set[str]:
        """Blocking but cheap (a stat of each state file): which parts changed on disk since the
        last call — our own writes, the engine's, or another process's (a daemon, the CLI)."""
        current = self._area_tokens()
        changed = {
            area for area in set(current) | set(self._tokens) if current.get(area) != self._tokens.get(area)
        }
        self._tokens = current
        return changed

    # ------------------------------------------------------------------ order detail

    def order_detail(self, key: str, *, reveal: bool = False) -> OrderDetail | None:
        """Blocking: one order with its lines, buyer (masked unless ``reveal``), shipments,
        outbox history and jobs."""
        platform, _, order_id = key.partition(":")
        order = self.store.orders.get(platform, order_id)
        if order is None:
            return None
        items = tuple(
            ItemView(
                line_id=i.line_id,
                sku=i.sku,
                title=i.title,
                variation=i.variation,
                quantity=i.quantity,
                quantity_shipped=i.quantity_shipped,
                unit_price=str(i.unit_price) if i.unit_price is not None else "",
                kind=i.kind,
                kind_rule=i.kind_rule,
                personalisation=i.personalisation if reveal else mask_text(i.personalisation),
            )
            for i in order.items
        )
        shipments = tuple(
            ShipmentView(
                shipment_id=s.shipment_id,
                carrier=s.carrier,
                carrier_name=s.carrier_name,
                tracking=s.tracking,
                state=s.state,
                requested_at=s.requested_at,
                updated_at=s.updated_at,
                answer=s.marketplace_answer,
                lines=tuple((ln.line_id, ln.quantity) for ln in s.lines),
                source=s.source,
            )
            for s in sorted(order.shipments, key=lambda s: s.requested_at)
        )
        outbox = tuple(
            v for v in self.outbox_items() if v.platform is order.platform and v.order_id == order_id
        )
        jobs = tuple(
            job_info(j)
            for j in self.production.jobs(include_finished=True)
            if j.platform is order.platform and j.order_id == order_id
        )
        return OrderDetail(
            key=order.key,
            platform=order.platform,
            order_id=order.order_id,
            status=order.status,
            raw_status=order.raw_status,
            created_at=order.created_at,
            updated_at=order.updated_at,
            ship_by=order.ship_by,
            total=(
                f"{order.total}{' (your proceeds)' if order.total_is_proceeds else ''}"
                if order.total is not None
                else ""
            ),
            fulfilled_by="Amazon (FBA)" if order.fulfilled_by is FulfilledBy.MARKETPLACE else "you",
            cancel_requested=order.cancel_requested,
            refunded=order.refunded,
            shippable=order.shippable,
            items=items,
            buyer_lines=address_lines(order.buyer, reveal=reveal),
            revealed=reveal,
            pii_redacted=order.pii_redacted,
            shipments=shipments,
            marketplace_tracking=tuple(order.marketplace_tracking),
            outbox=outbox,
            jobs=jobs,
        )

    def outbox_items(self) -> list[OutboxView]:
        """Blocking."""
        return [outbox_view(item) for item in self.engine.sender.items.all()]

    # ------------------------------------------------------------------ shipping

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise UserError(
                f"The console runs read-only, so it cannot {what}; restart it without --read-only "
                "or use `tf-console ship`."
            )

    def ship_form(self, key: str) -> ShipForm:
        """Blocking: what the ship dialog offers for this order. Raises UserError when it cannot ship."""
        self._refuse_if_read_only("mark orders shipped")
        platform_value, _, order_id = key.partition(":")
        platform = Platform(platform_value)
        order = self.store.orders.get(platform, order_id)
        where = f"{platform.label} order {order_id}"
        if order is None:
            raise UserError(f"{where} is not in the store any more; press r to poll.")
        if not self.can_ship_on(platform):
            reason = self.runtime.disabled.get(platform, "it is not configured")
            raise UserError(f"Cannot ship on {platform.label}: {reason}")
        if order.fulfilled_by is FulfilledBy.MARKETPLACE:
            raise UserError(
                f"{where} is fulfilled by Amazon (FBA): Amazon ships it, so there is nothing to confirm."
            )
        if order.status is OrderStatus.CANCELLED:
            raise UserError(f"{where} is cancelled; it must not be shipped.")
        if order.cancel_requested:
            raise UserError(
                f"The buyer asked to cancel {where}; resolve the request on the marketplace first."
            )
        if order.status is OrderStatus.PENDING:
            raise UserError(f"{where} is not paid yet ({order.raw_status or 'pending'}); wait until it is.")
        in_flight = [
            s for s in order.shipments if s.state in (ShipmentState.REQUESTED, ShipmentState.UNKNOWN)
        ]
        if in_flight:
            raise UserError(
                f"{where} already has a shipment being confirmed (tracking {in_flight[0].tracking}); "
                "wait for its answer."
            )
        lines = tuple(
            ShipLine(i.line_id, i.sku, i.title, i.quantity_unshipped)
            for i in order.items
            if i.quantity_unshipped > 0
        )
        if not lines or order.status is OrderStatus.SHIPPED:
            raise UserError(f"{where} has nothing left to ship.")
        carriers = tuple(
            CarrierChoice(c.code, c.label, c.family.value, c.code.lower() == "other")
            for c in carriers_for(platform)
        )
        return ShipForm(platform=platform, order_id=order_id, carriers=carriers, lines=lines)

    @staticmethod
    def check_tracking(platform: Platform, carrier: str, carrier_name: str, tracking: str) -> TrackingVerdict:
        """The tracking number against its carrier's known format (a mismatch can be overridden)."""
        found = find_carrier(platform, carrier)
        if found is not None and found.code.lower() != "other":
            family = found.family
        else:
            by_family = {f.value: f for f in CarrierFamily}
            family = by_family.get(carrier_name.strip().lower(), CarrierFamily.OTHER)
        check = check_tracking(family, tracking)
        sentence = check.sentence.replace("use --force if it is right", "confirm to send it anyway")
        return TrackingVerdict(check.ok, check.hard, sentence)

    def ship(self, request: ShipRequest) -> ShipReceipt:
        """Blocking: validate and write the shipment intent to the outbox (exactly one item).

        The poller (this console or a daemon) sends it; the order then shows requested →
        confirmed or rejected.  Raises UserError with a sentence; nothing is written then.
        """
        self._refuse_if_read_only("mark orders shipped")
        if not self.can_ship_on(request.platform):
            reason = self.runtime.disabled.get(request.platform, "it is not configured")
            raise UserError(f"Cannot ship on {request.platform.label}: {reason}")
        key = f"{request.platform.value}:{request.order_id}"
        try:
            item = enqueue_shipment(self.store, request, self.clock)
        except AlreadyShipped as exc:
            return ShipReceipt(item_id="", sentence=str(exc), already=True)
        self.refresh_orders([key])
        self.emit(ConsoleEvent(EventKind.ORDERS, keys=(key,)))
        self.emit(ConsoleEvent(EventKind.OUTBOX, keys=(key,), platform=request.platform))
        if self.engine.is_poller:
            who = "this console sends it now"
        else:
            holder = self.holder()
            who = (
                f"the {holder.describe()} sends it"
                if holder is not None
                else "it is sent as soon as this console or `tf-console daemon` polls"
            )
        return ShipReceipt(
            item_id=item.item_id,
            sentence=(
                f"Shipment for {request.platform.label} order {request.order_id} recorded "
                f"({item.shipment.carrier} {item.shipment.tracking}); {who}."
            ),
        )

    # ------------------------------------------------------------------ the print queue

    def _next_generation(self) -> int:
        with self._pending_lock:
            self._generation += 1
            return self._generation

    @property
    def generation(self) -> int:
        with self._pending_lock:
            return self._generation

    @property
    def writes_pending(self) -> int:
        with self._pending_lock:
            return self._pending_writes

    def load_queue(self) -> QueueView:
        """Blocking: the active jobs in queue order (no projected times: see :meth:`project`)."""
        generation = self.generation
        snapshot = self.production.snapshot()
        sequence = tuple(queue_order(snapshot))
        jobs = {j.job_id: job_info(j) for j in snapshot.jobs}
        return QueueView(sequence=sequence, jobs=jobs, generation=generation)

    def project(self) -> Projection:
        """Blocking and slow with thousands of jobs: the schedule's projected times."""
        generation = self.generation
        started = time.perf_counter()
        schedule = compute_schedule(self.production.snapshot())
        jobs = {
            job_id: JobProjection(
                printers=js.printer,
                start=js.start,
                end=js.end,
                slack_minutes=js.slack_minutes,
                late=js.late,
                late_risk=js.late_risk,
                expected_minutes=js.expected_minutes,
                problem=js.problem,
            )
            for job_id, js in schedule.jobs.items()
        }
        return Projection(
            generation=generation,
            sequence=tuple(schedule.sequence),
            jobs=jobs,
            late_orders=frozenset(o.order_key for o in schedule.orders.values() if o.late),
            at_risk_orders=frozenset(
                o.order_key for o in schedule.orders.values() if o.late_risk and not o.late
            ),
            warnings=tuple(schedule.warnings),
            computed_ms=(time.perf_counter() - started) * 1000,
        )

    @staticmethod
    def preview_move(
        sequence: Sequence[str], pinned: Iterable[str], job_id: str, where: Move
    ) -> tuple[list[str], dict[str, int]]:
        """The queue order (and the pins that keep it) right after a move, computed without
        touching the store: the console shows it at once."""
        return plan_move(sequence, set(pinned), job_id, where)

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        """Run a queue write on the FIFO write thread; the future carries its result or UserError."""
        self._next_generation()
        with self._pending_lock:
            self._pending_writes += 1

        def run() -> T:
            try:
                return fn()
            finally:
                with self._pending_lock:
                    self._pending_writes -= 1

        return self._writes.submit(run)

    def move(self, job_id: str, where: Move) -> Future[list[str]]:
        return self.submit(lambda: self.production.move(job_id, where))

    def apply_moves(self, moves: Sequence[tuple[str, Move]]) -> Future[list[str]]:
        """Several moves in the order pressed, as one write job; returns the final queue order."""
        steps = list(moves)

        def run() -> list[str]:
            order: list[str] = []
            for job_id, where in steps:
                order = self.production.move(job_id, where)
            return order

        return self.submit(run)

    def unpin(self, job_id: str) -> Future[list[str]]:
        return self.submit(lambda: self.production.unpin(job_id))

    def set_priority(self, job_id: str, priority: Priority) -> Future[str]:
        def run() -> str:
            job = self.production.set_priority(job_id, priority)
            return f"Job {job.job_id} is now {priority.value} priority."

        return self.submit(run)

    def toggle_hold(self, job_id: str) -> Future[str]:
        def run() -> str:
            job = self.production.job(job_id)
            if job.state is JobState.HELD:
                released = self.production.release(job_id)
                return f"Job {released.job_id} released back into the queue."
            held = self.production.hold(job_id)
            return f"Job {held.job_id} held; press h again to release it."

        return self.submit(run)

    def profiles(self) -> list[ProfileChoice]:
        return [ProfileChoice(p.name, p.describe()) for p in self.production.catalog().profiles.values()]

    def classify(
        self, sku: str, kind: ItemKind, *, profile: str = "", platform: Platform | None = None
    ) -> Future[str]:
        """Write a catalog rule for ``sku`` and re-classify the open orders (local files only)."""

        def run() -> str:
            done = self.production.assign(
                sku, kind, profile=profile, platform=platform, orders=self.store.orders
            )
            where = f" on {platform.label}" if platform is not None else ""
            verb = {"added": "added", "updated": "updated", "unchanged": "kept"}[done.rule.action]
            made = f" with profile {profile}" if profile else ""
            return (
                f"Rule {done.rule.rule_index} {verb}: {sku}{where} is {kind.value}{made}; "
                f"{done.reclassified_orders} open order(s) re-classified, {done.change.summary()}."
            )

        return self.submit(run)


def token_sentence(health: PlatformHealth, now: datetime) -> str:
    if health.state is PlatformState.DISABLED:
        return health.reason or "Disabled."
    if health.state is PlatformState.REAUTH:
        return health.reason or "The credentials were refused; set new ones with `tf-console creds set`."
    expires = health.token_expires_at
    if expires is None:
        return (
            "No access token in use yet (one is fetched on the first call), "
            "or the platform uses a long-lived token."
        )
    left = expires - now
    if left.total_seconds() <= 0:
        return f"The access token expired at {expires:%H:%M} UTC; it is renewed on the next call."
    minutes = int(left.total_seconds() // 60)
    return f"Access token valid for {minutes} more minute(s); it is renewed automatically."


def _remove(registry: list[Any], hook: Callable[..., None]) -> None:
    if hook in registry:
        registry.remove(hook)
