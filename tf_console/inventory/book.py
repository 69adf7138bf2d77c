"""The stock book: the ledger of every SKU, kept in the store.

All records live in one collection (``collections/stock.json``), so a batch of
order changes — and the line states that make re-polls harmless — is written in
one atomic read-modify-write under the store's cross-process lock: the daemon's
poller and a ``tf-console stock set`` in another terminal never lose each
other's entries.  Blocking; async callers use a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tf_console.audit import AuditLog, os_user
from tf_console.clock import Clock
from tf_console.errors import UserError
from tf_console.inventory.ledger import (
    Balance,
    EntryKind,
    LedgerEntry,
    LineState,
    StockRecord,
    stock_key,
)
from tf_console.models import FulfilledBy, LineItem, Order, OrderStatus, Platform, ShipmentState
from tf_console.store import Collection, Store

log = logging.getLogger(__name__)

STOCK_COLLECTION = "stock"
#: settled order lines are remembered this long, so a late re-poll of an old order changes nothing
FORGET_SETTLED_AFTER = timedelta(days=120)
MAX_SKU_LENGTH = 100

#: which stock SKU an order line draws on (None: it is not tracked)
StockSkuOf = Callable[[Platform, LineItem], str | None]


@dataclass(frozen=True, slots=True)
class StockChange:
    sku: str
    before: Balance
    after: Balance
    entry: LedgerEntry


def check_sku(sku: str) -> str:
    cleaned = sku.strip()
    if not cleaned:
        raise UserError("Name a SKU, e.g. `tf-console stock set STK-NOZZLE-04 12`.")
    if len(cleaned) > MAX_SKU_LENGTH or any(ord(ch) < 32 for ch in cleaned):
        raise UserError(f"{cleaned[:40]!r} is not a SKU: at most {MAX_SKU_LENGTH} printable characters.")
    return cleaned


def _shipped_time(order: Order) -> datetime:
    times = [s.shipped_at for s in order.shipments if s.state is not ShipmentState.REJECTED]
    return max(times) if times else order.updated_at


class StockBook:
    def __init__(self, store: Store, clock: Clock, audit: AuditLog | None = None) -> None:
        self._records: Collection[StockRecord] = store.collection(
            STOCK_COLLECTION, StockRecord, key=lambda r: r.key
        )
        self._clock = clock
        self._audit = audit

    # ----------------------------------------------------------------- reading

    def records(self) -> list[StockRecord]:
        return self._records.all()

    def record(self, sku: str) -> StockRecord | None:
        return self._records.get(stock_key(sku))

    # ----------------------------------------------------------------- the operator

    def set_on_hand(self, sku: str, count: int, *, reason: str = "") -> StockChange:
        """The shelf was counted: on-hand is ``count`` from now on."""
        sku = check_sku(sku)
        if count < 0:
            raise UserError("A shelf count cannot be negative; give the number of units on the shelf.")
        reason = reason.strip() or "shelf count"

        def entry_for(record: StockRecord) -> LedgerEntry:
            before = record.on_hand
            delta = count - before if before is not None else 0
            return self._manual(EntryKind.COUNT, reason, on_hand=count, on_hand_delta=delta)

        change = self._change(sku, entry_for, create=True)
        self._record_audit(
            "stock.set", change, f"on-hand {_shown(change.before.on_hand)} → {count}: {reason}"
        )
        return change

    def adjust(self, sku: str, delta: int, *, reason: str) -> StockChange:
        """Add (``delta`` > 0) or remove units with a reason (breakage, a return, a gift…)."""
        sku = check_sku(sku)
        reason = reason.strip()
        if not reason:
            raise UserError("Say why the count changes with --reason (e.g. --reason 'two broke in packing').")
        if delta == 0:
            raise UserError("An adjustment of 0 changes nothing; give +N or -N.")

        def entry_for(record: StockRecord) -> LedgerEntry:
            self._require_counted(record)
            assert record.on_hand is not None
            if record.on_hand + delta < 0:
                raise UserError(
                    f"SKU {record.sku} has {record.on_hand} on hand; removing {-delta} would go below zero. "
                    f"Count the shelf and use `tf-console stock set {record.sku} N`."
                )
            return self._manual(EntryKind.ADJUST, reason, on_hand_delta=delta)

        change = self._change(sku, entry_for, create=False)
        self._record_audit("stock.adjust", change, f"{delta:+d} ({reason})")
        return change

    def add_printed(self, sku: str, units: int, *, note: str = "") -> StockChange:
        """Finished prints of a stock item went on the shelf."""
        sku = check_sku(sku)
        if units <= 0:
            raise UserError("Give how many printed units went on the shelf (1 or more).")

        def entry_for(record: StockRecord) -> LedgerEntry:
            self._require_counted(record)
            return self._manual(EntryKind.PRINTED, note.strip() or "print finished", on_hand_delta=units)

        change = self._change(sku, entry_for, create=False)
        self._record_audit("stock.printed", change, f"+{units} printed")
        return change

    def _manual(self, kind: EntryKind, reason: str, **fields: int) -> LedgerEntry:
        return LedgerEntry(seq=0, at=self._clock.now(), kind=kind, reason=reason, user=os_user(), **fields)

    @staticmethod
    def _require_counted(record: StockRecord) -> None:
        if not record.counted:
            raise UserError(
                f"SKU {record.sku} has no shelf count yet; count it first with "
                f"`tf-console stock set {record.sku} N`."
            )

    def _change(
        self, sku: str, entry_for: Callable[[StockRecord], LedgerEntry], *, create: bool
    ) -> StockChange:
        result: list[StockChange] = []

        def change(records: dict[str, StockRecord]) -> None:
            key = stock_key(sku)
            record = records.get(key)
            if record is None:
                if not create:
                    raise UserError(
                        f"SKU {sku} has no stock record; count it first with `tf-console stock set {sku} N`."
                    )
                record = StockRecord(sku=sku)
            before = record.balance()
            entry = record.add(entry_for(record))
            records[key] = record
            result.append(StockChange(record.sku, before, record.balance(), entry))

        self._records.mutate(change)
        return result[0]

    def _record_audit(self, action: str, change: StockChange, detail: str) -> None:
        if self._audit is None:
            return
        try:
            self._audit.record(action, f"SKU {change.sku}", "ok", detail)
        except Exception as exc:  # the change is in the ledger; a full disk must not make it look failed
            log.warning("could not write the audit record of %s (%s)", action, type(exc).__name__)

    # ----------------------------------------------------------------- orders

    def apply_orders(self, orders: Iterable[Order], stock_sku_of: StockSkuOf) -> list[str]:
        """Bring the ledger in line with these orders; returns the SKUs whose balance moved.

        Idempotent: each line's state says what was already counted, so a re-poll,
        an overlap or a re-check of the same order adds nothing.
        """
        batch = list(orders)
        moved: list[str] = []
        now = self._clock.now()

        def apply(records: dict[str, StockRecord]) -> None:
            moved.extend(count_orders(records, batch, stock_sku_of, now))

        self._records.mutate(apply)
        return sorted(moved)


def count_orders(
    records: dict[str, StockRecord], orders: Iterable[Order], stock_sku_of: StockSkuOf, now: datetime
) -> set[str]:
    """Add the entries these orders call for to ``records`` (edited in place); the SKUs that moved.

    Pure: :meth:`StockBook.apply_orders` runs it inside the store's read-modify-write.
    """
    moved: set[str] = set()
    batch = list(orders)
    where = {line_key: key for key, record in records.items() for line_key in record.lines}
    for order in batch:
        present: set[str] = set()
        for item in order.items:
            line_key = f"{order.key}:{item.line_id}"
            present.add(line_key)
            sku = stock_sku_of(order.platform, item)
            if order.fulfilled_by is FulfilledBy.MARKETPLACE:
                sku = None  # the marketplace ships it from its own stock
            new_key = stock_key(sku) if sku else None
            old_key = where.get(line_key)
            if (
                old_key is not None
                and old_key != new_key
                and old_key in records
                and _release_line(records[old_key], line_key, order, now, "no longer draws on it")
            ):
                moved.add(records[old_key].sku)
            if sku is None or new_key is None:
                continue
            record = records.get(new_key) or StockRecord(sku=sku.strip())
            if _apply_line(record, line_key, order, item, now):
                moved.add(record.sku)
            if line_key in record.lines or new_key in records:
                records[new_key] = record
                where[line_key] = new_key
        prefix = f"{order.key}:"
        for line_key in [k for k in where if k.startswith(prefix) and k not in present]:
            key = where[line_key]
            if key in records and _release_line(
                records[key], line_key, order, now, "the line was removed from the order"
            ):
                moved.add(records[key].sku)
    for record in records.values():
        _forget_settled(record, now - FORGET_SETTLED_AFTER)
    return moved


def _shown(value: int | None) -> str:
    return "unset" if value is None else str(value)


def _order_words(order: Order) -> str:
    return f"{order.platform.label} order {order.order_id}"


def _apply_line(record: StockRecord, line_key: str, order: Order, item: LineItem, now: datetime) -> bool:
    """Entries for what changed on one line since it was last seen; True when the balance moved."""
    shipped_total = item.quantity if order.status is OrderStatus.SHIPPED else item.quantity_shipped
    shipped_total = max(0, min(item.quantity, shipped_total))
    is_open = order.status.is_open
    target = max(0, item.quantity - shipped_total) if is_open else 0
    state = record.lines.get(line_key)
    if state is None:
        if target == 0 and shipped_total == 0:
            return False  # cancelled before it was ever seen: it never held a unit
        state = LineState(platform=order.platform, listing_sku=item.sku.strip())
        if shipped_total:
            cutoff = max(
                (t for t in (record.counted_at, record.forgotten_before) if t is not None), default=None
            )
            if not record.counted or cutoff is None or _shipped_time(order) <= cutoff:
                # Shipped before the shelf was counted (or there is no count to move): the count
                # already reflects it.
                state.shipped = shipped_total
    record.note_listing(order.platform, item.sku)
    words = _order_words(order)
    moved = False
    before_total = state.allocated + state.shipped
    sold = target + max(shipped_total, state.shipped) - before_total
    allocated = state.allocated
    if sold > 0:
        first_time = before_total == 0
        record.add(
            LedgerEntry(
                seq=0,
                at=now,
                kind=EntryKind.SALE,
                allocated_delta=sold,
                reason=f"sale on {words}: {sold} unit(s)"
                if first_time
                else f"{words}: quantity up by {sold}",
                platform=order.platform,
                listing_sku=item.sku.strip(),
                order_key=order.key,
                sold_at=order.created_at if first_time else order.updated_at,
            )
        )
        allocated += sold
        moved = True
    newly_shipped = max(0, shipped_total - state.shipped)
    if newly_shipped:
        from_allocation = min(newly_shipped, allocated)
        record.add(
            LedgerEntry(
                seq=0,
                at=now,
                kind=EntryKind.SHIPPED,
                on_hand_delta=-newly_shipped,
                allocated_delta=-from_allocation,
                reason=f"shipped {words}: {newly_shipped} unit(s) left the shelf",
                platform=order.platform,
                listing_sku=item.sku.strip(),
                order_key=order.key,
            )
        )
        allocated -= from_allocation
        moved = True
    if allocated > target:
        freed = allocated - target
        why = "cancelled" if order.status is OrderStatus.CANCELLED else "reduced"
        record.add(
            LedgerEntry(
                seq=0,
                at=now,
                kind=EntryKind.RELEASE,
                allocated_delta=-freed,
                reason=f"{words} {why}: {freed} unit(s) released",
                platform=order.platform,
                listing_sku=item.sku.strip(),
                order_key=order.key,
            )
        )
        moved = True
    state.allocated = target
    state.shipped = max(state.shipped, shipped_total)
    state.open = is_open
    if target == 0 and state.settled_at is None:
        state.settled_at = now
    elif target > 0:
        state.settled_at = None
    record.lines[line_key] = state
    return moved


def _release_line(record: StockRecord, line_key: str, order: Order, now: datetime, why: str) -> bool:
    state = record.lines.get(line_key)
    if state is None:
        return False
    moved = False
    if state.allocated:
        record.add(
            LedgerEntry(
                seq=0,
                at=now,
                kind=EntryKind.RELEASE,
                allocated_delta=-state.allocated,
                reason=f"{_order_words(order)}: the line {why}; {state.allocated} unit(s) released",
                platform=order.platform,
                listing_sku=state.listing_sku,
                order_key=order.key,
            )
        )
        moved = True
    del record.lines[line_key]
    return moved


def _forget_settled(record: StockRecord, cutoff: datetime) -> None:
    old = [k for k, s in record.lines.items() if s.settled_at is not None and s.settled_at < cutoff]
    for line_key in old:
        settled = record.lines.pop(line_key).settled_at
        assert settled is not None
        if record.forgotten_before is None or settled > record.forgotten_before:
            record.forgotten_before = settled
