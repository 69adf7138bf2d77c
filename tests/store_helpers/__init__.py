"""Builders shared by the store tests (and the store's worker subprocesses)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.models import (
    Address,
    ItemKind,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentState,
)
from tf_console.store import Store

# A fixed key so subprocesses and the test agree without passing secrets around.
TEST_KEY = b"q0z5tqgq7aJ4mOcJYzq0SPvSPIg3nG4ZqKk1C9dDqGg="
OTHER_KEY = b"Qk2dxB1s8w6uYbq4mSdF7e0J3c5R9tV2nL8pX1aZ0yE="

BUYER_NAME = "Wilhelmina Quartzfeather"
BUYER_EMAIL = "wilhelmina.q@example.org"
PERSONALISATION = "Happy 7th birthday Ottoline-Xq"

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def cipher() -> FernetCipher:
    return FernetCipher(TEST_KEY)


def open_store(data_dir: Path, clock: FakeClock | None = None, archive_after_days: int = 30) -> Store:
    return Store.open(
        data_dir, cipher(), clock=clock or FakeClock(NOW), archive_after_days=archive_after_days
    )


def usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


def make_order(
    order_id: str,
    *,
    platform: Platform = Platform.ETSY,
    status: OrderStatus = OrderStatus.UNSHIPPED,
    created_at: datetime = NOW,
    updated_at: datetime | None = None,
    total: str = "42.50",
    buyer_name: str = BUYER_NAME,
    personalisation: str = PERSONALISATION,
    shipped_at: datetime | None = None,
) -> Order:
    shipments = []
    if shipped_at is not None:
        shipments.append(
            Shipment(
                shipment_id=f"s-{order_id}",
                carrier="USPS",
                tracking=f"94001{order_id}",
                shipped_at=shipped_at,
                state=ShipmentState.CONFIRMED,
                requested_at=shipped_at,
                updated_at=shipped_at,
            )
        )
    return Order(
        platform=platform,
        order_id=order_id,
        status=status,
        raw_status=status.value,
        created_at=created_at,
        updated_at=updated_at or created_at,
        ship_by=created_at + timedelta(days=3),
        currency="USD",
        total=usd(total),
        items=[
            LineItem(
                line_id=f"{order_id}-1",
                sku="DRAGON-RED-L",
                title="Articulated dragon, red, large",
                quantity=2,
                unit_price=usd("18.00"),
                kind=ItemKind.PRINT,
                personalisation=personalisation,
            ),
            LineItem(
                line_id=f"{order_id}-2",
                sku="STAND-01",
                title="Display stand",
                quantity=1,
                kind=ItemKind.STOCK,
            ),
        ],
        buyer=Address(
            name=buyer_name,
            email=BUYER_EMAIL,
            phone="+1 555 0100",
            line1="12 Orchard Lane",
            city="Springfield",
            region="IL",
            postal_code="62701",
            country="US",
        ),
        shipments=shipments,
    )


def shipped_order(order_id: str, *, days_ago: int, platform: Platform = Platform.ETSY) -> Order:
    """An order created ``days_ago + 2`` days before NOW and shipped ``days_ago`` days before NOW."""
    shipped = NOW - timedelta(days=days_ago)
    return make_order(
        order_id,
        platform=platform,
        status=OrderStatus.SHIPPED,
        created_at=shipped - timedelta(days=2),
        updated_at=shipped,
        shipped_at=shipped,
    )


class Note(BaseModel):
    """A small record for collection tests; ``secret`` is encrypted at rest."""

    note_id: str
    body: str = ""
    secret: str = ""
    count: int = 0


def note_key(note: Note) -> str:
    return note.note_id
