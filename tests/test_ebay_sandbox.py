"""The eBay simulator against the conformance samples, and the client against the simulator in-process."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta
from urllib.parse import parse_qs

import pytest

from tests.conftest import conformance_dir
from tests.ebay_helpers import (
    SCOPES,
    child_tags,
    make_market,
    make_rig,
    merge_shapes,
    shape,
    shape_problems,
    trading,
    xml,
)
from tf_console.clock import FakeClock
from tf_console.marketplaces.base import ConfirmState, MalformedResponse, PushState, ReauthNeeded
from tf_console.marketplaces.ebay import EbayMarketplace, parse_envelope, parse_orders_envelope
from tf_console.marketplaces.http import ClientSettings
from tf_console.models import Order, OrderStatus, Shipment, ShipmentLine
from tf_console.sandbox import Sandbox, SandboxTransport
from tf_console.sandbox.ebay import (
    COMPLETE_SALE_ROUTE,
    DEMO_APP_ID,
    DEMO_CERT_ID,
    DEMO_REFRESH_TOKEN,
    GET_ORDERS_ROUTE,
    TOKEN_PATH,
    TRADING_PATH,
    EbayReplaySimulator,
    EbaySimulator,
    wire_time,
)
from tf_console.sandbox.faults import FaultKind
from tf_console.sandbox.registry import load_factory
from tf_console.sandbox.shopgen import GenStatus

WINDOW = "<ModTimeFrom>{start}</ModTimeFrom><ModTimeTo>{end}</ModTimeTo>"


def _window(clock: FakeClock, days: float = 30) -> str:
    now = clock.now()
    return WINDOW.format(start=wire_time(now - timedelta(days=days)), end=wire_time(now))


async def _all_orders(market: EbayMarketplace, days: float = 40) -> list[Order]:
    found: list[Order] = []
    async for page in market.fetch_orders(market.client.clock.now() - timedelta(days=days)):
        assert page.errors == []
        found.extend(page.orders)
    return found


# ---------------------------------------------------------------- conformance of the simulator


def test_rendered_orders_have_the_conformance_shape() -> None:
    folder = conformance_dir("ebay")
    reference_docs = [
        xml((folder / name).read_bytes())
        for name in ("trading.GetOrders.response.xml", "trading.GetOrders.response.variation-sku.xml")
    ]
    reference = merge_shapes(
        [
            shape(order)
            for doc in reference_docs
            for order in doc.iter("{urn:ebay:apis:eBLBaseComponents}Order")
        ]
    )
    rig = make_rig(backfill=80)
    orders = list(rig.sim.book.orders.values())
    orders[0].cancel_requested = True
    orders[1].status, orders[1].paid_at = GenStatus.PENDING, None  # backfilled orders are all paid
    states = {o.status for o in orders}
    assert {GenStatus.PENDING, GenStatus.UNSHIPPED, GenStatus.SHIPPED} <= states
    ours = merge_shapes([shape(xml(_serialised(rig.sim, o))) for o in orders])
    assert shape_problems(ours, reference) == []
    for path in (
        "Order/OrderID",
        "Order/CheckoutStatus/LastModifiedTime",
        "Order/ShippingAddress/Name",
        "Order/Total@currencyID",
        "Order/TransactionArray/Transaction/Item/ItemID",
        "Order/TransactionArray/Transaction/Item/SKU",
        "Order/TransactionArray/Transaction/Variation/SKU",
        "Order/TransactionArray/Transaction/QuantityPurchased",
        "Order/TransactionArray/Transaction/TransactionPrice@currencyID",
        "Order/TransactionArray/Transaction/ShippingDetails/ShipmentTrackingDetails/ShipmentTrackingNumber",
        "Order/TransactionArray/Transaction/OrderLineItemID",
        "Order/ShippedTime",
        "Order/BuyerUserID",
    ):
        assert path in ours, path
    # The envelope: the same top-level fields in the same order.
    answer = trading(rig.sandbox, "GetOrders", _window(rig.clock))
    assert child_tags(xml(answer.body)) == child_tags(reference_docs[0])


def _serialised(sim: EbaySimulator, order: object) -> bytes:
    import xml.etree.ElementTree as ET

    element = sim.render_order(order)  # type: ignore[arg-type]
    element.set("xmlns", "urn:ebay:apis:eBLBaseComponents")
    return ET.tostring(element)


def test_other_answers_have_the_conformance_shape() -> None:
    folder = conformance_dir("ebay")
    rig = make_rig(backfill=5)
    listings = trading(
        rig.sandbox,
        "GetSellerList",
        "<EndTimeFrom>2026-11-01T00:00:00.000Z</EndTimeFrom><EndTimeTo>2027-02-27T00:00:00.000Z</EndTimeTo>"
        "<Pagination><EntriesPerPage>2</EntriesPerPage><PageNumber>1</PageNumber></Pagination>",
    )
    reference = xml((folder / "trading.GetSellerList.response.xml").read_bytes())
    ours = xml(listings.body)
    assert child_tags(ours)[: len(child_tags(reference)) - 1] == child_tags(reference)[:-1]
    assert set(shape(reference.find("{*}ItemArray/{*}Item")).keys()) <= set(  # type: ignore[arg-type]
        shape(ours.find("{*}ItemArray/{*}Item")).keys()  # type: ignore[arg-type]
    )
    item_id = rig.sim.item_ids["PRT-CABLE-CLIP-10"]
    revised = trading(
        rig.sandbox,
        "ReviseInventoryStatus",
        f"<InventoryStatus><ItemID>{item_id}</ItemID><Quantity>5</Quantity></InventoryStatus>",
    )
    reference = xml((folder / "trading.ReviseInventoryStatus.response.xml").read_bytes())
    assert child_tags(xml(revised.body)) == child_tags(reference)
    assert shape_problems(shape(xml(revised.body)), shape(reference)) == []
    refused = trading(rig.sandbox, "GetOrders", _window(rig.clock), token="AgAAAA**nope")
    reference = xml((folder / "trading.error.response.xml").read_bytes())
    assert child_tags(xml(refused.body)) == child_tags(reference)
    assert child_tags(xml(refused.body).find("{*}Errors")) == child_tags(reference.find("{*}Errors"))  # type: ignore[arg-type]
    assert xml(refused.body).find("{*}Errors/{*}ErrorCode").text == "931"  # type: ignore[union-attr]


async def test_requests_have_the_conformance_shape() -> None:
    folder = conformance_dir("ebay")
    rig = make_rig(backfill=10)
    await _all_orders(rig.market)
    (request,) = rig.transport.calls("GetOrders")
    reference = shape(xml((folder / "trading.GetOrders.request.xml").read_bytes()))
    ours = shape(xml(request.body))
    assert set(reference) - {"GetOrdersRequest"} <= set(ours)
    assert (
        request.headers["x-ebay-api-siteid"] == "0"
        and int(request.headers["x-ebay-api-compatibility-level"]) >= 1113
    )
    assert request.headers["content-type"] == "text/xml"
    order = next(o for o in await _all_orders(rig.market) if o.status is OrderStatus.UNSHIPPED)
    result = await rig.market.confirm_shipment(order, _shipment(order))
    assert result.state is ConfirmState.CONFIRMED
    sale = shape(xml(rig.transport.calls("CompleteSale")[0].body))
    reference = shape(xml((folder / "trading.CompleteSale.request.xml").read_bytes()))
    allowed = {
        "CompleteSaleRequest/OrderID",
        "CompleteSaleRequest/OrderLineItemID",
        "CompleteSaleRequest/ErrorLanguage",
    }
    assert [p for p in sale if p not in reference and p not in allowed] == []
    assert "CompleteSaleRequest/Shipment/ShipmentTrackingDetails/ShipmentTrackingNumber" in sale
    push = await rig.market.set_quantity("PRT-CABLE-CLIP-10", 12)
    assert push.state is PushState.APPLIED
    revise = shape(xml(rig.transport.calls("ReviseInventoryStatus")[0].body))
    reference = shape(xml((folder / "trading.ReviseInventoryStatus.request.xml").read_bytes()))
    assert set(reference) <= set(revise)


async def test_oauth_refresh_request_matches_the_conformance_sample() -> None:
    folder = conformance_dir("ebay")
    sample = (folder / "oauth.token.refresh_token.request.http").read_text()
    assert "grant_type=refresh_token" in sample
    rig = make_rig(backfill=3, oauth=True)
    await _all_orders(rig.market)
    (token_call,) = [r for r in rig.transport.requests if r.url.endswith(TOKEN_PATH)]
    assert token_call.method == "POST"
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    expected = base64.b64encode(f"{DEMO_APP_ID}:{DEMO_CERT_ID}".encode()).decode()
    assert token_call.headers["authorization"] == f"Basic {expected}"
    form = parse_qs(token_call.body.decode())
    assert form == {"grant_type": ["refresh_token"], "refresh_token": [DEMO_REFRESH_TOKEN], "scope": [SCOPES]}
    (orders_call,) = rig.transport.calls("GetOrders")
    assert orders_call.headers["x-ebay-api-iaf-token"].startswith("v^1.1#")
    assert b"RequesterCredentials" not in orders_call.body
    assert len(rig.grants) == 1 and rig.grants[0].refresh_token is None  # eBay does not rotate it


async def test_replay_serves_the_conformance_files_byte_for_byte() -> None:
    folder = conformance_dir("ebay")
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=1)
    sandbox.add(EbayReplaySimulator(folder))
    answer = trading(sandbox, "GetOrders", "<NumberOfDays>3</NumberOfDays>")
    assert answer.body == (folder / "trading.GetOrders.response.xml").read_bytes()
    market = make_market(sandbox, clock, transport=SandboxTransport(sandbox, sleep=clock.sleep), oauth=True)
    found = await _all_orders(market)
    assert [o.order_id for o in found] == ["24-07558-27052"]
    assert market.client.auth is not None and market.client.auth.token_expires_at is not None
    order = found[0].model_copy(update={"status": OrderStatus.UNSHIPPED})
    for item in order.items:
        item.quantity_shipped = 0
    assert (await market.confirm_shipment(order, _shipment(order))).state is ConfirmState.CONFIRMED
    assert (
        await market.set_quantity("DET 9782940", 4)
    ).state is PushState.SKIPPED  # the sample lists no SKUs
    unsupported = trading(sandbox, "GeteBayOfficialTimes", "")
    assert unsupported.body == (folder / "trading.error.UnsupportedCall.response.xml").read_bytes()


# ---------------------------------------------------------------- the simulator's behaviour


def _shipment(
    order: Order, tracking: str = "1Z999AA10123456784", lines: list[ShipmentLine] | None = None
) -> Shipment:
    return Shipment(
        shipment_id="1",
        carrier="UPS",
        carrier_name="UPS",
        tracking=tracking,
        shipped_at=order.created_at + timedelta(hours=5),
        lines=lines or [ShipmentLine(line_id=i.line_id, quantity=i.quantity_unshipped) for i in order.items],
    )


async def test_backfill_pages_and_sees_every_order_but_cancelled_ones() -> None:
    rig = make_rig(backfill=90, entries_per_page=20, short_pages=0.5)
    found = await _all_orders(rig.market)
    book = rig.sim.book.orders
    visible = {i for i, o in book.items() if o.status is not GenStatus.CANCELLED}
    assert {o.order_id for o in found} == visible and len(found) == len(visible)
    assert len(rig.transport.calls("GetOrders")) >= 3
    cancelled = [i for i, o in book.items() if o.status is GenStatus.CANCELLED]
    assert cancelled, "the seeded shop has cancellations"
    again = await rig.market.fetch_orders_by_id([*cancelled, "99-99999-99999"])
    assert [o.order_id for o in again] == cancelled and all(o.status is OrderStatus.CANCELLED for o in again)


async def test_windows_never_reach_past_90_days_nor_into_the_last_two_minutes() -> None:
    rig = make_rig(backfill=5)
    now = rig.clock.now()
    async for _page in rig.market.fetch_orders(now - timedelta(days=200)):
        pass
    body = xml(rig.transport.calls("GetOrders")[0].body)
    start = datetime.fromisoformat(body.find("{*}ModTimeFrom").text.replace("Z", "+00:00"))  # type: ignore[union-attr]
    end = datetime.fromisoformat(body.find("{*}ModTimeTo").text.replace("Z", "+00:00"))  # type: ignore[union-attr]
    assert now - timedelta(days=90) < start and end == now - timedelta(minutes=2)
    warnings = [r.message for r in rig.market.client.health.records() if r.kind == "warning"]
    assert warnings == ["eBay keeps only 90 days of orders; changes older than that cannot be read."]
    before = len(rig.transport.requests)
    async for _page in rig.market.fetch_orders(now - timedelta(minutes=1)):
        pass
    assert len(rig.transport.requests) == before  # nothing to ask for yet


async def test_orders_modified_while_paging_are_not_lost() -> None:
    rig = make_rig(backfill=60, entries_per_page=10)
    pages = rig.market.fetch_orders(rig.clock.now() - timedelta(days=40))
    seen: set[str] = set()
    first = await anext(pages)
    seen.update(o.order_id for o in first.orders)
    # Two orders on the first page change now: they leave the window, the rest move forward.
    for order in first.orders[:2]:
        rig.sim.book.orders[order.order_id].updated_at = rig.clock.now()
    async for page in pages:
        seen.update(o.order_id for o in page.orders)
    window_end = rig.clock.now() - timedelta(minutes=2)
    expected = {
        i
        for i, o in rig.sim.book.orders.items()
        if o.status is not GenStatus.CANCELLED and o.updated_at <= window_end
    }
    assert expected <= seen


async def test_complete_sale_ships_and_bumps_the_modified_time() -> None:
    rig = make_rig(backfill=40)
    orders = await _all_orders(rig.market)
    order = next(o for o in orders if o.status is OrderStatus.UNSHIPPED and len(o.items) == 1)
    rig.clock.advance(600)
    result = await rig.market.confirm_shipment(order, _shipment(order))
    assert result.state is ConfirmState.CONFIRMED and "1Z999AA10123456784" in result.answer
    remote = await rig.market.read_shipments(order)
    assert remote.order_found and remote.shipped and remote.tracking_numbers == ["1Z999AA10123456784"]
    assert remote.order is not None and remote.order.updated_at == rig.clock.now()
    assert rig.sim.completed_sales == [(order.order_id, "1Z999AA10123456784")]


async def test_one_line_of_a_multi_line_order_goes_by_order_line_item_id() -> None:
    rig = make_rig(backfill=80)
    orders = await _all_orders(rig.market)
    order = next(o for o in orders if o.status is OrderStatus.UNSHIPPED and len(o.items) >= 2)
    first = order.items[0]
    line = [ShipmentLine(line_id=first.line_id, quantity=first.quantity)]
    assert (
        await rig.market.confirm_shipment(order, _shipment(order, lines=line))
    ).state is ConfirmState.CONFIRMED
    assert b"<OrderLineItemID>" in rig.transport.calls("CompleteSale")[0].body
    remote = await rig.market.read_shipments(order)
    assert (
        remote.order is not None
        and remote.order.status is OrderStatus.PARTIALLY_SHIPPED
        and not remote.shipped
    )
    # eBay cannot mark part of a line, or two of three lines, in one call: refused before sending.
    if first.quantity > 1:
        part = [ShipmentLine(line_id=first.line_id, quantity=first.quantity - 1)]
        refused = await rig.market.confirm_shipment(order, _shipment(order, lines=part))
        assert refused.state is ConfirmState.REJECTED and "whole order lines" in refused.answer
    assert len(rig.transport.calls("CompleteSale")) == 1
    # New tracking for the shipped line (eBay allows it) updates that line only.
    retrack = (
        f"<OrderLineItemID>{first.line_id}</OrderLineItemID><Shipped>true</Shipped><Shipment>"
        "<ShipmentTrackingDetails><ShipmentTrackingNumber>1Z12345E0205271686</ShipmentTrackingNumber>"
        "<ShippingCarrierUsed>UPS</ShippingCarrierUsed></ShipmentTrackingDetails></Shipment>"
    )
    assert parse_envelope(trading(rig.sandbox, "CompleteSale", retrack).body, "x").ack == "Success"
    after = await rig.market.read_shipments(order)
    assert after.order is not None and after.order.status is OrderStatus.PARTIALLY_SHIPPED
    assert [i.quantity_shipped for i in after.order.items][1:] == [0] * (len(order.items) - 1)
    assert "1Z12345E0205271686" in after.tracking_numbers


async def test_complete_sale_failure_is_rejected_with_ebay_words() -> None:
    rig = make_rig(backfill=20)
    orders = await _all_orders(rig.market)
    order = next(o for o in orders if o.status is OrderStatus.UNSHIPPED)
    rig.sim.book.cancel(order.order_id, rig.clock.now())
    result = await rig.market.confirm_shipment(order, _shipment(order))
    assert result.state is ConfirmState.REJECTED
    assert result.answer.startswith("eBay refused CompleteSale: The order was cancelled")
    assert rig.sim.completed_sales == []


async def test_set_quantity_finds_listings_and_variations_and_skips_auctions() -> None:
    rig = make_rig(backfill=0)
    variations = await rig.market.set_quantity("PRT-DRAGON-S", 7)
    assert variations.state is PushState.APPLIED
    listing = rig.sim.listings[rig.sim.item_ids["PRT-DRAGON-S"]]
    assert [v.quantity for v in listing.variations] == [7, 7, 7]
    nozzle = await rig.market.set_quantity("STK-NOZZLE-04", 3)
    assert nozzle.state is PushState.APPLIED
    auctions = [x for x in rig.sim.listings.values() if x.listing_type == "Chinese"]
    assert auctions and all(a.quantity == 1 for a in auctions)
    by_sku = await rig.market.set_quantity("STK-PLA-1KG-BLK", 9)  # tracked by SKU: addressed by SKU alone
    assert by_sku.state is PushState.APPLIED
    assert b"<ItemID>" not in rig.transport.calls("ReviseInventoryStatus")[-1].body
    missing = await rig.market.set_quantity("NO-SUCH-SKU", 1)
    assert missing.state is PushState.SKIPPED and "NO-SUCH-SKU" in missing.answer
    assert len(rig.transport.calls("GetSellerList")) == 1  # listing discovery is cached


async def test_revise_inventory_status_takes_at_most_four() -> None:
    rig = make_rig(backfill=0)
    items = "".join(
        f"<InventoryStatus><ItemID>{i}</ItemID><Quantity>1</Quantity></InventoryStatus>"
        for i in list(rig.sim.listings)[:5]
    )
    answer = parse_envelope(trading(rig.sandbox, "ReviseInventoryStatus", items).body, "x")
    assert answer.ack == "Failure" and answer.errors[0].code == "21919304"


async def test_expired_oauth_token_mid_backfill_is_refreshed_once() -> None:
    rig = make_rig(backfill=70, oauth=True, entries_per_page=15)
    pages = rig.market.fetch_orders(rig.clock.now() - timedelta(days=40))
    seen = [o.order_id for o in (await anext(pages)).orders]
    rig.sandbox.expire_tokens()
    async for page in pages:
        seen.extend(o.order_id for o in page.orders)
    assert (
        len(seen)
        == len(set(seen))
        == sum(1 for o in rig.sim.book.orders.values() if o.status is not GenStatus.CANCELLED)
    )
    assert len(rig.grants) == 2 and rig.sim.tokens.refreshes == 2
    errors = [r for r in rig.market.client.health.records() if not r.ok and r.kind == "call"]
    assert [e.error_code for e in errors] == ["932"]


async def test_expired_authnauth_token_needs_a_new_one() -> None:
    rig = make_rig(backfill=5)
    rig.sandbox.faults.inject(FaultKind.EXPIRED_TOKEN, route=GET_ORDERS_ROUTE, times=1)
    with pytest.raises(ReauthNeeded) as caught:
        await _all_orders(rig.market)
    assert caught.value.variable == "EBAY_USER_TOKEN" and "tf-console creds set EBAY_USER_TOKEN" in str(
        caught.value
    )
    assert rig.market.client.health.state()[1] == str(caught.value)
    check = await rig.market.check_credentials()
    assert not check.ok and check.details["token_kind"] == "authnauth"


async def test_revoked_refresh_token_names_the_refresh_variable() -> None:
    rig = make_rig(backfill=2, oauth=True)
    rig.sim.tokens.revoke_refresh_tokens()
    with pytest.raises(ReauthNeeded) as caught:
        await _all_orders(rig.market)
    assert caught.value.variable == "EBAY_REFRESH_TOKEN"


async def test_daily_budget_answers_518_and_the_client_stops() -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=2)
    sim = EbaySimulator(sandbox, orders_per_hour=0, backfill=3, daily_limit=2)
    sandbox.add(sim)
    market = make_market(sandbox, clock, transport=SandboxTransport(sandbox, sleep=clock.sleep))
    assert (await market.check_credentials()).ok
    assert (await market.check_credentials()).ok
    third = await market.check_credentials()
    assert not third.ok and "518" in third.sentence
    calls = sandbox.log.total
    assert not (await market.check_credentials()).ok  # the client's own budget now says no
    assert sandbox.log.total == calls
    assert market.client.limiter.snapshot().daily_remaining == 0
    shown = market.client.health.snapshot()
    assert shown.daily_budget == 5000 and shown.daily_remaining == 0


async def test_daily_budget_is_counted_and_shown_but_token_calls_are_free() -> None:
    rig = make_rig(backfill=30, oauth=True)
    await _all_orders(rig.market)
    calls = len(rig.transport.calls("GetOrders"))
    shown = rig.market.client.health.snapshot()
    assert shown.daily_budget == 5000 and shown.daily_remaining == 5000 - calls


def test_header_and_body_checks_answer_like_ebay() -> None:
    rig = make_rig(backfill=1)
    bad_site = parse_envelope(
        trading(rig.sandbox, "GetUser", "", headers={"X-EBAY-API-SITEID": "US"}).body, "x"
    )
    assert bad_site.errors[0].code == "10012"
    mismatch = parse_envelope(trading(rig.sandbox, "GetUser", "", root="GetOrdersRequest").body, "x")
    assert mismatch.errors[0].code == "2"
    no_filter = parse_envelope(trading(rig.sandbox, "GetOrders", "").body, "x")
    assert no_filter.errors[0].code == "10009"
    too_old = WINDOW.format(start="2026-01-01T00:00:00.000Z", end=wire_time(rig.clock.now()))
    assert parse_envelope(trading(rig.sandbox, "GetOrders", too_old).body, "x").errors[0].code == "37"


def test_server_faults_look_like_ebays() -> None:
    rig = make_rig(backfill=1)
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, status=500, times=1)
    plain = trading(rig.sandbox, "GetUser", "")
    assert plain.status == 500 and plain.body == b"an internal error occured"
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, status=503, times=1)
    assert trading(rig.sandbox, "GetUser", "").header("content-type") == "text/html"
    rig.sandbox.faults.inject(FaultKind.RATE_LIMIT, retry_after=3, times=1)
    throttled = trading(rig.sandbox, "GetUser", "")
    assert throttled.status == 429 and throttled.header("retry-after") == "3"


async def test_non_xml_5xx_is_retried_then_a_clean_sentence() -> None:
    rig = make_rig(backfill=2)
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, status=500, route=GET_ORDERS_ROUTE, times=1)
    assert len(await _all_orders(rig.market)) >= 1  # the read was retried
    rig.sandbox.faults.inject(FaultKind.SERVER_ERROR, status=500, route=GET_ORDERS_ROUTE)
    with pytest.raises(Exception) as caught:
        await _all_orders(rig.market)
    assert (
        str(caught.value)
        == "eBay had a server problem answering GetOrders (HTTP 500); it will be retried later."
    )


def test_member_message_within_90_days_to_the_buyer_only() -> None:
    rig = make_rig(backfill=10)
    order = next(iter(rig.sim.book.orders.values()))
    item_id = rig.sim.item_ids[order.lines[0].sku]
    message = (
        f"<ItemID>{item_id}</ItemID><MemberMessage><Subject>Your print</Subject>"
        "<Body>It is on the printer.</Body>"
        "<QuestionType>CustomizedSubject</QuestionType>"
        f"<RecipientID>{order.buyer.user_id}</RecipientID></MemberMessage>"
    )
    assert (
        parse_envelope(trading(rig.sandbox, "AddMemberMessageAAQToPartner", message).body, "x").ack
        == "Success"
    )
    assert rig.sim.messages[0].recipient == order.buyer.user_id
    stranger = message.replace(order.buyer.user_id, "someone_else")
    answer = parse_envelope(trading(rig.sandbox, "AddMemberMessageAAQToPartner", stranger).body, "x")
    assert answer.ack == "Failure" and answer.errors[0].code == "21919307"


def test_the_same_query_always_pages_the_same_way() -> None:
    rig = make_rig(backfill=60, short_pages=1.0)
    window = _window(rig.clock)
    inner = f"{window}<Pagination><EntriesPerPage>25</EntriesPerPage><PageNumber>1</PageNumber></Pagination>"
    first = parse_orders_envelope(parse_envelope(trading(rig.sandbox, "GetOrders", inner).body, "x"))
    again = parse_orders_envelope(parse_envelope(trading(rig.sandbox, "GetOrders", inner).body, "x"))
    assert [o.order_id for o in first.orders] == [o.order_id for o in again.orders]
    assert 0 < len(first.orders) < 25  # a short page, announced through OrdersPerPage and the page count


async def test_oversized_answer_is_refused_while_streaming() -> None:
    rig = make_rig(backfill=2, settings=ClientSettings(max_response_bytes=64 * 1024))
    rig.sim.answer_next("GetOrders", b"<" + b"x" * (65 * 1024))
    with pytest.raises(MalformedResponse, match="limit and was not read"):
        await _all_orders(rig.market)


def test_answer_next_replaces_one_answer_without_applying_it() -> None:
    rig = make_rig(backfill=1)
    rig.sim.answer_next("GetUser", b"garbage", status=200)
    assert trading(rig.sandbox, "GetUser", "").body == b"garbage"
    assert parse_envelope(trading(rig.sandbox, "GetUser", "").body, "x").ack == "Success"


def test_token_endpoint_checks_the_keyset() -> None:
    from tf_console.sandbox.core import SandboxRequest

    rig = make_rig(backfill=1)
    wrong = base64.b64encode(b"someone:else").decode()
    request = SandboxRequest.build(
        "POST",
        TOKEN_PATH,
        [("Authorization", f"Basic {wrong}"), ("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=refresh_token&refresh_token=x&scope=y",
    )
    answer = rig.sandbox.handle(request)
    assert answer.status == 401 and json.loads(answer.body)["error"] == "invalid_client"


def test_registered_for_sandbox_serve() -> None:
    factory = load_factory("ebay")
    assert factory is not None
    sandbox = Sandbox(clock=FakeClock(), seed=4)
    sim = sandbox.add(factory(sandbox, seed=4))
    facts = sim.describe()
    assert facts["EBAY_APP_ID"] == DEMO_APP_ID and facts["EBAY_TRADING_URL"].endswith(TRADING_PATH)
    assert COMPLETE_SALE_ROUTE == "ebay.CompleteSale"
