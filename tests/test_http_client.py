"""ApiClient against the in-process sandbox (and a few hand-made transports)."""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest

from tf_console.clock import FakeClock
from tf_console.marketplaces.base import (
    MalformedResponse,
    MarketplaceError,
    NotConfigured,
    OutcomeUnknown,
    PermanentError,
    RateLimited,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.health import HealthRecorder
from tf_console.marketplaces.http import ApiClient, ClientSettings, NotApplied, PlatformHooks, check_url
from tf_console.marketplaces.ratelimit import BucketSpec, RateLimiter
from tf_console.marketplaces.testplatform import TestMarketplace, create_test_marketplace
from tf_console.models import Order, OrderStatus, Platform, PlatformState, Shipment
from tf_console.sandbox import IN_PROCESS_BASE_URL, Sandbox, SandboxTransport
from tf_console.sandbox.faults import FaultKind
from tf_console.sandbox.testsim import DEMO_CLIENT_ID, DEMO_REFRESH_TOKEN, TestShopSimulator

SHIP = "test.shipments.create"


@dataclass
class Rig:
    clock: FakeClock
    sandbox: Sandbox
    sim: TestShopSimulator
    market: TestMarketplace

    @property
    def client(self) -> ApiClient:
        return self.market.client

    @property
    def health(self) -> HealthRecorder:
        return self.market.client.health


def make_rig(
    *,
    settings: ClientSettings | None = None,
    backfill: int = 30,
    rate_scale: float = 1.0,
    access_ttl: float = 3600.0,
    rotations: list[str] | None = None,
    short_pages: float = 0.25,
) -> Rig:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=7, rate_scale=rate_scale, short_page_probability=short_pages)
    sim = TestShopSimulator(sandbox, backfill=backfill, orders_per_hour=0, access_ttl=access_ttl)
    sandbox.add(sim)

    def remember(grant: object) -> None:
        if rotations is not None:
            rotations.append(getattr(grant, "refresh_token", None) or "")

    market = create_test_marketplace(
        base_url=IN_PROCESS_BASE_URL,
        client_id=DEMO_CLIENT_ID,
        refresh_token=DEMO_REFRESH_TOKEN,
        clock=clock,
        rng=random.Random(3),
        transport=SandboxTransport(sandbox, sleep=clock.sleep),
        settings=settings or ClientSettings(read_timeout=5.0),
        rate_scale=rate_scale,
        on_rotate=remember,
    )
    return Rig(clock, sandbox, sim, market)


def open_order(rig: Rig) -> str:
    for order in rig.sim.book.orders.values():
        if order.status.value == "unshipped" and not order.fulfilled_by_marketplace:
            return order.order_id
    raise AssertionError("the generated shop has no unshipped order")


async def local_order(rig: Rig, order_id: str) -> Order:
    [order] = await rig.market.fetch_orders_by_id([order_id])
    return order


def shipment_for(order: Order, tracking: str = "1Z999AA10123456784") -> Shipment:
    return Shipment(shipment_id="s-1", carrier="UPS", tracking=tracking, shipped_at=order.updated_at)


# ---------------------------------------------------------------------------
# URLs


def test_plain_http_is_refused_except_to_this_machine() -> None:
    with pytest.raises(NotConfigured) as caught:
        check_url("http://api.amazon.com/orders", Platform.AMAZON)
    assert "https" in caught.value.sentence
    for ok in (
        "http://127.0.0.1:8765/x",
        "http://localhost/x",
        "http://[::1]:80/x",
        "https://api.ebay.com/ws",
    ):
        assert check_url(ok, Platform.EBAY).host
    with pytest.raises(NotConfigured):
        check_url("ftp://example.com/", Platform.ETSY)


async def test_a_call_to_plain_http_elsewhere_never_leaves() -> None:
    rig = make_rig()
    with pytest.raises(NotConfigured):
        await rig.client.request("me", "GET", "http://sandbox.example.com/test/me", idempotent=True)
    assert rig.sandbox.log.total == 0


# ---------------------------------------------------------------------------
# Reads: retries


