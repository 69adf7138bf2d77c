"""Per-platform health: a rolling record of every call and the state derived from it.

:class:`HealthRecorder` keeps the last few hundred :class:`CallRecord`\\ s (time,
operation, method, status, latency, attempt, rate-limit state, error code,
request id and a redacted message), hands each one to an optional sink (the
store appends them to a rotated log), and derives a :class:`PlatformState` and a
:class:`tf_console.models.PlatformHealth` snapshot for the health pane.
Listeners are called after every change so the UI can refresh.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tf_console.clock import Clock
from tf_console.marketplaces.ratelimit import RateSnapshot
from tf_console.marketplaces.redact import REDACTOR, Redactor, redacting_logger
from tf_console.models import Platform, PlatformHealth, PlatformState

log = redacting_logger(__name__)

DEFAULT_CAPACITY = 500
DEFAULT_WINDOW = timedelta(minutes=30)
# Consecutive failures with no answer (or 5xx) before a platform is called down.
DOWN_AFTER_FAILURES = 3
DEGRADED_BELOW = 0.8
_LATENCY_SAMPLES = 60


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt of one call (or a note a platform reported about a call)."""

    at: datetime
    platform: Platform
    operation: str
    method: str
    status: int | None  # None: no HTTP answer (timeout, connection error, client-side limit)
    latency_ms: float
    attempt: int
    ok: bool
    error_code: str = ""
    message: str = ""  # a redacted sentence
    request_id: str = ""
    bucket_level: float | None = None
    daily_remaining: int | None = None
    rate_headers: dict[str, str] = field(default_factory=dict)
    kind: str = "call"  # call | warning | note

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["at"] = self.at.isoformat()
        data["platform"] = self.platform.value
        return data


Listener = Callable[[PlatformHealth], None]
Sink = Callable[[dict[str, Any]], None]


