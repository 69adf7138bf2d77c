"""Subprocess side of the store's crash and concurrency tests.

``zygote DATA_DIR``: imports everything once, then on each ``fork`` line forks a
writer child (so 50 kill -9 rounds do not pay 50 interpreter start-ups), which prints
``writing N`` once its store is open; ``reap N`` waits for child N and prints
``reaped N``.

``adder DATA_DIR PREFIX OTHER N``: after a ``go`` line, adds N orders and N notes one
at a time, then waits until the other process's records are visible and prints a
JSON summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from store_helpers import (
    NOW,
    PERSONALISATION,
    Note,
    make_order,
    note_key,
    open_store,
    shipped_order,
)
from tf_console.models import Order, OrderStatus
from tf_console.store import Store

HOT_ORDER_ID = "777"
ARCHIVED_ORDER_ID = "555"


def step_note(n: int) -> Note:
    return Note(note_id=f"{n:06d}", body=f"step {n}", secret=PERSONALISATION, count=n)


def step_hot_order(n: int) -> Order:
    status = OrderStatus.UNSHIPPED if n % 2 == 0 else OrderStatus.PARTIALLY_SHIPPED
    return make_order(HOT_ORDER_ID, status=status, total=f"{n}.00", updated_at=NOW + timedelta(seconds=n))


def step_archived_order(n: int) -> Order:
    base = shipped_order(ARCHIVED_ORDER_ID, days_ago=200)
    return base.model_copy(update={"total": make_order("x", total=f"{n}.00").total})


def notes(store: Store) -> list[Note]:
    return store.collection("steps", Note, note_key, encrypted_fields=frozenset({"secret"})).all()


def run_writer(data_dir: Path) -> None:
    store = open_store(data_dir)
    collection = store.collection("steps", Note, note_key, encrypted_fields=frozenset({"secret"}))
    step = int(store.meta.get("step", -1)) + 1  # redo a step a kill interrupted
    print(f"writing {os.getpid()}", flush=True)
    while True:
        collection.put(step_note(step))
        store.orders.upsert_many([step_hot_order(step)])
        store.orders.upsert_many([step_archived_order(step)])
        store.meta.set("step", step)
        step += 1


def zygote(data_dir: Path) -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command, _, argument = line.strip().partition(" ")
        if command == "fork":
            pid = os.fork()
            if pid == 0:
                try:
                    run_writer(data_dir)
                finally:
                    os._exit(1)
        elif command == "reap":
            os.waitpid(int(argument), 0)
            print(f"reaped {argument}", flush=True)
        elif command == "quit":
            return


def adder(data_dir: Path, prefix: str, other: str, count: int) -> None:
    store = open_store(data_dir)
    collection = store.collection("notes", Note, note_key)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return
    for i in range(count):
        store.orders.upsert_many([make_order(f"{prefix}-{i}")])
        collection.put(Note(note_id=f"{prefix}-{i}", body=prefix, count=i))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if store.orders.count() >= 2 * count and collection.count() >= 2 * count:
            break
        time.sleep(0.01)
    orders = [o.order_id for o in store.orders.iter_all()]
    summary = {
        "orders": len(orders),
        "distinct_orders": len(set(orders)),
        "other_orders": sum(1 for o in orders if o.startswith(f"{other}-")),
        "notes": collection.count(),
        "other_notes": sum(1 for note in collection.all() if note.note_id.startswith(f"{other}-")),
    }
    print(json.dumps(summary), flush=True)
    store.close()


if __name__ == "__main__":
    mode, directory, *rest = sys.argv[1:]
    if mode == "zygote":
        zygote(Path(directory))
    elif mode == "adder":
        adder(Path(directory), rest[0], rest[1], int(rest[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")
