"""Test-wide setup: hermetic homes, no real keyring, snapshots under ``snapshots/``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
CONFORMANCE = SHARED / "conformance"

# Marketplace variables that must never leak in from the machine running the tests.
_SCRUB_PREFIXES = ("AMAZON_", "EBAY_", "ETSY_", "TF_", "MARKETPLACE_")


@pytest.fixture(autouse=True)
def hermetic_environment(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(_SCRUB_PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local" / "share"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local" / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    yield
    keyring.set_keyring(previous)


def conformance_dir(platform: str) -> Path:
    """The shared conformance folder of a platform; tests skip cleanly when it is absent."""
    folder = CONFORMANCE / platform
    if not folder.is_dir():
        pytest.skip(f"{folder} is not available")
    return folder


# Snapshot SVGs live under <repo>/snapshots/<test module>/ rather than tests/__snapshots__.
try:
    import pytest_textual_snapshot as _pts

    class _RepoSnapshots(_pts.SVGImageExtension):  # type: ignore[misc,name-defined]
        @classmethod
        def dirname(cls, *, test_location: object) -> str:
            module = Path(str(getattr(test_location, "filepath", "tests/unknown.py"))).stem
            return str(REPO / "snapshots" / module)

    _pts.SVGImageExtension = _RepoSnapshots
except ImportError:  # pragma: no cover - the test extra always installs it
    pass
