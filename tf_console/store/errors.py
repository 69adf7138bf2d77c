"""The one error the store raises for problems a person must fix."""

from __future__ import annotations

from pathlib import Path

from tf_console.errors import UserError


class StoreError(UserError):
    """The state on disk cannot be used as it is; the message says what to do."""

    exit_code = 3


def backup_path(path: Path) -> Path:
    return path.with_name(path.name + ".bak")


def damaged_file_message(path: Path, reason: str) -> str:
    """A sentence for a state file that cannot be parsed; it names the backup to restore."""
    backup = backup_path(path)
    if backup.exists():
        remedy = (
            f"Stop tf-console, copy the last good backup over it (cp '{backup}' '{path}') "
            "and start again; only the last change to that file is lost."
        )
    else:
        remedy = (
            f"There is no backup beside it ({backup} is missing); restore '{path}' from your own "
            "backups, or move it aside to start that part of the state afresh."
        )
    return f"The state file {path} is damaged ({reason}) and was left untouched. {remedy}"
