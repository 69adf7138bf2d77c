"""What was pushed where: one record per (marketplace, listing SKU), and eBay's revision budget.

A push record remembers the quantity last asked for, where it stands (waiting,
sent, queued on the marketplace, applied, refused, skipped), how long the
marketplace took to apply it, and the quantity the marketplace is known to show
(``confirmed``).  Sales on that marketplace after ``confirmed_at`` lowered its own
count, so :meth:`PushRecord.expected` is what it shows now — the planner pushes
only when that differs from what should be offered.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import BaseModel

from tf_console.inventory.ledger import StockRecord, stock_key
from tf_console.models import Platform, UtcDatetime
from tf_console.store import Collection, Store

PUSHES_COLLECTION = "stock_pushes"
BUDGET_COLLECTION = "stock_revisions"


class PushStatus(enum.StrEnum):
    PENDING = "pending"  # in the outbox, waiting for the debounce, a retry or the revision budget
    QUEUED = "queued"  # accepted, not visible yet: read back before it counts (Amazon)
    APPLIED = "applied"
    UNVERIFIED = "unverified"  # accepted, but never seen applied
    REJECTED = "rejected"
    SKIPPED = "skipped"  # no listing with that SKU, or the marketplace holds the stock (FBA)

    @property
    def settled(self) -> bool:
        return self in (PushStatus.APPLIED, PushStatus.UNVERIFIED, PushStatus.REJECTED, PushStatus.SKIPPED)


class PushRecord(BaseModel):
    platform: Platform
    listing_sku: str
    stock_sku: str
    item_id: str = ""  # the outbox item carrying the latest quantity
    quantity: int | None = None  # the latest quantity asked for
    status: PushStatus = PushStatus.PENDING
    answer: str = ""
    requested_at: UtcDatetime | None = None  # when the change was seen (the latency clock starts)
    sent_at: UtcDatetime | None = None
    settled_at: UtcDatetime | None = None
    confirmed_quantity: int | None = None  # what the marketplace is known to show…
    confirmed_at: UtcDatetime | None = None  # …since this moment
    refused_quantity: int | None = None  # the marketplace refused this value: not re-sent as is
    skip_until: UtcDatetime | None = None
    pushes: int = 0

    @property
    def key(self) -> str:
        return push_key(self.platform, self.listing_sku)

    def expected(self, record: StockRecord | None) -> int | None:
        """The quantity the marketplace shows now, or None when it is not known."""
        if self.confirmed_quantity is None or self.confirmed_at is None:
            return None
        if record is None:
            return self.confirmed_quantity
        sold = record.sales_since(self.platform, self.listing_sku, self.confirmed_at)
        if sold is None:
            return None
        return max(0, self.confirmed_quantity - sold)

    @property
    def latency(self) -> timedelta | None:
        """How long the marketplace took to apply the latest quantity, from the change being seen."""
        if self.status is not PushStatus.APPLIED or self.settled_at is None or self.requested_at is None:
            return None
        return self.settled_at - self.requested_at


def push_key(platform: Platform, listing_sku: str) -> str:
    return f"{platform.value}:{stock_key(listing_sku)}"


def push_collection(store: Store) -> Collection[PushRecord]:
    return store.collection(PUSHES_COLLECTION, PushRecord, key=lambda r: r.key)


# ---------------------------------------------------------------------------
# eBay: at most 250 revisions per listing per calendar day


class RevisionBucket(BaseModel):
    key: str  # "ebay:<ItemID>" (or "ebay:sku:<SKU>" while the listing is not known)
    tokens: float
    at: UtcDatetime


@dataclass(frozen=True, slots=True)
class RevisionBudget:
    """A token bucket per listing: ``burst`` revisions at once, ``per_day`` more spread over a day.

    Any 24 hours then see at most ``burst + per_day`` revisions — under eBay's 250 per
    listing per calendar day in every time zone, since a calendar day is a 24-hour
    window.  Changes that arrive while the bucket is empty wait in the outbox, where
    the planner keeps replacing their quantity, so only the latest is sent.
    """

    burst: int = 40
    per_day: int = 200

    @property
    def rate(self) -> float:
        return self.per_day / 86_400.0

    def level(self, bucket: RevisionBucket | None, now: datetime) -> float:
        if bucket is None:
            return float(self.burst)
        elapsed = max(0.0, (now - bucket.at).total_seconds())
        return min(float(self.burst), bucket.tokens + elapsed * self.rate)

    def ready_at(self, bucket: RevisionBucket | None, now: datetime) -> datetime:
        level = self.level(bucket, now)
        if level >= 1.0:
            return now
        return now + timedelta(seconds=(1.0 - level) / self.rate)

    def spend(self, key: str, bucket: RevisionBucket | None, now: datetime) -> RevisionBucket:
        return RevisionBucket(key=key, tokens=self.level(bucket, now) - 1.0, at=now)


def budget_collection(store: Store) -> Collection[RevisionBucket]:
    return store.collection(BUDGET_COLLECTION, RevisionBucket, key=lambda b: b.key)
