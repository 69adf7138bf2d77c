"""The print scheduler: a pure function from (jobs, printers, now, settings) to a schedule.

Nothing here touches the store, the clock or the catalog file, so the console can
run :func:`compute_schedule` in a worker thread on a snapshot and the inventory
layer can reuse it for made-to-order quantities (:func:`units_printable_before`).

How it works — list scheduling, and the heuristics on top of it
---------------------------------------------------------------
1. **The list.**  Every active job is ordered by: pinned jobs first in their manual
   order; then priority class (rush, normal, low); then earliest *pack-by* time
   (the order's ship-by minus the packing buffer, counted in staffed time because
   packing needs a person); then the shortest remaining job; then age.  A job's
   remaining units become plates (``units_per_plate`` each); a profile marked
   ``batch`` fills a partly used plate with units of the next jobs of the same
   profile before opening a new one.
2. **Dispatch.**  Whenever a printer can start (the earliest first), it takes the
   first plate in list order that it is eligible for (material, nozzle, plate,
   build volume).  This is greedy list scheduling; it never leaves a printer idle
   while a plate it could print waits, but it is not an optimal schedule.
3. **Staffed hours.**  A finished plate blocks its printer until someone clears it:
   the printer's next start is the first staffed moment after the end, plus the
   changeover minutes, itself moved into staffed time.  Every start therefore falls
   in staffed hours; ends may fall at night.
4. **Long jobs at shift end.**  When the next plate would finish while nobody is in
   (so the printer would sit blocked until morning), the dispatcher looks a few
   plates ahead (``shift_end_lookahead``, same priority class, same eligible
   printers) for one that leaves less of the night idle — typically a long plate
   that runs through it — and takes it instead, but only when that saves at least
   ``overnight_gain_minutes`` and every plate it jumps would still be cleared
   before its pack-by time if it waited for the next shift.  During the day this
   runs short plates first; at the end of the day it starts the long one.
5. **Learning.**  A plate's time is the slicer estimate times the learned ratio of
   actual to estimated minutes for its SKU on that printer model.

These are heuristics: the projected times are estimates that move as plates finish
early or late, and a "late risk" flag is a prompt to look, not a promise.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo

from tf_console.models import JobState, PrintJob, Priority
from tf_console.production.catalog import Profile
from tf_console.production.hours import StaffedCalendar, from_minutes, to_minutes, zone
from tf_console.production.printers import Printer, ScheduleSettings, eligibility_problem
from tf_console.production.records import PlateRun, ratio_key

ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.PRINTING, JobState.FAILED, JobState.HELD})
"""Jobs that appear in the queue (a failed job waits for its reprint)."""
SCHEDULABLE_STATES = frozenset({JobState.QUEUED, JobState.PRINTING, JobState.FAILED})

_INF = math.inf
Move = Literal["top", "up", "down"]
_RANK = {priority: priority.rank for priority in Priority}


@dataclass(frozen=True)
class ScheduleInput:
    """Everything the scheduler reads, captured at one moment."""

    jobs: Sequence[PrintJob]
    printers: Sequence[Printer]
    profiles: Mapping[str, Profile]
    now: datetime
    settings: ScheduleSettings
    running: Sequence[PlateRun] = ()
    units_printed: Mapping[str, int] = field(default_factory=dict)  # job_id -> units already printed
    ratios: Mapping[str, float] = field(default_factory=dict)  # ratio_key(sku, model) -> learned ratio


def _moment(minutes: float | None) -> datetime | None:
    return None if minutes is None else from_minutes(minutes)


def _span(minutes: float | None) -> timedelta | None:
    return None if minutes is None else timedelta(minutes=minutes)


# Times are kept as float minutes since the epoch and turned into datetimes only when
# read: a 10,000-job schedule would otherwise spend most of its time building datetimes.


class PlacedPlate(NamedTuple):
    printer: str
    profile: str
    allocations: tuple[tuple[str, int], ...]  # (job_id, units)
    start_minutes: float
    end_minutes: float
    clear_minutes: float  # when the printer is free again (someone took the plate off)
    estimate_minutes: float  # slicer
    expected_minutes: float  # corrected by learning for this printer's model
    running: bool = False

    @property
    def start(self) -> datetime:
        return from_minutes(self.start_minutes)

    @property
    def end(self) -> datetime:
        return from_minutes(self.end_minutes)

    @property
    def clear(self) -> datetime:
        return from_minutes(self.clear_minutes)


class JobSchedule(NamedTuple):
    job_id: str
    position: int  # 1-based place in the queue
    printers: tuple[str, ...] = ()
    start_minutes: float | None = None
    end_minutes: float | None = None
    ready_minutes: float | None = None  # the last plate cleared
    plates: int = 0  # plates still to print or printing
    estimate_minutes: float = 0.0  # slicer estimate of the remaining work
    expected_minutes: float = 0.0  # the same corrected by learning on the chosen printers
    ship_by: datetime | None = None
    pack_by_minutes: float | None = None
    slack_minutes: float | None = None  # pack-by minus ready
    late: bool = False
    late_risk: bool = False
    problem: str = ""  # why the job has no projected times (held, no eligible printer…)

    @property
    def printer(self) -> str:
        return ", ".join(self.printers)

    @property
    def learned(self) -> bool:
        return abs(self.expected_minutes - self.estimate_minutes) > 0.5

    @property
    def start(self) -> datetime | None:
        return _moment(self.start_minutes)

    @property
    def end(self) -> datetime | None:
        return _moment(self.end_minutes)

    @property
    def ready_at(self) -> datetime | None:
        return _moment(self.ready_minutes)

    @property
    def pack_by(self) -> datetime | None:
        return _moment(self.pack_by_minutes)

    @property
    def slack(self) -> timedelta | None:
        return _span(self.slack_minutes)


class OrderSchedule(NamedTuple):
    order_key: str
    job_ids: tuple[str, ...]
    ship_by: datetime | None
    pack_by_minutes: float | None
    ready_minutes: float | None  # None while a job is held or cannot be scheduled
    slack_minutes: float | None  # pack-by minus ready
    late: bool
    late_risk: bool
    blocked: str = ""

    @property
    def pack_by(self) -> datetime | None:
        return _moment(self.pack_by_minutes)

    @property
    def ready_at(self) -> datetime | None:
        return _moment(self.ready_minutes)

    @property
    def slack(self) -> timedelta | None:
        return _span(self.slack_minutes)

    @property
    def lateness(self) -> timedelta:
        """How far past the pack-by time the order is projected to be ready (zero if not)."""
        return (
            timedelta(minutes=max(0.0, -self.slack_minutes))
            if self.slack_minutes is not None
            else timedelta(0)
        )


@dataclass(frozen=True)
class Schedule:
    now: datetime
    sequence: tuple[str, ...]  # active job ids in queue order
    jobs: Mapping[str, JobSchedule]
    orders: Mapping[str, OrderSchedule]
    plates: tuple[PlacedPlate, ...]
    printer_free_at: Mapping[str, datetime]  # earliest next start once all placed plates are done
    warnings: tuple[str, ...]

    def late_orders(self) -> list[OrderSchedule]:
        """Orders projected to miss their pack-by time, the latest first."""
        return _late_first(self.orders.values())


# ---------------------------------------------------------------------------
# Preparation shared by the queue order and the scheduler


@dataclass(slots=True)
class _Entry:
    job: PrintJob
    index: int
    profile: Profile
    remaining: int  # units not yet printed nor printing
    pack_by: float  # minutes; inf when the order has no ship-by
    problem: str


def fallback_profile(job: PrintJob) -> Profile:
    """The profile as it was when the job was created (used when the catalog lost it)."""
    return Profile(
        name=job.profile or job.sku,
        material=job.material,
        minutes_per_unit=job.minutes_per_unit,
        units_per_plate=job.units_per_plate,
        colour=job.colour,
    )


def _running_units(running: Sequence[PlateRun]) -> dict[str, int]:
    units: dict[str, int] = {}
    for run in running:
        for job_id, count in run.allocations.items():
            units[job_id] = units.get(job_id, 0) + count
    return units


def _prepare(inp: ScheduleInput, calendar: StaffedCalendar) -> list[_Entry]:
    buffer = inp.settings.packing_buffer_minutes
    running = _running_units(inp.running)
    pack_by_cache: dict[datetime, float] = {}
    entries: list[_Entry] = []
    keys: list[tuple[int, float, int, float, float, float, str]] = []
    for job in inp.jobs:
        if job.state not in ACTIVE_STATES:
            continue
        profile = inp.profiles.get(job.profile)
        problem = ""
        if profile is None:
            profile = fallback_profile(job)
            if not profile.material or profile.minutes_per_unit <= 0:
                problem = f"its profile {job.profile!r} is not in the catalog"
        if job.state is JobState.HELD:
            problem = "held"
        remaining = max(0, job.quantity - inp.units_printed.get(job.job_id, 0) - running.get(job.job_id, 0))
        if job.due is None:
            pack_by = _INF
        else:
            cached = pack_by_cache.get(job.due)
            if cached is None:
                cached = calendar.subtract_staffed(to_minutes(job.due), buffer)
                pack_by_cache[job.due] = cached
            pack_by = cached
        entries.append(_Entry(job, len(entries), profile, remaining, pack_by, problem))
        if job.pin is not None:
            keys.append((0, float(job.pin), 0, 0.0, 0.0, 0.0, job.job_id))
        else:
            keys.append(
                (
                    1,
                    0.0,
                    _RANK[job.priority],
                    pack_by,
                    remaining * profile.minutes_per_unit,
                    job.created_at.timestamp(),
                    job.job_id,
                )
            )
    order = sorted(range(len(entries)), key=keys.__getitem__)
    ordered = [entries[i] for i in order]
    for position, entry in enumerate(ordered):
        entry.index = position
    return ordered


def plan_move(
    sequence: Sequence[str], pinned: Collection[str], job_id: str, where: Move
) -> tuple[list[str], dict[str, int]]:
    """The queue order after moving ``job_id`` to the top or one place up or down, and the pins
    that keep it so.

    Pinned jobs come first in their manual order, so a job stays where it was put only
    when it and every job above it are pinned: the returned pins number that prefix
    1..n (jobs pinned before stay pinned).  The console shows the order at once; the
    service stores the pins.
    """
    order = list(sequence)
    index = order.index(job_id)
    if where == "top":
        order.insert(0, order.pop(index))
        keep_through = 0
    elif where == "up":
        if index == 0:
            return order, {}
        order[index - 1], order[index] = order[index], order[index - 1]
        keep_through = index - 1
    else:
        if index == len(order) - 1:
            return order, {}
        order[index], order[index + 1] = order[index + 1], order[index]
        keep_through = index + 1
    last = max([keep_through, *(i for i, jid in enumerate(order) if jid in pinned)])
    return order, {jid: position for position, jid in enumerate(order[: last + 1], start=1)}


def queue_order(inp: ScheduleInput) -> list[str]:
    """The active job ids in queue order — cheap, for showing a reorder at once."""
    calendar = StaffedCalendar(inp.settings.hours, to_minutes(inp.now))
    return [entry.job.job_id for entry in _prepare(inp, calendar)]


# ---------------------------------------------------------------------------
# Dispatch


@dataclass(slots=True)
class _Plate:
    order: int
    entries: list[_Entry]
    units: list[int]
    profile: Profile
    signature: int
    pinned: bool
    rank: int
    pack_by: float
    minutes_by_model: dict[str, float] = field(default_factory=dict)
    slot: int = 0  # position in its signature's list
    taken: bool = False
    printer: int = -1
    start: float = 0.0
    end: float = 0.0
    clear: float = 0.0


class _Dispatcher:
    def __init__(self, inp: ScheduleInput, calendar: StaffedCalendar, entries: list[_Entry]) -> None:
        self.inp = inp
        self.settings = inp.settings
        self.calendar = calendar
        self.now = to_minutes(inp.now)
        self.printers = list(inp.printers)
        self.printer_index = {p.name.casefold(): i for i, p in enumerate(self.printers)}
        self.entries = entries
        self.problems: dict[str, str] = {}
        self.warnings: list[str] = []
        self.plates: list[_Plate] = []
        self.signatures: dict[tuple[int, ...], int] = {}
        self.signature_plates: list[list[int]] = []
        # Per signature, "next untaken position" pointers with path compression, so that
        # plates taken out of order by the shift-end heuristic are never scanned twice.
        self.skips: list[list[int]] = []
        self.printer_signatures: list[list[int]] = [[] for _ in self.printers]
        self._eligible_cache: dict[Profile, tuple[tuple[int, ...], str]] = {}
        self._ratio_cache: dict[tuple[str, str], float] = {}
        self.running_placed: list[tuple[PlateRun, int, float, float, float]] = []
        self.next_start: list[float] = [_INF] * len(self.printers)

    # -- inputs ----------------------------------------------------------------

    def eligible(self, profile: Profile) -> tuple[tuple[int, ...], str]:
        cached = self._eligible_cache.get(profile)
        if cached is None:
            indices: list[int] = []
            reasons: list[str] = []
            for i, printer in enumerate(self.printers):
                reason = eligibility_problem(profile, printer)
                if reason is None:
                    indices.append(i)
                else:
                    reasons.append(f"{printer.name} {reason}")
            if indices:
                cached = (tuple(indices), "")
            elif not self.printers:
                cached = ((), "no printers are listed in printers.toml")
            else:
                cached = ((), "no printer can take it: " + "; ".join(reasons))
            self._eligible_cache[profile] = cached
        return cached

    def ratio(self, sku: str, model: str) -> float:
        key = (sku, model)
        cached = self._ratio_cache.get(key)
        if cached is None:
            cached = self.inp.ratios.get(ratio_key(sku, model), 1.0)
            self._ratio_cache[key] = cached
        return cached

    def duration(self, plate: _Plate, printer: int) -> float:
        model = self.printers[printer].model
        minutes = plate.minutes_by_model.get(model)
        if minutes is None:
            per_unit = plate.profile.minutes_per_unit
            minutes = sum(
                units * per_unit * self.ratio(entry.job.sku, model)
                for entry, units in zip(plate.entries, plate.units, strict=True)
            )
            plate.minutes_by_model[model] = minutes
        return minutes

    def _signature(self, eligible: tuple[int, ...]) -> int:
        signature = self.signatures.get(eligible)
        if signature is None:
            signature = len(self.signature_plates)
            self.signatures[eligible] = signature
            self.signature_plates.append([])
            for printer in eligible:
                self.printer_signatures[printer].append(signature)
        return signature

    def build_plates(self) -> None:
        open_batches: dict[str, _Plate] = {}
        for entry in self.entries:
            if entry.problem:
                self.problems[entry.job.job_id] = entry.problem
                continue
            if entry.remaining <= 0:
                continue
            eligible, reason = self.eligible(entry.profile)
            if not eligible:
                self.problems[entry.job.job_id] = reason
                continue
            signature = self._signature(eligible)
            capacity = entry.profile.units_per_plate
            units_left = entry.remaining
            if entry.profile.batch:
                batch = open_batches.get(entry.profile.name)
                if batch is not None and batch.profile == entry.profile:
                    take = min(units_left, capacity - sum(batch.units))
                    if take > 0:
                        batch.entries.append(entry)
                        batch.units.append(take)
                        batch.minutes_by_model.clear()
                        batch.pack_by = min(batch.pack_by, entry.pack_by)
                        units_left -= take
            while units_left > 0:
                take = min(units_left, capacity)
                plate = _Plate(
                    order=len(self.plates),
                    entries=[entry],
                    units=[take],
                    profile=entry.profile,
                    signature=signature,
                    pinned=entry.job.pin is not None,
                    rank=_RANK[entry.job.priority],
                    pack_by=entry.pack_by,
                )
                self.plates.append(plate)
                plate.slot = len(self.signature_plates[signature])
                self.signature_plates[signature].append(plate.order)
                units_left -= take
                if entry.profile.batch:
                    open_batches[entry.profile.name] = plate

    def place_running(self) -> list[tuple[float, int]]:
        """Occupy printers with the plates on them now; returns each printer's first start."""
        busy_until = [self.now] * len(self.printers)
        has_run = [False] * len(self.printers)
        for run in self.inp.running:
            started = to_minutes(run.started_at)
            end = max(self.now, started + run.expected_minutes)
            clear = self.calendar.next_staffed(end)
            index = self.printer_index.get(run.printer.casefold())
            if index is None:
                self.warnings.append(
                    f"Printer {run.printer!r} has a plate printing but is not in printers.toml; "
                    "add it back or mark the plate printed or failed."
                )
            else:
                busy_until[index] = max(busy_until[index], clear)
                has_run[index] = True
            self.running_placed.append((run, index if index is not None else -1, started, end, clear))
        starts: list[tuple[float, int]] = []
        for i, printer in enumerate(self.printers):
            if not printer.enabled:
                continue
            ready = busy_until[i] + self.settings.changeover_minutes if has_run[i] else busy_until[i]
            starts.append((self.calendar.next_staffed(ready), i))
        return starts

    # -- the loop ----------------------------------------------------------------

    def _untaken_from(self, signature: int, position: int) -> int:
        """The first untaken position at or after ``position`` (the list length if none)."""
        skip = self.skips[signature]
        root = position
        while skip[root] != root:
            root = skip[root]
        while skip[position] != root:
            skip[position], position = root, skip[position]
        return root

    def _head(self, signature: int) -> int | None:
        position = self._untaken_from(signature, 0)
        return position if position < len(self.signature_plates[signature]) else None

    def _first_for(self, printer: int) -> tuple[int, int] | None:
        best: tuple[int, int] | None = None
        best_order = len(self.plates)
        for signature in self.printer_signatures[printer]:
            position = self._head(signature)
            if position is not None:
                order = self.signature_plates[signature][position]
                if order < best_order:
                    best_order = order
                    best = (signature, position)
        return best

    def _shift_end_choice(
        self, plate: _Plate, signature: int, position: int, printer: int, start: float
    ) -> _Plate:
        """Heuristic 4 of the module doc: prefer a plate that fills the night."""
        calendar = self.calendar
        end = start + self.duration(plate, printer)
        clear = calendar.next_staffed(end)
        idle = clear - end
        gain = self.settings.overnight_gain_minutes
        if idle < gain or idle <= 0 or not self._can_wait(plate, printer, clear):
            return plate
        plates = self.signature_plates[signature]
        best = plate
        best_idle = idle
        jumped: list[_Plate] = []
        best_jumped: list[_Plate] = []
        scanned = 0
        k = self._untaken_from(signature, position + 1)
        while k < len(plates) and scanned < self.settings.shift_end_lookahead:
            candidate = self.plates[plates[k]]
            k = self._untaken_from(signature, k + 1)
            scanned += 1
            if candidate.pinned or candidate.rank != plate.rank:
                break
            candidate_end = start + self.duration(candidate, printer)
            candidate_idle = calendar.next_staffed(candidate_end) - candidate_end
            if candidate_idle < best_idle:
                best, best_idle, best_jumped = candidate, candidate_idle, list(jumped)
            jumped.append(candidate)
        if best is plate or idle - best_idle < gain:
            return plate
        if all(self._can_wait(waiting, printer, clear) for waiting in best_jumped):
            return best
        return plate

    def _can_wait(self, plate: _Plate, printer: int, shift_start: float) -> bool:
        """Whether ``plate`` would still be cleared by its pack-by if it started at ``shift_start``."""
        if plate.pack_by == _INF:
            return True
        return self.calendar.next_staffed(shift_start + self.duration(plate, printer)) <= plate.pack_by

    def dispatch(self) -> None:
        self.skips = [list(range(len(plates) + 1)) for plates in self.signature_plates]
        heap = self.place_running()
        heapq.heapify(heap)
        lookahead = self.settings.shift_end_lookahead > 0 and not self.settings.hours.always
        changeover = self.settings.changeover_minutes
        calendar = self.calendar
        while heap:
            start, printer = heapq.heappop(heap)
            first = self._first_for(printer)
            if first is None:
                self.next_start[printer] = start
                continue
            signature, position = first
            plate = self.plates[self.signature_plates[signature][position]]
            if lookahead and not plate.pinned:
                plate = self._shift_end_choice(plate, signature, position, printer, start)
            end = start + self.duration(plate, printer)
            clear = calendar.next_staffed(end)
            plate.taken = True
            self.skips[plate.signature][plate.slot] = plate.slot + 1
            plate.printer = printer
            plate.start = start
            plate.end = end
            plate.clear = clear
            heapq.heappush(heap, (calendar.next_staffed(clear + changeover), printer))


