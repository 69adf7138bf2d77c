"""Generic collections, meta values, append-only logs and change tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_helpers import PERSONALISATION, Note, note_key, open_store

from tf_console.store import Store, StoreError


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "data")
    yield opened
    opened.close()


def _notes(store: Store):  # type: ignore[no-untyped-def]
    return store.collection("notes", Note, note_key, encrypted_fields=frozenset({"secret"}))


def test_put_get_all_delete(store: Store) -> None:
    notes = _notes(store)
    notes.put(Note(note_id="b", body="second", secret=PERSONALISATION))
    notes.put_many([Note(note_id="a", body="first"), Note(note_id="c", count=3)])
    assert notes.get("b") == Note(note_id="b", body="second", secret=PERSONALISATION)
    assert [n.note_id for n in notes.all()] == ["a", "b", "c"]
    assert notes.keys() == ["a", "b", "c"] and notes.count() == 3
    assert notes.get("zzz") is None
    assert notes.delete("a") is True and notes.delete("a") is False
    assert [n.note_id for n in notes.all()] == ["b", "c"]
    raw = notes.path.read_text()
    assert PERSONALISATION not in raw and "second" in raw, "only the named fields are encrypted"


def test_put_of_an_equal_record_writes_nothing(store: Store) -> None:
    notes = _notes(store)
    notes.put(Note(note_id="a", secret=PERSONALISATION))
    token = store.change_token()
    notes.put(Note(note_id="a", secret=PERSONALISATION))
    assert not store.changed_since(token)
    notes.put(Note(note_id="a", secret="changed"))
    assert store.changed_since(token)
    assert notes.get("a") == Note(note_id="a", secret="changed")


def test_update_and_mutate(store: Store) -> None:
    notes = _notes(store)
    notes.put_many([Note(note_id="a"), Note(note_id="b"), Note(note_id="c", secret="s")])
    updated = notes.update("a", lambda n: n.model_copy(update={"count": n.count + 1}))
    assert updated.count == 1 and notes.get("a") == updated
    with pytest.raises(KeyError):
        notes.update("missing", lambda n: n)
    with pytest.raises(ValueError):
        notes.update("a", lambda n: n.model_copy(update={"note_id": "other"}))

    def reshape(records: dict[str, Note]) -> None:
        del records["b"]
        records["c"].count = 9  # in-place edits count as changes
        records["d"] = Note(note_id="d", secret="new")

    notes.mutate(reshape)
    assert [(n.note_id, n.count, n.secret) for n in notes.all()] == [
        ("a", 1, ""),
        ("c", 9, "s"),
        ("d", 0, "new"),
    ]
    with pytest.raises(ValueError):
        notes.mutate(lambda records: records.update(x=Note(note_id="y")))
    assert notes.keys() == ["a", "c", "d"], "a failed mutate writes nothing"


def test_collection_names_and_fields_are_checked(store: Store) -> None:
    for bad in ("", "../escape", "Upper", "a/b", "x" * 70):
        with pytest.raises(ValueError):
            store.collection(bad, Note, note_key)
    with pytest.raises(ValueError, match="no field"):
        store.collection("notes", Note, note_key, encrypted_fields=frozenset({"nope"}))


def test_meta_values(tmp_path: Path) -> None:
    with open_store(tmp_path / "data") as store:
        assert store.meta.get("cursor") is None and store.meta.get("cursor", 5) == 5
        store.meta.set("cursor", {"amazon": "2026-11-01T00:00:00Z"})
        store.meta.set_many({"a": 1, "b": [1, 2]})
        with pytest.raises(TypeError):
            store.meta.set("bad", object())
        assert store.meta.delete("a") is True and store.meta.delete("a") is False
    with open_store(tmp_path / "data") as store:
        assert store.meta.get("cursor") == {"amazon": "2026-11-01T00:00:00Z"}
        assert store.meta.names() == ["b", "cursor"]
        assert store.schema_version == 2


def test_logs_append_tail_and_rotate(store: Store) -> None:
    log = store.log("api-health", max_bytes=2_000, keep=2)
    for i in range(200):
        log.append({"i": i, "platform": "etsy", "ok": i % 3 != 0})
    assert [r["i"] for r in log.tail(3)] == [197, 198, 199]
    files = log.files()
    assert len(files) == 3, "current file plus two rotated ones"
    assert all(p.stat().st_size <= 2_000 + 100 for p in files)
    records = [r["i"] for r in log.iter()]
    assert records == list(range(records[0], 200)) and records[0] > 0, "oldest records rotated away"
    assert [r["i"] for r in log.tail(1000)] == records
    # A line cut short by a crash is skipped, the rest still reads.
    with open(log.path, "ab") as fh:
        fh.write(b'{"i": 200, "trunc')
    assert log.tail(1)[0]["i"] == 199
    log.append({"i": 201})
    assert [r["i"] for r in log.tail(2)] == [199, 201]


def test_log_records_with_common_types(store: Store) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from tf_console.models import Platform

    log = store.log("audit")
    log.append({"at": datetime(2026, 1, 2, tzinfo=UTC), "amount": Decimal("1.50"), "platform": Platform.EBAY})
    assert log.tail(1) == [{"at": "2026-01-02T00:00:00+00:00", "amount": "1.50", "platform": "ebay"}]
    with pytest.raises(TypeError):
        log.append({"bad": object()})
    assert json.loads(log.path.read_text().splitlines()[0])["platform"] == "ebay"


def test_change_token_tracks_state_files_only(store: Store) -> None:
    token = store.change_token()
    assert not store.changed_since(token)
    store.log("audit").append({"x": 1})
    assert not store.changed_since(token), "log appends do not count as state changes"
    store.meta.set("x", 1)
    assert store.changed_since(token)
    token = store.change_token()
    _notes(store).put(Note(note_id="a"))
    assert store.changed_since(token)


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    notes = _notes(store)
    store.close()
    for action in (
        lambda: store.meta.set("x", 1),
        lambda: store.orders.get("etsy", "1"),
        lambda: notes.put(Note(note_id="a")),
        lambda: store.collection("notes", Note, note_key),
    ):
        with pytest.raises(StoreError, match="closed"):
            action()
