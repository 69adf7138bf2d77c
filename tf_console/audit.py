"""The audit trail: every action that changes something outside the console or in production.

Ship confirmations, inventory pushes, customer messages, queue reorders, catalog
changes, credential set/delete — each is appended (never rewritten) to a bounded,
rotated log with the time, the operating-system user, the action, the target
(an order key or a SKU, never a buyer's name) and the outcome.  Free text passes
through the redactor so no token or registered PII can land here.

The log is ``logs/audit.jsonl`` in the data folder (rotated to ``audit.1.jsonl`` …),
plain JSON lines: it needs no data key, so ``tf-console audit`` and ``creds set``
write and read it without opening the store (:meth:`AuditLog.in_folder`).

Targets: ``platform:order_id`` for an order, ``platform:order_id:line_id`` for a
print job, ``SKU <sku>`` for a SKU, the variable name for a credential.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.marketplaces.redact import REDACTOR, Redactor
from tf_console.paths import FILE_MODE, private_mkdir
from tf_console.store import AppendLog, Store
from tf_console.store.core import LOCK_FILE_NAME

if TYPE_CHECKING:
    from tf_console.runtime import Runtime

log = logging.getLogger(__name__)

AUDIT_LOG = "audit"
AUDIT_MAX_BYTES = 2_000_000
AUDIT_KEEP = 10
LOCK_TIMEOUT = 30.0

#: (action, target, outcome, detail) — what services below this module call (production, sync)
AuditHook = Callable[[str, str, str, str], object]


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still identifies
        return str(os.getuid())


def sku_target(sku: str) -> str:
    return f"SKU {sku}"


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: str  # ISO 8601 UTC
    user: str
    action: str  # e.g. "ship.requested", "ship.confirmed", "queue.move", "catalog.assign", "creds.set"
    target: str  # "etsy:123456" | "SKU PRT-DRAGON-S" | "ETSY_REFRESH_TOKEN"
    outcome: str  # "ok" | "rejected" | "failed" | "requested" | …
    detail: str = ""

    @property
    def when(self) -> datetime:
        return datetime.fromisoformat(self.at)

    def concerns(self, target: str) -> bool:
        """Whether this entry is about ``target``: the same key, something under it (a print
        job of an order: ``etsy:123:L1`` under ``etsy:123``), or the SKU of that name."""
        return (
            self.target == target or self.target.startswith(target + ":") or self.target == sku_target(target)
        )


class AuditLog:
    def __init__(
        self,
        store: Store | None = None,
        clock: Clock = SYSTEM_CLOCK,
        redactor: Redactor = REDACTOR,
        *,
        log: AppendLog | None = None,
    ) -> None:
        if log is None:
            if store is None:
                raise ValueError("an AuditLog needs a store or a log")
            log = store.log(AUDIT_LOG, max_bytes=AUDIT_MAX_BYTES, keep=AUDIT_KEEP, durable=True)
        self._log = log
        self._clock = clock
        self._redactor = redactor

    @classmethod
    def in_folder(
        cls, data_dir: Path, clock: Clock = SYSTEM_CLOCK, redactor: Redactor = REDACTOR
    ) -> AuditLog:
        """The audit log of ``data_dir`` for a process without a store open (no data key needed);
        rotation takes the store's own lock file, so it never races a running store."""
        logs_dir = private_mkdir(data_dir / "logs")
        lock = FileLock(data_dir / LOCK_FILE_NAME, mode=FILE_MODE, thread_local=False, timeout=LOCK_TIMEOUT)

        @contextlib.contextmanager
        def held() -> Iterator[None]:
            with lock:
                yield

        append_log = AppendLog(
            logs_dir / f"{AUDIT_LOG}.jsonl",
            held,
            max_bytes=AUDIT_MAX_BYTES,
            keep=AUDIT_KEEP,
            durable=True,
        )
        return cls(clock=clock, redactor=redactor, log=append_log)

    def __repr__(self) -> str:
        return f"AuditLog({self._log!r})"

    def record(self, action: str, target: str, outcome: str, detail: str = "") -> AuditEntry:
        entry = AuditEntry(
            at=self._clock.now().isoformat(),
            user=os_user(),
            action=action,
            target=self._redactor.scrub(target),
            outcome=outcome,
            detail=self._redactor.scrub(detail),
        )
        self._log.append(asdict(entry))
        return entry

    def try_record(self, action: str, target: str, outcome: str, detail: str = "") -> AuditEntry | None:
        """:meth:`record` for callers whose action already happened: a full disk is logged as a
        warning instead of turning a done action into an error the user might retry."""
        try:
            return self.record(action, target, outcome, detail)
        except Exception as exc:
            log.warning("could not append to the audit log (%s): %s %s", type(exc).__name__, action, outcome)
            return None

    def entries(
        self,
        since: datetime | None = None,
        target: str | None = None,
        action: str | None = None,
    ) -> Iterator[AuditEntry]:
        """Entries oldest first; ``target`` as in :meth:`AuditEntry.concerns`, ``action`` exact
        or a family (``ship`` matches ``ship.requested``, ``ship.confirmed`` …)."""
        for raw in self._log.iter():
            try:
                entry = AuditEntry(**raw)
            except TypeError:  # a line from a newer version with more fields: skip, never crash
                continue
            if since is not None:
                try:
                    if entry.when < since:
                        continue
                except (TypeError, ValueError):  # an unreadable time: show it rather than hide it
                    pass
            if target is not None and not entry.concerns(target):
                continue
            if action is not None and entry.action != action and not entry.action.startswith(action + "."):
                continue
            yield entry

    def for_order(self, key: str) -> list[AuditEntry]:
        """Everything done to one order and its print jobs (the console's order detail)."""
        return list(self.entries(target=key))

    def recent(self, n: int) -> list[AuditEntry]:
        """The last ``n`` entries, oldest first (the console's health view)."""
        out: list[AuditEntry] = []
        for raw in self._log.tail(n):
            try:
                out.append(AuditEntry(**raw))
            except TypeError:
                continue
        return out


def install_audit(runtime: Runtime) -> AuditLog:
    """Point the production service's audit hook at the runtime's audit log (the outbox
    sender and ``enqueue_shipment`` write theirs already).  Call after :meth:`Runtime.open`
    has built production."""
    audit = AuditLog(runtime.store, runtime.clock)
    runtime.production.audit = audit.try_record
    return audit
