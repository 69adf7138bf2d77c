"""The Amazon simulator: its wire format against the conformance files and the models, its
rules (2-minute rule, tokens, validation), the replay mode, and ``tf-console sandbox serve``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from tests.conftest import conformance_dir
from tests.test_amazon_support import Model, conformance_json, make_market, shapes
from tf_console.clock import FakeClock
from tf_console.marketplaces.amazon import iso as client_iso
from tf_console.marketplaces.amazon import parse_get_order, parse_search_page
from tf_console.sandbox import LoopbackServer, Sandbox, SandboxRequest, SandboxResponse
from tf_console.sandbox.amazon import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    DEMO_SELLER_ID,
    US_MARKETPLACE,
    AmazonReplaySimulator,
    AmazonShopSimulator,
    create_simulator,
)
from tf_console.sandbox.faults import FaultKind
from tf_console.sandbox.registry import load_factory
from tf_console.sandbox.shopgen import GenOrder, GenStatus

ALL_DATA = "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,PACKAGES,CANCELLATION"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sandbox(clock: FakeClock) -> Sandbox:
    return Sandbox(clock=clock, seed=5, short_page_probability=0.0)


@pytest.fixture
def sim(sandbox: Sandbox) -> AmazonShopSimulator:
    simulator = AmazonShopSimulator(sandbox, orders_per_hour=0.0, backfill=60, fba_share=0.3)
    sandbox.add(simulator)
    return simulator


def call(
    sandbox: Sandbox,
    method: str,
    path: str,
    params: list[tuple[str, str]] | None = None,
    *,
    token: str | None = None,
    body: Any = None,
    raw_query: str | None = None,
) -> SandboxResponse:
    query = raw_query if raw_query is not None else urlencode(params or [], quote_via=quote)
    headers = [("x-amz-access-token", token)] if token else []
    data = json.dumps(body).encode() if body is not None else b""
    return sandbox.handle(SandboxRequest.build(method, f"{path}?{query}" if query else path, headers, data))


def access_token(sandbox: Sandbox) -> str:
    form = urlencode(
        {
            "grant_type": "refresh_token",
            "refresh_token": DEMO_REFRESH_TOKEN,
            "client_id": DEMO_CLIENT_ID,
            "client_secret": DEMO_CLIENT_SECRET,
        }
    )
    answer = sandbox.handle(SandboxRequest.build("POST", "/auth/o2/token", [], form.encode()))
    assert answer.status == 200
    return str(json.loads(answer.body)["access_token"])


def status_of(order: GenOrder) -> GenStatus:
    return order.status


def body(answer: SandboxResponse) -> Any:
    return json.loads(answer.body)


def search(sandbox: Sandbox, token: str, **extra: str) -> SandboxResponse:
    params = {
        "lastUpdatedAfter": client_iso(sandbox.now() - timedelta(days=30)),
        "marketplaceIds": US_MARKETPLACE,
        "includedData": ALL_DATA,
    }
    params.update(extra)
    return call(sandbox, "GET", "/orders/2026-01-01/orders", list(params.items()), token=token)


# ---------------------------------------------------------------------------
# Wire format against the conformance files and the models


def _conformance_order_shapes() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    folder = conformance_dir("amazon")
    for path in folder.glob("orders2026.searchOrders*response*.json"):
        for order in json.loads(path.read_text("utf-8")).get("orders", []):
            found |= shapes(order)
    for path in folder.glob("orders2026.getOrder*response*.json"):
        data = json.loads(path.read_text("utf-8"))
        if "order" in data:
            found |= shapes(data["order"])
    return found


def test_rendered_orders_have_the_conformance_keys_types_and_the_models_shape(
    sandbox: Sandbox, sim: AmazonShopSimulator
) -> None:
    token = access_token(sandbox)
    answer = search(sandbox, token, maxResultsPerPage="100")
    assert answer.status == 200
    page = body(answer)
    model = Model.load("orders_2026-01-01.json")
    assert model.check(page, "SearchOrdersResponse") == []
    ours: set[tuple[str, str]] = set()
    for order in page["orders"]:
        ours |= shapes(order)
    assert ours - _conformance_order_shapes() == set()
    statuses = {o["fulfillment"]["fulfillmentStatus"] for o in page["orders"]}
    assert {"PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"} <= statuses
    assert {o["fulfillment"]["fulfilledBy"] for o in page["orders"]} == {"MERCHANT", "AMAZON"}
    pending = [o for o in page["orders"] if o["fulfillment"]["fulfillmentStatus"] == "PENDING"]
    assert pending and all(
        "price" not in i["product"] and "proceeds" not in o for o in pending for i in o["orderItems"]
    )
    shipped_mfn = [o for o in page["orders"] if o.get("packages")]
    assert shipped_mfn and all(o["fulfillment"]["fulfilledBy"] == "MERCHANT" for o in shipped_mfn)
    # Our own parser reads every one of them.
    parsed = parse_search_page(answer.body)
    assert parsed.errors == [] and len(parsed.orders) == len(page["orders"]) and parsed.missing_addresses == 0
    one = page["orders"][0]["orderId"]
    got = call(sandbox, "GET", f"/orders/2026-01-01/orders/{one}", [("includedData", ALL_DATA)], token=token)
    assert model.check(body(got), "GetOrderResponse") == []
    assert parse_get_order(got.body)[0].order_id == one


def test_listing_inventory_and_error_answers_match_the_models(
    sandbox: Sandbox, sim: AmazonShopSimulator
) -> None:
    token = access_token(sandbox)
    listing_path = f"/listings/2021-08-01/items/{DEMO_SELLER_ID}/PRT-DRAGON-S"
    listing = call(
        sandbox,
        "GET",
        listing_path,
        [
            ("marketplaceIds", US_MARKETPLACE),
            ("includedData", "summaries,attributes,issues,fulfillmentAvailability"),
        ],
        token=token,
    )
    listings_model = Model.load("listingsItems_2021-08-01.json")
    assert listings_model.check(body(listing), "Item") == []
    example = shapes(conformance_json("getListingsItem.response.200.json"))
    ours = {s for s in shapes(body(listing)) if not s[0].startswith(".attributes")}
    assert ours - example == set()

    fba = call(
        sandbox,
        "GET",
        "/fba/inventory/v1/summaries",
        [
            ("details", "true"),
            ("granularityType", "Marketplace"),
            ("granularityId", US_MARKETPLACE),
            ("marketplaceIds", US_MARKETPLACE),
        ],
        token=token,
    )
    fba_spec = json.loads((conformance_dir("amazon") / "specs" / "fbaInventory.json").read_text("utf-8"))
    assert Model(fba_spec["definitions"]).check(body(fba), "GetInventorySummariesResponse") == []
    assert (
        shapes(body(fba)) - shapes(conformance_json("getInventorySummaries.sandbox.200.response.json"))
        == set()
    )

    patch = call(
        sandbox,
        "PATCH",
        listing_path,
        [("marketplaceIds", US_MARKETPLACE)],
        token=token,
        body={
            "productType": "TOY_FIGURE",
            "patches": [{"op": "replace", "path": "/attributes/fulfillment_availability", "value": []}],
        },
    )
    assert listings_model.check(body(patch), "ListingsItemSubmissionResponse") == []
    missing = call(
        sandbox,
        "GET",
        listing_path.replace("PRT-DRAGON-S", "NOPE"),
        [("marketplaceIds", US_MARKETPLACE)],
        token=token,
    )
    assert missing.status == 404 and listings_model.check(body(missing), "ErrorList") == []
    error_shapes = shapes(conformance_json("error.response.403.unauthorized.json"))
    refused = call(sandbox, "GET", "/orders/2026-01-01/orders", [("lastUpdatedAfter", "x")], token="nope")
    assert refused.status == 403 and shapes(body(refused)) == error_shapes


# ---------------------------------------------------------------------------
# Amazon's rules


def test_search_rules(sandbox: Sandbox, sim: AmazonShopSimulator, clock: FakeClock) -> None:
    token = access_token(sandbox)
    too_recent = client_iso(clock.now() - timedelta(minutes=1))
    assert search(sandbox, token, lastUpdatedBefore=too_recent).status == 400
    both = search(sandbox, token, createdAfter=client_iso(clock.now() - timedelta(days=1)))
    assert both.status == 400 and "Exactly one" in body(both)["errors"][0]["details"]
    # An offset whose "+" was not encoded arrives as a space: Amazon cannot read the date.
    raw = f"lastUpdatedAfter=2026-10-01T00:00:00+01:00&marketplaceIds={US_MARKETPLACE}"
    assert call(sandbox, "GET", "/orders/2026-01-01/orders", raw_query=raw, token=token).status == 400
    encoded = f"lastUpdatedAfter=2026-10-01T00:00:00%2B01:00&marketplaceIds={US_MARKETPLACE}"
    assert call(sandbox, "GET", "/orders/2026-01-01/orders", raw_query=encoded, token=token).status == 200
    first = search(sandbox, token, maxResultsPerPage="5")
    next_token = body(first)["pagination"]["nextToken"]
    assert "+" in next_token and "/" in next_token and next_token.endswith("==")
    assert body(first)["lastUpdatedBefore"] == client_iso(clock.now() - timedelta(minutes=2))
    ok = search(sandbox, token, maxResultsPerPage="5", paginationToken=next_token)
    assert ok.status == 200
    twice = quote(quote(next_token, safe=""), safe="")
    since = quote(client_iso(clock.now() - timedelta(days=30)))
    again = f"lastUpdatedAfter={since}&marketplaceIds={US_MARKETPLACE}&maxResultsPerPage=5"
    again += f"&paginationToken={twice}"
    assert call(sandbox, "GET", "/orders/2026-01-01/orders", raw_query=again, token=token).status == 400
    other_filters = search(sandbox, token, paginationToken=next_token, fulfilledBy="AMAZON")
    assert other_filters.status == 400 and "different filters" in body(other_filters)["errors"][0]["details"]


def test_rate_headers_and_tokens(sandbox: Sandbox, sim: AmazonShopSimulator) -> None:
    token = access_token(sandbox)
    ok = search(sandbox, token)
    assert ok.header("x-amzn-RateLimit-Limit") == "0.0056" and ok.header("x-amzn-RequestId")
    sandbox.faults.inject(FaultKind.RATE_LIMIT, route="amazon.orders.search", times=1)
    throttled = search(sandbox, token)
    assert throttled.status == 429 and body(throttled)["errors"][0]["code"] == "QuotaExceeded"
    assert throttled.header("x-amzn-RateLimit-Limit") is None and throttled.header("x-amzn-RequestId")
    sandbox.expire_tokens()
    expired = search(sandbox, token)
    assert expired.status == 403 and body(expired)["errors"][0]["code"] == "Unauthorized"
    assert "expired" not in expired.body.decode().lower()
    assert expired.header("x-amzn-RateLimit-Limit") is None
    bad_secret = sandbox.handle(
        SandboxRequest.build(
            "POST",
            "/auth/o2/token",
            [],
            urlencode(
                {
                    "grant_type": "refresh_token",
                    "refresh_token": DEMO_REFRESH_TOKEN,
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": "wrong",
                }
            ).encode(),
        )
    )
    assert bad_secret.status == 401 and body(bad_secret)["error"] == "invalid_client"


def test_the_2_minute_window_hides_the_newest_changes_until_later(
    sandbox: Sandbox, sim: AmazonShopSimulator, clock: FakeClock
) -> None:
    token = access_token(sandbox)
    order = next(
        o
        for o in sim.book.orders.values()
        if o.status is GenStatus.UNSHIPPED and not o.fulfilled_by_marketplace
    )
    sim.book.ship(order.order_id, "UPS", "1Z999AA10123456784", None, clock.now())
    since = client_iso(clock.now() - timedelta(minutes=1))

    def seen() -> list[str]:
        return [o["orderId"] for o in body(search(sandbox, token, lastUpdatedAfter=since))["orders"]]

    assert order.order_id not in seen()
    clock.advance(150)
    assert order.order_id in seen()


def _confirm_body(order_id: str, sim: AmazonShopSimulator, **detail: Any) -> dict[str, Any]:
    order = sim.book.orders[order_id]
    package = {
        "packageReferenceId": "1",
        "carrierCode": "UPS",
        "trackingNumber": "1Z999AA10123456784",
        "shipDate": "2026-11-02T14:00:00.000Z",
        "orderItems": [{"orderItemId": ln.line_id, "quantity": ln.quantity_unshipped} for ln in order.lines],
    }
    package.update(detail)
    return {"marketplaceId": US_MARKETPLACE, "packageDetail": package}


def test_confirm_shipment_rules(sandbox: Sandbox, sim: AmazonShopSimulator, clock: FakeClock) -> None:
    token = access_token(sandbox)
    order = next(
        o
        for o in sim.book.orders.values()
        if o.status is GenStatus.UNSHIPPED and not o.fulfilled_by_marketplace and not o.shipments
    )
    path = f"/orders/v0/orders/{order.order_id}/shipmentConfirmation"

    def refused(**detail: Any) -> str:
        answer = call(sandbox, "POST", path, token=token, body=_confirm_body(order.order_id, sim, **detail))
        assert answer.status == 400, answer.body
        return str(body(answer)["errors"][0]["details"])

    assert "ISO 8601" in refused(shipDate="02/21/2022")  # the documented bad request
    assert "positive numeric" in refused(packageReferenceId="PKG-1")
    assert "carrier list" in refused(carrierCode="Evri")
    assert "carrierName" in refused(carrierCode="Other")
    assert "OrderItemId" in refused(orderItems=[{"orderItemId": "999", "quantity": 1}])
    assert sim.confirmations == [] and status_of(order) is GenStatus.UNSHIPPED
    before = order.updated_at
    clock.advance(60)
    ok = call(
        sandbox,
        "POST",
        path,
        token=token,
        body=_confirm_body(order.order_id, sim, carrierCode="Other", carrierName="Evri"),
    )
    assert ok.status == 204 and ok.body == b""
    assert status_of(order) is GenStatus.SHIPPED and order.updated_at > before
    assert [(c.package_reference_id, c.carrier, c.edited) for c in sim.confirmations] == [
        ("1", "Evri", False)
    ]
    rendered = sim.render(order, {"PACKAGES"})["packages"][0]
    assert (rendered["packageReferenceId"], rendered["trackingNumber"], rendered["shipTime"]) == (
        "1",
        "1Z999AA10123456784",
        "2026-11-02T14:00:00.000Z",
    )
    # The same package reference again edits the package (Amazon allows correcting a confirmation).
    edit = _confirm_body(
        order.order_id,
        sim,
        trackingNumber="1Z999AA10123456795",
        orderItems=[{"orderItemId": order.lines[0].line_id, "quantity": 1}],
    )
    assert call(sandbox, "POST", path, token=token, body=edit).status == 204
    assert sim.confirmations[-1].edited and order.tracking_numbers() == ["1Z999AA10123456795"]
    fba = next(
        o
        for o in sim.book.orders.values()
        if o.fulfilled_by_marketplace and o.status is not GenStatus.CANCELLED
    )
    answer = call(
        sandbox,
        "POST",
        f"/orders/v0/orders/{fba.order_id}/shipmentConfirmation",
        token=token,
        body=_confirm_body(fba.order_id, sim),
    )
    assert answer.status == 400 and "fulfilled by Amazon" in body(answer)["errors"][0]["details"]
    assert (
        sandbox.log.count("amazon.shipment.confirm", applied_only=True) == 8
    )  # the handler ran, refused or not


def test_listing_patch_is_queued_and_replace_drops_what_is_not_resent(
    sandbox: Sandbox, sim: AmazonShopSimulator, clock: FakeClock
) -> None:
    token = access_token(sandbox)
    path = f"/listings/2021-08-01/items/{DEMO_SELLER_ID}/PRT-PLANTER-M"
    params = [("marketplaceIds", US_MARKETPLACE)]

    def patch(product_type: str, attribute: str, value: Any) -> dict[str, Any]:
        payload = {
            "productType": product_type,
            "patches": [{"op": "replace", "path": f"/attributes/{attribute}", "value": value}],
        }
        answer = call(sandbox, "PATCH", path, params, token=token, body=payload)
        assert answer.status == 200
        return dict(body(answer))

    assert (
        patch("PLANTER", "fulfillmentAvailability", [{"fulfillment_channel_code": "DEFAULT", "quantity": 1}])[
            "status"
        ]
        == "INVALID"
    )
    assert (
        patch("HOME", "fulfillment_availability", [{"fulfillment_channel_code": "DEFAULT", "quantity": 1}])[
            "status"
        ]
        == "INVALID"
    )
    assert patch("PLANTER", "fulfillment_availability", [{"quantity": 1}])["status"] == "INVALID"
    assert (
        patch(
            "PLANTER", "fulfillment_availability", [{"fulfillment_channel_code": "DEFAULT", "quantity": 4}]
        )["status"]
        == "ACCEPTED"
    )
    listing = sim.listings["PRT-PLANTER-M"]
    assert listing.attributes["fulfillment_availability"][0]["quantity"] == 25  # not applied yet
    clock.advance(sim.listing_delay.total_seconds() + 1)
    shown = call(
        sandbox, "GET", path, [*params, ("includedData", "attributes,fulfillmentAvailability")], token=token
    )
    assert body(shown)["fulfillmentAvailability"] == [{"fulfillmentChannelCode": "DEFAULT", "quantity": 4}]
    # The replace kept only what was sent: lead_time_to_ship_max_days is gone.
    assert body(shown)["attributes"]["fulfillment_availability"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": 4}
    ]


def test_fba_next_token_expires_after_30_seconds(
    sandbox: Sandbox, sim: AmazonShopSimulator, clock: FakeClock
) -> None:
    token = access_token(sandbox)
    params = [
        ("granularityType", "Marketplace"),
        ("granularityId", US_MARKETPLACE),
        ("marketplaceIds", US_MARKETPLACE),
    ]
    first = body(call(sandbox, "GET", "/fba/inventory/v1/summaries", params, token=token))
    next_token = first["pagination"]["nextToken"]
    assert "inventoryDetails" not in first["payload"]["inventorySummaries"][0]  # details=false
    clock.advance(31)
    stale = call(
        sandbox, "GET", "/fba/inventory/v1/summaries", [*params, ("nextToken", next_token)], token=token
    )
    assert stale.status == 400 and "expired" in body(stale)["errors"][0]["details"]


def test_restricted_data_modes(clock: FakeClock) -> None:
    refusing = Sandbox(clock=clock, seed=2)
    refusing.add(AmazonShopSimulator(refusing, orders_per_hour=0.0, backfill=10, pii="refused"))
    token = access_token(refusing)
    assert search(refusing, token).status == 403
    assert search(refusing, token, includedData="FULFILLMENT,PROCEEDS").status == 200
    withholding = Sandbox(clock=clock, seed=2)
    withholding.add(AmazonShopSimulator(withholding, orders_per_hour=0.0, backfill=10, pii="absent"))
    page = parse_search_page(search(withholding, access_token(withholding)).body)
    assert page.missing_addresses > 0 and all(o.buyer is None or not o.buyer.name for o in page.orders)


def test_the_shop_is_the_same_for_the_same_seed(clock: FakeClock) -> None:
    def orders(seed: int) -> list[tuple[str, str, str]]:
        box = Sandbox(clock=clock, seed=seed)
        simulator = create_simulator(box, seed=seed)
        return sorted((o.order_id, o.status.value, str(o.total)) for o in simulator.book.orders.values())

    assert orders(4) == orders(4) != orders(5)
    assert load_factory("amazon") is create_simulator


# ---------------------------------------------------------------------------
# Replay of the conformance files


@pytest.fixture
def replay(clock: FakeClock) -> Iterator[tuple[Sandbox, AmazonReplaySimulator, LoopbackServer]]:
    box = Sandbox(clock=clock, seed=1)
    simulator = AmazonReplaySimulator(box, conformance_dir("amazon"))
    box.add(simulator)
    server = LoopbackServer(box).start()
    yield box, simulator, server
    server.stop()


_OPERATIONS = {
    "orders2026.searchOrders": ("GET", "/orders/2026-01-01/orders"),
    "orders2026.getOrder": ("GET", "/orders/2026-01-01/orders/{orderId}"),
    "getOrders": ("GET", "/orders/v0/orders"),
    "getOrder": ("GET", "/orders/v0/orders/{orderId}"),
    "getOrderItems": ("GET", "/orders/v0/orders/{orderId}/orderItems"),
    "getOrderAddress": ("GET", "/orders/v0/orders/{orderId}/address"),
    "getOrderBuyerInfo": ("GET", "/orders/v0/orders/{orderId}/buyerInfo"),
    "getOrderItemsBuyerInfo": ("GET", "/orders/v0/orders/{orderId}/orderItems/buyerInfo"),
    "confirmShipment": ("POST", "/orders/v0/orders/{orderId}/shipmentConfirmation"),
    "updateShipmentStatus": ("POST", "/orders/v0/orders/{orderId}/shipment"),
    "createRestrictedDataToken": ("POST", "/tokens/2021-03-01/restrictedDataToken"),
    "getInventorySummaries": ("GET", "/fba/inventory/v1/summaries"),
    "getListingsItem": ("GET", "/listings/2021-08-01/items/{sellerId}/{sku}"),
    "patchListingsItem": ("PATCH", "/listings/2021-08-01/items/{sellerId}/{sku}"),
}


def _request_from(file: Path) -> tuple[str, str, bytes]:
    operation = file.name.split(".sandbox.")[0]
    method, pattern = _OPERATIONS[operation]
    parameters: dict[str, Any] = json.loads(file.read_text("utf-8")).get("parameters") or {}
    values = {
        name: spec.get("value")
        for name, spec in parameters.items()
        if isinstance(spec, dict) and "value" in spec
    }
    path = pattern
    for name in ("orderId", "sellerId", "sku"):
        if "{" + name + "}" in path:
            path = path.replace("{" + name + "}", quote(str(values.pop(name, "ANY")), safe=""))
    data = json.dumps(values.pop("body")).encode() if "body" in values else b""
    query = []
    for name, value in values.items():
        text = (
            ",".join(map(str, value))
            if isinstance(value, list)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        query.append((name, text))
    return method, path + ("?" + urlencode(query) if query else ""), data


def test_replay_serves_every_static_answer_byte_for_byte(
    replay: tuple[Sandbox, AmazonReplaySimulator, LoopbackServer],
) -> None:
    _, simulator, server = replay
    files = sorted(conformance_dir("amazon").glob("*.sandbox.*.request.json"))
    assert len(files) >= 30
    with httpx.Client(base_url=server.base_url, timeout=5) as http:
        for file in files:
            method, target, data = _request_from(file)
            answer = http.request(method, target, content=data, headers={"Content-Type": "application/json"})
            expected_status = int(file.name.split(".sandbox.")[1].split(".")[0])
            response_file = file.with_name(file.name.replace(".request.json", ".response.json"))
            assert answer.status_code == expected_status, file.name
            if expected_status == 204:
                assert answer.content == b""
            else:
                assert answer.content == response_file.read_bytes(), file.name
            assert answer.headers["x-amzn-RequestId"]
        unmatched = http.get("/orders/2026-01-01/orders", params={"createdAfter": "2020-01-01T00:00:00Z"})
        assert (
            unmatched.status_code == 400
            and unmatched.json()["errors"][0]["message"] == "Could not match input arguments"
        )
    assert len(simulator.served) == len(files)


async def test_our_client_reads_the_replayed_answers(
    replay: tuple[Sandbox, AmazonReplaySimulator, LoopbackServer], clock: FakeClock
) -> None:
    _, simulator, server = replay
    market = make_market(server.base_url, clock, seller_id="A1SELLER", marketplace_ids=["A2Q3Y263D00KWC"])
    try:
        orders = await market.fetch_orders_by_id(
            ["171-9876543-2109876", "028-1234567-8901234", "202-1234567-8901234"]
        )
        listing = await market.listing("GM-ZDPI-9B4E")
    finally:
        await market.aclose()
    assert [o.order_id for o in orders] == [
        "171-9876543-2109876",
        "028-1234567-8901234",
        "202-1234567-8901234",
    ]
    assert simulator.served[0] == "lwa.token.response.200.json"  # the LWA example answered our refresh
    assert listing is not None and listing.product_type == "LUGGAGE"


# ---------------------------------------------------------------------------
# tf-console sandbox serve --platform amazon


def test_sandbox_serve_runs_the_amazon_simulator(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_console", "sandbox", "serve", "--platform", "amazon", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert "Sandbox listening on http://127.0.0.1:" in first, first
        base = first.split("listening on ")[1].split(" ")[0]
        described = [process.stdout.readline() for _ in range(4)]
        assert any("AMAZON_SELLER_ID" in line for line in described)
        with httpx.Client(base_url=base, timeout=5) as http:
            grant = http.post(
                "/auth/o2/token",
                data={
                    "grant_type": "refresh_token",
                    "refresh_token": DEMO_REFRESH_TOKEN,
                    "client_id": DEMO_CLIENT_ID,
                    "client_secret": DEMO_CLIENT_SECRET,
                },
            ).json()
            page = http.get(
                "/orders/2026-01-01/orders",
                params={"lastUpdatedAfter": "2020-01-01T00:00:00Z", "includedData": "FULFILLMENT"},
                headers={"x-amz-access-token": grant["access_token"]},
            )
        assert page.status_code == 200 and page.json()["orders"]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
