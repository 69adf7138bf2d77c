"""Append-only JSON-lines logs for high-volume records (API call health, audit).

Appending never rewrites a state file.  A log is rotated by size (``name.jsonl`` →
``name.1.jsonl`` → … up to ``keep`` old files), under the store lock so two
processes do not rotate at once.  Records must not contain secrets or PII: logs are
not encrypted.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from tf_console.paths import FILE_MODE


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Enum):
        return value.value
    raise TypeError(f"a log record cannot hold a {type(value).__name__}")


class AppendLog:
    def __init__(
        self,
        path: Path,
        lock: Callable[[], AbstractContextManager[None]],
        *,
        max_bytes: int,
        keep: int,
        durable: bool,
    ) -> None:
        if max_bytes <= 0 or keep < 0:
            raise ValueError("a log needs max_bytes > 0 and keep >= 0")
        self.path = path
        self._lock = lock
        self.max_bytes = max_bytes
        self.keep = keep
        self._durable = durable
        self._append_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AppendLog({self.path.name!r})"

    def _rotated(self, index: int) -> Path:
        return self.path.with_name(f"{self.path.stem}.{index}{self.path.suffix}")

    def files(self) -> list[Path]:
        """Existing files of this log, oldest first."""
        candidates = [self._rotated(i) for i in range(self.keep, 0, -1)] + [self.path]
        return [p for p in candidates if p.exists()]

    def append(self, record: Mapping[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=_json_default) + "\n"
        data = line.encode("utf-8")
        with self._append_lock:
            # One write() with O_APPEND: lines from several processes never interleave.
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, FILE_MODE)
            try:
                end = os.fstat(fd).st_size
                if end and os.pread(fd, 1, end - 1) != b"\n":
                    data = b"\n" + data  # end a line a crash cut short, so this record stays readable
                os.write(fd, data)
                if self._durable:
                    os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
        if size > self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        with self._lock():
            try:
                if os.stat(self.path).st_size <= self.max_bytes:
                    return  # another process rotated it first
            except FileNotFoundError:
                return
            if self.keep == 0:
                self.path.unlink()
                return
            with contextlib.suppress(FileNotFoundError):
                self._rotated(self.keep).unlink()
            for index in range(self.keep - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError):
                    os.replace(self._rotated(index), self._rotated(index + 1))
            os.replace(self.path, self._rotated(1))

    def iter(self) -> Iterator[dict[str, Any]]:
        """Every record, oldest first; a line cut short by a crash is skipped."""
        for path in self.files():
            try:
                content = path.read_bytes()
            except FileNotFoundError:
                continue  # rotated away between listing and reading
            for raw in content.splitlines():
                record = _parse_line(raw)
                if record is not None:
                    yield record

    def tail(self, n: int) -> list[dict[str, Any]]:
        """The last ``n`` records, oldest first."""
        if n <= 0:
            return []
        found: list[dict[str, Any]] = []
        for path in reversed(self.files()):
            try:
                lines = path.read_bytes().splitlines()
            except FileNotFoundError:
                continue
            for raw in reversed(lines):
                record = _parse_line(raw)
                if record is not None:
                    found.append(record)
                    if len(found) == n:
                        return found[::-1]
        return found[::-1]


def _parse_line(raw: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None
