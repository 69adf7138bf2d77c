"""The data key that encrypts PII at rest.

It lives in the system keyring (entry ``tf-console-data-key``) or, when there is no
usable (or only a plain-text) keyring, in a 0600 file ``data.key`` in the *config* dir —
never inside the data dir, so a copy of the data alone is useless.

A key is minted only when none exists *and* the data dir holds no state yet.  When state
exists but its key is missing, minting a new one would orphan every encrypted record, so
:func:`load_cipher` refuses and explains how to restore the key.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet
from filelock import FileLock

from tf_console.config import Settings
from tf_console.crypto import FernetCipher, key_id_for
from tf_console.errors import UserError
from tf_console.keyring_access import KEYRING_SERVICE, KeyringAccess, KeyringUnavailable
from tf_console.paths import FILE_MODE, private_mkdir, write_private
from tf_console.store.meta import META_FILE
from tf_console.store.migrations import V1_STATE_FILE
from tf_console.vault import VAULT_FILE_NAME

DATA_KEY_NAME = "tf-console-data-key"
KEY_FILE_NAME = "data.key"
# Files whose presence means data may already be encrypted with a data key.
STATE_FILES: tuple[str, ...] = (META_FILE, V1_STATE_FILE, VAULT_FILE_NAME)
# A lock on minting stops two first starts from creating two different keys.
_MINT_LOCK_NAME = "data.key.lock"
_MINT_LOCK_TIMEOUT = 30.0


class KeyLocation(enum.StrEnum):
    KEYRING = "keyring"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class DataKeyInfo:
    """Where the data key is and its public id (for doctor); never the key itself."""

    key_id: str
    location: KeyLocation
    where: str  # words for a sentence: a path, or which keyring entry
    created: bool = False


@dataclass(frozen=True, slots=True)
class _Candidate:
    key: bytes
    info: DataKeyInfo


def key_file_path(config_dir: Path) -> Path:
    return config_dir / KEY_FILE_NAME


def keyring_where(keyring: KeyringAccess) -> str:
    return f"{keyring.backend_description()}, service {KEYRING_SERVICE}, entry {DATA_KEY_NAME}"


def state_exists(data_dir: Path) -> bool:
    """Whether ``data_dir`` may hold data encrypted with a data key: the store's header
    (or its schema-1 state file) or the token vault."""
    return any((data_dir / name).exists() for name in STATE_FILES)


def _key_id_in(document: Any) -> str | None:
    """The ``key_id`` recorded in a state file: at the top level, in a TinyDB table row
    (the store's header) or as a named value (schema 1's meta table)."""
    if not isinstance(document, dict):
        return None
    if isinstance(document.get("key_id"), str):
        return str(document["key_id"])
    for table in document.values():
        rows = table.values() if isinstance(table, dict) else ()
        for row in rows:
            if not isinstance(row, dict):
                continue
            if isinstance(row.get("key_id"), str):
                return str(row["key_id"])
            if row.get("name") == "key_id" and isinstance(row.get("value"), str):
                return str(row["value"])
    return None


def expected_key_id(data_dir: Path) -> str | None:
    """The key id the existing state says it was encrypted with, if it says so."""
    for name in (META_FILE, V1_STATE_FILE):
        try:
            document = json.loads((data_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        key_id = _key_id_in(document)
        if key_id:
            return key_id
    return None


def _valid_key(raw: bytes) -> bool:
    try:
        Fernet(raw)
    except (ValueError, TypeError):
        return False
    return True


def _candidates(*, keyring: KeyringAccess, config_dir: Path) -> list[_Candidate]:
    found: list[_Candidate] = []
    if keyring.usable:
        stored = keyring.get(DATA_KEY_NAME)
        if stored:
            raw = stored.strip().encode("ascii", "replace")
            where = keyring_where(keyring)
            if not _valid_key(raw):
                raise UserError(
                    f"The data key in {where} is damaged. Restore it from your backup "
                    f"(tf-console never replaces a data key on its own)."
                )
            found.append(_Candidate(raw, DataKeyInfo(key_id_for(raw), KeyLocation.KEYRING, where)))
    path = key_file_path(config_dir)
    if path.is_file():
        try:
            raw = path.read_bytes().strip()
        except OSError as exc:
            raise UserError(
                f"The data key file {path} cannot be read ({exc.strerror}); check its owner and permissions."
            ) from None
        if not _valid_key(raw):
            raise UserError(
                f"The data key file {path} is damaged. Restore it from your backup "
                f"(tf-console never replaces a data key on its own)."
            )
        found.append(_Candidate(raw, DataKeyInfo(key_id_for(raw), KeyLocation.FILE, str(path))))
    return found


def _choose(candidates: list[_Candidate], wanted_id: str | None, data_dir: Path | None) -> _Candidate | None:
    if not candidates:
        return None
    if wanted_id is None:
        return candidates[0]
    for candidate in candidates:
        if candidate.info.key_id == wanted_id:
            return candidate
    held = ", ".join(f"{c.info.key_id} in {c.info.where}" for c in candidates)
    raise UserError(
        f"The data in {data_dir} was encrypted with data key {wanted_id}, but the key found is "
        f"{held}. Restore the key with id {wanted_id} from your backup, or point TF_DATA_DIR at "
        f"the data that belongs to this key."
    )


def find_data_key(
    *, keyring: KeyringAccess, config_dir: Path, data_dir: Path | None = None
) -> tuple[bytes, DataKeyInfo] | None:
    """The existing data key (never mints one).  With ``data_dir``, the key must match
    the id its state records, when it records one."""
    wanted_id = expected_key_id(data_dir) if data_dir is not None else None
    chosen = _choose(_candidates(keyring=keyring, config_dir=config_dir), wanted_id, data_dir)
    return None if chosen is None else (chosen.key, chosen.info)


def missing_key_error(data_dir: Path, keyring: KeyringAccess, config_dir: Path) -> UserError:
    wanted_id = expected_key_id(data_dir)
    which = f"data key {wanted_id}" if wanted_id else "a data key (its id is not recorded)"
    keyring_note = (
        f"in {keyring_where(keyring)}"
        if keyring.usable
        else f"in the keyring (not usable now: {keyring.info().problem})"
    )
    return UserError(
        f"The data in {data_dir} was encrypted with {which}, but that key is missing: it was "
        f"expected {keyring_note} or in the file {key_file_path(config_dir)}. Restore it from "
        f"your backup to one of those places (the file must be readable only by you, mode 600), "
        f"or point TF_DATA_DIR at a new folder to start afresh. No new key was created, so the "
        f"existing data is not orphaned."
    )


def _store_new_key(key: bytes, *, keyring: KeyringAccess, config_dir: Path) -> DataKeyInfo:
    key_id = key_id_for(key)
    # A plain-text keyring is no safer than our own 0600 file, and the file is easier to back up.
    if keyring.usable and not keyring.insecure:
        try:
            keyring.set(DATA_KEY_NAME, key.decode("ascii"))
            if keyring.get(DATA_KEY_NAME) == key.decode("ascii"):
                return DataKeyInfo(key_id, KeyLocation.KEYRING, keyring_where(keyring), created=True)
        except KeyringUnavailable:
            pass
    private_mkdir(config_dir)
    path = key_file_path(config_dir)
    write_private(path, key + b"\n")
    return DataKeyInfo(key_id, KeyLocation.FILE, str(path), created=True)


def load_data_key(
    settings: Settings, *, keyring: KeyringAccess, config_dir: Path, state_exists: bool
) -> tuple[FernetCipher, DataKeyInfo]:
    """The cipher for ``settings.data_dir`` and where its key lives; mints a key only for
    a data dir without state."""
    data_dir = settings.data_dir
    found = find_data_key(keyring=keyring, config_dir=config_dir, data_dir=data_dir)
    if found is not None:
        key, info = found
        return FernetCipher(key), info
    if state_exists:
        raise missing_key_error(data_dir, keyring, config_dir)
    private_mkdir(config_dir)
    with FileLock(config_dir / _MINT_LOCK_NAME, timeout=_MINT_LOCK_TIMEOUT, mode=FILE_MODE):
        found = find_data_key(keyring=keyring, config_dir=config_dir, data_dir=data_dir)
        if found is not None:  # another process minted it while we waited
            key, info = found
            return FernetCipher(key), info
        key = FernetCipher.generate_key()
        info = _store_new_key(key, keyring=keyring, config_dir=config_dir)
    return FernetCipher(key), info


def load_cipher(
    settings: Settings, *, keyring: KeyringAccess, config_dir: Path, state_exists: bool
) -> FernetCipher:
    return load_data_key(settings, keyring=keyring, config_dir=config_dir, state_exists=state_exists)[0]
