"""The persisted alert state (``alerts.json`` in the data folder) and the fire/clear rules.

One small JSON file, written atomically (0600) under the store's cross-process
lock, holds the active alerts, what the rules remember between polls (failure
streaks, credential checks), the last events and the deliveries still owed.  It
is separate from the store so ``doctor`` and an attached console can read it
without the data key, and contains no secret and no buyer data.

:func:`reconcile` is the damping: a condition that appears fires once; one that
disappears starts a clear timer, and only when it stayed away for the hold time
is a ``cleared`` event produced.  Coming back during the hold cancels the timer
silently, so a flapping platform raises one alert, not one per poll.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from tf_console.alerts.model import ActiveAlert, AlertEvent, Condition, Rule
from tf_console.models import UtcDatetime
from tf_console.paths import write_private

log = logging.getLogger(__name__)

ALERTS_FILE = "alerts.json"
STATE_VERSION = 1
RECENT_EVENTS = 100
MAX_PENDING = 200

T = TypeVar("T")
Lock = Callable[[], AbstractContextManager[Any]]


class PlatformTrack(BaseModel):
    """A platform's current run of failed polls."""

    failures: int = 0
    failing_since: UtcDatetime | None = None
    last_error: str = ""
    last_poll_at: UtcDatetime | None = None


class CheckResult(BaseModel):
    """The last credential check of a platform; ``ok`` None: it could not be checked."""

    at: UtcDatetime
    ok: bool | None
    sentence: str


class PendingDelivery(BaseModel):
    """Events owed to a channel (e-mail, command); retried with backoff, given up after a day."""

    channel: Literal["email", "command"]
    events: list[AlertEvent]
    attempts: int = 0
    first_at: UtcDatetime
    next_at: UtcDatetime
    last_problem: str = ""


class AlertState(BaseModel):
    version: int = STATE_VERSION
    seq: int = 0
    evaluated_at: UtcDatetime | None = None
    active: dict[str, ActiveAlert] = Field(default_factory=dict)
    tracks: dict[str, PlatformTrack] = Field(default_factory=dict)
    checks: dict[str, CheckResult] = Field(default_factory=dict)
    recent: list[AlertEvent] = Field(default_factory=list)
    pending: list[PendingDelivery] = Field(default_factory=list)
    #: channel → the last delivery problem, "" once a delivery on it worked again
    delivery_problems: dict[str, str] = Field(default_factory=dict)

    def sorted_active(self) -> list[ActiveAlert]:
        """Critical first, then the most recent."""
        return sorted(self.active.values(), key=lambda a: (a.severity.rank, -a.fired_at.timestamp(), a.key))


def reconcile(
    state: AlertState,
    conditions: Iterable[Condition],
    now: datetime,
    clear_after: timedelta,
    *,
    evaluated: frozenset[Rule] | None = None,
) -> list[AlertEvent]:
    """Fire new conditions, keep held ones, clear those gone for ``clear_after``.

    ``evaluated`` limits clearing to the rules that ran this time (a rule whose inputs
    could not be read must not clear its alerts); None means every rule ran.
    """
    events: list[AlertEvent] = []
    present: dict[str, Condition] = {}
    for condition in conditions:
        present.setdefault(condition.key, condition)
    for key, condition in present.items():
        active = state.active.get(key)
        if active is None:
            state.seq += 1
            since = condition.since or now
            state.active[key] = ActiveAlert(
                key=key,
                rule=condition.rule,
                subject=condition.subject,
                severity=condition.severity,
                title=condition.title,
                sentence=condition.sentence,
                since=since,
                fired_at=now,
                seq=state.seq,
            )
            events.append(_event(state.seq, "fired", state.active[key], now))
            continue
        # Still present (or back during the hold): refresh the words, no new event.
        state.active[key] = active.model_copy(
            update={
                "title": condition.title,
                "sentence": condition.sentence,
                "severity": condition.severity,
                "clear_since": None,
            }
        )
    for key, active in list(state.active.items()):
        if key in present or (evaluated is not None and active.rule not in evaluated):
            continue
        clear_since = active.clear_since or now
        if now - clear_since >= clear_after:
            state.seq += 1
            events.append(_event(state.seq, "cleared", active, now))
            del state.active[key]
        elif active.clear_since is None:
            state.active[key] = active.model_copy(update={"clear_since": now})
    state.recent = [*state.recent, *events][-RECENT_EVENTS:]
    state.evaluated_at = now
    return events


def _event(seq: int, kind: Literal["fired", "cleared"], alert: ActiveAlert, now: datetime) -> AlertEvent:
    sentence = alert.sentence
    if kind == "cleared":
        gone = alert.clear_since or now
        sentence = (
            f"Resolved: {alert.title} — the cause has been gone since {gone:%Y-%m-%d %H:%M} UTC "
            f"(the alert fired {alert.fired_at:%Y-%m-%d %H:%M} UTC). It said: {alert.sentence}"
        )
    return AlertEvent(
        seq=seq,
        event=kind,
        key=alert.key,
        rule=alert.rule,
        subject=alert.subject,
        severity=alert.severity,
        title=alert.title,
        sentence=sentence,
        at=now,
        since=alert.since,
    )


class AlertStateFile:
    """``alerts.json``: read without a lock (atomic replaces), changed under ``lock``."""

    def __init__(self, data_dir: Path, lock: Lock | None = None) -> None:
        self.path = data_dir / ALERTS_FILE
        self._lock: Lock = lock or contextlib.nullcontext
        self._cached: tuple[int, AlertState] | None = None

    def __repr__(self) -> str:
        return f"AlertStateFile({str(self.path)!r})"

    def stamp(self) -> int:
        """A cheap change marker (the file's mtime in ns; 0 when absent)."""
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0

    def read(self) -> AlertState:
        stamp = self.stamp()
        cached = self._cached
        if cached is not None and cached[0] == stamp and stamp:
            return cached[1].model_copy(deep=True)
        state = self._load()
        self._cached = (stamp, state)
        return state.model_copy(deep=True)

    def _load(self) -> AlertState:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return AlertState()
        try:
            document = json.loads(raw)
            if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
                raise ValueError("unknown alert state version")
            return AlertState.model_validate(document)
        except (ValueError, ValidationError):
            # The alert state is derived and re-derivable: start afresh rather than stop syncing.
            log.warning("the alert state %s could not be read; starting with no active alerts", self.path)
            return AlertState()

    def update(self, change: Callable[[AlertState], T]) -> T:
        """Read, ``change`` in place, write back if anything changed — all under the lock."""
        with self._lock():
            state = self._load()
            before = state.model_dump(mode="json")
            result = change(state)
            after = state.model_dump(mode="json")
            if after != before:
                data = json.dumps(after, ensure_ascii=False, indent=1, sort_keys=True).encode("utf-8")
                write_private(self.path, data)
                self._cached = None
            return result


def queue_deliveries(
    state: AlertState, events: list[AlertEvent], channels: Mapping[str, bool], now: datetime
) -> None:
    """Owe ``events`` to every configured channel: one e-mail per batch, one command run per event."""
    if not events:
        return
    if channels.get("email"):
        state.pending.append(PendingDelivery(channel="email", events=events, first_at=now, next_at=now))
    if channels.get("command"):
        state.pending.extend(
            PendingDelivery(channel="command", events=[event], first_at=now, next_at=now) for event in events
        )
    if len(state.pending) > MAX_PENDING:
        dropped = len(state.pending) - MAX_PENDING
        state.pending = state.pending[dropped:]
        log.warning("%d undelivered alert deliveries were dropped (the channel has been failing)", dropped)
