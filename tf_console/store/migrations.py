"""Schema versions of the state folder and the migrations between them.

Version 1 was the stock TinyDB layout: one ``state.json`` (``JSONStorage``'s default
format) with the tables ``orders`` (the order documents of :mod:`.orders`, envelope
included, auto ids), ``jobs`` (collection documents, ``_key`` or ``job_id``) and
``meta`` (``{"name": …, "value": …}``, the data key's id under ``key_id``).

Version 2 is the layout of :mod:`tf_console.store` (see the package docstring).
Moving 1 → 2 writes every v2 file first and ``meta.json`` last (its header is the
commit point), then renames ``state.json`` to ``state.json.v1-backup``; a crash at
any step is finished on the next open.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tf_console.paths import fsync_dir
from tf_console.store.collection import KEY_FIELD
from tf_console.store.collection import PII_FIELD as RECORD_PII_FIELD
from tf_console.store.errors import StoreError, damaged_file_message
from tf_console.store.orders import PII_FIELD as ORDER_PII_FIELD
from tf_console.store.orders import document_key
from tf_console.store.storage import Doc, doc_id_for

if TYPE_CHECKING:
    from tf_console.store.store import Store

CURRENT_SCHEMA = 2
V1_STATE_FILE = "state.json"
V1_BACKUP_SUFFIX = ".v1-backup"


def wrong_key_message(data_dir: Path, stored_key_id: str, current_key_id: str) -> str:
    return (
        f"The data in {data_dir} was encrypted with the data key whose id is {stored_key_id}, but the key "
        f"at hand has id {current_key_id}. Restore the key {stored_key_id} (from the keyring or your "
        "backup of the key file) rather than creating a new one, then start again; nothing was changed."
    )


def migrate_v1_to_v2(store: Store) -> None:
    state = store.data_dir / V1_STATE_FILE
    tables = _read_v1(state)
    orders = list(_documents(tables, "orders", state))
    jobs = list(_documents(tables, "jobs", state))
    values: dict[str, Any] = {}
    for doc in _documents(tables, "meta", state):
        if isinstance(doc.get("name"), str):
            values[doc["name"]] = doc.get("value")
    stored_key_id = values.pop("key_id", None)
    cipher = store.cipher
    if isinstance(stored_key_id, str):
        if stored_key_id != cipher.key_id:
            raise StoreError(wrong_key_message(store.data_dir, stored_key_id, cipher.key_id))
    else:
        # No key id recorded: prove the key at hand opens the data before adopting it.
        token = next(
            (doc[field] for doc, field in _envelopes(orders, jobs) if isinstance(doc.get(field), str)), None
        )
        if token is not None:
            store.core.open_envelope(token, state)

    latest: dict[str, Doc] = {}
    for doc in orders:
        try:
            key = document_key(doc)
        except KeyError:
            raise StoreError(
                f"An order in {state} has no platform or order id; restore {state} from your backups."
            ) from None
        kept = latest.get(key)
        if kept is None or str(doc.get("updated_at", "")) >= str(kept.get("updated_at", "")):
            latest[key] = doc
    store.orders.import_documents(latest.values(), state)

    job_docs: dict[int, Doc] = {}
    for doc in jobs:
        job_key = doc.get(KEY_FIELD) or doc.get("job_id")
        if not isinstance(job_key, str):
            raise StoreError(f"A print job in {state} has no job id; restore {state} from your backups.")
        job_docs[doc_id_for(job_key)] = {**doc, KEY_FIELD: job_key}
    store.core.table_file(store.core.collections_dir / "jobs.json", "jobs").replace(job_docs)

    if values:
        store.meta.set_many(values)
    store.meta.write_header(
        {
            "schema_version": 2,
            "key_id": cipher.key_id,
            "migrated_from": 1,
            "migrated_at": store.core.clock.now().isoformat(),
        }
    )
    retire_v1_state(store.data_dir)


def retire_v1_state(data_dir: Path) -> Path | None:
    """Rename a migrated ``state.json`` out of the way, never over an earlier backup."""
    state = data_dir / V1_STATE_FILE
    if not state.exists():
        return None
    target = data_dir / (V1_STATE_FILE + V1_BACKUP_SUFFIX)
    number = 1
    while target.exists():
        target = data_dir / f"{V1_STATE_FILE}{V1_BACKUP_SUFFIX}.{number}"
        number += 1
    os.replace(state, target)
    fsync_dir(data_dir)
    return target


def _read_v1(state: Path) -> dict[str, Any]:
    try:
        raw = state.read_bytes()
    except OSError as exc:
        raise StoreError(
            f"The old state file {state} cannot be read ({exc.strerror}); check its owner and permissions."
        ) from exc
    try:
        data = json.loads(raw.decode("utf-8")) if raw.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise StoreError(damaged_file_message(state, f"cannot be parsed: {type(exc).__name__}")) from None
    if not isinstance(data, dict):
        raise StoreError(damaged_file_message(state, "the top level is not a JSON object"))
    return data


def _documents(tables: dict[str, Any], name: str, state: Path) -> list[Doc]:
    table = tables.get(name, {})
    if not isinstance(table, dict) or not all(isinstance(doc, dict) for doc in table.values()):
        raise StoreError(damaged_file_message(state, f"its table {name!r} is not a set of documents"))
    return list(table.values())


def _envelopes(orders: list[Doc], jobs: list[Doc]) -> list[tuple[Doc, str]]:
    return [(doc, ORDER_PII_FIELD) for doc in orders] + [(doc, RECORD_PII_FIELD) for doc in jobs]


MIGRATIONS: dict[int, Callable[[Store], None]] = {1: migrate_v1_to_v2}
"""``MIGRATIONS[n]`` brings a version-``n`` folder to version ``n + 1``."""
