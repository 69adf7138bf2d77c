"""The alert rules: pure functions from what is known now to the conditions that hold.

:class:`Observations` is gathered by the service (from the store, the health
recorders, the credential ages); each rule reads it with the :class:`Thresholds`
and returns :class:`Condition`\\ s.  Nothing here does I/O, so every rule is tested
on hand-made observations as well as end to end.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo

from tf_console.alerts.credentials import CredentialAge
from tf_console.alerts.model import Condition, Rule, Severity, Thresholds
from tf_console.alerts.state import CheckResult, PlatformTrack
from tf_console.models import Platform, order_key


@dataclass(frozen=True, slots=True)
class CallStats:
    calls: int
    ok: int
    last_problem: str = ""


@dataclass(frozen=True, slots=True)
class Quota:
    remaining: int
    budget: int


@dataclass(frozen=True, slots=True)
class RejectedItem:
    item_id: str
    kind: str  # an OutboxKind value
    platform: Platform
    order_id: str
    sku: str
    answer: str
    rejected_at: datetime
    #: shipments: whether the order still waits to be shipped (None for other kinds)
    order_open: bool | None = None


@dataclass(frozen=True, slots=True)
class OverdueOrder:
    platform: Platform
    order_id: str
    ship_by: datetime


@dataclass(frozen=True, slots=True)
class CancelWhilePrinting:
    platform: Platform
    order_id: str
    job_state: str  # "printing" | "printed"
    cancelled: bool  # True: the order is cancelled; False: the buyer asked to cancel


@dataclass(slots=True)
class Observations:
    now: datetime
    tz: tzinfo = UTC
    platforms: tuple[Platform, ...] = ()
    tracks: Mapping[str, PlatformTrack] = field(default_factory=dict)
    checks: Mapping[str, CheckResult] = field(default_factory=dict)
    calls: Mapping[Platform, CallStats] = field(default_factory=dict)
    quotas: Mapping[Platform, Quota] = field(default_factory=dict)
    credentials: Sequence[CredentialAge] = ()
    # None: the input could not be read this time, so the rule does not run (and clears nothing).
    rejected: Sequence[RejectedItem] | None = ()
    overdue: Sequence[OverdueOrder] | None = ()
    cancels: Sequence[CancelWhilePrinting] | None = ()


def local_time(moment: datetime, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def duration_words(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {rest} min" if rest else f"{hours} h"
    return f"{hours // 24} days"


def _sentence(text: str) -> str:
    text = text.strip()
    return text if not text or text.endswith((".", "!", "?")) else text + "."


# ---------------------------------------------------------------------------
# Platforms


def platform_failing(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for platform in obs.platforms:
        track = obs.tracks.get(platform.value)
        if track is None or track.failures == 0 or track.failing_since is None:
            continue
        lasting = obs.now - track.failing_since
        if track.failures < th.failing_polls and lasting < timedelta(minutes=th.failing_minutes):
            continue
        label = platform.label
        found.append(
            Condition(
                Rule.PLATFORM_FAILING,
                platform.value,
                Severity.CRITICAL,
                f"{label} polls are failing",
                f"{label} has failed {track.failures} poll(s) in a row since "
                f"{local_time(track.failing_since, obs.tz)} ({duration_words(lasting)}): "
                f"{_sentence(track.last_error) or 'no reason was given.'} New {label} orders and "
                f"changes are not coming in; check {label}'s status page and the health view.",
                since=track.failing_since,
            )
        )
    return found


def success_rate(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for platform in obs.platforms:
        stats = obs.calls.get(platform)
        if stats is None or stats.calls < th.success_min_calls:
            continue
        rate = stats.ok / stats.calls
        if rate * 100 >= th.success_rate_percent:
            continue
        label = platform.label
        last = f" The last problem: {_sentence(stats.last_problem)}" if stats.last_problem else ""
        found.append(
            Condition(
                Rule.SUCCESS_RATE,
                platform.value,
                Severity.WARNING,
                f"{label} calls often fail",
                f"Only {rate:.0%} of {label} calls in the last hour succeeded ({stats.ok} of "
                f"{stats.calls}; the alert level is {th.success_rate_percent}%).{last} Failed calls are "
                f"retried; look at the health view if this goes on.",
            )
        )
    return found


def quota(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for platform in obs.platforms:
        q = obs.quotas.get(platform)
        if q is None or q.budget <= 0:
            continue
        used = max(0, q.budget - q.remaining)
        if used * 100 < th.quota_percent * q.budget:
            continue
        label = platform.label
        found.append(
            Condition(
                Rule.QUOTA,
                platform.value,
                Severity.WARNING,
                f"{label} daily calls nearly spent",
                f"{label} has used {used:,} of its {q.budget:,} calls for today ({used / q.budget:.0%}). "
                f"Once they are spent, polls and deliveries wait until the daily budget resets; if this "
                f"happens every day, poll {label} less often ({platform.value.upper()}_POLL_INTERVAL).",
            )
        )
    return found


def credential_check(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for platform in obs.platforms:
        check = obs.checks.get(platform.value)
        if check is None or check.ok is not False:
            continue
        label = platform.label
        found.append(
            Condition(
                Rule.CREDENTIAL_CHECK,
                platform.value,
                Severity.CRITICAL,
                f"{label} credentials failed their check",
                f"The {label} credential check at {local_time(check.at, obs.tz)} failed: "
                f"{_sentence(check.sentence)} Run `tf-console doctor --check` after fixing it.",
                since=check.at,
            )
        )
    return found


# ---------------------------------------------------------------------------
# Credentials


HOW_WORDS = {
    "creds set": "set with `tf-console creds set` on",
    "first seen": "first seen by tf-console on",
    "changed": "changed on",
    "rotated": "last renewed by tf-console on",
}


def credential_expiry(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    warn_ahead = timedelta(days=th.credential_days)
    for age in obs.credentials:
        if age.life.platform not in obs.platforms:
            continue
        remaining = age.remaining(obs.now)
        if remaining > warn_ahead:
            continue
        expiry = local_time(age.expires_at, obs.tz)
        if age.how == "reported by eBay":
            origin = f"eBay reports that {age.name} expires {expiry}"
        else:
            origin = (
                f"{age.name} was {HOW_WORDS.get(age.how, 'recorded on')} {local_time(age.since, obs.tz)} "
                f"({duration_words(obs.now - age.since)} ago) and {age.life.rule}"
            )
            if age.how == "first seen":
                origin += " (if it was created before tf-console saw it, it expires sooner)"
        if remaining > timedelta(0):
            found.append(
                Condition(
                    Rule.CREDENTIAL_EXPIRING,
                    age.name,
                    Severity.WARNING,
                    f"{age.name} expires in {duration_words(remaining)}",
                    f"{origin}; it stops working around {expiry} (in {duration_words(remaining)}). "
                    f"{age.life.renew}",
                    since=age.expires_at - warn_ahead,
                )
            )
        else:
            found.append(
                Condition(
                    Rule.CREDENTIAL_EXPIRED,
                    age.name,
                    Severity.CRITICAL,
                    f"{age.name} has probably expired",
                    f"{origin}; it has probably stopped working since {expiry}. {age.life.renew}",
                    since=age.expires_at,
                )
            )
    return found


# ---------------------------------------------------------------------------
# Outbox, orders and production


def outbox_rejected(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for item in obs.rejected or ():
        label = item.platform.label
        answer = _sentence(item.answer) or "No reason was given."
        if item.kind == "shipment":
            if not item.order_open or obs.now - item.rejected_at > timedelta(days=th.rejected_shipment_days):
                continue
            key = order_key(item.platform, item.order_id)
            title = f"{label} refused the shipment of {key}"
            sentence = (
                f"{label} refused the shipment confirmation for order {item.order_id}: {answer} The buyer "
                "has not been told it shipped; correct it and ship the order again (s in the console, "
                "or tf-console ship)."
            )
            severity = Severity.CRITICAL
        else:
            if obs.now - item.rejected_at > timedelta(hours=th.rejected_other_hours):
                continue
            if item.kind == "inventory":
                title = f"{label} refused a quantity update for SKU {item.sku}"
                sentence = f"{label} refused the quantity update for SKU {item.sku}: {answer}"
            elif item.kind == "message":
                title = f"{label} refused a message for {order_key(item.platform, item.order_id)}"
                sentence = (
                    f"{label} refused the message for order {item.order_id}: {answer} "
                    "The buyer did not get it."
                )
            else:
                title = f"{label} refused a {item.kind} delivery"
                sentence = f"{label} refused the {item.kind} delivery {item.item_id}: {answer}"
            severity = Severity.WARNING
        found.append(
            Condition(Rule.OUTBOX_REJECTED, item.item_id, severity, title, sentence, item.rejected_at)
        )
    return found


def ship_by_overdue(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for order in obs.overdue or ():
        if order.ship_by >= obs.now:
            continue
        key = order_key(order.platform, order.order_id)
        label = order.platform.label
        found.append(
            Condition(
                Rule.SHIP_BY_OVERDUE,
                key,
                Severity.WARNING,
                f"{key} is past its ship-by time",
                f"{label} order {order.order_id} was due to ship by {local_time(order.ship_by, obs.tz)} "
                f"and has not shipped. Ship it, or tell the buyer about the delay on {label}.",
                since=order.ship_by,
            )
        )
    return found


def cancel_while_printing(obs: Observations, th: Thresholds) -> list[Condition]:
    found: list[Condition] = []
    for case in obs.cancels or ():
        key = order_key(case.platform, case.order_id)
        label = case.platform.label
        if case.cancelled:
            sentence = (
                f"{label} order {case.order_id} was cancelled while its print job is {case.job_state}; "
                "the units are spare. Stop the plate if it is still running, or keep the units as stock."
            )
        else:
            sentence = (
                f"The buyer asked to cancel {label} order {case.order_id} while its print job is "
                f"{case.job_state}. Accept or decline the request on {label} before printing or "
                "shipping more."
            )
        found.append(
            Condition(
                Rule.CANCEL_WHILE_PRINTING,
                key,
                Severity.WARNING,
                f"Cancellation for {key} while {case.job_state}",
                sentence,
            )
        )
    return found


RuleFunction = Callable[[Observations, Thresholds], list[Condition]]

RULES: tuple[tuple[tuple[Rule, ...], RuleFunction], ...] = (
    ((Rule.PLATFORM_FAILING,), platform_failing),
    ((Rule.SUCCESS_RATE,), success_rate),
    ((Rule.QUOTA,), quota),
    ((Rule.CREDENTIAL_CHECK,), credential_check),
    ((Rule.CREDENTIAL_EXPIRING, Rule.CREDENTIAL_EXPIRED), credential_expiry),
    ((Rule.OUTBOX_REJECTED,), outbox_rejected),
    ((Rule.SHIP_BY_OVERDUE,), ship_by_overdue),
    ((Rule.CANCEL_WHILE_PRINTING,), cancel_while_printing),
)


def evaluate_rules(obs: Observations, th: Thresholds) -> tuple[list[Condition], frozenset[Rule]]:
    """Every condition that holds, and the rules that ran (inputs that could not be read skip theirs)."""
    skipped: set[Rule] = set()
    if obs.rejected is None:
        skipped.add(Rule.OUTBOX_REJECTED)
    if obs.overdue is None:
        skipped.add(Rule.SHIP_BY_OVERDUE)
    if obs.cancels is None:
        skipped.add(Rule.CANCEL_WHILE_PRINTING)
    conditions: list[Condition] = []
    ran: set[Rule] = set()
    for rules, function in RULES:
        if skipped.intersection(rules):
            continue
        ran.update(rules)
        conditions.extend(function(obs, th))
    return conditions, frozenset(ran)
