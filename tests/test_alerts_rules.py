"""Each alert rule on scripted observations: it fires once when its cause starts and clears once
after the cause stayed away for the hold time; flapping inside the hold raises nothing new."""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tf_console.alerts.credentials import LIFETIMES, CredentialAge, CredentialRecord, credential_ages
from tf_console.alerts.model import AlertEvent, Rule, Severity, Thresholds
from tf_console.alerts.rules import (
    CallStats,
    CancelWhilePrinting,
    Observations,
    OverdueOrder,
    Quota,
    RejectedItem,
    evaluate_rules,
)
from tf_console.alerts.state import AlertState, CheckResult, PlatformTrack, reconcile
from tf_console.clock import FakeClock
from tf_console.models import Platform

TEST = "test"
T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


class Timeline:
    """Runs observations through the rules and the damping, minute by minute on a fake clock."""

    def __init__(self, thresholds: Thresholds | None = None) -> None:
        self.clock = FakeClock(T0)
        self.th = thresholds or Thresholds()
        self.state = AlertState()
        self.events: list[AlertEvent] = []

    def step(self, obs: Observations, minutes: float = 1.0) -> list[AlertEvent]:
        obs.now = self.clock.now()
        conditions, ran = evaluate_rules(obs, self.th)
        events = reconcile(self.state, conditions, obs.now, self.th.clear_after, evaluated=ran)
        self.events.extend(events)
        self.clock.advance(minutes * 60)
        return events

    def count(self) -> Counter[tuple[str, str]]:
        return Counter((e.key, e.event) for e in self.events)


def obs(**kw: object) -> Observations:
    return Observations(now=T0, platforms=(Platform.TEST,), **kw)  # type: ignore[arg-type]


def failing(
    failures: int, since: datetime | None, error: str = "Test answered 503."
) -> dict[str, PlatformTrack]:
    return {TEST: PlatformTrack(failures=failures, failing_since=since, last_error=error)}


def test_platform_failing_fires_at_the_third_poll_and_clears_once_after_the_hold() -> None:
    line = Timeline()
    began = line.clock.now()
    assert line.step(obs(tracks=failing(1, began))) == []
    assert line.step(obs(tracks=failing(2, began))) == []
    fired = line.step(obs(tracks=failing(3, began)))
    assert [(e.event, e.key, e.severity) for e in fired] == [
        ("fired", "platform_failing:test", Severity.CRITICAL)
    ]
    assert "3 poll(s) in a row" in fired[0].sentence and "503" in fired[0].sentence
    assert fired[0].since == began
    for n in range(4, 10):  # still failing: no new event, the words follow the streak
        assert line.step(obs(tracks=failing(n, began))) == []
    assert "9 poll(s)" in line.state.active["platform_failing:test"].sentence
    for _ in range(10):  # recovered, but the hold (10 min) has not passed
        assert line.step(obs(tracks=failing(0, None))) == []
    cleared = line.step(obs(tracks=failing(0, None)))
    assert [(e.event, e.key) for e in cleared] == [("cleared", "platform_failing:test")]
    assert cleared[0].sentence.startswith("Resolved: Test polls are failing — the cause has been gone since")
    assert line.count() == Counter(
        {("platform_failing:test", "fired"): 1, ("platform_failing:test", "cleared"): 1}
    )
    assert line.state.active == {}


def test_a_slow_failure_fires_on_time_even_below_the_poll_count() -> None:
    line = Timeline(Thresholds(failing_polls=10, failing_minutes=15))
    began = line.clock.now()
    for _ in range(15):
        assert line.step(obs(tracks=failing(1, began))) == []
    assert [e.event for e in line.step(obs(tracks=failing(2, began)))] == ["fired"]


