"""The console's service facade: everything the Textual UI needs, without Textual.

The UI (:mod:`tf_console.ui`) talks only to :class:`ConsoleService`; it never
imports the store, HTTP or TinyDB.
"""

from tf_console.console.events import ConsoleEvent, EventKind
from tf_console.console.service import ConsoleService
from tf_console.console.summary import (
    FILTER_HELP,
    SORT_KEYS,
    OrderFilter,
    OrderIndex,
    OrderListing,
    OrderQuery,
    OrderSummary,
    SortKey,
    summarize,
)

__all__ = [
    "FILTER_HELP",
    "SORT_KEYS",
    "ConsoleEvent",
    "ConsoleService",
    "EventKind",
    "OrderFilter",
    "OrderIndex",
    "OrderListing",
    "OrderQuery",
    "OrderSummary",
    "SortKey",
    "summarize",
]
