"""The sync engine: pollers per platform, the outbox sender, and requests from other processes.

One engine runs in the daemon, in a console, or in a one-shot CLI command.  Only
the process holding the lease polls and sends; any other process *attaches*: it
reads the store, and asks the holder to act through control requests (a small
collection in the store) — "poll now", and deliveries it waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, Field

from tf_console.clock import Clock
from tf_console.marketplaces.base import Marketplace
from tf_console.models import Order, Platform, UtcDatetime
from tf_console.store import Store
from tf_console.sync.lease import Lease, LeaseInfo, current_holder
from tf_console.sync.outbox import OutboxItem, OutboxSender, RetryPolicy
from tf_console.sync.poller import Classifier, Poller, PollResult, Progress

log = logging.getLogger(__name__)


class ControlState(enum.StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class ControlRequest(BaseModel):
    request_id: str
    kind: str  # "poll"
    platforms: list[Platform] = Field(default_factory=list)  # empty = all
    days: int = 7
    requested_at: UtcDatetime
    state: ControlState = ControlState.PENDING
    finished_at: UtcDatetime | None = None
    results: list[dict[str, Any]] = Field(default_factory=list)


class PollStatus(BaseModel):
    """What an attached console shows about a platform's polling."""

    platform: Platform
    last_poll_at: UtcDatetime | None = None
    next_poll_at: UtcDatetime | None = None
    ok: bool = True
    summary: str = ""
    poller: str = ""


@dataclass(slots=True)
class EngineListeners:
    poll_started: list[Callable[[Platform], None]] = field(default_factory=list)
    poll_finished: list[Callable[[PollResult], None]] = field(default_factory=list)
    orders_changed: list[Callable[[list[Order]], None]] = field(default_factory=list)
    outbox_changed: list[Callable[[OutboxItem], None]] = field(default_factory=list)
    progress: list[Progress] = field(default_factory=list)


def _emit(callbacks: list[Any], *args: Any) -> None:
    for cb in list(callbacks):
        try:
            cb(*args)
        except Exception:  # a listener (the UI) must never break syncing
            log.exception("sync listener failed")


