"""The durable encrypted store under ``TF_DATA_DIR`` (schema version 2).

Layout (every folder 0700, every file 0600)::

    store.lock                   cross-process lock (filelock), held across each read-modify-write
    meta.json                    header (schema version, data key id) and small named values
    orders/hot-00..0f.json       open and recently closed orders, 16 shards by key hash
    orders/archive-YYYY-MM.json  shipped/cancelled orders older than archive_after_days, by created_at month
    collections/<name>.json      generic keyed collections (print jobs, outbox, …)
    logs/<name>.jsonl            append-only, size-rotated logs (API health, audit)
    *.bak                        the previous version of each state file (last good backup)

Every state file is a TinyDB database written atomically (see :mod:`.storage`).
Buyer data and personalisation are encrypted, one envelope per record.
"""

from tf_console.store.collection import Collection
from tf_console.store.errors import StoreError
from tf_console.store.logs import AppendLog
from tf_console.store.meta import MetaValues
from tf_console.store.migrations import CURRENT_SCHEMA
from tf_console.store.orders import OrderRepository, UpsertResult
from tf_console.store.store import ChangeToken, Store

__all__ = [
    "CURRENT_SCHEMA",
    "AppendLog",
    "ChangeToken",
    "Collection",
    "MetaValues",
    "OrderRepository",
    "Store",
    "StoreError",
    "UpsertResult",
]
