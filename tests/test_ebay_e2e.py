"""eBay end to end: the simulator on a loopback port, the sync engine, a real store; and the Runtime."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.conftest import conformance_dir
from tests.ebay_helpers import FIXTURES, make_market
from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.marketplaces.ebay import EbayMarketplace
from tf_console.marketplaces.http import ClientSettings
from tf_console.models import OrderStatus, Platform, ShipmentState
from tf_console.runtime import Runtime
from tf_console.sandbox import IN_PROCESS_BASE_URL, LoopbackServer, Sandbox, SandboxTransport
from tf_console.sandbox.ebay import (
    COMPLETE_SALE_ROUTE,
    DEMO_APP_ID,
    DEMO_AUTHNAUTH_TOKEN,
    DEMO_CERT_ID,
    DEMO_DEV_ID,
    DEMO_REFRESH_TOKEN,
    GET_ORDERS_ROUTE,
    TRADING_PATH,
    EbaySimulator,
)
from tf_console.sandbox.faults import FaultKind
from tf_console.sandbox.shopgen import GenStatus
from tf_console.store import Store
from tf_console.sync.engine import SyncEngine
from tf_console.sync.outbox import OutboxState, RetryPolicy
from tf_console.sync.shipping import ShipRequest, enqueue_shipment

UPS = "1Z999AA10123456784"


@dataclass
class Loop:
    clock: FakeClock
    sandbox: Sandbox
    sim: EbaySimulator
    market: EbayMarketplace
    store: Store
    engine: SyncEngine

    def visible(self) -> set[str]:
        return {i for i, o in self.sim.book.orders.items() if o.status is not GenStatus.CANCELLED}


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Sandbox:
    return Sandbox(clock=clock, seed=21, short_page_probability=0.3)


@pytest.fixture
def server(sandbox: Sandbox) -> Iterator[LoopbackServer]:
    with LoopbackServer(sandbox) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    opened = Store.open(tmp_path / "data", FernetCipher(FernetCipher.generate_key()), clock=clock)
    yield opened
    opened.close()


async def _loop(
    clock: FakeClock,
    sandbox: Sandbox,
    server: LoopbackServer,
    store: Store,
    *,
    oauth: bool = False,
    backfill: int = 70,
    orders_per_hour: float = 0.0,
    read_timeout: float = 5.0,
) -> AsyncIterator[Loop]:
    sim = EbaySimulator(sandbox, orders_per_hour=orders_per_hour, backfill=backfill, backfill_days=20)
    sandbox.add(sim)
    market = make_market(
        sandbox,
        clock,
        base_url=server.base_url,
        oauth=oauth,
        entries_per_page=20,
        settings=ClientSettings(read_timeout=read_timeout, connect_timeout=2.0),
    )
    policy = RetryPolicy(base_delay=1, max_delay=10, verify_wait=60, verify_reads=2, verify_interval=20)
    engine = SyncEngine(store, {Platform.EBAY: market}, clock, retry_policy=policy)
    try:
        yield Loop(clock, sandbox, sim, market, store, engine)
    finally:
        await market.aclose()


@pytest.fixture
async def loop(
    clock: FakeClock, sandbox: Sandbox, server: LoopbackServer, store: Store
) -> AsyncIterator[Loop]:
    async for made in _loop(clock, sandbox, server, store):
        yield made


@pytest.fixture
async def oauth_loop(
    clock: FakeClock, sandbox: Sandbox, server: LoopbackServer, store: Store
) -> AsyncIterator[Loop]:
    async for made in _loop(clock, sandbox, server, store, oauth=True):
        yield made


def _ship(loop: Loop, order_id: str, tracking: str = UPS) -> str:
    item = enqueue_shipment(loop.store, ShipRequest(Platform.EBAY, order_id, "UPS", tracking), loop.clock)
    return item.item_id


def _unshipped(loop: Loop) -> str:
    return next(
        o.order_id
        for o in loop.store.orders.iter_all()
        if o.status is OrderStatus.UNSHIPPED and not o.cancel_requested and len(o.items) == 1
    )


# ---------------------------------------------------------------- polling


async def test_backfill_then_incremental_repoll_without_duplicates(
    clock: FakeClock, sandbox: Sandbox, server: LoopbackServer, store: Store
) -> None:
    async for loop in _loop(clock, sandbox, server, store, backfill=90, orders_per_hour=4):
        first = await loop.engine.poll(Platform.EBAY, days=30)
        assert first.ok, first.error
        assert first.pages >= 3 and first.errors == []
        stored = {o.order_id for o in store.orders.iter_all()}
        window_end = clock.now() - timedelta(minutes=2)
        expected = {i for i in loop.visible() if loop.sim.book.orders[i].updated_at <= window_end}
        assert stored == expected and store.orders.count() == len(expected)
        clock.advance(3 * 3600)  # new orders arrive on eBay meanwhile
        again = await loop.engine.poll(Platform.EBAY, days=30)
        assert again.ok and again.inserted >= 1
        before = {o.order_id for o in store.orders.iter_all()}
        previous_end = clock.now() - timedelta(minutes=2)
        clock.advance(600)
        quiet = await loop.engine.poll(Platform.EBAY, days=30)
        # Nothing already stored changes; only orders placed in these ten minutes are new.
        arrived = {o.order_id for o in store.orders.iter_all()} - before
        assert quiet.ok and quiet.updated == 0 and quiet.inserted == len(arrived)
        assert all(loop.sim.book.orders[i].updated_at > previous_end for i in arrived)
        ids = [o.order_id for o in store.orders.iter_all()]
        assert len(ids) == len(set(ids))
        assert set(ids) == {i for i in loop.visible() if loop.sim.book.orders[i].updated_at <= clock.now()}


async def test_token_expiry_mid_sync_is_refreshed_and_nothing_is_lost(oauth_loop: Loop) -> None:
    loop = oauth_loop
    expired: list[int] = []

    def expire_after_first_page(_platform: Platform, page: int, _total: int | None) -> None:
        if page == 1 and not expired:
            expired.append(page)
            loop.sandbox.expire_tokens()

    loop.engine.listeners.progress.append(expire_after_first_page)
    result = await loop.engine.poll(Platform.EBAY, days=30)
    assert result.ok, result.error
    assert expired and loop.sim.tokens.refreshes == 2
    assert {o.order_id for o in loop.store.orders.iter_all()} == loop.visible()


async def test_cancellation_hidden_from_the_window_is_caught_by_the_recheck(loop: Loop) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    order_id = _unshipped(loop)
    loop.sim.book.cancel(order_id, loop.clock.now())
    loop.clock.advance(3700)
    result = await loop.engine.poll(Platform.EBAY, days=30)
    assert result.ok and result.rechecked >= 1
    cancelled = loop.store.orders.get(Platform.EBAY, order_id)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED


# ---------------------------------------------------------------- shipping


async def test_shipment_is_confirmed_exactly_once(loop: Loop) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    order_id = _unshipped(loop)
    item = await loop.engine.sender.deliver(_ship(loop, order_id))
    assert item.state is OutboxState.DONE, item.answer
    order = loop.store.orders.get(Platform.EBAY, order_id)
    assert order is not None and order.status is OrderStatus.SHIPPED
    assert order.shipments[0].state is ShipmentState.CONFIRMED
    loop.clock.advance(600)
    await loop.engine.poll(Platform.EBAY, days=30)
    again = await loop.engine.sender.deliver(item.item_id)
    assert again.state is OutboxState.DONE
    assert loop.sandbox.log.count(COMPLETE_SALE_ROUTE) == 1
    assert loop.sim.completed_sales == [(order_id, UPS)]
    shown = loop.store.orders.get(Platform.EBAY, order_id)
    assert shown is not None and shown.marketplace_tracking == [UPS] and shown.status is OrderStatus.SHIPPED


async def test_lost_answer_is_reconciled_by_reading_back_never_resent(loop: Loop) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    order_id = _unshipped(loop)
    loop.sandbox.faults.inject(FaultKind.DROP_AFTER_APPLY, route=COMPLETE_SALE_ROUTE, times=1)
    item = await loop.engine.sender.deliver(_ship(loop, order_id))
    assert item.state is OutboxState.VERIFYING
    order = loop.store.orders.get(Platform.EBAY, order_id)
    assert order is not None and order.shipments[0].state is ShipmentState.UNKNOWN
    loop.clock.advance(30)
    settled = await loop.engine.sender.deliver(item.item_id)
    assert settled.state is OutboxState.DONE, settled.answer
    assert loop.sandbox.log.count(COMPLETE_SALE_ROUTE) == 1  # one POST, applied once, never re-sent
    assert loop.sim.completed_sales == [(order_id, UPS)]
    order = loop.store.orders.get(Platform.EBAY, order_id)
    assert order is not None and order.status is OrderStatus.SHIPPED


async def test_answer_delayed_after_applying_leaves_the_outcome_unknown(
    clock: FakeClock, sandbox: Sandbox, server: LoopbackServer, store: Store
) -> None:
    async for loop in _loop(clock, sandbox, server, store, backfill=20, read_timeout=0.2):
        await loop.engine.poll(Platform.EBAY, days=30)
        order_id = _unshipped(loop)
        sandbox.faults.inject(FaultKind.SLOW, route=COMPLETE_SALE_ROUTE, delay=1.0, times=1)
        item = await loop.engine.sender.deliver(_ship(loop, order_id))
        assert item.state is OutboxState.VERIFYING  # the client gave up waiting…
        assert loop.sim.completed_sales == [(order_id, UPS)]  # …after eBay had applied it


async def test_complete_sale_failure_is_rejected_and_changes_nothing_else(loop: Loop) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    order_id = _unshipped(loop)
    loop.sim.answer_next("CompleteSale", (FIXTURES / "complete_sale_failure.xml").read_bytes())
    item = await loop.engine.sender.deliver(_ship(loop, order_id))
    assert item.state is OutboxState.REJECTED
    assert item.answer.startswith("eBay refused CompleteSale: The order was cancelled")
    order = loop.store.orders.get(Platform.EBAY, order_id)
    assert order is not None and order.status is OrderStatus.UNSHIPPED
    assert order.shipments[0].state is ShipmentState.REJECTED and order.items[0].quantity_shipped == 0
    assert loop.sim.completed_sales == []
    assert loop.market.client.health.last_error == item.answer


# ---------------------------------------------------------------- bad input and faults


BAD_PAGES: dict[str, tuple[bytes, str]] = {
    "xml bomb": ((FIXTURES / "billion_laughs.xml").read_bytes(), "refused for safety"),
    "external entity": ((FIXTURES / "external_entity.xml").read_bytes(), "refused for safety"),
    "malformed": (
        b"<?xml version='1.0'?><GetOrdersResponse xmlns='urn:ebay:apis:eBLBaseComponents'><Ack>",
        "well-formed",
    ),
    "not xml": (b"an internal error occured", "is not XML"),
}


@pytest.mark.parametrize("case", sorted(BAD_PAGES))
async def test_unreadable_answers_change_nothing(loop: Loop, case: str) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    before = sorted((o.order_id, o.model_dump_json()) for o in loop.store.orders.iter_all())
    cursor = loop.engine.pollers[Platform.EBAY].cursor()
    body, needle = BAD_PAGES[case]
    loop.clock.advance(300)
    loop.sim.answer_next("GetOrders", body)
    result = await loop.engine.poll(Platform.EBAY, days=30)
    assert not result.ok and needle in result.error and result.error.endswith(".")
    assert sorted((o.order_id, o.model_dump_json()) for o in loop.store.orders.iter_all()) == before
    assert loop.engine.pollers[Platform.EBAY].cursor() == cursor
    assert needle in loop.market.client.health.last_error


async def test_odd_orders_cost_only_themselves(loop: Loop) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    count = loop.store.orders.count()
    loop.clock.advance(300)
    template = (FIXTURES / "orders.xml").read_text()
    odd = template.replace('<Total currencyID="GBP">76.45</Total>', "").replace(
        "<OrderStatus>Active</OrderStatus>", "<OrderStatus>Haunted</OrderStatus>"
    )
    loop.sim.answer_next("GetOrders", odd)
    result = await loop.engine.poll(Platform.EBAY, days=30, recheck=False)
    assert result.ok and result.inserted == 1  # the third order of the page is fine
    assert len(result.errors) == 2
    assert any("12-34567-89012" in e and "no Total" in e for e in result.errors)
    assert any("13-34568-11111" in e and "'Haunted'" in e for e in result.errors)
    assert loop.store.orders.count() == count + 1
    notes = [r.message for r in loop.market.client.health.records() if r.kind == "note"]
    assert any("no Total" in n for n in notes) and any("Haunted" in n for n in notes)


async def test_empty_order_array_is_a_quiet_poll(loop: Loop) -> None:
    await loop.engine.poll(Platform.EBAY, days=30)
    before = loop.store.orders.count()
    loop.clock.advance(300)
    loop.sim.answer_next(
        "GetOrders", (conformance_dir("ebay") / "trading.GetOrders.response.empty.xml").read_bytes()
    )
    result = await loop.engine.poll(Platform.EBAY, days=30, recheck=False)
    assert result.ok and result.fetched == 0 and loop.store.orders.count() == before


async def test_outage_is_retried_then_reported(loop: Loop) -> None:
    loop.sandbox.faults.inject(FaultKind.SERVER_ERROR, status=503, route=GET_ORDERS_ROUTE, times=2)
    recovered = await loop.engine.poll(Platform.EBAY, days=30)
    assert recovered.ok and recovered.inserted > 0
    loop.sandbox.faults.inject(FaultKind.SERVER_ERROR, status=503, route=GET_ORDERS_ROUTE)
    loop.clock.advance(300)
    down = await loop.engine.poll(Platform.EBAY, days=30)
    assert not down.ok and "HTTP 503" in down.error


async def test_warning_is_recorded_in_health_and_the_call_succeeds(loop: Loop) -> None:
    loop.sim.answer_next("GetOrders", (FIXTURES / "warning.xml").read_bytes())
    result = await loop.engine.poll(Platform.EBAY, days=30, recheck=False)
    assert result.ok
    warnings = [r.message for r in loop.market.client.health.records() if r.kind == "warning"]
    assert any("Deprecated compatibility level" in w for w in warnings)
    assert any("token expires 2026-11-08 12:00 UTC" in w for w in warnings)
    assert loop.market.token_expires_at is not None


# ---------------------------------------------------------------- `tf-console sandbox serve`


async def test_sandbox_serve_runs_the_ebay_simulator_on_loopback(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_console", "sandbox", "serve", "--platform", "ebay", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+", first)
        assert match, first
        clock = FakeClock(datetime.now(UTC))
        market = make_market(Sandbox(clock=clock), clock, base_url=match.group(0))
        check = await market.check_credentials()
        await market.aclose()
        assert check.ok, check.sentence
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert "Sandbox stopped after 1 requests." in out


# ---------------------------------------------------------------- the Runtime


async def test_runtime_builds_ebay_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    sandbox = Sandbox(clock=clock, seed=5)
    sim = EbaySimulator(sandbox, orders_per_hour=0, backfill=30, backfill_days=10)
    sandbox.add(sim)
    for name, value in {
        "EBAY_APP_ID": DEMO_APP_ID,
        "EBAY_DEV_ID": DEMO_DEV_ID,
        "EBAY_CERT_ID": DEMO_CERT_ID,
        "EBAY_REFRESH_TOKEN": DEMO_REFRESH_TOKEN,
        "EBAY_ENVIRONMENT": "sandbox",
        "EBAY_TRADING_URL": IN_PROCESS_BASE_URL + TRADING_PATH,
        "EBAY_API_URL": IN_PROCESS_BASE_URL,
    }.items():
        monkeypatch.setenv(name, value)
    ctx = AppContext.load(
        tmp_path / "data", cwd=tmp_path, config_dir=tmp_path / "config", clock=clock, use_keyring=False
    )
    runtime = Runtime(
        ctx,
        lease_kind="test",
        transports={Platform.EBAY: SandboxTransport(sandbox, sleep=clock.sleep)},
        platforms=(Platform.EBAY,),
    )
    async with runtime.started():
        assert Platform.EBAY in runtime.marketplaces, runtime.disabled
        market = runtime.marketplaces[Platform.EBAY]
        assert isinstance(market, EbayMarketplace) and market.refreshable
        check = await market.check_credentials()
        assert check.ok and check.details["user_id"] == sim.seller
        result = await runtime.engine.poll(Platform.EBAY, days=30)
        window_end = clock.now() - timedelta(minutes=2)
        visible = [o for o in sim.book.orders.values() if o.status is not GenStatus.CANCELLED]
        assert result.ok and result.inserted == len([o for o in visible if o.updated_at <= window_end]) > 0
        # The renewed OAuth token went to the vault, encrypted, with its expiry.
        entry = ctx.vault().entry("EBAY_USER_TOKEN")
        assert entry is not None and entry.value.get_secret_value().startswith("v^1.1#")
        assert entry.expires_at == market.token_expires_at
    assert not any(b"v^1.1#" in p.read_bytes() for p in (tmp_path / "data").rglob("*") if p.is_file())

    # The next start uses the saved token until it expires: no refresh needed.
    sim.tokens.refreshes = 0
    again = Runtime(
        AppContext.load(
            tmp_path / "data", cwd=tmp_path, config_dir=tmp_path / "config", clock=clock, use_keyring=False
        ),
        lease_kind="test",
        transports={Platform.EBAY: SandboxTransport(sandbox, sleep=clock.sleep)},
        platforms=(Platform.EBAY,),
    )
    async with again.started():
        assert (await again.marketplaces[Platform.EBAY].check_credentials()).ok
    assert sim.tokens.refreshes == 0


async def test_runtime_disables_ebay_with_a_sentence_for_a_garbled_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {
        "EBAY_APP_ID": DEMO_APP_ID,
        "EBAY_DEV_ID": DEMO_DEV_ID,
        "EBAY_CERT_ID": DEMO_CERT_ID,
        "EBAY_USER_TOKEN": "not-a-token",
    }.items():
        monkeypatch.setenv(name, value)
    ctx = AppContext.load(tmp_path / "data", cwd=tmp_path, config_dir=tmp_path / "config", use_keyring=False)
    runtime = Runtime(ctx, lease_kind="test", platforms=(Platform.EBAY,))
    async with runtime.started():
        reason = runtime.disabled[Platform.EBAY]
    assert "neither an Auth'n'Auth token" in reason and "tf-console creds set EBAY_USER_TOKEN" in reason
    assert "not-a-token" not in reason
    assert DEMO_AUTHNAUTH_TOKEN not in reason
