"""Events the console service hands to the UI.

Listeners may be called from the event loop or from a worker thread; the UI
turns each event into a Textual message (``post_message`` is thread-safe) and
coalesces them, so a burst of calls repaints once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from tf_console.models import Platform


class EventKind(enum.StrEnum):
    ORDERS = "orders"  # keys: order keys whose stored record changed
    JOBS = "jobs"  # the print queue changed
    OUTBOX = "outbox"  # keys: order keys whose outbox item changed
    HEALTH = "health"  # platform: its health changed
    POLL_STARTED = "poll-started"
    POLL_FINISHED = "poll-finished"  # text: the poll's summary sentence; ok: whether it worked
    PROGRESS = "progress"  # a backfill page: page, total
    INDEX = "index"  # the order index grew (count) or finished (done)
    POLLER = "poller"  # who polls changed


@dataclass(frozen=True, slots=True)
class ConsoleEvent:
    kind: EventKind
    keys: tuple[str, ...] = ()
    platform: Platform | None = None
    text: str = ""
    ok: bool = True
    page: int = 0
    total: int | None = None
    count: int = 0
    done: bool = False
