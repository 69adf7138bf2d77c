"""The production service: print jobs from orders, queue operations, learning and the schedule.

The service holds no state of its own: every operation reads the store, changes
what it must under the store's lock and writes back at once, so the console, the
CLI and a sync daemon can act on the same queue.  Collections are passed in
(:meth:`ProductionService.open` wires the real store), so tests use in-memory ones.

Job life: ``queued → printing → printed → packed``, plus ``held``, ``failed``
(a failed plate; the job waits for its reprint and is scheduled like a queued
one) and ``withdrawn`` (its order was cancelled or the line went away).
``PrintJob.due`` holds the order's ship-by; the scheduler derives the pack-by time.

Progress lives in :class:`~tf_console.production.records.PlateRun` records: a job's
printed units are the units of its printed plates.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from pydantic import BaseModel

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.models import (
    FulfilledBy,
    ItemKind,
    JobState,
    LineItem,
    Order,
    OrderStatus,
    Platform,
    PrintJob,
    Priority,
)
from tf_console.production.catalog import (
    AssignResult,
    Catalog,
    Classification,
    Profile,
    assign_rule,
    parse_catalog,
    unknown_items,
)
from tf_console.production.errors import ProductionError
from tf_console.production.hours import StaffedCalendar, to_minutes
from tf_console.production.printers import (
    PrinterConfig,
    ScheduleSettings,
    eligibility_problem,
    parse_printers,
)
from tf_console.production.records import (
    OUTLIER_FACTOR,
    PlateRun,
    PrintTimeRatio,
    RunState,
    ratio_key,
)
from tf_console.production.scheduler import (
    ACTIVE_STATES,
    Move,
    Schedule,
    ScheduleInput,
    compute_schedule,
    fallback_profile,
    plan_move,
    queue_order,
)
from tf_console.production.tomlfile import WatchedToml

M = TypeVar("M", bound=BaseModel)

log = logging.getLogger(__name__)

#: (action, target, outcome, detail): the audit trail's ``record`` (tf_console.audit sits above this layer)
AuditHook = Callable[[str, str, str, str], object]

JOBS_COLLECTION = "jobs"
RUNS_COLLECTION = "plate_runs"
RATIOS_COLLECTION = "print_time_ratios"
CATALOG_FILE = "catalog.toml"
PRINTERS_FILE = "printers.toml"

AWAITING_PAYMENT = "awaiting payment"
CANCEL_REQUESTED = "buyer asked to cancel: accept or decline on the marketplace"
_FAILED_PREFIX = "plate failed"
_HISTORY_LIMIT = 60
_PRUNE_AFTER = timedelta(days=60)


class Repo(Protocol[M]):
    """The part of the store's ``Collection`` contract the service uses."""

    def get(self, key: str) -> M | None: ...

    def all(self) -> list[M]: ...

    def put(self, item: M) -> None: ...

    def put_many(self, items: Iterable[M]) -> None: ...

    def delete(self, key: str) -> bool: ...

    def mutate(self, fn: Callable[[dict[str, M]], None]) -> None: ...


class StoreLike(Protocol):
    def collection(
        self,
        name: str,
        model: type[M],
        key: Callable[[M], str],
        encrypted_fields: frozenset[str] = ...,
    ) -> Repo[M]: ...

    def lock(self) -> AbstractContextManager[Any]: ...


class UpsertResultLike(Protocol):
    @property
    def updated(self) -> list[str]: ...


class OrdersRepo(Protocol):
    def open_orders(self) -> list[Order]: ...

    def upsert_many(
        self, orders: Iterable[Order], merge: Callable[[Order | None, Order], Order | None] | None = None
    ) -> UpsertResultLike: ...


@dataclass(frozen=True)
class ProductionChange:
    """What a sync did to the queue (job ids)."""

    created: tuple[str, ...] = ()
    updated: tuple[str, ...] = ()
    withdrawn: tuple[str, ...] = ()
    flagged: tuple[str, ...] = ()  # a plate of theirs is printing and needs a person's look

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.withdrawn or self.flagged)

    def summary(self) -> str:
        parts = [
            f"{len(ids)} {label}"
            for ids, label in (
                (self.created, "created"),
                (self.updated, "updated"),
                (self.withdrawn, "withdrawn"),
                (self.flagged, "flagged"),
            )
            if ids
        ]
        return "jobs: " + ", ".join(parts) if parts else "no job changes"


@dataclass(frozen=True)
class Assignment:
    """What ``assign`` did: the rule written, and how the open orders and the queue followed."""

    rule: AssignResult
    reclassified_orders: int = 0
    change: ProductionChange = field(default_factory=ProductionChange)


@dataclass
class _Progress:
    printed: dict[str, int] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, runs: Iterable[PlateRun]) -> _Progress:
        progress = cls()
        for run in runs:
            if run.state is RunState.PRINTED:
                target = progress.printed
            elif run.state is RunState.PRINTING:
                target = progress.running
            else:
                continue
            for job_id, units in run.allocations.items():
                target[job_id] = target.get(job_id, 0) + units
        return progress


