"""The owner's numbers, computed from what the console stores (pure functions, no I/O).

Definitions (the report, the CLI and the analytics screen all use these):

* **Window**: the last N days in the shop's time zone (``TF_TIMEZONE``), today
  included.  An order belongs to the local day it was placed.
* **orders**: every order placed that day, cancelled and Amazon-fulfilled (FBA)
  ones included.  **cancelled**: those of them cancelled since.
* **units**: the quantities of that day's orders that were not cancelled.
* **Money**, per currency and never added across currencies, from orders not
  cancelled: **buyer_paid** is what eBay and Etsy report (what the buyer paid),
  **proceeds** what Amazon reports (what the seller receives).  The two are kept
  apart because they measure different things.  An order without a price yet
  (Amazon before payment) counts as an order but adds no money.
* **Time to ship**: for merchant-fulfilled orders the console shipped in full,
  hours from placing the order to its last confirmed shipment's ship time;
  **average** and **p90** (nearest rank: the smallest time at least 90 % of
  shipped orders were at or under).  Orders shipped on a marketplace's own site
  have no ship time here and are counted as ``shipped_without_time``.
* **late_shipments**: of those, shipped after their ship-by time.  **overdue**:
  merchant-fulfilled orders still not shipped whose ship-by time has passed.
* **Production** (now, not per day): print hours queued (remaining work, learned
  estimates) against printer capacity — each enabled printer counts 24 hours a
  day, since printers run unattended; the scheduler still starts plates only in
  staffed hours — and, for each of the next 7 days, the scheduled print hours
  that fall on that day.  **Estimate accuracy** is the learned ratio of actual to
  slicer-estimated print time over every (SKU, printer model): ``sum(actual) /
  sum(estimate)`` of the decayed sums the scheduler learns from.
* **API**: from the health log in the window, per platform: calls (attempts),
  how many succeeded, the success rate, 429 answers, and the most frequent errors.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from tf_console.models import (
    FulfilledBy,
    Order,
    OrderStatus,
    Platform,
    ShipmentState,
)
from tf_console.production.printers import Printer
from tf_console.production.records import PlateRun, PrintTimeRatio, RunState
from tf_console.production.scheduler import Schedule

FORECAST_DAYS = 7
TOP_ERRORS = 5


@dataclass(slots=True)
class PlatformDay:
    """One platform's numbers for one day (or, in ``Report.totals``, for the whole window)."""

    platform: Platform
    day: date | None  # None in a total
    orders: int = 0
    units: int = 0
    cancelled: int = 0
    buyer_paid: dict[str, Decimal] = field(default_factory=dict)
    proceeds: dict[str, Decimal] = field(default_factory=dict)
    ship_hours: list[float] = field(default_factory=list)
    shipped_without_time: int = 0
    late_shipments: int = 0
    overdue: int = 0

    @property
    def shipped_with_time(self) -> int:
        return len(self.ship_hours)

    @property
    def avg_ship_hours(self) -> float | None:
        return sum(self.ship_hours) / len(self.ship_hours) if self.ship_hours else None

    @property
    def p90_ship_hours(self) -> float | None:
        return percentile(self.ship_hours, 0.9)

    def add(self, other: PlatformDay) -> None:
        self.orders += other.orders
        self.units += other.units
        self.cancelled += other.cancelled
        for mine, theirs in ((self.buyer_paid, other.buyer_paid), (self.proceeds, other.proceeds)):
            for currency, amount in theirs.items():
                mine[currency] = mine.get(currency, Decimal(0)) + amount
        self.ship_hours.extend(other.ship_hours)
        self.shipped_without_time += other.shipped_without_time
        self.late_shipments += other.late_shipments
        self.overdue += other.overdue


@dataclass(frozen=True, slots=True)
class DayCapacity:
    day: date
    scheduled_hours: float
    capacity_hours: float


