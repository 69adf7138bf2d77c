"""Switchable faults: what the sandbox does wrong, and when.

A :class:`Fault` names a :class:`FaultKind`, which requests it hits (route name,
method, path prefix), how often (``probability``) and how many times
(``times``).  :class:`FaultController` holds the active faults; the sandbox core
asks it for the fault of each request.  Faults can be added and cleared at run
time, in-process or over HTTP (``/_sandbox/faults``).
"""

from __future__ import annotations

import enum
import random
import threading
from dataclasses import asdict, dataclass, field, replace
from typing import Any


class FaultKind(enum.StrEnum):
    RATE_LIMIT = "429"  # a 429 storm with Retry-After
    SERVER_ERROR = "5xx"  # 500/502/503 answers
    SLOW = "slow"  # the answer comes after ``delay`` seconds
    TIMEOUT = "timeout"  # no answer before the client gives up
    MALFORMED = "malformed"  # a complete answer whose body cannot be parsed
    TRUNCATED = "truncated"  # Content-Length promises more than arrives
    EXPIRED_TOKEN = "expired-token"  # every access token issued so far expires now
    DROP_AFTER_APPLY = "drop-after-apply"  # the side effect happens, the answer is lost
    CONNECT_ERROR = "connect-error"  # the connection is refused (over loopback: closed unanswered)

    @classmethod
    def parse(cls, name: str) -> FaultKind:
        aliases = {
            "429-storm": "429",
            "rate-limit": "429",
            "500": "5xx",
            "503": "5xx",
            "drop": "drop-after-apply",
        }
        key = aliases.get(name.strip().lower(), name.strip().lower())
        try:
            return cls(key)
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise ValueError(f"unknown fault {name!r}; known faults: {known}") from None


@dataclass(slots=True)
class Fault:
    kind: FaultKind
    route: str | None = None  # a route name ("test.orders.list"); None = every route
    method: str | None = None
    path_prefix: str | None = None
    probability: float = 1.0
    times: int | None = None  # how many more requests it hits; None = until cleared
    retry_after: float = 2.0  # 429
    status: int = 503  # 5xx
    delay: float = 2.0  # slow: seconds before the answer
    hold: float = 30.0  # timeout over loopback: seconds the server sits on the request
    apply_first: bool = False  # timeout: run the handler (apply the side effect) before stalling
    fault_id: int = 0
    hits: int = 0

    def matches(self, method: str, path: str, route: str | None) -> bool:
        if self.times is not None and self.times <= 0:
            return False
        if self.route is not None and self.route != route:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_prefix is None or path.startswith(self.path_prefix)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        allowed = {
            "route",
            "method",
            "path_prefix",
            "probability",
            "times",
            "retry_after",
            "status",
            "delay",
            "hold",
            "apply_first",
        }
        kwargs = {k: v for k, v in data.items() if k in allowed}
        return cls(kind=FaultKind.parse(str(data["kind"])), **kwargs)


@dataclass(slots=True)
class _Registry:
    faults: list[Fault] = field(default_factory=list)
    next_id: int = 1


class FaultController:
    """Thread-safe list of active faults; the first matching fault that fires wins."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._lock = threading.Lock()
        self._registry = _Registry()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            stored = replace(fault, fault_id=self._registry.next_id, hits=0)
            self._registry.next_id += 1
            self._registry.faults.append(stored)
            return stored

    def inject(self, kind: FaultKind | str, **options: Any) -> Fault:
        """Shorthand: ``sandbox.faults.inject("429", times=3, retry_after=1)``."""
        return self.add(Fault(kind=FaultKind.parse(kind) if isinstance(kind, str) else kind, **options))

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._registry.faults)
            self._registry.faults = [f for f in self._registry.faults if f.fault_id != fault_id]
            return len(self._registry.faults) != before

    def clear(self) -> None:
        with self._lock:
            self._registry.faults.clear()

    def active(self) -> list[Fault]:
        with self._lock:
            return [replace(f) for f in self._registry.faults if f.times is None or f.times > 0]

    def pick(self, method: str, path: str, route: str | None) -> Fault | None:
        """The fault for this request, if any fires; its ``times`` is used up by one."""
        with self._lock:
            for fault in self._registry.faults:
                if not fault.matches(method, path, route):
                    continue
                if fault.probability < 1.0 and self._rng.random() >= fault.probability:
                    continue
                if fault.times is not None:
                    fault.times -= 1
                fault.hits += 1
                return replace(fault)
        return None