class SyncEngine:
    def __init__(
        self,
        store: Store,
        marketplaces: Mapping[Platform, Marketplace],
        clock: Clock,
        *,
        poll_intervals: Mapping[Platform, float] | None = None,
        default_interval: float = 300.0,
        classify: Classifier | None = None,
        on_orders_changed: Callable[[list[Order]], None] | None = None,
        process_orders: Callable[[list[Order]], None] | None = None,
        lease_kind: str = "console",
        retry_policy: RetryPolicy | None = None,
        tick: float = 1.0,
        after_poll: Callable[[Platform], None] | None = None,
    ) -> None:
        self.store = store
        self.marketplaces = dict(marketplaces)
        self.clock = clock
        self.listeners = EngineListeners()
        if on_orders_changed is not None:
            self.listeners.orders_changed.append(on_orders_changed)
        self.lease = Lease(store.data_dir, clock, kind=lease_kind)
        self.tick = tick
        self.after_poll = after_poll
        self._intervals = {
            p: max(float((poll_intervals or {}).get(p, default_interval)), m.min_poll_interval)
            for p, m in self.marketplaces.items()
        }
        self.pollers = {
            p: Poller(
                m,
                store,
                clock,
                classify=classify,
                on_changed=self._orders_changed,
                process_changed=process_orders,
            )
            for p, m in self.marketplaces.items()
        }
        self.sender = OutboxSender(store, self.marketplaces, clock, policy=retry_policy)
        self.sender.listeners.append(lambda item: _emit(self.listeners.outbox_changed, item))
        self._next_poll: dict[Platform, datetime] = {}
        self._polling: set[Platform] = set()
        self._poll_now = asyncio.Event()
        self._controls = store.collection("control", ControlRequest, key=lambda r: r.request_id)
        # Work other features run on the poller's schedule (inventory pushes, credential checks…):
        # (name, interval in seconds, async function). Run only by the lease holder.
        self.periodic: list[tuple[str, float, Callable[[], Awaitable[None]]]] = []
        self._periodic_last: dict[str, float] = {}
        self._status = store.collection("poll_status", PollStatus, key=lambda s: s.platform.value)

    # ------------------------------------------------------------------ queries

    def holder(self) -> LeaseInfo | None:
        return current_holder(self.store.data_dir)

    @property
    def is_poller(self) -> bool:
        return self.lease.held

    def poll_statuses(self) -> dict[Platform, PollStatus]:
        return {s.platform: s for s in self._status.all()}

    def interval(self, platform: Platform) -> float:
        return self._intervals[platform]

    # ------------------------------------------------------------------ polling

    def _orders_changed(self, orders: list[Order]) -> None:
        _emit(self.listeners.orders_changed, orders)

    async def poll(self, platform: Platform, *, days: int = 7, recheck: bool = True) -> PollResult:
        """One poll of one platform; records its status. Never raises for marketplace errors."""
        self._polling.add(platform)
        _emit(self.listeners.poll_started, platform)
        try:
            result = await self.pollers[platform].poll(
                days=days, progress=lambda p, n, t: _emit(self.listeners.progress, p, n, t), recheck=recheck
            )
        finally:
            self._polling.discard(platform)
        now = self.clock.now()
        next_at = now + timedelta(seconds=self._intervals[platform])
        self._next_poll[platform] = next_at
        status = PollStatus(
            platform=platform,
            last_poll_at=now,
            next_poll_at=next_at if self.lease.held else None,
            ok=result.ok,
            summary=result.summary,
            poller=self.lease.kind if self.lease.held else "",
        )
        await anyio.to_thread.run_sync(self._status.put, status)
        if self.after_poll is not None:
            try:
                self.after_poll(platform)
            except Exception:
                log.exception("after-poll hook failed")
        _emit(self.listeners.poll_finished, result)
        return result

    async def poll_all(self, *, days: int = 7, platforms: list[Platform] | None = None) -> list[PollResult]:
        """Poll platforms concurrently; one failing never cancels or loses the others."""
        chosen = [p for p in (platforms or list(self.marketplaces)) if p in self.marketplaces]
        results: dict[Platform, PollResult] = {}

        async def one(p: Platform) -> None:
            try:
                results[p] = await self.poll(p, days=days)
            except Exception as exc:  # caught inside the task: siblings go on
                log.exception("poll of %s crashed", p.value)
                results[p] = PollResult(p, ok=False, error=f"unexpected {type(exc).__name__}; see the log.")

        async with anyio.create_task_group() as tg:
            for p in chosen:
                tg.start_soon(one, p)
        return [results[p] for p in chosen]

    def request_poll_now(self) -> None:
        for p in self.marketplaces:
            self._next_poll[p] = self.clock.now()
        self._poll_now.set()

    def next_poll_at(self, platform: Platform) -> datetime | None:
        return self._next_poll.get(platform)

    # ------------------------------------------------------------------ control requests

    def ask_holder_to_poll(self, *, days: int, platforms: list[Platform] | None = None) -> ControlRequest:
        req = ControlRequest(
            request_id=uuid.uuid4().hex,
            kind="poll",
            platforms=platforms or [],
            days=days,
            requested_at=self.clock.now(),
        )
        self._controls.put(req)
        return req

    def control_request(self, request_id: str) -> ControlRequest | None:
        return self._controls.get(request_id)

    async def _serve_controls(self) -> None:
        pending = [
            r for r in await anyio.to_thread.run_sync(self._controls.all) if r.state is ControlState.PENDING
        ]
        for req in pending:
            if req.kind == "poll":
                results = await self.poll_all(days=req.days, platforms=req.platforms or None)
                req.results = [
                    {"platform": r.platform.value, "ok": r.ok, "summary": r.summary} for r in results
                ]
                req.state = ControlState.DONE if all(r.ok for r in results) else ControlState.FAILED
            else:
                req.state = ControlState.FAILED
                req.results = [{"summary": f"unknown request {req.kind!r}"}]
            req.finished_at = self.clock.now()
            await anyio.to_thread.run_sync(self._controls.put, req)
        # Old answered requests are dropped so the collection stays small.
        cutoff = self.clock.now() - timedelta(hours=1)

        def prune(items: dict[str, ControlRequest]) -> None:
            for key in [k for k, r in items.items() if r.finished_at and r.finished_at < cutoff]:
                del items[key]

        await anyio.to_thread.run_sync(self._controls.mutate, prune)

    # ------------------------------------------------------------------ the loop

    async def take_lease(self) -> bool:
        """Become the poller if nobody is; resume the outbox first (reconcile anything in flight)."""
        if self.lease.held:
            return True
        if not self.lease.try_acquire():
            return False
        await self.sender.recover()
        return True

    async def run(self, stop: asyncio.Event, *, days: int = 7, take_lease: bool = True) -> None:
        """Poll and send while holding the lease; otherwise stay attached and retry the lease."""
        try:
            while not stop.is_set():
                if take_lease:
                    await self.take_lease()
                if self.lease.held:
                    now = self.clock.now()
                    for p in self.marketplaces:
                        self._next_poll.setdefault(p, now)
                    await self._one_round(days)
                await self._sleep_until_next(stop)
        finally:
            self.lease.release()

    async def _one_round(self, days: int) -> None:
        self.lease.heartbeat()
        now = self.clock.now()
        due = [p for p, at in self._next_poll.items() if at <= now and p not in self._polling]
        if due:
            await self.poll_all(days=days, platforms=due)
        await self._serve_controls()
        await self.sender.deliver_due(set(self.marketplaces))
        await self._run_periodic()

    async def _run_periodic(self) -> None:
        now = self.clock.monotonic()
        for name, interval, job in list(self.periodic):
            last = self._periodic_last.get(name)
            if last is not None and now - last < interval:
                continue
            self._periodic_last[name] = now
            try:
                await job()
            except Exception:  # one feature's trouble never stops polling or deliveries
                log.exception("periodic task %s failed", name)

    async def _sleep_until_next(self, stop: asyncio.Event) -> None:
        self._poll_now.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.tick):
                waiter = asyncio.ensure_future(stop.wait())
                poke = asyncio.ensure_future(self._poll_now.wait())
                try:
                    await asyncio.wait({waiter, poke}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
                    poke.cancel()

    async def aclose(self) -> None:
        self.lease.release()
        for market in self.marketplaces.values():
            with contextlib.suppress(Exception):
                await market.aclose()