@dataclass
class _SyncBatch:
    jobs: dict[str, PrintJob]
    progress: _Progress
    now: datetime
    changed: dict[str, PrintJob] = field(default_factory=dict)
    new_runs: list[PlateRun] = field(default_factory=list)
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)

    def save(self, job: PrintJob, kind: Literal["created", "updated", "withdrawn", "flagged"]) -> None:
        self.jobs[job.job_id] = job
        self.changed[job.job_id] = job
        bucket = {
            "created": self.created,
            "updated": self.updated,
            "withdrawn": self.withdrawn,
            "flagged": self.flagged,
        }[kind]
        if job.job_id not in bucket:
            bucket.append(job.job_id)


def job_id_for(order: Order, item: LineItem) -> str:
    return f"{order.platform.value}:{order.order_id}:{item.line_id}"


def _stamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%d %H:%M")


def _with_history(job: PrintJob, now: datetime, note: str, **changes: Any) -> PrintJob:
    history = [*job.history, f"{_stamp(now)}Z {note}"][-_HISTORY_LIMIT:]
    return job.model_copy(update={**changes, "history": history, "updated_at": now})


def _last_note(job: PrintJob) -> str:
    """The job's newest history note without its time stamp."""
    return job.history[-1].partition("Z ")[2] if job.history else ""


def _units(n: int) -> str:
    return f"{n} unit" if n == 1 else f"{n} units"


