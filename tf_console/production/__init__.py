"""Production planning: the catalog, the print queue, printers and the scheduler (no Textual here).

- :mod:`.catalog` — ``catalog.toml``: which items are printed or come from stock, and how.
- :mod:`.printers` — ``printers.toml``: the printers, what each can take, staffed hours.
- :mod:`.scheduler` — the pure scheduling function (safe to run in a worker thread).
- :mod:`.service` — :class:`ProductionService`: jobs from orders, queue operations, learning.
"""

from __future__ import annotations

from tf_console.production.catalog import Catalog, Classification, Profile
from tf_console.production.errors import ConfigFileError, ProductionError
from tf_console.production.scheduler import (
    JobSchedule,
    OrderSchedule,
    PlacedPlate,
    Schedule,
    ScheduleInput,
    compute_schedule,
    plan_move,
    queue_order,
    units_printable_before,
)
from tf_console.production.service import Assignment, ProductionChange, ProductionService

__all__ = [
    "Assignment",
    "Catalog",
    "Classification",
    "ConfigFileError",
    "JobSchedule",
    "OrderSchedule",
    "PlacedPlate",
    "ProductionChange",
    "ProductionError",
    "ProductionService",
    "Profile",
    "Schedule",
    "ScheduleInput",
    "compute_schedule",
    "plan_move",
    "queue_order",
    "units_printable_before",
]
