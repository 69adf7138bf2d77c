"""Backfill benchmark: the sync engine against the sandbox over a real loopback socket.

For N orders of history (default 1,000 and 10,000) on the framework's test platform,
with the marketplace's published rate limits scaled so a run takes seconds:

- requests made vs the minimum possible (one token call + ceil(N / page size) pages),
- wall time vs the rate-limit floor (time the order-list bucket needs to hand out that
  many tokens: (pages - burst) / rate, never below 0) — target ≤ 1.1×, zero 429s,
- ingest throughput: orders stored per second (classification, encryption of PII,
  atomic durable writes into the store included).

    .venv/bin/python bench/sync.py [--orders 1000 10000] [--rate-scale 10]

Prints one JSON line per N.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing
import random
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tf_console.clock import SYSTEM_CLOCK
from tf_console.crypto import FernetCipher
from tf_console.marketplaces.http import ClientSettings
from tf_console.marketplaces.testplatform import (
    PAGE_LIMIT,
    TEST_OPERATIONS,
    create_test_marketplace,
)
from tf_console.models import Platform
from tf_console.sandbox import LoopbackServer, Sandbox
from tf_console.sandbox.testsim import DEMO_CLIENT_ID, DEMO_REFRESH_TOKEN, TestShopSimulator
from tf_console.store import Store
from tf_console.sync.engine import SyncEngine


def serve_sandbox(orders: int, rate_scale: float, conn: Connection) -> None:
    """The marketplace runs in its own process, as a real one would (no shared GIL)."""
    sandbox = Sandbox(seed=5, rate_scale=rate_scale, short_page_probability=0.0)
    sandbox.add(TestShopSimulator(sandbox, backfill=orders, orders_per_hour=0, backfill_days=60))
    with LoopbackServer(sandbox) as server:
        conn.send(server.base_url)
        conn.recv()  # "report"
        conn.send({"requests": sandbox.log.total, "throttled": sandbox.log.throttled})
        conn.recv()  # "stop"


async def run_once(orders: int, rate_scale: float) -> dict[str, object]:
    parent, child = multiprocessing.Pipe()
    server_process = multiprocessing.Process(target=serve_sandbox, args=(orders, rate_scale, child))
    server_process.start()
    base_url = parent.recv()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(Path(tmp) / "data", FernetCipher(FernetCipher.generate_key()))
        market = create_test_marketplace(
            base_url=base_url,
            client_id=DEMO_CLIENT_ID,
            refresh_token=DEMO_REFRESH_TOKEN,
            clock=SYSTEM_CLOCK,
            rng=random.Random(1),
            settings=ClientSettings(read_timeout=30.0, max_retry_seconds=60.0),
            rate_scale=rate_scale,
        )
        engine = SyncEngine(store, {Platform.TEST: market}, SYSTEM_CLOCK)
        started = time.perf_counter()
        result = await engine.pollers[Platform.TEST].poll(days=90, recheck=False)
        wall = time.perf_counter() - started
        await market.aclose()
        stored = store.orders.count()
        store.close()
    parent.send("report")
    served = parent.recv()
    parent.send("stop")
    server_process.join(timeout=30)
    spec = TEST_OPERATIONS["orders.list"].scaled(rate_scale)
    pages = math.ceil(orders / PAGE_LIMIT)
    floor = max(0.0, (pages - spec.burst) / spec.rate)
    minimum_requests = pages + 1  # + the token exchange
    return {
        "orders": orders,
        "stored": stored,
        "ok": result.ok,
        "requests": served["requests"],
        "minimum_requests": minimum_requests,
        "http_429": served["throttled"],
        "wall_s": round(wall, 3),
        "rate_limit_floor_s": round(floor, 3),
        "wall_vs_floor": round(wall / floor, 3) if floor else None,
        "ingest_orders_per_s": round(stored / wall, 1) if wall else None,
        "rate_scale": rate_scale,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--rate-scale", type=float, default=10.0)
    args = parser.parse_args()
    for n in args.orders:
        print(json.dumps(asyncio.run(run_once(n, args.rate_scale))), flush=True)


if __name__ == "__main__":
    main()
