"""What every part of the store shares: folders, the lock, the file cache and the cipher."""

from __future__ import annotations

import contextlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from tf_console.clock import Clock
from tf_console.crypto import Cipher, DecryptionError
from tf_console.paths import FILE_MODE
from tf_console.store.errors import StoreError
from tf_console.store.storage import FileCache, TableFile

LOCK_FILE_NAME = "store.lock"
_PLAINTEXT_CACHE_SIZE = 20_000


class StoreCore:
    def __init__(
        self,
        data_dir: Path,
        cipher: Cipher,
        clock: Clock,
        *,
        archive_after_days: int,
        durable: bool,
        lock_timeout: float,
    ) -> None:
        self.data_dir = data_dir
        self.orders_dir = data_dir / "orders"
        self.collections_dir = data_dir / "collections"
        self.logs_dir = data_dir / "logs"
        self.cipher = cipher
        self.clock = clock
        self.archive_after = timedelta(days=archive_after_days)
        self.durable = durable
        self.cache = FileCache()
        self._files: dict[tuple[Path, str], TableFile] = {}
        self._files_lock = threading.Lock()
        # The thread mutex comes first so a single process never races itself for the
        # file lock; the file lock orders us against other processes.
        self._mutex = threading.RLock()
        self.lock_path = data_dir / LOCK_FILE_NAME
        self._lock_timeout = lock_timeout
        self._file_lock = FileLock(
            self.lock_path, mode=FILE_MODE, thread_local=False, timeout=lock_timeout, poll_interval=0.002
        )
        self._plaintexts: OrderedDict[str, Any] = OrderedDict()
        self._plaintexts_lock = threading.Lock()
        self.closed = False

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The cross-process lock; re-entrant within a thread."""
        self.ensure_open()
        with self._mutex:
            try:
                self._file_lock.acquire()
            except Timeout:
                raise StoreError(
                    f"Another tf-console process has held the state lock {self.lock_path} for more than "
                    f"{self._lock_timeout:g} s. Wait for it to finish (or stop it) and try again."
                ) from None
            try:
                yield
            finally:
                self._file_lock.release()

    def ensure_open(self) -> None:
        if self.closed:
            raise StoreError("The store was closed; open it again before using it.")

    def table_file(self, path: Path, table_name: str, *, bounded: bool = False) -> TableFile:
        self.ensure_open()
        with self._files_lock:
            found = self._files.get((path, table_name))
            if found is None:
                found = TableFile(
                    path, table_name, cache=self.cache, bounded_cache=bounded, durable=self.durable
                )
                self._files[(path, table_name)] = found
            return found

    # -- envelopes ----------------------------------------------------------

    def seal(self, value: Any) -> str:
        """Encrypt a JSON value into one envelope."""
        plaintext = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        token = self.cipher.encrypt(plaintext.encode("utf-8"))
        self._remember(token, value)
        return token

    def open_envelope(self, token: str, where: Path) -> Any:
        """The JSON value inside an envelope (shared: do not mutate)."""
        with self._plaintexts_lock:
            if token in self._plaintexts:
                self._plaintexts.move_to_end(token)
                return self._plaintexts[token]
        try:
            value = json.loads(self.cipher.decrypt(token).decode("utf-8"))
        except DecryptionError as exc:
            raise StoreError(
                f"Encrypted data in {where} cannot be decrypted with the data key at hand "
                f"(key id {self.cipher.key_id}): {exc}. Restore the key the data was written with."
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise StoreError(
                f"Encrypted data in {where} decrypts to something unreadable; restore the file from its "
                "backup (.bak) and try again."
            ) from None
        self._remember(token, value)
        return value

    def _remember(self, token: str, value: Any) -> None:
        with self._plaintexts_lock:
            self._plaintexts[token] = value
            while len(self._plaintexts) > _PLAINTEXT_CACHE_SIZE:
                self._plaintexts.popitem(last=False)

    def close(self) -> None:
        with self._mutex:
            self.closed = True
            with self._files_lock:
                for table_file in self._files.values():
                    table_file.close()
                self._files.clear()
            self.cache.clear()
            with self._plaintexts_lock:
                self._plaintexts.clear()
