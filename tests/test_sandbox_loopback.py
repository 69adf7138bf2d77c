"""The sandbox over a real loopback socket: real timeouts, real truncation, the real client."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import CONFORMANCE
from tf_console.clock import SYSTEM_CLOCK
from tf_console.marketplaces.base import OutcomeUnknown
from tf_console.marketplaces.http import ClientSettings
from tf_console.marketplaces.testplatform import TestMarketplace, create_test_marketplace
from tf_console.models import PlatformState, Shipment
from tf_console.sandbox import BaseSimulator, LoopbackServer, Sandbox
from tf_console.sandbox.faults import FaultKind
from tf_console.sandbox.shopgen import GenStatus
from tf_console.sandbox.testsim import DEMO_CLIENT_ID, DEMO_REFRESH_TOKEN, TestShopSimulator

RATE_SCALE = 20.0  # orders.get 100/s, orders.list 40/s: fast, yet the limits still bite


@pytest.fixture
def served() -> Iterator[tuple[Sandbox, TestShopSimulator, LoopbackServer]]:
    sandbox = Sandbox(seed=21, rate_scale=RATE_SCALE, short_page_probability=0.3)
    sim = TestShopSimulator(sandbox, backfill=120, orders_per_hour=0)
    sandbox.add(sim)
    with LoopbackServer(sandbox) as server:
        yield sandbox, sim, server


def market_for(server: LoopbackServer, **settings: float) -> TestMarketplace:
    return create_test_marketplace(
        base_url=server.base_url,
        client_id=DEMO_CLIENT_ID,
        refresh_token=DEMO_REFRESH_TOKEN,
        clock=SYSTEM_CLOCK,
        rng=random.Random(5),
        settings=ClientSettings(
            read_timeout=settings.get("read_timeout", 5.0),
            backoff_base=0.05,
            max_retry_seconds=10.0,
        ),
        rate_scale=RATE_SCALE,
    )


async def test_backfill_ship_and_reconcile_over_loopback(
    served: tuple[Sandbox, TestShopSimulator, LoopbackServer],
) -> None:
    sandbox, sim, server = served
    market = market_for(server)
    try:
        seen: list[str] = []
        async for page in market.fetch_orders(SYSTEM_CLOCK.now() - timedelta(days=30)):
            seen.extend(o.order_id for o in page.orders)
        assert sorted(seen) == sorted(sim.book.orders)
        order_id = next(i for i, o in sim.book.orders.items() if o.status is GenStatus.UNSHIPPED)
        [order] = await market.fetch_orders_by_id([order_id])
        shipment = Shipment(shipment_id="s1", carrier="UPS", tracking="1ZLOOP", shipped_at=order.updated_at)
        result = await market.confirm_shipment(order, shipment)
        assert result.state.value == "confirmed"
        remote = await market.read_shipments(order)
        assert remote.shipped and remote.tracking_numbers == ["1ZLOOP"]
        assert (await market.set_quantity("STK-NOZZLE-04", 3)).state.value == "applied"
        assert (await market.check_credentials()).ok
        assert market.client.health.snapshot().state is PlatformState.OK
    finally:
        await market.aclose()
    assert sandbox.log.throttled == 0


async def test_client_paces_itself_below_the_server_limit(
    served: tuple[Sandbox, TestShopSimulator, LoopbackServer],
) -> None:
    sandbox, sim, server = served
    market = market_for(server)
    ids = list(sim.book.orders)[:60]
    started = time.monotonic()
    try:
        found = await asyncio.gather(*(market.fetch_orders_by_id([i]) for i in ids))
    finally:
        await market.aclose()
    elapsed = time.monotonic() - started
    assert sum(len(f) for f in found) == 60
    assert sandbox.log.throttled == 0
    # 60 calls at 100/s with a burst of 10 cannot take less than half a second
    assert elapsed >= (60 - 10) / (5.0 * RATE_SCALE) * 0.95


async def test_timeout_on_a_side_effect_is_unknown_and_sent_exactly_once(
    served: tuple[Sandbox, TestShopSimulator, LoopbackServer],
) -> None:
    sandbox, sim, server = served
    market = market_for(server, read_timeout=0.4)
    order_id = next(i for i, o in sim.book.orders.items() if o.status is GenStatus.UNSHIPPED)
    try:
        [order] = await market.fetch_orders_by_id([order_id])
        sandbox.faults.inject(FaultKind.TIMEOUT, route="test.shipments.create", apply_first=True, hold=2.0)
        shipment = Shipment(shipment_id="s1", carrier="UPS", tracking="1ZSLOW", shipped_at=order.updated_at)
        with pytest.raises(OutcomeUnknown):
            await market.confirm_shipment(order, shipment)
        assert market.client.health.records()[-1].error_code == "outcome_unknown"
        sandbox.faults.clear()
        remote = await market.read_shipments(order)
    finally:
        await market.aclose()
    assert remote.tracking_numbers == ["1ZSLOW"]  # it did take effect: reconcile, do not resend
    assert sandbox.log.count("test.shipments.create") == 1


@pytest.mark.parametrize(
    ("kind", "exception"),
    [
        (FaultKind.TIMEOUT, httpx.ReadTimeout),
        (FaultKind.TRUNCATED, httpx.RemoteProtocolError),
        (FaultKind.DROP_AFTER_APPLY, httpx.RemoteProtocolError),
    ],
)
async def test_loopback_faults_are_real_socket_failures(
    served: tuple[Sandbox, TestShopSimulator, LoopbackServer], kind: FaultKind, exception: type[Exception]
) -> None:
    sandbox, _, server = served
    sandbox.faults.inject(kind, route="test.token", times=1, hold=2.0)
    form = {"grant_type": "refresh_token", "refresh_token": DEMO_REFRESH_TOKEN, "client_id": DEMO_CLIENT_ID}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=httpx.Timeout(5.0, read=0.4)) as client:
        with pytest.raises(exception):
            await client.post("/test/oauth/token", data=form)
        assert (await client.get("/_sandbox/status")).status_code == 200  # the server is fine afterwards


async def test_slow_answer_over_loopback(served: tuple[Sandbox, TestShopSimulator, LoopbackServer]) -> None:
    sandbox, _, server = served
    sandbox.faults.inject("slow", route="test.token", times=1, delay=0.3)
    form = {"grant_type": "refresh_token", "refresh_token": DEMO_REFRESH_TOKEN, "client_id": DEMO_CLIENT_ID}
    async with httpx.AsyncClient(base_url=server.base_url, timeout=5.0) as client:
        started = time.monotonic()
        answer = await client.post("/test/oauth/token", data=form)
    assert answer.status_code == 200 and time.monotonic() - started >= 0.3


async def test_expired_tokens_mid_run_over_loopback_refresh_once(
    served: tuple[Sandbox, TestShopSimulator, LoopbackServer],
) -> None:
    sandbox, sim, server = served
    market = market_for(server)
    ids = list(sim.book.orders)[:8]
    try:
        await market.fetch_orders_by_id(ids[:1])
        sandbox.expire_tokens()
        found = await asyncio.gather(*(market.fetch_orders_by_id([i]) for i in ids))
    finally:
        await market.aclose()
    assert sum(len(f) for f in found) == 8
    assert sim.tokens.refreshes == 2


async def test_replay_is_byte_identical_over_loopback(tmp_path: Path) -> None:
    files = [tmp_path / "weird.xml"]
    files[0].write_bytes(b'<?xml version="1.0"?>\r\n<Ack>Success</Ack>\t \n\xef\xbb\xbf')
    for platform, name in (
        ("ebay", "trading.GetOrders.response.xml"),
        ("etsy", "getShopReceipts.response.200.json"),
    ):
        candidate = CONFORMANCE / platform / name
        if candidate.is_file():
            files.append(candidate)
    sandbox = Sandbox(seed=1)

    class Replayer(BaseSimulator):
        name = "replay"

        def install(self, sb: Sandbox) -> None:
            for index, file in enumerate(files):
                sb.add_replay(self, "POST", f"/r/{index}", file, name=f"r{index}", content_type="text/xml")

    sandbox.add(Replayer())
    with LoopbackServer(sandbox) as server:
        async with httpx.AsyncClient(base_url=server.base_url) as client:
            for index, file in enumerate(files):
                answer = await client.post(f"/r/{index}", content=b"<GetOrdersRequest/>")
                assert answer.content == file.read_bytes()


def test_sandbox_serve_command_runs_and_stops_cleanly(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tf_console",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--seed",
            "3",
            "--fault",
            "5xx:0.5",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Sandbox listening on http://127.0.0.1:"), first
        base = first.split()[3]
        status = httpx.get(f"{base}/_sandbox/status", timeout=5).json()
        assert status["simulators"] == ["test"] and status["faults"][0]["probability"] == 0.5
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "Sandbox stopped" in out and "Traceback" not in err


def test_sandbox_serve_refuses_bad_options_with_a_sentence() -> None:
    from tf_console.cli import main

    assert main(["sandbox", "serve", "--fault", "meteor"]) == 2
    assert main(["sandbox", "serve", "--speed", "0"]) == 2
