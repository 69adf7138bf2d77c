"""One poll of one platform: orders changed since the cursor, then due re-checks.

The cursor is the last-updated high-water mark of what was stored, written only
after the batch is durable, and every poll reaches back an overlap before it so
nothing that landed late is missed; upserts by (platform, order_id) make the
overlap harmless.  Orders still open are re-read now and then, because some
platforms do not surface a cancellation through their modified-since filter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio.to_thread

from tf_console.clock import Clock
from tf_console.marketplaces.base import Marketplace, MarketplaceError, OrderPage
from tf_console.models import Order, OrderStatus, Platform, ShipmentState
from tf_console.store import Store

log = logging.getLogger(__name__)

OVERLAP = timedelta(minutes=2)
RECHECK_BATCH = 50
STORE_BATCH = 1000  # orders held before a write during a backfill
STORE_EVERY = 2.0  # seconds: a slow backfill still shows its orders as it goes


@dataclass(slots=True)
class PollResult:
    platform: Platform
    ok: bool
    pages: int = 0
    fetched: int = 0
    inserted: int = 0
    updated: int = 0
    rechecked: int = 0
    errors: list[str] = field(default_factory=list)  # page-level problems (the poll still succeeded)
    error: str = ""  # the sentence when the poll failed
    note: str = ""  # e.g. "eBay keeps 90 days of orders: backfilled 90, not 365."
    changed_keys: list[str] = field(default_factory=list)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def summary(self) -> str:
        if not self.ok:
            return f"{self.platform.label}: failed — {self.error}"
        parts = [f"{self.fetched} order(s) read in {self.pages} page(s)"]
        parts.append(f"{self.inserted} new, {self.updated} updated")
        if self.rechecked:
            parts.append(f"{self.rechecked} open order(s) re-checked")
        text = f"{self.platform.label}: " + ", ".join(parts) + "."
        if self.note:
            text += f" {self.note}"
        if self.errors:
            text += f" {len(self.errors)} problem(s): " + "; ".join(self.errors[:3])
        return text


_STATUS_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.UNSHIPPED: 1,
    OrderStatus.PARTIALLY_SHIPPED: 2,
    OrderStatus.SHIPPED: 3,
}


def merge_remote(existing: Order | None, incoming: Order) -> Order | None:
    """The record to store when the marketplace sends ``incoming``; None = nothing changed.

    The marketplace is the truth for its own fields; we keep what only we know:
    our shipment records (and their confirmation state), redacted PII staying
    redacted, and a shipped state the marketplace has not caught up with yet.
    """
    if existing is None:
        return incoming
    merged = incoming.model_copy(deep=True)
    merged.shipments = [s.model_copy(deep=True) for s in existing.shipments]
    if existing.pii_redacted:
        merged.pii_redacted = True
        merged.buyer = None
        for item in merged.items:
            item.personalisation = ""
    confirmed: dict[str, int] = {}
    for s in existing.shipments:
        if s.state is ShipmentState.CONFIRMED:
            for ln in s.lines:
                confirmed[ln.line_id] = confirmed.get(ln.line_id, 0) + ln.quantity
    for item in merged.items:
        item.quantity_shipped = min(item.quantity, max(item.quantity_shipped, confirmed.get(item.line_id, 0)))
    if merged.status is not OrderStatus.CANCELLED and existing.status in _STATUS_RANK:
        local_rank = _STATUS_RANK[existing.status] if confirmed else -1
        if merged.status in _STATUS_RANK and local_rank > _STATUS_RANK[merged.status]:
            merged.status = existing.status  # the marketplace lags behind a confirmation it accepted
    for tracking in existing.marketplace_tracking:
        if tracking not in merged.marketplace_tracking:
            merged.marketplace_tracking.append(tracking)
    if merged.model_dump() == existing.model_dump():
        return None
    return merged


Classifier = Callable[[Order], Order]
ChangeListener = Callable[[list[Order]], None]
Progress = Callable[[Platform, int, int | None], None]


class Poller:
    """Polls one marketplace into the store."""

    def __init__(
        self,
        market: Marketplace,
        store: Store,
        clock: Clock,
        *,
        classify: Classifier | None = None,
        on_changed: ChangeListener | None = None,
        process_changed: ChangeListener | None = None,
        recheck_interval: timedelta = timedelta(hours=1),
    ) -> None:
        self.market = market
        self.platform = market.platform
        self.store = store
        self.clock = clock
        self.classify = classify
        self.on_changed = on_changed
        # Blocking work on changed orders (the print queue): run in a worker thread, before the
        # listeners hear of the change, so a console's event loop never waits on it.
        self.process_changed = process_changed
        self.recheck_interval = recheck_interval

    @property
    def cursor_key(self) -> str:
        return f"cursor:{self.platform.value}"

    @property
    def recheck_key(self) -> str:
        return f"recheck:{self.platform.value}"

    def cursor(self) -> datetime | None:
        raw = self.store.meta.get(self.cursor_key)
        return datetime.fromisoformat(raw) if raw else None

    async def _store_orders(self, orders: Sequence[Order], result: PollResult) -> None:
        if self.classify is not None:
            orders = [self.classify(o) for o in orders]
        upsert = await anyio.to_thread.run_sync(self.store.orders.upsert_many, orders, merge_remote)
        result.inserted += len(upsert.inserted)
        result.updated += len(upsert.updated)
        changed = set(upsert.inserted) | set(upsert.updated)
        result.changed_keys.extend(sorted(changed))
        if not changed:
            return
        touched = [o for o in orders if o.key in changed]
        if self.process_changed is not None:
            await anyio.to_thread.run_sync(self.process_changed, touched)
        if self.on_changed is not None:
            self.on_changed(touched)

    async def poll(
        self, *, days: int = 7, progress: Progress | None = None, recheck: bool = True
    ) -> PollResult:
        now = self.clock.now()
        result = PollResult(self.platform, ok=True, started_at=now)
        cursor = await anyio.to_thread.run_sync(self.cursor)
        if cursor is None:
            reach = days
            limit = self.market.max_backfill_days
            if limit is not None and days > limit:
                reach = limit
                result.note = (
                    f"{self.platform.label} keeps only {limit} days of orders: "
                    f"backfilled {limit}, not {days}."
                )
            since = now - timedelta(days=reach)
        else:
            since = cursor - OVERLAP
        high_water = cursor
        # Pages are stored in batches: every write rewrites whole files, so a long backfill
        # written page by page would cost many times what it costs in batches. Nothing is lost
        # by waiting: the cursor moves only once everything is durable.
        pending: list[Order] = []
        last_flush = self.clock.monotonic()
        try:
            async for page in self._pages(since):
                result.pages += 1
                result.fetched += len(page.orders)
                result.errors.extend(page.errors)
                if page.orders:
                    pending.extend(page.orders)
                    page_high = max(o.updated_at for o in page.orders)
                    high_water = page_high if high_water is None else max(high_water, page_high)
                if len(pending) >= STORE_BATCH or self.clock.monotonic() - last_flush >= STORE_EVERY:
                    await self._store_orders(pending, result)
                    pending = []
                    last_flush = self.clock.monotonic()
                if progress is not None:
                    progress(self.platform, page.page_number, page.total_pages)
            if pending:
                await self._store_orders(pending, result)
        except MarketplaceError as exc:
            result.ok = False
            result.error = exc.sentence
        except Exception as exc:  # a bug in a parser must not take the other platforms down
            log.exception("poll of %s failed", self.platform.value)
            result.ok = False
            result.error = f"unexpected {type(exc).__name__} while reading orders; see the log."
        if result.ok:
            # Only now is the whole batch durable: move the cursor.  With nothing new, keep it.
            if high_water is None:
                high_water = since if cursor is None else cursor
            await anyio.to_thread.run_sync(self.store.meta.set, self.cursor_key, high_water.isoformat())
            if recheck:
                await self._recheck_open(result)
        result.finished_at = self.clock.now()
        return result

    async def _pages(self, since: datetime) -> AsyncIterator[OrderPage]:
        """The marketplace's pages, fetched one ahead while the previous one is being stored.

        Fetching is bound by the marketplace's rate limit and storing by the disk; overlapping
        them keeps a long backfill near the rate-limit floor.
        """
        queue: asyncio.Queue[OrderPage | BaseException | None] = asyncio.Queue(maxsize=1)

        async def fetch() -> None:
            try:
                async for page in self.market.fetch_orders(since):
                    await queue.put(page)
            except Exception as exc:  # handed to the consumer, which raises it in order
                await queue.put(exc)
            else:
                await queue.put(None)

        fetcher = asyncio.create_task(fetch())
        try:
            while True:
                item = await queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not fetcher.done():
                fetcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await fetcher

    def _due_for_recheck(self) -> bool:
        last = self.store.meta.get(self.recheck_key)
        if not last:
            return True
        return self.clock.now() - datetime.fromisoformat(last) >= self.recheck_interval

    async def _recheck_open(self, result: PollResult) -> None:
        due = await anyio.to_thread.run_sync(self._due_for_recheck)
        if not due:
            return
        fresh = set(result.changed_keys)
        open_orders: list[Order] = await anyio.to_thread.run_sync(self.store.orders.open_orders)
        ids = [o.order_id for o in open_orders if o.platform is self.platform and o.key not in fresh]
        try:
            for start in range(0, len(ids), RECHECK_BATCH):
                batch = await self.market.fetch_orders_by_id(ids[start : start + RECHECK_BATCH])
                result.rechecked += len(batch)
                if batch:
                    await self._store_orders(batch, result)
        except MarketplaceError as exc:
            result.errors.append(f"re-check of open orders stopped: {exc.sentence}")
            return
        # Remembered across runs so back-to-back `sync --once` runs do not repeat it.
        await anyio.to_thread.run_sync(self.store.meta.set, self.recheck_key, self.clock.now().isoformat())