# ---------------------------------------------------------------------------
# The result


@dataclass(slots=True)
class _JobTotals:
    start: float = _INF
    end: float = -_INF
    clear: float = -_INF
    plates: int = 0
    estimate: float = 0.0
    expected: float = 0.0
    printers: list[str] = field(default_factory=list)

    def add(
        self, printer: str, start: float, end: float, clear: float, estimate: float, expected: float
    ) -> None:
        self.start = min(self.start, start)
        self.end = max(self.end, end)
        self.clear = max(self.clear, clear)
        self.plates += 1
        self.estimate += estimate
        self.expected += expected
        if printer and printer not in self.printers:
            self.printers.append(printer)


def _local(minutes: float, tz: ZoneInfo) -> str:
    return from_minutes(minutes).astimezone(tz).strftime("%a %d %b %H:%M")


def _hours(minutes: float) -> str:
    hours = minutes / 60.0
    return f"{hours:.0f} h" if hours >= 10 else f"{hours:.1f} h"


def compute_schedule(inp: ScheduleInput) -> Schedule:
    """Place every queued plate on a printer; see the module doc for the method."""
    settings = inp.settings
    now = to_minutes(inp.now)
    calendar = StaffedCalendar(settings.hours, now)
    entries = _prepare(inp, calendar)
    dispatcher = _Dispatcher(inp, calendar, entries)
    dispatcher.build_plates()
    dispatcher.dispatch()

    totals: dict[str, _JobTotals] = {}
    placed: list[PlacedPlate] = []
    names = [p.name for p in dispatcher.printers]
    for run, index, started, end, clear in dispatcher.running_placed:
        printer_name = names[index] if index >= 0 else run.printer
        allocations = tuple(run.allocations.items())
        total_units = sum(u for _, u in allocations) or 1
        for job_id, units in allocations:
            share = units / total_units
            totals.setdefault(job_id, _JobTotals()).add(
                printer_name, started, end, clear, run.estimate_minutes * share, run.expected_minutes * share
            )
        placed.append(
            PlacedPlate(
                printer_name,
                run.profile,
                allocations,
                started,
                end,
                clear,
                run.estimate_minutes,
                run.expected_minutes,
                True,
            )
        )
    for plate in dispatcher.plates:
        if not plate.taken:
            continue
        printer_name = names[plate.printer]
        expected = plate.end - plate.start
        units_total = sum(plate.units)
        estimate = units_total * plate.profile.minutes_per_unit
        shares: list[tuple[str, int]] = []
        for entry, units in zip(plate.entries, plate.units, strict=True):
            share = units / units_total
            job_id = entry.job.job_id
            shares.append((job_id, units))
            total = totals.get(job_id)
            if total is None:
                total = totals[job_id] = _JobTotals()
            total.add(printer_name, plate.start, plate.end, plate.clear, estimate * share, expected * share)
        placed.append(
            PlacedPlate(
                printer_name,
                plate.profile.name,
                tuple(shares),
                plate.start,
                plate.end,
                plate.clear,
                estimate,
                expected,
            )
        )

    margin = settings.late_risk_margin_minutes
    jobs: dict[str, JobSchedule] = {}
    order_jobs: dict[str, list[_Entry]] = {}
    for entry in entries:
        job = entry.job
        order_jobs.setdefault(f"{job.platform.value}:{job.order_id}", []).append(entry)
        total = totals.get(job.job_id)
        problem = dispatcher.problems.get(job.job_id, "")
        pack_by = None if entry.pack_by == _INF else entry.pack_by
        if total is None or problem:
            minutes = entry.remaining * entry.profile.minutes_per_unit
            jobs[job.job_id] = JobSchedule(
                job.job_id,
                entry.index + 1,
                ship_by=job.due,
                pack_by_minutes=pack_by,
                problem=problem,
                estimate_minutes=minutes,
                expected_minutes=minutes,
            )
            continue
        slack = None if pack_by is None else pack_by - total.clear
        jobs[job.job_id] = JobSchedule(
            job.job_id,
            entry.index + 1,
            tuple(total.printers),
            total.start,
            total.end,
            total.clear,
            total.plates,
            total.estimate,
            total.expected,
            job.due,
            pack_by,
            slack,
            slack is not None and slack < 0,
            slack is not None and slack < margin,
        )

    orders: dict[str, OrderSchedule] = {}
    for key, members in order_jobs.items():
        ship_by_values = [e.job.due for e in members if e.job.due is not None]
        ship_by = min(ship_by_values) if ship_by_values else None
        pack_by_minutes = min(e.pack_by for e in members)
        pack_by = None if pack_by_minutes == _INF else pack_by_minutes
        job_ids = tuple(e.job.job_id for e in members)
        blocked = ""
        for job_id in job_ids:
            problem = jobs[job_id].problem
            if problem:
                blocked = f"job {job_id} is held" if problem == "held" else problem
                break
        clears = [totals[job_id].clear for job_id in job_ids if job_id in totals]
        if blocked or not clears:
            # Without a projection the order is at risk once its pack-by is within the margin.
            at_risk = pack_by is not None and pack_by - now < margin
            orders[key] = OrderSchedule(key, job_ids, ship_by, pack_by, None, None, False, at_risk, blocked)
            continue
        ready = max(clears)
        slack = None if pack_by is None else pack_by - ready
        orders[key] = OrderSchedule(
            key,
            job_ids,
            ship_by,
            pack_by,
            ready,
            slack,
            slack is not None and slack < 0,
            slack is not None and slack < margin,
        )

    warnings = list(dispatcher.warnings)
    warnings.extend(_problem_warnings(entries, dispatcher.problems))
    warnings.extend(_overload_warnings(orders, settings, dispatcher))
    free_at = {names[i]: from_minutes(m) for i, m in enumerate(dispatcher.next_start) if m != _INF}
    return Schedule(
        now=inp.now,
        sequence=tuple(e.job.job_id for e in entries),
        jobs=jobs,
        orders=orders,
        plates=tuple(placed),
        printer_free_at=free_at,
        warnings=tuple(warnings),
    )