@dataclass(frozen=True, slots=True)
class ProductionStats:
    queued_hours: float
    printers: int
    capacity_hours_per_day: float
    forecast: tuple[DayCapacity, ...]
    estimate_ratio: float | None  # actual / slicer estimate, learned; None before any learning
    learned_runs: int
    plates_printed: int  # in the window
    plates_failed: int  # in the window
    late_orders: int  # projected to miss their pack-by time

    @property
    def days_of_work(self) -> float | None:
        if self.capacity_hours_per_day <= 0:
            return None
        return self.queued_hours / self.capacity_hours_per_day


@dataclass(slots=True)
class ApiStats:
    platform: Platform
    calls: int = 0
    ok: int = 0
    throttled: int = 0
    errors: list[tuple[str, int]] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        return self.ok / self.calls if self.calls else None


@dataclass(frozen=True, slots=True)
class Report:
    generated_at: datetime
    days: int
    timezone: str
    first_day: date
    last_day: date
    rows: tuple[PlatformDay, ...]  # one per platform and day, every day of the window
    totals: tuple[PlatformDay, ...]  # one per platform
    production: ProductionStats | None
    api: tuple[ApiStats, ...]

    @property
    def platforms(self) -> list[Platform]:
        return [t.platform for t in self.totals]

    def series(self, platform: Platform) -> list[PlatformDay]:
        return [r for r in self.rows if r.platform is platform]


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``fraction`` of values at or below."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def local_day(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()


def ship_time(order: Order) -> datetime | None:
    """When a merchant-fulfilled order shipped in full through the console (None: unknown)."""
    if order.status is not OrderStatus.SHIPPED or order.fulfilled_by is not FulfilledBy.MERCHANT:
        return None
    confirmed = [s.shipped_at for s in order.shipments if s.state is ShipmentState.CONFIRMED]
    return max(confirmed) if confirmed else None


def window(now: datetime, days: int, tz: tzinfo) -> tuple[date, date]:
    last = local_day(now, tz)
    return last - timedelta(days=days - 1), last


def order_numbers(orders: Iterable[Order], *, now: datetime, days: int, tz: tzinfo) -> list[PlatformDay]:
    """Per platform and day over the window; a platform with no order in it is left out."""
    first, last = window(now, days, tz)
    cells: dict[tuple[Platform, date], PlatformDay] = {}
    seen: list[Platform] = []
    for order in orders:
        day = local_day(order.created_at, tz)
        if not first <= day <= last:
            continue
        if order.platform not in seen:
            seen.append(order.platform)
        cell = cells.setdefault((order.platform, day), PlatformDay(order.platform, day))
        cell.orders += 1
        if order.status is OrderStatus.CANCELLED:
            cell.cancelled += 1
            continue
        cell.units += sum(i.quantity for i in order.items)
        if order.total is not None:
            money = cell.proceeds if order.total_is_proceeds else cell.buyer_paid
            money[order.total.currency] = money.get(order.total.currency, Decimal(0)) + order.total.amount
        if order.fulfilled_by is not FulfilledBy.MERCHANT:
            continue
        shipped_at = ship_time(order)
        if shipped_at is not None:
            cell.ship_hours.append((shipped_at - order.created_at).total_seconds() / 3600)
            if order.ship_by is not None and shipped_at > order.ship_by:
                cell.late_shipments += 1
        elif order.status is OrderStatus.SHIPPED:
            cell.shipped_without_time += 1
        elif order.is_open and order.ship_by is not None and order.ship_by < now:
            cell.overdue += 1
    order_of = {p: i for i, p in enumerate(sorted(seen, key=_platform_rank))}
    rows: list[PlatformDay] = []
    for platform in sorted(order_of, key=lambda p: order_of[p]):
        day = first
        while day <= last:
            rows.append(cells.get((platform, day)) or PlatformDay(platform, day))
            day += timedelta(days=1)
    return rows


def _platform_rank(platform: Platform) -> int:
    ranks = {Platform.AMAZON: 0, Platform.EBAY: 1, Platform.ETSY: 2}
    return ranks.get(platform, 3)


def totals_of(rows: Iterable[PlatformDay]) -> list[PlatformDay]:
    totals: dict[Platform, PlatformDay] = {}
    for row in rows:
        totals.setdefault(row.platform, PlatformDay(row.platform, None)).add(row)
    return list(totals.values())


