"""Order export (JSON or CSV) for ``tf-console export``.

JSON is a list of objects::

    {platform, order_id, status, created_at, updated_at, ship_by, currency, total,
     items: [{sku, title, quantity, unit_price, kind}], tracking}

with lowercase platform ids, money as decimal strings (``total`` is the order total
the marketplace reports, or null), ISO 8601 UTC times (``...Z``) and ``tracking`` the
list of tracking numbers.  With PII, ``buyer_name`` (null when unknown) and
``address`` (an object, or null) are added.

CSV has one row per line item with the order's columns repeated (an order without
items has one row whose item columns are empty); ``line`` numbers the items from 1,
``tracking`` joins the numbers with ``;`` and an empty cell stands for null.
:func:`import_orders_csv` reads it back into the JSON export's objects.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from tf_console.models import Order
from tf_console.store.storage import collector_paused
from tf_console.store.store import Store

ExportFormat = Literal["json", "csv"]

ORDER_COLUMNS = (
    "platform",
    "order_id",
    "status",
    "created_at",
    "updated_at",
    "ship_by",
    "currency",
    "total",
    "tracking",
)
ITEM_COLUMNS = ("line", "sku", "title", "quantity", "unit_price", "kind")
ADDRESS_FIELDS = ("name", "line1", "line2", "city", "region", "postal_code", "country", "phone", "email")
PII_COLUMNS = ("buyer_name", *(f"address_{name}" for name in ADDRESS_FIELDS))
_NULLABLE = frozenset({"ship_by", "total", "unit_price", "buyer_name"})
TRACKING_SEPARATOR = ";"


def iso_utc(moment: datetime) -> str:
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat().replace("+00:00", "Z")


def order_record(order: Order, *, include_pii: bool = False) -> dict[str, Any]:
    """One order as the JSON export shows it."""
    record: dict[str, Any] = {
        "platform": order.platform.value,
        "order_id": order.order_id,
        "status": order.status.value,
        "created_at": iso_utc(order.created_at),
        "updated_at": iso_utc(order.updated_at),
        "ship_by": iso_utc(order.ship_by) if order.ship_by else None,
        "currency": order.currency,
        "total": format(order.total.amount, "f") if order.total else None,
        "items": [
            {
                "sku": item.sku,
                "title": item.title,
                "quantity": item.quantity,
                "unit_price": format(item.unit_price.amount, "f") if item.unit_price else None,
                "kind": item.kind.value,
            }
            for item in order.items
        ],
        "tracking": list(order.tracking_numbers),
    }
    if include_pii:
        buyer = order.buyer
        record["buyer_name"] = buyer.name if buyer is not None and buyer.name else None
        record["address"] = (
            {name: getattr(buyer, name) for name in ADDRESS_FIELDS}
            if buyer is not None and not buyer.is_empty()
            else None
        )
    return record


def document_record(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The export record (without PII) straight from a stored order document.

    Equal to ``order_record(Order.model_validate(doc))`` — a test holds the two
    together — but skips model validation, which is most of a 100k-order export.
    """
    total = doc.get("total")
    return {
        "platform": doc["platform"],
        "order_id": doc["order_id"],
        "status": doc["status"],
        "created_at": _iso_text(doc["created_at"]),
        "updated_at": _iso_text(doc["updated_at"]),
        "ship_by": _iso_text(doc["ship_by"]) if doc.get("ship_by") else None,
        "currency": doc.get("currency", ""),
        "total": total["amount"] if total else None,
        "items": [
            {
                "sku": item.get("sku", ""),
                "title": item.get("title", ""),
                "quantity": item["quantity"],
                "unit_price": item["unit_price"]["amount"] if item.get("unit_price") else None,
                "kind": item.get("kind", "unknown"),
            }
            for item in doc.get("items") or ()
        ],
        "tracking": _tracking_numbers(doc),
    }


def _iso_text(value: str) -> str:
    # Stored times are pydantic's UTC form ("...Z"); anything else is normalised.
    return value if value.endswith("Z") else iso_utc(datetime.fromisoformat(value))


def _time_key(text: str) -> tuple[str, str]:
    """Sort key of an export time: ``...:05Z`` before ``...:05.5Z`` (plain text puts "." first)."""
    fraction = text[19:-1] if text[19:20] == "." else ""
    return text[:19], fraction


def _tracking_numbers(doc: Mapping[str, Any]) -> list[str]:
    """``Order.tracking_numbers`` on a document."""
    seen = [s["tracking"] for s in doc.get("shipments") or () if s.get("state") != "rejected"]
    for number in doc.get("marketplace_tracking") or ():
        if number not in seen:
            seen.append(number)
    return seen


