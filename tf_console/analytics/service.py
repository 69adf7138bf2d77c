"""Reads the store, the print queue and the health log, and hands back a :class:`Report`."""

from __future__ import annotations

import logging
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import anyio.to_thread

from tf_console.analytics.report import ProductionStats, Report, build_report, production_numbers, window
from tf_console.clock import Clock
from tf_console.production.scheduler import compute_schedule
from tf_console.production.service import ProductionService
from tf_console.store import Store

if TYPE_CHECKING:
    from tf_console.runtime import Runtime

HEALTH_LOG = "health"  # the runtime's health log (tf_console.runtime.HEALTH_LOG)

log = logging.getLogger(__name__)


class AnalyticsService:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        timezone: str = "UTC",
        production: ProductionService | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.production = production

    @classmethod
    def from_runtime(cls, runtime: Runtime) -> AnalyticsService:
        return cls(
            runtime.store,
            runtime.clock,
            timezone=runtime.settings.timezone,
            production=runtime.production,
        )

    def _production(self, now: datetime, days: int) -> ProductionStats | None:
        if self.production is None:
            return None
        try:
            snapshot = self.production.snapshot()
            return production_numbers(
                compute_schedule(snapshot),
                snapshot.printers,
                self.production.ratios(),
                self.production.runs(),
                now=now,
                days=days,
                tz=self.tz,
            )
        except Exception:  # a broken printers.toml must not hide the order numbers
            log.exception("production numbers could not be computed")
            return None

    def _health(self) -> list[dict[str, Any]]:
        return list(self.store.log(HEALTH_LOG).iter())

    def report(self, days: int) -> Report:
        """Blocking: reads every order placed in the window (archives too, without buyer data)."""
        now = self.clock.now()
        first, _last = window(now, days, self.tz)
        since = datetime.combine(first, time(0), self.tz)
        earliest = since - timedelta(days=1)
        orders = [
            o
            for o in self.store.orders.iter_all(include_archive=True, include_pii=False)
            if o.created_at >= earliest
        ]
        return build_report(
            orders,
            now=now,
            days=days,
            tz=self.tz,
            timezone_name=self.timezone,
            production=self._production(now, days),
            health=self._health(),
        )

    async def report_async(self, days: int) -> Report:
        return await anyio.to_thread.run_sync(self.report, days)
