"""Fixtures and fake keyring backends for the configuration, keys, vault, doctor and creds tests.

Import the ``*_fixture`` functions into a test module to make the fixtures available
under their plain names (``config_paths``, ``memory_keyring``, ``hanging_keyring``).

``tests/conftest.py`` already scrubs marketplace variables, points HOME/XDG at temporary
folders and installs keyring's ``fail`` backend for every test; these add a working
directory, a data dir and keyrings that work, hang, or store in plain text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError

from tf_console.config import default_config_dir


class MemoryKeyring(KeyringBackend):
    """A keyring that works, in memory."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.entries.pop((service, username), None) is None:
            raise PasswordDeleteError(username)


class HangingKeyring(KeyringBackend):
    """A keyring whose every call blocks until released (a locked Secret Service)."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.release = threading.Event()
        self.calls = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.calls += 1
        self.release.wait()
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        self.calls += 1
        self.release.wait()

    def delete_password(self, service: str, username: str) -> None:
        self.calls += 1
        self.release.wait()


class PlaintextKeyring(MemoryKeyring):
    """Looks like keyrings.alt's plain-text file backend to the classifier."""


PlaintextKeyring.__module__ = "keyrings.alt.file"


@dataclass
class ConfigPaths:
    cwd: Path
    config_dir: Path
    data_dir: Path


@pytest.fixture(name="config_paths")
def config_paths_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ConfigPaths:
    """A working directory (the process's cwd), the platformdirs config dir and TF_DATA_DIR."""
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    data_dir = tmp_path / "state"
    monkeypatch.setenv("TF_DATA_DIR", str(data_dir))
    return ConfigPaths(cwd=cwd, config_dir=default_config_dir(), data_dir=data_dir)


@pytest.fixture(name="memory_keyring")
def memory_keyring_fixture() -> Iterator[MemoryKeyring]:
    backend = MemoryKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


@pytest.fixture(name="hanging_keyring")
def hanging_keyring_fixture() -> Iterator[HangingKeyring]:
    backend = HangingKeyring()
    previous = keyring.get_keyring()
    keyring.set_keyring(backend)
    yield backend
    backend.release.set()  # let the abandoned daemon threads finish
    keyring.set_keyring(previous)


def write_env(path: Path, **values: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()), encoding="utf-8")
    return path