def _problem_warnings(entries: list[_Entry], problems: Mapping[str, str]) -> list[str]:
    grouped: dict[str, list[str]] = {}
    for entry in entries:
        problem = problems.get(entry.job.job_id, "")
        if problem and problem != "held":
            grouped.setdefault(f"profile {entry.profile.name!r}: {problem}", []).append(entry.job.job_id)
    sentences = []
    for problem, job_ids in grouped.items():
        count = len(job_ids)
        subject = f"Job {job_ids[0]}" if count == 1 else f"{count} jobs"
        sentences.append(
            f"{subject} cannot be scheduled ({problem}); fix printers.toml or the catalog profile."
        )
    return sentences


def _late_first(orders: Iterable[OrderSchedule]) -> list[OrderSchedule]:
    late = [o for o in orders if o.late and o.slack_minutes is not None]
    return sorted(late, key=lambda o: (o.slack_minutes, o.order_key))


def _overload_warnings(
    orders: Mapping[str, OrderSchedule], settings: ScheduleSettings, dispatcher: _Dispatcher
) -> list[str]:
    late = _late_first(orders.values())
    if not late:
        return []
    tz = zone(settings.hours.timezone)
    queued = sum(p.end - p.start for p in dispatcher.plates if p.taken)
    enabled = sum(1 for p in dispatcher.printers if p.enabled)
    shown = late[: settings.overload_warn_count]
    sentences = [
        f"{len(late)} order(s) are projected to miss their pack-by time; the queue holds "
        f"{_hours(queued)} of printing on {enabled} printer(s). Consider rush priority for the orders "
        "below, another printer, or telling the buyers."
    ]
    for order in shown:
        assert order.ready_minutes is not None and order.pack_by_minutes is not None
        sentences.append(
            f"Order {order.order_key}: ready {_local(order.ready_minutes, tz)}, "
            f"{_hours(order.ready_minutes - order.pack_by_minutes)} after its pack-by time "
            f"{_local(order.pack_by_minutes, tz)}."
        )
    return sentences


