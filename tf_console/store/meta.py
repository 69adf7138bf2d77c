"""Small named JSON values (cursors, bucket state, …) and the store's own header, in ``meta.json``."""

from __future__ import annotations

import json
from typing import Any

from tf_console.store.core import StoreCore
from tf_console.store.storage import Doc, TableFile, doc_id_for

META_FILE = "meta.json"
VALUES_TABLE = "values"
HEADER_TABLE = "store"
HEADER_ID = 1


class MetaValues:
    def __init__(self, core: StoreCore) -> None:
        self._core = core
        self._values: TableFile = core.table_file(core.data_dir / META_FILE, VALUES_TABLE)
        self._header: TableFile = core.table_file(core.data_dir / META_FILE, HEADER_TABLE)

    def get(self, name: str, default: Any = None) -> Any:
        doc = self._values.get(doc_id_for(name))
        if doc is None or doc.get("name") != name:
            return default
        return doc.get("value")

    def set(self, name: str, value: Any) -> None:
        json.dumps(value)  # fail here, before the lock, on a value JSON cannot hold
        with self._core.lock():
            doc_id = doc_id_for(name)
            stored = self._values.get(doc_id)
            new_doc = {"name": name, "value": value}
            if stored != new_doc:
                self._values.replace({doc_id: new_doc})

    def set_many(self, values: dict[str, Any]) -> None:
        json.dumps(values)
        with self._core.lock():
            changes = {doc_id_for(name): {"name": name, "value": value} for name, value in values.items()}
            current = self._values.documents()
            changes = {i: d for i, d in changes.items() if current.get(str(i)) != d}
            self._values.replace(changes)

    def delete(self, name: str) -> bool:
        with self._core.lock():
            doc_id = doc_id_for(name)
            if self._values.get(doc_id) is None:
                return False
            self._values.replace({}, [doc_id])
            return True

    def names(self) -> list[str]:
        return sorted(str(doc.get("name")) for doc in self._values.documents().values())

    # -- the store's header (schema version, key id) -----------------------------

    def header(self) -> Doc | None:
        return self._header.get(HEADER_ID)

    def write_header(self, header: Doc) -> None:
        with self._core.lock():
            self._header.replace({HEADER_ID: header})

    def exists(self) -> bool:
        return (self._core.data_dir / META_FILE).exists()

    def import_values(self, values: dict[str, Any]) -> None:
        self.set_many(values)
