"""The stock ledger: every change to a SKU's count is an entry with a reason.

A SKU's balance is two numbers — **on-hand** (units on the shelf; ``None`` until the
operator counts them) and **allocated** (units of open orders not shipped yet) —
and it is, by construction, the replay of its entries: :func:`replay` of
``record.entries`` always equals ``(record.on_hand, record.allocated)``.  Old
entries are folded into one ``opening`` entry so a record stays small and the
replay still holds.

How orders move the numbers (one order line of a stock SKU):

* sold (the line appears, or its quantity grows): ``sale``, allocated +n;
* shipped: ``shipped``, on-hand −n and allocated −n (the units left the shelf);
* cancelled or reduced before shipping: ``release``, allocated −n;
* a line first seen already shipped counts only when it shipped after the last
  shelf count (earlier shipments are already reflected in the count).

**available = on-hand − allocated − buffer**, never below zero, and only when
on-hand is known: an unset count is never published as 0.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from tf_console.models import Platform, UtcDatetime

#: entries kept per SKU before the oldest are folded into the opening balance
MAX_ENTRIES = 200
#: entries kept after a fold (folding in batches keeps the rewrite rare)
KEEP_AFTER_FOLD = 150


class EntryKind(enum.StrEnum):
    OPENING = "opening"  # the balance carried forward when older entries were folded
    COUNT = "count"  # the operator counted the shelf: on-hand set
    ADJUST = "adjust"  # the operator added or removed units, with a reason
    PRINTED = "printed"  # finished prints went on the shelf
    SALE = "sale"  # an order line took units: allocated up
    RELEASE = "release"  # an order was cancelled or reduced before shipping: allocated down
    SHIPPED = "shipped"  # units left the shelf: on-hand and allocated down

    @property
    def manual(self) -> bool:
        return self in (EntryKind.COUNT, EntryKind.ADJUST, EntryKind.PRINTED)


class LedgerEntry(BaseModel):
    seq: int
    at: UtcDatetime
    kind: EntryKind
    #: COUNT and OPENING: the on-hand they set (OPENING of a never-counted SKU: None)
    on_hand: int | None = None
    #: OPENING only: the allocated balance carried forward
    allocated: int | None = None
    on_hand_delta: int = 0
    allocated_delta: int = 0
    reason: str = ""
    #: order sales: where and when the sale happened (the marketplace's own count dropped then)
    platform: Platform | None = None
    listing_sku: str = ""
    order_key: str = ""
    sold_at: UtcDatetime | None = None
    user: str = ""


class Balance(BaseModel):
    on_hand: int | None = None
    allocated: int = 0


def apply_entry(balance: Balance, entry: LedgerEntry) -> Balance:
    """The balance after ``entry``.  Deltas on an uncounted shelf leave it uncounted."""
    if entry.kind is EntryKind.OPENING:
        return Balance(on_hand=entry.on_hand, allocated=entry.allocated or 0)
    if entry.kind is EntryKind.COUNT:
        on_hand = entry.on_hand
    elif balance.on_hand is None:
        on_hand = None
    else:
        on_hand = balance.on_hand + entry.on_hand_delta
    return Balance(on_hand=on_hand, allocated=balance.allocated + entry.allocated_delta)


def replay(entries: Iterable[LedgerEntry]) -> Balance:
    balance = Balance()
    for entry in entries:
        balance = apply_entry(balance, entry)
    return balance


def available_quantity(on_hand: int | None, allocated: int, buffer: int) -> int | None:
    """on-hand − allocated − buffer, never below zero; None while on-hand is unknown."""
    if on_hand is None:
        return None
    return max(0, on_hand - allocated - buffer)


class LineState(BaseModel):
    """What the ledger has already counted for one order line (so a re-poll changes nothing)."""

    allocated: int = 0
    shipped: int = 0  # units accounted as gone (deducted, or shipped before the count)
    platform: Platform
    listing_sku: str = ""
    open: bool = True
    settled_at: UtcDatetime | None = None  # when the line stopped holding units


class StockRecord(BaseModel):
    """One SKU: its balance, its entries, and the order lines it has counted."""

    sku: str  # as the operator or the catalog wrote it; keyed case-insensitively
    on_hand: int | None = None
    allocated: int = 0
    counted_at: UtcDatetime | None = None  # the last shelf count
    #: lines settled before this were forgotten; a line first seen shipped before it is old news
    forgotten_before: UtcDatetime | None = None
    next_seq: int = 1
    entries: list[LedgerEntry] = Field(default_factory=list)
    lines: dict[str, LineState] = Field(default_factory=dict)
    #: platform → listing SKUs seen on its order lines that draw on this SKU (the listing map's
    #: discovered part; the catalog may override it)
    listing_skus: dict[Platform, list[str]] = Field(default_factory=dict)
    updated_at: UtcDatetime | None = None

    def note_listing(self, platform: Platform, listing_sku: str) -> None:
        listing_sku = listing_sku.strip()
        seen = self.listing_skus.setdefault(platform, [])
        if listing_sku and listing_sku.casefold() not in {s.casefold() for s in seen}:
            seen.append(listing_sku)

    @property
    def key(self) -> str:
        return stock_key(self.sku)

    @property
    def counted(self) -> bool:
        return self.on_hand is not None

    def balance(self) -> Balance:
        return Balance(on_hand=self.on_hand, allocated=self.allocated)

    def add(self, entry: LedgerEntry) -> LedgerEntry:
        """Append ``entry`` (its ``seq`` assigned here) and move the balance with it."""
        entry = entry.model_copy(update={"seq": self.next_seq})
        self.next_seq += 1
        after = apply_entry(self.balance(), entry)
        self.on_hand, self.allocated = after.on_hand, after.allocated
        if entry.kind is EntryKind.COUNT:
            self.counted_at = entry.at
        self.entries.append(entry)
        self.updated_at = entry.at
        if len(self.entries) > MAX_ENTRIES:
            self.fold(len(self.entries) - KEEP_AFTER_FOLD)
        return entry

    def fold(self, count: int) -> None:
        """Replace the oldest ``count`` entries by one opening entry with their balance."""
        if count <= 0:
            return
        folded, kept = self.entries[:count], self.entries[count:]
        carried = replay(folded)
        opening = LedgerEntry(
            seq=folded[-1].seq,
            at=folded[-1].at,
            kind=EntryKind.OPENING,
            on_hand=carried.on_hand,
            allocated=carried.allocated,
            reason=f"balance carried forward from {len(folded)} earlier entries",
        )
        self.entries = [opening, *kept]

    def sales_since(self, platform: Platform, listing_sku: str, since: datetime) -> int | None:
        """Units sold on ``platform`` under ``listing_sku`` after ``since``; None when entries
        from that far back were folded away (the caller must then assume nothing)."""
        if self.entries and self.entries[0].kind is EntryKind.OPENING and self.entries[0].at > since:
            return None
        wanted = listing_sku.casefold()
        return sum(
            e.allocated_delta
            for e in self.entries
            if e.kind is EntryKind.SALE
            and e.platform is platform
            and e.listing_sku.casefold() == wanted
            and e.sold_at is not None
            and e.sold_at > since
        )

    def explain(self, last: int = 20) -> Sequence[LedgerEntry]:
        return self.entries[-last:]


def stock_key(sku: str) -> str:
    """The case-insensitive key of a SKU (hand-typed SKUs vary in case across marketplaces)."""
    return sku.strip().casefold()