def export_orders(store: Store, fmt: ExportFormat, include_pii: bool, out: TextIO) -> int:
    """Write every order (hot and archived) to ``out``; returns how many were written."""
    with collector_paused():
        if include_pii:
            orders = store.orders.iter_all(include_archive=True, include_pii=True)
            records = [order_record(order, include_pii=True) for order in orders]
        else:
            records = [document_record(doc) for doc in store.orders.iter_documents(include_archive=True)]
    return write_records(records, fmt, include_pii, out)


def write_orders(orders: Iterable[Order], fmt: ExportFormat, include_pii: bool, out: TextIO) -> int:
    """Export ``orders`` (see :func:`write_records`)."""
    with collector_paused():
        records = [order_record(order, include_pii=include_pii) for order in orders]
    return write_records(records, fmt, include_pii, out)


def write_records(records: list[dict[str, Any]], fmt: ExportFormat, include_pii: bool, out: TextIO) -> int:
    """Write export records sorted by creation time, then platform and order id."""
    with collector_paused():
        return _write_sorted(records, fmt, include_pii, out)


def _write_sorted(records: list[dict[str, Any]], fmt: ExportFormat, include_pii: bool, out: TextIO) -> int:
    records.sort(key=lambda r: (_time_key(r["created_at"]), r["platform"], r["order_id"]))
    if fmt == "json":
        # One dumps() call: json.dump() streams tiny chunks and is several times slower.
        out.write(json.dumps(records, ensure_ascii=False, check_circular=False))
        out.write("\n")
    elif fmt == "csv":
        _write_csv(records, include_pii, out)
    else:
        raise ValueError(f"unknown export format {fmt!r}; use json or csv")
    return len(records)


def _write_csv(records: list[dict[str, Any]], include_pii: bool, out: TextIO) -> None:
    columns = ORDER_COLUMNS + ITEM_COLUMNS + (PII_COLUMNS if include_pii else ())
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for record in records:
        order_cells: dict[str, Any] = {name: record[name] for name in ORDER_COLUMNS}
        order_cells["tracking"] = TRACKING_SEPARATOR.join(record["tracking"])
        if include_pii:
            order_cells["buyer_name"] = record["buyer_name"]
            address = record["address"] or {}
            for name in ADDRESS_FIELDS:
                order_cells[f"address_{name}"] = address.get(name, "")
        lines = [{"line": index, **item} for index, item in enumerate(record["items"], start=1)] or [
            dict.fromkeys(ITEM_COLUMNS)
        ]
        for line in lines:
            cells = {**order_cells, **line}
            writer.writerow(["" if cells.get(name) is None else cells[name] for name in columns])


def import_orders_csv(text: str) -> list[dict[str, Any]]:
    """Read a CSV export back into the objects the JSON export holds."""
    reader = csv.DictReader(io.StringIO(text, newline=""))
    columns = reader.fieldnames or []
    missing = [name for name in ORDER_COLUMNS + ITEM_COLUMNS if name not in columns]
    if missing:
        raise ValueError(f"the CSV lacks the column(s) {', '.join(missing)}")
    include_pii = "buyer_name" in columns
    records: list[dict[str, Any]] = []
    by_order: dict[tuple[str, str], dict[str, Any]] = {}
    for row in reader:
        identity = (row["platform"], row["order_id"])
        record = by_order.get(identity)
        if record is None:
            record = {name: _cell(row, name) for name in ORDER_COLUMNS}
            record["tracking"] = [t for t in row["tracking"].split(TRACKING_SEPARATOR) if t]
            record["items"] = []
            if include_pii:
                record["buyer_name"] = _cell(row, "buyer_name")
                address = {name: row.get(f"address_{name}", "") or "" for name in ADDRESS_FIELDS}
                record["address"] = address if any(address.values()) else None
            by_order[identity] = record
            records.append(record)
        if row["line"]:
            record["items"].append(
                {
                    "sku": row["sku"],
                    "title": row["title"],
                    "quantity": int(row["quantity"]),
                    "unit_price": _cell(row, "unit_price"),
                    "kind": row["kind"],
                }
            )
    for record in records:
        # Key order as in the JSON export, so the two compare equal field by field.
        items, tracking = record.pop("items"), record.pop("tracking")
        pii = {name: record.pop(name) for name in ("buyer_name", "address") if name in record}
        record.update(items=items, tracking=tracking, **pii)
    return records


def _cell(row: dict[str, str], name: str) -> str | None:
    value = row.get(name, "") or ""
    return None if value == "" and name in _NULLABLE else value
