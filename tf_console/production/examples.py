"""The commented example catalog and printers files that ship with the project."""

from __future__ import annotations

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


def install_examples(data_dir: Path, *, overwrite: bool = False) -> list[Path]:
    """Copy the example files into ``data_dir`` where missing; returns the files written."""
    written: list[Path] = []
    for name in EXAMPLES:
        target = data_dir / name
        if target.exists() and not overwrite:
            continue
        write_private(target, example_text(name).encode("utf-8"))
        written.append(target)
    return written
