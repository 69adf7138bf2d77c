"""The sandbox framework in-process: paging, faults, replay, tokens, the shop generator."""

from __future__ import annotations

import json
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import CONFORMANCE
from tf_console.clock import FakeClock
from tf_console.marketplaces.testplatform import create_test_marketplace
from tf_console.sandbox import (
    IN_PROCESS_BASE_URL,
    BaseSimulator,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    SandboxTransport,
    TokenAuthority,
    TokenStatus,
)
from tf_console.sandbox.faults import Fault, FaultKind
from tf_console.sandbox.shopgen import CATALOG, GenStatus, OrderBook, ShipError, ShopGenerator
from tf_console.sandbox.testsim import DEMO_CLIENT_ID, DEMO_REFRESH_TOKEN, TestShopSimulator


def shop(
    backfill: int = 300, *, short: float = 0.3, seed: int = 11, limits: bool = False
) -> tuple[FakeClock, Sandbox, TestShopSimulator]:
    """A test shop; server-side rate limits only when asked (raw clients below do not pace)."""
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=seed, short_page_probability=short)
    sandbox.rate_limits_enabled = limits
    sim = TestShopSimulator(sandbox, backfill=backfill, orders_per_hour=0)
    sandbox.add(sim)
    return clock, sandbox, sim


def raw_client(sandbox: Sandbox, clock: FakeClock | None = None) -> httpx.AsyncClient:
    sleep = clock.sleep if clock else None
    transport = SandboxTransport(sandbox, sleep=sleep) if sleep else SandboxTransport(sandbox)
    return httpx.AsyncClient(transport=transport, base_url=IN_PROCESS_BASE_URL, timeout=httpx.Timeout(5.0))


async def bearer(client: httpx.AsyncClient) -> dict[str, str]:
    answer = await client.post(
        "/test/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": DEMO_REFRESH_TOKEN,
            "client_id": DEMO_CLIENT_ID,
        },
    )
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


# ---------------------------------------------------------------------------
# Paging


async def test_full_iteration_with_short_pages_never_loses_or_duplicates() -> None:
    clock, sandbox, sim = shop(300, limits=True)
    market = create_test_marketplace(
        base_url=IN_PROCESS_BASE_URL,
        client_id=DEMO_CLIENT_ID,
        refresh_token=DEMO_REFRESH_TOKEN,
        clock=clock,
        rng=random.Random(1),
        transport=SandboxTransport(sandbox, sleep=clock.sleep),
    )
    market.page_limit = 25
    seen: list[str] = []
    sizes: list[int] = []
    async for page in market.fetch_orders(clock.now() - timedelta(days=30)):
        seen.extend(o.order_id for o in page.orders)
        sizes.append(len(page.orders))
    assert len(seen) == len(set(seen)) == 300
    assert set(seen) == set(sim.book.orders)
    assert any(size < 25 for size in sizes[:-1])  # some pages came back short mid-way
    assert sandbox.log.throttled == 0


async def test_paging_while_orders_change_and_arrive_loses_nothing() -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=4, short_page_probability=0.5)
    sandbox.rate_limits_enabled = False
    sim = TestShopSimulator(sandbox, backfill=200, orders_per_hour=30)
    sandbox.add(sim)
    before = set(sim.book.orders)
    async with raw_client(sandbox) as client:
        headers = await bearer(client)
        params: dict[str, str | int] = {"modified_since": "2000-01-01T00:00:00Z", "limit": 25}
        seen: list[str] = []
        pages = 0
        while True:
            body = (await client.get("/test/orders", params=params, headers=headers)).json()
            seen.extend(o["id"] for o in body["orders"])
            pages += 1
            if pages == 2:  # mid-walk: a seen and an unseen order ship; new orders arrive
                open_ = [i for i, o in sim.book.orders.items() if o.status is GenStatus.UNSHIPPED]
                sim.book.ship(next(i for i in open_ if i in seen), "UPS", "1ZA", None, clock.now())
                sim.book.ship(next(i for i in open_ if i not in seen), "UPS", "1ZB", None, clock.now())
                clock.advance(3000)  # (within the access token's hour)
            if not body["next_page_token"]:
                break
            params = {"page_token": body["next_page_token"], "limit": 25}
    arrived = set(sim.book.orders) - before
    assert arrived, "the wait should have brought new orders"
    assert set(sim.book.orders) == set(seen)  # nothing lost, old or new
    assert len(seen) - len(set(seen)) == 1  # only the seen order that changed comes round again


