"""Benchmark: the console (Textual UI) on a big shop.

Builds one state folder with N orders of history (default 100,000: 2 % open, the rest
shipped or cancelled over two years, so most sit in the monthly archives) and a print
queue of J jobs (default 10,000), then measures:

- ``startup``: from opening the state folder to the first full frame (the three panes
  painted with rows), in-process and headless; then until the order index covers every
  order, archives included (the ``/`` filter works on everything from then on);
- ``filter``: a ``/`` search and a re-sort over every order;
- ``reorder``: key press → repaint for ``K``/``J`` on a 10k-job queue (the row moves at
  once; the store write and the reschedule follow in worker threads), paced (one press
  a second, the operator's rhythm) and in a burst (as fast as keys repeat);
- ``idle``: the real console in a pseudo-terminal (120×40) with nothing happening:
  bytes written to the terminal per second, CPU share and RSS — once over the big store
  with the sync engine off, once as ``tf-console demo`` at 1× speed with faults off
  (the engine polling, ticking, watching the folder).

Targets: reorder p95 ≤ 50 ms, idle ≤ 2 KB/s.  Prints one JSON line per measurement.
Run: ``.venv/bin/python bench/ui.py [--orders N] [--jobs J] [--presses P] [--idle-seconds S]``.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import importlib.util
import json
import os
import random
import select
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from textual.screen import Screen  # noqa: E402

from tf_console.clock import FakeClock  # noqa: E402
from tf_console.console import ConsoleService, OrderFilter, OrderQuery, SortKey  # noqa: E402
from tf_console.demo import build_demo, isolated_context  # noqa: E402
from tf_console.models import PrintJob  # noqa: E402
from tf_console.production.catalog import parse_catalog  # noqa: E402
from tf_console.production.examples import example_text, install_examples  # noqa: E402
from tf_console.production.printers import parse_printers  # noqa: E402
from tf_console.production.records import PlateRun  # noqa: E402
from tf_console.production.service import JOBS_COLLECTION, RUNS_COLLECTION  # noqa: E402
from tf_console.runtime import Runtime  # noqa: E402
from tf_console.ui import ConsoleApp, ConsoleOptions  # noqa: E402

KEY = b"o4mJ0v3oVZ2cGkz8b7m1p0d5Jx3cQ9Yw6n2r8t4u1s0="
SIZE = (120, 40)
TARGET_REORDER_P95_MS = 50.0
TARGET_IDLE_BYTES_PER_SECOND = 2048.0


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


store_bench = _load("store")
schedule_bench = _load("schedule")
NOW = store_bench.NOW


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# ---------------------------------------------------------------------------
# The shop


def open_runtime(folder: Path) -> Runtime:
    ctx = isolated_context(folder, {"TF_TIMEZONE": "Europe/London"}, clock=FakeClock(NOW), key=KEY)
    runtime = Runtime(ctx, lease_kind="console")  # no credentials: every platform shows as disabled
    runtime.open()
    return runtime


def prepare(folder: Path, orders: int, jobs: int) -> dict[str, Any]:
    """The state folder: ``orders`` of history and ``jobs`` queued print jobs."""
    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    install_examples(folder)
    runtime = open_runtime(folder)
    try:
        history = store_bench.make_history(orders, random.Random(orders))
        for offset in range(0, len(history), 10_000):
            runtime.store.orders.upsert_many(history[offset : offset + 10_000])
        catalog = parse_catalog(example_text("catalog.toml"), "catalog.toml")
        printers = parse_printers(example_text("printers.toml"), "printers.toml")
        queue, runs = schedule_bench.make_jobs(jobs, catalog, printers, random.Random(jobs))
        store = runtime.store
        store.collection(
            JOBS_COLLECTION, PrintJob, key=lambda j: j.job_id, encrypted_fields=frozenset({"personalisation"})
        ).put_many(queue)
        store.collection(RUNS_COLLECTION, PlateRun, key=lambda r: r.run_id).put_many(runs)
    finally:
        runtime.engine.lease.release()
        runtime.close()
    return {"orders": orders, "jobs": jobs, "build_s": round(time.perf_counter() - started, 1)}


# ---------------------------------------------------------------------------
# In-process measurements


class BenchApp(ConsoleApp):
    """The console, noting when a frame is produced."""

    frames: list[float]

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        if renderable is not None:
            self.frames.append(time.perf_counter())
        super()._display(screen, renderable)


def _full(app: ConsoleApp) -> bool:
    d = app.dashboard
    return all(t.row_count > 0 for t in (d.health_pane.table, d.orders_pane.table, d.queue_pane.table)) and (
        d.model.projection is not None or not d.model.sequence
    )


async def measure_startup(folder: Path) -> dict[str, Any]:
    started = time.perf_counter()
    runtime = open_runtime(folder)
    opened = time.perf_counter()
    service = ConsoleService(runtime)
    app = BenchApp(service, ConsoleOptions(poll=False))
    app.frames = []
    result: dict[str, Any] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            rows_at: float | None = None
            while time.perf_counter() - started < 300:
                if rows_at is None and all(
                    t.row_count > 0
                    for t in (
                        app.dashboard.health_pane.table,
                        app.dashboard.orders_pane.table,
                        app.dashboard.queue_pane.table,
                    )
                ):
                    await pilot.pause()
                    rows_at = app.frames[-1] if app.frames else time.perf_counter()
                if _full(app) and rows_at is not None:
                    await pilot.pause()
                    break
                await asyncio.sleep(0.005)
            full_at = app.frames[-1] if app.frames else time.perf_counter()
            while not service.index.complete and time.perf_counter() - started < 600:
                await asyncio.sleep(0.02)
            indexed_at = time.perf_counter()
            result = {
                "open_store_ms": round((opened - started) * 1000),
                "first_frame_with_rows_ms": round(((rows_at or full_at) - started) * 1000),
                "first_full_frame_ms": round((full_at - started) * 1000),
                "index_complete_ms": round((indexed_at - started) * 1000),
                "indexed_orders": len(service.index),
            }
            query = OrderQuery(OrderFilter.parse("dragon-red status:shipped"), SortKey.NEWEST)
            t0 = time.perf_counter()
            found = service.listing(query)
            result["filter_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            result["filter_matches"] = len(found)
            t0 = time.perf_counter()
            service.listing(OrderQuery(OrderFilter(), SortKey.SHIP_BY))
            result["resort_ms"] = round((time.perf_counter() - t0) * 1000, 1)
            await app.shutdown()
    finally:
        service.close()
        runtime.engine.lease.release()
        runtime.close()
    return result


async def measure_reorder(folder: Path, presses: int) -> dict[str, Any]:
    runtime = open_runtime(folder)
    service = ConsoleService(runtime)
    app = BenchApp(service, ConsoleOptions(poll=False))
    app.frames = []
    result: dict[str, Any] = {}
    try:
        async with app.run_test(size=SIZE) as pilot:
            while not _full(app):
                await asyncio.sleep(0.02)
            await pilot.press("3")
            await pilot.pause(0.5)
            for _ in range(12):  # to the middle of the first window: K and J both move something
                await pilot.press("down")
            while app.busy():
                await asyncio.sleep(0.05)

            async def one(key: str) -> float:
                before = len(app.frames)
                t0 = time.perf_counter()
                await pilot.press(key)
                deadline = time.perf_counter() + 5
                while len(app.frames) == before and time.perf_counter() < deadline:
                    await asyncio.sleep(0.0005)
                return (app.frames[before] - t0) * 1000 if len(app.frames) > before else float("nan")

            paced: list[float] = []
            for n in range(presses):
                paced.append(await one("K" if n % 2 == 0 else "J"))
                settle_until = time.perf_counter() + 20
                while (app.busy() or service.writes_pending) and time.perf_counter() < settle_until:
                    await asyncio.sleep(0.02)
            burst = [await one("K" if n % 2 == 0 else "J") for n in range(presses)]
            settle_until = time.perf_counter() + 60
            while (app.busy() or service.writes_pending) and time.perf_counter() < settle_until:
                await asyncio.sleep(0.05)
            projection = app.dashboard.model.projection
            result = {
                "jobs": len(app.dashboard.model.sequence),
                "paced_p50_ms": round(statistics.median(paced), 1),
                "paced_p95_ms": round(percentile(paced, 0.95), 1),
                "burst_p50_ms": round(statistics.median(burst), 1),
                "burst_p95_ms": round(percentile(burst, 0.95), 1),
                "reschedule_ms": round(projection.computed_ms) if projection else None,
                "target_p95_ms": TARGET_REORDER_P95_MS,
                "target_met": percentile(paced, 0.95) <= TARGET_REORDER_P95_MS,
            }
            await app.shutdown()
    finally:
        service.close()
        runtime.engine.lease.release()
        runtime.close()
    return result


# ---------------------------------------------------------------------------
# Idle, in a real (pseudo) terminal


def child(mode: str, folder: Path) -> None:
    """Run the console on this process's terminal (the parent measures it)."""
    from tf_console.cli.console import setup_logging

    folder.mkdir(parents=True, exist_ok=True)
    setup_logging(folder)  # as the CLI does: log lines go to a file, never to the terminal

    async def main() -> None:
        if mode == "demo":
            setup = build_demo(folder, speed=1.0)
            async with setup.runtime.started() as rt:
                service = ConsoleService(rt)
                await ConsoleApp(service, ConsoleOptions(mode_label=setup.label)).run_async(mouse=False)
                service.close()
        else:
            runtime = open_runtime(folder)
            service = ConsoleService(runtime)
            try:
                await ConsoleApp(service, ConsoleOptions(poll=False)).run_async(mouse=False)
            finally:
                service.close()
                runtime.engine.lease.release()
                runtime.close()

    asyncio.run(main())


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_idle(mode: str, folder: Path, seconds: float, warmup: float) -> dict[str, Any]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMAZON_", "EBAY_", "ETSY_", "TF_"))}
    env.update(TERM="xterm-256color", COLORTERM="truecolor")
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", mode, "--dir", str(folder)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)

    def drain(duration: float, until: bytes | None = None) -> tuple[int, bytes]:
        total, tail = 0, b""
        deadline = time.monotonic() + duration
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    break
                total += len(chunk)
                tail = (tail + chunk)[-4096:]
                if until is not None and until in tail:
                    break
        return total, tail

    try:
        started = time.monotonic()
        startup_bytes, _tail = drain(300, until=b"Queue")
        first_frame_s = time.monotonic() - started
        warm_bytes, _ = drain(warmup)
        cpu0 = _cpu_seconds(process.pid)
        t0 = time.monotonic()
        idle_bytes, _ = drain(seconds)
        elapsed = time.monotonic() - t0
        cpu = _cpu_seconds(process.pid) - cpu0
        rss = _rss_mb(process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        os.close(master)
    return {
        "mode": mode,
        "first_frame_in_terminal_s": round(first_frame_s, 2),
        "startup_bytes": startup_bytes + warm_bytes,
        "idle_seconds": round(elapsed, 1),
        "idle_bytes_per_s": round(idle_bytes / elapsed, 1),
        "idle_cpu_percent": round(100 * cpu / elapsed, 2),
        "rss_mb": round(rss, 1),
        "target_bytes_per_s": TARGET_IDLE_BYTES_PER_SECOND,
        "target_met": idle_bytes / elapsed <= TARGET_IDLE_BYTES_PER_SECOND,
        "exit_code": process.returncode,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--presses", type=int, default=40, help="key presses per reorder series")
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument(
        "--idle-warmup",
        type=float,
        default=45.0,
        help="seconds to let start-up work finish (the archive index of 100k orders takes ~20 s)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (kept when given)")
    parser.add_argument(
        "--phases", default="startup,reorder,idle", help="which measurements to run (comma-separated)"
    )
    parser.add_argument("--child", choices=["store", "demo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        assert args.dir is not None
        child(args.child, args.dir)
        return
    workdir = args.dir or Path(tempfile.mkdtemp(prefix="tf-bench-ui-"))
    shop = workdir / "shop"
    try:
        if not (shop / "meta.json").exists():
            emit({"prepare": prepare(shop, args.orders, args.jobs)})
        phases = set(args.phases.split(","))
        if "startup" in phases:
            runs = [asyncio.run(measure_startup(shop)) for _ in range(args.startup_runs)]
            summary = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
            emit({"startup": summary, "runs": len(runs)})
        if "reorder" in phases:
            emit({"reorder": asyncio.run(measure_reorder(shop, args.presses))})
        if "idle" in phases:
            emit({"idle": measure_idle("store", shop, args.idle_seconds, args.idle_warmup)})
            emit({"idle": measure_idle("demo", workdir / "demo", args.idle_seconds, args.idle_warmup)})
    finally:
        if args.dir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
