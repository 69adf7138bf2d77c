"""Who polls and sends: one process per data folder.

The lease is an OS file lock (``flock`` through filelock) held for as long as the
poller runs, so it is released the moment its holder dies — even by kill -9 — and
there is no stale lease to clean up.  Beside it, ``lease.json`` says who holds it
(pid, kind, heartbeat) for display; it is informational only.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass
from pathlib import Path

from filelock import FileLock, Timeout

from tf_console.audit import os_user
from tf_console.clock import Clock
from tf_console.paths import FILE_MODE, write_private

LOCK_NAME = "poller.lock"
INFO_NAME = "lease.json"


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    pid: int
    kind: str  # "daemon" | "console" | "cli"
    host: str
    user: str
    started_at: str
    heartbeat_at: str

    def describe(self) -> str:
        return f"{self.kind} (pid {self.pid} on {self.host})"


class Lease:
    def __init__(self, data_dir: Path, clock: Clock, *, kind: str) -> None:
        self.data_dir = data_dir
        self.clock = clock
        self.kind = kind
        self._lock = FileLock(data_dir / LOCK_NAME, mode=FILE_MODE, thread_local=False)
        self._started = ""

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def try_acquire(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        os.chmod(self.data_dir / LOCK_NAME, FILE_MODE)
        self._started = self.clock.now().isoformat()
        self.heartbeat()
        return True

    def heartbeat(self) -> None:
        if not self.held:
            return
        info = LeaseInfo(
            pid=os.getpid(),
            kind=self.kind,
            host=socket.gethostname(),
            user=os_user(),
            started_at=self._started,
            heartbeat_at=self.clock.now().isoformat(),
        )
        write_private(self.data_dir / INFO_NAME, json.dumps(asdict(info)).encode(), durable=False)

    def release(self) -> None:
        if self.held:
            with contextlib.suppress(FileNotFoundError):
                (self.data_dir / INFO_NAME).unlink()
            self._lock.release(force=True)


def current_holder(data_dir: Path) -> LeaseInfo | None:
    """The process polling this data folder, or None when nobody does."""
    probe = FileLock(data_dir / LOCK_NAME, mode=FILE_MODE, thread_local=False)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        try:
            raw = json.loads((data_dir / INFO_NAME).read_text("utf-8"))
            return LeaseInfo(**raw)
        except (OSError, ValueError, TypeError):
            return LeaseInfo(0, "unknown", "", "", "", "")
    probe.release(force=True)
    return None
