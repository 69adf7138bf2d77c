"""eBay's wire format: conformance samples, our fixtures, the status table, hostile XML, errors."""

from __future__ import annotations

import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.conftest import conformance_dir
from tests.ebay_helpers import FIXTURES
from tf_console.marketplaces.base import (
    MalformedResponse,
    OutcomeUnknown,
    PermanentError,
    QuotaExhausted,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.ebay import (
    MAX_MARKUP,
    EbayTokenKind,
    classify_envelope,
    parse_envelope,
    parse_orders_envelope,
    parse_seller_list_envelope,
    parse_xml,
    read_envelope,
    token_kind_of,
)
from tf_console.models import OrderStatus


def _orders(body: bytes) -> tuple[list, list[str]]:  # type: ignore[type-arg]
    page = parse_orders_envelope(parse_envelope(body, "GetOrders"))
    return page.orders, page.errors


# ---------------------------------------------------------------- conformance samples


def test_conformance_order_with_tracking() -> None:
    body = (conformance_dir("ebay") / "trading.GetOrders.response.xml").read_bytes()
    assert body.startswith(b"\xef\xbb\xbf")  # the sample keeps its BOM; the parser must cope
    orders, errors = _orders(body)
    assert errors == []
    (order,) = orders
    assert order.order_id == "24-07558-27052"
    assert order.status is OrderStatus.SHIPPED and order.raw_status == "Completed"
    assert order.total is not None and order.total.amount == Decimal("34.45") and order.currency == "USD"
    assert order.created_at == datetime(2021, 9, 1, 8, 47, 21, tzinfo=UTC)
    assert order.updated_at == datetime(
        2021, 10, 4, 18, 19, 57, tzinfo=UTC
    )  # CheckoutStatus/LastModifiedTime
    assert order.ship_by == datetime(2021, 9, 3, 4, 59, 59, tzinfo=UTC)  # HandleByTime
    assert order.marketplace_tracking == ["1ZE610060392761333"]
    (line,) = order.items
    assert line.line_id == "333418491244-1911656401014" and line.listing_id == "333418491244"
    assert line.sku == "DET 9782940" and line.quantity == 1 and line.quantity_shipped == 1
    assert line.unit_price is not None and line.unit_price.amount == Decimal("34.45")
    assert line.personalisation == "Item Id: 333418491244\nBuyer's Vehicle: 1966 Pontiac"
    assert order.buyer is not None and order.buyer.name == "AAA" and order.buyer.country == "DDD"
    assert order.buyer.email == "a@a.com" and order.buyer.postal_code == "01844-1938"
    assert order.extra == {"buyer_user_id": "witku-2015"}


def test_conformance_variation_skus_come_from_the_variation() -> None:
    body = (conformance_dir("ebay") / "trading.GetOrders.response.variation-sku.xml").read_bytes()
    orders, errors = _orders(body)
    assert errors == []
    (order,) = orders
    assert order.status is OrderStatus.UNSHIPPED and order.ship_by is None
    assert [i.sku for i in order.items] == ["testSku501_W", "testSku501_B", "testSku501_Y"]
    assert [i.variation for i in order.items] == ["Color: White", "Color: Black", "Color: Yellow"]
    assert [str(i.unit_price) for i in order.items] == ["1.14 USD", "1.12 USD", "1.15 USD"]
    assert order.total is not None and str(order.total) == "6.86 USD"
    assert order.buyer is not None and order.buyer.line2 == ""  # whitespace-only Street2


def test_conformance_empty_order_array_copes_with_contradicting_counts() -> None:
    body = (conformance_dir("ebay") / "trading.GetOrders.response.empty.xml").read_bytes()
    page = parse_orders_envelope(parse_envelope(body, "GetOrders"))
    assert page.orders == [] and page.errors == [] and page.has_more is False


def test_conformance_errors_map_to_our_errors() -> None:
    folder = conformance_dir("ebay")
    auth = classify_envelope(
        parse_envelope((folder / "trading.error.response.xml").read_bytes(), "x"),
        "GetOrders",
        side_effect=False,
    )
    assert isinstance(auth, ReauthNeeded) and auth.variable == "EBAY_USER_TOKEN" and auth.code == "931"
    assert str(auth) == (
        "eBay token invalid or expired — set a new one with `tf-console creds set EBAY_USER_TOKEN`."
    )
    for name, code in (
        ("trading.error.InvalidSiteIdHeader.response.xml", "10012"),
        ("trading.error.UnsupportedCall.response.xml", "2"),  # its Timestamp is not ISO: must not matter
    ):
        error = classify_envelope(
            parse_envelope((folder / name).read_bytes(), "x"), "GetOrders", side_effect=False
        )
        assert isinstance(error, PermanentError) and error.code == code
        assert str(error).startswith("eBay refused GetOrders: ") and str(error).endswith(f"(error {code}).")
    done = parse_envelope((folder / "trading.CompleteSale.response.xml").read_bytes(), "CompleteSale")
    assert done.ack == "Success" and classify_envelope(done, "CompleteSale", side_effect=True) is None


def test_conformance_seller_list_and_inventory_answers_parse() -> None:
    folder = conformance_dir("ebay")
    listings = parse_seller_list_envelope(
        parse_envelope((folder / "trading.GetSellerList.response.xml").read_bytes(), "GetSellerList")
    )
    assert listings.targets == [] and listings.has_more and listings.total_pages == 4  # the sample has no SKU
    revised = parse_envelope((folder / "trading.ReviseInventoryStatus.response.xml").read_bytes(), "x")
    assert revised.call == "ReviseInventoryStatus" and revised.ack == "Success"


# ---------------------------------------------------------------- our fixtures


def test_fixture_orders_quantities_statuses_and_flags() -> None:
    orders, errors = _orders((FIXTURES / "orders.xml").read_bytes())
    assert errors == []
    by_id = {o.order_id: o for o in orders}
    gift = by_id["12-34567-89012"]
    assert gift.status is OrderStatus.UNSHIPPED and gift.currency == "GBP"
    dragon, plate = gift.items
    assert dragon.quantity == 3 and dragon.sku == "PRT-DRAGON-S" and dragon.variation == "Color: Galaxy Silk"
    assert dragon.unit_price is not None and dragon.unit_price.amount == Decimal("15.00")  # per unit
    assert plate.sku == "PRT-NAMEPLATE" and plate.quantity == 1
    assert plate.personalisation == "PRT-NAMEPLATE: Name: Dr. Ingrid Berg\nCould you gift-wrap it please?"
    assert gift.ship_by == datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC)  # the earliest HandleByTime
    assert gift.buyer is not None and gift.buyer.email == "ingrid.berg42@buyers.example"
    unpaid = by_id["13-34568-11111"]
    assert unpaid.status is OrderStatus.PENDING and unpaid.buyer is None
    assert unpaid.items[0].quantity == 2 and unpaid.total is not None and str(unpaid.total) == "18.98 USD"
    split = by_id["14-34569-22222"]
    assert split.status is OrderStatus.PARTIALLY_SHIPPED and split.cancel_requested
    assert not split.shippable  # a cancel request is never printed or shipped
    assert [i.quantity_shipped for i in split.items] == [1, 0]
    assert split.marketplace_tracking == ["9400111899223344556677"]
    assert split.raw_status == "Completed (CancelRequested)"


