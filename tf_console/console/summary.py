"""Order summaries and the in-memory index the console lists, filters and sorts.

The incoming-orders pane must stay fast over the whole store (100k orders and
more, archives included), so the console keeps one small frozen
:class:`OrderSummary` per order — no buyer, no personalisation, nothing
encrypted — in an :class:`OrderIndex`.  The index is built once in a worker
thread at start and kept current from sync events; every filter, sort and
search runs over it, and the pane mounts only a window of the result.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tf_console.models import FulfilledBy, ItemKind, Order, OrderStatus, Platform, ShipmentState

PLATFORM_SHORT: dict[Platform, str] = {
    Platform.AMAZON: "AMZ",
    Platform.EBAY: "EBY",
    Platform.ETSY: "ETS",
    Platform.TEST: "TST",
}


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """What the orders pane shows and filters on; never PII."""

    key: str
    platform: Platform
    order_id: str
    status: OrderStatus
    raw_status: str
    created_at: datetime
    updated_at: datetime
    ship_by: datetime | None
    total: Decimal | None
    currency: str
    total_is_proceeds: bool
    units: int
    lines: int
    printed_units: int
    stock_units: int
    unknown_units: int
    shipment_state: ShipmentState | None  # the latest shipment's state, None when never shipped by us
    fulfilled_by: FulfilledBy
    cancel_requested: bool
    refunded: bool
    shippable: bool
    skus: tuple[str, ...]
    search_text: str  # lower-case words the free-text filter matches

    @property
    def is_open(self) -> bool:
        return self.status.is_open

    def is_late(self, now: datetime) -> bool:
        return self.is_open and self.ship_by is not None and self.ship_by < now


def summarize(order: Order) -> OrderSummary:
    units = {kind: 0 for kind in ItemKind}
    for item in order.items:
        units[item.kind] += item.quantity
    latest = max(order.shipments, key=lambda s: s.requested_at, default=None)
    skus = tuple(dict.fromkeys(item.sku for item in order.items if item.sku))
    words = [
        order.platform.value,
        order.order_id,
        order.status.value,
        order.raw_status,
        *skus,
        *(item.title for item in order.items),
        *(s.tracking for s in order.shipments),
        *order.marketplace_tracking,
    ]
    return OrderSummary(
        key=order.key,
        platform=order.platform,
        order_id=order.order_id,
        status=order.status,
        raw_status=order.raw_status,
        created_at=order.created_at,
        updated_at=order.updated_at,
        ship_by=order.ship_by,
        total=order.total.amount if order.total is not None else None,
        currency=order.total.currency if order.total is not None else order.currency,
        total_is_proceeds=order.total_is_proceeds,
        units=sum(units.values()),
        lines=len(order.items),
        printed_units=units[ItemKind.PRINT],
        stock_units=units[ItemKind.STOCK],
        unknown_units=units[ItemKind.UNKNOWN],
        shipment_state=latest.state if latest is not None else None,
        fulfilled_by=order.fulfilled_by,
        cancel_requested=order.cancel_requested,
        refunded=order.refunded,
        shippable=order.shippable,
        skus=skus,
        search_text=" ".join(w for w in words if w).lower(),
    )


# ---------------------------------------------------------------------------
# Queries


class SortKey:
    NEWEST = "newest"
    SHIP_BY = "ship-by"
    TOTAL = "total"
    PLATFORM = "platform"
    STATUS = "status"


SORT_KEYS: tuple[str, ...] = (
    SortKey.NEWEST,
    SortKey.SHIP_BY,
    SortKey.TOTAL,
    SortKey.PLATFORM,
    SortKey.STATUS,
)

_FAR_FUTURE = datetime.max.replace(tzinfo=None)


def _sort_function(sort: str) -> Callable[[OrderSummary], tuple[object, ...]]:
    if sort == SortKey.SHIP_BY:
        # Open orders first by how soon they must ship; closed ones after, newest first.
        return lambda s: (
            not s.is_open,
            s.ship_by.replace(tzinfo=None) if s.ship_by is not None and s.is_open else _FAR_FUTURE,
            -s.created_at.timestamp(),
            s.key,
        )
    if sort == SortKey.TOTAL:
        return lambda s: (-(s.total or Decimal(0)), -s.created_at.timestamp(), s.key)
    if sort == SortKey.PLATFORM:
        return lambda s: (s.platform.value, -s.created_at.timestamp(), s.key)
    if sort == SortKey.STATUS:
        rank = {status: n for n, status in enumerate(OrderStatus)}
        return lambda s: (rank[s.status], -s.created_at.timestamp(), s.key)
    return lambda s: (-s.created_at.timestamp(), s.key)


FILTER_HELP = (
    "words match order id, SKU, title, tracking or status; "
    "platform:etsy  status:open|unshipped|shipped|cancelled  ship:requested|confirmed|rejected|none  "
    "kind:print|stock|unknown  late"
)


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """A parsed ``/`` filter: every part must match."""

    text: str = ""
    words: tuple[str, ...] = ()
    platforms: frozenset[Platform] = frozenset()
    statuses: frozenset[OrderStatus] = frozenset()
    shipment_states: frozenset[str] = frozenset()  # ShipmentState values or "none"
    kinds: frozenset[ItemKind] = frozenset()
    late: bool = False
    problems: tuple[str, ...] = ()  # parts that were not understood (shown, ignored)

    @property
    def is_empty(self) -> bool:
        return not (self.words or self.platforms or self.statuses or self.shipment_states or self.kinds) and (
            not self.late
        )

    @classmethod
    def parse(cls, text: str) -> OrderFilter:
        words: list[str] = []
        platforms: set[Platform] = set()
        statuses: set[OrderStatus] = set()
        shipment_states: set[str] = set()
        kinds: set[ItemKind] = set()
        late = False
        problems: list[str] = []
        for part in text.lower().split():
            name, sep, value = part.partition(":")
            if not sep:
                if part in ("late", "is:late"):
                    late = True
                else:
                    words.append(part)
                continue
            if name in ("platform", "p"):
                found = [p for p in Platform if p.value.startswith(value) or p.label.lower() == value]
                if found:
                    platforms.update(found)
                else:
                    problems.append(part)
            elif name in ("status", "s", "is"):
                if value == "open":
                    statuses.update(s for s in OrderStatus if s.is_open)
                elif value in ("closed", "done"):
                    statuses.update(s for s in OrderStatus if not s.is_open)
                elif value == "late":
                    late = True
                else:
                    found_statuses = [s for s in OrderStatus if s.value.startswith(value)]
                    if found_statuses:
                        statuses.update(found_statuses)
                    else:
                        problems.append(part)
            elif name in ("ship", "shipment"):
                if value in ("none", "no"):
                    shipment_states.add("none")
                else:
                    found_states = [s.value for s in ShipmentState if s.value.startswith(value)]
                    if found_states:
                        shipment_states.update(found_states)
                    else:
                        problems.append(part)
            elif name in ("kind", "k"):
                found_kinds = [k for k in ItemKind if k.value.startswith(value)]
                if found_kinds:
                    kinds.update(found_kinds)
                else:
                    problems.append(part)
            elif name == "sku":
                words.append(value)
            else:
                words.append(part)
        return cls(
            text=text.strip(),
            words=tuple(words),
            platforms=frozenset(platforms),
            statuses=frozenset(statuses),
            shipment_states=frozenset(shipment_states),
            kinds=frozenset(kinds),
            late=late,
            problems=tuple(problems),
        )

    def matches(self, summary: OrderSummary, now: datetime) -> bool:
        if self.platforms and summary.platform not in self.platforms:
            return False
        if self.statuses and summary.status not in self.statuses:
            return False
        if self.shipment_states:
            state = summary.shipment_state.value if summary.shipment_state is not None else "none"
            if state not in self.shipment_states:
                return False
        if self.kinds:
            counts = {
                ItemKind.PRINT: summary.printed_units,
                ItemKind.STOCK: summary.stock_units,
                ItemKind.UNKNOWN: summary.unknown_units,
            }
            if not any(counts[kind] for kind in self.kinds):
                return False
        if self.late and not summary.is_late(now):
            return False
        text = summary.search_text
        return all(word in text for word in self.words)


@dataclass(frozen=True, slots=True)
class OrderQuery:
    filter: OrderFilter = field(default_factory=OrderFilter)
    sort: str = SortKey.NEWEST


@dataclass(frozen=True, slots=True)
class OrderListing:
    """The keys matching a query, in order; the pane shows a window of them."""

    query: OrderQuery
    keys: tuple[str, ...]
    total_indexed: int
    version: int

    def __len__(self) -> int:
        return len(self.keys)


# ---------------------------------------------------------------------------
# The index


class OrderIndex:
    """Summaries of every order in the store, by key; thread-safe.

    Scans (:meth:`add_scanned`) never overwrite a summary already present, because
    sync events (:meth:`put`) always carry the newer record.  Sorted key lists are
    cached per sort order and rebuilt lazily; Python's sort is near-linear on the
    almost-sorted list left by a few changes.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, OrderSummary] = {}
        self._version = 0
        self._sorted: dict[str, tuple[int, list[str]]] = {}
        self._complete = False

    @property
    def version(self) -> int:
        with self._lock:
            return self._version

    @property
    def complete(self) -> bool:
        """Whether the start-up scan (archives included) has finished."""
        with self._lock:
            return self._complete

    def mark_complete(self) -> None:
        with self._lock:
            self._complete = True
            self._version += 1

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_key)

    def get(self, key: str) -> OrderSummary | None:
        with self._lock:
            return self._by_key.get(key)

    def many(self, keys: Iterable[str]) -> list[OrderSummary]:
        with self._lock:
            return [self._by_key[k] for k in keys if k in self._by_key]

    def put(self, summaries: Iterable[OrderSummary]) -> list[str]:
        """Store newer summaries; returns the keys whose summary changed."""
        changed: list[str] = []
        with self._lock:
            for summary in summaries:
                if self._by_key.get(summary.key) != summary:
                    self._by_key[summary.key] = summary
                    changed.append(summary.key)
            if changed:
                self._version += 1
        return changed

    def add_scanned(self, summaries: Iterable[OrderSummary]) -> int:
        """Summaries read by a scan; an existing (newer) entry wins. Returns how many were added."""
        added = 0
        with self._lock:
            for summary in summaries:
                if summary.key not in self._by_key:
                    self._by_key[summary.key] = summary
                    added += 1
            if added:
                self._version += 1
        return added

    def _sorted_keys(self, sort: str) -> list[str]:
        """Keys in ``sort`` order (called with the lock held)."""
        cached = self._sorted.get(sort)
        if cached is not None and cached[0] == self._version:
            return cached[1]
        keyfn = _sort_function(sort)
        by_key = self._by_key
        if cached is not None:
            known = set(cached[1])
            keys = [k for k in cached[1] if k in by_key] + [k for k in by_key if k not in known]
        else:
            keys = list(by_key)
        keys.sort(key=lambda k: keyfn(by_key[k]))
        self._sorted[sort] = (self._version, keys)
        return keys

    def listing(self, query: OrderQuery, now: datetime) -> OrderListing:
        with self._lock:
            keys = self._sorted_keys(query.sort)
            flt = query.filter
            if flt.is_empty:
                chosen = tuple(keys)
            else:
                by_key = self._by_key
                chosen = tuple(k for k in keys if flt.matches(by_key[k], now))
            return OrderListing(query, chosen, len(self._by_key), self._version)
