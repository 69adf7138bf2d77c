"""Order export: the JSON shape, PII only on request, and a CSV that round-trips."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import BUYER_NAME, NOW, make_order, open_store, shipped_order

from tf_console.models import ItemKind, LineItem, OrderStatus, Platform, Shipment, ShipmentState
from tf_console.store import Store
from tf_console.store.export import export_orders, import_orders_csv


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