def test_a_flapping_platform_raises_one_alert_not_one_per_poll() -> None:
    line = Timeline()
    began = line.clock.now()
    # fail, fail, fail (fires), ok, fail, ok, fail … every few minutes for two hours
    for n in range(40):
        track = failing(3, began) if n < 3 or n % 2 == 0 else failing(0, None)
        line.step(obs(tracks=track), minutes=3)
    for _ in range(12):
        line.step(obs(tracks=failing(0, None)))
    assert line.count() == Counter(
        {("platform_failing:test", "fired"): 1, ("platform_failing:test", "cleared"): 1}
    )


def test_success_rate_under_the_threshold_fires_and_clears_once() -> None:
    line = Timeline()
    quiet = CallStats(calls=5, ok=0)  # too few calls to judge
    poor = CallStats(calls=20, ok=12, last_problem="Test answered 503")
    good = CallStats(calls=40, ok=36)
    assert line.step(obs(calls={Platform.TEST: quiet})) == []
    fired = line.step(obs(calls={Platform.TEST: poor}))
    assert [e.key for e in fired] == ["success_rate:test"]
    assert "60%" in fired[0].sentence and "12 of 20" in fired[0].sentence
    for _ in range(12):
        line.step(obs(calls={Platform.TEST: good}))
    assert line.count() == Counter({("success_rate:test", "fired"): 1, ("success_rate:test", "cleared"): 1})


def test_quota_nearly_spent_fires_and_clears_once_after_the_reset() -> None:
    line = Timeline()
    test = Platform.TEST
    line.step(obs(quotas={test: Quota(remaining=1000, budget=5000)}))
    fired = line.step(obs(quotas={test: Quota(remaining=400, budget=5000)}))
    assert [e.key for e in fired] == ["quota:test"] and "4,600 of its 5,000" in fired[0].sentence
    line.step(obs(quotas={test: Quota(remaining=10, budget=5000)}))
    for _ in range(11):  # the day reset
        line.step(obs(quotas={test: Quota(remaining=5000, budget=5000)}))
    assert line.count() == Counter({("quota:test", "fired"): 1, ("quota:test", "cleared"): 1})


def test_credential_check_failure_fires_and_a_later_pass_clears() -> None:
    line = Timeline()
    bad = CheckResult(at=T0, ok=False, sentence="Test refused the refresh token; set it again")
    unknown = CheckResult(at=T0, ok=None, sentence="Test did not answer.")
    fired = line.step(obs(checks={TEST: bad}))
    assert [(e.key, e.severity) for e in fired] == [("credential_check:test", Severity.CRITICAL)]
    assert "refused the refresh token" in fired[0].sentence
    line.step(obs(checks={TEST: bad}))
    good = CheckResult(at=T0, ok=True, sentence="works")
    for _ in range(11):
        line.step(obs(checks={TEST: good}))
    # a check that could not run says nothing about the credentials
    line.step(obs(checks={TEST: unknown}))
    assert line.count() == Counter(
        {("credential_check:test", "fired"): 1, ("credential_check:test", "cleared"): 1}
    )


def amazon_secret_age(set_at: datetime) -> list[CredentialAge]:
    records = {"AMAZON_CLIENT_SECRET": CredentialRecord(since=set_at, how="creds set", fingerprint="x")}
    return credential_ages(records, {"AMAZON_CLIENT_SECRET": "amzn-secret-value"})


def test_amazon_client_secret_warns_ahead_then_expires_then_clears_when_replaced() -> None:
    line = Timeline()
    set_at = T0 - timedelta(days=160)
    where = (Platform.AMAZON,)

    def step(ages: list[CredentialAge], days: float = 1.0) -> list[AlertEvent]:
        return line.step(Observations(now=T0, platforms=where, credentials=ages), minutes=days * 24 * 60)

    for _ in range(6):  # 160..165 days: quiet
        assert step(amazon_secret_age(set_at)) == []
    fired = step(amazon_secret_age(set_at))  # 166 days: 14 left
    assert [(e.key, e.severity) for e in fired] == [
        ("credential_expiring:AMAZON_CLIENT_SECRET", Severity.WARNING)
    ]
    assert (
        "every 180 days" in fired[0].sentence
        and "tf-console creds set AMAZON_CLIENT_SECRET" in fired[0].sentence
    )
    for _ in range(13):
        step(amazon_secret_age(set_at))
    expired = step(amazon_secret_age(set_at))  # day 180
    assert [(e.event, e.key) for e in expired] == [("fired", "credential_expired:AMAZON_CLIENT_SECRET")]
    step(amazon_secret_age(set_at))  # the "expiring" alert clears once the hold has passed
    replaced = line.clock.now()
    step(amazon_secret_age(replaced))
    step(amazon_secret_age(replaced))
    assert line.count() == Counter(
        {
            ("credential_expiring:AMAZON_CLIENT_SECRET", "fired"): 1,
            ("credential_expiring:AMAZON_CLIENT_SECRET", "cleared"): 1,
            ("credential_expired:AMAZON_CLIENT_SECRET", "fired"): 1,
            ("credential_expired:AMAZON_CLIENT_SECRET", "cleared"): 1,
        }
    )


