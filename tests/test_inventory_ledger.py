"""The stock ledger: hypothesis properties and worked examples of how orders move it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tf_console.inventory.book import count_orders
from tf_console.inventory.ledger import (
    Balance,
    EntryKind,
    LedgerEntry,
    StockRecord,
    available_quantity,
    replay,
)
from tf_console.models import (
    FulfilledBy,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentState,
)

SKU = "STK-PLA-1KG-BLK"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def stock_sku_of(_platform: Platform, item: LineItem) -> str | None:
    return item.sku if item.sku.startswith("STK-") else None


def order(
    order_id: str,
    quantity: int,
    *,
    shipped: int = 0,
    status: OrderStatus = OrderStatus.UNSHIPPED,
    platform: Platform = Platform.ETSY,
    created: datetime = T0,
    shipped_at: datetime | None = None,
    sku: str = SKU,
    fulfilled_by: FulfilledBy = FulfilledBy.MERCHANT,
) -> Order:
    shipments = []
    if shipped_at is not None:
        shipments.append(
            Shipment(
                shipment_id="s1",
                carrier="UPS",
                tracking="1Z999AA10123456784",
                shipped_at=shipped_at,
                state=ShipmentState.CONFIRMED,
                source="marketplace",
            )
        )
    return Order(
        platform=platform,
        order_id=order_id,
        status=status,
        created_at=created,
        updated_at=created,
        items=[
            LineItem(
                line_id="1",
                sku=sku,
                quantity=quantity,
                quantity_shipped=shipped,
                unit_price=Money(amount=Decimal("19.99"), currency="USD"),
            )
        ],
        shipments=shipments,
        fulfilled_by=fulfilled_by,
    )


def manual(kind: EntryKind, at: datetime, **fields: int) -> LedgerEntry:
    return LedgerEntry(seq=0, at=at, kind=kind, reason="test", **fields)


# ---------------------------------------------------------------------------
# Properties


@dataclass
class Model:
    """The obvious bookkeeping the ledger must agree with."""

    on_hand: int | None = None
    orders: dict[str, tuple[int, int, bool]] = field(default_factory=dict)  # id -> (qty, shipped, open)

    @property
    def allocated(self) -> int:
        return sum(q - s for q, s, is_open in self.orders.values() if is_open)


events = st.lists(
    st.one_of(
        st.tuples(st.just("count"), st.integers(0, 60)),
        st.tuples(st.just("adjust"), st.integers(-10, 10)),
        st.tuples(st.just("order"), st.integers(1, 5)),
        st.tuples(st.just("ship"), st.integers(0, 30)),
        st.tuples(st.just("cancel"), st.integers(0, 30)),
        st.tuples(st.just("repoll"), st.integers(0, 30)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(events=events, buffer=st.integers(0, 5))
def test_available_is_never_negative_and_replaying_entries_reproduces_the_balance(
    events: list[tuple[str, int]], buffer: int
) -> None:
    records: dict[str, StockRecord] = {}
    model = Model()
    now = T0
    for number, (kind, value) in enumerate(events):
        now += timedelta(minutes=1)
        ids = sorted(model.orders)
        target = ids[value % len(ids)] if ids else None
        if kind == "count":
            record = records.setdefault(SKU.casefold(), StockRecord(sku=SKU))
            record.add(manual(EntryKind.COUNT, now, on_hand=value))
            model.on_hand = value
        elif kind == "adjust" and model.on_hand is not None and model.on_hand + value >= 0 and value:
            records[SKU.casefold()].add(manual(EntryKind.ADJUST, now, on_hand_delta=value))
            model.on_hand += value
        elif kind == "order":
            order_id = f"o{number}"
            model.orders[order_id] = (value, 0, True)
            count_orders(records, [order(order_id, value, created=now)], stock_sku_of, now)
        elif kind in ("ship", "cancel", "repoll") and target is not None:
            quantity, shipped, is_open = model.orders[target]
            if kind == "ship" and is_open:
                more = 1 + value % max(1, quantity - shipped)
                shipped = min(quantity, shipped + more)
                if model.on_hand is not None:
                    model.on_hand -= shipped - model.orders[target][1]
                is_open = shipped < quantity
            elif kind == "cancel" and is_open:
                is_open = False
            model.orders[target] = (quantity, shipped, is_open)
            status = (
                OrderStatus.UNSHIPPED
                if is_open and shipped == 0
                else OrderStatus.PARTIALLY_SHIPPED
                if is_open
                else OrderStatus.SHIPPED
                if shipped == quantity
                else OrderStatus.CANCELLED
            )
            count_orders(
                records,
                [order(target, quantity, shipped=shipped, status=status, created=T0)],
                stock_sku_of,
                now,
            )
        current = records.get(SKU.casefold())
        if current is None:
            continue
        assert replay(current.entries) == current.balance()
        assert current.allocated == model.allocated >= 0
        assert current.on_hand == model.on_hand
        shown = available_quantity(current.on_hand, current.allocated, buffer)
        if model.on_hand is None:
            assert shown is None
        else:
            assert shown is not None and shown >= 0


@settings(max_examples=60, deadline=None)
@given(deltas=st.lists(st.integers(-3, 3), min_size=1, max_size=500), cut=st.integers(1, 400))
def test_folding_old_entries_keeps_the_replay_exact(deltas: list[int], cut: int) -> None:
    record = StockRecord(sku=SKU)
    record.add(manual(EntryKind.COUNT, T0, on_hand=100))
    for number, delta in enumerate(deltas):
        kind = EntryKind.SALE if delta >= 0 else EntryKind.RELEASE
        at = T0 + timedelta(seconds=number)
        if kind is EntryKind.RELEASE and record.allocated + delta < 0:
            continue
        record.add(manual(kind, at, allocated_delta=delta))
    before = record.balance()
    record.fold(min(cut, len(record.entries) - 1))
    assert record.entries[0].kind in (EntryKind.OPENING, EntryKind.COUNT)
    assert replay(record.entries) == before == record.balance()
    assert len(record.entries) <= 200


# ---------------------------------------------------------------------------
# Worked examples


def test_a_sale_allocates_shipping_takes_it_off_the_shelf_and_a_repoll_changes_nothing() -> None:
    records: dict[str, StockRecord] = {}
    record = records.setdefault(SKU.casefold(), StockRecord(sku=SKU))
    record.add(manual(EntryKind.COUNT, T0, on_hand=10))
    sold = order("1001", 3, created=T0 + timedelta(hours=1))
    assert count_orders(records, [sold], stock_sku_of, T0 + timedelta(hours=1)) == {SKU}
    assert records[SKU.casefold()].balance() == Balance(on_hand=10, allocated=3)
    assert available_quantity(10, 3, 2) == 5
    assert count_orders(records, [sold, sold], stock_sku_of, T0 + timedelta(hours=2)) == set()
    shipped = order("1001", 3, shipped=3, status=OrderStatus.SHIPPED, created=T0 + timedelta(hours=1))
    count_orders(records, [shipped], stock_sku_of, T0 + timedelta(hours=3))
    record = records[SKU.casefold()]
    assert record.balance() == Balance(on_hand=7, allocated=0)
    kinds = [e.kind for e in record.entries]
    assert kinds == [EntryKind.COUNT, EntryKind.SALE, EntryKind.SHIPPED]
    assert "sale on Etsy order 1001: 3 unit(s)" in record.entries[1].reason
    assert record.entries[1].platform is Platform.ETSY and record.entries[1].sold_at == T0 + timedelta(
        hours=1
    )


def test_cancellation_and_reduction_release_units() -> None:
    records: dict[str, StockRecord] = {}
    now = T0
    count_orders(records, [order("1", 4)], stock_sku_of, now)
    count_orders(records, [order("1", 2)], stock_sku_of, now)
    assert records[SKU.casefold()].allocated == 2
    count_orders(records, [order("1", 2, status=OrderStatus.CANCELLED)], stock_sku_of, now)
    record = records[SKU.casefold()]
    assert record.allocated == 0 and record.on_hand is None
    assert [e.kind for e in record.entries] == [EntryKind.SALE, EntryKind.RELEASE, EntryKind.RELEASE]


def test_orders_shipped_before_the_count_do_not_move_it_but_later_ones_do() -> None:
    records: dict[str, StockRecord] = {}
    record = records.setdefault(SKU.casefold(), StockRecord(sku=SKU))
    record.add(manual(EntryKind.COUNT, T0, on_hand=10))
    old = order("old", 2, shipped=2, status=OrderStatus.SHIPPED, shipped_at=T0 - timedelta(days=3))
    fresh = order(
        "fresh",
        1,
        shipped=1,
        status=OrderStatus.SHIPPED,
        created=T0 + timedelta(minutes=5),
        shipped_at=T0 + timedelta(minutes=30),
    )
    count_orders(records, [old, fresh], stock_sku_of, T0 + timedelta(hours=1))
    record = records[SKU.casefold()]
    assert record.balance() == Balance(on_hand=9, allocated=0)
    # A sale and its shipment both happened between two polls: sold on Etsy, then off the shelf.
    assert [e.kind for e in record.entries] == [EntryKind.COUNT, EntryKind.SALE, EntryKind.SHIPPED]


def test_marketplace_fulfilled_and_untracked_lines_are_ignored_and_a_reclassified_line_is_released() -> None:
    records: dict[str, StockRecord] = {}
    fba = order("fba", 2, platform=Platform.AMAZON, fulfilled_by=FulfilledBy.MARKETPLACE)
    printed = order("print", 2, sku="PRT-DRAGON-S")
    assert count_orders(records, [fba, printed], stock_sku_of, T0) == set()
    assert records == {}
    count_orders(records, [order("x", 2)], stock_sku_of, T0)
    # The catalog changed: the same line is not stock any more.
    count_orders(records, [order("x", 2)], lambda _p, _i: None, T0)
    record = records[SKU.casefold()]
    assert record.allocated == 0 and record.lines == {}
    assert "no longer draws on it" in record.entries[-1].reason


def test_settled_lines_are_forgotten_after_months_and_an_old_order_polled_again_stays_old_news() -> None:
    records: dict[str, StockRecord] = {}
    record = records.setdefault(SKU.casefold(), StockRecord(sku=SKU))
    record.add(manual(EntryKind.COUNT, T0, on_hand=10))
    count_orders(
        records, [order("1", 1, created=T0 + timedelta(hours=1))], stock_sku_of, T0 + timedelta(hours=1)
    )
    done = order(
        "1",
        1,
        shipped=1,
        status=OrderStatus.SHIPPED,
        created=T0 + timedelta(hours=1),
        shipped_at=T0 + timedelta(hours=2),
    )
    count_orders(records, [done], stock_sku_of, T0 + timedelta(hours=2))
    assert records[SKU.casefold()].on_hand == 9
    later = T0 + timedelta(days=200)
    count_orders(records, [], stock_sku_of, later)
    assert records[SKU.casefold()].lines == {}
    count_orders(records, [done], stock_sku_of, later)
    assert records[SKU.casefold()].on_hand == 9


def test_sales_since_counts_sales_on_one_marketplace_and_knows_when_it_cannot() -> None:
    record = StockRecord(sku=SKU)
    records = {SKU.casefold(): record}
    count_orders(records, [order("a", 2, created=T0)], stock_sku_of, T0)
    count_orders(records, [order("b", 1, created=T0 + timedelta(hours=1))], stock_sku_of, T0)
    count_orders(
        records, [order("c", 5, platform=Platform.EBAY, created=T0 + timedelta(hours=1))], stock_sku_of, T0
    )
    record = records[SKU.casefold()]
    assert record.sales_since(Platform.ETSY, SKU.lower(), T0 - timedelta(seconds=1)) == 3
    assert record.sales_since(Platform.ETSY, SKU, T0) == 1
    record.fold(len(record.entries))
    assert record.sales_since(Platform.ETSY, SKU, T0 - timedelta(days=1)) is None


def test_an_uncounted_shelf_stays_uncounted_until_a_count() -> None:
    entries = [manual(EntryKind.ADJUST, T0, on_hand_delta=5), manual(EntryKind.SALE, T0, allocated_delta=2)]
    assert replay(entries) == Balance(on_hand=None, allocated=2)
    assert available_quantity(None, 2, 0) is None
    entries.append(manual(EntryKind.COUNT, T0, on_hand=4))
    assert replay(entries) == Balance(on_hand=4, allocated=2)
