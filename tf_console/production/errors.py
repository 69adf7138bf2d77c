"""Errors of the production layer: sentences that say what to do."""

from __future__ import annotations

from pathlib import Path

from tf_console.errors import UserError


class ProductionError(UserError):
    """An operation on the queue that cannot be done as asked (unknown job, busy printer…)."""


class ConfigFileError(ProductionError):
    """A malformed ``catalog.toml`` or ``printers.toml``: the file, the line and what is wrong."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"{where}: {problem}")
