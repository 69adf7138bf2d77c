"""Benchmark: recomputing the print schedule for 100, 1,000 and 10,000 queued jobs on 10 printers.

The queue is built from the shipped example catalog (12 profiles, two of them
batched) with a seeded random mix of SKUs, quantities 1-4, ship-by dates over the
next two weeks, 5 % rush, 10 % low priority, a few pinned jobs and three plates
already printing.  The printers are the example's five models, doubled to ten.
Staffed hours are the example's 08:00-18:00 on weekdays, so the shift-end
heuristic and the staffed-time arithmetic are on the measured path.

For each N it prints one JSON line with medians in milliseconds (and the best run of
``compute``, a steadier figure on a busy machine) of:

- ``compute``: :func:`compute_schedule` on a prepared snapshot (what a console
  worker thread runs after a reorder) — the target is under 50 ms for 1,000 jobs;
- ``queue_order``: the queue order alone (what the console shows at once on a
  reorder, before projected times arrive);
- ``service_memory``: ``ProductionService.schedule()`` over in-memory collections
  (snapshot building included);
- ``service_store``: ``ProductionService.schedule()`` over the real encrypted store
  (reading and decrypting every job included), from a warm page cache.

Run: ``.venv/bin/python bench/schedule.py [--jobs N ...] [--runs 15]``.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.production_fakes import Repos
from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.models import JobState, Platform, PrintJob, Priority
from tf_console.production.catalog import Catalog, parse_catalog
from tf_console.production.examples import example_text
from tf_console.production.printers import PrinterConfig, parse_printers
from tf_console.production.records import PlateRun
from tf_console.production.scheduler import compute_schedule, queue_order
from tf_console.production.service import ProductionService, catalog_source, printers_source
from tf_console.store import Store

NOW = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)  # a Monday morning
TIMEZONE = "Europe/London"


def example_files(folder: Path) -> tuple[Catalog, PrinterConfig]:
    """The shipped catalog and printers files, with every printer doubled (ten in all)."""
    catalog_text = example_text("catalog.toml")
    printers_text = example_text("printers.toml")
    for block in re.split(r"(?m)^\[\[printers\]\]", printers_text)[1:]:
        printers_text += "\n[[printers]]" + block.replace('name = "', 'name = "b-', 1)
    (folder / "catalog.toml").write_text(catalog_text)
    (folder / "printers.toml").write_text(printers_text)
    return parse_catalog(catalog_text, "catalog.toml"), parse_printers(printers_text, "printers.toml")


def make_jobs(
    count: int, catalog: Catalog, printers: PrinterConfig, rng: random.Random
) -> tuple[list[PrintJob], list[PlateRun]]:
    profiles = list(catalog.profiles.values())
    jobs: list[PrintJob] = []
    for n in range(count):
        profile = rng.choice(profiles)
        quantity = rng.choice((1, 1, 1, 2, 2, 3, 4))
        roll = rng.random()
        priority = Priority.RUSH if roll < 0.05 else Priority.LOW if roll > 0.9 else Priority.NORMAL
        jobs.append(
            PrintJob(
                job_id=f"etsy:{4_000_000_000 + n // 2}:{n}",
                platform=Platform.ETSY,
                order_id=str(4_000_000_000 + n // 2),
                line_id=str(n),
                sku=f"SKU-{profile.name}",
                quantity=quantity,
                profile=profile.name,
                material=profile.material,
                minutes_per_unit=profile.minutes_per_unit,
                units_per_plate=profile.units_per_plate,
                plates=profile.plates_for(quantity),
                priority=priority,
                pin=n + 1 if n < 5 else None,
                due=NOW + timedelta(minutes=rng.randrange(6 * 60, 14 * 24 * 60)),
                personalisation="Name: Alex" if profile.name.startswith("nameplate") else "",
                created_at=NOW - timedelta(minutes=count - n),
                updated_at=NOW,
            )
        )
    runs: list[PlateRun] = []
    for index, printer in enumerate(printers.printers[:3]):
        job = jobs[-1 - index]
        jobs[-1 - index] = job.model_copy(update={"state": JobState.PRINTING, "printer": printer.name})
        runs.append(
            PlateRun(
                run_id=f"run-{index}",
                printer=printer.name,
                printer_model=printer.model,
                profile=job.profile,
                allocations={job.job_id: 1},
                sku_estimates={job.sku: job.minutes_per_unit},
                expected_minutes=job.minutes_per_unit,
                started_at=NOW - timedelta(minutes=20),
            )
        )
    return jobs, runs


def timings_ms(fn: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median and best of ``runs`` calls after a warm-up, in milliseconds."""
    fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(samples), 2), round(min(samples), 2)


def bench(count: int, runs: int) -> dict[str, Any]:
    rng = random.Random(count)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        catalog, printers = example_files(folder)
        jobs, plate_runs = make_jobs(count, catalog, printers, rng)
        clock = FakeClock(NOW)

        repos = Repos()
        repos.jobs.put_many(jobs)
        repos.runs.put_many(plate_runs)
        memory = ProductionService(
            jobs=repos.jobs,
            runs=repos.runs,
            ratios=repos.ratios,
            catalog=catalog_source(folder / "catalog.toml"),
            printers=printers_source(folder / "printers.toml"),
            timezone=TIMEZONE,
            clock=clock,
        )
        snapshot = memory.snapshot()
        result = compute_schedule(snapshot)
        figures: dict[str, Any] = {
            "jobs": count,
            "printers": len(snapshot.printers),
            "plates": len(result.plates),
        }
        figures["compute"], figures["compute_best"] = timings_ms(lambda: compute_schedule(snapshot), runs)
        figures["queue_order"], _ = timings_ms(lambda: queue_order(snapshot), runs)
        figures["service_memory"], _ = timings_ms(memory.schedule, max(3, runs // 3))

        store = Store.open(folder, FernetCipher(FernetCipher.generate_key()), clock=clock)
        try:
            on_disk = ProductionService.open(store, folder, timezone=TIMEZONE, clock=clock)
            store.collection(
                "jobs", PrintJob, key=lambda j: j.job_id, encrypted_fields=frozenset({"personalisation"})
            ).put_many(jobs)
            store.collection("plate_runs", PlateRun, key=lambda r: r.run_id).put_many(plate_runs)
            figures["service_store"], _ = timings_ms(on_disk.schedule, max(3, runs // 5))
        finally:
            store.close()
        late = sum(1 for o in result.orders.values() if o.late)
        figures["late_orders"] = late
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1_000, 10_000])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    for count in args.jobs:
        print(json.dumps(bench(count, args.runs)), flush=True)


if __name__ == "__main__":
    main()