def test_credential_lifetimes_and_which_values_expire() -> None:
    now = T0
    records = {
        name: CredentialRecord(since=now - timedelta(days=10), how="first seen", fingerprint="f")
        for name in LIFETIMES
    }
    configured = {
        "AMAZON_CLIENT_SECRET": "s" * 40,
        "EBAY_USER_TOKEN": "v^1.1#i^1#oauth-access-token",  # OAuth: renewed every 2 h, not tracked
        "EBAY_REFRESH_TOKEN": "v^1.1#r^1#refresh",
        "ETSY_REFRESH_TOKEN": "12345.refresh",
    }
    ages = {a.name: a for a in credential_ages(records, configured, rotated_at={"ETSY_REFRESH_TOKEN": now})}
    assert set(ages) == {"AMAZON_CLIENT_SECRET", "EBAY_REFRESH_TOKEN", "ETSY_REFRESH_TOKEN"}
    assert ages["AMAZON_CLIENT_SECRET"].expires_at == now + timedelta(days=170)
    assert ages["EBAY_REFRESH_TOKEN"].expires_at == now + timedelta(days=537)
    assert ages["ETSY_REFRESH_TOKEN"].how == "rotated"  # renewed by the running console: 90 days from now
    assert ages["ETSY_REFRESH_TOKEN"].expires_at == now + timedelta(days=90)
    authnauth = credential_ages(
        {},
        {"EBAY_USER_TOKEN": "AgAAAA" + "x" * 40},
        known_expiry={"EBAY_USER_TOKEN": now + timedelta(days=3)},
    )
    assert [(a.how, a.expires_at) for a in authnauth] == [("reported by eBay", now + timedelta(days=3))]


def test_a_rejected_shipment_alerts_while_its_order_waits_and_clears_when_it_is_resolved() -> None:
    line = Timeline()
    item = RejectedItem(
        item_id="ship:test:T-1:1",
        kind="shipment",
        platform=Platform.TEST,
        order_id="T-1",
        sku="",
        answer="Test says: A tracking number is required",
        rejected_at=T0,
        order_open=True,
    )
    fired = line.step(obs(rejected=[item]))
    assert [(e.key, e.severity) for e in fired] == [("outbox_rejected:ship:test:T-1:1", Severity.CRITICAL)]
    assert "tracking number is required" in fired[0].sentence and "ship the order again" in fired[0].sentence
    line.step(obs(rejected=[item]))
    closed = dataclasses.replace(item, order_open=False)  # shipped again, or cancelled
    for _ in range(11):
        line.step(obs(rejected=[closed]))
    assert line.count() == Counter(
        {("outbox_rejected:ship:test:T-1:1", "fired"): 1, ("outbox_rejected:ship:test:T-1:1", "cleared"): 1}
    )


def test_other_rejections_stay_raised_for_a_day() -> None:
    line = Timeline()
    push = RejectedItem("inv:test:SKU-1", "inventory", Platform.TEST, "", "SKU-1", "No listing", T0)
    for _ in range(27):
        line.step(obs(rejected=[push]), minutes=60)
    assert line.count() == Counter(
        {("outbox_rejected:inv:test:SKU-1", "fired"): 1, ("outbox_rejected:inv:test:SKU-1", "cleared"): 1}
    )
    assert "SKU SKU-1" in line.events[0].title


