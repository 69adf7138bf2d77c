"""Client-side rate limiting: wait for a token instead of provoking a 429.

One :class:`RateLimiter` per platform combines three limits, and a call goes out
only when all three allow it:

* token buckets per operation, seeded from the published rate/burst (operations
  without their own spec share the ``"*"`` bucket) and corrected from response
  headers through :class:`RateUpdate` (Amazon ``x-amzn-RateLimit-Limit``, Etsy
  ``x-limit-per-second``/``x-remaining-this-second``);
* the global ``MARKETPLACE_API_RATE_LIMIT`` cap: at most N calls in any 60 s;
* a daily budget (eBay 5,000 Trading calls a day resetting at midnight Pacific;
  Etsy's rolling day learned from ``x-limit-per-day``/``x-remaining-today``).

Timestamps are wall-clock seconds from the injected clock so that :meth:`state`
can be persisted and :meth:`restore`\\ d after a restart without refilling a
bucket the marketplace has not refilled.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from tf_console.clock import Clock
from tf_console.marketplaces.base import QuotaExhausted, RateLimited
from tf_console.models import Platform

SHARED_BUCKET = "*"
STATE_VERSION = 1
WINDOW_SECONDS = 60.0
# Float refills land a hair under a whole token; only that hair is forgiven (the client must
# never believe in a token the marketplace has not refilled yet).
_EPSILON = 1e-9
# Clocks tick in microseconds: a shorter sleep would not move time and the wait would spin.
_MIN_SLEEP = 0.001
_PACIFIC = ZoneInfo("America/Los_Angeles")


@dataclass(frozen=True, slots=True)
class BucketSpec:
    """A published limit: ``rate`` tokens per second refill a bucket of ``burst``."""

    rate: float
    burst: float

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("a bucket needs a positive rate and a burst of at least 1")

    def scaled(self, factor: float) -> BucketSpec:
        return BucketSpec(self.rate * factor, self.burst)


@dataclass(frozen=True, slots=True)
class DailyBudgetSpec:
    """A per-day call budget.  ``reset_tz`` set: resets at local midnight there
    (eBay: America/Los_Angeles).  ``reset_tz`` None: a rolling day whose truth
    comes from headers; once spent, one probe call is allowed per ``probe_after``."""

    limit: int
    reset_tz: tzinfo | None = None
    probe_after: float = 3600.0
    exempt_operations: frozenset[str] = frozenset({"token"})


EBAY_TRADING_DAILY = DailyBudgetSpec(limit=5000, reset_tz=_PACIFIC)


@dataclass(frozen=True, slots=True)
class RateUpdate:
    """What a platform read from a response's headers; every field is optional."""

    rate: float | None = None  # new refill rate of the operation's bucket, per second
    burst: float | None = None
    remaining: float | None = None  # tokens the marketplace says are left in that bucket now
    daily_limit: int | None = None
    daily_remaining: int | None = None


@dataclass(frozen=True, slots=True)
class RateSnapshot:
    bucket: str
    bucket_level: float | None
    bucket_capacity: float | None
    calls_in_window: int
    window_budget: int
    daily_remaining: int | None
    daily_budget: int | None


class DailyBudgetExhausted(QuotaExhausted):
    """The day's budget is spent; ``resume_at`` says when calls may go out again."""

    def __init__(self, message: str, *, resume_at: datetime, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.resume_at = resume_at


class TokenBucket:
    def __init__(self, spec: BucketSpec, now: float) -> None:
        self.rate = spec.rate
        self.capacity = spec.burst
        self.level = spec.burst
        self.stamp = now
        self.blocked_until = 0.0
        self.learned = False  # rate came from headers rather than the published spec

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        # A wall clock that stepped backwards must not mint tokens later on.
        self.stamp = now

    def wait_time(self, now: float) -> float:
        self.refill(now)
        if self.blocked_until > now:
            return self.blocked_until - now
        if self.level >= 1.0 - _EPSILON:
            return 0.0
        return (1.0 - self.level) / self.rate

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": self.rate,
            "capacity": self.capacity,
            "level": self.level,
            "stamp": self.stamp,
            "blocked_until": self.blocked_until,
            "learned": self.learned,
        }