class HealthRecorder:
    """Thread-safe; one per platform."""

    def __init__(
        self,
        platform: Platform,
        clock: Clock,
        *,
        capacity: int = DEFAULT_CAPACITY,
        window: timedelta = DEFAULT_WINDOW,
        sink: Sink | None = None,
        redactor: Redactor = REDACTOR,
        rate_source: Callable[[], RateSnapshot] | None = None,
    ) -> None:
        self.platform = platform
        self._clock = clock
        self._records: deque[CallRecord] = deque(maxlen=capacity)
        self._window = window
        self._sink = sink
        self._redactor = redactor
        self._rate_source = rate_source
        self._lock = threading.RLock()
        self._listeners: list[Listener] = []
        self._reauth_reason = ""
        self._disabled_reason = ""
        self._last_error = ""
        self._token_expires_at: datetime | None = None
        self._last_poll_at: datetime | None = None
        self._next_poll_at: datetime | None = None
        self._poller = ""

    # -- inputs -------------------------------------------------------------

    def attach_rate_source(self, source: Callable[[], RateSnapshot]) -> None:
        self._rate_source = source

    def record_call(
        self,
        *,
        operation: str,
        method: str,
        status: int | None,
        latency_ms: float,
        attempt: int,
        ok: bool,
        error_code: str = "",
        message: str = "",
        request_id: str = "",
        rate_headers: dict[str, str] | None = None,
        kind: str = "call",
    ) -> CallRecord:
        rate = self._rate_source() if self._rate_source else None
        record = CallRecord(
            at=self._clock.now(),
            platform=self.platform,
            operation=operation,
            method=method,
            status=status,
            latency_ms=round(latency_ms, 1),
            attempt=attempt,
            ok=ok,
            error_code=self._redactor.scrub(error_code),
            message=self._redactor.scrub(message),
            request_id=request_id,
            bucket_level=rate.bucket_level if rate else None,
            daily_remaining=rate.daily_remaining if rate else None,
            rate_headers={k: self._redactor.scrub(v) for k, v in (rate_headers or {}).items()},
            kind=kind,
        )
        with self._lock:
            self._records.append(record)
            if not ok and kind != "warning" and record.message:
                self._last_error = record.message
            if ok and kind == "call" and self._reauth_reason and operation != "token":
                # An authenticated call went through: whatever needed re-auth is fixed.
                self._reauth_reason = ""
        if self._sink is not None:
            try:
                self._sink(record.to_dict())
            except Exception as exc:  # a full disk must not break a marketplace call
                log.warning(
                    "could not write a health record for %s: %s", self.platform.value, type(exc).__name__
                )
        self._notify()
        return record

    def record_warning(self, operation: str, message: str) -> CallRecord:
        """A call succeeded with a warning (eBay ``Ack=Warning``)."""
        return self.record_call(
            operation=operation,
            method="",
            status=None,
            latency_ms=0.0,
            attempt=0,
            ok=True,
            message=message,
            kind="warning",
        )

    def record_error(self, operation: str, message: str, *, code: str = "") -> CallRecord:
        """A problem found after the call returned (a page with an unreadable order…)."""
        return self.record_call(
            operation=operation,
            method="",
            status=None,
            latency_ms=0.0,
            attempt=0,
            ok=False,
            error_code=code,
            message=message,
            kind="note",
        )

    def mark_reauth(self, sentence: str) -> None:
        with self._lock:
            self._reauth_reason = self._redactor.scrub(sentence)
            self._last_error = self._reauth_reason
        self._notify()

    def mark_disabled(self, sentence: str) -> None:
        with self._lock:
            self._disabled_reason = self._redactor.scrub(sentence) or "Disabled."
        self._notify()

    def enable(self) -> None:
        with self._lock:
            self._disabled_reason = ""
        self._notify()

    def set_token_expiry(self, when: datetime | None) -> None:
        with self._lock:
            self._token_expires_at = when
        self._notify()

    def set_poll_times(self, last_poll_at: datetime | None, next_poll_at: datetime | None) -> None:
        with self._lock:
            self._last_poll_at = last_poll_at
            self._next_poll_at = next_poll_at
        self._notify()

    def set_poller(self, description: str) -> None:
        with self._lock:
            self._poller = description
        self._notify()

    # -- listeners ------------------------------------------------------------

    def add_listener(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener(snapshot)`` after every change; returns the unsubscribe function."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        if not listeners:
            return
        snapshot = self.snapshot()
        for listener in listeners:
            try:
                listener(snapshot)
            except Exception as exc:
                log.warning("a health listener failed: %s", type(exc).__name__)

    # -- outputs --------------------------------------------------------------

    def records(self, limit: int | None = None) -> list[CallRecord]:
        with self._lock:
            items = list(self._records)
        return items[-limit:] if limit else items

    @property
    def last_error(self) -> str:
        with self._lock:
            return self._last_error

    def _recent_calls(self) -> list[CallRecord]:
        horizon = self._clock.now() - self._window
        with self._lock:
            return [r for r in self._records if r.kind == "call" and r.at >= horizon]

    def success_rate(self) -> float | None:
        calls = self._recent_calls()
        if not calls:
            return None
        return sum(1 for r in calls if r.ok) / len(calls)

    def state(self) -> tuple[PlatformState, str]:
        with self._lock:
            if self._disabled_reason:
                return PlatformState.DISABLED, self._disabled_reason
            if self._reauth_reason:
                return PlatformState.REAUTH, self._reauth_reason
        calls = self._recent_calls()
        if not calls:
            return PlatformState.OK, ""
        tail = calls[-DOWN_AFTER_FAILURES:]
        unreachable = [r for r in tail if not r.ok and (r.status is None or r.status >= 500)]
        if len(tail) == DOWN_AFTER_FAILURES and len(unreachable) == DOWN_AFTER_FAILURES:
            return PlatformState.DOWN, f"{self.platform.label} is not answering: {tail[-1].message}"
        rate = sum(1 for r in calls if r.ok) / len(calls)
        if not calls[-1].ok:
            return PlatformState.DEGRADED, calls[-1].message
        if rate < DEGRADED_BELOW:
            return PlatformState.DEGRADED, (
                f"Only {rate:.0%} of recent {self.platform.label} calls succeeded; the last one worked."
            )
        return PlatformState.OK, ""

    def snapshot(self) -> PlatformHealth:
        state, reason = self.state()
        calls = self._recent_calls()
        rate = self._rate_source() if self._rate_source else None
        with self._lock:
            return PlatformHealth(
                platform=self.platform,
                state=state,
                reason=reason,
                last_poll_at=self._last_poll_at,
                next_poll_at=self._next_poll_at,
                last_error=self._last_error,
                calls_in_window=rate.calls_in_window if rate else 0,
                window_budget=rate.window_budget if rate else 0,
                bucket_level=rate.bucket_level if rate else None,
                bucket_capacity=rate.bucket_capacity if rate else None,
                daily_remaining=rate.daily_remaining if rate else None,
                daily_budget=rate.daily_budget if rate else None,
                success_rate=(sum(1 for r in calls if r.ok) / len(calls)) if calls else None,
                latencies_ms=[r.latency_ms for r in calls[-_LATENCY_SAMPLES:]],
                token_expires_at=self._token_expires_at,
                poller=self._poller,
            )
