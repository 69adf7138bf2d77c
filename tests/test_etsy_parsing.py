"""Etsy wire format → domain: conformance payloads, own fixtures, errors, rate headers, inventory."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import conformance_dir
from tf_console.marketplaces.base import (
    MalformedResponse,
    PermanentError,
    RateLimited,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.etsy import (
    REFRESH_VARIABLE,
    SECRET_VARIABLE,
    build_inventory_update,
    carrier_codes,
    classify,
    map_status,
    money_value,
    parse_receipt,
    parse_receipts_page,
    rate_headers,
    tracking_body,
)
from tf_console.models import OrderStatus, Shipment

FIXTURES = Path(__file__).parent / "fixtures" / "etsy"


def _page(path: Path) -> httpx.Response:
    return httpx.Response(200, content=path.read_bytes())


def _load(path: Path) -> Any:
    return json.loads(path.read_text("utf-8"))


def _decimal(money: dict[str, Any]) -> Decimal:
    return Decimal(money["amount"]) / Decimal(money["divisor"])


# ---------------------------------------------------------------- conformance


def test_every_captured_receipt_parses_exactly() -> None:
    folder = conformance_dir("etsy")
    raw = _load(folder / "getShopReceipts.response.200.json")
    page = parse_receipts_page(_page(folder / "getShopReceipts.response.200.json"))
    assert page.errors == [] and page.count == raw["count"] and page.size == len(raw["results"])
    assert len(page.orders) == len(raw["results"])
    for order, receipt in zip(page.orders, raw["results"], strict=True):
        assert order.order_id == str(receipt["receipt_id"])
        assert order.raw_status == receipt["status"]
        assert order.total is not None and order.total.amount == _decimal(receipt["grandtotal"])
        assert order.currency == receipt["grandtotal"]["currency_code"]
        assert order.created_at == datetime.fromtimestamp(receipt["created_timestamp"], UTC)
        assert order.updated_at == datetime.fromtimestamp(receipt["updated_timestamp"], UTC)
        assert order.marketplace_tracking == [s["tracking_code"] for s in receipt["shipments"]]
        assert order.extra["buyer_user_id"] == str(receipt["buyer_user_id"])
        # price is per unit: the receipt's total_price is the sum of price × quantity
        lines_total = sum((i.unit_price.amount * i.quantity for i in order.items if i.unit_price), Decimal(0))
        assert lines_total == _decimal(receipt["total_price"])
        for item, transaction in zip(order.items, receipt["transactions"], strict=True):
            assert item.line_id == str(transaction["transaction_id"])
            assert item.sku == "" and item.title == transaction["title"].strip()
            assert item.listing_id == str(transaction["listing_id"])
            for variation in transaction["variations"]:
                assert variation["formatted_value"] in item.variation
    by_id = {o.order_id: o for o in page.orders}
    refunded = by_id["3021745515"]
    assert refunded.status is OrderStatus.CANCELLED and refunded.refunded
    assert refunded.total is not None and str(refunded.total) == "112.50 USD"
    assert refunded.items[0].variation == "Color: Brown, Material: Cowhide + Synthetic"
    assert refunded.buyer is not None and refunded.buyer.country == "IT" and refunded.buyer.email == ""
    completed = [o for o in page.orders if o.raw_status == "Completed"]
    assert completed and all(o.status is OrderStatus.SHIPPED for o in completed)
    assert all(i.quantity_shipped == i.quantity for o in completed for i in o.items)
    assert by_id["3027836694"].items[0].personalisation == "Buyer's note: REDACTED BUYER MESSAGE"


def test_single_receipt_matches_its_entry_in_the_list() -> None:
    folder = conformance_dir("etsy")
    single = parse_receipt(_load(folder / "getShopReceipt.response.200.json"))
    listed = parse_receipts_page(_page(folder / "getShopReceipts.response.200.json")).orders[0]
    assert single == listed
    assert single.ship_by == datetime.fromtimestamp(1696003200, UTC)


# ---------------------------------------------------------------- our fixtures


def test_fixture_receipts_cover_every_status_quantity_and_personalisation() -> None:
    page = parse_receipts_page(_page(FIXTURES / "receipts.json"))
    assert page.errors == []
    by_id = {o.order_id: o for o in page.orders}
    expected = {
        "3100000001": (OrderStatus.UNSHIPPED, False),  # Paid
        "3100000002": (OrderStatus.PENDING, False),  # Open, unpaid
        "3100000003": (OrderStatus.UNSHIPPED, False),  # open (lower case), paid
        "3100000004": (OrderStatus.PENDING, False),  # Payment Processing
        "3100000005": (OrderStatus.UNSHIPPED, True),  # Partially Refunded, not shipped
        "3100000006": (OrderStatus.SHIPPED, True),  # PARTIALLY REFUNDED, shipped
        "3100000007": (OrderStatus.CANCELLED, False),  # Canceled
        "3100000008": (OrderStatus.CANCELLED, True),  # Fully Refunded
        "3100000009": (OrderStatus.SHIPPED, False),  # Completed
        "3100000010": (OrderStatus.SHIPPED, False),  # Paid but is_shipped
        "3100000011": (OrderStatus.UNSHIPPED, False),  # unknown status, paid
    }
    assert {k: (o.status, o.refunded) for k, o in by_id.items()} == expected
    assert len(page.warnings) == 1 and "Awaiting Pickup" in page.warnings[0]

    busy = by_id["3100000001"]
    assert busy.total is not None and busy.total.amount == Decimal("65.19")
    keychain, clips = busy.items
    assert (
        keychain.quantity == 3
        and keychain.unit_price is not None
        and keychain.unit_price.amount == Decimal("12.50")
    )
    assert keychain.unit_price.amount * keychain.quantity == Decimal("37.50")
    assert keychain.sku == "PRT-KEYCHAIN-NAME" and keychain.variation == "Color: Galaxy Silk"
    assert keychain.personalisation == "Text: Best Mum\nBuyer's note: Please gift-wrap it"
    assert clips.sku == "" and clips.quantity == 2  # empty SKU: the catalog classifies by title later
    assert busy.ship_by == datetime.fromtimestamp(1792900000, UTC)  # the earliest expected ship date
    assert busy.buyer is not None and busy.buyer.name == "Mira Okafor" and busy.buyer.postal_code == "62704"
    assert "Mira" not in repr(busy) and "Maple" not in repr(busy.buyer)
    shipped = by_id["3100000009"]
    assert shipped.items[0].quantity == 4 and shipped.items[0].quantity_shipped == 4
    assert shipped.marketplace_tracking == ["9400111899223197428490"]


def test_zero_decimal_currency_totals_are_exact() -> None:
    page = parse_receipts_page(_page(FIXTURES / "receipts_jpy.json"))
    first, second = page.orders
    assert first.total is not None and first.total.amount == Decimal(5300) and first.currency == "JPY"
    assert str(first.total) == "5300 JPY"
    item = first.items[0]
    assert item.unit_price is not None and item.unit_price.amount == Decimal(1500) and item.quantity == 3
    assert item.unit_price.amount * item.quantity + Decimal(800) == first.total.amount
    assert second.total is not None and second.total.amount == Decimal(5980)


def test_bad_receipts_are_page_errors_and_the_rest_is_kept() -> None:
    page = parse_receipts_page(_page(FIXTURES / "receipts_bad.json"))
    assert [o.order_id for o in page.orders] == ["3300000001"]
    assert page.size == 8 and len(page.errors) == 7
    text = "\n".join(page.errors)
    assert "divisor 0" in text and "unknown currency 'XYZ'" in text and "no receipt_id" in text
    assert "grandtotal is missing" in text and "no usable quantity" in text
    assert all(e.endswith("it was skipped.") for e in page.errors)


def test_a_page_that_is_not_a_receipt_list_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        parse_receipts_page(httpx.Response(200, content=b'{"count": 3}'))
    with pytest.raises(ValueError):
        parse_receipts_page(httpx.Response(200, content=b'{"count": 3, "results": [{"receipt_'))


@pytest.mark.parametrize(
    ("raw", "is_paid", "is_shipped", "expected"),
    [
        ("Open", False, False, (OrderStatus.PENDING, False)),
        ("Payment Processing", False, False, (OrderStatus.PENDING, False)),
        ("payment   processing", True, False, (OrderStatus.PENDING, False)),
        ("Paid", True, False, (OrderStatus.UNSHIPPED, False)),
        ("OPEN", True, False, (OrderStatus.UNSHIPPED, False)),
        ("Partially Refunded", True, False, (OrderStatus.UNSHIPPED, True)),
        ("partially refunded", True, True, (OrderStatus.SHIPPED, True)),
        ("Completed", True, True, (OrderStatus.SHIPPED, False)),
        ("completed", True, False, (OrderStatus.SHIPPED, False)),
        ("Paid", True, True, (OrderStatus.SHIPPED, False)),
        ("Canceled", False, False, (OrderStatus.CANCELLED, False)),
        ("Fully Refunded", True, True, (OrderStatus.CANCELLED, True)),
        ("Something New", False, False, (OrderStatus.PENDING, False)),
        ("Something New", True, False, (OrderStatus.UNSHIPPED, False)),
        ("Something New", True, True, (OrderStatus.SHIPPED, False)),
    ],
)
def test_status_table(raw: str, is_paid: bool, is_shipped: bool, expected: tuple[OrderStatus, bool]) -> None:
    assert map_status(raw, is_paid=is_paid, is_shipped=is_shipped) == expected


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ({"amount": 1641, "divisor": 100, "currency_code": "EUR"}, Decimal("16.41")),
        ({"amount": 3800, "divisor": 1, "currency_code": "JPY"}, Decimal(3800)),
        ({"amount": 12345, "divisor": 1000, "currency_code": "KWD"}, Decimal("12.345")),
        ({"amount": 5, "divisor": 4, "currency_code": "usd"}, Decimal("1.25")),
        ({"amount": -250, "divisor": 100, "currency_code": "USD"}, Decimal("-2.50")),
    ],
)
def test_money_is_amount_over_divisor_exactly(raw: dict[str, Any], value: Decimal) -> None:
    money = money_value(raw, "total")
    assert money.amount == value and money.currency == raw["currency_code"].upper()
    assert not isinstance(money.amount, float)


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ({"amount": 100, "divisor": 0, "currency_code": "USD"}, "divisor 0"),
        ({"amount": 100, "divisor": 3, "currency_code": "USD"}, "not an exact amount"),
        ({"amount": 1.5, "divisor": 100, "currency_code": "USD"}, "not a whole number"),
        ({"amount": 100, "divisor": 100, "currency_code": "ZZZ"}, "unknown currency"),
        ({"amount": 100, "divisor": 100}, "unknown currency"),
        (None, "missing"),
    ],
)
def test_unusable_money_is_refused_with_a_reason(raw: Any, words: str) -> None:
    with pytest.raises(MalformedResponse, match=words):
        money_value(raw, "total")


# ---------------------------------------------------------------- errors and headers


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers or {})


def test_conformance_error_bodies_become_sentences() -> None:
    folder = conformance_dir("etsy")
    cases: list[tuple[str, int, type[Exception], str]] = [
        ("error.403.shared-secret-required.json", 403, ReauthNeeded, SECRET_VARIABLE),
        ("error.403.invalid-api-key-format.json", 403, ReauthNeeded, SECRET_VARIABLE),
        ("error.oauth-invalid-token.json", 401, ReauthNeeded, REFRESH_VARIABLE),
        ("error.oauth-insufficient-scope.json", 403, ReauthNeeded, REFRESH_VARIABLE),
        ("error.429.per-second-rate-limit.json", 429, RateLimited, "throttling"),
        ("error.tracking-number-required.json", 400, PermanentError, "A tracking number is required"),
        ("error.property-values-empty.json", 400, PermanentError, "Property values can't be empty"),
    ]
    for name, status, kind, words in cases:
        error = classify(_answer(status, (folder / name).read_bytes()))
        assert isinstance(error, kind), name
        assert words in error.sentence and error.sentence.endswith("."), name
        if isinstance(error, ReauthNeeded):
            assert error.variable in (SECRET_VARIABLE, REFRESH_VARIABLE)
            assert f"tf-console creds set {error.variable}" in error.sentence


def test_other_answers_classify_by_status() -> None:
    assert classify(_answer(200, {"count": 0, "results": []})) is None
    daily = classify(_answer(429, {"error": "Exceeded daily limit"}, {"x-remaining-today": "0"}))
    assert isinstance(daily, RateLimited) and "daily call budget" in daily.sentence
    outage = classify(_answer(503, b"<html>busy</html>"))
    assert isinstance(outage, TransientError) and "HTTP 503" in outage.sentence
    missing = classify(_answer(404, {"error": "Receipt 9 was not found."}))
    assert isinstance(missing, PermanentError) and missing.status == 404
    assert missing.sentence == "Etsy refused the request (HTTP 404): Receipt 9 was not found."
    shop = classify(_answer(403, {"error": "The token does not have access to this shop."}))
    assert isinstance(shop, PermanentError) and not isinstance(shop, ReauthNeeded)


def test_rate_headers_from_captured_examples() -> None:
    examples = _load(conformance_dir("etsy") / "rateLimit.headers.examples.json")
    updates = [rate_headers("receipts.list", httpx.Headers(h)) for h in examples.values()]
    first, exhausted, per_second, documented = updates
    assert first is not None and (first.rate, first.remaining) == (10.0, 4.0)
    assert (first.daily_limit, first.daily_remaining) == (10000, 9349)
    assert exhausted is not None and exhausted.daily_remaining == 0
    assert per_second is not None and per_second.remaining == 0.0 and per_second.daily_limit is None
    assert documented is not None and (documented.rate, documented.daily_limit) == (150.0, 100000)
    assert rate_headers("x", httpx.Headers({"content-type": "application/json"})) is None


# ---------------------------------------------------------------- shipments and inventory bodies


def _shipment(carrier: str, carrier_name: str = "", tracking: str = "1Z999AA10123456784") -> Shipment:
    return Shipment(
        shipment_id="1",
        carrier=carrier,
        carrier_name=carrier_name,
        tracking=tracking,
        shipped_at=datetime(2026, 11, 2, tzinfo=UTC),
    )


def test_tracking_body_uses_etsy_codes_and_other_for_the_rest() -> None:
    sample = _load(conformance_dir("etsy") / "createReceiptShipment.request.json")
    body = tracking_body(_shipment("fedex", tracking=sample["tracking_code"]))
    assert body == sample
    assert tracking_body(_shipment("UPS"))["carrier_name"] == "ups"
    odd = tracking_body(_shipment("other", "Kuehne Nagel", tracking="KN123"))
    assert odd == {
        "tracking_code": "KN123",
        "carrier_name": "other",
        "note_to_buyer": "Shipped with Kuehne Nagel, tracking number KN123.",
    }
    assert tracking_body(_shipment("pigeon-post"))["carrier_name"] == "other"
    assert {"usps", "royal-mail", "japan-post", "other"} <= carrier_codes() and len(carrier_codes()) > 200


def test_inventory_update_from_the_captured_inventory() -> None:
    inventory = _load(conformance_dir("etsy") / "getListingInventory.response.200.json")
    update = build_inventory_update(inventory, "731737", 5)
    assert update.changed == 1 and update.other_skus == []
    assert update.body == {
        "products": [
            {
                "sku": "731737",
                "offerings": [{"quantity": 5, "is_enabled": True, "price": 22.0}],
                "property_values": [],
            }
        ],
        "price_on_property": [1],
        "quantity_on_property": [1],
        "sku_on_property": [1],
    }


def _as_read(request_body: dict[str, Any]) -> dict[str, Any]:
    """The tutorial's PUT body as getListingInventory would return it (ids, Money, read-only fields)."""
    inventory = copy.deepcopy(request_body)
    next_id = iter(range(7_000_000_000, 8_000_000_000))
    for product in inventory["products"]:
        product["product_id"] = next(next_id)
        product["is_deleted"] = False
        for value in product["property_values"]:
            value["scale_name"] = None
        for offering in product["offerings"]:
            offering["offering_id"] = next(next_id)
            offering["is_deleted"] = False
            cents = int(Decimal(str(offering["price"])) * 100)
            offering["price"] = {"amount": cents, "divisor": 100, "currency_code": "USD"}
    inventory["listing"] = None
    return inventory


