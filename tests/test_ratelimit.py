"""Client-side rate limiting: buckets, the per-minute cap, daily budgets, persistence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_console.clock import FakeClock
from tf_console.marketplaces.base import RateLimited
from tf_console.marketplaces.ratelimit import (
    EBAY_TRADING_DAILY,
    BucketSpec,
    DailyBudgetExhausted,
    DailyBudgetSpec,
    RateLimiter,
    RateUpdate,
)
from tf_console.models import Platform

SEARCH = BucketSpec(rate=0.0056, burst=20)  # Amazon searchOrders


def amazon_limiter(clock: FakeClock, **kw: object) -> RateLimiter:
    return RateLimiter(
        Platform.AMAZON,
        clock,
        operations={"searchOrders": SEARCH, "confirmShipment": BucketSpec(2, 10)},
        **kw,  # type: ignore[arg-type]
    )


async def test_burst_goes_out_at_once_then_calls_wait_for_the_refill() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock)
    for _ in range(20):
        assert await limiter.acquire("searchOrders") == 0.0
    waited = await limiter.acquire("searchOrders")
    assert waited == pytest.approx(1 / 0.0056, rel=1e-6)  # ~178.6 s: one token's refill
    assert clock.slept and sum(clock.slept) == pytest.approx(waited)


async def test_operations_have_separate_buckets() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock)
    for _ in range(20):
        await limiter.acquire("searchOrders")
    assert await limiter.acquire("confirmShipment") == 0.0  # not held up by the drained search bucket


async def test_a_restart_does_not_refill_the_bucket() -> None:
    clock = FakeClock()
    before = amazon_limiter(clock)
    for _ in range(20):
        await before.acquire("searchOrders")
    saved = before.state()

    clock.advance(30)  # the process was down for 30 s
    after = amazon_limiter(clock)
    assert after.wait_time("searchOrders") == 0.0  # a fresh limiter would believe in a full bucket
    assert after.restore(saved)
    wait = after.wait_time("searchOrders")
    assert wait == pytest.approx(1 / 0.0056 - 30, rel=1e-6)  # still waiting, minus the downtime's refill
    await after.acquire("searchOrders")
    assert clock.slept[-1] == pytest.approx(wait)


async def test_restore_ignores_damaged_or_foreign_state() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock)
    assert not limiter.restore(None)
    assert not limiter.restore({"version": 99})
    assert not limiter.restore({"version": 1, "platform": "ebay", "buckets": {}})
    assert not limiter.restore(
        {"version": 1, "platform": "amazon", "buckets": {"searchOrders": {"level": "x"}}}
    )
    assert limiter.wait_time("searchOrders") == 0.0


async def test_global_per_minute_cap() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Platform.ETSY, clock, default=BucketSpec(100, 100), per_minute_cap=10)
    for _ in range(10):
        await limiter.acquire("getShopReceipts")
        clock.advance(1)
    # the 11th call must wait until the first one is 60 s old
    waited = await limiter.acquire("getShopReceipts")
    assert waited == pytest.approx(50.0)
    assert limiter.snapshot().calls_in_window == 10


async def test_ebay_daily_budget_resets_at_pacific_midnight() -> None:
    clock = FakeClock(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))  # 07:00 in Los Angeles (PST)
    limiter = RateLimiter(Platform.EBAY, clock, default=BucketSpec(100, 100), daily=EBAY_TRADING_DAILY)
    limiter.restore({**limiter.state(), "daily": {"limit": 5000, "remaining": 2, "resets_at": None}})
    await limiter.acquire("GetOrders")
    await limiter.acquire("GetOrders")
    with pytest.raises(DailyBudgetExhausted) as caught:
        await limiter.acquire("GetOrders")
    assert caught.value.resume_at == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)  # midnight PST
    assert "5,000" in caught.value.sentence and "resume" in caught.value.sentence
    await limiter.acquire("token")  # the OAuth call is not a Trading call
    clock.set(datetime(2026, 11, 3, 8, 0, 1, tzinfo=UTC))
    await limiter.acquire("GetOrders")
    assert limiter.snapshot().daily_remaining == 4999


async def test_daily_counter_survives_a_restart() -> None:
    clock = FakeClock()
    first = RateLimiter(Platform.EBAY, clock, daily=EBAY_TRADING_DAILY)
    for _ in range(7):
        await first.acquire("GetOrders")
    second = RateLimiter(Platform.EBAY, clock, daily=EBAY_TRADING_DAILY)
    assert second.restore(first.state())
    assert second.snapshot().daily_remaining == 4993


async def test_headers_teach_rates_and_remaining() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock)
    limiter.apply("searchOrders", RateUpdate(rate=0.5))  # x-amzn-RateLimit-Limit: 0.5
    limiter.apply("searchOrders", RateUpdate(remaining=0))
    assert limiter.wait_time("searchOrders") == pytest.approx(2.0)
    limiter.apply("searchOrders", RateUpdate(remaining=15))  # never raises our own estimate
    assert limiter.wait_time("searchOrders") == pytest.approx(2.0)
    # the learned rate survives a restart
    again = amazon_limiter(clock)
    again.restore(limiter.state())
    assert again.wait_time("searchOrders") == pytest.approx(2.0)


async def test_etsy_style_daily_remainder_from_headers() -> None:
    clock = FakeClock()
    limiter = RateLimiter(Platform.ETSY, clock, default=BucketSpec(10, 10))
    limiter.apply("getShopReceipts", RateUpdate(rate=10, remaining=4, daily_limit=10000, daily_remaining=1))
    snap = limiter.snapshot("getShopReceipts")
    assert (snap.daily_remaining, snap.daily_budget) == (1, 10000)
    await limiter.acquire("getShopReceipts")
    with pytest.raises(DailyBudgetExhausted):
        await limiter.acquire("getShopReceipts")
    clock.advance(3601)  # a rolling day: one probe call an hour, whose headers tell the truth
    await limiter.acquire("getShopReceipts")
    with pytest.raises(DailyBudgetExhausted):
        await limiter.acquire("getShopReceipts")


async def test_throttled_blocks_the_bucket_for_retry_after() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock)
    limiter.throttled("confirmShipment", retry_after=7.0)
    assert limiter.wait_time("confirmShipment") == pytest.approx(7.0)


async def test_a_wait_longer_than_max_wait_is_postponed_not_slept() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock)
    for _ in range(20):
        await limiter.acquire("searchOrders")
    with pytest.raises(RateLimited) as caught:
        await limiter.acquire("searchOrders", max_wait=60)
    assert caught.value.retry_after == pytest.approx(1 / 0.0056, rel=1e-6)
    assert clock.slept == []


def test_specs_refuse_nonsense() -> None:
    with pytest.raises(ValueError):
        BucketSpec(0, 5)
    with pytest.raises(ValueError):
        RateLimiter(Platform.TEST, FakeClock(), per_minute_cap=0)
    assert DailyBudgetSpec(limit=10).reset_tz is None


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(min_value=0.05, max_value=20),
    burst=st.integers(min_value=1, max_value=30),
    gaps=st.lists(st.floats(min_value=0, max_value=5), min_size=1, max_size=80),
)
async def test_no_window_ever_sees_more_than_burst_plus_refill(
    rate: float, burst: int, gaps: list[float]
) -> None:
    clock = FakeClock()
    limiter = RateLimiter(Platform.TEST, clock, default=BucketSpec(rate, burst))
    grants: list[float] = []
    for gap in gaps:
        clock.advance(gap)
        await limiter.acquire("x")
        grants.append(clock.monotonic())
    for i, start in enumerate(grants):
        for j in range(i, len(grants)):
            span = grants[j] - start
            assert j - i + 1 <= burst + rate * span + 1e-4  # float sums of the fake clock


async def test_snapshot_reports_levels_for_health() -> None:
    clock = FakeClock()
    limiter = amazon_limiter(clock, per_minute_cap=100)
    await limiter.acquire("confirmShipment")
    snap = limiter.snapshot()
    assert snap.bucket == "confirmShipment"
    assert snap.bucket_level == pytest.approx(9.0)
    assert snap.bucket_capacity == 10
    assert (snap.calls_in_window, snap.window_budget) == (1, 100)
    clock.advance(timedelta(seconds=61).total_seconds())
    assert limiter.snapshot().calls_in_window == 0
