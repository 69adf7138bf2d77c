"""The system keyring, optional and never allowed to hang the program.

Every keyring call runs in a daemon thread and is abandoned after ``timeout`` seconds
(a locked or wedged Secret Service would otherwise block start-up or exit).  After a
timeout the keyring counts as unusable for the rest of the process, so the program
waits at most once.  Unusable backends — keyring's ``fail`` and ``null`` backends, an
empty chainer — mean "no keyring": callers fall back to the environment and env files.
Plain-text ``keyrings.alt`` backends work but are flagged as insecure (``doctor`` says so).

Nothing here logs or raises with a secret value in it; entry names are not secret.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import keyring as keyring_lib
from keyring.backend import KeyringBackend
from keyring.backends import chainer, fail, null
from keyring.errors import KeyringError, NoKeyringError, PasswordDeleteError

log = logging.getLogger(__name__)

KEYRING_SERVICE = "tf-console"
DEFAULT_TIMEOUT = 3.0

T = TypeVar("T")


class KeyringUnavailable(Exception):
    """The keyring cannot be used right now; the text is a sentence."""


@dataclass(frozen=True, slots=True)
class BackendInfo:
    description: str  # e.g. "SecretService Keyring (keyring.backends.SecretService.Keyring)"
    usable: bool
    insecure: bool
    problem: str = ""  # a sentence when unusable or insecure

    @property
    def problem_clause(self) -> str:
        return as_clause(self.problem)


def as_clause(sentence: str) -> str:
    """A sentence as a clause for inside another one (no capital, no full stop)."""
    text = sentence.rstrip(".")
    return text[:1].lower() + text[1:]


def _qualified_name(backend: object) -> str:
    cls = type(backend)
    return f"{cls.__module__}.{cls.__qualname__}"


def _display_name(backend: KeyringBackend) -> str:
    try:
        name = str(backend.name)
    except Exception:  # a third-party backend's name property must not break doctor
        name = type(backend).__name__
    return f"{name} ({_qualified_name(backend)})"


def _is_plaintext(backend: KeyringBackend) -> bool:
    qualified = _qualified_name(backend)
    return qualified.startswith("keyrings.alt.") and "plaintext" in qualified.lower()


def _is_alt(backend: KeyringBackend) -> bool:
    return _qualified_name(backend).startswith("keyrings.alt.")


def classify_backend(backend: KeyringBackend) -> BackendInfo:
    """Decide whether a keyring backend can hold our secrets, and how safely."""
    description = _display_name(backend)
    if isinstance(backend, fail.Keyring):
        return BackendInfo(description, False, False, "No keyring backend is available on this system.")
    if isinstance(backend, null.Keyring):
        return BackendInfo(description, False, False, "The keyring is switched off (null backend).")
    if isinstance(backend, chainer.ChainerBackend):
        members: list[KeyringBackend] = list(backend.backends)
        if not members:
            return BackendInfo(description, False, False, "The keyring chain has no usable backend.")
        member_infos = [classify_backend(member) for member in members]
        usable = [info for info in member_infos if info.usable]
        if not usable:
            return BackendInfo(description, False, False, member_infos[0].problem)
        description = "chain of " + ", ".join(info.description for info in member_infos)
        insecure = [info for info in usable if info.insecure]
        if insecure:
            return BackendInfo(description, True, True, insecure[0].problem)
        return BackendInfo(description, True, False)
    if _is_plaintext(backend):
        return BackendInfo(
            description,
            True,
            True,
            "The keyring backend stores secrets in a plain-text file; install a system keyring "
            "(Secret Service, KWallet, macOS Keychain) or remove keyrings.alt.",
        )
    if _is_alt(backend):
        return BackendInfo(
            description,
            True,
            True,
            "The keyring backend comes from keyrings.alt, which its authors do not recommend for secrets.",
        )
    return BackendInfo(description, True, False)


class KeyringAccess:
    """Our entries in the system keyring (service ``tf-console``), with a timeout on every call."""

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT, service: str = KEYRING_SERVICE) -> None:
        self.timeout = timeout
        self.service = service
        self._lock = threading.Lock()
        self._backend: KeyringBackend | None = None
        self._info: BackendInfo | None = None

    # --- backend --------------------------------------------------------
    def info(self) -> BackendInfo:
        with self._lock:
            if self._info is None:
                try:
                    backend = self._call(keyring_lib.get_keyring)
                    self._backend = backend
                    self._info = classify_backend(backend)
                except KeyringUnavailable as exc:
                    self._info = BackendInfo("unknown (the keyring did not answer)", False, False, str(exc))
                except Exception as exc:  # keyring's backend discovery can raise anything
                    log.warning("keyring backend discovery failed: %s", type(exc).__name__)
                    self._info = BackendInfo(
                        "unknown", False, False, f"The keyring could not be loaded ({type(exc).__name__})."
                    )
            return self._info

    @property
    def usable(self) -> bool:
        return self.info().usable

    @property
    def insecure(self) -> bool:
        return self.info().insecure

    def backend_description(self) -> str:
        return f"the keyring ({self.info().description})"

    # --- entries -----------------------------------------------------------
    def get(self, name: str) -> str | None:
        """The stored value, or None when absent or when the keyring cannot answer."""
        return self.get_many([name]).get(name)

    def get_many(self, names: Iterable[str]) -> dict[str, str]:
        """Values of those ``names`` that are stored; one timeout for the whole batch."""
        backend = self._usable_backend()
        if backend is None:
            return {}
        wanted = list(names)
        found: dict[str, str] = {}
        found_lock = threading.Lock()

        def snapshot() -> dict[str, str]:
            # The worker may still be writing after a timeout.
            with found_lock:
                return dict(found)

        def read_all() -> None:
            for name in wanted:
                try:
                    value = backend.get_password(self.service, name)
                except NoKeyringError:
                    raise
                except KeyringError as exc:
                    log.warning("keyring could not read %s: %s", name, type(exc).__name__)
                    continue
                if value:
                    with found_lock:
                        found[name] = value

        try:
            self._call(read_all)
        except KeyringUnavailable:
            # Whatever arrived before the timeout is still good.
            return snapshot()
        except NoKeyringError:
            self._mark_unusable("No keyring backend is available on this system.")
            return {}
        except Exception as exc:
            log.warning("keyring read failed: %s", type(exc).__name__)
        return snapshot()

    def set(self, name: str, value: str) -> None:
        backend = self._require_backend()
        try:
            self._call(lambda: backend.set_password(self.service, name, value))
        except KeyringUnavailable:
            raise
        except Exception as exc:
            raise KeyringUnavailable(f"The keyring refused to store {name} ({type(exc).__name__}).") from None

    def delete(self, name: str) -> bool:
        """Remove ``name``; False when there was no such entry."""
        backend = self._require_backend()

        def remove() -> bool:
            try:
                backend.delete_password(self.service, name)
            except PasswordDeleteError:
                return False
            return True

        try:
            return self._call(remove)
        except KeyringUnavailable:
            raise
        except Exception as exc:
            raise KeyringUnavailable(
                f"The keyring refused to delete {name} ({type(exc).__name__})."
            ) from None

    # --- internals -------------------------------------------------------
    def _usable_backend(self) -> KeyringBackend | None:
        info = self.info()
        return self._backend if info.usable else None

    def _require_backend(self) -> KeyringBackend:
        backend = self._usable_backend()
        if backend is None:
            raise KeyringUnavailable(self.info().problem or "The keyring is not usable.")
        return backend

    def _mark_unusable(self, problem: str) -> None:
        previous = self._info
        description = previous.description if previous else "unknown"
        self._info = BackendInfo(description, False, False, problem)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in a daemon thread; give up after the timeout and stop using the keyring."""
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = fn()
            except BaseException as exc:  # handed to the caller's thread below
                outcome["error"] = exc

        worker = threading.Thread(target=target, name="tf-console-keyring", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            problem = (
                f"The keyring did not answer within {self.timeout:g} seconds (is it locked?); "
                "secrets come from the environment and env files instead."
            )
            log.warning("keyring did not answer within %.1f s; not using it", self.timeout)
            self._mark_unusable(problem)
            raise KeyringUnavailable(problem)
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]
