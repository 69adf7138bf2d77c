"""Amazon end to end: the sync engine, a real store and the Amazon simulator over loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.test_amazon_support import Model, Rig, RigFactory, make_market
from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.errors import UserError
from tf_console.marketplaces.amazon import ACCESS_TOKEN_CACHE, PII_RETRY_AFTER
from tf_console.marketplaces.base import ConfirmState, PushState
from tf_console.marketplaces.http import ClientSettings
from tf_console.models import FulfilledBy, OrderStatus, Platform, PlatformState, ShipmentState
from tf_console.sandbox import IN_PROCESS_BASE_URL, Sandbox, SandboxTransport
from tf_console.sandbox.amazon import AmazonShopSimulator
from tf_console.sandbox.faults import FaultKind
from tf_console.sandbox.shopgen import GenOrder, GenStatus
from tf_console.store import Store
from tf_console.sync.engine import SyncEngine
from tf_console.sync.outbox import OutboxItem, OutboxKind, OutboxState, RetryPolicy, outbox_collection
from tf_console.sync.shipping import ShipRequest, enqueue_shipment
from tf_console.vault import TokenVault

AMAZON = Platform.AMAZON
POLICY = RetryPolicy(base_delay=1, max_delay=10, verify_wait=60, verify_reads=2, verify_interval=20)
SEARCH = "amazon.orders.search"


@pytest.fixture
def rigs() -> Iterator[RigFactory]:
    factory = RigFactory()
    yield factory
    factory.close()


@pytest.fixture
def stores(tmp_path: Path) -> Iterator[Any]:
    opened: list[Store] = []

    def open_store(clock: FakeClock) -> Store:
        store = Store.open(
            tmp_path / f"data{len(opened)}", FernetCipher(FernetCipher.generate_key()), clock=clock
        )
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()


def engine_for(rig: Rig, store: Store) -> SyncEngine:
    return SyncEngine(store, {AMAZON: rig.market}, rig.clock, retry_policy=POLICY)


def visible(rig: Rig) -> list[GenOrder]:
    """Orders Amazon returns now: changed at least two minutes ago."""
    cutoff = rig.clock.now() - timedelta(minutes=2)
    return [o for o in rig.sim.book.orders.values() if o.updated_at <= cutoff]


def status_of(order: GenOrder) -> GenStatus:
    return order.status


def shippable_order(rig: Rig, *, units: int = 1) -> GenOrder:
    return next(
        o
        for o in sorted(rig.sim.book.orders.values(), key=lambda o: o.seq)
        if o.status is GenStatus.UNSHIPPED
        and not o.fulfilled_by_marketplace
        and not o.shipments
        and sum(line.quantity for line in o.lines) >= units
    )


async def synced(rig: Rig, store: Store) -> SyncEngine:
    engine = engine_for(rig, store)
    result = await engine.poll(AMAZON, days=30)
    assert result.ok, result.error
    rig.clock.advance(180)  # let everything changed "just now" leave Amazon's 2-minute window
    result = await engine.poll(AMAZON, days=30)
    assert result.ok, result.error
    return engine


# ---------------------------------------------------------------------------
# Orders


async def test_multi_page_backfill_then_incremental_polls_without_duplicates(
    rigs: RigFactory, stores: Any
) -> None:
    rig = rigs.build(page_size=7, short_pages=0.3)
    store = stores(rig.clock)
    engine = engine_for(rig, store)
    first = await engine.poll(AMAZON, days=30)
    expected = visible(rig)
    assert first.ok, first.error
    assert first.pages >= 6 and first.inserted == len(expected) == store.orders.count()
    # Every page token carried "+", "/" and "=" and was accepted: encoded exactly once.
    assert rig.sandbox.log.count(SEARCH, status=200) == first.pages
    assert rig.sandbox.log.count(status=400) == 0
    stored = store.orders.get(AMAZON, expected[0].order_id)
    assert stored is not None and stored.total_is_proceeds

    rig.clock.advance(600)
    order = shippable_order(rig)
    rig.sim.book.ship(
        order.order_id, "USPS", "9400100000000000000000", None, rig.clock.now() - timedelta(minutes=5)
    )
    second = await engine.poll(AMAZON)
    assert second.ok
    assert store.orders.count() == len(rig.sim.book.orders)  # the late ones arrived, nothing twice
    assert second.inserted == len(rig.sim.book.orders) - len(expected)
    assert order.order_id in {key.split(":", 1)[1] for key in second.changed_keys}
    refreshed = store.orders.get(AMAZON, order.order_id)
    assert refreshed is not None and refreshed.status is OrderStatus.SHIPPED
    assert refreshed.marketplace_tracking == ["9400100000000000000000"]

    rig.clock.advance(600)
    third = await engine.poll(AMAZON)
    assert third.ok and (third.inserted, third.updated) == (0, 0) and third.pages == 1


async def test_token_expiry_mid_sync_refreshes_once_and_loses_nothing(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build(page_size=5, short_pages=0.0)
    store = stores(rig.clock)
    engine = engine_for(rig, store)
    engine.listeners.progress.append(lambda _p, page, _t: rig.sandbox.expire_tokens() if page == 2 else None)
    result = await engine.poll(AMAZON, days=30)
    assert result.ok, result.error
    assert result.inserted == len(visible(rig)) and result.pages >= 8
    assert rig.sim.tokens.refreshes == 2  # the first token, and one refresh after the 403
    assert rig.sandbox.log.count(SEARCH, status=403) == 1
    health = rig.market.client.health.snapshot()
    assert health.state is PlatformState.OK


async def test_a_revoked_authorisation_needs_reauth_and_keeps_the_cursor(
    rigs: RigFactory, stores: Any
) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    engine = engine_for(rig, store)
    assert (await engine.poll(AMAZON, days=30)).ok
    cursor = engine.pollers[AMAZON].cursor()
    rig.sim.tokens.revoke_refresh_tokens()
    rig.sandbox.expire_tokens()
    rig.clock.advance(300)
    failed = await engine.poll(AMAZON)
    assert not failed.ok and "tf-console creds set AMAZON_REFRESH_TOKEN" in failed.error
    assert engine.pollers[AMAZON].cursor() == cursor
    health = rig.market.client.health.snapshot()
    assert health.state is PlatformState.REAUTH and "AMAZON_REFRESH_TOKEN" in health.reason


async def test_throttling_outages_and_broken_answers_never_lose_orders(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build(page_size=20, short_pages=0.0)
    store = stores(rig.clock)
    engine = engine_for(rig, store)
    rig.sandbox.faults.inject(FaultKind.RATE_LIMIT, route=SEARCH, times=2)
    rig.sandbox.faults.inject(FaultKind.TRUNCATED, route=SEARCH, times=1)
    result = await engine.poll(AMAZON, days=30)
    assert result.ok and result.inserted == len(visible(rig))
    records = rig.market.client.health.records()
    assert sum(1 for r in records if r.status == 429) == 2
    assert any(r.error_code == "QuotaExceeded" and "throttling" in r.message for r in records)

    cursor = engine.pollers[AMAZON].cursor()
    rig.clock.advance(600)
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, route=SEARCH, status=503)
    down = await engine.poll(AMAZON)
    assert not down.ok and "server problem" in down.error and "ServiceUnavailable" in down.error
    assert engine.pollers[AMAZON].cursor() == cursor
    assert rig.market.client.health.snapshot().state in (PlatformState.DOWN, PlatformState.DEGRADED)
    rig.sandbox.faults.clear()

    rig.sandbox.faults.inject(FaultKind.MALFORMED, route=SEARCH, times=1)
    garbled = await engine.poll(AMAZON)
    assert not garbled.ok and "could not be read" in garbled.error
    assert engine.pollers[AMAZON].cursor() == cursor
    recovered = await engine.poll(AMAZON)
    assert recovered.ok and store.orders.count() == len(visible(rig))


# ---------------------------------------------------------------------------
# Shipments


async def test_shipment_is_confirmed_exactly_once(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    engine = await synced(rig, store)
    order = shippable_order(rig, units=2)
    item = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="UPS", tracking="1Z999AA10123456784"), rig.clock
    )
    done = await engine.sender.deliver(item.item_id)
    assert done.state is OutboxState.DONE and "accepted" in done.answer
    assert rig.confirm_posts() == 1 and len(rig.sim.confirmations) == 1
    sent = rig.sim.confirmations[0]
    assert (sent.package_reference_id, sent.carrier, sent.tracking) == ("1", "UPS", "1Z999AA10123456784")
    assert order.status is GenStatus.SHIPPED
    again = await engine.sender.deliver(item.item_id)
    assert again.state is OutboxState.DONE and rig.confirm_posts() == 1
    rig.clock.advance(180)
    assert (await engine.poll(AMAZON)).ok
    stored = store.orders.get(AMAZON, order.order_id)
    assert stored is not None and stored.status is OrderStatus.SHIPPED
    assert stored.marketplace_tracking == ["1Z999AA10123456784"]
    assert [s.state for s in stored.shipments] == [ShipmentState.CONFIRMED]


async def test_a_lost_answer_is_reconciled_from_packages_without_a_second_post(
    rigs: RigFactory, stores: Any
) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    engine = await synced(rig, store)
    order = shippable_order(rig)
    rig.sandbox.faults.inject(FaultKind.DROP_AFTER_APPLY, route="amazon.shipment.confirm", times=1)
    item = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="DHL", tracking="JD014600006281230704"), rig.clock
    )
    unknown = await engine.sender.deliver(item.item_id)
    assert unknown.state is OutboxState.VERIFYING
    local = store.orders.get(AMAZON, order.order_id)
    assert local is not None and local.shipments[0].state is ShipmentState.UNKNOWN
    rig.clock.advance(POLICY.verify_interval)
    verified = await engine.sender.deliver(item.item_id)
    assert verified.state is OutboxState.DONE
    assert rig.confirm_posts() == 1 and len(rig.sim.confirmations) == 1
    assert rig.sandbox.log.count("amazon.orders.get") >= 1  # it read packages[] back instead


async def test_a_call_that_never_arrived_is_sent_again_once(rigs: RigFactory, stores: Any) -> None:
    settings = ClientSettings(read_timeout=1.0, connect_timeout=2.0, max_retry_seconds=3600.0)
    rig = rigs.build(market_options={"settings": settings})
    store = stores(rig.clock)
    engine = await synced(rig, store)
    order = shippable_order(rig)
    # The server sits on the request without applying it, past the client's read timeout.
    rig.sandbox.faults.inject(FaultKind.TIMEOUT, route="amazon.shipment.confirm", times=1, hold=3.0)
    item = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="DHL", tracking="JD014600006281230705"), rig.clock
    )
    assert (await engine.sender.deliver(item.item_id)).state is OutboxState.VERIFYING
    for _ in range(4):
        rig.clock.advance(POLICY.verify_interval + 1)
        item = await engine.sender.deliver(item.item_id)
        if item.state is OutboxState.DONE:
            break
    assert item.state is OutboxState.DONE
    assert rig.confirm_posts() == 2 and len(rig.sim.confirmations) == 1  # one lost on the way, one applied


async def test_a_shipment_left_in_flight_by_a_dead_process_is_reconciled(
    rigs: RigFactory, stores: Any
) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    await synced(rig, store)
    order = shippable_order(rig)
    item = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="UPS", tracking="1Z999AA10123456784"), rig.clock
    )
    stored = store.orders.get(AMAZON, order.order_id)
    assert stored is not None
    # What a process killed right after Amazon applied the call leaves behind: the POST went out,
    # the outbox item still says "sending".
    result = await rig.market.confirm_shipment(stored, item.shipment)
    assert result.state is ConfirmState.CONFIRMED
    items = outbox_collection(store)
    items.update(item.item_id, lambda i: i.model_copy(update={"state": OutboxState.SENDING}))
    restarted = SyncEngine(
        store, {AMAZON: rig.new_market()}, rig.clock, retry_policy=POLICY, lease_kind="test"
    )
    assert await restarted.take_lease()
    delivered = await restarted.sender.deliver_due()
    restarted.lease.release()
    assert [i.state for i in delivered] == [OutboxState.DONE]
    assert rig.confirm_posts() == 1 and len(rig.sim.confirmations) == 1


async def test_partial_shipments_get_their_own_package_references(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    engine = await synced(rig, store)
    order = next(
        o
        for o in rig.sim.book.orders.values()
        if o.status is GenStatus.UNSHIPPED and not o.fulfilled_by_marketplace and o.lines[0].quantity >= 2
    )
    line = order.lines[0]
    first = enqueue_shipment(
        store,
        ShipRequest(AMAZON, order.order_id, carrier="DHL", tracking="JD0001", lines=[(line.line_id, 1)]),
        rig.clock,
    )
    assert (await engine.sender.deliver(first.item_id)).state is OutboxState.DONE
    assert status_of(order) is GenStatus.PARTIALLY_SHIPPED
    rest = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="DHL", tracking="JD0002"), rig.clock
    )
    assert (await engine.sender.deliver(rest.item_id)).state is OutboxState.DONE
    assert [c.package_reference_id for c in rig.sim.confirmations] == ["1", "2"]
    assert status_of(order) is GenStatus.SHIPPED and line.quantity_shipped == line.quantity


async def test_fba_orders_stay_out_of_the_ship_flow(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build(sim_options={"fba_share": 0.4})
    store = stores(rig.clock)
    await synced(rig, store)
    fba = [o for o in store.orders.iter_all() if o.fulfilled_by is FulfilledBy.MARKETPLACE]
    assert fba and not any(o.shippable for o in fba)
    open_fba = next((o for o in fba if o.status is OrderStatus.UNSHIPPED), fba[0])
    with pytest.raises(UserError, match="fulfilled by Amazon"):
        enqueue_shipment(
            store,
            ShipRequest(AMAZON, open_fba.order_id, carrier="UPS", tracking="1Z999AA10123456784"),
            rig.clock,
        )
    # Even asked directly, the platform sends nothing for an FBA order.
    answer = await rig.market.confirm_shipment(open_fba, _any_shipment())
    assert answer.state is ConfirmState.REJECTED and rig.confirm_posts() == 0


def _any_shipment() -> Any:
    from datetime import UTC, datetime

    from tf_console.models import Shipment, ShipmentLine

    return Shipment(
        shipment_id="1",
        carrier="UPS",
        tracking="1Z999AA10123456784",
        shipped_at=datetime(2026, 11, 2, 12, tzinfo=UTC),
        lines=[ShipmentLine(line_id="1", quantity=1)],
    )


async def test_amazon_refusal_is_kept_with_its_words(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    engine = await synced(rig, store)
    order = shippable_order(rig)
    item = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="DHL", tracking="JD0003"), rig.clock
    )
    rig.sim.book.cancel(order.order_id, rig.clock.now())  # cancelled on Amazon since our last poll
    rejected = await engine.sender.deliver(item.item_id)
    assert rejected.state is OutboxState.REJECTED
    assert "was cancelled" in rejected.answer and "request id" in rejected.answer
    stored = store.orders.get(AMAZON, order.order_id)
    assert stored is not None and stored.shipments[0].state is ShipmentState.REJECTED
    assert rig.sim.confirmations == []


# ---------------------------------------------------------------------------
# Inventory


async def test_stock_push_is_queued_then_read_back_and_keeps_the_lead_time(
    rigs: RigFactory, stores: Any
) -> None:
    rig = rigs.build()
    market = rig.market
    pushed = await market.set_quantity("PRT-DRAGON-S", 7)
    assert pushed.state is PushState.QUEUED
    ((sku, body),) = rig.sim.listing_patches
    assert sku == "PRT-DRAGON-S"
    assert Model.load("listingsItems_2021-08-01.json").check(body, "ListingsItemPatchRequest") == []
    assert body["productType"] == "TOY_FIGURE"
    assert body["patches"] == [
        {
            "op": "replace",
            "path": "/attributes/fulfillment_availability",
            "value": [
                {"fulfillment_channel_code": "DEFAULT", "quantity": 7, "lead_time_to_ship_max_days": 3}
            ],
        }
    ]
    assert (await market.confirm_quantity("PRT-DRAGON-S", 7)).state is PushState.QUEUED
    rig.clock.advance(rig.sim.listing_delay.total_seconds() + 1)
    assert (await market.confirm_quantity("PRT-DRAGON-S", 7)).state is PushState.APPLIED
    assert (
        rig.sim.listings["PRT-DRAGON-S"].attributes["fulfillment_availability"] == body["patches"][0]["value"]
    )
    # The product type is learnt once and cached; the read-backs ask fresh.
    assert (await market.set_quantity("PRT-DRAGON-S", 6)).state is PushState.QUEUED
    assert rig.sandbox.log.count("amazon.listings.get") == 3
    fba = await market.set_quantity("STK-NOZZLE-04", 3)
    unknown = await market.set_quantity("NO-SUCH-SKU", 3)
    assert fba.state is PushState.SKIPPED and "FBA" in fba.answer
    assert unknown.state is PushState.SKIPPED and "No Amazon listing" in unknown.answer
    assert rig.sandbox.log.count("amazon.listings.patch") == 2  # never for FBA or unknown SKUs


async def test_stock_push_through_the_outbox(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build()
    store = stores(rig.clock)
    engine = engine_for(rig, store)
    now = rig.clock.now()
    item = OutboxItem(
        item_id="stock:amazon:PRT-PLANTER-M",
        kind=OutboxKind.INVENTORY,
        platform=AMAZON,
        sku="PRT-PLANTER-M",
        payload={"quantity": 11},
        created_at=now,
        updated_at=now,
        next_attempt_at=now,
    )
    outbox_collection(store).put(item)
    done = await engine.sender.deliver(item.item_id)
    assert done.state is OutboxState.DONE and done.payload["push_state"] == "queued"


async def test_fba_stock_is_read_across_pages_and_a_stale_token_restarts() -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=3)
    sim = AmazonShopSimulator(sandbox, orders_per_hour=0.0, backfill=5, inventory_page_size=1)
    sandbox.add(sim)

    class Stalling(SandboxTransport):
        """Lets 31 s pass after the first page (the nextToken lives 30 s)."""

        stalled = False

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            response = await super().handle_async_request(request)
            if request.url.path.endswith("/summaries") and not self.stalled:
                self.stalled = True
                clock.advance(31)
            return response

    market = make_market(IN_PROCESS_BASE_URL, clock, transport=Stalling(sandbox, sleep=clock.sleep))
    try:
        stock = await market.fba_stock()
    finally:
        await market.aclose()
    assert set(stock) == set(sim.fba)
    level = sim.fba["STK-PEI-SHEET"]
    got = stock["STK-PEI-SHEET"]
    assert (got.fulfillable, got.reserved, got.total) == (level.fulfillable, level.reserved, level.total)
    assert sandbox.log.count("amazon.inventory.summaries", status=400) == 1
    assert sandbox.log.count("amazon.inventory.summaries", status=200) == 1 + len(sim.fba)


# ---------------------------------------------------------------------------
# Restricted data, credentials, the token cache


async def test_refused_restricted_data_carries_on_without_pii(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build(sim_options={"pii": "refused"})
    store = stores(rig.clock)
    engine = engine_for(rig, store)
    result = await engine.poll(AMAZON, days=30)
    assert result.ok and result.inserted == len(visible(rig))
    assert all(o.buyer is None or not o.buyer.name for o in store.orders.iter_all())
    note = rig.market.pii_note
    assert "Direct-to-Consumer Shipping role" in note
    warnings = [r for r in rig.market.client.health.records() if r.kind == "warning"]
    assert [w.message for w in warnings] == [note]
    assert rig.market.client.health.snapshot().state is not PlatformState.REAUTH
    check = await rig.market.check_credentials()
    assert check.ok and check.details["restricted_data"] == note
    refusals = rig.sandbox.log.count(SEARCH, status=403)
    rig.clock.advance(600)
    assert (await engine.poll(AMAZON)).ok
    assert rig.sandbox.log.count(SEARCH, status=403) == refusals  # not asked again for a while
    rig.clock.advance(PII_RETRY_AFTER.total_seconds())
    assert (await engine.poll(AMAZON)).ok
    assert rig.sandbox.log.count(SEARCH, status=403) > refusals


async def test_withheld_addresses_are_reported(rigs: RigFactory, stores: Any) -> None:
    rig = rigs.build(sim_options={"pii": "absent"})
    store = stores(rig.clock)
    assert (await engine_for(rig, store).poll(AMAZON, days=30)).ok
    note = rig.market.pii_note
    assert "without the delivery address" in note
    # Said once, however many pages and re-checks repeated it.
    assert [r.message for r in rig.market.client.health.records() if r.kind == "warning"] == [note]


async def test_check_credentials_sentences(rigs: RigFactory) -> None:
    rig = rigs.build()
    good = await rig.market.check_credentials()
    assert (
        good.ok and good.sentence == "Amazon credentials work (seller A2TF…, marketplace US (ATVPDKIKX0DER))."
    )
    wrong_marketplace = await rig.new_market(marketplace_ids=["A1F83G8C2ARO7P"]).check_credentials()
    assert not wrong_marketplace.ok and "AMAZON_MARKETPLACE_IDS" in wrong_marketplace.sentence
    bad_secret = await rig.new_market(client_secret="rotated-away").check_credentials()
    assert not bad_secret.ok and "tf-console creds set AMAZON_CLIENT_SECRET" in bad_secret.sentence
    assert "rotated-away" not in bad_secret.sentence


async def test_access_token_is_cached_in_the_vault_per_refresh_token(
    rigs: RigFactory, tmp_path: Path
) -> None:
    from tf_console.marketplaces.amazon import AccessTokenCache

    rig = rigs.build()
    vault = TokenVault(tmp_path / "tokens.enc", FernetCipher(FernetCipher.generate_key()), clock=rig.clock)
    cache = AccessTokenCache(vault, "Atzr|tf-sandbox-refresh-0000")
    assert "Atzr" not in repr(cache)
    first = rig.new_market(token_cache=cache)
    assert (await first.check_credentials()).ok
    entry = vault.entry(ACCESS_TOKEN_CACHE)
    assert entry is not None and entry.value.get_secret_value().startswith("Atza|")
    assert entry.expires_at == rig.clock.now() + timedelta(seconds=3600)
    await first.aclose()
    second = rig.new_market(token_cache=cache)
    await second.fetch_orders_by_id([next(iter(rig.sim.book.orders))])
    assert rig.sim.tokens.refreshes == 1  # the second process reused the cached token
    # A different refresh token (the owner re-authorised) never uses the old access token.
    other = AccessTokenCache(vault, "Atzr|another-authorisation")
    assert other.load(rig.clock.now()) is None
    rig.clock.advance(3600)
    assert cache.load(rig.clock.now()) is None  # expired


# ---------------------------------------------------------------------------
# What the cross-process crash harness relies on, and rate-limit learning


async def test_a_slow_answer_after_the_confirmation_was_applied(rigs: RigFactory, stores: Any) -> None:
    settings = ClientSettings(read_timeout=1.0, connect_timeout=2.0, max_retry_seconds=3600.0)
    rig = rigs.build(market_options={"settings": settings})
    store = stores(rig.clock)
    engine = await synced(rig, store)
    order = shippable_order(rig)
    rig.sandbox.faults.inject(FaultKind.SLOW, route="amazon.shipment.confirm", times=1, delay=3.0)
    item = enqueue_shipment(
        store, ShipRequest(AMAZON, order.order_id, carrier="DHL", tracking="JD0004"), rig.clock
    )
    # The confirmation is applied before the answer is held back: a client killed (or timing out)
    # now must find it by reading the order, never by sending it again.
    assert (await engine.sender.deliver(item.item_id)).state is OutboxState.VERIFYING
    assert [c.tracking for c in rig.sim.confirmations] == ["JD0004"]
    assert rig.sandbox.log.count("amazon.shipment.confirm", applied_only=True) == 1
    rig.clock.advance(POLICY.verify_interval)
    assert (await engine.sender.deliver(item.item_id)).state is OutboxState.DONE
    assert rig.confirm_posts() == 1


async def test_the_usage_plan_amazon_announces_replaces_the_published_one(rigs: RigFactory) -> None:
    rig = rigs.build()
    rig.sandbox.rate_scale = 3.0  # this seller's plan: three times the default
    await rig.market.fetch_orders_by_id([next(iter(rig.sim.book.orders))])
    async for _page in rig.market.fetch_orders(rig.clock.now() - timedelta(hours=1)):
        pass
    buckets = rig.market.client.limiter.state()["buckets"]
    assert buckets["orders.search"]["learned"] and buckets["orders.search"]["rate"] == pytest.approx(0.0168)
    assert buckets["orders.get"]["rate"] == pytest.approx(1.5)