async def test_read_recovers_from_5xx() -> None:
    rig = make_rig()
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, route="test.orders.get", times=2, status=503)
    order = await local_order(rig, open_order(rig))
    assert order.status is OrderStatus.UNSHIPPED
    records = [r for r in rig.health.records() if r.operation == "orders.get"]
    assert [(r.status, r.ok, r.attempt) for r in records] == [
        (503, False, 1),
        (503, False, 2),
        (200, True, 3),
    ]
    snapshot = rig.health.snapshot()  # recovered, but half the recent calls failed
    assert snapshot.state is PlatformState.DEGRADED and "50%" in snapshot.reason


async def test_read_gives_up_after_max_attempts() -> None:
    rig = make_rig(settings=ClientSettings(max_attempts=3))
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, route="test.orders.get", status=500)
    with pytest.raises(TransientError) as caught:
        await local_order(rig, open_order(rig))
    assert "HTTP 500" in caught.value.sentence
    assert rig.sandbox.log.count("test.orders.get") == 3
    assert rig.health.snapshot().state is PlatformState.DOWN


async def test_429_retry_after_in_seconds_is_honoured() -> None:
    rig = make_rig()
    rig.sandbox.faults.inject(FaultKind.RATE_LIMIT, route="test.orders.get", times=1, retry_after=17)
    await local_order(rig, open_order(rig))
    assert max(rig.clock.slept) >= 17.0
    assert rig.sandbox.log.count("test.orders.get") == 2


async def test_429_retry_after_as_http_date_is_honoured() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def answer(request: httpx.Request) -> httpx.Response:
        calls.append(clock.now().timestamp())
        if len(calls) == 1:
            when = email.utils.format_datetime(clock.now() + timedelta(seconds=42), usegmt=True)
            return httpx.Response(429, headers={"Retry-After": when}, json={"error": "slow down"})
        return httpx.Response(200, json={"ok": True})

    client = plain_client(clock, httpx.MockTransport(answer))
    response = await client.request("ping", "GET", "https://api.example.com/ping", idempotent=True)
    assert response.json() == {"ok": True}
    assert calls[1] - calls[0] >= 42.0


async def test_retry_after_beyond_the_retry_budget_is_raised_not_slept() -> None:
    rig = make_rig(settings=ClientSettings(max_retry_seconds=60))
    rig.sandbox.faults.inject(FaultKind.RATE_LIMIT, route="test.orders.get", times=1, retry_after=86400)
    with pytest.raises(RateLimited) as caught:
        await local_order(rig, open_order(rig))
    assert caught.value.retry_after is not None and caught.value.retry_after >= 86400
    assert not any(s >= 86400 for s in rig.clock.slept)


async def test_backoff_is_exponential_with_full_jitter() -> None:
    rig = make_rig(settings=ClientSettings(max_attempts=5, backoff_base=1.0, backoff_cap=60.0))
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, route="test.me", times=4)
    await rig.market.check_credentials()
    backoffs = rig.clock.slept[-4:]
    for attempt, slept in enumerate(backoffs, start=1):
        assert 0.0 <= slept <= 2 ** (attempt - 1)
    assert len(set(backoffs)) == 4  # jittered, not a fixed ladder


async def test_truncated_read_is_retried() -> None:
    rig = make_rig()
    rig.sandbox.faults.inject(FaultKind.TRUNCATED, route="test.orders.get", times=1)
    await local_order(rig, open_order(rig))
    records = [r for r in rig.health.records() if r.operation == "orders.get"]
    assert [r.ok for r in records] == [False, True]
    assert records[0].error_code == "RemoteProtocolError"


async def test_malformed_body_is_a_health_error_not_a_crash() -> None:
    rig = make_rig()
    rig.sandbox.faults.inject(FaultKind.MALFORMED, route="test.orders.get", times=1)
    with pytest.raises(MalformedResponse) as caught:
        await local_order(rig, open_order(rig))
    assert "could not be read" in caught.value.sentence
    last = rig.health.records()[-1]
    assert (last.ok, last.error_code, last.status) == (False, "malformed", 200)
    assert rig.health.snapshot().state is PlatformState.DEGRADED
    await local_order(rig, open_order(rig))  # the next call simply works


