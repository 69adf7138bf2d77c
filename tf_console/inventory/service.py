"""The inventory feature as one object: what the CLI, the console and the runtime call.

:func:`install_inventory` wires it into a started runtime: the ledger follows every
order change the poller stores, the planner and a refresh (open orders, made-to-
order quantities, listing discovery) run as the engine's periodic jobs in the
process holding the poller lease, and the outbox delivers ``inventory`` items
through the planner.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio.to_thread

from tf_console.audit import AuditLog
from tf_console.clock import Clock
from tf_console.errors import UserError
from tf_console.inventory.book import StockBook, StockChange, StockSkuOf, check_sku
from tf_console.inventory.ledger import LedgerEntry, StockRecord, stock_key
from tf_console.inventory.listings import ListingDirectory, ListingRecord
from tf_console.inventory.made_to_order import MadeToOrderQuote
from tf_console.inventory.planner import StockSync, Wanted
from tf_console.inventory.policy import InventoryDefaults, made_to_order_skus, policy_for
from tf_console.inventory.pushes import PushRecord, PushStatus, RevisionBudget
from tf_console.marketplaces.base import Marketplace
from tf_console.models import MARKETPLACES, ItemKind, LineItem, Order, Platform
from tf_console.production.catalog import Catalog
from tf_console.production.service import ProductionService
from tf_console.store import Store
from tf_console.sync.outbox import OutboxItem, OutboxKind, OutboxSender

if TYPE_CHECKING:
    from tf_console.runtime import Runtime

log = logging.getLogger(__name__)

#: how often the lease holder compares what is offered with what should be
PLAN_EVERY = 5.0
#: how often open orders are re-counted, made-to-order quantities re-computed and listings re-read
REFRESH_EVERY = 300.0


@dataclass(frozen=True, slots=True)
class PushView:
    platform: Platform
    listing_sku: str
    quantity: int | None
    status: PushStatus
    answer: str
    latency: timedelta | None
    at: datetime | None

    @property
    def applied(self) -> bool:
        return self.status is PushStatus.APPLIED

    @property
    def text(self) -> str:
        """``9 applied in 42 s`` / ``9 waiting`` / ``9 refused`` for a table cell."""
        value = "-" if self.quantity is None else str(self.quantity)
        words = {
            PushStatus.PENDING: "waiting",
            PushStatus.QUEUED: "queued",
            PushStatus.APPLIED: "applied",
            PushStatus.UNVERIFIED: "not verified",
            PushStatus.REJECTED: "refused",
            PushStatus.SKIPPED: "no listing",
        }[self.status]
        if self.status is PushStatus.SKIPPED:
            return words
        if self.latency is not None:
            return f"{value} {words} in {_span(self.latency)}"
        return f"{value} {words}"


@dataclass(frozen=True, slots=True)
class StockRow:
    sku: str
    on_hand: int | None
    allocated: int
    buffer: int
    offered: int | None  # what the marketplaces should show; None = not synced
    made_to_order: bool
    why: str
    pushes: Mapping[Platform, tuple[PushView, ...]] = field(default_factory=dict)

    @property
    def synced(self) -> bool:
        return self.offered is not None


@dataclass(frozen=True, slots=True)
class StockDetail:
    row: StockRow
    entries: tuple[LedgerEntry, ...]
    targets: Mapping[Platform, tuple[str, ...]]
    listings: tuple[ListingRecord, ...]
    quote: MadeToOrderQuote | None


def _span(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


class InventoryService:
    def __init__(
        self,
        *,
        store: Store,
        production: ProductionService,
        marketplaces: Mapping[Platform, Marketplace],
        clock: Clock,
        defaults: InventoryDefaults,
        sender: OutboxSender | None = None,
        audit: AuditLog | None = None,
        budget: RevisionBudget | None = None,
    ) -> None:
        self.store = store
        self.production = production
        self.clock = clock
        self.defaults = defaults
        self.sender = sender
        self.audit = audit or AuditLog(store, clock)
        self.book = StockBook(store, clock, self.audit)
        self.directory = ListingDirectory(store, marketplaces, clock, defaults.cache_ttl)
        self.sync = StockSync(
            store=store,
            book=self.book,
            production=production,
            marketplaces=marketplaces,
            clock=clock,
            defaults=defaults,
            audit=self.audit,
            directory=self.directory,
            budget=budget,
        )
        self.platforms: tuple[Platform, ...] = tuple(marketplaces)

    # ----------------------------------------------------------------- orders → ledger

    def stock_sku_of(self, catalog: Catalog) -> StockSkuOf:
        """Which SKU's stock an order line draws on: stock lines (the catalog's ``stock_sku``),
        lines listed under a SKU in its ``[stock]`` table, and made-to-order printed SKUs."""
        made_to_order = {stock_key(s) for s in made_to_order_skus(catalog)}
        listed: dict[tuple[Platform, str], str] = {}
        for settings in catalog.stock.values():
            for platform, names in settings.listings.items():
                for name in names:
                    listed.setdefault((platform, stock_key(name)), settings.sku)

        def of(platform: Platform, item: LineItem) -> str | None:
            sku = item.sku.strip()
            decision = catalog.classify_item(platform, item)
            owner = listed.get((platform, stock_key(sku))) if sku else None
            if owner is not None and (
                decision.kind is not ItemKind.PRINT or stock_key(owner) in made_to_order
            ):
                return owner
            if decision.kind is ItemKind.STOCK:
                return decision.stock_sku or None
            if decision.kind is ItemKind.PRINT and sku and stock_key(sku) in made_to_order:
                return sku
            return None

        return of

    def apply_orders(self, orders: Iterable[Order]) -> list[str]:
        """Blocking: count these orders' stock lines (idempotent); the SKUs whose balance moved."""
        catalog = self.production.catalog()
        moved = self.book.apply_orders(orders, self.stock_sku_of(catalog))
        made_to_order = {stock_key(s) for s in made_to_order_skus(catalog)}
        if any(stock_key(sku) in made_to_order for sku in moved):
            # A made-to-order sale adds a print job: the next plan re-computes what still fits.
            self.sync.quotes_at = None
        return moved

    def on_orders_changed(self, orders: list[Order]) -> None:
        """The engine's listener: the poller stored these orders."""
        try:
            self.apply_orders(orders)
        except Exception:  # stock trouble must never stop orders from being stored
            log.exception("stock ledger update failed")

    def reconcile_open_orders(self) -> list[str]:
        """Blocking: re-count every open order (after a catalog change, or on first use)."""
        return self.apply_orders(self.store.orders.open_orders())

    # ----------------------------------------------------------------- the operator (blocking)

    def set_on_hand(self, sku: str, count: int, reason: str = "") -> StockChange:
        sku = check_sku(sku)
        # Open orders hold units that are still on the shelf: count them before the shelf is.
        self.reconcile_open_orders()
        return self.book.set_on_hand(sku, count, reason=reason)

    def adjust(self, sku: str, delta: int, reason: str) -> StockChange:
        return self.book.adjust(sku, delta, reason=reason)

    def add_printed(self, sku: str, units: int, note: str = "") -> StockChange:
        return self.book.add_printed(sku, units, note=note)

    # ----------------------------------------------------------------- views (blocking)

    def _wanted(self) -> list[Wanted]:
        catalog = self.production.catalog()
        if made_to_order_skus(catalog) and self.sync.quotes_at is None:
            self.sync.quote_made_to_order()
        return self.sync.wanted(self.book.records(), catalog)

    def rows(self) -> list[StockRow]:
        """Every tracked SKU: on-hand, allocated, buffer, what is offered and each marketplace's push."""
        pushes: dict[str, list[PushRecord]] = {}
        for push in self.sync.pushes.all():
            pushes.setdefault(stock_key(push.stock_sku), []).append(push)
        return [self._row(want, pushes.get(stock_key(want.sku), [])) for want in self._wanted()]

    def _row(self, want: Wanted, pushes: list[PushRecord]) -> StockRow:
        by_platform: dict[Platform, list[PushView]] = {}
        for push in sorted(pushes, key=lambda p: (p.platform.value, p.listing_sku)):
            by_platform.setdefault(push.platform, []).append(
                PushView(
                    platform=push.platform,
                    listing_sku=push.listing_sku,
                    quantity=push.quantity,
                    status=push.status,
                    answer=push.answer,
                    latency=push.latency,
                    at=push.settled_at or push.sent_at or push.requested_at,
                )
            )
        record = want.record
        return StockRow(
            sku=want.sku,
            on_hand=record.on_hand if record is not None else None,
            allocated=record.allocated if record is not None else 0,
            buffer=want.policy.buffer,
            offered=want.quantity,
            made_to_order=want.policy.made_to_order,
            why=want.why,
            pushes={p: tuple(v) for p, v in by_platform.items()},
        )

    def detail(self, sku: str) -> StockDetail:
        """One SKU explained: its ledger entries, where it is pushed, what the marketplaces hold."""
        sku = check_sku(sku)
        key = stock_key(sku)
        row = next((r for r in self.rows() if stock_key(r.sku) == key), None)
        if row is None:
            raise UserError(f"SKU {sku} has no stock record; count it with `tf-console stock set {sku} N`.")
        record: StockRecord | None = self.book.record(sku)
        policy = policy_for(row.sku, self.production.catalog(), self.defaults)
        seen = record.listing_skus if record is not None else {}
        targets = {p: tuple(policy.targets(p, seen.get(p, []))) for p in (*MARKETPLACES, *self.platforms)}
        known = self.directory.known()
        listings = tuple(
            known[f"{p.value}:{name.casefold()}"]
            for p, names in targets.items()
            for name in names
            if f"{p.value}:{name.casefold()}" in known
        )
        return StockDetail(
            row=row,
            entries=tuple(record.entries if record is not None else ()),
            targets=targets,
            listings=listings,
            quote=self.sync.quotes.get(key),
        )

    # ----------------------------------------------------------------- the lease holder (async)

    def _require_sender(self) -> OutboxSender:
        if self.sender is None:
            raise RuntimeError("this inventory service has no outbox sender (it was not installed)")
        return self.sender

    async def plan(self, *, delay: float | None = None) -> list[OutboxItem]:
        """Compare what is offered with what should be; write or update outbox items."""
        return await self.sync.plan(self._require_sender(), delay=delay)

    async def plan_job(self) -> None:
        """The periodic job: plan with the configured push delay."""
        await self.plan()

    async def deliver(self, sender: OutboxSender, item: OutboxItem) -> OutboxItem:
        return await self.sync.deliver(sender, item)

    async def refresh(self) -> None:
        """Re-count open orders, re-compute made-to-order quantities, re-read the listing map."""
        await anyio.to_thread.run_sync(self.reconcile_open_orders)
        await anyio.to_thread.run_sync(self.sync.quote_made_to_order)
        await self.discover_listings()

    async def discover_listings(self) -> list[ListingRecord]:
        wanted = await anyio.to_thread.run_sync(self._wanted)
        found: list[ListingRecord] = []
        for want in wanted:
            if want.quantity is None:
                continue
            seen = want.record.listing_skus if want.record is not None else {}
            for platform in self.platforms:
                for listing_sku in want.policy.targets(platform, seen.get(platform, [])):
                    record = await self.directory.discover(platform, listing_sku)
                    if record is not None:
                        found.append(record)
        return found


_INSTALLED: weakref.WeakKeyDictionary[Runtime, InventoryService] = weakref.WeakKeyDictionary()


def install_inventory(runtime: Runtime) -> InventoryService:
    """Wire inventory sync into an opened runtime (idempotent: a second call returns the same service)."""
    existing = _INSTALLED.get(runtime)
    if existing is not None:
        return existing
    engine = runtime.engine
    service = InventoryService(
        store=runtime.store,
        production=runtime.production,
        marketplaces=runtime.marketplaces,
        clock=runtime.clock,
        defaults=InventoryDefaults.from_settings(runtime.settings),
        sender=engine.sender,
    )
    engine.listeners.orders_changed.append(service.on_orders_changed)
    engine.sender.register(OutboxKind.INVENTORY, service.deliver)
    engine.periodic.append(("inventory.refresh", REFRESH_EVERY, service.refresh))
    engine.periodic.append(("inventory.plan", PLAN_EVERY, service.plan_job))
    _INSTALLED[runtime] = service
    return service
