"""Analytics (issue 9, items 7–8): per platform and day, production and API numbers.

:mod:`tf_console.analytics.report` defines every number and computes it (pure),
:mod:`tf_console.analytics.service` reads the store for it, and
:mod:`tf_console.analytics.render` writes it as a table, JSON or CSV.
"""

from __future__ import annotations

from tf_console.analytics.report import (
    ApiStats,
    DayCapacity,
    PlatformDay,
    ProductionStats,
    Report,
    build_report,
    percentile,
)
from tf_console.analytics.service import AnalyticsService

__all__ = [
    "AnalyticsService",
    "ApiStats",
    "DayCapacity",
    "PlatformDay",
    "ProductionStats",
    "Report",
    "build_report",
    "percentile",
]
