"""What the production layer stores besides print jobs: plates on printers and learned print times.

A :class:`PlateRun` is one plate on one printer.  It is the record of progress:
a job's printed units are the units of its printed runs, which lets one plate
carry units of several jobs (batching) and several plates of one job print at once.

:class:`PrintTimeRatio` is the running ratio of actual to slicer-estimated minutes
per (SKU, printer model).  It is a ratio of decayed sums, so roughly the last
:data:`LEARNING_WINDOW_RUNS` runs dominate and a changed printer is learned again.
"""

from __future__ import annotations

import enum

from pydantic import BaseModel, Field

from tf_console.models import UtcDatetime

LEARNING_WINDOW_RUNS = 20
# A run whose measured time is this far from the estimate is almost always a plate
# marked printed long after it finished (or a mis-click), not a real print time.
OUTLIER_FACTOR = 3.0
# Learned ratios are clamped so one bad profile estimate cannot push ETAs to absurdity.
RATIO_BOUNDS = (0.25, 4.0)


class RunState(enum.StrEnum):
    PRINTING = "printing"
    PRINTED = "printed"
    FAILED = "failed"


class PlateRun(BaseModel):
    run_id: str
    printer: str  # empty for units recorded without a printer (shipped before tracking began)
    printer_model: str = ""
    profile: str = ""
    allocations: dict[str, int] = Field(default_factory=dict)  # job_id -> units on this plate
    sku_estimates: dict[str, float] = Field(default_factory=dict)  # SKU -> slicer minutes on this plate
    expected_minutes: float = 0.0  # estimate corrected by learning when the plate started
    started_at: UtcDatetime
    finished_at: UtcDatetime | None = None
    state: RunState = RunState.PRINTING
    note: str = ""

    @property
    def estimate_minutes(self) -> float:
        return sum(self.sku_estimates.values())


class PrintTimeRatio(BaseModel):
    sku: str
    printer_model: str
    runs: int = 0
    estimate_minutes: float = 0.0  # decayed sum
    actual_minutes: float = 0.0  # decayed sum
    updated_at: UtcDatetime | None = None

    @property
    def key(self) -> str:
        return ratio_key(self.sku, self.printer_model)

    @property
    def ratio(self) -> float:
        if self.runs == 0 or self.estimate_minutes <= 0:
            return 1.0
        low, high = RATIO_BOUNDS
        return min(high, max(low, self.actual_minutes / self.estimate_minutes))

    def with_sample(self, estimate: float, actual: float) -> PrintTimeRatio:
        # Plain sums for the first runs, then exponential decay: the last ~20 runs dominate.
        keep = 1.0 if self.runs < LEARNING_WINDOW_RUNS else (LEARNING_WINDOW_RUNS - 1) / LEARNING_WINDOW_RUNS
        return self.model_copy(
            update={
                "runs": self.runs + 1,
                "estimate_minutes": self.estimate_minutes * keep + estimate,
                "actual_minutes": self.actual_minutes * keep + actual,
            }
        )


def ratio_key(sku: str, printer_model: str) -> str:
    return f"{sku.strip().casefold()}|{printer_model.strip().casefold()}"
