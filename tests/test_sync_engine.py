"""Sync engine against an in-memory marketplace: cursors, overlap, re-checks, outbox, lease."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.sync_fakes import FakeMarket, make_order
from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.errors import UserError
from tf_console.marketplaces.base import TransientError
from tf_console.models import FulfilledBy, OrderStatus, Platform, ShipmentState
from tf_console.store import Store
from tf_console.sync.engine import SyncEngine
from tf_console.sync.lease import current_holder
from tf_console.sync.outbox import OutboxState, RetryPolicy, outbox_collection
from tf_console.sync.poller import merge_remote
from tf_console.sync.shipping import AlreadyShipped, ShipRequest, enqueue_shipment

UPS_OK = "1Z999AA10123456784"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    s = Store.open(tmp_path / "data", FernetCipher(FernetCipher.generate_key()), clock=clock)
    yield s
    s.close()


@pytest.fixture
def market(clock: FakeClock) -> FakeMarket:
    m = FakeMarket(clock)
    for n in range(7):
        m.add(make_order(n, clock.now() - timedelta(hours=10 - n)))
    return m


def engine_for(store: Store, market: FakeMarket, clock: FakeClock, **kw: object) -> SyncEngine:
    policy = RetryPolicy(base_delay=1, max_delay=10, verify_wait=60, verify_reads=2, verify_interval=20)
    return SyncEngine(store, {Platform.TEST: market}, clock, retry_policy=policy, **kw)  # type: ignore[arg-type]


async def test_backfill_then_overlap_polls_never_duplicate(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = engine_for(store, market, clock)
    first = await engine.poll(Platform.TEST, days=7)
    assert first.ok and first.inserted == 7 and first.pages == 3
    clock.advance(60)
    again = await engine.poll(Platform.TEST)
    assert again.ok and again.inserted == 0 and again.updated == 0
    assert store.orders.count() == 7
    # The cursor is the high-water mark of what was stored, and polls reach back an overlap.
    cursor = engine.pollers[Platform.TEST].cursor()
    assert cursor == max(o.updated_at for o in market.orders.values())
    last_fetch = [r for r in market.requests if r.startswith("fetch since=")][-1]
    assert last_fetch == f"fetch since={(cursor - timedelta(minutes=2)).isoformat()}"


async def test_idle_poll_costs_one_request(store: Store, market: FakeMarket, clock: FakeClock) -> None:
    engine = engine_for(store, market, clock)
    await engine.poll(Platform.TEST)
    clock.advance(30)
    market.orders.clear()
    market.requests.clear()
    await engine.poll(Platform.TEST)
    assert market.requests == [market.requests[0]] and market.requests[0].startswith("fetch since=")


async def test_cursor_not_moved_when_poll_fails(store: Store, market: FakeMarket, clock: FakeClock) -> None:
    engine = engine_for(store, market, clock)
    market.fail_fetch = TransientError("Test marketplace answered 503; retry later.")
    result = await engine.poll(Platform.TEST)
    assert not result.ok and "503" in result.error
    assert engine.pollers[Platform.TEST].cursor() is None
    assert store.orders.count() == 0


async def test_recheck_catches_cancellation_the_filter_missed(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = engine_for(store, market, clock)
    await engine.poll(Platform.TEST)
    market.update("T-00002", hidden=True, status=OrderStatus.CANCELLED)
    clock.advance(120)
    quick = await engine.poll(Platform.TEST)  # re-check not due yet (hourly)
    assert quick.rechecked == 0
    assert store.orders.get(Platform.TEST, "T-00002").status is OrderStatus.UNSHIPPED  # type: ignore[union-attr]
    clock.advance(3600)
    due = await engine.poll(Platform.TEST)
    assert due.rechecked >= 1
    assert store.orders.get(Platform.TEST, "T-00002").status is OrderStatus.CANCELLED  # type: ignore[union-attr]


async def test_one_platform_failing_never_loses_the_others(store: Store, clock: FakeClock) -> None:
    good = FakeMarket(clock)
    good.add(make_order(1, clock.now()))
    bad = FakeMarket(clock)
    bad.platform = Platform.ETSY  # type: ignore[misc]
    bad.fail_fetch = RuntimeError("parser bug")
    engine = SyncEngine(store, {Platform.TEST: good, Platform.ETSY: bad}, clock)  # type: ignore[dict-item]
    results = {r.platform: r for r in await engine.poll_all()}
    assert results[Platform.TEST].ok and results[Platform.TEST].inserted == 1
    assert not results[Platform.ETSY].ok and "RuntimeError" in results[Platform.ETSY].error


# ---------------------------------------------------------------- shipping


async def _synced(store: Store, market: FakeMarket, clock: FakeClock) -> SyncEngine:
    engine = engine_for(store, market, clock)
    await engine.poll(Platform.TEST)
    return engine


def _ship(store: Store, clock: FakeClock, order_id: str = "T-00001", tracking: str = UPS_OK, **kw: object):  # type: ignore[no-untyped-def]
    return enqueue_shipment(store, ShipRequest(Platform.TEST, order_id, "UPS", tracking, **kw), clock)  # type: ignore[arg-type]


async def test_ship_confirms_and_marks_order_shipped_at_once(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    order = store.orders.get(Platform.TEST, "T-00001")
    assert order is not None and order.shipments[0].state is ShipmentState.REQUESTED
    done = await engine.sender.deliver(item.item_id)
    assert done.state is OutboxState.DONE
    order = store.orders.get(Platform.TEST, "T-00001")
    assert order is not None and order.status is OrderStatus.SHIPPED
    assert order.shipments[0].state is ShipmentState.CONFIRMED
    assert market.confirm_calls == [("T-00001", UPS_OK)]
    # A re-poll before the marketplace's own update does not undo it, and shipping again sends nothing.
    with pytest.raises(AlreadyShipped):
        _ship(store, clock)
    await engine.poll(Platform.TEST)
    assert store.orders.get(Platform.TEST, "T-00001").status is OrderStatus.SHIPPED  # type: ignore[union-attr]
    assert market.confirm_calls == [("T-00001", UPS_OK)]


async def test_bad_input_writes_nothing(store: Store, market: FakeMarket, clock: FakeClock) -> None:
    await _synced(store, market, clock)
    before = store.orders.get(Platform.TEST, "T-00001")
    cases = [
        dict(order_id="NOPE"),
        dict(tracking=""),
        dict(tracking="1Z999AA10123456785"),  # wrong check digit
        dict(tracking="bad\x07track"),
        dict(lines=[("L1-1", 5)]),
        dict(lines=[("nope", None)]),
    ]
    for case in cases:
        with pytest.raises(UserError):
            _ship(store, clock, **case)
    assert outbox_collection(store).all() == []
    assert store.orders.get(Platform.TEST, "T-00001") == before
    # --force accepts a number that fails its check digit (but never an empty one).
    item = _ship(store, clock, tracking="1Z999AA10123456785", force=True)
    assert item.state is OutboxState.PENDING


async def test_fba_and_cancelled_orders_are_refused(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    market.update("T-00001", fulfilled_by=FulfilledBy.MARKETPLACE)
    market.update("T-00002", status=OrderStatus.CANCELLED)
    await _synced(store, market, clock)
    with pytest.raises(UserError, match="FBA"):
        _ship(store, clock, "T-00001")
    with pytest.raises(UserError, match="cancelled"):
        _ship(store, clock, "T-00002")


async def test_partial_shipment_then_rest(store: Store, clock: FakeClock) -> None:
    market = FakeMarket(clock)
    market.add(make_order(1, clock.now(), qty=3))
    engine = await _synced(store, market, clock)
    item = _ship(store, clock, lines=[("L1-1", 2)])
    await engine.sender.deliver(item.item_id)
    order = store.orders.get(Platform.TEST, "T-00001")
    assert order is not None and order.status is OrderStatus.PARTIALLY_SHIPPED
    assert order.items[0].quantity_shipped == 2
    with pytest.raises(AlreadyShipped):
        _ship(store, clock)  # same tracking number again
    rest = _ship(store, clock, tracking="1Z12345E0205271686")
    assert rest.shipment.lines[0].quantity == 1
    await engine.sender.deliver(rest.item_id)
    order = store.orders.get(Platform.TEST, "T-00001")
    assert order is not None and order.status is OrderStatus.SHIPPED
    assert [s.shipment_id for s in order.shipments] == ["1", "2"]


async def test_lost_answer_is_verified_not_resent(store: Store, market: FakeMarket, clock: FakeClock) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    market.confirm_behaviour = "lose-answer"
    after = await engine.sender.deliver(item.item_id)
    assert after.state is OutboxState.VERIFYING
    assert store.orders.get(Platform.TEST, "T-00001").shipments[0].state is ShipmentState.UNKNOWN  # type: ignore[union-attr]
    clock.advance(30)
    final = await engine.sender.deliver(item.item_id)
    assert final.state is OutboxState.DONE
    assert len(market.confirm_calls) == 1


async def test_crash_mid_call_resends_only_after_reading_back(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    # Simulate a process that wrote "sending" and died before the request left.
    outbox = outbox_collection(store)
    outbox.update(item.item_id, lambda i: i.model_copy(update={"state": OutboxState.SENDING, "attempts": 1}))
    assert await engine.sender.recover() == 1
    first = await engine.sender.deliver(item.item_id)
    assert first.state is OutboxState.VERIFYING and market.confirm_calls == []
    clock.advance(25)
    second = await engine.sender.deliver(item.item_id)
    assert second.state is OutboxState.VERIFYING and market.confirm_calls == []
    clock.advance(60)
    third = await engine.sender.deliver(item.item_id)
    assert third.state is OutboxState.DONE
    assert market.confirm_calls == [("T-00001", UPS_OK)]


async def test_shipped_elsewhere_is_not_sent_again(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    outbox_collection(store).update(
        item.item_id, lambda i: i.model_copy(update={"state": OutboxState.SENDING})
    )
    market.update("T-00001", status=OrderStatus.SHIPPED, marketplace_tracking=["9400100000000000000000"])
    await engine.sender.recover()
    final = await engine.sender.deliver(item.item_id)
    assert final.state is OutboxState.REJECTED and "9400100000000000000000" in final.answer
    assert market.confirm_calls == []


async def test_transient_failure_retries_with_backoff(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    market.confirm_behaviour = "transient"
    after = await engine.sender.deliver(item.item_id)
    assert after.state is OutboxState.PENDING and after.next_attempt_at > clock.now()
    assert engine.sender.due() == []
    market.confirm_behaviour = "ok"
    clock.advance(20)
    assert [i.item_id for i in engine.sender.due()] == [item.item_id]
    delivered = await engine.sender.deliver_due()
    assert delivered[0].state is OutboxState.DONE


async def test_rejection_is_kept_with_the_answer(store: Store, market: FakeMarket, clock: FakeClock) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    market.confirm_behaviour = "reject"
    after = await engine.sender.deliver(item.item_id)
    assert after.state is OutboxState.REJECTED and "tracking number is required" in after.answer
    order = store.orders.get(Platform.TEST, "T-00001")
    assert order is not None and order.shipments[0].state is ShipmentState.REJECTED
    assert order.status is OrderStatus.UNSHIPPED
    # A rejected shipment can be fixed by shipping again with new details.
    fixed = _ship(store, clock, tracking="1Z12345E0205271686", force=True)
    assert fixed.item_id != item.item_id


async def test_accepted_but_not_visible_is_never_resent(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    market.confirm_behaviour = "accepted"
    market.visible_after_reads = 3
    state = await engine.sender.deliver(item.item_id)
    for _ in range(5):
        clock.advance(30)
        state = await engine.sender.deliver(item.item_id)
    assert state.state is OutboxState.DONE
    assert len(market.confirm_calls) == 1


async def test_cancelled_before_delivery_is_not_sent(
    store: Store, market: FakeMarket, clock: FakeClock
) -> None:
    engine = await _synced(store, market, clock)
    item = _ship(store, clock)
    market.update("T-00001", status=OrderStatus.CANCELLED)
    clock.advance(10)
    await engine.poll(Platform.TEST)
    after = await engine.sender.deliver(item.item_id)
    assert after.state is OutboxState.REJECTED and market.confirm_calls == []


def test_merge_keeps_local_knowledge(clock: FakeClock) -> None:
    base = make_order(1, clock.now())
    assert merge_remote(base, base) is None
    incoming = base.model_copy(update={"status": OrderStatus.CANCELLED})
    merged = merge_remote(base, incoming)
    assert merged is not None and merged.status is OrderStatus.CANCELLED
    redacted = base.model_copy(update={"buyer": None, "pii_redacted": True})
    again = merge_remote(redacted, base)
    assert again is not None and again.buyer is None and again.pii_redacted


async def test_only_one_process_polls(store: Store, market: FakeMarket, clock: FakeClock) -> None:
    first = engine_for(store, market, clock)
    second = engine_for(store, market, clock)
    assert first.lease.try_acquire()
    assert not second.lease.try_acquire()
    holder = current_holder(store.data_dir)
    assert holder is not None and holder.kind == "console"
    first.lease.release()
    assert current_holder(store.data_dir) is None
    assert second.lease.try_acquire()
    second.lease.release()


async def test_integration_service_reads_every_platform_and_survives_one_failing(clock: FakeClock) -> None:
    from tf_console.sync.service import MarketplaceIntegrationService

    good = FakeMarket(clock)
    for n in range(4):
        good.add(make_order(n, clock.now() - timedelta(days=n)))
    good.add(make_order(9, clock.now() - timedelta(days=20)))  # older than the window
    bad = FakeMarket(clock)
    bad.platform = Platform.EBAY  # type: ignore[misc]
    bad.fail_fetch = TransientError("eBay answered 503; try again later.")
    service = MarketplaceIntegrationService({Platform.TEST: good, Platform.EBAY: bad}, clock)  # type: ignore[dict-item]
    orders = await service.get_all_orders(days=7)
    assert [o.order_id for o in orders] == ["T-00000", "T-00001", "T-00002", "T-00003"]  # newest first
    assert service.errors == {Platform.EBAY: "eBay answered 503; try again later."}
