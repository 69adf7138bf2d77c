"""The shop's TOML files: reading with line numbers for errors, and reloading on change.

``catalog.toml`` and ``printers.toml`` are edited by hand while the console runs.
:class:`WatchedToml` re-reads a file when its size, mtime or inode change; when the
new text is malformed it keeps the last good value in force and exposes the error
sentence, so a typo never empties the queue.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

import tomlkit
from tomlkit.exceptions import ParseError

from tf_console.production.errors import ConfigFileError

T = TypeVar("T")


def parse_toml(text: str, path: Path | str) -> dict[str, Any]:
    """Plain Python data of a TOML text; a syntax error names the file and line."""
    try:
        document = tomlkit.parse(text)
    except ParseError as exc:
        problem = str(exc)
        # tomlkit appends " at line L col C"; the line is already in our prefix.
        problem = re.sub(r"\s+at line \d+ col \d+$", "", problem)
        if problem.startswith("Control characters"):
            problem = 'a quoted value is not closed on its line (a missing ")'
        raise ConfigFileError(path, exc.line, f"{problem} (column {exc.col})") from None
    return document.unwrap()


class LineFinder:
    """Line numbers of tables and keys in a TOML text, for error messages."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()

    def array_table(self, name: str, occurrence: int) -> int | None:
        """1-based line of the ``occurrence``-th (1-based) ``[[name]]`` header."""
        pattern = re.compile(rf"^\s*\[\[\s*{re.escape(name)}\s*\]\]")
        seen = 0
        for number, line in enumerate(self._lines, start=1):
            if pattern.match(line):
                seen += 1
                if seen == occurrence:
                    return number
        return None

    def table(self, *parts: str) -> int | None:
        """1-based line of a ``[a.b]`` header, bare or quoted keys, or None."""
        joined = r"\s*\.\s*".join(rf"(?:{re.escape(p)}|\"{re.escape(p)}\"|'{re.escape(p)}')" for p in parts)
        pattern = re.compile(rf"^\s*\[\s*{joined}\s*\]")
        for number, line in enumerate(self._lines, start=1):
            if pattern.match(line):
                return number
        return None

    def top_level(self, key: str) -> int | None:
        """Line where a top-level ``key`` is first written, as ``key =`` or a table header."""
        pattern = re.compile(rf"^\s*(?:\[\[?\s*)?(?:{re.escape(key)}|\"{re.escape(key)}\")\s*(?:=|\]|\.)")
        for number, line in enumerate(self._lines, start=1):
            if pattern.match(line):
                return number
        return None

    def key(self, key: str, after: int | None) -> int | None:
        """Line of ``key = …`` in the table whose header is at line ``after``; else the header."""
        if after is None:
            return None
        pattern = re.compile(rf"^\s*(?:{re.escape(key)}|\"{re.escape(key)}\")\s*=")
        for number in range(after + 1, len(self._lines) + 1):
            line = self._lines[number - 1]
            if re.match(r"^\s*\[", line):
                break
            if pattern.match(line):
                return number
        return after


def check_keys(
    table: Mapping[str, Any],
    known: frozenset[str],
    what: str,
    path: Path | str,
    lines: LineFinder,
    header: int | None,
) -> None:
    """Reject keys a table does not know: a typo must not silently change behaviour.

    ``header`` is the line of the table's header, or None for the top level.
    """
    for key in table:
        if key not in known:
            listed = ", ".join(sorted(known))
            line = lines.key(key, header) if header is not None else lines.top_level(key)
            raise ConfigFileError(path, line, f"{what} has an unknown key {key!r}; known keys are {listed}")


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


class WatchedToml(Generic[T]):
    """The last good parse of a file, refreshed when the file changes.

    ``parse(text, path)`` raises :class:`ConfigFileError`; ``empty`` stands in until
    a first good read (a missing file is not an error until someone needs it).
    Thread-safe: console workers and the sync loop may ask at the same time.
    """

    def __init__(self, path: Path, parse: Callable[[str, Path], T], empty: T) -> None:
        self.path = path
        self._parse = parse
        self._value = empty
        self._stamp: _Stamp | None = None
        self._loaded = False
        self._error: str | None = None
        self._lock = threading.Lock()

    @property
    def error(self) -> str | None:
        """Why the file on disk is not the one in force, as a sentence; None when it is."""
        self.current()
        return self._error

    @property
    def loaded(self) -> bool:
        """Whether a good version of the file has been read at least once."""
        self.current()
        return self._loaded

    def current(self) -> T:
        with self._lock:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                self._stamp = None
                self._error = (
                    f"{self.path} is missing; the last good version stays in force until it is back"
                    if self._loaded
                    else f"{self.path} does not exist yet; run `tf-console catalog init` to start from "
                    "the example"
                )
                return self._value
            stamp = _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp == self._stamp:
                return self._value
            self._stamp = stamp
            try:
                text = self.path.read_text(encoding="utf-8")
                value = self._parse(text, self.path)
            except ConfigFileError as exc:
                kept = "the previous version stays in force" if self._loaded else "nothing from it is used"
                self._error = f"{exc}; fix the file ({kept})"
                return self._value
            except (OSError, UnicodeDecodeError) as exc:
                self._error = f"{self.path} cannot be read ({exc.__class__.__name__}); check its permissions"
                return self._value
            self._value = value
            self._loaded = True
            self._error = None
            return self._value

    def replace(self, value: T) -> None:
        """Put a value just written to the file in force without waiting for a re-read."""
        with self._lock:
            self._value = value
            self._loaded = True
            self._error = None
            try:
                st = os.stat(self.path)
                self._stamp = _Stamp(st.st_mtime_ns, st.st_size, st.st_ino)
            except FileNotFoundError:
                self._stamp = None