ORDER_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<GetOrdersResponse xmlns="urn:ebay:apis:eBLBaseComponents">
  <Ack>Success</Ack><HasMoreOrders>false</HasMoreOrders>
  <OrderArray><Order>
    <OrderID>01-00001-00001</OrderID>
    <OrderStatus>{status}</OrderStatus>
    <CheckoutStatus><eBayPaymentStatus>{payment}</eBayPaymentStatus><Status>{checkout}</Status></CheckoutStatus>
    <CreatedTime>2026-11-01T09:00:00.000Z</CreatedTime>
    {total}
    <TransactionArray><Transaction>
      <Item><ItemID>1</ItemID><SKU>PRT-CABLE-CLIP-10</SKU></Item>
      <QuantityPurchased>2</QuantityPurchased><TransactionID>2</TransactionID>
      <TransactionPrice currencyID="USD">9.49</TransactionPrice>
      <OrderLineItemID>1-2</OrderLineItemID>
    </Transaction></TransactionArray>
    {shipped}{cancel}
  </Order></OrderArray>
</GetOrdersResponse>"""
TOTAL = '<Total currencyID="USD">18.98</Total>'


def _one(
    status: str,
    *,
    checkout: str = "Complete",
    payment: str = "NoPaymentFailure",
    shipped: bool = False,
    cancel: str = "",
    total: str = TOTAL,
) -> bytes:
    return ORDER_TEMPLATE.format(
        status=status,
        checkout=checkout,
        payment=payment,
        total=total,
        shipped="<ShippedTime>2026-11-02T09:00:00.000Z</ShippedTime>" if shipped else "",
        cancel=f"<CancelStatus>{cancel}</CancelStatus>" if cancel else "",
    ).encode()


@pytest.mark.parametrize(
    ("wire", "kwargs", "expected", "cancel_requested"),
    [
        ("Active", {"checkout": "Incomplete"}, OrderStatus.PENDING, False),
        ("Active", {"payment": "PaymentInProcess"}, OrderStatus.PENDING, False),
        ("Completed", {}, OrderStatus.UNSHIPPED, False),
        ("Completed", {"shipped": True}, OrderStatus.SHIPPED, False),
        ("Shipped", {}, OrderStatus.SHIPPED, False),
        ("CancelPending", {}, OrderStatus.UNSHIPPED, True),
        ("Completed", {"cancel": "CancelRequested"}, OrderStatus.UNSHIPPED, True),
        ("Completed", {"cancel": "CancelComplete"}, OrderStatus.CANCELLED, False),
        ("Cancelled", {}, OrderStatus.CANCELLED, False),
        ("Inactive", {}, OrderStatus.CANCELLED, False),
    ],
)
def test_status_table(wire: str, kwargs: dict, expected: OrderStatus, cancel_requested: bool) -> None:  # type: ignore[type-arg]
    orders, errors = _orders(_one(wire, **kwargs))
    assert errors == []
    assert orders[0].status is expected and orders[0].cancel_requested is cancel_requested


def test_updated_at_is_ebays_modification_time_never_a_future_ship_time() -> None:
    orders, _ = _orders(_one("Completed", shipped=True).replace(b"2026-11-02T09:00", b"2026-11-05T09:00"))
    assert orders[0].status is OrderStatus.SHIPPED
    assert orders[0].updated_at == orders[0].created_at  # no LastModifiedTime or PaidTime in this one
    modified = b"<Status>Complete</Status><LastModifiedTime>2026-11-01T12:00:00.000Z</LastModifiedTime>"
    orders, _ = _orders(_one("Completed").replace(b"<Status>Complete</Status>", modified))
    assert orders[0].updated_at == datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (_one("Authenticated"), "OrderStatus 'Authenticated' is not one eBay documents"),
        (_one("Completed", total=""), "has no Total"),
        (_one("Completed", total='<Total currencyID="USD">lots</Total>'), "is not an amount"),
    ],
)
def test_bad_orders_cost_only_themselves_with_a_sentence(body: bytes, needle: str) -> None:
    good = _one("Completed").replace(b"01-00001-00001", b"01-00001-00002")
    inner = good[good.index(b"<Order>") : good.index(b"</OrderArray>")]
    both = body.replace(b"</OrderArray>", inner + b"</OrderArray>")
    orders, errors = _orders(both)
    assert [o.order_id for o in orders] == ["01-00001-00002"]
    (sentence,) = errors
    assert sentence.startswith("eBay order 01-00001-00001 could not be read: ") and needle in sentence
    assert sentence.endswith("it was skipped.")


# ---------------------------------------------------------------- hostile and broken XML


def test_billion_laughs_is_refused_in_bounded_time_and_memory() -> None:
    body = (FIXTURES / "billion_laughs.xml").read_bytes()
    tracemalloc.start()
    started = time.perf_counter()
    with pytest.raises(MalformedResponse, match="document type or entity declaration"):
        parse_envelope(body, "GetOrders")
    elapsed = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 0.5 and peak < 2 * 1024 * 1024  # expanded, it would be 3 GB of "lol"


def test_external_entity_is_refused_and_never_read() -> None:
    body = (FIXTURES / "external_entity.xml").read_bytes()
    with pytest.raises(MalformedResponse, match="refused for safety") as caught:
        parse_envelope(body, "GetOrders")
    assert "root:" not in str(caught.value)


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        (b"an internal error occured", "is not XML"),
        (b"", "is not XML"),
        (b"<GetOrdersResponse xmlns='urn:ebay:apis:eBLBaseComponents'><Ack>Success</Ack>", "not well-formed"),
        (b"<GetOrdersResponse><Ack>Success</Ack></GetOrdersResponse>", "namespace"),
        (
            b"<GetOrdersResponse xmlns='urn:ebay:apis:eBLBaseComponents'><Ack>Maybe</Ack>"
            b"</GetOrdersResponse>",
            "no recognisable Ack",
        ),
    ],
)
def test_unusable_answers_are_sentences(body: bytes, needle: str) -> None:
    with pytest.raises(MalformedResponse, match=needle) as caught:
        parse_envelope(body, "GetOrders")
    assert str(caught.value).startswith("eBay's answer to GetOrders")


def test_element_flood_is_refused_before_parsing() -> None:
    flood = b"<GetOrdersResponse xmlns='urn:ebay:apis:eBLBaseComponents'>" + b"<a/>" * (MAX_MARKUP + 1)
    started = time.perf_counter()
    with pytest.raises(MalformedResponse, match="more elements than any real answer"):
        parse_xml(flood, "GetOrders")
    assert time.perf_counter() - started < 0.5


def test_envelope_is_parsed_once_per_response() -> None:
    response = httpx.Response(200, content=(FIXTURES / "orders.xml").read_bytes())
    assert read_envelope(response, "GetOrders") is read_envelope(response, "GetOrders")


# ---------------------------------------------------------------- Ack handling


def test_warning_is_success_with_warnings() -> None:
    envelope = parse_envelope((FIXTURES / "warning.xml").read_bytes(), "GetOrders")
    assert classify_envelope(envelope, "GetOrders", side_effect=False) is None
    assert [w.code for w in envelope.warnings] == ["14003"]
    assert envelope.hard_expiration == "2026-11-08T12:00:00.000Z"


def test_failures_by_kind() -> None:
    system = parse_envelope((FIXTURES / "system_error.xml").read_bytes(), "CompleteSale")
    read = classify_envelope(system, "GetOrders", side_effect=False)
    write = classify_envelope(system, "CompleteSale", side_effect=True)
    assert type(read) is TransientError and "internal problem" in str(read)
    assert isinstance(write, OutcomeUnknown) and "checked on eBay before anything is sent again" in str(write)
    quota = classify_envelope(
        parse_envelope((FIXTURES / "usage_limit.xml").read_bytes(), "x"), "GetOrders", side_effect=False
    )
    assert isinstance(quota, QuotaExhausted) and "midnight Pacific" in str(quota)
    refused = classify_envelope(
        parse_envelope((FIXTURES / "complete_sale_failure.xml").read_bytes(), "x"),
        "CompleteSale",
        side_effect=True,
    )
    assert isinstance(refused, PermanentError)
    assert str(refused) == (
        "eBay refused CompleteSale: The order was cancelled — Order 12-34567-89012 was cancelled by the "
        "buyer and cannot be marked shipped (error 21919302)."
    )


def test_token_kinds_by_prefix() -> None:
    assert token_kind_of("AgAAAA**AQAAAA**x") is EbayTokenKind.AUTHNAUTH
    assert token_kind_of("v^1.1#i^1#p^3#r^1...") is EbayTokenKind.OAUTH
    assert token_kind_of("Bearer xyz") is None
    assert "RequesterCredentials" in EbayTokenKind.AUTHNAUTH.description
    assert "X-EBAY-API-IAF-TOKEN" in EbayTokenKind.OAUTH.description


def test_every_fixture_file_is_exercised() -> None:
    here = Path(__file__).read_text()
    for path in FIXTURES.glob("*.xml"):
        assert path.name in here, f"{path.name} is not used by a test"
