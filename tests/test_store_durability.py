"""Crash safety, two writers at once, and damaged files."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from store_helpers import BUYER_NAME, NOW, Note, make_order, note_key, open_store, shipped_order
from store_helpers.worker import (
    ARCHIVED_ORDER_ID,
    HOT_ORDER_ID,
    step_archived_order,
    step_hot_order,
    step_note,
)

from tf_console.store import Store, StoreError

WORKER = Path(__file__).parent / "store_helpers" / "worker.py"


def _observed_versions(store: Store) -> tuple[int, int, int, int]:
    """(notes written, hot order version, archived order version, meta step), each checked exactly."""
    collection = store.collection("steps", Note, note_key, encrypted_fields=frozenset({"secret"}))
    notes = collection.all()
    for index, note in enumerate(notes):
        assert note == step_note(index), "notes must be a gap-free prefix of the written sequence"
    written = len(notes) - 1

    def version(order_id: str, expected_for: object) -> int:
        order = store.orders.get("etsy", order_id)
        if order is None:
            return -1
        assert order.total is not None
        number = int(order.total.amount)
        assert order == expected_for(number), f"order {order_id} must equal a version that was written"  # type: ignore[operator]
        return number

    hot = version(HOT_ORDER_ID, step_hot_order)
    archived = version(ARCHIVED_ORDER_ID, step_archived_order)
    step = store.meta.get("step", -1)
    return written, hot, archived, step


def test_kill_9_during_writes_leaves_old_or_new_state(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(20261102)
    zygote = subprocess.Popen(
        [sys.executable, str(WORKER), "zygote", str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert zygote.stdin is not None and zygote.stdout is not None

    def ask(command: str) -> str:
        assert zygote.stdin is not None and zygote.stdout is not None
        zygote.stdin.write(command + "\n")
        zygote.stdin.flush()
        return zygote.stdout.readline().strip()

    try:
        assert zygote.stdout.readline().strip() == "ready"
        previous = (-1, -1, -1, -1)
        killed_mid_step = 0
        for _ in range(50):
            pid = int(ask("fork").split()[1])  # the child answers once it is writing
            time.sleep(rng.uniform(0.001, 0.025))
            os.kill(pid, signal.SIGKILL)
            assert ask(f"reap {pid}") == f"reaped {pid}"
            with open_store(data_dir) as store:
                written, hot, archived, step = _observed_versions(store)
            # Each step writes note, hot order, archived order, meta in that order, so what
            # survives is a step fully done plus a prefix of the next one.
            assert written >= hot >= archived >= step >= written - 1, (written, hot, archived, step)
            assert written >= previous[0]
            if not written == hot == archived == step:
                killed_mid_step += 1
            previous = (written, hot, archived, step)
            leftovers = [p.name for p in data_dir.rglob(".*.tmp")]
            assert leftovers == [], "opening the store sweeps a killed writer's temp files"
        assert previous[0] >= 25, "the writer should have made progress across the rounds"
        assert killed_mid_step >= 3, "some kills should land between the files of one step"
    finally:
        if zygote.stdin is not None:
            zygote.stdin.write("quit\n")
            zygote.stdin.close()
        zygote.wait(timeout=10)
        if zygote.stdout is not None:
            zygote.stdout.close()


def test_two_processes_adding_500_records_each(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    open_store(data_dir).close()
    workers = {
        name: subprocess.Popen(
            [sys.executable, str(WORKER), "adder", str(data_dir), name, other, "500"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, other in (("alpha", "beta"), ("beta", "alpha"))
    }
    summaries = {}
    try:
        for worker in workers.values():
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "ready"
        for worker in workers.values():
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        for name, worker in workers.items():
            out, _ = worker.communicate(timeout=120)
            assert worker.returncode == 0
            summaries[name] = json.loads(out.strip().splitlines()[-1])
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for summary in summaries.values():
        assert summary == {
            "orders": 1000,
            "distinct_orders": 1000,
            "other_orders": 500,
            "notes": 1000,
            "other_notes": 500,
        }
    with open_store(data_dir) as store:
        ids = sorted(o.order_id for o in store.orders.iter_all())
        assert ids == sorted([f"alpha-{i}" for i in range(500)] + [f"beta-{i}" for i in range(500)])
        assert store.orders.count() == 1000
        notes = store.collection("notes", Note, note_key).all()
        assert len(notes) == 1000 and len({n.note_id for n in notes}) == 1000
        assert all(n.body == n.note_id.split("-")[0] for n in notes)


@pytest.fixture
def populated(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    with open_store(data_dir) as store:
        store.orders.upsert_many([make_order("1"), make_order("2")])
        store.orders.upsert_many([make_order("1", total="43.00"), shipped_order("3", days_ago=100)])
        store.collection("notes", Note, note_key).put(Note(note_id="n1"))
        store.collection("notes", Note, note_key).put(Note(note_id="n2"))
        store.meta.set("cursor", "abc")
        store.meta.set("cursor", "def")
    return data_dir


def _hot_file_of(data_dir: Path, order_id: str) -> Path:
    for path in sorted((data_dir / "orders").glob("hot-*.json")):
        if f'"order_id":"{order_id}"' in path.read_text():
            return path
    raise AssertionError(f"order {order_id} not found in a hot shard")


def _damage_cases(original: bytes) -> dict[str, bytes]:
    return {
        "truncated": original[: len(original) // 2],
        "empty": b"",
        "garbage": b"\x00\xff\xfe not json at all",
        "wrong shape": b"[1, 2, 3]",
    }


@pytest.mark.parametrize("case", ["truncated", "empty", "garbage", "wrong shape"])
def test_damaged_hot_shard_is_reported_and_left_untouched(populated: Path, case: str) -> None:
    shard = _hot_file_of(populated, "1")
    backup = shard.with_name(shard.name + ".bak")
    damaged = _damage_cases(shard.read_bytes())[case]
    shard.write_bytes(damaged)
    backup_bytes = backup.read_bytes()
    with open_store(populated) as store:
        for action in (
            lambda: store.orders.get("etsy", "1"),
            lambda: store.orders.upsert_many([make_order("1", total="1.00")]),
            lambda: list(store.orders.iter_all()),
        ):
            with pytest.raises(StoreError) as caught:
                action()
            message = str(caught.value)
            assert str(shard) in message and str(backup) in message
            assert "damaged" in message and "Traceback" not in message
    assert shard.read_bytes() == damaged
    assert backup.read_bytes() == backup_bytes
    # The backup really is the last good version: restoring it brings the order back.
    shard.write_bytes(backup_bytes)
    with open_store(populated) as store:
        restored = store.orders.get("etsy", "1")
        assert restored is not None and restored.buyer is not None and restored.buyer.name == BUYER_NAME


@pytest.mark.parametrize("case", ["truncated", "empty", "garbage", "wrong shape"])
def test_damaged_meta_stops_open(populated: Path, case: str) -> None:
    meta = populated / "meta.json"
    damaged = _damage_cases(meta.read_bytes())[case]
    meta.write_bytes(damaged)
    with pytest.raises(StoreError) as caught:
        open_store(populated)
    assert str(meta) in str(caught.value) and f"{meta}.bak" in str(caught.value)
    assert meta.read_bytes() == damaged


def test_damaged_collection_and_archive_are_reported(populated: Path) -> None:
    notes_file = populated / "collections" / "notes.json"
    archive = next((populated / "orders").glob("archive-*.json"))
    for path in (notes_file, archive):
        original = path.read_bytes()
        path.write_bytes(original[:-7])
        with open_store(populated) as store, pytest.raises(StoreError, match="damaged") as caught:
            if path == notes_file:
                store.collection("notes", Note, note_key).all()
            else:
                store.orders.get("etsy", "3", created_at=NOW)
                list(store.orders.iter_all())
        assert str(path) in str(caught.value)
        assert path.read_bytes() == original[:-7]
        path.write_bytes(original)


def test_missing_file_with_backup_is_not_silently_reinitialised(populated: Path) -> None:
    shard = _hot_file_of(populated, "1")
    shard.unlink()
    with open_store(populated) as store, pytest.raises(StoreError, match="missing but its backup"):
        store.orders.get("etsy", "1")
    (populated / "meta.json").unlink()
    with pytest.raises(StoreError, match=r"meta\.json"):
        open_store(populated)