async def test_page_tokens_are_url_unsafe_and_survive_encoding() -> None:
    _, sandbox, _ = shop(150, short=0.0)
    async with raw_client(sandbox) as client:
        headers = await bearer(client)
        first = (await client.get("/test/orders", params={"limit": 100}, headers=headers)).json()
        token = first["next_page_token"]
        assert token.startswith("+/+/")
        second = await client.get("/test/orders", params={"page_token": token, "limit": 100}, headers=headers)
        assert second.status_code == 200 and len(second.json()["orders"]) == 50
        unencoded = await client.get(f"/test/orders?page_token={token}", headers=headers)  # '+' becomes ' '
        assert unencoded.status_code == 400


# ---------------------------------------------------------------------------
# Faults in-process raise what a socket would


@pytest.mark.parametrize(
    ("kind", "options", "exception"),
    [
        (FaultKind.TIMEOUT, {}, httpx.ReadTimeout),
        (FaultKind.TRUNCATED, {}, httpx.RemoteProtocolError),
        (FaultKind.DROP_AFTER_APPLY, {}, httpx.RemoteProtocolError),
        (FaultKind.CONNECT_ERROR, {}, httpx.ConnectError),
        (FaultKind.SLOW, {"delay": 10.0}, httpx.ReadTimeout),
    ],
)
async def test_in_process_faults_raise_socket_exceptions(
    kind: FaultKind, options: dict[str, float], exception: type[Exception]
) -> None:
    _, sandbox, _ = shop(5)
    async with raw_client(sandbox) as client:
        headers = await bearer(client)
        sandbox.faults.inject(kind, route="test.me", times=1, **options)
        with pytest.raises(exception):
            response = await client.get("/test/me", headers=headers)
            await response.aread()
        assert (await client.get("/test/me", headers=headers)).status_code == 200


async def test_slow_answer_within_the_timeout_arrives_late() -> None:
    clock, sandbox, _ = shop(5)
    async with raw_client(sandbox, clock) as client:
        headers = await bearer(client)
        sandbox.faults.inject("slow", route="test.me", times=1, delay=3.0)
        response = await client.get("/test/me", headers=headers)
        assert response.status_code == 200 and clock.slept == [3.0]


async def test_malformed_429_and_5xx_faults() -> None:
    _, sandbox, _ = shop(5)
    async with raw_client(sandbox) as client:
        headers = await bearer(client)
        sandbox.faults.inject("malformed", route="test.me", times=1)
        sandbox.faults.inject("429-storm", route="test.me", times=1, retry_after=9)
        sandbox.faults.inject("5xx", route="test.me", times=1, status=502)
        bad = await client.get("/test/me", headers=headers)
        assert bad.status_code == 200 and int(bad.headers["content-length"]) == len(bad.content)
        with pytest.raises(ValueError):
            json.loads(bad.content)
        throttled = await client.get("/test/me", headers=headers)
        assert (throttled.status_code, throttled.headers["retry-after"]) == (429, "9")
        assert (await client.get("/test/me", headers=headers)).status_code == 502
        assert (await client.get("/test/me", headers=headers)).status_code == 200
    assert sandbox.log.count("test.me") == 4 and sandbox.log.count("test.me", applied_only=True) == 2


def test_fault_probability_times_and_names() -> None:
    controller_sandbox = Sandbox(seed=3)
    faults = controller_sandbox.faults
    fault = faults.add(Fault(kind=FaultKind.SERVER_ERROR, probability=0.5))
    hits = sum(1 for _ in range(400) if faults.pick("GET", "/x", None))
    assert 150 < hits < 250
    faults.remove(fault.fault_id)
    faults.inject("drop", method="POST", times=2)
    assert faults.pick("GET", "/x", None) is None
    assert faults.pick("POST", "/x", None) and faults.pick("POST", "/x", None)
    assert faults.pick("POST", "/x", None) is None and faults.active() == []
    with pytest.raises(ValueError, match="known faults"):
        FaultKind.parse("meteor")


