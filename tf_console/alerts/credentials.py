"""Credential ages: when each expiring credential was set, so expiry can be warned ahead.

Amazon requires a new LWA client secret every 180 days; eBay Auth'n'Auth tokens and
OAuth refresh tokens last about 18 months; Etsy refresh tokens 90 days (but Etsy
hands out a new one at every refresh, so a running console keeps it young).
``tf-console creds set`` records the moment a credential was set; a credential met
in the configuration without a record is recorded when first seen.

``credential_ages.json`` in the data folder holds, per variable, that moment and a
short keyed fingerprint of the value, so a value replaced outside ``creds set``
(an edited ``.env.local``) is noticed and restarts the clock.  Only long random
tokens are tracked, and the fingerprint is a truncated HMAC under a random salt:
it cannot be turned back into the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from filelock import FileLock
from pydantic import BaseModel, Field, ValidationError

from tf_console.audit import AuditLog
from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.models import Platform, UtcDatetime
from tf_console.paths import FILE_MODE, write_private
from tf_console.store.core import LOCK_FILE_NAME

if TYPE_CHECKING:
    from tf_console.context import AppContext

log = logging.getLogger(__name__)

CREDENTIAL_AGES_FILE = "credential_ages.json"
_FINGERPRINT_HEX = 16
_SALT_BYTES = 16
LOCK_TIMEOUT = 30.0
EBAY_AUTHNAUTH_PREFIX = "AgAAAA"

Lock = Callable[[], AbstractContextManager[Any]]


@dataclass(frozen=True, slots=True)
class CredentialLife:
    platform: Platform
    days: int
    rule: str  # the marketplace's rule, as a clause
    renew: str  # what to do, as a sentence


# eBay states refresh tokens as 47,304,000 s (about 18 months); Auth'n'Auth "about 18 months".
EBAY_LIFETIME_DAYS = 547

LIFETIMES: dict[str, CredentialLife] = {
    "AMAZON_CLIENT_SECRET": CredentialLife(
        Platform.AMAZON,
        180,
        "Amazon requires a new LWA client secret every 180 days",
        "Generate a new client secret for the app in Seller Central (Develop Apps), then run "
        "`tf-console creds set AMAZON_CLIENT_SECRET`.",
    ),
    "EBAY_USER_TOKEN": CredentialLife(
        Platform.EBAY,
        EBAY_LIFETIME_DAYS,
        "eBay Auth'n'Auth tokens last about 18 months",
        "Fetch a new user token from the eBay developer account (User Tokens), then run "
        "`tf-console creds set EBAY_USER_TOKEN`.",
    ),
    "EBAY_REFRESH_TOKEN": CredentialLife(
        Platform.EBAY,
        EBAY_LIFETIME_DAYS,
        "eBay OAuth refresh tokens last about 18 months",
        "Grant the app access again on eBay to get a new refresh token, then run "
        "`tf-console creds set EBAY_REFRESH_TOKEN`.",
    ),
    "ETSY_REFRESH_TOKEN": CredentialLife(
        Platform.ETSY,
        90,
        "Etsy refresh tokens last 90 days unless tf-console refreshes them",
        "Let tf-console run (it renews the token at every refresh) or authorise the app on Etsy "
        "again and run `tf-console creds set ETSY_REFRESH_TOKEN`.",
    ),
}


def applies(name: str, value: str) -> bool:
    """Whether ``value`` of ``name`` has the lifetime in :data:`LIFETIMES` (an OAuth
    EBAY_USER_TOKEN lasts two hours and is renewed: only Auth'n'Auth ones expire this way)."""
    if name == "EBAY_USER_TOKEN":
        return value.startswith(EBAY_AUTHNAUTH_PREFIX)
    return name in LIFETIMES


class CredentialRecord(BaseModel):
    since: UtcDatetime
    how: Literal["creds set", "first seen", "changed"]
    fingerprint: str


class _AgesDocument(BaseModel):
    version: int = 1
    salt: str = ""
    entries: dict[str, CredentialRecord] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CredentialAge:
    name: str
    life: CredentialLife
    since: datetime
    how: str  # "creds set" | "first seen" | "changed" | "rotated" | "reported by eBay"
    expires_at: datetime

    def remaining(self, now: datetime) -> timedelta:
        return self.expires_at - now


class CredentialAges:
    """``credential_ages.json``; every change is a read-modify-write under ``lock``."""

    def __init__(self, data_dir: Path, *, lock: Lock, clock: Clock = SYSTEM_CLOCK) -> None:
        self.path = data_dir / CREDENTIAL_AGES_FILE
        self._lock = lock
        self._clock = clock

    @classmethod
    def standalone(cls, data_dir: Path, clock: Clock = SYSTEM_CLOCK) -> CredentialAges:
        """For a process that has no store open (``creds set``): the store's own lock file."""
        lock = FileLock(data_dir / LOCK_FILE_NAME, mode=FILE_MODE, thread_local=False, timeout=LOCK_TIMEOUT)
        return cls(data_dir, lock=lambda: lock, clock=clock)

    def __repr__(self) -> str:
        return f"CredentialAges({str(self.path)!r})"

    def records(self) -> dict[str, CredentialRecord]:
        return dict(self._read().entries)

    def record_set(self, name: str, value: str) -> None:
        """``creds set NAME``: the clock restarts unless the very same value was set again."""
        self._change({name: value}, how="creds set")

    def observe(self, values: Mapping[str, str]) -> None:
        """Configured values seen now: new ones are recorded, replaced ones restart their clock."""
        self._change(values, how="first seen")

    def _change(self, values: Mapping[str, str], *, how: Literal["creds set", "first seen"]) -> None:
        tracked = {name: value for name, value in values.items() if name in LIFETIMES and value}
        if not tracked:
            return
        now = self._clock.now()
        with self._lock():
            document = self._read()
            if not document.salt:
                document.salt = os.urandom(_SALT_BYTES).hex()
            changed = False
            for name, value in tracked.items():
                fingerprint = _fingerprint(document.salt, value)
                current = document.entries.get(name)
                if current is not None and current.fingerprint == fingerprint:
                    continue
                kind: Literal["creds set", "first seen", "changed"] = how
                if current is not None and how == "first seen":
                    kind = "changed"
                document.entries[name] = CredentialRecord(since=now, how=kind, fingerprint=fingerprint)
                changed = True
            if changed:
                write_private(
                    self.path, json.dumps(document.model_dump(mode="json"), indent=1).encode("utf-8")
                )

    def _read(self) -> _AgesDocument:
        try:
            return _AgesDocument.model_validate(json.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return _AgesDocument()
        except (ValueError, ValidationError):
            # Damaged: ages restart from now (a warning comes later than it should, never wrongly).
            return _AgesDocument()


def _fingerprint(salt_hex: str, value: str) -> str:
    digest = hmac.new(bytes.fromhex(salt_hex), value.encode("utf-8"), hashlib.sha256).hexdigest()
    return digest[:_FINGERPRINT_HEX]


def credential_ages(
    records: Mapping[str, CredentialRecord],
    configured: Mapping[str, str],
    *,
    rotated_at: Mapping[str, datetime] | None = None,
    known_expiry: Mapping[str, datetime] | None = None,
) -> list[CredentialAge]:
    """The age and expiry of every configured credential that expires.

    ``rotated_at``: when tf-console itself last received a new value (the token vault's
    Etsy refresh token); ``known_expiry``: an expiry the marketplace reported (eBay's
    HardExpirationWarning), which beats any estimate.
    """
    ages: list[CredentialAge] = []
    for name, life in LIFETIMES.items():
        value = configured.get(name)
        if not value or not applies(name, value):
            continue
        record = records.get(name)
        reported = (known_expiry or {}).get(name)
        rotated = (rotated_at or {}).get(name)
        if reported is not None:
            since = record.since if record else reported - timedelta(days=life.days)
            ages.append(CredentialAge(name, life, since, "reported by eBay", reported))
            continue
        candidates: list[tuple[datetime, str]] = []
        if record is not None:
            candidates.append((record.since, record.how))
        if rotated is not None:
            candidates.append((rotated, "rotated"))
        if not candidates:
            continue
        since, how = max(candidates, key=lambda c: c[0])
        ages.append(CredentialAge(name, life, since, how, since + timedelta(days=life.days)))
    return ages


def note_credential_change(
    ctx: AppContext,
    action: str,
    name: str,
    outcome: str,
    detail: str,
    *,
    value: str | None = None,
) -> None:
    """``creds set``/``creds delete``: a line in the audit trail and, when a new value of an
    expiring credential took effect, its new age.  Never fails the command: the credential
    is stored (or deleted) already."""
    AuditLog.in_folder(ctx.data_dir, ctx.clock).try_record(action, name, outcome, detail)
    if value is None or name not in LIFETIMES:
        return
    try:
        CredentialAges.standalone(ctx.data_dir, ctx.clock).record_set(name, value)
    except Exception as exc:
        log.warning("could not record when %s was set: %s", name, type(exc).__name__)
