"""Encryption of PII at rest.

One envelope per record (cheaper than per field).  The data key's management —
keyring or a 0600 key file in the config dir, never minted twice — lives in
``tf_console.keys``; this module only encrypts and decrypts with a given key.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken


class DecryptionError(Exception):
    """The data cannot be decrypted with the key at hand."""


class Cipher(Protocol):
    @property
    def key_id(self) -> str: ...

    def encrypt(self, plaintext: bytes) -> str: ...

    def decrypt(self, token: str) -> bytes: ...


def key_id_for(key: bytes) -> str:
    """A short public identifier of a key (not secret: a hash prefix)."""
    return hashlib.sha256(b"tf-console-key-id:" + key).hexdigest()[:12]


class FernetCipher:
    """AES-128-CBC + HMAC-SHA256 (Fernet) with the key id prefixed to every token."""

    def __init__(self, key: bytes) -> None:
        # Validates the key shape (32 url-safe base64 bytes) at construction.
        self._fernet = Fernet(key)
        self._key_id = key_id_for(key)

    @staticmethod
    def generate_key() -> bytes:
        return Fernet.generate_key()

    @property
    def key_id(self) -> str:
        return self._key_id

    def encrypt(self, plaintext: bytes) -> str:
        return f"{self._key_id}:{self._fernet.encrypt(plaintext).decode('ascii')}"

    def decrypt(self, token: str) -> bytes:
        kid, sep, body = token.partition(":")
        if not sep:
            raise DecryptionError("encrypted value has no key id")
        if kid != self._key_id:
            raise DecryptionError(f"data was encrypted with key {kid}, but the key at hand is {self._key_id}")
        try:
            return self._fernet.decrypt(body.encode("ascii"))
        except (InvalidToken, ValueError) as exc:
            raise DecryptionError("encrypted value is damaged or was made with another key") from exc

    def __repr__(self) -> str:
        return f"FernetCipher(key_id={self._key_id})"