async def test_a_malformed_order_in_a_page_costs_that_order_only() -> None:
    clock = FakeClock()
    page = {
        "orders": [
            {
                "id": "A-1",
                "status": "paid",
                "created_at": "2026-11-01T10:00:00Z",
                "updated_at": "2026-11-01T10:00:00Z",
                "currency": "USD",
                "total": "5.00",
                "lines": [],
            },
            {
                "id": "A-2",
                "status": "teleported",
                "created_at": "2026-11-01T10:00:00Z",
                "updated_at": "2026-11-01T10:00:00Z",
            },
        ],
        "next_page_token": None,
    }
    client = plain_client(clock, httpx.MockTransport(lambda r: httpx.Response(200, json=page)))
    market = TestMarketplace(client)
    pages = [p async for p in market.fetch_orders(clock.now() - timedelta(days=1))]
    assert [o.order_id for o in pages[0].orders] == ["A-1"]
    assert pages[0].errors and "A-2" in pages[0].errors[0] and "teleported" in pages[0].errors[0]
    assert client.health.records()[-1].kind == "note"


async def test_response_size_cap_by_content_length_and_by_stream() -> None:
    clock = FakeClock()
    big = b"x" * 5000

    class Chunked(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(10):
                yield big

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/declared":
            return httpx.Response(200, content=big * 10)
        return httpx.Response(200, stream=Chunked())  # no Content-Length: counted while streaming

    client = plain_client(clock, httpx.MockTransport(answer), ClientSettings(max_response_bytes=20_000))
    for path in ("/declared", "/streamed"):
        with pytest.raises(MalformedResponse) as caught:
            await client.request("big", "GET", f"https://api.example.com{path}", idempotent=True)
        assert "larger than" in caught.value.sentence
    assert [r.error_code for r in client.health.records()] == ["too_large", "too_large"]


# ---------------------------------------------------------------------------
# Side effects: never re-sent blindly


async def test_side_effect_with_a_timeout_is_outcome_unknown_and_sent_once() -> None:
    rig = make_rig()
    order = await local_order(rig, open_order(rig))
    rig.sandbox.faults.inject(FaultKind.TIMEOUT, route=SHIP, apply_first=True)
    with pytest.raises(OutcomeUnknown) as caught:
        await rig.market.confirm_shipment(order, shipment_for(order))
    assert "checked" in caught.value.sentence
    assert rig.sandbox.log.count(SHIP) == 1
    assert rig.sandbox.log.count(SHIP, applied_only=True) == 1
    assert rig.health.records()[-1].error_code == "outcome_unknown"
    rig.sandbox.faults.clear()
    remote = await rig.market.read_shipments(order)  # what the outbox does before any re-send
    assert remote.tracking_numbers == ["1Z999AA10123456784"]


@pytest.mark.parametrize(
    ("kind", "applied"),
    [
        (FaultKind.DROP_AFTER_APPLY, 1),
        (FaultKind.TRUNCATED, 1),
        (FaultKind.MALFORMED, 1),
        (FaultKind.SERVER_ERROR, 0),
    ],
)
async def test_side_effect_with_an_unreadable_or_lost_answer_is_never_resent(
    kind: FaultKind, applied: int
) -> None:
    rig = make_rig()
    order = await local_order(rig, open_order(rig))
    rig.sandbox.faults.inject(kind, route=SHIP, status=500)
    with pytest.raises(OutcomeUnknown):
        await rig.market.confirm_shipment(order, shipment_for(order))
    assert rig.sandbox.log.count(SHIP) == 1
    assert rig.sandbox.log.count(SHIP, applied_only=True) == applied


async def test_side_effect_is_retried_when_it_certainly_did_not_arrive() -> None:
    rig = make_rig()
    order = await local_order(rig, open_order(rig))
    rig.sandbox.faults.inject(FaultKind.CONNECT_ERROR, route=SHIP, times=1)
    rig.sandbox.faults.inject(FaultKind.RATE_LIMIT, route=SHIP, times=1, retry_after=3)
    result = await rig.market.confirm_shipment(order, shipment_for(order))
    assert result.state.value == "confirmed"
    assert rig.sandbox.log.count(SHIP, applied_only=True) == 1
    assert rig.sandbox.log.count(SHIP) == 3


async def test_side_effect_refused_for_good_is_rejected_with_the_marketplace_words() -> None:
    rig = make_rig()
    order = await local_order(rig, open_order(rig))
    result = await rig.market.confirm_shipment(order, shipment_for(order, tracking="  "))
    assert result.state.value == "rejected"
    assert "tracking number is required" in result.answer
    assert rig.sandbox.log.count(SHIP) == 1


async def test_platform_may_declare_a_5xx_not_applied() -> None:
    clock = FakeClock()
    sent: list[int] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return httpx.Response(503 if len(sent) == 1 else 200, json={"busy": len(sent) == 1})

    def classify(response: httpx.Response) -> MarketplaceError | None:
        if response.json().get("busy"):
            return NotApplied("The marketplace was busy and did nothing.")
        return None

    client = plain_client(clock, httpx.MockTransport(answer), hooks=PlatformHooks(classify=classify))
    await client.request("write", "POST", "https://api.example.com/w", json={}, idempotent=False)
    assert len(sent) == 2


async def test_caching_is_for_reads_only_and_expires() -> None:
    rig = make_rig(settings=ClientSettings(cache_ttl=300))
    await rig.market.check_credentials()
    await rig.market.check_credentials()
    assert rig.sandbox.log.count("test.me") == 1
    rig.clock.advance(301)
    await rig.market.check_credentials()
    assert rig.sandbox.log.count("test.me") == 2
    with pytest.raises(ValueError):
        await rig.client.request("w", "POST", "/test/me", idempotent=False, cache=True)


# ---------------------------------------------------------------------------
# Tokens


async def test_expired_token_mid_run_is_refreshed_once_for_all_concurrent_calls() -> None:
    rig = make_rig()
    ids = [o.order_id for o in list(rig.sim.book.orders.values())[:6]]
    await local_order(rig, ids[0])  # first token
    assert rig.sim.tokens.refreshes == 1
    rig.sandbox.expire_tokens()
    found = await asyncio.gather(*(local_order(rig, i) for i in ids))
    assert [o.order_id for o in found] == ids
    assert rig.sim.tokens.refreshes == 2  # one shared refresh, not six
    refused = rig.sandbox.log.count("test.orders.get", status=401)
    assert 1 <= refused <= len(ids)


async def test_expired_token_at_start_of_a_page_walk() -> None:
    rig = make_rig(backfill=250, short_pages=0.0)
    pages = rig.market.fetch_orders(rig.clock.now() - timedelta(days=30))
    first = await anext(pages)
    rig.sandbox.faults.inject(FaultKind.EXPIRED_TOKEN, route="test.orders.list", times=1)
    rest = [p async for p in pages]
    assert len(first.orders) + sum(len(p.orders) for p in rest) == 250
    assert rig.sim.tokens.refreshes == 2


async def test_second_auth_failure_needs_reauth_naming_the_variable() -> None:
    rig = make_rig()
    rig.sandbox.faults.inject(FaultKind.EXPIRED_TOKEN, route="test.orders.get", times=2)
    with pytest.raises(ReauthNeeded) as caught:
        await local_order(rig, open_order(rig))
    assert caught.value.variable == "TEST_REFRESH_TOKEN"
    assert "tf-console creds set TEST_REFRESH_TOKEN" in caught.value.sentence
    snapshot = rig.health.snapshot()
    assert snapshot.state is PlatformState.REAUTH
    assert "tf-console creds set TEST_REFRESH_TOKEN" in snapshot.reason
    await local_order(rig, open_order(rig))  # fixed on the marketplace side: the next call clears it
    assert rig.health.snapshot().state is not PlatformState.REAUTH


async def test_revoked_refresh_token_needs_reauth() -> None:
    rig = make_rig()
    rig.sim.tokens.revoke_refresh_tokens()
    with pytest.raises(ReauthNeeded) as caught:
        await local_order(rig, open_order(rig))
    assert "TEST_REFRESH_TOKEN" in caught.value.sentence
    assert rig.health.snapshot().state is PlatformState.REAUTH
    assert rig.sandbox.log.count("test.orders.get") == 0  # nothing sent without a token


async def test_rotated_refresh_tokens_are_handed_over_and_used() -> None:
    rotations: list[str] = []
    rig = make_rig(rotations=rotations)
    await local_order(rig, open_order(rig))
    rig.sandbox.expire_tokens()
    await local_order(rig, open_order(rig))
    assert len(rotations) == 2 and rotations[0] != rotations[1]
    # the sandbox revoked the first one on rotation, so the second refresh used the rotated token
    assert rig.sim.tokens.current_refresh_tokens == {rotations[1]}


async def test_token_is_refreshed_before_it_expires() -> None:
    rig = make_rig(access_ttl=600)
    await local_order(rig, open_order(rig))
    rig.clock.advance(600 - 200)  # inside the 5-minute margin
    await local_order(rig, open_order(rig))
    assert rig.sim.tokens.refreshes == 2
    assert rig.sandbox.log.count("test.orders.get", status=401) == 0
    expires = rig.health.snapshot().token_expires_at
    assert expires is not None and expires > rig.clock.now()


# ---------------------------------------------------------------------------
# Rate limits against the sandbox's own


async def test_client_waits_instead_of_provoking_429() -> None:
    rig = make_rig(backfill=60, rate_scale=5.0)
    ids = [o.order_id for o in rig.sim.book.orders.values()]
    await asyncio.gather(*(local_order(rig, i) for i in ids))
    async for _ in rig.market.fetch_orders(rig.clock.now() - timedelta(days=30)):
        pass
    assert rig.sandbox.log.throttled == 0
    assert rig.client.limiter.waits > 0  # it really had to wait for tokens


def plain_client(
    clock: FakeClock,
    transport: httpx.AsyncBaseTransport,
    settings: ClientSettings | None = None,
    hooks: PlatformHooks | None = None,
) -> ApiClient:
    limiter = RateLimiter(Platform.TEST, clock, default=BucketSpec(100, 100))
    return ApiClient(
        Platform.TEST,
        clock=clock,
        rng=random.Random(1),
        limiter=limiter,
        health=HealthRecorder(Platform.TEST, clock),
        hooks=hooks,
        base_url="https://api.example.com",
        transport=transport,
        settings=settings,
    )


async def test_permanent_4xx_is_not_retried() -> None:
    clock = FakeClock()
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(404, content=json.dumps({"error": "nope"}).encode())

    client = plain_client(clock, httpx.MockTransport(answer))
    with pytest.raises(PermanentError):
        await client.request("get", "GET", "https://api.example.com/x", idempotent=True)
    assert len(sent) == 1


async def test_a_restarted_client_with_restored_buckets_does_not_provoke_429() -> None:
    rig = make_rig(backfill=15)
    ids = list(rig.sim.book.orders)
    await asyncio.gather(*(local_order(rig, i) for i in ids[:10]))  # drains the burst of 10
    saved = rig.client.limiter.state()

    def restarted(restore: bool) -> TestMarketplace:
        market = create_test_marketplace(
            base_url=IN_PROCESS_BASE_URL,
            client_id=DEMO_CLIENT_ID,
            refresh_token=next(iter(rig.sim.tokens.current_refresh_tokens)),
            clock=rig.clock,
            rng=random.Random(9),
            transport=SandboxTransport(rig.sandbox, sleep=rig.clock.sleep),
        )
        if restore:
            assert market.client.limiter.restore(saved)
        return market

    careful = restarted(restore=True)
    await careful.fetch_orders_by_id(ids[10:13])
    assert rig.sandbox.log.throttled == 0
    assert careful.client.limiter.waits > 0  # it waited for the bucket the first process drained

    forgetful = restarted(restore=False)
    await asyncio.gather(*(forgetful.fetch_orders_by_id([i]) for i in ids[:10]))
    assert rig.sandbox.log.throttled > 0  # believing in a full bucket after a restart provokes 429s
