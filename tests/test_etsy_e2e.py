"""Etsy end to end over loopback HTTP: sync engine + real store + the Etsy simulator.

Backfill past 100 receipts, incremental re-polls without duplicates, exact totals,
token expiry mid-sync with rotating refresh tokens (also across a fresh runtime and
a new process), shipments exactly once (lost answers reconciled by reading back),
refusals, the issue's bad-input and fault list, and inventory pushes that keep
every variation.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.marketplaces.auth import TokenGrant
from tf_console.marketplaces.base import (
    ConfirmState,
    OutcomeUnknown,
    PermanentError,
    PushState,
    TransientError,
)
from tf_console.marketplaces.etsy import (
    REFRESH_VARIABLE,
    SECRET_VARIABLE,
    EtsyMarketplace,
    create_etsy_marketplace,
)
from tf_console.marketplaces.http import ClientSettings
from tf_console.models import OrderStatus, Platform, PlatformState, Shipment, ShipmentState
from tf_console.runtime import Runtime
from tf_console.sandbox import IN_PROCESS_BASE_URL, LoopbackServer, Sandbox, SandboxTransport
from tf_console.sandbox.etsy import (
    DEMO_CLIENT_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    DEMO_SHOP_ID,
    DEMO_USER_ID,
    ROUTE_INVENTORY_GET,
    ROUTE_LISTINGS,
    ROUTE_RECEIPTS,
    ROUTE_TRACKING,
    SIZED_EXTRA_SKU,
    SIZED_PRODUCT,
    TOKEN_PATH,
    EtsySimulator,
)
from tf_console.sandbox.shopgen import GenStatus
from tf_console.store import Store
from tf_console.sync.engine import SyncEngine
from tf_console.sync.outbox import OutboxState, RetryPolicy
from tf_console.sync.shipping import ShipRequest, enqueue_shipment

UPS_OK = "1Z999AA10123456784"
UPS_OTHER = "1Z12345E0205271686"
ETSY = Platform.ETSY


@dataclass
class Rig:
    clock: FakeClock
    sandbox: Sandbox
    sim: EtsySimulator
    server: LoopbackServer
    market: EtsyMarketplace
    store: Store
    engine: SyncEngine
    grants: list[TokenGrant] = field(default_factory=list)

    def receipt_ids(self, status: GenStatus) -> list[str]:
        return sorted(i for i, o in self.sim.book.orders.items() if o.status is status)


def _market(
    base_url: str,
    clock: FakeClock,
    grants: list[TokenGrant],
    *,
    shared_secret: str = DEMO_SHARED_SECRET,
    refresh_token: str = DEMO_REFRESH_TOKEN,
    access: TokenGrant | None = None,
    shop_id: str | None = None,
) -> EtsyMarketplace:
    return create_etsy_marketplace(
        base_url=base_url,
        oauth_url=base_url + TOKEN_PATH,
        client_id=DEMO_CLIENT_ID,
        shared_secret=shared_secret,
        refresh_token=refresh_token,
        access_token=access,
        shop_id=shop_id,
        clock=clock,
        rng=random.Random(5),
        settings=ClientSettings(read_timeout=3.0, connect_timeout=3.0),
        on_rotate=grants.append,
    )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=21, short_page_probability=0.3)
    sim = EtsySimulator(sandbox, backfill=250, orders_per_hour=0)
    sandbox.add(sim)
    server = LoopbackServer(sandbox).start()
    grants: list[TokenGrant] = []
    market = _market(server.base_url, clock, grants)
    store = Store.open(tmp_path / "data", FernetCipher(FernetCipher.generate_key()), clock=clock)
    policy = RetryPolicy(base_delay=1, max_delay=10, verify_wait=60, verify_reads=2, verify_interval=20)
    engine = SyncEngine(store, {ETSY: market}, clock, retry_policy=policy)
    try:
        yield Rig(clock, sandbox, sim, server, market, store, engine, grants)
    finally:
        await market.aclose()
        store.close()
        server.stop()


# ---------------------------------------------------------------- receipts


async def test_backfill_past_100_then_incremental_polls_without_duplicates(rig: Rig) -> None:
    first = await rig.engine.poll(ETSY, days=8)
    assert first.ok, first.error
    assert first.inserted == 250 and first.pages >= 3 and first.errors == []
    assert rig.store.orders.count() == 250
    # Exact totals and per-unit prices against the simulated shop's own numbers.
    for order in rig.store.orders.iter_all():
        gen = rig.sim.book.orders[order.order_id]
        assert order.total is not None and order.total.amount == gen.total and order.currency == "USD"
        assert [(i.line_id, i.quantity) for i in order.items] == [(g.line_id, g.quantity) for g in gen.lines]
        for item, line in zip(order.items, gen.lines, strict=True):
            assert item.unit_price is not None and item.unit_price.amount == line.unit_price
    assert any(i.quantity > 1 for o in rig.store.orders.iter_all() for i in o.items)
    assert any(i.sku == "" for o in rig.store.orders.iter_all() for i in o.items)
    assert rig.market.shop_id == str(DEMO_SHOP_ID) and rig.market.shop_id_source == "users/me"

    rig.clock.advance(120)
    calls = rig.sandbox.log.count(ROUTE_RECEIPTS)
    again = await rig.engine.poll(ETSY)
    assert again.ok and again.inserted == 0 and again.updated == 0
    assert rig.sandbox.log.count(ROUTE_RECEIPTS) == calls + 1  # overlap re-read: one small page

    rig.clock.advance(300)
    new = rig.sim.book.add(rig.sim.generator.order(rig.clock.now()))
    victim = rig.receipt_ids(GenStatus.UNSHIPPED)[0]
    rig.sim.book.cancel(victim, rig.clock.now())
    rig.clock.advance(60)
    third = await rig.engine.poll(ETSY)
    assert third.ok and third.inserted == 1 and third.updated == 1
    assert rig.store.orders.count() == 251 == len(rig.sim.book.orders)
    cancelled = rig.store.orders.get(ETSY, victim)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert rig.store.orders.get(ETSY, new.order_id) is not None


async def test_zero_decimal_shop_totals_are_exact(tmp_path: Path) -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=4)
    sim = EtsySimulator(sandbox, backfill=30, orders_per_hour=0, shop_currency="JPY")
    sandbox.add(sim)
    with LoopbackServer(sandbox) as server:
        market = _market(server.base_url, clock, [], shop_id=str(DEMO_SHOP_ID))
        try:
            orders = [
                o async for page in market.fetch_orders(clock.now() - timedelta(days=8)) for o in page.orders
            ]
        finally:
            await market.aclose()
    assert len(orders) == 30
    for order in orders:
        gen = sim.book.orders[order.order_id]
        assert order.total is not None and order.total.currency == "JPY"
        assert (
            order.total.amount == gen.total and order.total.amount == order.total.amount.to_integral_value()
        )
        subtotal = sum((i.unit_price.amount * i.quantity for i in order.items if i.unit_price), Decimal(0))
        assert subtotal == gen.subtotal
    assert any(i.quantity > 1 for o in orders for i in o.items)


async def test_token_expiry_mid_sync_refreshes_and_rotates(rig: Rig) -> None:
    pages = 0
    seen: set[str] = set()
    async for page in rig.market.fetch_orders(rig.clock.now() - timedelta(days=8)):
        pages += 1
        seen.update(o.order_id for o in page.orders)
        if pages == 1:
            rig.sandbox.expire_tokens()
    assert len(seen) == 250 and pages >= 3
    assert rig.sim.tokens.refreshes == 2 and len(rig.grants) == 2
    rotated = [g.refresh_token for g in rig.grants]
    assert all(rotated) and len(set(rotated)) == 2 and DEMO_REFRESH_TOKEN not in rotated
    assert rig.sim.tokens.current_refresh_tokens == {rotated[-1]}
    assert all(g.access_token.startswith(f"{DEMO_USER_ID}.") for g in rig.grants)
    assert rig.market.client.health.snapshot().token_expires_at == rig.grants[-1].expires_at


# ---------------------------------------------------------------- shipments


async def _synced(rig: Rig) -> None:
    result = await rig.engine.poll(ETSY, days=8)
    assert result.ok, result.error


def _ship(rig: Rig, order_id: str, carrier: str = "ups", tracking: str = UPS_OK, **kw: Any) -> Any:
    return enqueue_shipment(rig.store, ShipRequest(ETSY, order_id, carrier, tracking, **kw), rig.clock)


async def test_shipment_is_confirmed_once_from_the_returned_receipt(rig: Rig) -> None:
    await _synced(rig)
    target = rig.receipt_ids(GenStatus.UNSHIPPED)[0]
    item = _ship(rig, target)
    done = await rig.engine.sender.deliver(item.item_id)
    assert done.state is OutboxState.DONE and "Etsy shows tracking" in done.answer
    assert rig.sim.tracking_calls == 1 and rig.sim.buyer_emails == [(target, UPS_OK)]
    sent = rig.sim.tracking_requests[-1]
    assert sent.content_type == "application/json" and sent.fields == {
        "tracking_code": UPS_OK,
        "carrier_name": "ups",
    }
    order = rig.store.orders.get(ETSY, target)
    assert order is not None and order.status is OrderStatus.SHIPPED
    assert order.shipments[0].state is ShipmentState.CONFIRMED
    rig.clock.advance(60)
    after = await rig.engine.poll(ETSY)
    assert after.ok and after.updated == 1  # Etsy bumped the receipt's last-modified time
    order = rig.store.orders.get(ETSY, target)
    assert (
        order is not None and order.marketplace_tracking == [UPS_OK] and order.status is OrderStatus.SHIPPED
    )
    again = await rig.engine.sender.deliver(item.item_id)  # a finished item is never sent again
    assert again.state is OutboxState.DONE and rig.sim.tracking_calls == 1


async def test_lost_answer_is_reconciled_by_reading_back_never_resent(rig: Rig) -> None:
    await _synced(rig)
    target = rig.receipt_ids(GenStatus.UNSHIPPED)[1]
    rig.sandbox.faults.inject("drop-after-apply", route=ROUTE_TRACKING, times=1)
    item = _ship(rig, target)
    unknown = await rig.engine.sender.deliver(item.item_id)
    assert unknown.state is OutboxState.VERIFYING
    assert rig.sim.tracking_calls == 1 and len(rig.sim.buyer_emails) == 1
    rig.clock.advance(30)
    final = await rig.engine.sender.deliver(item.item_id)
    assert final.state is OutboxState.DONE
    assert rig.sim.tracking_calls == 1 and rig.sim.buyer_emails == [(target, UPS_OK)]
    order = rig.store.orders.get(ETSY, target)
    assert order is not None and order.shipments[0].state is ShipmentState.CONFIRMED


async def test_a_5xx_that_did_not_apply_is_verified_then_sent_exactly_once(rig: Rig) -> None:
    await _synced(rig)
    target = rig.receipt_ids(GenStatus.UNSHIPPED)[2]
    rig.sandbox.faults.inject("5xx", route=ROUTE_TRACKING, times=1, status=502)
    item = _ship(rig, target)
    first = await rig.engine.sender.deliver(item.item_id)
    assert first.state is OutboxState.VERIFYING and rig.sim.buyer_emails == []
    states = []
    for _ in range(6):  # read back until the wait is over, then (and only then) send again
        rig.clock.advance(30)
        states.append((await rig.engine.sender.deliver(item.item_id)).state)
    assert OutboxState.VERIFYING in states and states[-1] is OutboxState.DONE
    assert rig.sim.buyer_emails == [(target, UPS_OK)]
    assert rig.sandbox.log.count(ROUTE_TRACKING, applied_only=True) == 1


async def test_an_answer_delayed_after_applying_is_reconciled_and_counted(rig: Rig) -> None:
    """What the cross-process kill test relies on: a confirmation applied, then its answer held back."""
    await _synced(rig)
    target = rig.receipt_ids(GenStatus.UNSHIPPED)[5]
    impatient = create_etsy_marketplace(
        base_url=rig.server.base_url,
        oauth_url=rig.server.base_url + TOKEN_PATH,
        client_id=DEMO_CLIENT_ID,
        shared_secret=DEMO_SHARED_SECRET,
        refresh_token=rig.grants[-1].refresh_token or "",
        shop_id=str(DEMO_SHOP_ID),
        clock=rig.clock,
        rng=random.Random(2),
        settings=ClientSettings(read_timeout=0.3),
    )
    order = rig.store.orders.get(ETSY, target)
    assert order is not None
    shipment = Shipment(shipment_id="1", carrier="ups", tracking=UPS_OK, shipped_at=rig.clock.now())
    rig.sandbox.faults.inject("slow", route=ROUTE_TRACKING, times=1, delay=1.0)
    try:
        with pytest.raises(OutcomeUnknown):
            await impatient.confirm_shipment(order, shipment)
        remote = await impatient.read_shipments(order)
    finally:
        await impatient.aclose()
    assert remote.order_found and UPS_OK in remote.tracking_numbers and remote.shipped
    async with httpx.AsyncClient(base_url=rig.server.base_url) as admin:
        counted = await admin.get("/_sandbox/requests", params={"route": ROUTE_TRACKING, "applied": "1"})
    assert counted.json() == {"count": 1} and rig.sim.tracking_calls == 1


async def test_refusals_become_sentences_and_the_shipment_stays_rejected(rig: Rig) -> None:
    await _synced(rig)
    ids = rig.receipt_ids(GenStatus.UNSHIPPED)
    rig.sim.carrier_codes.discard("ups")  # Etsy stopped accepting that code
    item = _ship(rig, ids[3])
    rejected = await rig.engine.sender.deliver(item.item_id)
    assert rejected.state is OutboxState.REJECTED
    assert "not a supported shipping carrier" in rejected.answer and rejected.answer.endswith("ship again.")
    order = rig.store.orders.get(ETSY, ids[3])
    assert order is not None and order.shipments[0].state is ShipmentState.REJECTED
    assert order.status is OrderStatus.UNSHIPPED and rig.sim.buyer_emails == []
    # A carrier Etsy does not list goes as "other", named for the buyer.
    other = _ship(rig, ids[4], carrier="Kuehne Nagel", tracking="KN-000123", carrier_name="Kuehne Nagel")
    assert (await rig.engine.sender.deliver(other.item_id)).state is OutboxState.DONE
    assert rig.sim.tracking_requests[-1].fields["carrier_name"] == "other"
    assert "Kuehne Nagel" in rig.sim.tracking_requests[-1].fields["note_to_buyer"]
    # Etsy's "A tracking number is required" (US orders over $10) is a rejection with its words.
    dear = next(i for i in ids[5:] if rig.sim.book.orders[i].total > 10)
    order = rig.store.orders.get(ETSY, dear)
    assert order is not None
    blank = Shipment(shipment_id="1", carrier="usps", tracking="", shipped_at=rig.clock.now())
    result = await rig.market.confirm_shipment(order, blank)
    assert result.state is ConfirmState.REJECTED and "A tracking number is required" in result.answer


# ---------------------------------------------------------------- bad input and faults


async def test_bad_receipts_are_page_errors_and_the_rest_is_stored(rig: Rig) -> None:
    ids = sorted(rig.sim.book.orders)
    rig.sim.render_hooks[ids[0]] = lambda r: r["grandtotal"].update(divisor=0)
    rig.sim.render_hooks[ids[1]] = lambda r: r["grandtotal"].update(currency_code="XYZ")
    rig.sim.render_hooks[ids[2]] = lambda r: r.pop("transactions")
    rig.sandbox.faults.inject("truncated", route=ROUTE_RECEIPTS, times=1)
    result = await rig.engine.poll(ETSY, days=8)
    assert result.ok and result.inserted == 247
    assert len(result.errors) == 3
    text = " ".join(result.errors)
    assert "divisor 0" in text and "unknown currency 'XYZ'" in text and "transactions are missing" in text
    assert ids[0] in text and rig.store.orders.get(ETSY, ids[0]) is None
    errors = [r for r in rig.market.client.health.records() if r.kind != "call" or not r.ok]
    assert any("divisor 0" in r.message for r in errors)


async def test_an_unreadable_page_keeps_the_rest_and_does_not_move_the_cursor(rig: Rig) -> None:
    orders: list[str] = []
    with pytest.raises(TransientError, match="read again on the next poll"):
        async for page in rig.market.fetch_orders(rig.clock.now() - timedelta(days=8)):
            orders += [o.order_id for o in page.orders]
            if len(orders) and not rig.sandbox.faults.active():
                rig.sandbox.faults.inject("malformed", route=ROUTE_RECEIPTS, times=2)
    assert 0 < len(orders) < 250  # the readable pages came through
    # Through the engine: a garbled first page fails the poll and leaves the cursor alone.
    rig.sandbox.faults.clear()
    rig.sandbox.faults.inject("malformed", route=ROUTE_RECEIPTS, times=2)
    failed = await rig.engine.poll(ETSY, days=8)
    assert not failed.ok and "could not be read" in failed.error
    assert rig.engine.pollers[ETSY].cursor() is None
    healed = await rig.engine.poll(ETSY, days=8)
    assert healed.ok and rig.store.orders.count() == 250


async def test_throttling_honours_retry_after_and_outages_are_retried(rig: Rig) -> None:
    rig.sandbox.faults.inject("429", route=ROUTE_RECEIPTS, times=1, retry_after=7)
    rig.sandbox.faults.inject("5xx", route=ROUTE_RECEIPTS, times=2, status=503)
    result = await rig.engine.poll(ETSY, days=8)
    assert result.ok and result.inserted == 250
    assert max(rig.clock.slept) >= 7.0
    snapshot = rig.market.client.health.snapshot()
    assert snapshot.daily_budget == rig.sim.daily_limit
    assert snapshot.daily_remaining == rig.sim.remaining_today()


async def test_daily_budget_exhaustion_is_a_sentence_not_a_storm(rig: Rig) -> None:
    rig.sim.daily_limit = 4
    result = await rig.engine.poll(ETSY, days=8)
    assert not result.ok and "daily" in result.error
    asked = rig.sandbox.log.total
    again = await rig.engine.poll(ETSY, days=8)
    assert not again.ok and rig.sandbox.log.total == asked  # the limiter waits for the day instead of asking


async def test_a_revoked_refresh_token_asks_for_reauthorisation(rig: Rig) -> None:
    await _synced(rig)
    rig.sim.revoke_refresh_tokens()
    rig.sandbox.expire_tokens()
    rig.clock.advance(60)
    result = await rig.engine.poll(ETSY)
    assert not result.ok and f"tf-console creds set {REFRESH_VARIABLE}" in result.error
    assert "revoked" in result.error
    snapshot = rig.market.client.health.snapshot()
    assert snapshot.state is PlatformState.REAUTH and REFRESH_VARIABLE in snapshot.reason


async def test_a_missing_shared_secret_names_the_variable(rig: Rig) -> None:
    market = _market(rig.server.base_url, rig.clock, [], shared_secret="not-the-secret")
    try:
        check = await market.check_credentials()
    finally:
        await market.aclose()
    assert not check.ok and f"tf-console creds set {SECRET_VARIABLE}" in check.sentence
    good = await rig.market.check_credentials()
    assert good.ok and good.details["shop_id"] == str(DEMO_SHOP_ID)
    rig.sim.report_shop_in_me = False
    shopless = _market(rig.server.base_url, rig.clock, [], refresh_token=rig.grants[-1].refresh_token or "")
    try:
        answer = await shopless.check_credentials()
        with pytest.raises(Exception, match="has no shop"):
            await shopless.ensure_shop_id()
    finally:
        await shopless.aclose()
    assert not answer.ok and "no shop" in answer.sentence


async def test_a_wrong_shop_id_is_named_in_the_sentence(rig: Rig) -> None:
    market = _market(rig.server.base_url, rig.clock, [], shop_id="42")
    try:
        check = await market.check_credentials()
        with pytest.raises(PermanentError, match="check that ETSY_SHOP_ID \\(42\\)"):
            async for _page in market.fetch_orders(rig.clock.now() - timedelta(days=1)):
                pass
    finally:
        await market.aclose()
    assert not check.ok and f"shop {DEMO_SHOP_ID}, but ETSY_SHOP_ID is 42" in check.sentence


# ---------------------------------------------------------------- inventory


def _snapshot(products: list[dict[str, Any]]) -> list[tuple[str, Any, Any, int]]:
    return [
        (
            p["sku"],
            [pv["values"] for pv in p["property_values"]],
            [o["price"] for o in p["offerings"]],
            p["offerings"][0]["quantity"],
        )
        for p in products
    ]


async def test_set_quantity_keeps_every_variation(rig: Rig) -> None:
    listing = rig.sim.listing_for(SIZED_PRODUCT)
    before = _snapshot(listing.products)
    result = await rig.market.set_quantity(SIZED_PRODUCT, 7)
    assert result.state is PushState.APPLIED and "3 offering(s)" in result.answer
    after = _snapshot(rig.sim.listing_for(SIZED_PRODUCT).products)
    assert len(after) == len(before) == 6
    for old, new in zip(before, after, strict=True):
        assert old[:3] == new[:3]  # SKU, variation values and prices unchanged
        assert new[3] == (7 if new[0] == SIZED_PRODUCT else old[3])
    assert rig.sim.listing_for(SIZED_PRODUCT).quantity_on_property == [200, 513]
    # Listing discovery is cached; the inventory is always read fresh before a full replacement.
    listing_calls = rig.sandbox.log.count(ROUTE_LISTINGS)
    inventory_reads = rig.sandbox.log.count(ROUTE_INVENTORY_GET)
    assert (await rig.market.set_quantity(SIZED_EXTRA_SKU, 2000)).state is PushState.APPLIED
    assert rig.sandbox.log.count(ROUTE_LISTINGS) == listing_calls
    assert rig.sandbox.log.count(ROUTE_INVENTORY_GET) == inventory_reads + 1
    large = [p for p in rig.sim.listing_for(SIZED_PRODUCT).products if p["sku"] == SIZED_EXTRA_SKU]
    assert [p["offerings"][0]["quantity"] for p in large] == [999] * 3  # Etsy's ceiling
    colours = await rig.market.set_quantity("PRT-DRAGON-S", 0)
    assert colours.state is PushState.APPLIED
    assert rig.sim.listing_for("PRT-DRAGON-S").quantity == 0
    assert (await rig.market.set_quantity("PRT-LITHOPHANE", 3)).state is PushState.SKIPPED  # no SKU on Etsy


async def test_a_quantity_shared_between_skus_is_refused(rig: Rig) -> None:
    rig.sim.listing_for(SIZED_PRODUCT).quantity_on_property = []
    result = await rig.market.set_quantity(SIZED_PRODUCT, 5)
    assert result.state is PushState.REJECTED and SIZED_EXTRA_SKU in result.answer
    assert all(p["offerings"][0]["quantity"] == 25 for p in rig.sim.listing_for(SIZED_PRODUCT).products)


# ---------------------------------------------------------------- runtime and restarts


def _etsy_env(monkeypatch: pytest.MonkeyPatch, base_url: str, *, access: str = "") -> None:
    monkeypatch.setenv("ETSY_CLIENT_ID", DEMO_CLIENT_ID)
    monkeypatch.setenv("ETSY_CLIENT_SECRET", DEMO_SHARED_SECRET)
    monkeypatch.setenv("ETSY_REFRESH_TOKEN", DEMO_REFRESH_TOKEN)
    monkeypatch.setenv("ETSY_API_URL", base_url)
    monkeypatch.setenv("ETSY_OAUTH_URL", base_url + TOKEN_PATH)
    if access:
        monkeypatch.setenv("ETSY_ACCESS_TOKEN", access)


def _context(tmp_path: Path, clock: FakeClock) -> AppContext:
    return AppContext.load(
        tmp_path / "data", cwd=tmp_path, config_dir=tmp_path / "config", clock=clock, use_keyring=False
    )


async def test_runtime_refreshes_a_stale_token_and_a_fresh_runtime_uses_the_rotated_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=8)
    sim = EtsySimulator(sandbox, backfill=120, orders_per_hour=0)
    sandbox.add(sim)
    _etsy_env(monkeypatch, IN_PROCESS_BASE_URL, access=f"{DEMO_USER_ID}.stale-access-token-from-env")
    transports = {ETSY: SandboxTransport(sandbox, sleep=clock.sleep)}

    def runtime() -> Runtime:
        return Runtime(
            _context(tmp_path, clock),
            lease_kind="test",
            transports=transports,
            platforms=(ETSY,),
            client_overrides={"read_timeout": 5.0},
        )

    first = runtime()
    async with first.started() as rt:
        assert rt.disabled == {}
        result = await rt.engine.poll(ETSY, days=8)
        assert result.ok and result.inserted == 120
        assert rt.marketplaces[ETSY].shop_id == str(DEMO_SHOP_ID)  # type: ignore[attr-defined]
    assert sim.tokens.refreshes == 1  # the environment's stale token was refused once, then renewed
    vault = first.ctx.vault()
    saved = vault.entry(REFRESH_VARIABLE)
    assert saved is not None and saved.value.get_secret_value() in sim.tokens.current_refresh_tokens
    access = vault.entry("ETSY_ACCESS_TOKEN")
    assert access is not None and access.expires_at == clock.now() + timedelta(hours=1)

    # A fresh start on the same data dir: the saved access token is used while it lasts …
    clock.advance(600)
    second = runtime()
    async with second.started() as rt:
        assert (await rt.engine.poll(ETSY)).ok
    assert sim.tokens.refreshes == 1
    # … and once Etsy expires it, the rotated refresh token (not the environment's) renews it.
    sandbox.expire_tokens()
    clock.advance(600)
    third = runtime()
    async with third.started() as rt:
        result = await rt.engine.poll(ETSY)
        assert result.ok, result.error
    assert sim.tokens.refreshes == 2
    assert DEMO_REFRESH_TOKEN not in sim.tokens.current_refresh_tokens
    newest = third.ctx.vault().entry(REFRESH_VARIABLE)
    assert newest is not None and newest.value.get_secret_value() in sim.tokens.current_refresh_tokens


async def test_a_saved_access_token_past_its_expiry_is_renewed_before_the_first_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=9)
    sim = EtsySimulator(sandbox, backfill=5, orders_per_hour=0)
    sandbox.add(sim)
    _etsy_env(monkeypatch, IN_PROCESS_BASE_URL)
    ctx = _context(tmp_path, clock)
    ctx.vault().store("ETSY_ACCESS_TOKEN", f"{DEMO_USER_ID}.old", env_value=None, expires_at=clock.now())
    rt = Runtime(ctx, lease_kind="test", transports={ETSY: SandboxTransport(sandbox)}, platforms=(ETSY,))
    async with rt.started():
        assert (await rt.engine.poll(ETSY, days=8)).ok
    assert sim.tokens.refreshes == 1
    assert sandbox.log.count(status=401) == 0  # renewed up front, not after a refusal


@pytest.fixture
def loopback_shop() -> Iterator[tuple[Sandbox, EtsySimulator, LoopbackServer]]:
    clock = FakeClock(datetime.now(UTC))
    sandbox = Sandbox(clock=clock, seed=12)
    sim = EtsySimulator(sandbox, backfill=30, orders_per_hour=0)
    sandbox.add(sim)
    with LoopbackServer(sandbox) as server:
        yield sandbox, sim, server


@pytest.mark.slow
def test_a_new_process_uses_the_rotated_refresh_token(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    loopback_shop: tuple[Sandbox, EtsySimulator, LoopbackServer],
) -> None:
    sandbox, sim, server = loopback_shop
    _etsy_env(monkeypatch, server.base_url, access=f"{DEMO_USER_ID}.expired-at-start")
    command = [sys.executable, "-m", "tf_console", "--data-dir", str(tmp_path / "data"), "sync", "--once"]

    def sync() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=tmp_path, env=os.environ.copy(), capture_output=True, text=True, timeout=60
        )

    first = sync()
    assert first.returncode == 0, first.stderr
    assert sim.tokens.refreshes == 1 and DEMO_REFRESH_TOKEN not in sim.tokens.current_refresh_tokens
    sandbox.expire_tokens()
    second = sync()
    assert second.returncode == 0, second.stderr
    assert sim.tokens.refreshes == 2  # only possible with the refresh token the first process saved
    assert sandbox.log.count("etsy.token", status=400) == 0  # no refresh was refused
    for output in (first.stdout + first.stderr, second.stdout + second.stderr):
        assert DEMO_SHARED_SECRET not in output and DEMO_REFRESH_TOKEN not in output
