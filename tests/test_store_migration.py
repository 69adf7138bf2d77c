"""Schema migration from version 1 (a single stock-TinyDB ``state.json``) to version 2."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from store_helpers import (
    BUYER_NAME,
    NOW,
    OTHER_KEY,
    PERSONALISATION,
    cipher,
    make_order,
    open_store,
    shipped_order,
)
from tinydb import TinyDB

from tf_console.crypto import FernetCipher
from tf_console.models import Order, PrintJob
from tf_console.store import CURRENT_SCHEMA, StoreError
from tf_console.store.collection import KEY_FIELD
from tf_console.store.collection import PII_FIELD as RECORD_PII
from tf_console.store.orders import encode_order_document

V1_ORDERS: list[Order] = [
    make_order("open-1"),
    make_order("open-2", created_at=NOW - timedelta(days=3)),
    shipped_order("recent", days_ago=3),
    shipped_order("old-1", days_ago=90),
    shipped_order("old-2", days_ago=400),
]


def _v1_job(job_id: str) -> dict[str, Any]:
    job = PrintJob(
        job_id=job_id,
        platform="etsy",
        order_id="open-1",
        line_id="open-1-1",
        sku="DRAGON-RED-L",
        quantity=2,
        personalisation=PERSONALISATION,
        created_at=NOW,
        updated_at=NOW,
    )
    doc = job.model_dump(mode="json")
    secret = {"personalisation": doc.pop("personalisation")}
    doc[RECORD_PII] = cipher().encrypt(json.dumps(secret).encode())
    doc[KEY_FIELD] = job_id
    return doc


def write_v1(data_dir: Path, *, key_id: str | None = None, with_key_id: bool = True) -> Path:
    """A version-1 folder written by stock TinyDB (JSONStorage, auto ids)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    state = data_dir / "state.json"
    db = TinyDB(state)
    db.table("orders").insert_multiple([encode_order_document(o, cipher()) for o in V1_ORDERS])
    db.table("jobs").insert_multiple([_v1_job("etsy:open-1:open-1-1"), _v1_job("etsy:open-1:open-1-2")])
    meta: list[dict[str, Any]] = [
        {"name": "cursor.etsy", "value": "2026-10-30T00:00:00Z"},
        {"name": "seen", "value": [1, 2]},
    ]
    if with_key_id:
        meta.append({"name": "key_id", "value": key_id or cipher().key_id})
    db.table("meta").insert_multiple(meta)
    db.close()
    return state


def test_v1_state_migrates_to_v2(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = write_v1(data_dir)
    original = state.read_bytes()
    assert json.loads(original)["orders"]["1"]["order_id"] == "open-1", "stock TinyDB layout, auto ids"

    with open_store(data_dir) as store:
        assert store.schema_version == CURRENT_SCHEMA
        for order in V1_ORDERS:
            assert store.orders.get("etsy", order.order_id) == order
        assert sorted(o.order_id for o in store.orders.open_orders()) == ["open-1", "open-2"]
        archived = {o.order_id for f in store.orders.archive_files() for o in _ids(f.documents())}
        assert archived == {"old-1", "old-2"}
        jobs = store.collection(
            "jobs", PrintJob, lambda j: j.job_id, encrypted_fields=frozenset({"personalisation"})
        )
        assert [j.personalisation for j in jobs.all()] == [PERSONALISATION, PERSONALISATION]
        assert store.meta.get("cursor.etsy") == "2026-10-30T00:00:00Z" and store.meta.get("seen") == [1, 2]
        assert store.meta.get("key_id") is None

    assert not state.exists()
    backup = data_dir / "state.json.v1-backup"
    assert backup.read_bytes() == original
    with open_store(data_dir) as store:  # a second open migrates nothing
        assert store.orders.count() == len(V1_ORDERS)
    assert sorted(p.name for p in data_dir.glob("state.json*")) == ["state.json.v1-backup"]


def _ids(docs: dict[str, dict[str, object]]) -> list[Order]:
    return [Order.model_validate({k: v for k, v in d.items() if k != "_pii"}) for d in docs.values()]


def test_v1_with_another_key_id_is_refused_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = write_v1(data_dir, key_id="0123456789ab")
    original = state.read_bytes()
    with pytest.raises(StoreError, match="0123456789ab"):
        open_store(data_dir)
    assert state.read_bytes() == original
    assert not (data_dir / "meta.json").exists()


def test_v1_without_key_id_is_checked_by_decrypting(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = write_v1(data_dir, with_key_id=False)
    original = state.read_bytes()
    from tf_console.store import Store

    with pytest.raises(StoreError, match="cannot be decrypted"):
        Store.open(data_dir, FernetCipher(OTHER_KEY))
    assert state.read_bytes() == original and not (data_dir / "meta.json").exists()
    with open_store(data_dir) as store:
        migrated = store.orders.get("etsy", "open-1")
        assert migrated is not None and migrated.buyer is not None and migrated.buyer.name == BUYER_NAME


def test_damaged_v1_state_is_reported(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = write_v1(data_dir)
    state.write_bytes(state.read_bytes()[:100])
    with pytest.raises(StoreError, match="damaged") as caught:
        open_store(data_dir)
    assert str(state) in str(caught.value)


def test_migration_interrupted_after_commit_is_finished(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    state = write_v1(data_dir)
    original = state.read_bytes()
    open_store(data_dir).close()
    # As if the process died between writing meta.json and renaming state.json.
    (data_dir / "state.json.v1-backup").rename(state)
    with open_store(data_dir) as store:
        assert store.orders.count() == len(V1_ORDERS)
    assert not state.exists()
    assert (data_dir / "state.json.v1-backup").read_bytes() == original


def test_migration_interrupted_before_commit_is_redone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    write_v1(data_dir)
    open_store(data_dir).close()
    # As if it died before meta.json: orders written, header missing, state.json in place.
    (data_dir / "state.json.v1-backup").rename(data_dir / "state.json")
    (data_dir / "meta.json").unlink()
    (data_dir / "meta.json.bak").unlink(missing_ok=True)
    with open_store(data_dir) as store:
        assert store.orders.count() == len(V1_ORDERS)
        assert store.meta.get("seen") == [1, 2]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with open_store(data_dir) as store:
        header = store.meta.header()
        assert header is not None
        store.meta.write_header({**header, "schema_version": CURRENT_SCHEMA + 1})
    with pytest.raises(StoreError, match="newer tf-console"):
        open_store(data_dir)
