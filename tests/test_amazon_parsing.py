"""Amazon wire format → domain: every conformance example and the project's own fixtures."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import conformance_dir
from tests.test_amazon_support import Model, conformance_json, fixture_bytes
from tf_console.marketplaces.amazon import (
    _STATUSES,
    ListingInfo,
    classify,
    confirm_shipment_body,
    error_info,
    parse_fba_page,
    parse_get_order,
    parse_listing,
    parse_order,
    parse_search_page,
    parse_submission,
    patch_body,
    rate_headers,
)
from tf_console.marketplaces.base import (
    MalformedResponse,
    PermanentError,
    PushState,
    RateLimited,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.redact import PII_MARK, Redactor
from tf_console.models import FulfilledBy, Money, Order, OrderStatus, Platform, Shipment, ShipmentLine

US = "ATVPDKIKX0DER"


def usd(amount: str) -> Money:
    return Money(amount=Decimal(amount), currency="USD")


def by_id(orders: list[Order]) -> dict[str, Order]:
    return {o.order_id: o for o in orders}


# ---------------------------------------------------------------------------
# The project's own fixtures


def test_mixed_page_maps_every_kind_of_order() -> None:
    redactor = Redactor()
    page = parse_search_page(fixture_bytes("search_page_mixed.json"), redactor)
    orders = by_id(page.orders)
    assert len(page.orders) == 8 and len(page.errors) == 3
    assert page.next_token == "ab+cd/ef=="

    unshipped = orders["112-0000001-0000001"]
    assert unshipped.status is OrderStatus.UNSHIPPED and unshipped.raw_status == "UNSHIPPED"
    assert unshipped.total == usd("78.46") and unshipped.total_is_proceeds and unshipped.currency == "USD"
    dragon, plate = unshipped.items
    assert (dragon.line_id, dragon.sku, dragon.quantity, dragon.quantity_shipped) == (
        "40000000000011",
        "PRT-DRAGON-S",
        3,
        0,
    )
    assert dragon.unit_price == usd("18.99")  # per unit, not the line (56.97)
    assert dragon.listing_id == "B0DRAGON01"
    assert plate.personalisation.endswith("https://zme-caps.amazon.com/t/abc/customization.zip")
    assert unshipped.ship_by == datetime(2026, 11, 1, 23, 59, 59, tzinfo=UTC)
    assert unshipped.updated_at == datetime(2026, 10, 30, 8, 20, 30, 250000, tzinfo=UTC)
    assert unshipped.extra == {"marketplace_id": US, "service_level": "EXPEDITED", "programs": "PRIME"}
    buyer = unshipped.buyer
    assert buyer is not None
    assert (buyer.name, buyer.email, buyer.phone) == (
        "Mira Okafor, Okafor Design Studio",
        "3f2a9c1b7d4e5f60@marketplace.amazon.com",
        "+1 555 0100",
    )
    assert (buyer.line1, buyer.line2, buyer.city, buyer.region, buyer.postal_code, buyer.country) == (
        "12 Maple Avenue",
        "Apt 4, Rear entrance",
        "Springfield",
        "IL",
        "62704",
        "US",
    )
    assert unshipped.shippable
    # The names read are scrubbed from every log line and health record from now on.
    assert redactor.scrub("sent to Mira Okafor, Okafor Design Studio") == f"sent to {PII_MARK}"

    pending = orders["112-0000002-0000002"]
    assert pending.status is OrderStatus.PENDING and pending.total is None and pending.currency == ""
    assert pending.items[0].unit_price is None and pending.items[0].quantity == 2 and pending.buyer is None

    fba = orders["112-0000003-0000003"]
    assert fba.fulfilled_by is FulfilledBy.MARKETPLACE and fba.status is OrderStatus.SHIPPED
    assert not fba.shippable and fba.items[0].quantity_shipped == 2
    assert fba.buyer is not None and fba.buyer.name == "" and fba.buyer.city == "Austin"

    partial = orders["112-0000004-0000004"]
    assert partial.status is OrderStatus.PARTIALLY_SHIPPED
    assert partial.marketplace_tracking == ["1Z999AA10123456784"]  # the cancelled label does not count
    assert partial.items[0].quantity_unshipped == 1 and partial.shippable
    assert partial.updated_at == datetime(2026, 10, 30, 10, 0, tzinfo=UTC)

    unfulfillable = orders["112-0000005-0000005"]
    assert unfulfillable.status is OrderStatus.UNSHIPPED and unfulfillable.raw_status == "UNFULFILLABLE"
    assert "unfulfillable" in unfulfillable.extra and unfulfillable.fulfilled_by is FulfilledBy.MARKETPLACE

    assert orders["112-0000006-0000006"].status is OrderStatus.CANCELLED
    assert orders["112-0000007-0000007"].status is OrderStatus.PENDING
    assert orders["112-0000007-0000007"].raw_status == "PENDING_AVAILABILITY"

    asked_to_cancel = orders["112-0000008-0000008"]
    assert asked_to_cancel.cancel_requested and not asked_to_cancel.shippable

    assert any("ON_HOLD" in e and "112-0000009-0000009" in e for e in page.errors)
    assert any("without an orderId" in e for e in page.errors)
    assert any("112-0000011-0000011" in e and "createdTime" in e for e in page.errors)
    # Only the open merchant-fulfilled order without a delivery address counts as missing PII.
    assert (page.missing_addresses, page.present_addresses) == (1, 2)


def test_get_order_without_restricted_data_keeps_the_rest() -> None:
    order, with_address = parse_get_order(fixture_bytes("get_order_without_pii.json"))
    assert with_address is False
    assert order.total == Money(amount=Decimal("1500"), currency="JPY")
    assert order.items[0].quantity == 4 and order.items[0].unit_price == Money(
        amount=Decimal("375"), currency="JPY"
    )
    assert order.buyer is not None and order.buyer.name == "" and order.buyer.line1 == ""
    assert order.buyer.postal_code == "LS1 4AP"


def test_every_documented_fulfillment_status_is_mapped() -> None:
    model = json.loads((conformance_dir("amazon") / "specs" / "orders_2026-01-01.json").read_text("utf-8"))
    documented = model["definitions"]["FulfillmentStatus"]["enum"]
    assert sorted(documented) == sorted(_STATUSES)
    assert {s: _STATUSES[s].value for s in documented} == {
        "PENDING_AVAILABILITY": "pending",
        "PENDING": "pending",
        "UNSHIPPED": "unshipped",
        "PARTIALLY_SHIPPED": "partially_shipped",
        "SHIPPED": "shipped",
        "CANCELLED": "cancelled",
        "UNFULFILLABLE": "unshipped",
    }


def test_an_unreadable_page_is_one_malformed_error() -> None:
    with pytest.raises(MalformedResponse):
        parse_search_page(b'{"orders": {"not": "a list"}}')
    with pytest.raises(MalformedResponse):
        parse_search_page(b"<html>Service Unavailable</html>")
    with pytest.raises(MalformedResponse):
        parse_get_order(b'{"errors": []}')


def test_amounts_never_pass_through_binary_floats() -> None:
    raw = json.loads(fixture_bytes("search_page_mixed.json"))["orders"][0]
    raw["proceeds"]["grandTotal"]["amount"] = 0.1
    assert parse_order(raw).total == usd("0.1")


# ---------------------------------------------------------------------------
# Conformance payloads (skipped cleanly when ../shared is absent)


def test_conformance_search_reference_example() -> None:
    page = parse_search_page(
        (conformance_dir("amazon") / "orders2026.searchOrders.response.200.json").read_bytes()
    )
    assert page.errors == [] and page.next_token == "2YgYW55IGNhcm5hbCBwbGVhc3VyZS4"
    (order,) = page.orders
    assert order.status is OrderStatus.SHIPPED and order.fulfilled_by is FulfilledBy.MERCHANT
    assert order.total == usd("154.99") and order.total_is_proceeds
    assert [(i.line_id, i.quantity, i.unit_price) for i in order.items] == [
        ("12345678901234", 2, usd("49.99")),
        ("12345678901235", 1, usd("49.99")),
    ]
    assert [i.quantity_shipped for i in order.items] == [2, 1]
    assert order.marketplace_tracking == ["1Z999AA1234567890"]
    assert order.ship_by == datetime(2024, 12, 27, 23, 59, 59, tzinfo=UTC)
    assert order.buyer is not None and order.buyer.name == "John Smith, Smith Industries LLC"
    assert order.buyer.line2 == "Suite 456" and order.buyer.country == "US"
    assert order.items[0].personalisation.endswith("https://amazon.com/custom/view/12345")
    assert order.extra["programs"] == "PRIME,AMAZON_BUSINESS"
    # A cancellation request on a shipped order is history, not an open request.
    assert not order.cancel_requested


@pytest.mark.parametrize(
    ("name", "order_id", "status", "fulfilled_by", "total", "tracking"),
    [
        (
            "orders2026.searchOrders.sandbox.200.1.response.json",
            "250-1234567-8901234",
            OrderStatus.SHIPPED,
            FulfilledBy.MARKETPLACE,
            ("19940", "JPY"),
            [],
        ),
        (
            "orders2026.searchOrders.sandbox.200.2.response.json",
            "202-7654321-1098765",
            OrderStatus.SHIPPED,
            FulfilledBy.MERCHANT,
            ("34.99", "GBP"),
            ["15501234567890123456"],
        ),
        (
            "orders2026.searchOrders.sandbox.200.3.response.json",
            "171-2345678-9012345",
            OrderStatus.UNSHIPPED,
            FulfilledBy.MERCHANT,
            ("1599.90", "BRL"),
            [],
        ),
    ],
)
def test_conformance_search_sandbox_pages(
    name: str,
    order_id: str,
    status: OrderStatus,
    fulfilled_by: FulfilledBy,
    total: tuple[str, str],
    tracking: list[str],
) -> None:
    page = parse_search_page((conformance_dir("amazon") / name).read_bytes())
    (order,) = page.orders
    assert page.errors == []
    assert (order.order_id, order.status, order.fulfilled_by) == (order_id, status, fulfilled_by)
    assert order.total == Money(amount=Decimal(total[0]), currency=total[1])
    assert order.marketplace_tracking == tracking
    assert all(i.unit_price is not None and i.unit_price.currency == total[1] for i in order.items)


def test_conformance_search_sandbox_unit_prices_are_per_unit() -> None:
    page = parse_search_page(
        (conformance_dir("amazon") / "orders2026.searchOrders.sandbox.200.1.response.json").read_bytes()
    )
    line = page.orders[0].items[1]
    assert line.quantity == 2 and line.unit_price == Money(amount=Decimal("6980"), currency="JPY")


@pytest.mark.parametrize(
    ("name", "order_id", "status", "units"),
    [
        ("orders2026.getOrder.response.200.json", "202-1234567-8901234", OrderStatus.SHIPPED, [(3, 3)]),
        (
            "orders2026.getOrder.sandbox.200.1.response.json",
            "171-9876543-2109876",
            OrderStatus.UNSHIPPED,
            [(1, 0)],
        ),
        (
            "orders2026.getOrder.sandbox.200.2.response.json",
            "028-1234567-8901234",
            OrderStatus.SHIPPED,
            [(2, 2)],
        ),
        (
            "orders2026.getOrder.sandbox.200.3.response.json",
            "114-9876543-1234567",
            OrderStatus.UNSHIPPED,
            [(1, 0)],
        ),
    ],
)
def test_conformance_get_order(
    name: str, order_id: str, status: OrderStatus, units: list[tuple[int, int]]
) -> None:
    order, with_address = parse_get_order((conformance_dir("amazon") / name).read_bytes())
    assert (order.platform, order.order_id, order.status) == (Platform.AMAZON, order_id, status)
    assert [(i.quantity, i.quantity_shipped) for i in order.items] == units
    assert with_address is True and order.buyer is not None and order.buyer.line1


def test_conformance_get_order_without_shipping_windows() -> None:
    order, _ = parse_get_order(
        (conformance_dir("amazon") / "orders2026.getOrder.sandbox.200.3.response.json").read_bytes()
    )
    assert order.ship_by is None and order.extra["programs"] == "IN_STORE_PICK_UP"


def _response(status: int, name: str, request_id: str = "req-1") -> httpx.Response:
    body = (conformance_dir("amazon") / name).read_bytes()
    return httpx.Response(status, content=body, headers={"x-amzn-RequestId": request_id})


def test_conformance_error_bodies_become_sentences() -> None:
    unauthorised = classify(_response(403, "error.response.403.unauthorized.json"))
    assert isinstance(unauthorised, ReauthNeeded) and unauthorised.variable == "AMAZON_REFRESH_TOKEN"
    assert "Access token is missing in the request header" in unauthorised.sentence
    assert "request id req-1" in unauthorised.sentence and "AMAZON_REFRESH_TOKEN" in unauthorised.sentence
    throttled = classify(_response(429, "error.response.429.json"))
    assert isinstance(throttled, RateLimited) and throttled.code == "QuotaExceeded"
    invalid = classify(_response(400, "orders2026.searchOrders.sandbox.400.response.json", "abc-123"))
    assert isinstance(invalid, PermanentError) and invalid.code == "InvalidInput"
    assert (
        invalid.sentence
        == "Amazon refused the request: Invalid Input (InvalidInput, HTTP 400, request id abc-123)."
    )
    failure = classify(_response(500, "getInventorySummaries.sandbox.500.response.json"))
    assert isinstance(failure, TransientError) and "We encountered an internal error" in failure.sentence
    for name in (
        "getOrder.sandbox.400.response.json",
        "confirmShipment.sandbox.400.response.json",
        "getListingsItem.sandbox.400.response.json",
        "patchListingsItem.sandbox.400.response.json",
        "createRestrictedDataToken.sandbox.400.response.json",
        "updateShipmentStatus.sandbox.400.response.json",
    ):
        error = classify(_response(400, name))
        info = error_info((conformance_dir("amazon") / name).read_bytes())
        assert isinstance(error, PermanentError) and info is not None and info.message in error.sentence


def test_conformance_listing_gives_product_type_and_channels() -> None:
    for name in ("getListingsItem.response.200.json", "getListingsItem.sandbox.200.response.json"):
        listing = parse_listing((conformance_dir("amazon") / name).read_bytes(), "GM-ZDPI-9B4E", [US])
        assert (listing.sku, listing.product_type, listing.asin) == ("GM-ZDPI-9B4E", "LUGGAGE", "B071VG5N9D")
        assert listing.channels == {"DEFAULT": 100} and not listing.fulfilled_by_amazon
        assert listing.merchant_quantity == 100


def test_conformance_submission_answers() -> None:
    folder = conformance_dir("amazon")
    for name in ("patchListingsItem.response.200.json", "patchListingsItem.sandbox.200.1.response.json"):
        result = parse_submission((folder / name).read_bytes(), "GM-ZDPI-9B4E", 5)
        assert result.state is PushState.QUEUED and "f1dc2914-75dd-11ea-bc55-0242ac130003" in result.answer
    refused = parse_submission(
        (folder / "patchListingsItem.sandbox.200.3.response.json").read_bytes(), "X", 5
    )
    assert refused.state is PushState.REJECTED and "The attributes are invalid" in refused.answer
    # VALID only answers a VALIDATION_PREVIEW, which never saves anything: not a success here.
    with pytest.raises(MalformedResponse):
        parse_submission((folder / "patchListingsItem.sandbox.200.2.response.json").read_bytes(), "X", 5)


def test_conformance_fba_summaries() -> None:
    page = parse_fba_page(
        (conformance_dir("amazon") / "getInventorySummaries.sandbox.200.response.json").read_bytes()
    )
    assert page.next_token == "seed"
    stock = {s.sku: s for s in page.stock}
    assert set(stock) == {"EMTEC 1 GB", "EMTEC-SdCard-reader", "Silicon Power 32GB"}
    card = stock["Silicon Power 32GB"]
    assert (card.fulfillable, card.inbound, card.reserved, card.total) == (66, 21, 0, 87)
    assert card.updated_at == datetime(2018, 3, 31, 23, 40, 39, tzinfo=UTC)
    assert stock["EMTEC 1 GB"].updated_at is None  # the example sends "" for a time it does not know


def _shipment(**kw: object) -> Shipment:
    fields: dict[str, object] = {
        "shipment_id": "1",
        "carrier": "FedEx",
        "tracking": "112345678",
        "shipped_at": datetime(2022, 2, 11, 1, 0, tzinfo=UTC),
        "lines": [ShipmentLine(line_id="79039765272157", quantity=1)],
    }
    fields.update(kw)
    return Shipment.model_validate(fields)


def _order(**kw: object) -> Order:
    raw = json.loads(fixture_bytes("search_page_mixed.json"))["orders"][0]
    order = parse_order(raw)
    return order.model_copy(update=kw)


def test_confirm_body_matches_the_documented_request() -> None:
    example = conformance_json("confirmShipment.request.body.json")
    body = confirm_shipment_body(_order(order_id="902-1106328-1059050"), _shipment(), US)
    # Our body is the example without its optional extras (carrierName for a listed carrier, shipping
    # method, supply source, transparency codes).
    expected = json.loads(json.dumps(example))
    for key in ("carrierName", "shippingMethod", "shipFromSupplySourceId"):
        del expected["packageDetail"][key]
    del expected["packageDetail"]["orderItems"][0]["transparencyCodes"]
    assert body == expected
    model = Model.load("ordersV0.json")
    assert model.check(body, "ConfirmShipmentRequest") == []
    assert model.check(example, "ConfirmShipmentRequest") == []


def test_confirm_body_other_carrier_and_refusals() -> None:
    order = _order()
    other = confirm_shipment_body(order, _shipment(carrier="Other", carrier_name="Evri", lines=[]), US)
    detail = other["packageDetail"]
    assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Evri")
    # No lines given: every unshipped unit of the order.
    assert detail["orderItems"] == [
        {"orderItemId": "40000000000011", "quantity": 3},
        {"orderItemId": "40000000000012", "quantity": 1},
    ]
    assert detail["shipDate"] == "2022-02-11T01:00:00.000Z"
    with pytest.raises(PermanentError, match="positive number"):
        confirm_shipment_body(order, _shipment(shipment_id="PKG-1"), US)
    with pytest.raises(PermanentError, match="carrier's name"):
        confirm_shipment_body(order, _shipment(carrier="Other", carrier_name=""), US)


def test_patch_body_resends_the_other_keys_and_fits_the_listings_model() -> None:
    listing = parse_listing(fixture_bytes("listing_mfn.json"), "PRT-DRAGON-S", [US])
    assert listing.product_type == "TOY_FIGURE"  # the configured marketplace's summary wins
    body = patch_body(listing, 7)
    assert body == {
        "productType": "TOY_FIGURE",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": [
                    {
                        "fulfillment_channel_code": "DEFAULT",
                        "quantity": 7,
                        "lead_time_to_ship_max_days": 4,
                        "restock_date": "2026-12-01",
                    }
                ],
            }
        ],
    }
    assert Model.load("listingsItems_2021-08-01.json").check(body, "ListingsItemPatchRequest") == []


def test_patch_body_for_a_listing_without_the_attribute() -> None:
    bare = ListingInfo(sku="X", product_type="HOME")
    assert patch_body(bare, 0)["patches"][0]["value"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 0}
    ]


def test_fba_listing_is_recognised() -> None:
    listing = parse_listing(fixture_bytes("listing_fba.json"), "STK-NOZZLE-04", [US])
    assert listing.fulfilled_by_amazon and listing.merchant_quantity is None


def test_rate_limit_header() -> None:
    assert rate_headers("orders.search", httpx.Headers({"x-amzn-RateLimit-Limit": "0.0056"})).rate == 0.0056  # type: ignore[union-attr]
    assert rate_headers("orders.search", httpx.Headers({})) is None
    assert rate_headers("orders.search", httpx.Headers({"x-amzn-RateLimit-Limit": "fast"})) is None
    assert rate_headers("orders.search", httpx.Headers({"x-amzn-RateLimit-Limit": "0"})) is None


# ---------------------------------------------------------------------------
# Every conformance file is accounted for


# Files this console deliberately does not parse, and why.
NOT_USED = {
    "getOrders": "v0 getOrders is deprecated (stops 2027-03-27); 2026-01-01 searchOrders replaces it",
    "getOrder": "v0 getOrder is deprecated; 2026-01-01 getOrder replaces it",
    "getOrderItems": "v0 getOrderItems is deprecated; 2026-01-01 orders carry their items",
    "getOrderAddress": "v0 PII call needing an RDT; 2026-01-01 returns RECIPIENT by role",
    "getOrderBuyerInfo": "v0 PII call needing an RDT; 2026-01-01 returns BUYER by role",
    "getOrderItemsBuyerInfo": "v0 PII call needing an RDT",
    "createRestrictedDataToken": "2026-01-01 needs no restricted data token",
    "updateShipmentStatus": "store pick-up flow, not merchant shipping",
    "listingsFeed": "feeds are not used; the patch shape is checked against the listings model instead",
}
CHECKED_HERE = {
    "orders2026.searchOrders",
    "orders2026.getOrder",
    "confirmShipment",
    "getListingsItem",
    "patchListingsItem",
    "getInventorySummaries",
    "error",
    "lwa",  # parsed by the LWA client against the replay simulator (test_amazon_sandbox)
}


def _operation(path: Path) -> str:
    name = path.name
    for prefix in sorted(CHECKED_HERE | set(NOT_USED), key=len, reverse=True):
        if name.startswith(prefix + "."):
            return prefix
    return name


def test_every_conformance_file_is_checked_or_deliberately_unused() -> None:
    folder = conformance_dir("amazon")
    unknown = [p.name for p in folder.glob("*.json") if _operation(p) not in CHECKED_HERE | set(NOT_USED)]
    assert unknown == []


def test_every_example_answer_of_an_operation_we_read_parses() -> None:
    folder = conformance_dir("amazon")
    parsers: dict[str, Callable[[bytes], Sequence[object]]] = {
        "orders2026.searchOrders": lambda b: parse_search_page(b).orders,
        "orders2026.getOrder": lambda b: [parse_get_order(b)[0]],
        "getListingsItem": lambda b: [parse_listing(b, "SKU")],
        "getInventorySummaries": lambda b: parse_fba_page(b).stock,
    }
    checked = 0
    for path in sorted(folder.glob("*.json")):
        operation = _operation(path)
        if operation not in parsers or ".request." in path.name:
            continue
        if ".400." in path.name or ".500." in path.name:
            assert error_info(path.read_bytes()) is not None, path.name
        else:
            assert parsers[operation](path.read_bytes()), path.name
        checked += 1
    assert checked >= 14
