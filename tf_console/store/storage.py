"""Durable JSON files in TinyDB's format, shared safely between processes.

Each state file is one TinyDB database with our :class:`AtomicJSONStorage`:

* a write never modifies the file in place: it writes a temp file in the same
  folder, fsyncs it, keeps the current version as ``name.bak`` (hard link, then
  ``os.replace``, so the main file exists at every moment), replaces the main file
  and fsyncs the folder.  A crash leaves either the old or the new version.
* a read parses the file once and caches the parsed dict keyed by
  (inode, mtime, size) of the open descriptor, so repeated reads are free and a
  write by another process (a new inode) is seen at once.
* the cached dicts are shared and must never be mutated.  TinyDB's ``Table.insert*``
  and ``Table.remove`` build new table dicts, which is why this package writes only
  through those two (see :meth:`TableFile.replace`) and never through
  ``Table.update``, which edits documents in place.

Writers hold the store's cross-process lock; readers need none because a file is
only ever replaced as a whole.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import json
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from tf_console.paths import FILE_MODE, fsync_dir
from tf_console.store.errors import StoreError, backup_path, damaged_file_message

Doc = dict[str, Any]
Tables = dict[str, dict[str, Doc]]
Signature = tuple[int, int, int]

_LINK_UNSUPPORTED = {errno.EPERM, errno.EXDEV, errno.EMLINK, errno.ENOTSUP, errno.EOPNOTSUPP}


def doc_id_for(key: str) -> int:
    """A stable 62-bit document id for a record key (TinyDB ids must be positive ints)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8, person=b"tf-console-id").digest()
    return (int.from_bytes(digest, "big") >> 2) or 1


def dumps_compact(data: Any) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"), check_circular=False).encode("utf-8")


def signature_of(st: os.stat_result) -> Signature:
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def file_signature(path: Path) -> Signature | None:
    try:
        return signature_of(os.stat(path))
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector during a bulk build of acyclic objects.

    Building 100,000 orders triggers full collections that each walk every live
    object; our documents and models hold no reference cycles, so the pause only
    saves time (it nearly halves a 100k export) and reference counting still frees.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class FileCache:
    """Parsed contents of state files.

    Small files (meta, hot shards, collections) stay cached; archive files are many
    and large, so only the most recently used few are kept.
    """

    def __init__(self, max_bounded: int = 4) -> None:
        self._lock = threading.Lock()
        self._pinned: dict[Path, tuple[Signature, Tables]] = {}
        self._bounded: OrderedDict[Path, tuple[Signature, Tables]] = OrderedDict()
        self._max_bounded = max_bounded

    def get(self, path: Path, signature: Signature) -> Tables | None:
        with self._lock:
            entry = self._pinned.get(path)
            if entry is None:
                entry = self._bounded.get(path)
                if entry is not None:
                    self._bounded.move_to_end(path)
            if entry is not None and entry[0] == signature:
                return entry[1]
            return None

    def put(self, path: Path, signature: Signature, data: Tables, *, bounded: bool) -> None:
        with self._lock:
            if not bounded:
                self._pinned[path] = (signature, data)
                return
            self._bounded[path] = (signature, data)
            self._bounded.move_to_end(path)
            while len(self._bounded) > self._max_bounded:
                self._bounded.popitem(last=False)

    def drop(self, path: Path) -> None:
        with self._lock:
            self._pinned.pop(path, None)
            self._bounded.pop(path, None)

    def clear(self) -> None:
        with self._lock:
            self._pinned.clear()
            self._bounded.clear()


def _validate_shape(data: Any) -> Tables:
    if not isinstance(data, dict):
        raise ValueError("the top level is not a JSON object")
    for name, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"table {name!r} is not a JSON object")
    return data


