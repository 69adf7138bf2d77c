"""Key ids, private modes of everything under the data folder, and PII never in clear."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import (
    BUYER_EMAIL,
    BUYER_NAME,
    NOW,
    OTHER_KEY,
    PERSONALISATION,
    Note,
    cipher,
    make_order,
    note_key,
    open_store,
    shipped_order,
)
from tinydb import TinyDB

from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.models import JobState, PrintJob
from tf_console.store import Store, StoreError
from tf_console.store.export import export_orders


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """A permissive umask, so only explicit modes can make the files private."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _full_run(data_dir: Path) -> None:
    """Exercise every kind of file the store creates."""
    clock = FakeClock(NOW)
    with open_store(data_dir, clock=clock) as store:
        store.orders.upsert_many([make_order(str(i)) for i in range(20)])
        store.orders.upsert_many([shipped_order(f"old-{i}", days_ago=40 + 30 * i) for i in range(6)])
        store.orders.update("etsy", "3", lambda o: o.model_copy(update={"refunded": True}))
        store.orders.upsert_many([shipped_order("10", days_ago=1)])
        clock.advance(timedelta(days=40).total_seconds())
        store.orders.archive_old()
        store.orders.purge_pii(timedelta(days=30))
        jobs = store.collection(
            "jobs", PrintJob, lambda j: j.job_id, encrypted_fields=frozenset({"personalisation"})
        )
        jobs.put(
            PrintJob(
                job_id="etsy:1:1-1",
                platform="etsy",
                order_id="1",
                line_id="1-1",
                sku="DRAGON-RED-L",
                quantity=2,
                personalisation=PERSONALISATION,
                state=JobState.QUEUED,
            )
        )
        jobs.update("etsy:1:1-1", lambda j: j.model_copy(update={"state": JobState.PRINTING}))
        store.collection("notes", Note, note_key, encrypted_fields=frozenset({"secret"})).put(
            Note(note_id="n", secret=BUYER_NAME)
        )
        log = store.log("audit", max_bytes=500, keep=2, durable=True)
        for i in range(40):
            log.append({"event": "shipped", "order": f"etsy:{i}"})
        store.meta.set("cursor.etsy", "2026-11-01T00:00:00Z")
        with open(os.devnull, "w") as sink:
            export_orders(store, "json", True, sink)


def _write_v1_state(data_dir: Path) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    from tf_console.store.orders import encode_order_document

    db = TinyDB(data_dir / "state.json")
    db.table("orders").insert(encode_order_document(make_order("v1"), cipher()))
    db.table("meta").insert({"name": "key_id", "value": cipher().key_id})
    db.close()


def test_every_file_is_0600_and_every_folder_0700(tmp_path: Path, loose_umask: None) -> None:
    data_dir = tmp_path / "data"
    _write_v1_state(data_dir)
    (data_dir / "state.json").chmod(0o600)  # stock TinyDB honours the umask; ours must not need to
    _full_run(data_dir)
    kinds = {p.name.split("-")[0].split(".")[0] for p in data_dir.rglob("*")}
    assert {"store", "meta", "hot", "archive", "jobs", "notes", "audit", "state"} <= kinds
    assert any(p.name.endswith(".bak") for p in data_dir.rglob("*"))
    assert any(p.name == "audit.2.jsonl" for p in data_dir.rglob("*"))
    assert (data_dir / "state.json.v1-backup").exists()
    wrong = []
    for path in [data_dir, *data_dir.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = 0o700 if path.is_dir() else 0o600
        if mode != expected:
            wrong.append(f"{path.relative_to(tmp_path)} {oct(mode)}")
    assert wrong == []


def test_no_pii_in_any_byte_under_the_data_folder(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    _full_run(data_dir)
    with open_store(data_dir) as store:  # the PII is there, encrypted
        assert any(o.buyer is not None and o.buyer.name == BUYER_NAME for o in store.orders.iter_all())
    needles = [BUYER_NAME, BUYER_EMAIL, PERSONALISATION, "12 Orchard Lane"]
    forms = {form for n in needles for form in (n.encode(), json.dumps(n).encode()[1:-1], n.lower().encode())}
    for path in data_dir.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for form in forms:
                assert form not in content, f"{form!r} found in {path.name}"


def test_a_different_key_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with open_store(data_dir) as store:
        store.orders.upsert_many([make_order("1")])
    before = {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()}
    other = FernetCipher(OTHER_KEY)
    with pytest.raises(StoreError) as caught:
        Store.open(data_dir, other)
    message = str(caught.value)
    assert cipher().key_id in message and other.key_id in message
    assert "Restore the key" in message
    assert {p: p.read_bytes() for p in data_dir.rglob("*") if p.is_file()} == before


def test_an_envelope_from_another_key_is_a_clear_error(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with open_store(data_dir) as store:
        store.orders.upsert_many([make_order("1")])
    # Forge a shard whose envelope was made with another key (e.g. a file copied from another shop).
    from tf_console.store.orders import encode_order_document

    shard = next(p for p in (data_dir / "orders").glob("hot-*.json") if '"order_id":"1"' in p.read_text())
    content = json.loads(shard.read_text())
    [doc_id] = content["orders"]
    content["orders"][doc_id] = encode_order_document(make_order("1"), FernetCipher(OTHER_KEY))
    shard.write_text(json.dumps(content))
    with open_store(data_dir) as store, pytest.raises(StoreError) as caught:
        store.orders.get("etsy", "1")
    assert str(shard) in str(caught.value) and BUYER_NAME not in str(caught.value)


def test_reprs_hold_no_pii(tmp_path: Path) -> None:
    with open_store(tmp_path / "data") as store:
        notes = store.collection("notes", Note, note_key, encrypted_fields=frozenset({"secret"}))
        for thing in (store, notes, store.log("audit"), store.cipher, make_order("1")):
            assert BUYER_NAME not in repr(thing) and PERSONALISATION not in repr(thing)
