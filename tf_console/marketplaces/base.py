"""The protocol every marketplace implements, and the errors it raises.

A platform module (``amazon``, ``ebay``, ``etsy``, and the sandbox framework's
``test`` platform) is the one place that knows its wire format: it builds
requests, sends them through :class:`tf_console.marketplaces.http.ApiClient`,
and parses answers into :mod:`tf_console.models`.  The sync engine and the
outbox only ever see this protocol.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable

from tf_console.models import Order, Platform, Shipment

# ---------------------------------------------------------------------------
# Errors.  Every message is a sentence a shop owner can act on, and never
# contains a secret or PII.


class MarketplaceError(Exception):
    """Base class.  ``str(err)`` is a user-facing sentence."""

    def __init__(
        self,
        message: str,
        *,
        platform: Platform | None = None,
        code: str = "",
        status: int | None = None,
        request_id: str = "",
    ) -> None:
        super().__init__(message)
        self.platform = platform
        self.code = code
        self.status = status
        self.request_id = request_id

    @property
    def sentence(self) -> str:
        return str(self)


class ReauthNeeded(MarketplaceError):
    """Credentials are invalid, expired or revoked and a refresh did not help.

    ``variable`` names what the owner must set (``tf-console creds set NAME``).
    """

    def __init__(self, message: str, *, variable: str = "", **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.variable = variable


class NotConfigured(MarketplaceError):
    """The platform lacks credentials; it is disabled with this reason."""


class TransientError(MarketplaceError):
    """Worth retrying later: 429, 5xx, timeouts, connection errors, truncated bodies."""


class RateLimited(TransientError):
    def __init__(self, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class QuotaExhausted(TransientError):
    """A daily budget is spent; the call waits for the next day rather than provoking errors."""


class PermanentError(MarketplaceError):
    """The marketplace refused the request; re-sending it unchanged will fail the same way."""


class MalformedResponse(MarketplaceError):
    """The answer could not be parsed (bad JSON/XML, missing fields, over the size cap)."""


class OutcomeUnknown(MarketplaceError):
    """A side-effecting call was sent but no answer came back (timeout, dropped connection).

    The call may or may not have taken effect: it must be reconciled by reading the
    marketplace before anything is re-sent.
    """


# ---------------------------------------------------------------------------
# Results


@dataclass(slots=True)
class OrderPage:
    """One page of orders changed since the cursor."""

    orders: list[Order]
    # Page-level problems that did not stop the page (a receipt missing fields…):
    # sentences for health, the rest of the page is still used.
    errors: list[str] = field(default_factory=list)
    # Progress for a backfill progress bar when the platform knows it.
    page_number: int = 1
    total_pages: int | None = None


class ConfirmState(enum.StrEnum):
    CONFIRMED = "confirmed"  # the marketplace shows the shipment
    REJECTED = "rejected"  # refused for good; ``answer`` says why
    PENDING = "pending"  # accepted but not visible yet: read back later


@dataclass(slots=True)
class ShipmentResult:
    state: ConfirmState
    answer: str = ""  # the marketplace's words (sentence), for display
    request_id: str = ""


@dataclass(slots=True)
class RemoteShipments:
    """What the marketplace shows for an order: used to reconcile before any re-send."""

    order_found: bool
    tracking_numbers: list[str] = field(default_factory=list)
    shipped: bool = False
    order: Order | None = None


class PushState(enum.StrEnum):
    APPLIED = "applied"
    QUEUED = "queued"  # accepted for later processing (Amazon ACCEPTED): verify later
    REJECTED = "rejected"
    SKIPPED = "skipped"  # e.g. FBA listing, no listing for the SKU


@dataclass(slots=True)
class PushResult:
    state: PushState
    answer: str = ""


@dataclass(slots=True)
class CredentialCheck:
    ok: bool
    sentence: str  # "Amazon credentials work (seller A1B2…, marketplace ATVPDKIKX0DER)."
    details: dict[str, str] = field(default_factory=dict)  # non-secret facts for doctor


# ---------------------------------------------------------------------------
# The protocol


@runtime_checkable
class Marketplace(Protocol):
    platform: Platform
    #: how far back the platform can fetch on a first backfill (eBay: 90), None = no limit known
    max_backfill_days: int | None
    #: the poll interval this platform prefers at minimum (eBay suggests 15 minutes), seconds
    min_poll_interval: float

    def fetch_orders(self, since: datetime, *, until: datetime | None = None) -> AsyncIterator[OrderPage]:
        """Orders whose last-modified time is ≥ ``since`` (UTC), page by page."""
        ...

    async def fetch_orders_by_id(self, order_ids: Sequence[str]) -> list[Order]:
        """Re-read specific orders (open-order re-checks catch cancellations the
        modified-since filter misses).  Unknown ids are simply absent."""
        ...

    async def confirm_shipment(self, order: Order, shipment: Shipment) -> ShipmentResult:
        """Send a shipment confirmation once.  Raises OutcomeUnknown when the answer
        was lost, TransientError when it certainly did not take effect, PermanentError
        (or returns REJECTED) when refused."""
        ...

    async def read_shipments(self, order: Order) -> RemoteShipments:
        """What the marketplace now shows for ``order`` (tracking numbers, shipped)."""
        ...

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        """Set the available quantity of a merchant-fulfilled SKU on this platform."""
        ...

    async def check_credentials(self) -> CredentialCheck:
        """One cheap authenticated call."""
        ...

    async def aclose(self) -> None: ...
