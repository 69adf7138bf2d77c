"""Staffed hours: when someone is in the shop to clear a finished plate and start the next.

A printer runs unattended, but a finished plate blocks it until a person takes the
parts off; so a print may *end* at any hour while the next print can only *start*
while the shop is staffed.  :class:`StaffedCalendar` answers the questions the
scheduler asks about that calendar in the shop's time zone (daylight-saving safe)
on plain float minutes since the Unix epoch, which keeps a 10,000-job recompute
free of datetime arithmetic in its inner loop.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

WEEKDAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS: frozenset[int] = frozenset(range(5))

# How many days of intervals to generate at a time when a question reaches past them.
_CHUNK_DAYS = 62
_HOURS_PATTERN = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


def to_minutes(when: datetime) -> float:
    """Minutes since the Unix epoch of an aware datetime."""
    return when.timestamp() / 60.0


def from_minutes(minutes: float) -> datetime:
    """The aware UTC datetime of ``minutes`` since the epoch, rounded to the second."""
    return datetime.fromtimestamp(round(minutes * 60.0), UTC)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; a bad name is a sentence, not a traceback."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"time zone {name!r} is not a known IANA name; set TF_TIMEZONE to one like Europe/London"
        ) from exc


@dataclass(frozen=True)
class StaffedHours:
    """Daily staffed window (``start`` to ``end`` local time) on ``days`` (0 = Monday).

    ``always`` means staffed around the clock: a finished plate is cleared at once.
    An ``end`` earlier than ``start`` is a shift that runs past midnight.
    """

    timezone: str = "UTC"
    start: time = time(8, 0)
    end: time = time(18, 0)
    days: frozenset[int] = WEEKDAYS
    always: bool = False

    def __post_init__(self) -> None:
        zone(self.timezone)
        if not self.always:
            if self.start == self.end:
                raise ValueError("staffed hours must start and end at different times")
            if not self.days:
                raise ValueError('staffed_days must name at least one day, e.g. ["mon", "fri"]')
            if not all(0 <= d <= 6 for d in self.days):
                raise ValueError("staffed days are numbered 0 (Monday) to 6 (Sunday)")

    @classmethod
    def around_the_clock(cls, timezone: str = "UTC") -> StaffedHours:
        return cls(timezone=timezone, always=True)

    @classmethod
    def parse(cls, hours: str, days: Sequence[str], timezone: str) -> StaffedHours:
        """From ``"08:00-18:00"`` (or ``"always"``) and day names like ``["mon", "fri"]``."""
        if hours.strip().lower() == "always":
            return cls.around_the_clock(timezone)
        match = _HOURS_PATTERN.match(hours)
        if match is None:
            raise ValueError(f'staffed_hours {hours!r} should look like "08:00-18:00" or "always"')
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
            raise ValueError(f"staffed_hours {hours!r} has a time outside 00:00-23:59")
        day_numbers: set[int] = set()
        for name in days:
            key = name.strip().lower()[:3]
            if key not in WEEKDAY_NAMES:
                raise ValueError(f"staffed day {name!r} is not a weekday name (mon, tue, … sun)")
            day_numbers.add(WEEKDAY_NAMES.index(key))
        return cls(timezone=timezone, start=time(h1, m1), end=time(h2, m2), days=frozenset(day_numbers))

    def describe(self) -> str:
        if self.always:
            return f"around the clock ({self.timezone})"
        names = ", ".join(WEEKDAY_NAMES[d].capitalize() for d in sorted(self.days))
        return f"{self.start:%H:%M}-{self.end:%H:%M} {names} ({self.timezone})"


@dataclass
class StaffedCalendar:
    """Staffed intervals as half-open ``[start, end)`` float minutes, generated lazily."""

    hours: StaffedHours
    around: float
    _zone: ZoneInfo = field(init=False, repr=False)
    _starts: list[float] = field(init=False, repr=False)
    _ends: list[float] = field(init=False, repr=False)
    _first_day: date = field(init=False, repr=False)
    _last_day: date = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._zone = zone(self.hours.timezone)
        centre = from_minutes(self.around).astimezone(self._zone).date()
        self._first_day = centre - timedelta(days=3)
        self._last_day = self._first_day - timedelta(days=1)
        self._starts = []
        self._ends = []
        if not self.hours.always:
            self._extend_forward(_CHUNK_DAYS)

    # -- generation -------------------------------------------------------------

    def _interval(self, day: date) -> tuple[float, float] | None:
        if day.weekday() not in self.hours.days:
            return None
        start = datetime.combine(day, self.hours.start, tzinfo=self._zone)
        end_day = day if self.hours.end > self.hours.start else day + timedelta(days=1)
        end = datetime.combine(end_day, self.hours.end, tzinfo=self._zone)
        return to_minutes(start), to_minutes(end)

    def _extend_forward(self, days: int) -> None:
        for _ in range(days):
            self._last_day += timedelta(days=1)
            interval = self._interval(self._last_day)
            if interval is not None:
                self._starts.append(interval[0])
                self._ends.append(interval[1])

    def _extend_backward(self, days: int) -> int:
        """Prepend ``days`` days of intervals; returns how many intervals were added."""
        added_starts: list[float] = []
        added_ends: list[float] = []
        for _ in range(days):
            self._first_day -= timedelta(days=1)
            interval = self._interval(self._first_day)
            if interval is not None:
                added_starts.append(interval[0])
                added_ends.append(interval[1])
        added_starts.reverse()
        added_ends.reverse()
        self._starts[:0] = added_starts
        self._ends[:0] = added_ends
        return len(added_starts)

    def _cover_back_to(self, minutes: float) -> None:
        while not self._starts or self._starts[0] > minutes:
            self._extend_backward(_CHUNK_DAYS)

    # -- questions --------------------------------------------------------------

    def next_staffed(self, minutes: float) -> float:
        """The earliest staffed moment at or after ``minutes``."""
        if self.hours.always:
            return minutes
        if minutes < self._starts[0]:
            self._cover_back_to(minutes)
        index = bisect_right(self._ends, minutes)
        while index == len(self._ends):
            self._extend_forward(_CHUNK_DAYS)
            index = bisect_right(self._ends, minutes)
        start = self._starts[index]
        return minutes if start <= minutes else start

    def is_staffed(self, minutes: float) -> bool:
        return self.next_staffed(minutes) == minutes

    def unstaffed_between(self, start: float, end: float) -> bool:
        """Whether any unstaffed moment lies in ``[start, end]``."""
        if self.hours.always:
            return False
        if not self.is_staffed(start):
            return True
        index = bisect_right(self._ends, start)
        return end >= self._ends[index]

    def subtract_staffed(self, minutes: float, amount: float) -> float:
        """The latest moment from which ``amount`` minutes of staffed time end at ``minutes``.

        Used for the packing buffer: packing needs a person, so two hours of packing
        before a Monday 09:00 ship-by start on Friday afternoon, not at 07:00 Monday.
        """
        if amount <= 0:
            return minutes
        if self.hours.always:
            return minutes - amount
        self._cover_back_to(minutes)
        while self._ends[-1] <= minutes:
            self._extend_forward(_CHUNK_DAYS)
        index = bisect_right(self._starts, minutes) - 1
        remaining = amount
        top = minutes
        while True:
            while index < 0:
                index += self._extend_backward(_CHUNK_DAYS)
            start, end = self._starts[index], self._ends[index]
            top = min(top, end)
            available = top - start
            if available >= remaining:
                return top - remaining
            remaining -= available
            index -= 1
            top = start
