"""Pushing quantities: what each marketplace should offer, through the outbox, coalesced.

The planner compares, per (marketplace, listing SKU), the quantity that should be
offered with what the marketplace is known to show (the last applied push, less
the sales made there since — a marketplace lowers its own count when it sells).
When they differ it writes an ``inventory`` outbox item, due after the push delay;
while that item waits, later changes replace its quantity, so one item per
(marketplace, SKU) is ever active and only the latest value is sent.  A sale on
Etsy therefore moves Amazon and eBay, not Etsy itself.

Only the process holding the poller lease plans and delivers (the planner runs as
one of the engine's periodic jobs, between deliveries), so nothing else changes
an outbox item while it is being sent.

Delivery: an absolute quantity is idempotent, so a lost answer is simply sent
again.  Amazon's ACCEPTED is queued, not applied: the item is read back with
``confirm_quantity`` until Amazon shows the value (the time it took is shown).
eBay allows 250 revisions per listing per day: a token bucket per listing keeps
every 24 hours under that, and changes wait in the outbox meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar, runtime_checkable

import anyio.to_thread

from tf_console.audit import AuditLog
from tf_console.clock import Clock
from tf_console.inventory.book import StockBook
from tf_console.inventory.ledger import StockRecord, available_quantity, stock_key
from tf_console.inventory.listings import ListingDirectory
from tf_console.inventory.made_to_order import MadeToOrderQuote, made_to_order_quantity, profile_of
from tf_console.inventory.policy import InventoryDefaults, SkuPolicy, made_to_order_skus, policy_for
from tf_console.inventory.pushes import (
    PushRecord,
    PushStatus,
    RevisionBucket,
    RevisionBudget,
    budget_collection,
    push_collection,
    push_key,
)
from tf_console.marketplaces.base import (
    Marketplace,
    MarketplaceError,
    OutcomeUnknown,
    PushResult,
    PushState,
    ReauthNeeded,
    TransientError,
)
from tf_console.models import Platform
from tf_console.production.catalog import Catalog
from tf_console.production.scheduler import compute_schedule
from tf_console.production.service import ProductionService
from tf_console.store import Store
from tf_console.sync.outbox import OutboxItem, OutboxKind, OutboxSender, OutboxState

log = logging.getLogger(__name__)

T = TypeVar("T")

#: a SKU the marketplace has no listing for is asked again after this long at the earliest
SKIP_FOR = timedelta(hours=1)
#: Amazon shows an accepted update within minutes; read back this often, this long
READ_BACK_EVERY = 60.0
READ_BACK_PATIENCE = 3600.0


@runtime_checkable
class QuantityReader(Protocol):
    """A marketplace whose accepted quantity updates are applied later and can be read back."""

    async def confirm_quantity(self, sku: str, quantity: int) -> PushResult: ...


@dataclass(frozen=True, slots=True)
class Wanted:
    """What one SKU should offer, and why."""

    sku: str
    quantity: int | None  # None: not synced (no shelf count, not made to order, or sync = false)
    policy: SkuPolicy
    record: StockRecord | None
    why: str


def push_item_id(platform: Platform, listing_sku: str) -> str:
    return f"stock:{platform.value}:{stock_key(listing_sku)}"


async def _blocking(fn: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(fn, *args)


class StockSync:
    def __init__(
        self,
        *,
        store: Store,
        book: StockBook,
        production: ProductionService,
        marketplaces: Mapping[Platform, Marketplace],
        clock: Clock,
        defaults: InventoryDefaults,
        audit: AuditLog,
        directory: ListingDirectory,
        budget: RevisionBudget | None = None,
    ) -> None:
        self.book = book
        self.production = production
        self.marketplaces = dict(marketplaces)
        self.clock = clock
        self.defaults = defaults
        self.audit = audit
        self.directory = directory
        self.budget = budget or RevisionBudget()
        self.pushes = push_collection(store)
        self.budgets = budget_collection(store)
        self.quotes: dict[str, MadeToOrderQuote] = {}
        self.quotes_at: datetime | None = None

    # ----------------------------------------------------------------- what to offer

    def quote_made_to_order(self) -> dict[str, MadeToOrderQuote]:
        """Blocking: the made-to-order quantities from a fresh schedule (see ``made_to_order``)."""
        catalog = self.production.catalog()
        skus = made_to_order_skus(catalog)
        quotes: dict[str, MadeToOrderQuote] = {}
        if skus:
            inp = self.production.snapshot()
            schedule = compute_schedule(inp)
            for sku in skus:
                profile = profile_of(catalog, sku)
                if profile is None:
                    continue
                policy = policy_for(sku, catalog, self.defaults)
                record = self.book.record(sku)
                shelf = 0
                if record is not None:
                    shelf = available_quantity(record.on_hand, record.allocated, policy.buffer) or 0
                quotes[stock_key(sku)] = made_to_order_quantity(
                    inp, schedule, profile, sku, lead=policy.lead, cap=policy.max, shelf=shelf
                )
        self.quotes = quotes
        self.quotes_at = self.clock.now()
        return quotes

    def wanted(self, records: list[StockRecord], catalog: Catalog) -> list[Wanted]:
        by_key = {r.key: r for r in records}
        skus = {r.key: r.sku for r in records}
        for sku in made_to_order_skus(catalog):
            skus.setdefault(stock_key(sku), sku)
        found: list[Wanted] = []
        for key, sku in sorted(skus.items()):
            record = by_key.get(key)
            policy = policy_for(sku, catalog, self.defaults)
            if not policy.sync:
                found.append(Wanted(sku, None, policy, record, "sync = false in the catalog"))
            elif policy.made_to_order:
                quote = self.quotes.get(key)
                if quote is None:
                    found.append(Wanted(sku, None, policy, record, "made to order; not computed yet"))
                else:
                    found.append(Wanted(sku, quote.quantity, policy, record, quote.explanation))
            elif record is None or record.on_hand is None:
                found.append(Wanted(sku, None, policy, record, "no shelf count yet: never pushed"))
            else:
                available = available_quantity(record.on_hand, record.allocated, policy.buffer)
                found.append(
                    Wanted(
                        sku,
                        available,
                        policy,
                        record,
                        f"on-hand {record.on_hand} − allocated {record.allocated} − buffer {policy.buffer}",
                    )
                )
        return found

    # ----------------------------------------------------------------- planning

    async def plan(self, sender: OutboxSender, *, delay: float | None = None) -> list[OutboxItem]:
        """Write or update an outbox item wherever a marketplace shows the wrong quantity."""
        catalog = self.production.catalog()
        if made_to_order_skus(catalog) and self.quotes_at is None:
            await _blocking(self.quote_made_to_order)
        records = await _blocking(self.book.records)
        wait = self.defaults.push_delay if delay is None else max(0.0, delay)
        touched: list[OutboxItem] = []
        for want in self.wanted(records, catalog):
            if want.quantity is None:
                continue
            seen = want.record.listing_skus if want.record is not None else {}
            for platform in self.marketplaces:
                for listing_sku in want.policy.targets(platform, seen.get(platform, [])):
                    item = await self._decide(sender, platform, listing_sku, want, want.quantity, wait)
                    if item is not None:
                        touched.append(item)
        return touched

    async def _decide(
        self,
        sender: OutboxSender,
        platform: Platform,
        listing_sku: str,
        want: Wanted,
        quantity: int,
        wait: float,
    ) -> OutboxItem | None:
        now = self.clock.now()
        push = await _blocking(self.pushes.get, push_key(platform, listing_sku))
        if push is None:
            push = PushRecord(platform=platform, listing_sku=listing_sku, stock_sku=want.sku)
        active: OutboxItem | None = None
        if push.item_id:
            found = await _blocking(sender.items.get, push.item_id)
            if found is not None and found.state.is_active:
                active = found
        if active is not None:
            current = int(active.payload.get("quantity", -1))
            if current == quantity or active.state is OutboxState.SENDING:
                return None
            if not active.payload.get("accepted"):
                active.payload["quantity"] = quantity
                active.note(now, "coalesced", f"quantity {current} → {quantity}: only the latest is sent")
                await sender.save(active)
                push.quantity = quantity
                await _blocking(self.pushes.put, push)
                return active
            # Accepted and being read back: the marketplace applies submissions in order, so the
            # newer quantity simply follows (replacing the item) instead of waiting for the older.
            superseded = f"replaces quantity {current}, accepted but not shown by the marketplace yet"
        else:
            superseded = ""
            if push.expected(want.record) == quantity:
                return None
            if push.refused_quantity == quantity:
                return None  # refused as is before; a different quantity is tried again
            if push.status is PushStatus.SKIPPED and push.skip_until is not None and now < push.skip_until:
                return None
        push.pushes += 1
        # One outbox item per (marketplace, SKU), reused: a settled one is replaced by the next
        # quantity, so the outbox stays as small as the catalog however often stock moves.
        item = OutboxItem(
            item_id=push_item_id(platform, listing_sku),
            kind=OutboxKind.INVENTORY,
            platform=platform,
            sku=listing_sku,
            payload={"quantity": quantity, "stock_sku": want.sku},
            created_at=now,
            updated_at=now,
            next_attempt_at=now + timedelta(seconds=wait),
        )
        if superseded:
            item.note(now, "superseded", superseded)
        item.note(now, "planned", f"quantity {quantity}: {want.why}")
        await sender.save(item)
        push.item_id = item.item_id
        push.stock_sku = want.sku
        push.quantity = quantity
        push.status = PushStatus.PENDING
        push.answer = ""
        push.requested_at = now
        push.sent_at = None
        push.settled_at = None
        await _blocking(self.pushes.put, push)
        return item

    # ----------------------------------------------------------------- delivery

    async def deliver(self, sender: OutboxSender, item: OutboxItem) -> OutboxItem:
        """The outbox handler of ``inventory`` items."""
        if item.state is OutboxState.VERIFYING and item.payload.get("accepted"):
            return await self._read_back(sender, item)
        # Pending, or found in flight after a crash: setting an absolute quantity again is safe.
        return await self._send(sender, item)

    async def _push_record(self, item: OutboxItem) -> PushRecord:
        push = await _blocking(self.pushes.get, push_key(item.platform, item.sku))
        if push is None:
            stock_sku = str(item.payload.get("stock_sku") or item.sku)
            push = PushRecord(platform=item.platform, listing_sku=item.sku, stock_sku=stock_sku)
        if push.item_id != item.item_id:
            # An item the planner did not write (or an older one): record it as the latest anyway.
            push.item_id = item.item_id
            push.requested_at = item.created_at
        return push

    async def _send(self, sender: OutboxSender, item: OutboxItem) -> OutboxItem:
        now = self.clock.now()
        quantity = int(item.payload["quantity"])
        market = sender.marketplaces[item.platform]
        push = await self._push_record(item)
        push.quantity = quantity
        if item.platform is Platform.EBAY:
            ready = await self._spend_revision(item.sku, now)
            if ready is not None:
                item.state = OutboxState.PENDING
                item.next_attempt_at = ready
                item.answer = (
                    f"eBay allows 250 revisions per listing a day; quantity {quantity} waits until "
                    f"{ready:%H:%M} UTC (later changes replace it)."
                )
                item.note(now, "budget", item.answer)
                await sender.save(item)
                push.status, push.answer = PushStatus.PENDING, item.answer
                await _blocking(self.pushes.put, push)
                return item
        item.state = OutboxState.SENDING
        item.attempts += 1
        item.note(now, "sending", f"quantity {quantity}")
        await sender.save(item)
        push.sent_at = now
        try:
            result = await market.set_quantity(item.sku, quantity)
        except (OutcomeUnknown, TransientError) as exc:
            return await self._retry(sender, item, push, str(exc))
        except ReauthNeeded as exc:
            return await self._retry(sender, item, push, str(exc), long=True)
        except MarketplaceError as exc:
            result = PushResult(PushState.REJECTED, str(exc))
        except Exception as exc:  # an absolute quantity may be sent again: retry, never drop
            log.exception("stock push failed unexpectedly")
            return await self._retry(sender, item, push, f"unexpected error ({type(exc).__name__})")
        return await self._settle(
            sender, item, push, result, can_read_back=isinstance(market, QuantityReader)
        )

    async def _spend_revision(self, listing_sku: str, now: datetime) -> datetime | None:
        """Take one revision from each eBay listing the SKU is on; the time to wait for, if any."""
        try:
            item_ids = await self.directory.ebay_item_ids(listing_sku)
        except Exception:  # the budget must hold even when the listing cannot be looked up
            log.exception("eBay listing lookup for the revision budget failed")
            item_ids = []
        keys = [f"ebay:{i}" for i in item_ids] or [f"ebay:sku:{stock_key(listing_sku)}"]
        ready: list[datetime] = []

        def take(buckets: dict[str, RevisionBucket]) -> None:
            current = {k: buckets.get(k) for k in keys}
            ready.extend(t for t in (self.budget.ready_at(b, now) for b in current.values()) if t > now)
            if ready:
                return
            for key, bucket in current.items():
                buckets[key] = self.budget.spend(key, bucket, now)

        await _blocking(self.budgets.mutate, take)
        return max(ready) if ready else None

    async def _retry(
        self, sender: OutboxSender, item: OutboxItem, push: PushRecord, why: str, *, long: bool = False
    ) -> OutboxItem:
        now = self.clock.now()
        policy = sender.policy
        delay = policy.max_delay if long else policy.backoff(item.attempts, sender.rng)
        item.state = OutboxState.PENDING
        item.next_attempt_at = now + timedelta(seconds=max(1.0, delay))
        item.answer = why
        item.note(now, "retry", f"{why} — next try at {item.next_attempt_at:%H:%M:%S} UTC")
        await sender.save(item)
        push.status, push.answer = PushStatus.PENDING, why
        await _blocking(self.pushes.put, push)
        return item

    async def _settle(
        self,
        sender: OutboxSender,
        item: OutboxItem,
        push: PushRecord,
        result: PushResult,
        *,
        can_read_back: bool,
    ) -> OutboxItem:
        now = self.clock.now()
        quantity = int(item.payload["quantity"])
        item.answer = result.answer
        item.payload["push_state"] = result.state.value
        item.note(now, result.state.value, result.answer)
        push.answer = result.answer
        if result.state is PushState.APPLIED:
            item.state = OutboxState.DONE
            self._applied(push, quantity, now)
        elif result.state is PushState.QUEUED and can_read_back:
            item.state = OutboxState.VERIFYING
            item.payload["accepted"] = True
            item.unknown_since = now
            item.verify_reads = 0
            item.next_attempt_at = now + timedelta(seconds=READ_BACK_EVERY)
            push.status = PushStatus.QUEUED
        elif result.state is PushState.QUEUED:
            item.state = OutboxState.DONE
            push.status, push.settled_at = PushStatus.UNVERIFIED, now
            push.confirmed_quantity, push.confirmed_at = quantity, now
        elif result.state is PushState.REJECTED:
            item.state = OutboxState.REJECTED
            push.status, push.settled_at, push.refused_quantity = PushStatus.REJECTED, now, quantity
        else:
            item.state = OutboxState.DONE
            push.status, push.settled_at = PushStatus.SKIPPED, now
            push.skip_until = now + max(SKIP_FOR, timedelta(seconds=self.defaults.cache_ttl))
        await sender.save(item)
        await _blocking(self.pushes.put, push)
        self._audit(push, item, quantity)
        return item

    @staticmethod
    def _applied(push: PushRecord, quantity: int, now: datetime) -> None:
        push.status, push.settled_at = PushStatus.APPLIED, now
        push.confirmed_quantity, push.confirmed_at = quantity, now
        push.refused_quantity, push.skip_until = None, None

    async def _read_back(self, sender: OutboxSender, item: OutboxItem) -> OutboxItem:
        now = self.clock.now()
        quantity = int(item.payload["quantity"])
        market = sender.marketplaces[item.platform]
        push = await self._push_record(item)
        if not isinstance(market, QuantityReader):
            return await self._settle(
                sender, item, push, PushResult(PushState.QUEUED, item.answer), can_read_back=False
            )
        try:
            result = await market.confirm_quantity(item.sku, quantity)
        except MarketplaceError as exc:
            item.next_attempt_at = now + timedelta(seconds=READ_BACK_EVERY)
            item.note(now, "verify-failed", f"could not read the listing back: {exc}")
            await sender.save(item)
            return item
        item.verify_reads += 1
        waited = (now - (item.unknown_since or now)).total_seconds()
        if result.state is PushState.QUEUED and waited < READ_BACK_PATIENCE:
            item.next_attempt_at = now + timedelta(seconds=READ_BACK_EVERY)
            item.note(now, "verify", result.answer)
            await sender.save(item)
            return item
        item.state = OutboxState.DONE
        item.answer = result.answer
        item.note(now, result.state.value, result.answer)
        push.answer = result.answer
        if result.state is PushState.APPLIED:
            self._applied(push, quantity, now)
        elif result.state is PushState.QUEUED:
            item.answer = push.answer = (
                f"Accepted, but still not shown after {READ_BACK_PATIENCE / 60:.0f} minutes: {result.answer}"
            )
            push.status, push.settled_at = PushStatus.UNVERIFIED, now
            # Believed applied eventually; re-sending the same value every hour would only add noise.
            push.confirmed_quantity, push.confirmed_at = quantity, now
        else:
            push.status, push.settled_at = PushStatus.SKIPPED, now
            push.skip_until = now + SKIP_FOR
        await sender.save(item)
        await _blocking(self.pushes.put, push)
        self._audit(push, item, quantity)
        return item

    def _audit(self, push: PushRecord, item: OutboxItem, quantity: int) -> None:
        try:
            self.audit.record(
                "stock.push",
                f"SKU {push.stock_sku}",
                push.status.value,
                f"{item.platform.label} listing SKU {item.sku}: quantity {quantity}. {item.answer}".strip(),
            )
        except Exception:  # the push happened; a full disk for the audit log must not undo it
            log.exception("could not write the audit record of a stock push")
