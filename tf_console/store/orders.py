"""Orders: hot shards for open and recent orders, one archive file per month for the rest.

Layout under ``<data_dir>/orders/``:

* ``hot-00.json`` … ``hot-0f.json``: open orders and orders closed recently, spread
  over 16 shards by a hash of the order key, so one write rewrites a small file;
* ``archive-YYYY-MM.json``: shipped or cancelled orders whose last update is older
  than ``archive_after_days``, filed by the month of ``created_at`` — a re-poll of an
  archived order carries its ``created_at`` and so finds it without an index.

An order lives in exactly one file.  A move between files writes the destination
before removing the source, so a crash can leave a stale second copy but never lose
an order; readers look in the hot shard first, and the next write of that order
settles it.

Each document is the order's JSON with the buyer and every line's personalisation
replaced by one encrypted envelope (``_pii``); order id, SKU, status and tracking
stay in clear for queries.  Once an order's PII is purged it stays purged, even if a
re-poll brings the buyer back.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tf_console.crypto import Cipher
from tf_console.models import Order, Platform, order_key
from tf_console.store.core import StoreCore
from tf_console.store.errors import StoreError
from tf_console.store.storage import (
    Doc,
    Signature,
    TableFile,
    collector_paused,
    doc_id_for,
    file_signature,
)

TABLE = "orders"
PII_FIELD = "_pii"
HOT_SHARDS = 16
OPEN_STATUSES = frozenset({"pending", "unshipped", "partially_shipped"})
CLOSED_STATUSES = frozenset({"shipped", "cancelled"})
_ARCHIVE_NAME = re.compile(r"^archive-(\d{4})-(\d{2})\.json$")

Merge = Callable[[Order | None, Order], Order | None]
_Memo = dict[Path, dict[str, Doc]]


@dataclass(frozen=True)
class UpsertResult:
    """Order keys (``platform:order_id``) by what happened to them."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def split_order(order: Order) -> tuple[Doc, dict[str, Any] | None]:
    """The clear document and the PII that goes into the envelope (``None`` if there is none)."""
    clear = order.model_dump(mode="json")
    pii: dict[str, Any] = {}
    buyer = clear.get("buyer")
    clear["buyer"] = None
    if buyer is not None:
        pii["buyer"] = buyer
    personalisations = [item.get("personalisation", "") for item in clear["items"]]
    if any(personalisations):
        pii["personalisation"] = personalisations
        for item in clear["items"]:
            item["personalisation"] = ""
    return clear, pii or None


