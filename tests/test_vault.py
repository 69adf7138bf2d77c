"""The token vault: rotated secrets persisted encrypted, with the re-authorisation rule."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest

from tests.fixtures_config import ConfigPaths, config_paths_fixture  # noqa: F401 - fixtures
from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.errors import UserError
from tf_console.vault import VAULT_FILE_NAME, TokenVault

NAME = "ETSY_REFRESH_TOKEN"


@pytest.fixture
def cipher() -> FernetCipher:
    return FernetCipher(FernetCipher.generate_key())


@pytest.fixture
def vault_path(tmp_path: Path) -> Path:
    return tmp_path / VAULT_FILE_NAME


def test_no_entry_means_the_configured_value(vault_path: Path, cipher: FernetCipher) -> None:
    vault = TokenVault(vault_path, cipher)
    assert vault.resolve(NAME, "configured") == "configured"
    assert vault.resolve(NAME, None) is None
    assert not vault_path.exists()


def test_rotated_value_wins_over_the_unchanged_configured_one(vault_path: Path, cipher: FernetCipher) -> None:
    TokenVault(vault_path, cipher).store(NAME, "rotated-1", env_value="configured-A")
    TokenVault(vault_path, cipher).store(NAME, "rotated-2", env_value="configured-A")
    # A new process with the same (now stale) configured value uses the newest rotated one.
    fresh = TokenVault(vault_path, cipher)
    assert fresh.resolve(NAME, "configured-A") == "rotated-2"
    assert fresh.persisted_wins(NAME, "configured-A")
    # With no configured value at all, the rotated one is all there is.
    assert fresh.resolve(NAME, None) == "rotated-2"


def test_a_changed_configured_value_means_reauthorised_and_wins(
    vault_path: Path, cipher: FernetCipher
) -> None:
    vault = TokenVault(vault_path, cipher)
    vault.store(NAME, "rotated", env_value="configured-A")
    assert vault.persisted_wins(NAME, "configured-B") is False
    assert vault.entry(NAME) is not None, "persisted_wins changes nothing"
    assert vault.resolve(NAME, "configured-B") == "configured-B"
    assert vault.entry(NAME) is None, "the superseded value is dropped"
    # Going back to the old configured value does not resurrect it.
    assert vault.resolve(NAME, "configured-A") == "configured-A"


def test_a_value_stored_without_configuration_yields_to_a_new_configured_one(
    vault_path: Path, cipher: FernetCipher
) -> None:
    vault = TokenVault(vault_path, cipher)
    vault.store(NAME, "rotated", env_value=None)
    assert vault.resolve(NAME, None) == "rotated"
    assert vault.resolve(NAME, "configured-now") == "configured-now"


def test_file_is_private_encrypted_and_holds_no_plaintext(vault_path: Path, cipher: FernetCipher) -> None:
    vault = TokenVault(vault_path, cipher)
    vault.store(NAME, "known-rotated-secret-Q7", env_value="known-configured-secret-Z3")
    blob = vault_path.read_bytes()
    assert stat.S_IMODE(vault_path.stat().st_mode) == 0o600
    assert b"known" not in blob and NAME.encode() not in blob
    assert cipher.decrypt(blob.decode()).count(b"known-rotated-secret-Q7") == 1
    assert b"known-configured-secret-Z3" not in cipher.decrypt(blob.decode()), "only a salted hash"
    assert "known" not in repr(vault) + repr(vault.entry(NAME))


def test_expiry_metadata(vault_path: Path, cipher: FernetCipher) -> None:
    clock = FakeClock()
    vault = TokenVault(vault_path, cipher, clock=clock)
    expires = clock.now() + timedelta(hours=1)
    vault.store("ETSY_ACCESS_TOKEN", "access", env_value=None, expires_at=expires)
    entry = TokenVault(vault_path, cipher).entry("ETSY_ACCESS_TOKEN")
    assert entry is not None
    assert entry.expires_at == expires and entry.stored_at == clock.now()
    assert vault.expires_at("ETSY_ACCESS_TOKEN") == expires
    assert not entry.expired(clock.now())
    clock.advance(3600)
    assert entry.expired(clock.now())
    with pytest.raises(ValueError):
        vault.store("X", "v", env_value=None, expires_at=expires.replace(tzinfo=None))


def test_forget(vault_path: Path, cipher: FernetCipher) -> None:
    vault = TokenVault(vault_path, cipher)
    vault.store(NAME, "rotated", env_value="c")
    vault.store("ETSY_ACCESS_TOKEN", "a", env_value=None)
    assert vault.forget(NAME) is True
    assert vault.forget(NAME) is False
    assert list(vault.entries()) == ["ETSY_ACCESS_TOKEN"]


def test_a_vault_from_another_key_or_damaged_is_an_error_and_untouched(
    vault_path: Path, cipher: FernetCipher
) -> None:
    TokenVault(vault_path, cipher).store(NAME, "rotated", env_value="c")
    before = vault_path.read_bytes()
    other = FernetCipher(FernetCipher.generate_key())
    with pytest.raises(UserError, match="cannot be decrypted with the data key"):
        TokenVault(vault_path, other).resolve(NAME, "c")
    vault_path.write_bytes(before[: len(before) // 2])
    damaged = vault_path.read_bytes()
    with pytest.raises(UserError, match=str(vault_path)):
        TokenVault(vault_path, cipher).store(NAME, "x", env_value=None)
    assert vault_path.read_bytes() == damaged


def test_context_secret_applies_the_vault_rule_to_rotating_tokens(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NAME, "configured-A")
    monkeypatch.setenv("ETSY_CLIENT_SECRET", "not-rotating")
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert ctx.secret(NAME).get_secret_value() == "configured-A"  # type: ignore[union-attr]
    assert not ctx.vault_path.exists(), "no vault, no key minted just to read a secret"
    ctx.vault().store(NAME, "rotated", env_value="configured-A")
    again = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert again.secret(NAME).get_secret_value() == "rotated"  # type: ignore[union-attr]
    assert again.secret("ETSY_CLIENT_SECRET").get_secret_value() == "not-rotating"  # type: ignore[union-attr]
    monkeypatch.setenv(NAME, "configured-B")
    third = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert third.secret(NAME).get_secret_value() == "configured-B"  # type: ignore[union-attr]
    assert third.vault().entry(NAME) is None
