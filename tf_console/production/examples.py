"""The commented example catalog and printers files that ship with the project."""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path

from tf_console.paths import write_private

EXAMPLES: dict[str, str] = {
    "catalog.toml": "catalog.example.toml",
    "printers.toml": "printers.example.toml",
}


def example_text(name: str) -> str:
    """The text of ``catalog.toml`` or ``printers.toml`` as shipped."""
    return resources.files("tf_console.data").joinpath(EXAMPLES[name]).read_text(encoding="utf-8")


def install_examples(where: Path | Mapping[str, Path], *, overwrite: bool = False) -> list[Path]:
    """Copy the example files where missing; returns the files written.

    ``where`` is a data folder (both files go in it under their usual names) or a
    mapping from ``catalog.toml``/``printers.toml`` to the paths to write.
    """
    targets = {name: where / name for name in EXAMPLES} if isinstance(where, Path) else dict(where)
    written: list[Path] = []
    for name, target in targets.items():
        if target.exists() and not overwrite:
            continue
        write_private(target, example_text(name).encode("utf-8"))
        written.append(target)
    return written
