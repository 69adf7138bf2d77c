"""Encrypted storage for secrets that change while the program runs.

Etsy returns a new refresh token on every refresh and access tokens are cached until
they expire; those values are persisted here (``tokens.enc`` in the data dir, 0600,
written atomically; the whole file is one cipher envelope), never in plain text.

The rule between a persisted value and the configured one (environment, env files,
keyring): the newest persisted value wins — unless the configured value has changed
since the persisted one was stored, which means the owner re-authorised; then the
configured value wins again and the persisted one is dropped.  To recognise a change
without keeping the old configured value, the vault stores a salted hash of it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import SecretStr

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.crypto import Cipher, DecryptionError
from tf_console.errors import UserError
from tf_console.paths import FILE_MODE, write_private

VAULT_FILE_NAME = "tokens.enc"
_FORMAT_VERSION = 1
_SALT_BYTES = 16


@dataclass(frozen=True, slots=True)
class VaultEntry:
    value: SecretStr
    stored_at: datetime
    expires_at: datetime | None
    #: salted hash of the configured value in force when this value was stored (None: none was)
    env_hash: str | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


@dataclass
class _Contents:
    salt: bytes
    entries: dict[str, VaultEntry]


class TokenVault:
    """Rotating secrets, persisted encrypted.  Safe across processes (a lock file guards
    every read-modify-write)."""

    def __init__(
        self,
        path: Path,
        cipher: Cipher,
        *,
        clock: Clock = SYSTEM_CLOCK,
        salt_source: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self.path = path
        self._cipher = cipher
        self._clock = clock
        self._salt_source = salt_source
        self._lock = FileLock(path.with_name(path.name + ".lock"), mode=FILE_MODE)

    def __repr__(self) -> str:
        return f"TokenVault(path={str(self.path)!r})"

    # --- queries -----------------------------------------------------------
    def entry(self, name: str) -> VaultEntry | None:
        with self._lock:
            return self._read().entries.get(name)

    def entries(self) -> dict[str, VaultEntry]:
        with self._lock:
            return dict(sorted(self._read().entries.items()))

    def expires_at(self, name: str) -> datetime | None:
        entry = self.entry(name)
        return None if entry is None else entry.expires_at

    def resolve(self, name: str, env_value: str | None) -> str | None:
        """The value to use for ``name``.  ``env_value`` is the configured value — from the
        environment, an env file or the keyring — or None when there is none.  A persisted
        value superseded by a changed configured value is dropped."""
        with self._lock:
            contents = self._read()
            if self._persisted_wins(contents, name, env_value):
                return contents.entries[name].value.get_secret_value()
            if name in contents.entries:
                del contents.entries[name]
                self._write(contents)
            return env_value

    def persisted_wins(self, name: str, env_value: str | None) -> bool:
        """Whether :meth:`resolve` would return the persisted value (changes nothing)."""
        with self._lock:
            return self._persisted_wins(self._read(), name, env_value)

    @staticmethod
    def _persisted_wins(contents: _Contents, name: str, env_value: str | None) -> bool:
        entry = contents.entries.get(name)
        if entry is None:
            return False
        # A changed configured value means the owner re-authorised: it wins again.
        return env_value is None or entry.env_hash == _hash(contents.salt, env_value)

    # --- changes -----------------------------------------------------------
    def store(
        self,
        name: str,
        value: str,
        *,
        env_value: str | None,
        expires_at: datetime | None = None,
    ) -> None:
        """Persist a new value for ``name`` (after a refresh), remembering which configured
        value was in force so a later change of it can be recognised."""
        if expires_at is not None and expires_at.tzinfo is None:
            raise ValueError("expires_at must be timezone-aware")
        with self._lock:
            contents = self._read()
            contents.entries[name] = VaultEntry(
                value=SecretStr(value),
                stored_at=self._clock.now(),
                expires_at=expires_at,
                env_hash=None if env_value is None else _hash(contents.salt, env_value),
            )
            self._write(contents)

    def forget(self, name: str) -> bool:
        with self._lock:
            contents = self._read()
            if contents.entries.pop(name, None) is None:
                return False
            self._write(contents)
            return True

    # --- file --------------------------------------------------------------
    def _read(self) -> _Contents:
        try:
            blob = self.path.read_text(encoding="ascii")
        except FileNotFoundError:
            return _Contents(self._salt_source(_SALT_BYTES), {})
        except (OSError, UnicodeDecodeError) as exc:
            raise self._damaged(f"cannot be read ({type(exc).__name__})") from None
        try:
            document = json.loads(self._cipher.decrypt(blob.strip()))
            return _parse(document)
        except DecryptionError as exc:
            raise self._damaged(f"cannot be decrypted with the data key ({exc})") from None
        except (ValueError, KeyError, TypeError):
            raise self._damaged("is damaged") from None

    def _write(self, contents: _Contents) -> None:
        document = {
            "version": _FORMAT_VERSION,
            "salt": contents.salt.hex(),
            "entries": {name: _entry_to_json(entry) for name, entry in contents.entries.items()},
        }
        blob = self._cipher.encrypt(json.dumps(document, sort_keys=True).encode("utf-8"))
        write_private(self.path, blob.encode("ascii"))

    def _damaged(self, what: str) -> UserError:
        return UserError(
            f"The token vault {self.path} {what}. Nothing was changed. Restore it from your backup, "
            f"or delete it to fall back to the configured tokens (Etsy may then need re-authorising: "
            f"tf-console creds set ETSY_REFRESH_TOKEN)."
        )


def _hash(salt: bytes, value: str) -> str:
    return hmac.new(salt, value.encode("utf-8"), hashlib.sha256).hexdigest()


def _entry_to_json(entry: VaultEntry) -> dict[str, Any]:
    return {
        "value": entry.value.get_secret_value(),
        "stored_at": entry.stored_at.isoformat(),
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
        "env_hash": entry.env_hash,
    }


def _parse(document: Any) -> _Contents:
    if not isinstance(document, dict) or document.get("version") != _FORMAT_VERSION:
        raise ValueError("unknown vault format")
    entries: dict[str, VaultEntry] = {}
    for name, raw in dict(document["entries"]).items():
        expires = raw.get("expires_at")
        entries[str(name)] = VaultEntry(
            value=SecretStr(str(raw["value"])),
            stored_at=_aware(datetime.fromisoformat(raw["stored_at"])),
            expires_at=_aware(datetime.fromisoformat(expires)) if expires else None,
            env_hash=raw.get("env_hash"),
        )
    return _Contents(bytes.fromhex(document["salt"]), entries)


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive time in vault")
    return moment
