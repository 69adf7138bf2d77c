"""Generic keyed collections of pydantic models, one state file each.

A record is stored as its JSON with an explicit document id derived from its key
(``_key`` is kept to rule out hash collisions).  The fields named in
``encrypted_fields`` go into one encrypted envelope per record (``_pii``) when any of
them has a value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from tf_console.store.core import StoreCore
from tf_console.store.errors import StoreError
from tf_console.store.storage import Doc, TableFile, doc_id_for

M = TypeVar("M", bound=BaseModel)

KEY_FIELD = "_key"
PII_FIELD = "_pii"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


def check_name(name: str, what: str) -> str:
    if not _NAME.match(name) or ".." in name:
        raise ValueError(
            f"{what} name {name!r} must be 1-64 characters of lowercase letters, digits, '_', '.' or '-'"
        )
    return name


class Collection(Generic[M]):
    """Records of one model keyed by ``key(record)``; blocking, thread-safe."""

    def __init__(
        self,
        core: StoreCore,
        name: str,
        model: type[M],
        key: Callable[[M], str],
        encrypted_fields: frozenset[str] = frozenset(),
    ) -> None:
        unknown = set(encrypted_fields) - set(model.model_fields)
        if unknown:
            raise ValueError(f"{model.__name__} has no field(s) {sorted(unknown)} to encrypt")
        self.name = check_name(name, "collection")
        self._core = core
        self._model = model
        self._key = key
        self._encrypted = frozenset(encrypted_fields)
        self._file: TableFile = core.table_file(core.collections_dir / f"{name}.json", name)

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, {self._model.__name__})"

    @property
    def path(self) -> Path:
        return self._file.path

    # -- encoding ----------------------------------------------------------------

    def _encode(self, record: M, previous: Doc | None) -> Doc:
        clear = record.model_dump(mode="json")
        key = self._key(record)
        secret = {name: clear.pop(name) for name in sorted(self._encrypted) if name in clear}
        if any(secret.values()):
            old_token = previous.get(PII_FIELD) if previous is not None else None
            if old_token and self._core.open_envelope(old_token, self.path) == secret:
                clear[PII_FIELD] = old_token
            else:
                clear[PII_FIELD] = self._core.seal(secret)
        else:
            clear.update(secret)
        clear[KEY_FIELD] = key
        return clear

    def _decode(self, doc: Doc) -> M:
        data = {name: value for name, value in doc.items() if name not in (KEY_FIELD, PII_FIELD)}
        token = doc.get(PII_FIELD)
        if token:
            data.update(self._core.open_envelope(token, self.path))
        try:
            return self._model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise StoreError(
                f"A {self.name} record in {self.path} is not valid ({where}: {first['msg']}); "
                "restore the file from its backup (.bak) and try again."
            ) from None

    def _stored(self, docs: dict[str, Doc], key: str) -> tuple[int, Doc | None]:
        doc_id = doc_id_for(key)
        doc = docs.get(str(doc_id))
        if doc is not None and doc.get(KEY_FIELD) != key:
            raise StoreError(
                f"Two {self.name} records ({key!r} and {doc.get(KEY_FIELD)!r}) share a storage id in "
                f"{self.path}; this cannot be stored safely. Report it with both keys."
            )
        return doc_id, doc

    # -- API -------------------------------------------------------------------

    def get(self, key: str) -> M | None:
        _, doc = self._stored(self._file.documents(), key)
        return None if doc is None else self._decode(doc)

    def all(self) -> list[M]:
        """Every record, in key order."""
        docs = sorted(self._file.documents().values(), key=lambda doc: str(doc.get(KEY_FIELD, "")))
        return [self._decode(doc) for doc in docs]

    def keys(self) -> list[str]:
        return sorted(str(doc.get(KEY_FIELD, "")) for doc in self._file.documents().values())

    def count(self) -> int:
        return len(self._file.documents())

    def put(self, record: M) -> None:
        self.put_many([record])

    def put_many(self, records: Iterable[M]) -> None:
        """Insert or replace records in one atomic write (none if nothing changed)."""
        batch = list(records)
        if not batch:
            return
        with self._core.lock():
            docs = self._file.documents()
            changes: dict[int, Doc] = {}
            for record in batch:
                doc_id, stored = self._stored(docs, self._key(record))
                new_doc = self._encode(record, changes.get(doc_id, stored))
                if new_doc != stored:
                    changes[doc_id] = new_doc
                else:
                    changes.pop(doc_id, None)
            self._file.replace(changes)

    def delete(self, key: str) -> bool:
        with self._core.lock():
            doc_id, stored = self._stored(self._file.documents(), key)
            if stored is None:
                return False
            self._file.replace({}, [doc_id])
            return True

    def update(self, key: str, fn: Callable[[M], M]) -> M:
        """Apply ``fn`` to the record under the lock and store the result; ``KeyError`` if absent."""
        with self._core.lock():
            doc_id, stored = self._stored(self._file.documents(), key)
            if stored is None:
                raise KeyError(key)
            updated = fn(self._decode(stored))
            if self._key(updated) != key:
                raise ValueError(f"the update changed the key of {self.name} record {key!r}")
            new_doc = self._encode(updated, stored)
            if new_doc != stored:
                self._file.replace({doc_id: new_doc})
            return updated

    def mutate(self, fn: Callable[[dict[str, M]], None]) -> None:
        """Read-modify-write of the whole collection under the lock: ``fn`` edits the dict in place."""
        with self._core.lock():
            docs = self._file.documents()
            stored_by_key = {str(doc.get(KEY_FIELD)): doc for doc in docs.values()}
            records = {key: self._decode(doc) for key, doc in stored_by_key.items()}
            fn(records)
            changes: dict[int, Doc] = {}
            for key, record in records.items():
                if self._key(record) != key:
                    raise ValueError(f"{self.name} record filed under {key!r} has key {self._key(record)!r}")
                stored = stored_by_key.get(key)
                new_doc = self._encode(record, stored)
                if new_doc != stored:
                    changes[doc_id_for(key)] = new_doc
            removed = [doc_id_for(key) for key in stored_by_key if key not in records]
            self._file.replace(changes, removed)

    def import_documents(self, docs: Iterable[dict[str, Any]]) -> int:
        """Store already-encoded records (the schema migration uses this)."""
        changes = {doc_id_for(str(doc[KEY_FIELD])): doc for doc in docs}
        self._file.replace(changes)
        return len(changes)