def test_inventory_update_keeps_every_variation() -> None:
    sent = _load(conformance_dir("etsy") / "updateListingInventory.variations.request.json")
    sku = sent["products"][0]["sku"]
    update = build_inventory_update(_as_read(sent), sku, 4)
    body = update.body
    assert len(body["products"]) == len(sent["products"]) == 9
    for ours, theirs in zip(body["products"], sent["products"], strict=True):
        assert ours["property_values"] == theirs["property_values"]
        assert ours["sku"] == theirs["sku"]
        for offering, original in zip(ours["offerings"], theirs["offerings"], strict=True):
            assert offering["price"] == original["price"] and offering["is_enabled"] == original["is_enabled"]
            assert offering["readiness_state_id"] == original["readiness_state_id"]
            assert offering["quantity"] == (4 if ours["sku"] == sku else original["quantity"])
            assert "offering_id" not in offering and "is_deleted" not in offering
        assert "product_id" not in ours and "is_deleted" not in ours
    for name in (
        "price_on_property",
        "quantity_on_property",
        "sku_on_property",
        "readiness_state_on_property",
    ):
        assert body[name] == sent[name]
    assert "listing" not in body
    assert update.changed == sum(1 for p in sent["products"] if p["sku"] == sku)
    assert set(update.other_skus) == {p["sku"] for p in sent["products"]} - {sku}


def test_deleted_products_are_left_out_and_unsendable_prices_refused() -> None:
    inventory = _load(conformance_dir("etsy") / "getListingInventory.response.200.json")
    gone = copy.deepcopy(inventory["products"][0])
    gone["is_deleted"] = True
    gone["sku"] = "OLD"
    inventory["products"].append(gone)
    assert [p["sku"] for p in build_inventory_update(inventory, "731737", 1).body["products"]] == ["731737"]
    inventory["products"][0]["offerings"][0]["price"] = {"amount": 1, "divisor": 3, "currency_code": "EUR"}
    with pytest.raises(MalformedResponse):
        build_inventory_update(inventory, "731737", 1)
