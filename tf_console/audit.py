"""The audit trail: every action that changes something outside the console or in production.

Ship confirmations, inventory pushes, customer messages, queue reorders, catalog
changes, credential set/delete — each is appended (never rewritten) to a bounded,
rotated log with the time, the operating-system user, the action, the target
(an order key or a SKU, never a buyer's name) and the outcome.  Free text passes
through the redactor so no token or registered PII can land here.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.marketplaces.redact import REDACTOR, Redactor
from tf_console.store import Store

AUDIT_LOG = "audit"
AUDIT_MAX_BYTES = 2_000_000
AUDIT_KEEP = 10


def os_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still identifies
        return str(os.getuid())


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


class AuditLog:
    def __init__(self, store: Store, clock: Clock = SYSTEM_CLOCK, redactor: Redactor = REDACTOR) -> None:
        self._log = store.log(AUDIT_LOG, max_bytes=AUDIT_MAX_BYTES, keep=AUDIT_KEEP, durable=True)
        self._clock = clock
        self._redactor = redactor

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

    def entries(self, since: datetime | None = None, target: str | None = None) -> Iterator[AuditEntry]:
        for raw in self._log.iter():
            try:
                entry = AuditEntry(**raw)
            except TypeError:  # a line from a newer version with more fields: skip, never crash
                continue
            if since is not None and entry.when < since:
                continue
            if target is not None and entry.target != target:
                continue
            yield entry
