"""A small TTL cache of answers to slow-changing reads (shop and listing data).

Used by :class:`tf_console.marketplaces.http.ApiClient` when a call passes
``cache=True``; entries live ``MARKETPLACE_CACHE_TTL`` seconds on the injected
clock.  Orders are never cached (the client refuses ``cache=True`` on
side-effecting calls, and order reads simply do not ask for it).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

DEFAULT_MAX_ENTRIES = 256


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    expires_at: float


def cache_key(
    operation: str,
    method: str,
    url: str,
    params: Mapping[str, str] | Sequence[tuple[str, str]] | None,
    body: bytes,
) -> str:
    """A key that tells different calls apart without keeping their bodies in memory."""
    items = sorted(params.items()) if isinstance(params, Mapping) else sorted(params or [])
    digest = hashlib.sha256()
    for part in (operation, method.upper(), url, repr(items)):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


class ResponseCache:
    """LRU-bounded, thread-safe; ``now`` is a monotonic clock in seconds."""

    def __init__(
        self, ttl: float, now: Callable[[], float], *, max_entries: int = DEFAULT_MAX_ENTRIES
    ) -> None:
        self.ttl = ttl
        self._now = now
        self._max = max_entries
        self._entries: OrderedDict[str, CachedAnswer] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.expires_at <= self._now():
                if entry is not None:
                    del self._entries[key]
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: str, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
        if self.ttl <= 0:
            return
        with self._lock:
            self._entries[key] = CachedAnswer(status, tuple(headers), body, self._now() + self.ttl)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (after a write that changes listings, say)."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