def _overlap_hours(start: datetime, end: datetime, day: date, tz: tzinfo) -> float:
    day_start = datetime.combine(day, time(0), tz)
    day_end = day_start + timedelta(days=1)
    lo, hi = max(start, day_start), min(end, day_end)
    return max(0.0, (hi - lo).total_seconds() / 3600)


def production_numbers(
    schedule: Schedule,
    printers: Sequence[Printer],
    ratios: Iterable[PrintTimeRatio],
    runs: Iterable[PlateRun],
    *,
    now: datetime,
    days: int,
    tz: tzinfo,
) -> ProductionStats:
    enabled = sum(1 for p in printers if p.enabled)
    capacity = 24.0 * enabled
    queued = sum(job.expected_minutes for job in schedule.jobs.values()) / 60
    today = local_day(now, tz)
    forecast: list[DayCapacity] = []
    for offset in range(FORECAST_DAYS):
        day = today + timedelta(days=offset)
        hours = sum(
            _overlap_hours(max(plate.start, now), plate.end, day, tz)
            for plate in schedule.plates
            if plate.end > now
        )
        forecast.append(DayCapacity(day, round(hours, 2), capacity))
    learned = [r for r in ratios if r.runs > 0 and r.estimate_minutes > 0]
    estimate = sum(r.estimate_minutes for r in learned)
    actual = sum(r.actual_minutes for r in learned)
    first, _last = window(now, days, tz)
    finished = [r for r in runs if r.finished_at is not None and local_day(r.finished_at, tz) >= first]
    return ProductionStats(
        queued_hours=round(queued, 2),
        printers=enabled,
        capacity_hours_per_day=capacity,
        forecast=tuple(forecast),
        estimate_ratio=actual / estimate if estimate > 0 else None,
        learned_runs=sum(r.runs for r in learned),
        plates_printed=sum(1 for r in finished if r.state is RunState.PRINTED),
        plates_failed=sum(1 for r in finished if r.state is RunState.FAILED),
        late_orders=len(schedule.late_orders()),
    )


def api_numbers(records: Iterable[Mapping[str, Any]], *, since: datetime) -> list[ApiStats]:
    """Per platform, from health-log records (``CallRecord.to_dict()`` plus ``platform``)."""
    stats: dict[Platform, ApiStats] = {}
    errors: dict[Platform, Counter[str]] = {}
    for record in records:
        try:
            platform = Platform(str(record.get("platform")))
            at = datetime.fromisoformat(str(record.get("at")))
        except ValueError:
            continue
        if at < since:
            continue
        entry = stats.setdefault(platform, ApiStats(platform))
        kind = record.get("kind", "call")
        ok = bool(record.get("ok"))
        if kind == "call":
            entry.calls += 1
            entry.ok += ok
            entry.throttled += record.get("status") == 429
        if not ok and kind != "warning":
            code = str(record.get("error_code") or "")
            message = str(record.get("message") or "no message")
            errors.setdefault(platform, Counter())[f"{code}: {message}" if code else message] += 1
    for platform, counted in errors.items():
        stats[platform].errors = counted.most_common(TOP_ERRORS)
    return sorted(stats.values(), key=lambda s: _platform_rank(s.platform))


def build_report(
    orders: Iterable[Order],
    *,
    now: datetime,
    days: int,
    tz: tzinfo,
    timezone_name: str = "UTC",
    production: ProductionStats | None = None,
    health: Iterable[Mapping[str, Any]] = (),
) -> Report:
    if days < 1:
        raise ValueError("a report covers at least one day")
    first, last = window(now, days, tz)
    rows = order_numbers(orders, now=now, days=days, tz=tz)
    since = datetime.combine(first, time(0), tz)
    return Report(
        generated_at=now,
        days=days,
        timezone=timezone_name,
        first_day=first,
        last_day=last,
        rows=tuple(rows),
        totals=tuple(totals_of(rows)),
        production=production,
        api=tuple(api_numbers(health, since=since)),
    )