def test_ship_by_overdue_fires_at_the_deadline_and_clears_once_shipped() -> None:
    line = Timeline()
    due = T0 + timedelta(minutes=3)
    order = OverdueOrder(Platform.TEST, "T-7", due)
    events = [line.step(obs(overdue=[order])) for _ in range(5)]
    assert [len(e) for e in events] == [0, 0, 0, 0, 1]  # fires at the first look past the deadline
    fired = events[4][0]
    assert fired.key == "ship_by_overdue:test:T-7" and fired.since == due
    for _ in range(11):
        line.step(obs(overdue=[]))
    assert line.count() == Counter(
        {("ship_by_overdue:test:T-7", "fired"): 1, ("ship_by_overdue:test:T-7", "cleared"): 1}
    )


def test_cancellation_while_printing_fires_and_clears_once() -> None:
    line = Timeline()
    case = CancelWhilePrinting(Platform.TEST, "T-9", "printing", cancelled=False)
    fired = line.step(obs(cancels=[case]))
    assert [e.key for e in fired] == ["cancel_while_printing:test:T-9"]
    assert "asked to cancel" in fired[0].sentence and "printing" in fired[0].sentence
    line.step(obs(cancels=[CancelWhilePrinting(Platform.TEST, "T-9", "printed", cancelled=False)]))
    for _ in range(11):
        line.step(obs(cancels=[]))
    assert line.count() == Counter(
        {("cancel_while_printing:test:T-9", "fired"): 1, ("cancel_while_printing:test:T-9", "cleared"): 1}
    )


def test_an_unreadable_input_never_clears_its_alerts() -> None:
    line = Timeline()
    line.step(obs(overdue=[OverdueOrder(Platform.TEST, "T-7", T0 - timedelta(hours=1))]))
    for _ in range(20):
        line.step(obs(overdue=None))  # the orders could not be read
    assert "ship_by_overdue:test:T-7" in line.state.active
    assert line.count() == Counter({("ship_by_overdue:test:T-7", "fired"): 1})


def test_every_rule_has_a_key_per_subject_and_a_sentence_that_says_what_to_do() -> None:
    observation = Observations(
        now=T0,
        platforms=(Platform.TEST,),
        tracks=failing(5, T0 - timedelta(hours=1)),
        checks={TEST: CheckResult(at=T0, ok=False, sentence="refused")},
        calls={Platform.TEST: CallStats(calls=50, ok=10)},
        quotas={Platform.TEST: Quota(remaining=0, budget=100)},
        rejected=[RejectedItem("m1", "message", Platform.TEST, "T-1", "", "too long", T0)],
        overdue=[OverdueOrder(Platform.TEST, "T-2", T0 - timedelta(days=1))],
        cancels=[CancelWhilePrinting(Platform.TEST, "T-3", "printing", cancelled=True)],
    )
    conditions, ran = evaluate_rules(observation, Thresholds())
    assert ran == frozenset(Rule)
    assert {c.rule for c in conditions} == set(Rule) - {Rule.CREDENTIAL_EXPIRING, Rule.CREDENTIAL_EXPIRED}
    assert len({c.key for c in conditions}) == len(conditions)
    for condition in conditions:
        assert condition.sentence.endswith(".") and condition.title
        assert "Jane" not in condition.sentence


@pytest.mark.parametrize("clear_minutes", [0, 10, 30])
def test_the_hold_time_is_the_configured_one(clear_minutes: int) -> None:
    line = Timeline(Thresholds(clear_minutes=clear_minutes))
    line.step(obs(tracks=failing(3, T0)))
    steps = 0
    while not any(e.event == "cleared" for e in line.events):
        line.step(obs(tracks=failing(0, None)))
        steps += 1
    assert steps == clear_minutes + 1  # the first clear look starts the timer
