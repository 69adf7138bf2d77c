"""Order export: the JSON shape, PII only on request, and a CSV that round-trips."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from store_helpers import BUYER_NAME, NOW, cipher, make_order, open_store, shipped_order

from tf_console.models import ItemKind, LineItem, Money, Order, OrderStatus, Platform, Shipment, ShipmentState
from tf_console.store import Store
from tf_console.store.export import document_record, export_orders, import_orders_csv, order_record
from tf_console.store.orders import encode_order_document


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "data")
    opened.orders.upsert_many(_orders())
    yield opened
    opened.close()


def _orders() -> list:  # type: ignore[type-arg]
    tricky = make_order("tricky", platform=Platform.AMAZON, created_at=NOW - timedelta(hours=5)).model_copy(
        update={
            "items": [
                LineItem(
                    line_id="l1",
                    sku="SKU,WITH,COMMAS",
                    title='Dragon "Ember", 12"\nsecond line – ünïcödé',
                    quantity=3,
                    kind=ItemKind.PRINT,
                ),
            ],
            "total": None,
            "ship_by": None,
            "currency": "",
            "shipments": [
                Shipment(
                    shipment_id="a",
                    carrier="UPS",
                    tracking="1Z999",
                    shipped_at=NOW,
                    state=ShipmentState.CONFIRMED,
                ),
                Shipment(
                    shipment_id="b",
                    carrier="UPS",
                    tracking="1ZBAD",
                    shipped_at=NOW,
                    state=ShipmentState.REJECTED,
                ),
            ],
            "marketplace_tracking": ["1Z999", "EXTRA42"],
        }
    )
    no_items = make_order("empty", platform=Platform.EBAY, created_at=NOW - timedelta(hours=4)).model_copy(
        update={"items": [], "buyer": None}
    )
    return [
        make_order("plain", created_at=NOW - timedelta(hours=6)),
        tricky,
        no_items,
        shipped_order("old", days_ago=200),
    ]


def _export(store: Store, fmt: str, include_pii: bool) -> str:
    out = io.StringIO()
    count = export_orders(store, fmt, include_pii, out)  # type: ignore[arg-type]
    assert count == 4
    return out.getvalue()


def test_json_export_shape(store: Store) -> None:
    records = json.loads(_export(store, "json", False))
    assert [r["order_id"] for r in records] == ["old", "plain", "tricky", "empty"], (
        "oldest first, archive included"
    )
    plain = records[1]
    assert plain == {
        "platform": "etsy",
        "order_id": "plain",
        "status": "unshipped",
        "created_at": "2026-11-02T09:00:00Z",
        "updated_at": "2026-11-02T09:00:00Z",
        "ship_by": "2026-11-05T09:00:00Z",
        "currency": "USD",
        "total": "42.50",
        "items": [
            {
                "sku": "DRAGON-RED-L",
                "title": "Articulated dragon, red, large",
                "quantity": 2,
                "unit_price": "18.00",
                "kind": "print",
            },
            {"sku": "STAND-01", "title": "Display stand", "quantity": 1, "unit_price": None, "kind": "stock"},
        ],
        "tracking": [],
    }
    tricky = records[2]
    assert tricky["platform"] == "amazon" and tricky["total"] is None and tricky["ship_by"] is None
    assert tricky["tracking"] == ["1Z999", "EXTRA42"]
    assert records[0]["status"] == OrderStatus.SHIPPED.value and records[0]["tracking"] == ["94001old"]
    assert BUYER_NAME not in json.dumps(records)


def test_json_export_with_pii(store: Store) -> None:
    records = {r["order_id"]: r for r in json.loads(_export(store, "json", True))}
    assert records["plain"]["buyer_name"] == BUYER_NAME
    assert records["plain"]["address"]["line1"] == "12 Orchard Lane"
    assert records["plain"]["address"]["country"] == "US"
    assert records["empty"]["buyer_name"] is None and records["empty"]["address"] is None


@pytest.mark.parametrize("include_pii", [False, True])
def test_csv_round_trips_to_the_json_export(store: Store, include_pii: bool) -> None:
    as_json = json.loads(_export(store, "json", include_pii))
    as_csv = _export(store, "csv", include_pii)
    assert as_csv.splitlines()[0].startswith("platform,order_id,status")
    assert import_orders_csv(as_csv) == as_json


def test_csv_import_rejects_foreign_files() -> None:
    with pytest.raises(ValueError, match="lacks the column"):
        import_orders_csv("a,b\n1,2\n")


def _variety() -> list[Order]:
    base = make_order("v")
    odd_times = base.model_copy(
        update={
            "created_at": datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=UTC),
            "updated_at": datetime(2026, 3, 4, 5, 6, 7, 120000, tzinfo=UTC),
            "ship_by": None,
        }
    )
    amounts = base.model_copy(
        update={
            "total": Money(amount=Decimal("1E+2"), currency="EUR"),
            "items": [
                LineItem(line_id="x", quantity=0, unit_price=Money(amount=Decimal("0.000"), currency="EUR"))
            ],
        }
    )
    tracked = base.model_copy(
        update={
            "shipments": [
                Shipment(
                    shipment_id="1",
                    carrier="DHL",
                    tracking="T1",
                    shipped_at=NOW,
                    state=ShipmentState.REJECTED,
                ),
                Shipment(
                    shipment_id="2", carrier="DHL", tracking="T2", shipped_at=NOW, state=ShipmentState.UNKNOWN
                ),
                Shipment(shipment_id="3", carrier="DHL", tracking="T2", shipped_at=NOW),
            ],
            "marketplace_tracking": ["T1", "T2", "T3"],
        }
    )
    return [
        base,
        odd_times,
        amounts,
        tracked,
        base.model_copy(update={"items": [], "total": None, "currency": ""}),
    ]


@pytest.mark.parametrize("order", _variety())
def test_fast_document_records_equal_the_model_records(order: Order) -> None:
    doc = encode_order_document(order, cipher())
    assert document_record(doc) == order_record(order)


@settings(max_examples=60, deadline=None)
@given(
    created=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    amount=st.decimals(min_value=0, max_value=10**7, places=3, allow_nan=False),
)
def test_document_records_agree_on_times_and_money(created: datetime, amount: Decimal) -> None:
    order = make_order("p").model_copy(
        update={"created_at": created, "updated_at": created, "total": Money(amount=amount, currency="USD")}
    )
    assert document_record(encode_order_document(order, cipher())) == order_record(order)


def test_export_orders_by_creation_time_with_fractions(tmp_path: Path) -> None:
    with open_store(tmp_path / "data") as store:
        second = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
        store.orders.upsert_many(
            [
                make_order("later", created_at=second + timedelta(microseconds=500_000)),
                make_order("sooner", created_at=second),
            ]
        )
        out = io.StringIO()
        export_orders(store, "json", False, out)
        assert [r["order_id"] for r in json.loads(out.getvalue())] == ["sooner", "later"]
        with_pii = io.StringIO()
        export_orders(store, "json", True, with_pii)
        assert [r["order_id"] for r in json.loads(with_pii.getvalue())] == ["sooner", "later"]