class _Daily:
    def __init__(self, spec: DailyBudgetSpec, now: float) -> None:
        self.spec = spec
        self.limit = spec.limit
        self.remaining = spec.limit
        self.resets_at: float | None = self._next_reset(now)

    def _next_reset(self, now: float) -> float | None:
        tz = self.spec.reset_tz
        if tz is None:
            return None
        local = datetime.fromtimestamp(now, UTC).astimezone(tz)
        midnight = datetime(local.year, local.month, local.day, tzinfo=tz) + timedelta(days=1)
        return midnight.timestamp()

    def roll(self, now: float) -> None:
        if self.resets_at is None or now < self.resets_at:
            return
        if self.spec.reset_tz is not None:
            self.remaining = self.limit
            self.resets_at = self._next_reset(now)
        else:
            # Rolling day: the headers of the probe call tell the real remainder.
            self.remaining = max(self.remaining, 1)
            self.resets_at = None

    def exhausted_until(self, now: float) -> float | None:
        self.roll(now)
        if self.remaining > 0:
            return None
        if self.resets_at is None:
            self.resets_at = now + self.spec.probe_after
        return self.resets_at

    def take(self) -> None:
        self.remaining -= 1

    def to_json(self) -> dict[str, Any]:
        return {"limit": self.limit, "remaining": self.remaining, "resets_at": self.resets_at}


