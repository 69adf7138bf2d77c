"""Benchmark: tf_console's store against stock TinyDB ``JSONStorage`` holding the same orders.

For each N (default 1,000, 10,000 and 100,000 orders of history: 2 % open, the rest
shipped or cancelled over ~24 months) it builds both databases in the same run and
prints one JSON line with medians in milliseconds of:

(a) ``mark_shipped``: mark one open order shipped, durably (fsync);
(b) ``archived_update``: a late refund of an old, archived order arriving through a
    re-poll (``upsert_many`` for us, ``Table.upsert`` with a query for stock TinyDB);
(c) ``export``: export all N orders as JSON (no PII) from a cold cache, as a fresh
    ``tf-console export`` would;

plus the ratio stock/ours for (a) and (b), and the time to ingest 10,000 orders into
an empty store.  Run: ``.venv/bin/python bench/store.py [--orders N ...] [--runs 20]``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tinydb import Query, TinyDB

from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.models import (
    Address,
    ItemKind,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentState,
)
from tf_console.store import Store
from tf_console.store.export import document_record, export_orders, write_records
from tf_console.store.orders import PII_FIELD, encode_order_document
from tf_console.store.storage import collector_paused

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
HISTORY_DAYS = 730
OPEN_SHARE = 0.02
KEY = FernetCipher.generate_key()
SKUS = [
    "DRAGON-RED-L",
    "DRAGON-BLU-M",
    "VASE-SPIRAL",
    "NAME-SIGN",
    "LITHOPHANE-8",
    "STAND-01",
    "KEYCHAIN-ABC",
]
TARGETS_100K_MS = {"mark_shipped": 20.0, "archived_update": 200.0, "export": 5000.0, "ingest_10k": 2000.0}


def make_history(count: int, rng: random.Random) -> list[Order]:
    orders = []
    platforms = (Platform.AMAZON, Platform.EBAY, Platform.ETSY)
    for index in range(count):
        is_open = rng.random() < OPEN_SHARE
        if is_open:
            created = NOW - timedelta(hours=rng.uniform(1, 96))
            status = rng.choice((OrderStatus.UNSHIPPED, OrderStatus.PENDING, OrderStatus.PARTIALLY_SHIPPED))
            updated = created
        else:
            created = NOW - timedelta(days=rng.uniform(0.5, HISTORY_DAYS))
            status = OrderStatus.CANCELLED if rng.random() < 0.05 else OrderStatus.SHIPPED
            updated = min(NOW, created + timedelta(days=rng.uniform(0.2, 3)))
        currency = "USD"
        items = [
            LineItem(
                line_id=f"{index}-{n}",
                sku=rng.choice(SKUS),
                title="Articulated dragon, 3D printed PLA, gift boxed",
                quantity=rng.randint(1, 3),
                unit_price=Money(amount=Decimal(rng.randint(500, 6000)) / 100, currency=currency),
                kind=rng.choice((ItemKind.PRINT, ItemKind.STOCK)),
                personalisation=f"For {rng.choice(['Ana', 'Bo', 'Cy'])}" if rng.random() < 0.3 else "",
            )
            for n in range(rng.randint(1, 3))
        ]
        total = sum((i.unit_price.amount * i.quantity for i in items if i.unit_price), Decimal("0"))
        shipments = []
        if status is OrderStatus.SHIPPED:
            shipments.append(
                Shipment(
                    shipment_id=f"s{index}",
                    carrier="USPS",
                    tracking=f"9400{index:012d}",
                    shipped_at=updated,
                    state=ShipmentState.CONFIRMED,
                    requested_at=updated,
                    updated_at=updated,
                )
            )
        orders.append(
            Order(
                platform=platforms[index % 3],
                order_id=f"{100000000 + index}",
                status=status,
                raw_status=status.value,
                created_at=created,
                updated_at=updated,
                ship_by=created + timedelta(days=3),
                currency=currency,
                total=Money(amount=total, currency=currency),
                items=items,
                buyer=Address(
                    name=f"Buyer {index}",
                    email=f"b{index}@example.com",
                    line1=f"{index} Main Street",
                    city="Springfield",
                    region="IL",
                    postal_code="62701",
                    country="US",
                ),
                shipments=shipments,
            )
        )
    return orders


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_ms(runs: int, action: Callable[[int], object]) -> float:
    samples = []
    for run in range(runs):
        start = time.perf_counter()
        action(run)
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


def mark_shipped(order: Order) -> Order:
    shipment = Shipment(
        shipment_id=f"bench-{order.order_id}",
        carrier="USPS",
        tracking=f"9400BENCH{order.order_id}",
        shipped_at=NOW,
        requested_at=NOW,
        updated_at=NOW,
    )
    return order.model_copy(
        update={"status": OrderStatus.SHIPPED, "updated_at": NOW, "shipments": [*order.shipments, shipment]}
    )


def late_refund(order: Order, run: int) -> Order:
    return order.model_copy(update={"refunded": True, "updated_at": NOW + timedelta(seconds=run)})


def stock_decode(doc: dict[str, Any], cipher: FernetCipher, include_pii: bool) -> Order:
    data = {k: v for k, v in doc.items() if k != PII_FIELD}
    if include_pii and doc.get(PII_FIELD):
        pii = json.loads(cipher.decrypt(doc[PII_FIELD]))
        data["buyer"] = pii.get("buyer")
        if pii.get("personalisation"):
            data["items"] = [
                {**i, "personalisation": p}
                for i, p in zip(data["items"], pii["personalisation"], strict=False)
            ]
    return Order.model_validate(data)


def ingest_10k_ms(workdir: Path, cipher: FernetCipher) -> float:
    orders = make_history(10_000, random.Random(7))
    samples = []
    for attempt in range(3):
        folder = workdir / f"ingest-{attempt}"
        store = Store.open(folder, cipher, clock=FakeClock(NOW))
        start = time.perf_counter()
        store.orders.upsert_many(orders)
        samples.append((time.perf_counter() - start) * 1000)
        store.close()
        shutil.rmtree(folder)
    return round(statistics.median(samples), 1)


def bench(count: int, runs: int, stock_runs: int, workdir: Path, cipher: FernetCipher) -> dict[str, Any]:
    rng = random.Random(count)
    history = make_history(count, rng)
    gc.freeze()  # the benchmark's own copy of the history must not slow the measured collections
    open_orders = [o for o in history if o.is_open]
    archived = [o for o in history if not o.is_open and o.updated_at < NOW - timedelta(days=60)]

    folder = workdir / f"ours-{count}"
    store = Store.open(folder, cipher, clock=FakeClock(NOW))
    start = time.perf_counter()
    last_batch_ms = 0.0
    for offset in range(0, count, 10_000):
        batch_start = time.perf_counter()
        store.orders.upsert_many(history[offset : offset + 10_000])
        last_batch_ms = (time.perf_counter() - batch_start) * 1000
    ours_ingest_ms = (time.perf_counter() - start) * 1000
    progress(f"{count}: ours ingested in {ours_ingest_ms:.0f} ms")

    stock_path = workdir / f"stock-{count}.json"
    stock_db = TinyDB(stock_path)
    stock = stock_db.table("orders")
    start = time.perf_counter()
    stock.insert_multiple([encode_order_document(o, cipher) for o in history])
    stock_ingest_ms = (time.perf_counter() - start) * 1000
    progress(f"{count}: stock ingested in {stock_ingest_ms:.0f} ms")
    q = Query()

    ship_targets = rng.sample(open_orders, min(len(open_orders), runs + stock_runs))
    refund_targets = rng.sample(archived, runs + stock_runs)

    ours: dict[str, float] = {}
    ours["mark_shipped"] = median_ms(
        runs, lambda r: store.orders.update(ship_targets[r].platform, ship_targets[r].order_id, mark_shipped)
    )
    ours["archived_update"] = median_ms(
        runs, lambda r: store.orders.upsert_many([late_refund(refund_targets[r], r)])
    )

    def ours_export(_: int) -> None:
        store.core.cache.clear()  # a fresh `tf-console export` starts cold
        export_orders(store, "json", False, io.StringIO())

    ours["export"] = median_ms(runs, ours_export)
    progress(f"{count}: ours measured {ours}")

    def stock_mark_shipped(r: int) -> None:
        target = ship_targets[-1 - r]
        where = (q.platform == target.platform.value) & (q.order_id == target.order_id)
        doc = stock.get(where)
        assert isinstance(doc, dict)
        stock.update(encode_order_document(mark_shipped(stock_decode(doc, cipher, True)), cipher), where)

    def stock_archived_update(r: int) -> None:
        target = refund_targets[-1 - r]
        where = (q.platform == target.platform.value) & (q.order_id == target.order_id)
        stock.upsert(encode_order_document(late_refund(target, r), cipher), where)

    def stock_export(_: int) -> None:
        # The same record building and JSON writing as ours; only the storage differs.
        with collector_paused():
            records = [document_record(doc) for doc in stock.all()]
        write_records(records, "json", False, io.StringIO())

    stock_ms = {
        "mark_shipped": median_ms(stock_runs, stock_mark_shipped),
        "archived_update": median_ms(stock_runs, stock_archived_update),
        "export": median_ms(stock_runs, stock_export),
    }
    assert len(stock) == count and store.orders.count() == count

    hot = sorted((folder / "orders").glob("hot-*.json"))
    archives = sorted((folder / "orders").glob("archive-*.json"))
    result = {
        "orders": count,
        "runs": runs,
        "stock_runs": stock_runs,
        "ours_ms": ours,
        "stock_ms": stock_ms,
        "ratio_mark_shipped": round(stock_ms["mark_shipped"] / ours["mark_shipped"], 1),
        "ratio_archived_update": round(stock_ms["archived_update"] / ours["archived_update"], 1),
        "ratio_export": round(stock_ms["export"] / ours["export"], 2),
        "ingest_all_ms": {"ours": round(ours_ingest_ms), "stock": round(stock_ingest_ms)},
        "ingest_last_10k_batch_ms": round(last_batch_ms),
        "hot_files_kb": round(sum(p.stat().st_size for p in hot) / 1024),
        "largest_hot_file_kb": round(max(p.stat().st_size for p in hot) / 1024),
        "archive_files": len(archives),
        "largest_archive_file_kb": round(max(p.stat().st_size for p in archives) / 1024),
        "stock_file_kb": round(stock_path.stat().st_size / 1024),
    }
    store.close()
    stock_db.close()
    shutil.rmtree(folder)
    stock_path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, action="append", help="history size (repeatable)")
    parser.add_argument("--runs", type=int, default=20, help="repetitions per measurement (median)")
    parser.add_argument(
        "--stock-runs-100k",
        type=int,
        default=5,
        help="repetitions for stock TinyDB at >= 100,000 orders (each takes seconds)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="scratch folder (default: a temp dir)")
    args = parser.parse_args()
    sizes = args.orders or [1_000, 10_000, 100_000]
    cipher = FernetCipher(KEY)
    workdir = Path(tempfile.mkdtemp(prefix="tf-bench-", dir=args.dir))
    try:
        ingest = ingest_10k_ms(workdir, cipher)
        for count in sizes:
            stock_runs = args.stock_runs_100k if count >= 100_000 else args.runs
            result = bench(count, args.runs, stock_runs, workdir, cipher)
            gc.unfreeze()  # the history of this size is garbage now
            gc.collect()
            result["ingest_10k_ms"] = ingest
            if count >= 100_000:
                measured = {**result["ours_ms"], "ingest_10k": ingest}
                result["targets_met"] = {
                    name: measured[name] <= limit for name, limit in TARGETS_100K_MS.items()
                } | {"ratio_mark_shipped>=50": result["ratio_mark_shipped"] >= 50}
            print(json.dumps(result), flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
