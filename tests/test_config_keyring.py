"""The keyring is optional: unusable or hung backends fall back quickly, plaintext is flagged."""

from __future__ import annotations

import time

import keyring
import keyring.backends.fail
import keyring.backends.null
import pytest

from tests.fixtures_config import (  # noqa: F401 - fixtures
    ConfigPaths,
    HangingKeyring,
    MemoryKeyring,
    PlaintextKeyring,
    config_paths_fixture,
    hanging_keyring_fixture,
    memory_keyring_fixture,
    write_env,
)
from tf_console.config import Settings
from tf_console.keyring_access import KeyringAccess, KeyringUnavailable, classify_backend


def test_working_keyring_round_trip(memory_keyring: MemoryKeyring) -> None:
    access = KeyringAccess()
    assert access.usable and not access.insecure
    access.set("ETSY_REFRESH_TOKEN", "value-1")
    assert memory_keyring.entries[("tf-console", "ETSY_REFRESH_TOKEN")] == "value-1"
    assert access.get("ETSY_REFRESH_TOKEN") == "value-1"
    assert access.get_many(["ETSY_REFRESH_TOKEN", "ETSY_ACCESS_TOKEN"]) == {"ETSY_REFRESH_TOKEN": "value-1"}
    assert access.delete("ETSY_REFRESH_TOKEN") is True
    assert access.delete("ETSY_REFRESH_TOKEN") is False
    assert access.get("ETSY_REFRESH_TOKEN") is None


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring, keyring.backends.null.Keyring],
    ids=["fail", "null"],
)
def test_fail_and_null_backends_are_not_usable(backend: type[keyring.backend.KeyringBackend]) -> None:
    keyring.set_keyring(backend())
    access = KeyringAccess()
    assert not access.usable
    assert access.info().problem.endswith(".")
    assert access.get("ETSY_REFRESH_TOKEN") is None
    assert access.get_many(["A", "B"]) == {}
    with pytest.raises(KeyringUnavailable):
        access.set("ETSY_REFRESH_TOKEN", "x")


def test_plaintext_backend_is_usable_but_insecure(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring.set_keyring(PlaintextKeyring())
    access = KeyringAccess()
    assert access.usable and access.insecure
    assert "plain-text" in access.info().problem
    assert "keyrings.alt.file" in access.backend_description()


def test_classify_empty_chain_as_unusable() -> None:
    from keyring.backends.chainer import ChainerBackend

    class EmptyChain(ChainerBackend):
        backends = ()

    assert not classify_backend(EmptyChain()).usable  # type: ignore[no-untyped-call]


def test_hanging_keyring_falls_back_within_the_default_three_seconds(
    hanging_keyring: HangingKeyring,
) -> None:
    access = KeyringAccess()  # the default 3 s timeout
    started = time.monotonic()
    assert access.usable  # discovery answers; the calls hang
    assert access.get_many(["ETSY_REFRESH_TOKEN", "ETSY_CLIENT_ID"]) == {}
    elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 4.5  # the timeout is 3 s; the margin absorbs a loaded CI machine
    # From now on the keyring is skipped at once: the program waits at most once.
    started = time.monotonic()
    assert not access.usable
    assert access.get("ETSY_CLIENT_ID") is None
    with pytest.raises(KeyringUnavailable, match="did not answer within 3 seconds"):
        access.set("ETSY_CLIENT_ID", "x")
    assert time.monotonic() - started < 0.1
    assert hanging_keyring.calls == 1


def test_hanging_keyring_does_not_block_settings(
    hanging_keyring: HangingKeyring, config_paths: ConfigPaths
) -> None:
    write_env(config_paths.cwd / ".env.local", ETSY_CLIENT_ID="from-file")
    started = time.monotonic()
    settings = Settings.load(
        cwd=config_paths.cwd, config_dir=config_paths.config_dir, keyring=KeyringAccess(timeout=0.3)
    )
    assert time.monotonic() - started < 1.5
    assert settings.etsy_client_id == "from-file"
    assert settings.etsy_refresh_token is None


def test_hanging_backend_discovery_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    release = threading.Event()

    def wedged_discovery() -> None:
        release.wait()

    monkeypatch.setattr(keyring, "get_keyring", wedged_discovery)
    try:
        started = time.monotonic()
        access = KeyringAccess(timeout=0.2)
        assert not access.usable
        assert time.monotonic() - started < 1.0
        assert "did not answer" in access.info().problem
    finally:
        release.set()


def test_backend_errors_on_one_entry_do_not_lose_the_others(memory_keyring: MemoryKeyring) -> None:
    from keyring.errors import KeyringError

    memory_keyring.set_password("tf-console", "GOOD", "ok")
    original = memory_keyring.get_password

    def flaky(service: str, username: str) -> str | None:
        if username == "BAD":
            raise KeyringError("backend hiccup")
        return original(service, username)

    memory_keyring.get_password = flaky  # type: ignore[method-assign]
    access = KeyringAccess()
    assert access.get_many(["BAD", "GOOD"]) == {"GOOD": "ok"}
    assert access.usable