class RateLimiter:
    """Per-platform limits; :meth:`acquire` waits (with ``clock.sleep``) until a call may go."""

    def __init__(
        self,
        platform: Platform,
        clock: Clock,
        *,
        operations: dict[str, BucketSpec] | None = None,
        default: BucketSpec | None = None,
        per_minute_cap: int | None = None,
        daily: DailyBudgetSpec | None = None,
    ) -> None:
        if per_minute_cap is not None and per_minute_cap < 1:
            raise ValueError("MARKETPLACE_API_RATE_LIMIT must be at least 1 call a minute")
        self.platform = platform
        self._clock = clock
        self._specs = dict(operations or {})
        self._default = default
        self._per_minute_cap = per_minute_cap
        self._daily_spec = daily
        now = self._now()
        self._buckets: dict[str, TokenBucket] = {}
        self._window: deque[float] = deque()
        self._daily: _Daily | None = _Daily(daily, now) if daily else None
        self._last_bucket = SHARED_BUCKET
        self.waited_seconds = 0.0
        self.waits = 0

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def bucket_name(self, operation: str) -> str:
        return operation if operation in self._specs else SHARED_BUCKET

    def _bucket(self, operation: str, now: float) -> TokenBucket | None:
        name = self.bucket_name(operation)
        bucket = self._buckets.get(name)
        if bucket is None:
            spec = self._specs.get(name, self._default)
            if spec is None:
                return None
            bucket = self._buckets[name] = TokenBucket(spec, now)
        return bucket

    def _window_wait(self, now: float) -> float:
        cap = self._per_minute_cap
        if cap is None:
            return 0.0
        while self._window and self._window[0] <= now - WINDOW_SECONDS:
            self._window.popleft()
        if len(self._window) < cap:
            return 0.0
        return self._window[0] + WINDOW_SECONDS - now

    def _check_daily(self, operation: str, now: float) -> None:
        daily = self._daily
        if daily is None or operation in daily.spec.exempt_operations:
            return
        until = daily.exhausted_until(now)
        if until is None:
            return
        resume = datetime.fromtimestamp(until, UTC)
        raise DailyBudgetExhausted(
            f"{self.platform.label}'s daily call budget ({daily.limit:,}) is used up; "
            f"calls resume at {resume:%Y-%m-%d %H:%M} UTC.",
            resume_at=resume,
            platform=self.platform,
            code="daily_budget",
        )

    def wait_time(self, operation: str) -> float:
        """Seconds until ``operation`` may go out (0 = now); raises when the day's budget is spent."""
        now = self._now()
        self._check_daily(operation, now)
        bucket = self._bucket(operation, now)
        bucket_wait = bucket.wait_time(now) if bucket else 0.0
        return max(bucket_wait, self._window_wait(now))

    async def acquire(self, operation: str, *, max_wait: float | None = None) -> float:
        """Take one token for ``operation``, sleeping as long as needed; returns seconds waited.

        Raises :class:`DailyBudgetExhausted` when the day's budget is spent, and
        :class:`RateLimited` when the wait would exceed ``max_wait``.
        """
        waited = 0.0
        while True:
            wait = self.wait_time(operation)
            if wait <= 0:
                now = self._now()
                bucket = self._bucket(operation, now)
                if bucket is not None:
                    bucket.level -= 1.0
                if self._per_minute_cap is not None:
                    self._window.append(now)
                if self._daily is not None and operation not in self._daily.spec.exempt_operations:
                    self._daily.take()
                self._last_bucket = self.bucket_name(operation)
                return waited
            if max_wait is not None and waited + wait > max_wait:
                raise RateLimited(
                    f"{self.platform.label} allows {operation} calls only slowly; "
                    f"the next one may go in {math.ceil(wait)} s, so it was postponed.",
                    retry_after=wait,
                    platform=self.platform,
                    code="client_rate_limit",
                )
            wait = max(wait, _MIN_SLEEP)
            self.waits += 1
            self.waited_seconds += wait
            waited += wait
            await self._clock.sleep(wait)

    def apply(self, operation: str, update: RateUpdate | None) -> None:
        """Fold what a response's headers said into the limits."""
        if update is None:
            return
        now = self._now()
        bucket = self._bucket(operation, now)
        if bucket is None and (update.rate or update.remaining is not None):
            rate = update.rate or 1.0
            burst = update.burst or max(1.0, math.ceil(rate))
            bucket = self._buckets[self.bucket_name(operation)] = TokenBucket(BucketSpec(rate, burst), now)
        if bucket is not None:
            bucket.refill(now)
            if update.rate and update.rate > 0:
                bucket.rate = update.rate
                bucket.learned = True
            if update.burst and update.burst >= 1:
                bucket.capacity = update.burst
                bucket.level = min(bucket.level, bucket.capacity)
            if update.remaining is not None:
                # Calls still in flight already took their tokens: only ever lower our level.
                bucket.level = min(bucket.level, max(0.0, update.remaining))
        if update.daily_limit is not None or update.daily_remaining is not None:
            if self._daily is None:
                limit = update.daily_limit or update.daily_remaining or 0
                self._daily = _Daily(DailyBudgetSpec(limit=limit), now)
            if update.daily_limit is not None:
                self._daily.limit = update.daily_limit
            if update.daily_remaining is not None:
                self._daily.remaining = update.daily_remaining

    def throttled(self, operation: str, retry_after: float | None) -> None:
        """The marketplace answered 429: empty the bucket so concurrent callers wait too."""
        now = self._now()
        bucket = self._bucket(operation, now)
        if bucket is None:
            return
        bucket.refill(now)
        bucket.level = 0.0
        if retry_after:
            bucket.blocked_until = max(bucket.blocked_until, now + retry_after)

    def snapshot(self, operation: str | None = None) -> RateSnapshot:
        now = self._now()
        name = self.bucket_name(operation) if operation else self._last_bucket
        bucket = self._buckets.get(name)
        if bucket is not None:
            bucket.refill(now)
        self._window_wait(now)
        daily = self._daily
        if daily is not None:
            daily.roll(now)
        return RateSnapshot(
            bucket=name,
            bucket_level=round(bucket.level, 3) if bucket else None,
            bucket_capacity=bucket.capacity if bucket else None,
            calls_in_window=len(self._window),
            window_budget=self._per_minute_cap or 0,
            daily_remaining=daily.remaining if daily else None,
            daily_budget=daily.limit if daily else None,
        )

    # -- persistence -------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-ready levels, timestamps and daily counters (persist it, e.g. in store.meta)."""
        return {
            "version": STATE_VERSION,
            "platform": self.platform.value,
            "saved_at": self._now(),
            "buckets": {name: bucket.to_json() for name, bucket in self._buckets.items()},
            "window": list(self._window),
            "daily": self._daily.to_json() if self._daily else None,
        }

    def restore(self, state: dict[str, Any] | None) -> bool:
        """Continue from a saved :meth:`state`; a foreign or damaged state is ignored (False)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            return False
        if state.get("platform") != self.platform.value:
            return False
        try:
            buckets = {
                str(name): self._restore_bucket(str(name), raw)
                for name, raw in dict(state.get("buckets") or {}).items()
            }
            window = [float(t) for t in list(state.get("window") or [])]
            daily_raw = state.get("daily")
            daily = self._restore_daily(daily_raw) if isinstance(daily_raw, dict) else None
        except (TypeError, ValueError, KeyError):
            return False
        self._buckets.update({name: b for name, b in buckets.items() if b is not None})
        if self._per_minute_cap is not None:
            self._window = deque(sorted(window)[-self._per_minute_cap :])
        if daily is not None:
            self._daily = daily
        return True

    def _restore_bucket(self, name: str, raw: Any) -> TokenBucket | None:
        spec = self._specs.get(name, self._default)
        if spec is None:
            spec = BucketSpec(float(raw["rate"]), float(raw["capacity"]))
        bucket = TokenBucket(spec, float(raw["stamp"]))
        if raw.get("learned"):
            bucket.rate = float(raw["rate"])
            bucket.learned = True
        bucket.level = min(bucket.capacity, max(0.0, float(raw["level"])))
        bucket.blocked_until = float(raw.get("blocked_until") or 0.0)
        return bucket

    def _restore_daily(self, raw: dict[str, Any]) -> _Daily | None:
        spec = self._daily_spec or DailyBudgetSpec(limit=int(raw["limit"]))
        daily = _Daily(spec, self._now())
        daily.limit = int(raw["limit"]) if self._daily_spec is None else spec.limit
        daily.remaining = min(daily.limit, int(raw["remaining"]))
        saved_reset = raw.get("resets_at")
        if saved_reset is not None:
            daily.resets_at = float(saved_reset)
        elif spec.reset_tz is None:
            daily.resets_at = None
        return daily