class ProductionService:
    def __init__(
        self,
        *,
        jobs: Repo[PrintJob],
        runs: Repo[PlateRun],
        ratios: Repo[PrintTimeRatio],
        catalog: WatchedToml[Catalog],
        printers: WatchedToml[PrinterConfig],
        timezone: str,
        clock: Clock = SYSTEM_CLOCK,
        lock: Callable[[], AbstractContextManager[Any]] = contextlib.nullcontext,
        audit: AuditHook | None = None,
    ) -> None:
        self.audit = audit  # every operator action on the queue or the catalog is recorded through it
        self._jobs = jobs
        self._runs = runs
        self._ratios = ratios
        self._catalog = catalog
        self._printers = printers
        self._timezone = timezone
        self._clock = clock
        self._lock = lock
        self._settings_cache: tuple[PrinterConfig, ScheduleSettings] | None = None
        self._last_prune: datetime | None = None

    @classmethod
    def open(
        cls,
        store: StoreLike,
        data_dir: Path,
        *,
        timezone: str,
        clock: Clock = SYSTEM_CLOCK,
        catalog_path: Path | None = None,
        printers_path: Path | None = None,
    ) -> ProductionService:
        """The service on the real store, with the catalog and printers files of ``data_dir``."""
        return cls(
            jobs=store.collection(
                JOBS_COLLECTION,
                PrintJob,
                key=lambda j: j.job_id,
                encrypted_fields=frozenset({"personalisation"}),
            ),
            runs=store.collection(RUNS_COLLECTION, PlateRun, key=lambda r: r.run_id),
            ratios=store.collection(RATIOS_COLLECTION, PrintTimeRatio, key=lambda r: r.key),
            catalog=catalog_source(catalog_path or data_dir / CATALOG_FILE),
            printers=printers_source(printers_path or data_dir / PRINTERS_FILE),
            timezone=timezone,
            clock=clock,
            lock=store.lock,
        )

    # -- configuration -------------------------------------------------------------

    @property
    def catalog_source(self) -> WatchedToml[Catalog]:
        return self._catalog

    @property
    def printers_source(self) -> WatchedToml[PrinterConfig]:
        return self._printers

    @property
    def timezone(self) -> str:
        return self._timezone

    def catalog(self) -> Catalog:
        return self._catalog.current()

    def printer_config(self) -> PrinterConfig:
        return self._printers.current()

    def settings(self) -> ScheduleSettings:
        config = self.printer_config()
        cached = self._settings_cache
        if cached is not None and cached[0] is config:
            return cached[1]
        try:
            settings = config.pattern.settings(self._timezone)
        except ValueError as exc:
            raise ProductionError(f"The shop's schedule settings are not usable: {exc}.") from None
        self._settings_cache = (config, settings)
        return settings

    # -- classification -------------------------------------------------------------

    def classify_order(self, order: Order) -> Order:
        """Set every line item's kind and deciding rule (the sync engine calls this before storing)."""
        return self.catalog().classify_order(order)

    def unknown_items(self, orders: Iterable[Order]) -> list[tuple[Order, LineItem]]:
        return unknown_items(self.catalog(), orders)

    def reclassify_open_orders(self, orders: OrdersRepo) -> tuple[int, ProductionChange]:
        """After a catalog change: re-classify stored open orders and bring the queue in line.

        Returns how many orders changed classification and what happened to the jobs.
        """
        open_orders = orders.open_orders()

        def merge(existing: Order | None, incoming: Order) -> Order | None:
            base = existing if existing is not None else incoming
            updated = self.classify_order(base)
            return None if updated is base else updated

        result = orders.upsert_many(open_orders, merge=merge)
        change = self.sync_orders(self.classify_order(o) for o in open_orders)
        return len(result.updated), change

    def assign(
        self,
        sku: str,
        kind: ItemKind,
        *,
        profile: str = "",
        stock_sku: str = "",
        platform: Platform | None = None,
        orders: OrdersRepo | None = None,
    ) -> Assignment:
        """Write a catalog rule for ``sku`` (comments kept), put it in force, and when
        ``orders`` is given re-classify the open orders and update the queue."""
        result = assign_rule(
            self._catalog.path, sku, kind, profile=profile, stock_sku=stock_sku, platform=platform
        )
        self._catalog.replace(result.catalog)
        what = kind.value + (f", profile {profile}" if profile else "")
        what += (f", stock {stock_sku}" if stock_sku else "") + (f" on {platform.label}" if platform else "")
        if orders is None:
            self._audit("catalog.assign", f"SKU {sku}", what, result.action)
            return Assignment(result)
        reclassified, change = self.reclassify_open_orders(orders)
        what += f"; {reclassified} open order(s) re-classified, {change.summary()}"
        self._audit("catalog.assign", f"SKU {sku}", what, result.action)
        return Assignment(result, reclassified, change)

    # -- sync ---------------------------------------------------------------------------

    def sync_orders(self, orders: Iterable[Order]) -> ProductionChange:
        """Bring the queue in line with these orders; idempotent (re-polls change nothing).

        One job per printed line of an open order that is merchant-fulfilled and has no
        pending cancellation request; quantity changes adjust the job, cancellation
        withdraws it, and a plate already printing is flagged rather than deleted.
        """
        catalog = self.catalog()
        now = self._clock.now()
        batch_orders = list(orders)
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            runs = self._runs.all()
            batch = _SyncBatch(jobs, _Progress.of(runs), now)
            by_order: dict[str, list[PrintJob]] = {}
            for job in jobs.values():
                by_order.setdefault(f"{job.platform.value}:{job.order_id}", []).append(job)
            for order in batch_orders:
                self._sync_order(order, catalog, by_order.get(order.key, []), batch)
            if batch.changed:
                self._jobs.put_many(batch.changed.values())
            for run in batch.new_runs:
                self._runs.put(run)
            self._maybe_prune(now, list(batch.jobs.values()), runs)
        return ProductionChange(
            tuple(batch.created), tuple(batch.updated), tuple(batch.withdrawn), tuple(batch.flagged)
        )

    def _sync_order(
        self, order: Order, catalog: Catalog, existing: list[PrintJob], batch: _SyncBatch
    ) -> None:
        existing_by_line = {job.line_id: job for job in existing}
        if order.fulfilled_by is FulfilledBy.MARKETPLACE:
            for job in existing:
                self._withdraw(job, "the order is fulfilled by the marketplace", batch)
            return
        if order.status is OrderStatus.CANCELLED:
            for job in existing:
                self._withdraw(job, "order cancelled", batch)
            return
        if order.status is OrderStatus.SHIPPED:
            for job in existing:
                self._finish(job, "order shipped", batch)
            return

        decisions: dict[str, tuple[LineItem, Classification]] = {}
        items_by_line = {item.line_id: item for item in order.items}
        for item in order.items:
            decision = catalog.classify_item(order.platform, item)
            if decision.kind is ItemKind.PRINT and item.quantity > 0:
                decisions[item.line_id] = (item, decision)

        for job in existing:
            if job.line_id in decisions:
                continue
            line = items_by_line.get(job.line_id)
            if line is None:
                reason = "the line was removed from the order"
            elif line.quantity == 0:
                reason = "the line's quantity went to 0"
            else:
                decision = catalog.classify_item(order.platform, line)
                reason = f"the item is now classified {decision.kind.value} ({decision.rule})"
            self._withdraw(job, reason, batch)

        for line_id, (item, decision) in decisions.items():
            current = existing_by_line.get(line_id)
            assert decision.profile is not None
            if item.quantity_unshipped == 0:
                if current is not None:
                    self._finish(current, "line shipped", batch)
                continue
            if current is None:
                if not order.cancel_requested:
                    self._create(order, item, decision.profile, batch)
            else:
                self._update(current, order, item, decision.profile, batch)

    def _create(self, order: Order, item: LineItem, profile: Profile, batch: _SyncBatch) -> None:
        now = batch.now
        job_id = job_id_for(order, item)
        held = order.status is OrderStatus.PENDING
        job = PrintJob(
            job_id=job_id,
            platform=order.platform,
            order_id=order.order_id,
            line_id=item.line_id,
            sku=item.sku,
            title=item.title,
            quantity=item.quantity,
            profile=profile.name,
            material=profile.material,
            colour=profile.colour,
            minutes_per_unit=profile.minutes_per_unit,
            units_per_plate=profile.units_per_plate,
            plates=profile.plates_for(item.quantity),
            state=JobState.HELD if held else JobState.QUEUED,
            due=order.ship_by,
            personalisation=item.personalisation,
            created_at=now,
            updated_at=now,
            flag=AWAITING_PAYMENT if held else "",
            history=[f"{_stamp(now)}Z created from {order.platform.label} order {order.order_id}"],
        )
        if item.quantity_shipped > 0:
            # Units shipped before the job existed were made outside the queue: count them done.
            done = min(item.quantity_shipped, item.quantity)
            batch.new_runs.append(
                PlateRun(
                    run_id=f"{job_id}:shipped-before-tracking",
                    printer="",
                    profile=profile.name,
                    allocations={job_id: done},
                    started_at=now,
                    finished_at=now,
                    state=RunState.PRINTED,
                    note="shipped before the job was created",
                )
            )
            batch.progress.printed[job_id] = batch.progress.printed.get(job_id, 0) + done
        batch.save(job, "created")

    def _update(
        self, job: PrintJob, order: Order, item: LineItem, profile: Profile, batch: _SyncBatch
    ) -> None:
        printed = batch.progress.printed.get(job.job_id, 0)
        running = batch.progress.running.get(job.job_id, 0)
        changes: dict[str, Any] = {}
        notes: list[str] = []
        kind: Literal["updated", "flagged"] = "updated"

        if job.state is JobState.WITHDRAWN:
            if order.cancel_requested:
                return
            changes["state"] = JobState.QUEUED
            changes["flag"] = ""
            notes.append("back in the queue: the line needs printing again")
        if item.sku != job.sku:
            changes["sku"] = item.sku
        if item.title != job.title:
            changes["title"] = item.title
        if order.ship_by != job.due:
            changes["due"] = order.ship_by
            notes.append("ship-by changed")
        if item.personalisation != job.personalisation:
            changes["personalisation"] = item.personalisation
            notes.append("personalisation changed")
            if printed or running:
                changes["flag"] = "personalisation changed after printing started: check the printed units"
                kind = "flagged"
        snapshot = (job.profile, job.material, job.colour, job.minutes_per_unit, job.units_per_plate)
        wanted = (
            profile.name,
            profile.material,
            profile.colour,
            profile.minutes_per_unit,
            profile.units_per_plate,
        )
        # A job keeps the profile it started printing with; an untouched one follows the catalog.
        if printed == 0 and running == 0 and snapshot != wanted:
            changes.update(
                profile=profile.name,
                material=profile.material,
                colour=profile.colour,
                minutes_per_unit=profile.minutes_per_unit,
                units_per_plate=profile.units_per_plate,
            )
            notes.append(f"profile now {profile.name}")
        quantity = item.quantity
        if quantity != job.quantity:
            changes["quantity"] = quantity
            notes.append(f"quantity {job.quantity} → {quantity}")
            if printed + running > quantity and running:
                spare = printed + running - quantity
                changes["flag"] = (
                    f"quantity dropped to {quantity} while a plate is printing: {_units(spare)} will be spare"
                )
                kind = "flagged"
        units_per_plate = changes.get("units_per_plate", job.units_per_plate)
        plates = math.ceil(quantity / units_per_plate)
        if plates != job.plates:
            changes["plates"] = plates

        state = changes.get("state", job.state)
        flag = changes.get("flag", job.flag)
        if order.status is not OrderStatus.PENDING and state is JobState.HELD and flag == AWAITING_PAYMENT:
            changes.update(state=JobState.QUEUED, flag="")
            notes.append("released: the order is paid")
        if order.cancel_requested:
            if state in (JobState.QUEUED, JobState.FAILED):
                changes.update(state=JobState.HELD, flag=CANCEL_REQUESTED)
                notes.append("held: the buyer asked to cancel")
            elif state is JobState.PRINTING and flag != CANCEL_REQUESTED:
                changes["flag"] = CANCEL_REQUESTED
                notes.append("the buyer asked to cancel while a plate is printing")
                kind = "flagged"
        elif flag == CANCEL_REQUESTED:
            changes["flag"] = ""
            if changes.get("state", job.state) is JobState.HELD:
                changes["state"] = JobState.QUEUED
            notes.append("the cancellation request is gone; back in the queue")

        state = changes.get("state", job.state)
        if state in (JobState.QUEUED, JobState.PRINTED, JobState.FAILED) and running == 0:
            if printed >= quantity and state is not JobState.PRINTED:
                changes["state"] = JobState.PRINTED
            elif printed < quantity and state is JobState.PRINTED:
                changes["state"] = JobState.QUEUED
                notes.append("more units to print")

        changes = {k: v for k, v in changes.items() if getattr(job, k) != v}
        if not changes:
            return
        batch.save(
            _with_history(job, batch.now, "; ".join(notes) or "updated from the order", **changes), kind
        )

    def _withdraw(self, job: PrintJob, reason: str, batch: _SyncBatch) -> None:
        if job.state in (JobState.PACKED, JobState.WITHDRAWN):
            return
        printed = batch.progress.printed.get(job.job_id, 0)
        if job.state is JobState.PRINTING:
            flag = f"{reason} while a plate is printing: its units will be spare"
            if job.quantity == 0 and job.flag == flag:
                return
            batch.save(_with_history(job, batch.now, flag, quantity=0, plates=0, flag=flag), "flagged")
            return
        flag = reason
        if printed:
            flag = f"{reason}: {_units(printed)} already printed are spare"
        batch.save(
            _with_history(job, batch.now, f"withdrawn: {flag}", state=JobState.WITHDRAWN, flag=flag),
            "withdrawn",
        )

    def _finish(self, job: PrintJob, reason: str, batch: _SyncBatch) -> None:
        printed = batch.progress.printed.get(job.job_id, 0)
        if job.state in (JobState.PACKED, JobState.WITHDRAWN):
            return
        if job.state is JobState.PRINTING:
            flag = f"{reason} while a plate is printing"
            if job.flag != flag:
                batch.save(_with_history(job, batch.now, flag, flag=flag), "flagged")
            return
        if job.state is JobState.PRINTED:
            batch.save(_with_history(job, batch.now, f"packed: {reason}", state=JobState.PACKED), "updated")
        elif printed:
            flag = f"{reason} with {printed} of {job.quantity} units printed"
            batch.save(_with_history(job, batch.now, flag, state=JobState.PACKED, flag=flag), "updated")
        else:
            flag = f"{reason} before it was printed"
            batch.save(_with_history(job, batch.now, flag, state=JobState.WITHDRAWN, flag=flag), "withdrawn")

    def _maybe_prune(self, now: datetime, jobs: Sequence[PrintJob], runs: Sequence[PlateRun]) -> None:
        if self._last_prune is not None and now - self._last_prune < timedelta(days=1):
            return
        self._last_prune = now
        self._prune(now - _PRUNE_AFTER, jobs, runs)

    def prune_finished(self, older_than: timedelta = _PRUNE_AFTER) -> int:
        """Forget packed and withdrawn jobs (and their plates) untouched for ``older_than``.

        Learned print times are kept: they live in their own collection.
        """
        with self._lock():
            return self._prune(self._clock.now() - older_than, self._jobs.all(), self._runs.all())

    def _prune(self, cutoff: datetime, jobs: Sequence[PrintJob], runs: Sequence[PlateRun]) -> int:
        finished = {
            j.job_id
            for j in jobs
            if j.state in (JobState.PACKED, JobState.WITHDRAWN) and j.updated_at < cutoff
        }
        if not finished:
            return 0
        kept = {j.job_id for j in jobs} - finished
        spent = {
            run.run_id
            for run in runs
            if run.state is not RunState.PRINTING and not (set(run.allocations) & kept)
        }

        def forget(keys: set[str]) -> Callable[[dict[str, Any]], None]:
            def drop(records: dict[str, Any]) -> None:
                for key in keys:
                    records.pop(key, None)

            return drop

        self._jobs.mutate(forget(finished))
        if spent:
            self._runs.mutate(forget(spent))
        return len(finished)

    # -- reading --------------------------------------------------------------------------

    def jobs(self, *, include_finished: bool = False) -> list[PrintJob]:
        jobs = self._jobs.all()
        return jobs if include_finished else [j for j in jobs if j.state in ACTIVE_STATES]

    def runs(self) -> list[PlateRun]:
        return self._runs.all()

    def ratios(self) -> list[PrintTimeRatio]:
        return self._ratios.all()

    def job(self, ref: str) -> PrintJob:
        return self._resolve({j.job_id: j for j in self._jobs.all()}, ref)

    def _resolve(self, jobs: Mapping[str, PrintJob], ref: str) -> PrintJob:
        ref = ref.strip()
        exact = jobs.get(ref)
        if exact is not None:
            return exact
        if not ref:
            raise ProductionError("Name a job: its id, or the end of it, as `tf-console queue` shows.")
        for test in (lambda j: j.job_id.endswith(ref), lambda j: ref in j.job_id):
            matches = [j for j in jobs.values() if test(j)]
            active = [j for j in matches if j.state in ACTIVE_STATES]
            if len(active) == 1 or (len(matches) == 1 and not active):
                return (active or matches)[0]
            if len(matches) > 1:
                shown = ", ".join(sorted(j.job_id for j in (active or matches))[:5])
                raise ProductionError(f"{ref!r} matches several jobs ({shown}); give more of the job id.")
        raise ProductionError(f"No job matches {ref!r}; `tf-console queue` lists the jobs.")

    def snapshot(self) -> ScheduleInput:
        """Everything the scheduler needs, read now; hand it to :func:`compute_schedule` off the UI path."""
        return self._input(self._jobs.all(), self._runs.all())

    def schedule(self) -> Schedule:
        return compute_schedule(self.snapshot())

    def sequence(self) -> list[str]:
        """Active job ids in queue order, without computing times."""
        return queue_order(self.snapshot())

    def _input(self, jobs: Iterable[PrintJob], runs: Sequence[PlateRun]) -> ScheduleInput:
        progress = _Progress.of(runs)
        config = self.printer_config()
        return ScheduleInput(
            jobs=[j for j in jobs if j.state in ACTIVE_STATES],
            printers=config.printers,
            profiles=self.catalog().profiles,
            now=self._clock.now(),
            settings=self.settings(),
            running=[r for r in runs if r.state is RunState.PRINTING],
            units_printed=progress.printed,
            ratios={r.key: r.ratio for r in self._ratios.all()},
        )

    # -- queue operations -----------------------------------------------------------------

    def move(self, ref: str, where: Move) -> list[str]:
        """Move a job to the top, or one place up or down; returns the new queue order at once.

        See :func:`~tf_console.production.scheduler.plan_move` for how pins keep the order.
        """
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            job = self._active(jobs, ref, "move")
            sequence = queue_order(self._input(jobs.values(), self._runs.all()))
            pinned = {jid for jid in sequence if jobs[jid].pin is not None}
            order, pins = plan_move(sequence, pinned, job.job_id, where)
            now = self._clock.now()
            changed: list[PrintJob] = []
            for jid, pin in pins.items():
                current = jobs[jid]
                if current.pin == pin:
                    continue
                if jid == job.job_id:
                    changed.append(_with_history(current, now, f"moved {where}", pin=pin))
                else:
                    changed.append(current.model_copy(update={"pin": pin, "updated_at": now}))
            if changed:
                self._jobs.put_many(changed)
            place = f"now {order.index(job.job_id) + 1} of {len(order)}"
            self._audit("queue.move", job.job_id, f"moved {where}: {place}")
            return order

    def unpin(self, ref: str) -> list[str]:
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            job = self._active(jobs, ref, "unpin")
            if job.pin is not None:
                updated = _with_history(job, self._clock.now(), "unpinned", pin=None)
                self._jobs.put(updated)
                jobs[job.job_id] = updated
                self._audit("queue.unpin", job.job_id, "unpinned")
            return queue_order(self._input(jobs.values(), self._runs.all()))

    def set_priority(self, ref: str, priority: Priority) -> PrintJob:
        def prioritise(job: PrintJob, now: datetime) -> PrintJob:
            if job.priority is priority:
                return job
            return _with_history(job, now, f"priority {priority.value}", priority=priority)

        return self._change(ref, "set its priority", prioritise, action="queue.priority")

    def hold(self, ref: str) -> PrintJob:
        def hold(job: PrintJob, now: datetime) -> PrintJob:
            if job.state is JobState.HELD:
                return job
            if job.state is JobState.PRINTING:
                raise ProductionError(
                    f"Job {job.job_id} is printing on {job.printer}; mark the plate printed or failed, "
                    "then hold it."
                )
            return _with_history(job, now, "held", state=JobState.HELD)

        return self._change(ref, "hold", hold, action="queue.hold")

    def release(self, ref: str) -> PrintJob:
        def release(job: PrintJob, now: datetime) -> PrintJob:
            if job.state is not JobState.HELD:
                raise ProductionError(f"Job {job.job_id} is {job.state.value}, not held.")
            flag = "" if job.flag in (AWAITING_PAYMENT, CANCEL_REQUESTED) else job.flag
            return _with_history(job, now, "released", state=JobState.QUEUED, flag=flag)

        return self._change(ref, "release", release, action="queue.release")

    def mark_packed(self, ref: str) -> PrintJob:
        def pack(job: PrintJob, now: datetime) -> PrintJob:
            if job.state is not JobState.PRINTED:
                raise ProductionError(
                    f"Job {job.job_id} is {job.state.value}; only printed jobs can be packed."
                )
            return _with_history(job, now, "packed", state=JobState.PACKED)

        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            job = self._resolve(jobs, ref)
            updated = pack(job, self._clock.now())
            self._jobs.put(updated)
            self._audit("queue.packed", updated.job_id, "packed")
            return updated

    def _active(self, jobs: Mapping[str, PrintJob], ref: str, verb: str) -> PrintJob:
        job = self._resolve(jobs, ref)
        if job.state not in ACTIVE_STATES:
            raise ProductionError(
                f"Job {job.job_id} is {job.state.value}; only jobs still in the queue can {verb}."
                if verb in ("move", "unpin")
                else f"Job {job.job_id} is {job.state.value}; there is nothing left to {verb}."
            )
        return job

    def _change(
        self, ref: str, verb: str, fn: Callable[[PrintJob, datetime], PrintJob], *, action: str = ""
    ) -> PrintJob:
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            job = self._active(jobs, ref, verb)
            updated = fn(job, self._clock.now())
            if updated is not job:
                self._jobs.put(updated)
                if action:
                    self._audit(action, updated.job_id, _last_note(updated))
            return updated

    def _audit(self, action: str, target: str, detail: str, outcome: str = "ok") -> None:
        if self.audit is None:
            return
        try:
            self.audit(action, target, outcome, detail)
        except Exception as exc:  # the change is made; a full disk must not undo it or hide it as a failure
            log.warning("could not record %s in the audit trail: %s", action, type(exc).__name__)

    # -- printing --------------------------------------------------------------------------

    def _profile_of(self, job: PrintJob) -> Profile:
        return self.catalog().profiles.get(job.profile) or fallback_profile(job)

    def start(self, ref: str, printer: str | None = None) -> PlateRun:
        """Start the job's next plate on ``printer`` (default: where the schedule puts it).

        For a batch profile the plate is filled up with units of the next queued jobs
        of the same profile, as the scheduler planned.
        """
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            runs = self._runs.all()
            job = self._active(jobs, ref, "start")
            if job.state is JobState.HELD:
                raise ProductionError(f"Job {job.job_id} is held; release it first.")
            progress = _Progress.of(runs)
            remaining = self._remaining(job, progress)
            if remaining <= 0:
                raise ProductionError(f"Every unit of job {job.job_id} is already printed or printing.")
            profile = self._profile_of(job)
            config = self.printer_config()
            inp = self._input(jobs.values(), runs)
            if printer is None:
                printer = self._planned_printer(job, inp)
            chosen = config.by_name(printer)
            if chosen is None:
                known = ", ".join(p.name for p in config.printers) or "none"
                raise ProductionError(f"There is no printer {printer!r} in printers.toml (known: {known}).")
            problem = eligibility_problem(profile, chosen)
            if problem is not None:
                raise ProductionError(
                    f"Printer {chosen.name} {problem}; choose another with --printer or update printers.toml."
                )
            busy = [
                r
                for r in runs
                if r.state is RunState.PRINTING and r.printer.casefold() == chosen.name.casefold()
            ]
            if busy:
                others = ", ".join(sorted({jid for r in busy for jid in r.allocations}))
                raise ProductionError(
                    f"Printer {chosen.name} is still printing {others}; "
                    "mark that plate printed or failed first."
                )
            allocations = {job.job_id: min(remaining, profile.units_per_plate)}
            if profile.batch:
                room = profile.units_per_plate - allocations[job.job_id]
                for other_id in queue_order(inp):
                    if room <= 0:
                        break
                    other = jobs[other_id]
                    if other_id == job.job_id or other.state not in (JobState.QUEUED, JobState.FAILED):
                        continue
                    if self._profile_of(other) != profile:
                        continue
                    take = min(room, self._remaining(other, progress))
                    if take > 0:
                        allocations[other_id] = take
                        room -= take
            now = self._clock.now()
            ratios = inp.ratios
            sku_estimates: dict[str, float] = {}
            expected = 0.0
            for job_id, units in allocations.items():
                sku = jobs[job_id].sku
                minutes = units * profile.minutes_per_unit
                sku_estimates[sku] = sku_estimates.get(sku, 0.0) + minutes
                expected += minutes * ratios.get(ratio_key(sku, chosen.model), 1.0)
            run_id = f"{now:%Y%m%dT%H%M%S}-{chosen.name}"
            existing_ids = {r.run_id for r in runs}
            suffix = 2
            while run_id in existing_ids:
                run_id = f"{now:%Y%m%dT%H%M%S}-{chosen.name}-{suffix}"
                suffix += 1
            run = PlateRun(
                run_id=run_id,
                printer=chosen.name,
                printer_model=chosen.model,
                profile=profile.name,
                allocations=allocations,
                sku_estimates=sku_estimates,
                expected_minutes=expected,
                started_at=now,
            )
            changed = []
            for job_id, units in allocations.items():
                current = jobs[job_id]
                flag = "" if current.flag.startswith(_FAILED_PREFIX) else current.flag
                changed.append(
                    _with_history(
                        current,
                        now,
                        f"plate started on {chosen.name} ({_units(units)})",
                        state=JobState.PRINTING,
                        printer=chosen.name,
                        started_at=current.started_at or now,
                        flag=flag,
                    )
                )
            self._runs.put(run)
            self._jobs.put_many(changed)
            plated = ", ".join(f"{jid} ×{units}" for jid, units in allocations.items())
            self._audit("queue.start", job.job_id, f"plate {run.run_id} on {chosen.name}: {plated}")
            return run

    def _remaining(self, job: PrintJob, progress: _Progress) -> int:
        return job.quantity - progress.printed.get(job.job_id, 0) - progress.running.get(job.job_id, 0)

    def _planned_printer(self, job: PrintJob, inp: ScheduleInput) -> str:
        schedule = compute_schedule(inp)
        for plate in schedule.plates:
            if not plate.running and any(jid == job.job_id for jid, _ in plate.allocations):
                return plate.printer
        problem = schedule.jobs[job.job_id].problem if job.job_id in schedule.jobs else ""
        raise ProductionError(
            f"The schedule has no printer for job {job.job_id}"
            + (f" ({problem})" if problem else "")
            + "; name one with --printer."
        )

    def _running_run(self, job: PrintJob, runs: Sequence[PlateRun], printer: str | None) -> PlateRun:
        mine = [r for r in runs if r.state is RunState.PRINTING and job.job_id in r.allocations]
        if printer is not None:
            mine = [r for r in mine if r.printer.casefold() == printer.strip().casefold()]
        if not mine:
            where = f" on {printer}" if printer else ""
            raise ProductionError(
                f"Job {job.job_id} has no plate printing{where}; start one with "
                f"`tf-console queue start {job.job_id}`."
            )
        if len(mine) > 1:
            printers = ", ".join(r.printer for r in mine)
            raise ProductionError(f"Job {job.job_id} is printing on {printers}; say which with --printer.")
        return mine[0]

    def mark_printed(self, ref: str, printer: str | None = None, minutes: float | None = None) -> PlateRun:
        """The job's plate came off the printer; ``minutes`` is the printer's own print time if known.

        Without ``minutes`` the time from start to now is learned only when no unstaffed
        time lies in between (a plate that finished overnight was marked in the morning,
        so the gap measures the night, not the print).
        """
        if minutes is not None and minutes <= 0:
            raise ProductionError("--minutes must be the print time in minutes, above zero.")
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            runs = self._runs.all()
            job = self._resolve(jobs, ref)
            run = self._running_run(job, runs, printer)
            now = self._clock.now()
            finished = run.model_copy(update={"state": RunState.PRINTED, "finished_at": now})
            learned = self._learn(finished, minutes, now)
            others = [r if r.run_id != run.run_id else finished for r in runs]
            progress = _Progress.of(others)
            changed = []
            for job_id, units in run.allocations.items():
                current = jobs.get(job_id)
                if current is None:
                    continue
                note = f"plate printed on {run.printer} ({_units(units)})"
                if job_id == job.job_id and learned:
                    note += f"; {learned}"
                changed.append(self._after_plate(current, progress, now, note, failed=False))
            self._runs.put(finished)
            self._jobs.put_many(changed)
            note = f"plate {run.run_id} on {run.printer}" + (f"; {learned}" if learned else "")
            self._audit("queue.printed", job.job_id, note)
            return finished

    def mark_failed(self, ref: str, printer: str | None = None, reason: str = "") -> PlateRun:
        """The job's plate failed: its units go back to the queue for a reprint."""
        with self._lock():
            jobs = {j.job_id: j for j in self._jobs.all()}
            runs = self._runs.all()
            job = self._resolve(jobs, ref)
            run = self._running_run(job, runs, printer)
            now = self._clock.now()
            failed = run.model_copy(
                update={"state": RunState.FAILED, "finished_at": now, "note": reason.strip()[:200]}
            )
            others = [r if r.run_id != run.run_id else failed for r in runs]
            progress = _Progress.of(others)
            why = f": {reason.strip()[:200]}" if reason.strip() else ""
            changed = []
            for job_id in run.allocations:
                current = jobs.get(job_id)
                if current is None:
                    continue
                note = f"{_FAILED_PREFIX} on {run.printer}{why}; reprint queued"
                changed.append(self._after_plate(current, progress, now, note, failed=True))
            self._runs.put(failed)
            self._jobs.put_many(changed)
            self._audit("queue.failed", job.job_id, f"plate {run.run_id} on {run.printer} failed{why}")
            return failed

    def _after_plate(
        self, job: PrintJob, progress: _Progress, now: datetime, note: str, *, failed: bool
    ) -> PrintJob:
        printed = progress.printed.get(job.job_id, 0)
        running = progress.running.get(job.job_id, 0)
        changes: dict[str, Any] = {}
        if not failed:
            changes["plates_done"] = job.plates_done + 1
        if job.quantity == 0 and running == 0:
            changes["state"] = JobState.WITHDRAWN
            changes["flag"] = f"withdrawn while printing: {_units(printed)} printed are spare"
        elif running > 0:
            changes["state"] = JobState.PRINTING
        elif printed >= job.quantity:
            changes["state"] = JobState.PRINTED
            changes["finished_at"] = now
        elif failed or job.flag.startswith(_FAILED_PREFIX):
            changes["state"] = JobState.FAILED  # units of a failed plate still wait for their reprint
        elif job.state is not JobState.HELD:
            changes["state"] = JobState.QUEUED
        if failed and changes.get("state") is not JobState.WITHDRAWN:
            changes["flag"] = note
        return _with_history(job, now, note, **changes)

    # -- learning --------------------------------------------------------------------------

    def _learn(self, run: PlateRun, minutes: float | None, now: datetime) -> str:
        """Record the run's print time per (SKU, printer model); returns a note for the history."""
        estimate = run.estimate_minutes
        if not run.printer_model or estimate <= 0:
            return ""
        if minutes is None:
            started = to_minutes(run.started_at)
            calendar = StaffedCalendar(self.settings().hours, started)
            if calendar.unstaffed_between(started, to_minutes(now)):
                return (
                    "print time not learned: the plate spanned unstaffed hours, so the real end is "
                    "unknown (pass --minutes from the printer's display)"
                )
            minutes = (now - run.started_at).total_seconds() / 60.0
        ratio = minutes / estimate
        if ratio > OUTLIER_FACTOR or ratio < 1 / OUTLIER_FACTOR:
            return (
                f"print time not learned: {minutes:.0f} min against an estimate of {estimate:.0f} min "
                "looks like a late or early mark (pass --minutes from the printer's display)"
            )
        updated: list[PrintTimeRatio] = []
        for sku, sku_estimate in run.sku_estimates.items():
            key = ratio_key(sku, run.printer_model)
            current = self._ratios.get(key) or PrintTimeRatio(sku=sku, printer_model=run.printer_model)
            sample = current.with_sample(sku_estimate, minutes * sku_estimate / estimate)
            updated.append(sample.model_copy(update={"updated_at": now}))
        self._ratios.put_many(updated)
        return f"printed in {minutes:.0f} min against an estimate of {estimate:.0f} min (×{ratio:.2f})"

    def learned_ratio(self, sku: str, printer_model: str) -> PrintTimeRatio | None:
        return self._ratios.get(ratio_key(sku, printer_model))


def catalog_source(path: Path) -> WatchedToml[Catalog]:
    return WatchedToml(path, parse_catalog, Catalog())


def printers_source(path: Path) -> WatchedToml[PrinterConfig]:
    return WatchedToml(path, parse_printers, PrinterConfig())