async def test_run_time_control_over_http_endpoints() -> None:
    _, sandbox, _ = shop(5)
    async with raw_client(sandbox) as client:
        created = await client.post("/_sandbox/faults", json={"kind": "5xx", "route": "test.me", "times": 1})
        assert created.status_code == 201
        status = (await client.get("/_sandbox/status")).json()
        assert status["simulators"] == ["test"] and status["faults"][0]["kind"] == "5xx"
        headers = await bearer(client)
        assert (await client.get("/test/me", headers=headers)).status_code == 503
        count = (await client.get("/_sandbox/requests", params={"route": "test.me"})).json()
        assert count == {"count": 1}
        assert (await client.post("/_sandbox/expire-tokens")).status_code == 204
        assert (await client.get("/test/me", headers=headers)).status_code == 401
        assert (await client.delete("/_sandbox/faults")).status_code == 204
        assert (await client.post("/_sandbox/faults", json={"kind": "meteor"})).status_code == 400


# ---------------------------------------------------------------------------
# Server-side rate limits and tokens


async def test_server_side_rate_limit_answers_429_with_headers() -> None:
    _, sandbox, _ = shop(5, limits=True)
    async with raw_client(sandbox) as client:
        headers = await bearer(client)
        answers = [await client.get("/test/me", headers=headers) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert (
        answers[0].headers["x-ratelimit-limit"] == "2" and answers[0].headers["x-ratelimit-remaining"] == "4"
    )
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert sandbox.log.throttled == 1


def test_token_authority_expires_on_the_clock_and_rotates() -> None:
    clock = FakeClock()
    authority = TokenAuthority(
        clock, random.Random(1), prefix="x", refresh_tokens=["r0"], access_ttl=60, rotate_refresh=True
    )
    issued = authority.exchange("r0")
    assert issued is not None and issued.refresh_token and issued.expires_in == 60
    assert authority.check(issued.access_token) is TokenStatus.VALID
    assert authority.exchange("r0") is None  # rotated away
    clock.advance(60)
    assert authority.check(issued.access_token) is TokenStatus.EXPIRED
    assert authority.check("forged") is TokenStatus.UNKNOWN


# ---------------------------------------------------------------------------
# Replay


async def test_replay_serves_files_byte_for_byte(tmp_path: Path) -> None:
    odd = tmp_path / "odd.json"
    odd.write_bytes(b'{ "a" : 1,\r\n  "name": "Gr\xc3\xbc\xc3\x9fe",  "n": 1.50 }  \n\n')
    files = [odd]
    amazon = CONFORMANCE / "amazon" / "orders2026.searchOrders.response.200.json"
    if amazon.is_file():
        files.append(amazon)
    sandbox = Sandbox(seed=1)

    class Replayer(BaseSimulator):
        name = "replay"

        def install(self, sb: Sandbox) -> None:
            for index, file in enumerate(files):
                sb.add_replay(self, "GET", f"/replay/{index}", file, name=f"replay.{index}")
            sb.add_replay(
                self, "GET", "/replay/picked", odd, name="replay.picked", when=lambda r: r.param("v") == "1"
            )

    sandbox.add(Replayer())
    async with raw_client(sandbox) as client:
        for index, file in enumerate(files):
            response = await client.get(f"/replay/{index}")
            assert response.content == file.read_bytes()
        assert (await client.get("/replay/picked", params={"v": "1"})).content == odd.read_bytes()
        assert (await client.get("/replay/picked", params={"v": "2"})).status_code == 405


def test_unknown_routes_and_handler_bugs_answer_like_a_server() -> None:
    sandbox = Sandbox(seed=1)

    class Buggy(BaseSimulator):
        name = "buggy"

        def install(self, sb: Sandbox) -> None:
            sb.route(self, "GET", "/buggy/{x}", self.boom, name="buggy.boom")

        def boom(self, request: SandboxRequest, match: object) -> SandboxResponse:
            raise RuntimeError("simulator bug")

    sandbox.add(Buggy())
    assert sandbox.handle(SandboxRequest.build("GET", "/nowhere")).status == 404
    assert sandbox.handle(SandboxRequest.build("POST", "/buggy/1")).status == 405
    assert sandbox.handle(SandboxRequest.build("GET", "/buggy/1")).status == 500
    with pytest.raises(ValueError):
        sandbox.add(Buggy())


# ---------------------------------------------------------------------------
# The shop generator


def test_generator_is_deterministic_and_believable() -> None:
    def orders(seed: int) -> list[tuple[str, str, list[tuple[str, int, Decimal]]]]:
        gen = ShopGenerator(seed)
        start = FakeClock().now()
        return [
            (o.order_id, o.currency, [(ln.sku, ln.quantity, ln.unit_price) for ln in o.lines])
            for o in (gen.order(start + timedelta(minutes=i)) for i in range(400))
        ]

    first, again, other = orders(5), orders(5), orders(6)
    assert first == again and first != other
    gen = ShopGenerator(5)
    made = [gen.order(FakeClock().now()) for _ in range(400)]
    currencies = {o.currency for o in made}
    assert {"USD", "GBP", "EUR", "JPY"} <= currencies
    lines = [ln for o in made for ln in o.lines]
    assert any(ln.quantity > 1 for ln in lines)
    assert any(ln.sku.startswith("PRT-") for ln in lines) and any(ln.sku.startswith("STK-") for ln in lines)
    assert any(ln.personalisation for ln in lines if ln.sku == "PRT-NAMEPLATE")
    for order in made:
        if order.currency == "JPY":
            assert all(ln.unit_price == ln.unit_price.to_integral_value() for ln in order.lines)
            assert order.total.as_tuple().exponent == 0
        expected = sum((ln.unit_price * ln.quantity for ln in order.lines), Decimal(0))
        assert order.total == expected + order.shipping_cost + order.tax
    assert {p.kind for p in CATALOG} == {"print", "stock"}


def test_order_book_arrivals_payments_shipping_and_silent_cancellations() -> None:
    clock = FakeClock()
    book = OrderBook(ShopGenerator(9), clock.now(), orders_per_hour=60, backfill=50)
    assert len(book.orders) == 50
    assert any(o.status is GenStatus.SHIPPED and o.shipments for o in book.orders.values())
    new = book.advance(clock.now() + timedelta(hours=2))
    assert 80 <= len(new) <= 160  # about 60 an hour
    assert all(o.created_at > clock.now() for o in new)
    pending_later = [o for o in new if o.status is GenStatus.PENDING]
    assert len(pending_later) < len(new) // 4
    target = next(o for o in new if o.status is GenStatus.UNSHIPPED and len(o.lines) >= 1)
    before = target.updated_at
    line = target.lines[0]
    at = clock.now() + timedelta(hours=3)
    if line.quantity > 1:
        book.ship(target.order_id, "UPS", "1Z1", [(line.line_id, 1)], at)
        assert target.status in (GenStatus.PARTIALLY_SHIPPED, GenStatus.SHIPPED)
    else:
        book.ship(target.order_id, "UPS", "1Z1", None, at)
    assert target.updated_at == at > before
    with pytest.raises(ShipError, match="tracking number is required"):
        book.ship(target.order_id, "UPS", " ", None, at)
    quiet = next(o for o in book.orders.values() if o.status is GenStatus.UNSHIPPED)
    stamp = quiet.updated_at
    book.cancel(quiet.order_id, at, bump_modified=False)
    assert quiet.status is GenStatus.CANCELLED and quiet.updated_at == stamp
    with pytest.raises(ShipError) as refused:
        book.ship(quiet.order_id, "UPS", "1Z2", None, at)
    assert refused.value.code == "order_cancelled"


async def test_shipping_through_the_api_bumps_the_order_and_records_it() -> None:
    clock, sandbox, sim = shop(20)
    order_id = next(i for i, o in sim.book.orders.items() if o.status is GenStatus.UNSHIPPED)
    clock.advance(60)
    async with raw_client(sandbox) as client:
        headers = await bearer(client)
        shipped = await client.post(
            f"/test/orders/{order_id}/shipments",
            json={"tracking": "1ZABC", "carrier": "UPS"},
            headers=headers,
        )
        assert shipped.status_code == 201
        body = shipped.json()["order"]
        assert body["status"] == "shipped" and body["shipments"][0]["tracking"] == "1ZABC"
        recent = await client.get(
            "/test/orders", params={"modified_since": clock.now().isoformat()}, headers=headers
        )
        assert [o["id"] for o in recent.json()["orders"]] == [order_id]
        again = await client.post(
            f"/test/orders/{order_id}/shipments",
            json={"tracking": "1ZABC", "carrier": "UPS"},
            headers=headers,
        )
        assert again.status_code == 400 and again.json()["error"] == "nothing_to_ship"
        sku = CATALOG[0].sku
        put = await client.put(f"/test/inventory/{sku}", json={"quantity": 7}, headers=headers)
        assert put.json() == {"sku": sku, "quantity": 7} and sim.inventory[sku] == 7
    assert sandbox.log.count("test.shipments.create", method="POST") == 2