def encode_order_document(order: Order, cipher: Cipher) -> Doc:
    """The stored form of an order (also the v1 schema's form, which migrations read)."""
    clear, pii = split_order(order)
    if pii is not None:
        plaintext = json.dumps(pii, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        clear[PII_FIELD] = cipher.encrypt(plaintext.encode("utf-8"))
    return clear


def document_key(doc: Doc) -> str:
    return f"{doc['platform']}:{doc['order_id']}"


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def closed_at(doc: Doc) -> datetime:
    """When an order was shipped (its latest accepted shipment) or otherwise last changed."""
    if doc["status"] == "shipped":
        times = [s["shipped_at"] for s in doc.get("shipments") or () if s.get("state") != "rejected"]
        if times:
            return max(parse_time(t) for t in times)
    return parse_time(doc["updated_at"])


def month_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


@dataclass
class _Slot:
    """One order key during an upsert: where it is stored and what it becomes."""

    key: str
    doc_id: int
    source: TableFile | None
    stored: Doc | None
    current: Order | None = None
    decoded: bool = False
    changed: bool = False


class OrderRepository:
    def __init__(self, core: StoreCore) -> None:
        self._core = core
        self._archive_ids: dict[Path, tuple[Signature | None, frozenset[str]]] = {}

    # -- files -----------------------------------------------------------------

    def _hot(self, doc_id: int) -> TableFile:
        return self._file(self._core.orders_dir / f"hot-{doc_id % HOT_SHARDS:02x}.json")

    def _archive(self, month: str) -> TableFile:
        return self._file(self._core.orders_dir / f"archive-{month}.json")

    def _file(self, path: Path) -> TableFile:
        return self._core.table_file(path, TABLE, bounded=_is_archive(path))

    def hot_files(self) -> list[TableFile]:
        return [self._hot(shard) for shard in range(HOT_SHARDS)]

    def archive_files(self) -> list[TableFile]:
        """Existing archive files, oldest month first."""
        try:
            names = os.listdir(self._core.orders_dir)
        except FileNotFoundError:
            return []
        return [
            self._file(self._core.orders_dir / name) for name in sorted(names) if _ARCHIVE_NAME.match(name)
        ]

    def _ids_in(self, archive: TableFile) -> frozenset[str]:
        signature = file_signature(archive.path)
        known = self._archive_ids.get(archive.path)
        if known is not None and known[0] == signature:
            return known[1]
        signature, docs = archive.documents_with_signature()
        ids = frozenset(docs)
        self._archive_ids[archive.path] = (signature, ids)
        return ids

    # -- encoding ----------------------------------------------------------------

    def _decode(self, doc: Doc, where: Path, *, include_pii: bool = True) -> Order:
        token = doc.get(PII_FIELD)
        data = doc  # Order ignores the unknown "_pii" key, so a document without PII validates as it is
        if include_pii and token:
            pii = self._core.open_envelope(token, where)
            data = {**doc, "buyer": pii.get("buyer")}
            personalisations = pii.get("personalisation")
            if personalisations:
                data["items"] = [
                    {**item, "personalisation": text}
                    for item, text in zip(doc["items"], personalisations, strict=False)
                ]
        try:
            return Order.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where_in = ".".join(str(part) for part in first["loc"])
            raise StoreError(
                f"An order record in {where} is not valid ({where_in}: {first['msg']}); "
                "restore the file from its backup (.bak) and try again."
            ) from None

    def _encode(self, order: Order, previous: Doc | None, where: Path) -> Doc:
        clear, pii = split_order(order)
        if pii is not None:
            old_token = previous.get(PII_FIELD) if previous is not None else None
            if old_token and self._core.open_envelope(old_token, where) == pii:
                clear[PII_FIELD] = (
                    old_token  # same PII: keep the envelope, so an unchanged order stays byte-equal
                )
            else:
                clear[PII_FIELD] = self._core.seal(pii)
        return clear

    def _stored(self, table_file: TableFile, doc_id: int, key: str, memo: _Memo | None = None) -> Doc | None:
        if memo is None:
            doc = table_file.get(doc_id)
        else:
            docs = memo.get(table_file.path)
            if docs is None:
                docs = memo[table_file.path] = table_file.documents()
            doc = docs.get(str(doc_id))
        if doc is None:
            return None
        if document_key(doc) != key:
            raise StoreError(
                f"Two orders ({key} and {document_key(doc)}) share a storage id in {table_file.path}; "
                "this cannot be stored safely. Report it with both order ids."
            )
        return doc

    def _locate(
        self, key: str, created_at: datetime | None, memo: _Memo | None = None
    ) -> tuple[TableFile | None, Doc | None]:
        """Where ``key`` is stored.  ``memo`` keeps each file's documents for one locked batch,
        so a batch spread over many archive months reads each month once."""
        doc_id = doc_id_for(key)
        hot = self._hot(doc_id)
        doc = self._stored(hot, doc_id, key, memo)
        if doc is not None:
            return hot, doc
        if created_at is not None:
            archive = self._archive(month_of(created_at))
            doc = self._stored(archive, doc_id, key, memo)
            if doc is not None:
                return archive, doc
            return None, None
        for archive in reversed(self.archive_files()):
            if str(doc_id) in self._ids_in(archive):
                doc = self._stored(archive, doc_id, key, memo)
                if doc is not None:
                    return archive, doc
        return None, None

    def _home(self, order: Order, now: datetime) -> TableFile:
        if order.status.value in CLOSED_STATUSES and order.updated_at < now - self._core.archive_after:
            return self._archive(month_of(order.created_at))
        return self._hot(doc_id_for(order.key))

    # -- reading -----------------------------------------------------------------

    def get(
        self, platform: Platform | str, order_id: str, *, created_at: datetime | None = None
    ) -> Order | None:
        """The order, from its hot shard or an archive.

        ``created_at`` (when known) goes straight to the right archive month; without
        it the archives are searched newest first through a cached id index.
        """
        key = order_key(platform, order_id)
        source, doc = self._locate(key, created_at)
        if source is None or doc is None:
            return None
        return self._decode(doc, source.path)

    def iter_all(self, include_archive: bool = True, *, include_pii: bool = True) -> Iterator[Order]:
        """Every order once: hot shards, then archives oldest month first.

        Not a snapshot: an order changed meanwhile may come in its old or new version.
        An order re-opened (moved from an archive back to a hot shard) while we read is
        caught by re-reading the hot shards that changed.  ``include_pii=False`` skips
        decryption (buyer and personalisation come back empty).
        """
        for doc, where in self._documents(include_archive):
            yield self._decode(doc, where, include_pii=include_pii)

    def iter_documents(self, include_archive: bool = True) -> Iterator[Doc]:
        """Every order's stored document once, as :meth:`iter_all` walks them (read only).

        The clear part of an order as ``Order.model_dump(mode="json")`` wrote it, with
        the buyer empty and the PII envelope under ``_pii``: bulk readers (export) use
        it to skip model validation.
        """
        for doc, _ in self._documents(include_archive):
            yield doc

    def _documents(self, include_archive: bool) -> Iterator[tuple[Doc, Path]]:
        self._core.ensure_open()
        seen: set[str] = set()
        hot_signatures: list[tuple[TableFile, Signature | None]] = []
        for hot in self.hot_files():
            signature, docs = hot.documents_with_signature()
            hot_signatures.append((hot, signature))
            yield from _unseen(docs, hot.path, seen)
        if not include_archive:
            return
        for archive in self.archive_files():
            yield from _unseen(archive.documents(), archive.path, seen)
        for hot, signature in hot_signatures:
            if file_signature(hot.path) != signature:
                yield from _unseen(hot.documents(), hot.path, seen)

    def open_orders(self) -> list[Order]:
        """Orders still to be dealt with (pending, unshipped, partially shipped), oldest first."""
        found: list[Order] = []
        for hot in self.hot_files():
            for doc in hot.documents().values():
                if doc["status"] in OPEN_STATUSES:
                    found.append(self._decode(doc, hot.path))
        found.sort(key=lambda order: (order.created_at, order.key))
        return found

    def count(self, include_archive: bool = True) -> int:
        ids: set[str] = set()
        for hot in self.hot_files():
            ids.update(hot.documents())
        if include_archive:
            for archive in self.archive_files():
                ids.update(self._ids_in(archive))
        return len(ids)

    # -- writing -----------------------------------------------------------------

    def upsert_many(self, orders: Iterable[Order], merge: Merge | None = None) -> UpsertResult:
        """Insert or update orders: one locked read-modify-write per touched file.

        ``merge(existing, incoming)`` returns what to store (``None``: leave it as it
        is); without it the incoming order replaces the stored one.  An order found in
        an archive is updated there, or moved back to its hot shard if it re-opened.
        """
        incoming = list(orders)
        if not incoming:
            return UpsertResult()
        with self._core.lock(), collector_paused():
            now = self._core.clock.now()
            slots: dict[str, _Slot] = {}
            memo: _Memo = {}
            for order in incoming:
                key = order.key
                slot = slots.get(key)
                if slot is None:
                    source, stored = self._locate(key, order.created_at, memo)
                    slot = slots[key] = _Slot(key, doc_id_for(key), source, stored)
                if merge is None:
                    result: Order | None = order
                else:
                    if not slot.decoded:
                        slot.current = self._decode(slot.stored, _path(slot.source)) if slot.stored else None
                        slot.decoded = True
                    result = merge(slot.current, order)
                if result is None:
                    continue
                if result.key != key:
                    raise ValueError(f"merge turned order {key} into {result.key}; it must keep the key")
                slot.current, slot.decoded, slot.changed = _keep_redaction(slot.stored, result), True, True
            return self._apply_slots(slots.values(), now)

    def _apply_slots(self, slots: Iterable[_Slot], now: datetime) -> UpsertResult:
        result = UpsertResult()
        puts: dict[Path, dict[int, Doc]] = {}
        removals: dict[Path, set[int]] = {}
        for slot in slots:
            if not slot.changed or slot.current is None:
                result.unchanged.append(slot.key)
                continue
            order = slot.current
            if slot.source is None or slot.stored is None:
                destination = self._home(order, now)
                new_doc = self._encode(order, None, destination.path)
                result.inserted.append(slot.key)
            else:
                new_doc = self._encode(order, slot.stored, slot.source.path)
                if new_doc == slot.stored:
                    result.unchanged.append(slot.key)
                    continue
                result.updated.append(slot.key)
                stays = not _is_archive(slot.source.path) or not order.is_open
                destination = slot.source if stays else self._hot(slot.doc_id)
                if destination is not slot.source:
                    removals.setdefault(slot.source.path, set()).add(slot.doc_id)
            puts.setdefault(destination.path, {})[slot.doc_id] = new_doc
        self._write(puts, removals, archives_first=False)
        return result

    def _write(
        self,
        puts: dict[Path, dict[int, Doc]],
        removals: dict[Path, set[int]],
        *,
        archives_first: bool,
        refresh_backup: bool = False,
    ) -> None:
        """Write the destination of every move before its source (see the module docstring)."""
        paths = set(puts) | set(removals)
        hot = sorted(p for p in paths if not _is_archive(p))
        archives = sorted(p for p in paths if _is_archive(p))
        for path in archives + hot if archives_first else hot + archives:
            self._file(path).replace(
                puts.get(path, {}), removals.get(path, ()), refresh_backup=refresh_backup
            )

    def update(self, platform: Platform | str, order_id: str, fn: Callable[[Order], Order]) -> Order:
        """Apply ``fn`` to the stored order under the lock and store the result.

        Raises ``KeyError`` when there is no such order.
        """
        key = order_key(platform, order_id)
        with self._core.lock():
            source, stored = self._locate(key, None)
            if source is None or stored is None:
                raise KeyError(key)
            updated = fn(self._decode(stored, source.path))
            if updated.key != key:
                raise ValueError(f"the update turned order {key} into {updated.key}; it must keep the key")
            slot = _Slot(key, doc_id_for(key), source, stored, _keep_redaction(stored, updated), True, True)
            self._apply_slots([slot], self._core.clock.now())
            assert slot.current is not None
            return slot.current

    def archive_old(self, now: datetime | None = None) -> int:
        """Move shipped/cancelled orders not updated for ``archive_after_days`` to the archives."""
        with self._core.lock():
            cutoff = (now or self._core.clock.now()) - self._core.archive_after
            puts: dict[Path, dict[int, Doc]] = {}
            removals: dict[Path, set[int]] = {}
            moved = 0
            for hot in self.hot_files():
                for doc_id, doc in hot.documents().items():
                    if doc["status"] in CLOSED_STATUSES and parse_time(doc["updated_at"]) < cutoff:
                        archive = self._archive(month_of(parse_time(doc["created_at"])))
                        puts.setdefault(archive.path, {})[int(doc_id)] = doc
                        removals.setdefault(hot.path, set()).add(int(doc_id))
                        moved += 1
            self._write(puts, removals, archives_first=True)
            return moved

    def purge_pii(self, older_than: timedelta, now: datetime | None = None) -> int:
        """Drop the PII of orders shipped (or cancelled) longer ago than ``older_than``.

        Their envelope is removed and ``pii_redacted`` set; the backup of each rewritten
        file is refreshed too, so the purged envelopes do not linger in ``.bak`` files.
        Returns how many orders were redacted.
        """
        with self._core.lock():
            cutoff = (now or self._core.clock.now()) - older_than
            redacted = 0
            for table_file in self.hot_files() + self.archive_files():
                if _is_archive(table_file.path) and _archive_month_start(table_file.path) > cutoff:
                    continue  # created after the cutoff, so shipped after it as well
                changes: dict[int, Doc] = {}
                for doc_id, doc in table_file.documents().items():
                    if (
                        doc["status"] in CLOSED_STATUSES
                        and not doc.get("pii_redacted")
                        and closed_at(doc) < cutoff
                    ):
                        purged = {name: value for name, value in doc.items() if name != PII_FIELD}
                        purged["pii_redacted"] = True
                        changes[int(doc_id)] = purged
                if changes:
                    table_file.replace(changes, refresh_backup=True)
                    redacted += len(changes)
            if redacted:
                # A hot shard's backup may still hold an order archived since, envelope and all.
                for hot in self.hot_files():
                    hot.storage.refresh_backup()
            return redacted

    def import_documents(self, docs: Iterable[Doc], where: Path) -> int:
        """Store already-encoded documents where they belong (the schema migration uses this)."""
        now = self._core.clock.now()
        puts: dict[Path, dict[int, Doc]] = {}
        count = 0
        for doc in docs:
            order = self._decode(doc, where, include_pii=False)
            destination = self._home(order, now)
            puts.setdefault(destination.path, {})[doc_id_for(order.key)] = doc
            count += 1
        self._write(puts, {}, archives_first=True)
        return count


def _unseen(docs: dict[str, Doc], where: Path, seen: set[str]) -> Iterator[tuple[Doc, Path]]:
    for doc in docs.values():
        key = document_key(doc)
        if key not in seen:
            seen.add(key)
            yield doc, where


def _is_archive(path: Path) -> bool:
    return path.name.startswith("archive-")


def _archive_month_start(path: Path) -> datetime:
    match = _ARCHIVE_NAME.match(path.name)
    assert match is not None
    return datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=UTC)


def _path(source: TableFile | None) -> Path:
    assert source is not None
    return source.path


def _keep_redaction(stored: Doc | None, order: Order) -> Order:
    """Once purged, PII stays purged, whatever a re-poll or a caller brings back."""
    if stored is None or not stored.get("pii_redacted"):
        return order
    if order.pii_redacted and order.buyer is None and not any(item.personalisation for item in order.items):
        return order
    return order.model_copy(
        update={
            "buyer": None,
            "pii_redacted": True,
            "items": [item.model_copy(update={"personalisation": ""}) for item in order.items],
        }
    )
