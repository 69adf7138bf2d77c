"""Alerts through the sync engine: scripted marketplace outcomes, the engine's rounds (polls,
deliveries, periodic jobs) and a fake clock.  Each alert fires once and clears once."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alerts_support import HealthyFake, Shop, open_shop, reauth
from tests.sync_fakes import make_order
from tf_console.alerts.doctor import alert_findings
from tf_console.alerts.state import ALERTS_FILE
from tf_console.clock import FakeClock
from tf_console.doctor import Level
from tf_console.marketplaces.base import CredentialCheck, TransientError
from tf_console.marketplaces.ratelimit import DailyBudgetSpec, RateUpdate
from tf_console.models import JobState, OrderStatus, Platform
from tf_console.sync.shipping import ShipRequest, enqueue_shipment

UPS_OK = "1Z999AA10123456784"
DOWN = TransientError("Test marketplace answered 503; it will be retried.")


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    clock = FakeClock()
    market = HealthyFake(clock)
    market.add(make_order(1, clock.now() - timedelta(hours=2)))
    opened = open_shop(tmp_path, clock=clock, markets={Platform.TEST: market})
    yield opened
    opened.close()


def of(shop: Shop, prefix: str) -> list[tuple[str, str]]:
    return [(e.event, e.key) for e in shop.events if e.key.startswith(prefix)]


def counts(shop: Shop, prefix: str) -> Counter[str]:
    return Counter(e.event for e in shop.events if e.key.startswith(prefix))


async def minutes(shop: Shop, n: int, step: float = 1.0) -> None:
    for _ in range(n):
        shop.clock.advance(step * 60)
        await shop.round()


async def test_a_failing_platform_fires_once_survives_a_restart_and_clears_once(
    shop: Shop, tmp_path: Path
) -> None:
    await shop.round()
    assert shop.events == []
    shop.market.fail_fetch = DOWN
    for n in range(1, 3):
        shop.clock.advance(300)
        await shop.round()
        assert shop.events == [], f"nothing after {n} failed poll(s)"
    shop.clock.advance(300)
    await shop.round()
    assert of(shop, "") == [("fired", "platform_failing:test")]
    assert "3 poll(s) in a row" in shop.events[0].sentence and "503" in shop.events[0].sentence
    await minutes(shop, 4, step=5)
    assert counts(shop, "platform_failing") == Counter(fired=1)

    # Doctor reads the persisted state: the alert is a warning line.
    lines = [f for f in alert_findings(shop.runtime.ctx) if "failed" in f.sentence and "poll" in f.sentence]
    assert lines and lines[0].level is Level.WARN and "CRITICAL" in lines[0].sentence

    # A restart while it still fails raises nothing new: the alert is remembered.
    shop.close()
    again = open_shop(tmp_path, clock=shop.clock, markets=shop.markets)
    try:
        await minutes(again, 3, step=5)
        assert of(again, "platform_failing") == []
        again.market.fail_fetch = None
        await minutes(again, 4)
        assert of(again, "platform_failing") == []  # recovered, still inside the hold
        await minutes(again, 8)
        assert of(again, "platform_failing") == [("cleared", "platform_failing:test")]
        await minutes(again, 5)
        assert len(of(again, "platform_failing")) == 1
        state = json.loads((tmp_path / "data" / ALERTS_FILE).read_text())
        assert "platform_failing:test" not in state["active"] and state["tracks"]["test"]["failures"] == 0
    finally:
        again.close()


async def test_flapping_polls_raise_one_alert(shop: Shop) -> None:
    for n in range(30):  # down three times, then every other poll for two and a half hours
        shop.market.fail_fetch = DOWN if n < 3 or n % 2 else None
        shop.clock.advance(300)
        await shop.round()
    shop.market.fail_fetch = None
    await minutes(shop, 15)
    assert counts(shop, "platform_failing") == Counter(fired=1, cleared=1)


async def test_a_refused_shipment_fires_and_clears_once_the_order_is_resolved(shop: Shop) -> None:
    await shop.round()
    shop.market.confirm_behaviour = "reject"
    enqueue_shipment(shop.runtime.store, ShipRequest(Platform.TEST, "T-00001", "UPS", UPS_OK), shop.clock)
    await shop.round()  # the sender delivers, the marketplace refuses, the periodic hook evaluates
    fired = [e for e in shop.events if e.key.startswith("outbox_rejected")]
    assert [(e.event, e.key) for e in fired] == [("fired", "outbox_rejected:ship:test:T-00001:1")]
    assert "A tracking number is required" in fired[0].sentence
    await minutes(shop, 20)
    # The buyer cancelled meanwhile: the order is no longer waiting, the alert clears once.
    shop.market.update("T-00001", status=OrderStatus.CANCELLED)
    await minutes(shop, 15)
    assert counts(shop, "outbox_rejected") == Counter(fired=1, cleared=1)


async def test_orders_past_ship_by_fire_per_order_and_clear_when_shipped(tmp_path: Path) -> None:
    clock = FakeClock()
    market = HealthyFake(clock)
    for n in (1, 2):
        market.add(make_order(n, clock.now() - timedelta(days=3, hours=1) + timedelta(minutes=30 * n)))
    shop = open_shop(tmp_path, clock=clock, markets={Platform.TEST: market})
    try:
        await shop.round()
        assert [e.key for e in shop.events] == ["ship_by_overdue:test:T-00001"]
        await minutes(shop, 30)
        assert shop.keys("fired") == ["ship_by_overdue:test:T-00001", "ship_by_overdue:test:T-00002"]
        enqueue_shipment(shop.runtime.store, ShipRequest(Platform.TEST, "T-00001", "UPS", UPS_OK), clock)
        await minutes(shop, 12)
        assert shop.keys("cleared") == ["ship_by_overdue:test:T-00001"]
        await minutes(shop, 30)
        assert counts(shop, "ship_by_overdue:test:T-00001") == Counter(fired=1, cleared=1)
        assert counts(shop, "ship_by_overdue:test:T-00002") == Counter(fired=1)
        assert shop.runtime.store.orders.get(Platform.TEST, "T-00001").status is OrderStatus.SHIPPED  # type: ignore[union-attr]
    finally:
        shop.close()


async def test_a_cancellation_request_while_printing_fires_and_clears_once(shop: Shop) -> None:
    await shop.round()
    production = shop.runtime.production
    job = next(j for j in production.jobs() if j.order_id == "T-00001")
    production.start(job.job_id, "mk4s-1")
    assert production.job(job.job_id).state is JobState.PRINTING
    await minutes(shop, 2)
    assert counts(shop, "cancel_while_printing") == Counter()
    shop.market.update("T-00001", cancel_requested=True)
    await minutes(shop, 1)
    fired = [e for e in shop.events if e.key.startswith("cancel_while_printing")]
    assert [(e.event, e.key) for e in fired] == [("fired", "cancel_while_printing:test:T-00001")]
    assert "asked to cancel" in fired[0].sentence and "printing" in fired[0].sentence
    await minutes(shop, 5)
    shop.market.update("T-00001", cancel_requested=False)  # the request was declined
    await minutes(shop, 12)
    assert counts(shop, "cancel_while_printing") == Counter(fired=1, cleared=1)


async def test_credential_checks_run_at_start_and_on_demand_and_alert_once(shop: Shop) -> None:
    shop.market.credentials = reauth()
    await shop.round()  # the first round runs the start-up check
    assert shop.market.credential_calls == 1
    await shop.round()  # …which the next evaluation turns into an alert
    fired = [e for e in shop.events if e.key == "credential_check:test"]
    assert [e.event for e in fired] == ["fired"] and "creds set" in fired[0].sentence
    await minutes(shop, 30)
    assert shop.market.credential_calls == 1  # daily, not every round
    shop.market.credentials = CredentialCheck(True, "Test credentials work (shop 1).")
    results = await shop.alerts.check_credentials([Platform.TEST])  # the health view's "test now"
    assert results[Platform.TEST].ok is True
    await minutes(shop, 12)
    assert counts(shop, "credential_check") == Counter(fired=1, cleared=1)
    shop.clock.advance(24 * 3600)
    await shop.round()
    assert shop.market.credential_calls == 3
    checks = shop.alerts.state().checks
    assert checks["test"].ok is True and "work" in checks["test"].sentence


async def test_daily_quota_nearly_spent_fires_and_clears_once(tmp_path: Path) -> None:
    clock = FakeClock()
    market = HealthyFake(clock, daily=DailyBudgetSpec(limit=5000))
    shop = open_shop(tmp_path, clock=clock, markets={Platform.TEST: market})
    try:
        await shop.round()
        market.client.limiter.apply("orders", RateUpdate(daily_limit=5000, daily_remaining=400))
        await minutes(shop, 3)
        assert [e.key for e in shop.events] == ["quota:test"]
        assert "4,600 of its 5,000" in shop.events[0].sentence
        market.client.limiter.apply("orders", RateUpdate(daily_limit=5000, daily_remaining=5000))
        await minutes(shop, 12)
        assert counts(shop, "quota") == Counter(fired=1, cleared=1)
    finally:
        shop.close()


async def test_a_low_success_rate_over_the_hour_fires_and_clears_once(shop: Shop) -> None:
    health = shop.market.client.health
    for n in range(12):
        health.record_call(
            operation="orders",
            method="GET",
            status=503 if n % 3 else 200,
            latency_ms=30,
            attempt=1,
            ok=not n % 3,
        )
    await shop.round()
    fired = [e for e in shop.events if e.key == "success_rate:test"]
    assert len(fired) == 1 and "in the last hour" in fired[0].sentence
    await minutes(shop, 75, step=1)  # the failures age out of the hour; polls succeed meanwhile
    assert counts(shop, "success_rate") == Counter(fired=1, cleared=1)


async def test_an_expiring_amazon_secret_is_tracked_from_first_sight_and_cleared_by_a_new_one(
    tmp_path: Path,
) -> None:
    clock = FakeClock()
    markets = {Platform.AMAZON: HealthyFake(clock, Platform.AMAZON)}
    values = {"AMAZON_CLIENT_SECRET": "amzn1.oa2-cs.v1.first-secret-0123456789abcdef"}
    shop = open_shop(tmp_path, clock=clock, markets=markets, values=values)
    try:
        await shop.round()
        records = shop.alerts.ages.records()
        assert records["AMAZON_CLIENT_SECRET"].how == "first seen"
        clock.advance(165 * 86400)
        await shop.round()
        assert shop.events == []
        clock.advance(2 * 86400)
        await shop.round()
        assert [e.key for e in shop.events] == ["credential_expiring:AMAZON_CLIENT_SECRET"]
        assert "first seen by tf-console" in shop.events[0].sentence
    finally:
        shop.close()
    rotated = {"AMAZON_CLIENT_SECRET": "amzn1.oa2-cs.v1.second-secret-9876543210fedcba"}
    renewed = open_shop(tmp_path, clock=clock, markets=markets, values=rotated)
    try:
        await minutes(renewed, 12)
        assert [(e.event, e.key) for e in renewed.events] == [
            ("cleared", "credential_expiring:AMAZON_CLIENT_SECRET")
        ]
        assert renewed.alerts.ages.records()["AMAZON_CLIENT_SECRET"].how == "changed"
        stored = (tmp_path / "data" / "credential_ages.json").read_text()
        assert "first-secret" not in stored and "second-secret" not in stored
    finally:
        renewed.close()


async def test_alert_state_and_events_hold_no_buyer_data_or_secret(shop: Shop) -> None:
    shop.market.fail_fetch = TransientError("Test answered 503 with token Atza|IwEBIabc123secret")
    for _ in range(4):
        shop.clock.advance(300)
        await shop.round()
    assert shop.events
    text = (shop.runtime.ctx.data_dir / ALERTS_FILE).read_text()
    blob = text + json.dumps([e.to_json() for e in shop.events])
    assert "Atza|" not in blob and "IwEBIabc123secret" not in blob
