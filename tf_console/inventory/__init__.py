"""Cross-platform inventory sync and made-to-order quantities (no Textual here).

- :mod:`.ledger` — the stock ledger: on-hand, allocated, entries with reasons, replay.
- :mod:`.book` — the ledger in the store; orders move it, the operator sets and adjusts it.
- :mod:`.policy` — which SKUs are synced and how (the catalog's ``[stock]`` tables).
- :mod:`.made_to_order` — the quantity offered for printed SKUs, from the schedule.
- :mod:`.listings` — the listing map: where each SKU lives on each marketplace.
- :mod:`.pushes` — what was pushed where, and eBay's revision budget.
- :mod:`.planner` — pushing through the outbox, coalesced; delivery and read-back.
- :mod:`.service` — :class:`InventoryService` and :func:`install_inventory`.
"""

from __future__ import annotations

from tf_console.inventory.book import StockBook, StockChange
from tf_console.inventory.ledger import (
    Balance,
    EntryKind,
    LedgerEntry,
    StockRecord,
    available_quantity,
    replay,
)
from tf_console.inventory.made_to_order import MadeToOrderQuote, made_to_order_quantity
from tf_console.inventory.pushes import PushRecord, PushStatus, RevisionBudget
from tf_console.inventory.service import InventoryService, PushView, StockDetail, StockRow, install_inventory

__all__ = [
    "Balance",
    "EntryKind",
    "InventoryService",
    "LedgerEntry",
    "MadeToOrderQuote",
    "PushRecord",
    "PushStatus",
    "PushView",
    "RevisionBudget",
    "StockBook",
    "StockChange",
    "StockDetail",
    "StockRecord",
    "StockRow",
    "available_quantity",
    "install_inventory",
    "made_to_order_quantity",
    "replay",
]
