"""The store: opening, schema checks, and access to every part of the state folder."""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TypeVar

from pydantic import BaseModel

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.crypto import Cipher
from tf_console.paths import private_mkdir
from tf_console.store.collection import Collection, check_name
from tf_console.store.core import StoreCore
from tf_console.store.errors import StoreError, damaged_file_message
from tf_console.store.logs import AppendLog
from tf_console.store.meta import META_FILE, MetaValues
from tf_console.store.migrations import (
    CURRENT_SCHEMA,
    MIGRATIONS,
    V1_STATE_FILE,
    retire_v1_state,
    wrong_key_message,
)
from tf_console.store.orders import OrderRepository

M = TypeVar("M", bound=BaseModel)
ChangeToken = tuple[tuple[str, int, int, int], ...]

_TEMP_FILE = re.compile(r"^\..+\.tmp$")


class Store:
    """The durable encrypted state under ``data_dir``.  Blocking; thread-safe.

    Async callers go through ``anyio.to_thread.run_sync``.  Use :meth:`open`.
    """

    def __init__(self, core: StoreCore) -> None:
        self.core = core
        self.orders = OrderRepository(core)
        self.meta = MetaValues(core)
        self._logs: dict[str, AppendLog] = {}

    @classmethod
    def open(
        cls,
        data_dir: Path,
        cipher: Cipher,
        *,
        clock: Clock = SYSTEM_CLOCK,
        archive_after_days: int = 30,
        durable: bool = True,
        lock_timeout: float = 30.0,
    ) -> Store:
        """Open (creating, migrating or checking) the state folder; raises :class:`StoreError`.

        ``durable=False`` skips fsync: writes stay atomic against a killed process but
        not against a power cut (for throwaway folders such as the demo's).
        """
        if archive_after_days < 1:
            raise ValueError("archive_after_days must be at least 1")
        data_dir = Path(data_dir)
        core = StoreCore(
            data_dir,
            cipher,
            clock,
            archive_after_days=archive_after_days,
            durable=durable,
            lock_timeout=lock_timeout,
        )
        try:
            for folder in (data_dir, core.orders_dir, core.collections_dir, core.logs_dir):
                private_mkdir(folder)
        except OSError as exc:
            raise StoreError(
                f"The state folder {data_dir} cannot be created or secured ({exc.strerror}); "
                "set TF_DATA_DIR to a folder you own."
            ) from exc
        store = cls(core)
        try:
            with store.lock():
                store._sweep_temp_files()
                store._prepare_schema()
        except BaseException:
            store.close()
            raise
        return store

    def __repr__(self) -> str:
        return f"Store({str(self.data_dir)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.core.close()

    # -- parts --------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.core.data_dir

    @property
    def cipher(self) -> Cipher:
        return self.core.cipher

    @property
    def schema_version(self) -> int:
        header = self.meta.header() or {}
        return int(header.get("schema_version", 0))

    def collection(
        self,
        name: str,
        model: type[M],
        key: Callable[[M], str],
        encrypted_fields: frozenset[str] = frozenset(),
    ) -> Collection[M]:
        """A keyed collection of ``model`` records stored in ``collections/<name>.json``."""
        self.core.ensure_open()
        return Collection(self.core, name, model, key, encrypted_fields)

    def log(
        self, name: str, max_bytes: int = 1_000_000, keep: int = 3, *, durable: bool = False
    ) -> AppendLog:
        """Append-only JSON lines ``logs/<name>.jsonl``, rotated at ``max_bytes``, ``keep`` old files."""
        self.core.ensure_open()
        check_name(name, "log")
        found = self._logs.get(name)
        if found is None or (found.max_bytes, found.keep) != (max_bytes, keep):
            found = AppendLog(
                self.core.logs_dir / f"{name}.jsonl",
                self.lock,
                max_bytes=max_bytes,
                keep=keep,
                durable=durable,
            )
            self._logs[name] = found
        return found

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The cross-process lock, re-entrant within a thread."""
        with self.core.lock():
            yield

    # -- change detection ------------------------------------------------------------

    def change_token(self) -> ChangeToken:
        """A cheap fingerprint of every state file (not the logs): equal tokens, nothing changed."""
        entries: list[tuple[str, int, int, int]] = []
        for folder in (self.data_dir, self.core.orders_dir, self.core.collections_dir):
            try:
                scan = os.scandir(folder)
            except FileNotFoundError:
                continue
            with scan:
                for entry in scan:
                    if entry.name.endswith(".json") and not entry.name.startswith("."):
                        try:
                            st = entry.stat()
                        except FileNotFoundError:
                            continue
                        entries.append((entry.path, st.st_ino, st.st_mtime_ns, st.st_size))
        entries.sort()
        return tuple(entries)

    def changed_since(self, token: ChangeToken) -> bool:
        return self.change_token() != token

    def state_files(self) -> list[Path]:
        """Every state file (for ``doctor``): meta, order shards and archives, collections, logs."""
        found = [self.data_dir / META_FILE] if (self.data_dir / META_FILE).exists() else []
        for folder in (self.core.orders_dir, self.core.collections_dir, self.core.logs_dir):
            with contextlib.suppress(FileNotFoundError):
                found.extend(sorted(p for p in folder.iterdir() if not p.name.startswith(".")))
        return found

    # -- opening ------------------------------------------------------------------------

    def _sweep_temp_files(self) -> None:
        """Remove temp files a killed writer left behind (we hold the lock: nobody is writing)."""
        for folder, prefix in (
            (self.core.orders_dir, "."),
            (self.core.collections_dir, "."),
            (self.data_dir, f".{META_FILE}."),
        ):
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.name.startswith(prefix) and _TEMP_FILE.match(entry.name) and entry.is_file():
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)

    def _prepare_schema(self) -> None:
        header = self.meta.header()
        meta_path = self.data_dir / META_FILE
        if header is None:
            if meta_path.exists():
                raise StoreError(damaged_file_message(meta_path, "it has no store header"))
            if (self.data_dir / V1_STATE_FILE).exists():
                version = 1
            elif self._has_v2_files():
                raise StoreError(
                    f"The state folder {self.data_dir} holds orders or collections but its {META_FILE} is "
                    f"missing. Restore {META_FILE} (a copy may be at {meta_path}.bak) and start again."
                )
            else:
                self.meta.write_header(
                    {
                        "schema_version": CURRENT_SCHEMA,
                        "key_id": self.cipher.key_id,
                        "created_at": self.core.clock.now().isoformat(),
                    }
                )
                return
        else:
            stored_version = header.get("schema_version")
            if not isinstance(stored_version, int) or stored_version < 1:
                raise StoreError(damaged_file_message(meta_path, "its schema version is missing"))
            version = stored_version
            if version > CURRENT_SCHEMA:
                raise StoreError(
                    f"The state in {self.data_dir} was written by a newer tf-console (schema version "
                    f"{version}; this one knows up to {CURRENT_SCHEMA}). Upgrade tf-console."
                )
            stored_key_id = header.get("key_id")
            if stored_key_id != self.cipher.key_id:
                raise StoreError(wrong_key_message(self.data_dir, str(stored_key_id), self.cipher.key_id))
        while version < CURRENT_SCHEMA:
            MIGRATIONS[version](self)
            version += 1
        if header is not None and header.get("migrated_from") == 1:
            retire_v1_state(self.data_dir)  # a crash after the migration committed

    def _has_v2_files(self) -> bool:
        for folder in (self.core.orders_dir, self.core.collections_dir):
            with contextlib.suppress(FileNotFoundError):
                if any(p.suffix == ".json" or p.name.endswith(".json.bak") for p in folder.iterdir()):
                    return True
        return False
