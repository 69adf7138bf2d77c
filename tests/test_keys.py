"""The PII data key: minted once, kept in the keyring or a 0600 file, never silently replaced."""

from __future__ import annotations

import json
import stat
import threading
from pathlib import Path

import pytest

from tests.fixtures_config import (  # noqa: F401 - fixtures
    ConfigPaths,
    MemoryKeyring,
    PlaintextKeyring,
    config_paths_fixture,
    memory_keyring_fixture,
)
from tf_console.config import Settings
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.errors import UserError
from tf_console.keyring_access import KeyringAccess
from tf_console.keys import (
    DATA_KEY_NAME,
    KeyLocation,
    expected_key_id,
    find_data_key,
    key_file_path,
    load_cipher,
    load_data_key,
    state_exists,
)


def settings_for(paths: ConfigPaths) -> Settings:
    return Settings.load(cwd=paths.cwd, config_dir=paths.config_dir, use_keyring=False)


def write_state(data_dir: Path, key_id: str | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    meta = {"schema": 1} if key_id is None else {"schema": 1, "key_id": key_id}
    (data_dir / "meta.json").write_text(json.dumps(meta), encoding="utf-8")


def test_without_keyring_the_key_goes_to_a_0600_file_in_the_config_dir(config_paths: ConfigPaths) -> None:
    cipher, info = load_data_key(
        settings_for(config_paths),
        keyring=KeyringAccess(),
        config_dir=config_paths.config_dir,
        state_exists=False,
    )
    path = key_file_path(config_paths.config_dir)
    assert info.created and info.location is KeyLocation.FILE and info.where == str(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(config_paths.config_dir.stat().st_mode) == 0o700
    assert not path.is_relative_to(config_paths.data_dir)
    assert info.key_id == cipher.key_id
    # The next start reads the same key.
    again, info2 = load_data_key(
        settings_for(config_paths),
        keyring=KeyringAccess(),
        config_dir=config_paths.config_dir,
        state_exists=True,
    )
    assert not info2.created and again.key_id == cipher.key_id
    assert again.decrypt(cipher.encrypt(b"buyer")) == b"buyer"


def test_with_a_keyring_the_key_goes_there(memory_keyring: MemoryKeyring, config_paths: ConfigPaths) -> None:
    cipher, info = load_data_key(
        settings_for(config_paths),
        keyring=KeyringAccess(),
        config_dir=config_paths.config_dir,
        state_exists=False,
    )
    assert info.location is KeyLocation.KEYRING and info.created
    assert (
        FernetCipher(memory_keyring.entries[("tf-console", DATA_KEY_NAME)].encode()).key_id == cipher.key_id
    )
    assert not key_file_path(config_paths.config_dir).exists()


def test_a_plaintext_keyring_is_passed_over_for_the_key_file(config_paths: ConfigPaths) -> None:
    import keyring

    backend = PlaintextKeyring()
    keyring.set_keyring(backend)
    _, info = load_data_key(
        settings_for(config_paths),
        keyring=KeyringAccess(),
        config_dir=config_paths.config_dir,
        state_exists=False,
    )
    assert info.location is KeyLocation.FILE
    assert backend.entries == {}


def test_missing_key_with_existing_state_is_a_clear_error_and_mints_nothing(
    config_paths: ConfigPaths,
) -> None:
    write_state(config_paths.data_dir, "0123abcd4567")
    with pytest.raises(UserError) as caught:
        load_cipher(
            settings_for(config_paths),
            keyring=KeyringAccess(),
            config_dir=config_paths.config_dir,
            state_exists=True,
        )
    text = str(caught.value)
    assert "0123abcd4567" in text
    assert str(key_file_path(config_paths.config_dir)) in text
    assert "Restore it from your backup" in text
    assert "No new key was created" in text
    assert not key_file_path(config_paths.config_dir).exists()


def test_missing_key_through_the_context_leaves_no_key_anywhere(
    memory_keyring: MemoryKeyring, config_paths: ConfigPaths
) -> None:
    write_state(config_paths.data_dir, None)
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    with pytest.raises(UserError, match="its id is not recorded"):
        ctx.cipher()
    assert memory_keyring.entries == {}
    assert not key_file_path(config_paths.config_dir).exists()


def test_a_key_with_another_id_than_the_state_is_refused(config_paths: ConfigPaths) -> None:
    load_cipher(
        settings_for(config_paths),
        keyring=KeyringAccess(),
        config_dir=config_paths.config_dir,
        state_exists=False,
    )
    write_state(config_paths.data_dir, "ffffffffffff")
    with pytest.raises(UserError, match="encrypted with data key ffffffffffff"):
        load_cipher(
            settings_for(config_paths),
            keyring=KeyringAccess(),
            config_dir=config_paths.config_dir,
            state_exists=True,
        )


def test_the_key_matching_the_state_is_chosen_when_both_places_hold_one(
    memory_keyring: MemoryKeyring, config_paths: ConfigPaths
) -> None:
    file_key = FernetCipher.generate_key()
    config_paths.config_dir.mkdir(parents=True)
    key_file_path(config_paths.config_dir).write_bytes(file_key + b"\n")
    memory_keyring.set_password("tf-console", DATA_KEY_NAME, FernetCipher.generate_key().decode())
    write_state(config_paths.data_dir, FernetCipher(file_key).key_id)
    cipher = load_cipher(
        settings_for(config_paths),
        keyring=KeyringAccess(),
        config_dir=config_paths.config_dir,
        state_exists=True,
    )
    assert cipher.key_id == FernetCipher(file_key).key_id


def test_a_damaged_key_file_is_an_error_not_a_new_key(config_paths: ConfigPaths) -> None:
    config_paths.config_dir.mkdir(parents=True)
    path = key_file_path(config_paths.config_dir)
    path.write_bytes(b"not-a-key\n")
    with pytest.raises(UserError, match="is damaged"):
        load_cipher(
            settings_for(config_paths),
            keyring=KeyringAccess(),
            config_dir=config_paths.config_dir,
            state_exists=False,
        )
    assert path.read_bytes() == b"not-a-key\n"


def test_concurrent_first_starts_agree_on_one_key(config_paths: ConfigPaths) -> None:
    settings = settings_for(config_paths)
    ids: list[str] = []
    barrier = threading.Barrier(4)

    def start() -> None:
        barrier.wait()
        cipher = load_cipher(
            settings, keyring=KeyringAccess(), config_dir=config_paths.config_dir, state_exists=False
        )
        ids.append(cipher.key_id)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 4 and len(set(ids)) == 1
    found = find_data_key(keyring=KeyringAccess(), config_dir=config_paths.config_dir)
    assert found is not None and found[1].key_id == ids[0]


def test_the_real_store_header_names_the_key_the_data_needs(config_paths: ConfigPaths) -> None:
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    store = ctx.open_store()
    store.close()
    key_id = ctx.cipher().key_id
    assert expected_key_id(config_paths.data_dir) == key_id
    key_file_path(config_paths.config_dir).unlink()
    again = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert again.state_exists
    with pytest.raises(UserError, match=f"encrypted with data key {key_id}"):
        again.open_store()
    assert not key_file_path(config_paths.config_dir).exists()


def test_schema_1_state_and_the_vault_count_as_state(config_paths: ConfigPaths) -> None:
    config_paths.data_dir.mkdir()
    assert not state_exists(config_paths.data_dir)
    v1 = {"meta": {"1": {"name": "key_id", "value": "a1b2c3d4e5f6"}}, "orders": {}}
    (config_paths.data_dir / "state.json").write_text(json.dumps(v1))
    assert state_exists(config_paths.data_dir)
    assert expected_key_id(config_paths.data_dir) == "a1b2c3d4e5f6"
    (config_paths.data_dir / "state.json").unlink()
    (config_paths.data_dir / "tokens.enc").write_text("x")
    assert state_exists(config_paths.data_dir)
    assert expected_key_id(config_paths.data_dir) is None