class AtomicJSONStorage(Storage):
    """A TinyDB storage that replaces its file atomically and caches parsed reads."""

    def __init__(
        self, path: Path, *, cache: FileCache, bounded_cache: bool = False, durable: bool = True
    ) -> None:
        super().__init__()
        self.path = path
        self.backup = backup_path(path)
        self._cache = cache
        self._bounded = bounded_cache
        self._durable = durable
        self._batch_owner: int | None = None
        self._pending: Tables | None = None
        self._dirty = False

    # -- reading -----------------------------------------------------------

    def read(self) -> Tables | None:
        if self._batch_owner == threading.get_ident():
            if self._pending is None:
                self._pending = self.snapshot()[1]
            return self._pending
        signature, data = self.snapshot()
        return data if signature is not None else None

    def snapshot(self) -> tuple[Signature | None, Tables]:
        """The committed contents and their signature (``None`` when the file does not exist).

        The outer dict is a fresh copy (TinyDB replaces table entries in it); the
        tables and documents are shared with the cache and must not be mutated.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if self.backup.exists():
                raise StoreError(
                    f"The state file {self.path} is missing but its backup {self.backup} exists. "
                    f"Copy the backup back (cp '{self.backup}' '{self.path}') and start again."
                ) from None
            return None, {}
        except OSError as exc:
            raise StoreError(
                f"The state file {self.path} cannot be opened ({exc.strerror}); "
                "check that it belongs to the user running tf-console and is readable (mode 0600)."
            ) from exc
        try:
            signature = signature_of(os.fstat(fd))
            cached = self._cache.get(self.path, signature)
            if cached is not None:
                return signature, dict(cached)
            raw = _read_all(fd)
        except OSError as exc:
            raise StoreError(
                f"The state file {self.path} cannot be read ({exc.strerror}); check the disk and try again."
            ) from exc
        finally:
            os.close(fd)
        data = self._parse(raw)
        self._cache.put(self.path, signature, data, bounded=self._bounded)
        return signature, dict(data)

    def _parse(self, raw: bytes) -> Tables:
        if not raw:
            raise StoreError(damaged_file_message(self.path, "it is empty"))
        try:
            return _validate_shape(json.loads(raw.decode("utf-8")))
        except UnicodeDecodeError:
            reason = "it is not UTF-8 text"
        except json.JSONDecodeError as exc:
            reason = f"invalid JSON at byte {exc.pos}"
        except ValueError as exc:
            reason = str(exc)
        raise StoreError(damaged_file_message(self.path, reason))

    # -- writing -----------------------------------------------------------

    def write(self, data: Tables) -> None:
        if self._batch_owner == threading.get_ident():
            self._pending = data
            self._dirty = True
            return
        self.commit(data)

    @contextlib.contextmanager
    def batch(self, *, refresh_backup: bool = False) -> Iterator[None]:
        """Collect every TinyDB write inside the block into one atomic file write.

        Call it with the store lock held.  Other threads keep reading the committed
        version until the block ends; an exception discards the pending changes.
        ``refresh_backup`` is passed to :meth:`commit`.
        """
        me = threading.get_ident()
        if self._batch_owner == me:
            yield  # nested: the outermost block commits
            return
        self._batch_owner, self._pending, self._dirty = me, None, False
        try:
            yield
            if self._dirty and self._pending is not None:
                self.commit(self._pending, refresh_backup=refresh_backup)
        finally:
            self._batch_owner, self._pending, self._dirty = None, None, False

    def commit(self, data: Tables, *, refresh_backup: bool = False) -> None:
        """Atomically replace the file with ``data``.

        Normally the previous version becomes the backup.  ``refresh_backup`` makes the
        backup a copy of the new version instead, for writes whose purpose is that the
        old content disappears (PII purge).
        """
        payload = dumps_compact(data)
        parent = self.path.parent
        fd, tmp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent)
        tmp = Path(tmp_name)
        try:
            try:
                os.fchmod(fd, FILE_MODE)
                _write_all(fd, payload)
                self._stamp(fd)
                if self._durable:
                    os.fsync(fd)
                signature = signature_of(os.fstat(fd))
            finally:
                os.close(fd)
            if not refresh_backup:
                self._link_backup()
            os.replace(tmp, self.path)
            if refresh_backup:
                self._link_backup()
            if self._durable:
                fsync_dir(parent)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            self._cache.drop(self.path)
            if isinstance(exc, OSError):
                raise StoreError(
                    f"Could not write the state file {self.path} ({exc.strerror or exc}); its previous "
                    "version is kept. Check free disk space and the folder's permissions, then try again."
                ) from exc
            raise
        self._cache.put(self.path, signature, data, bounded=self._bounded)

    def _stamp(self, fd: int) -> None:
        """Give the new version an mtime later than the current one's.

        The file system's clock is coarse (milliseconds) and inode numbers are reused,
        so two quick versions could otherwise share (inode, mtime, size) and a reader
        would take the newer one for the cached older one.
        """
        stamp = time.time_ns()
        current = file_signature(self.path)
        if current is not None and stamp <= current[1]:
            stamp = current[1] + 1
        os.utime(fd, ns=(stamp, stamp))

    def refresh_backup(self) -> None:
        """Make the backup a copy of the current version (after a purge of old content)."""
        self._link_backup()
        if self._durable:
            fsync_dir(self.path.parent)

    def _link_backup(self) -> None:
        """Make ``name.bak`` the current main file without a moment where either is missing."""
        staging = self.path.with_name(f".{self.backup.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            staging.unlink()
        try:
            os.link(self.path, staging)
        except FileNotFoundError:
            return  # first write of this file: nothing to keep yet
        except OSError as exc:
            if exc.errno not in _LINK_UNSUPPORTED:
                raise
            _copy_private(self.path, staging)
        os.replace(staging, self.backup)

    def close(self) -> None:
        self._cache.drop(self.path)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _copy_private(source: Path, target: Path) -> None:
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        _write_all(fd, source.read_bytes())
        os.fsync(fd)
    finally:
        os.close(fd)


class TableFile:
    """One state file holding one TinyDB table whose documents have explicit ids."""

    def __init__(
        self, path: Path, table_name: str, *, cache: FileCache, bounded_cache: bool, durable: bool
    ) -> None:
        self.path = path
        self.table_name = table_name
        self._db = TinyDB(
            path, storage=AtomicJSONStorage, cache=cache, bounded_cache=bounded_cache, durable=durable
        )
        storage = self._db.storage
        assert isinstance(storage, AtomicJSONStorage)
        self.storage = storage
        # No query cache: another process may change the file between two searches.
        self.table: Table = self._db.table(table_name, cache_size=0)

    def documents(self) -> dict[str, Doc]:
        """All documents by their id (as the string JSON keeps); shared, read only."""
        return self.storage.snapshot()[1].get(self.table_name, {})

    def documents_with_signature(self) -> tuple[Signature | None, dict[str, Doc]]:
        signature, tables = self.storage.snapshot()
        return signature, tables.get(self.table_name, {})

    def get(self, doc_id: int) -> Doc | None:
        return self.documents().get(str(doc_id))

    def replace(
        self, docs: Mapping[int, Doc], remove: Iterable[int] = (), *, refresh_backup: bool = False
    ) -> None:
        """Put ``docs`` (replacing any with the same id) and delete ``remove``, in one atomic write."""
        doomed = set(docs) | set(remove)
        if not doomed:
            return
        with self.storage.batch(refresh_backup=refresh_backup):
            self._apply(docs, doomed)

    def _apply(self, docs: Mapping[int, Doc], doomed: set[int]) -> None:
        self.table.remove(doc_ids=list(doomed))
        if docs:
            self.table.insert_multiple([Document(doc, doc_id=doc_id) for doc_id, doc in docs.items()])

    def close(self) -> None:
        self._db.close()