# ---------------------------------------------------------------------------
# Capacity for made-to-order listings


def units_printable_before(
    inp: ScheduleInput, schedule: Schedule, profile: Profile, sku: str, deadline: datetime
) -> int:
    """How many more units of ``profile`` could be cleared off the printers by ``deadline``.

    The new units queue behind everything already scheduled: on each eligible
    printer, starting at ``schedule.printer_free_at``, full plates follow one
    another under the same staffed-hours rule as the scheduler (start in staffed
    time, clear at the first staffed moment after the end, then changeover); each
    plate cleared by ``deadline`` adds ``units_per_plate``.  Plate time is the
    slicer estimate times the learned ratio for ``sku`` on that printer's model.
    """
    settings = inp.settings
    calendar = StaffedCalendar(settings.hours, to_minutes(inp.now))
    limit = to_minutes(deadline)
    total = 0
    for printer in inp.printers:
        if eligibility_problem(profile, printer) is not None:
            continue
        free = schedule.printer_free_at.get(printer.name)
        start = calendar.next_staffed(to_minutes(free) if free is not None else to_minutes(inp.now))
        minutes = (
            profile.units_per_plate
            * profile.minutes_per_unit
            * inp.ratios.get(ratio_key(sku, printer.model), 1.0)
        )
        while minutes > 0:
            clear = calendar.next_staffed(start + minutes)
            if clear > limit:
                break
            total += profile.units_per_plate
            start = calendar.next_staffed(clear + settings.changeover_minutes)
    return total
