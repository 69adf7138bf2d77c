"""The Etsy simulator: shaped like the conformance payloads, strict like Etsy, stateful, and replayable."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import conformance_dir
from tf_console.clock import FakeClock
from tf_console.marketplaces.etsy import create_etsy_marketplace, parse_receipts_page
from tf_console.marketplaces.http import ClientSettings
from tf_console.sandbox import LoopbackServer, Sandbox, SandboxRequest, SandboxResponse
from tf_console.sandbox.etsy import (
    API,
    DEMO_CLIENT_ID,
    DEMO_REFRESH_TOKEN,
    DEMO_SHARED_SECRET,
    DEMO_SHOP_ID,
    DEMO_USER_ID,
    SIZED_EXTRA_SKU,
    SIZED_PRODUCT,
    TOKEN_PATH,
    EtsyReplaySimulator,
    EtsySimulator,
)
from tf_console.sandbox.registry import load_factory
from tf_console.sandbox.shopgen import GenStatus

API_KEY = f"{DEMO_CLIENT_ID}:{DEMO_SHARED_SECRET}"
SHOP = f"{API}/shops/{DEMO_SHOP_ID}"


class Shop:
    """A sandbox with the Etsy simulator, driven in-process through ``Sandbox.handle``."""

    def __init__(self, **options: Any) -> None:
        self.clock = FakeClock()
        self.sandbox = Sandbox(clock=self.clock, seed=11, short_page_probability=0.0)
        self.sandbox.rate_limits_enabled = options.pop("rate_limits", False)
        options.setdefault("backfill", 40)
        options.setdefault("orders_per_hour", 0)
        self.sim = EtsySimulator(self.sandbox, **options)
        self.sandbox.add(self.sim)
        self.refresh_token = DEMO_REFRESH_TOKEN
        self.access_token = ""

    def call(
        self,
        method: str,
        target: str,
        *,
        body: bytes = b"",
        content_type: str = "",
        api_key: str | None = API_KEY,
        bearer: bool = True,
    ) -> SandboxResponse:
        headers = []
        if api_key is not None:
            headers.append(("x-api-key", api_key))
        if bearer and self.access_token:
            headers.append(("Authorization", f"Bearer {self.access_token}"))
        if content_type:
            headers.append(("Content-Type", content_type))
        return self.sandbox.handle(SandboxRequest.build(method, target, headers, body))

    def refresh(self, token: str | None = None) -> SandboxResponse:
        form = (
            f"grant_type=refresh_token&client_id={DEMO_CLIENT_ID}&refresh_token={token or self.refresh_token}"
        )
        answer = self.call(
            "POST",
            TOKEN_PATH,
            body=form.encode(),
            content_type="application/x-www-form-urlencoded",
            bearer=False,
        )
        if answer.status == 200:
            body = json.loads(answer.body)
            self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        return answer

    def json(self, method: str, target: str, **kw: Any) -> Any:
        answer = self.call(method, target, **kw)
        assert answer.status == 200, answer.body
        return json.loads(answer.body)


@pytest.fixture
def shop() -> Shop:
    s = Shop()
    assert s.refresh().status == 200
    return s


def assert_same_shape(ours: Any, theirs: Any, path: str = "$", *, exact: bool = True) -> None:
    """Same keys (or a superset when not ``exact``) and JSON types; null matches anything."""
    if ours is None or theirs is None:
        return
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), path
        missing = set(theirs) - set(ours)
        extra = set(ours) - set(theirs)
        assert not missing, f"{path} lacks {sorted(missing)}"
        assert not (exact and extra), f"{path} has extra {sorted(extra)}"
        for key, value in theirs.items():
            assert_same_shape(ours[key], value, f"{path}.{key}", exact=exact)
    elif isinstance(theirs, list):
        assert isinstance(ours, list), path
        if theirs:
            for index, item in enumerate(ours):
                assert_same_shape(item, theirs[0], f"{path}[{index}]", exact=exact)
    else:
        assert type(ours) is type(theirs), f"{path}: {type(ours).__name__} vs {type(theirs).__name__}"


# ---------------------------------------------------------------- shapes


def test_receipts_have_the_captured_shape(shop: Shop) -> None:
    captured = json.loads((conformance_dir("etsy") / "getShopReceipts.response.200.json").read_text("utf-8"))
    example = captured["results"][0]  # has shipments, transactions, variations and refunds
    shop.sim.refund_partially(
        next(iter(shop.sim.book.orders)), shop.sim.book.orders[next(iter(shop.sim.book.orders))].total / 2
    )
    page = shop.json("GET", f"{SHOP}/receipts?limit=100")
    assert set(page) == set(captured) and page["count"] == len(shop.sim.book.orders) == 40
    receipts = page["results"]
    for receipt in receipts:
        assert_same_shape(receipt, example)
    statuses = {r["status"] for r in receipts}
    assert {"Completed", "Paid", "Partially Refunded"} <= statuses
    assert all(s[0].isupper() for s in statuses)
    transactions = [t for r in receipts for t in r["transactions"]]
    assert any(t["sku"] == "" for t in transactions) and any(t["quantity"] > 1 for t in transactions)
    assert any(v["formatted_name"] == "Personalization" for t in transactions for v in t["variations"])
    assert any(r["shipments"] for r in receipts) and any(r["refunds"] for r in receipts)
    for receipt in receipts:  # Money is amount/divisor in the shop's currency, and totals add up
        total = sum(t["price"]["amount"] * t["quantity"] for t in receipt["transactions"])
        assert receipt["total_price"]["amount"] == total and receipt["grandtotal"]["divisor"] == 100


def test_inventory_token_and_me_have_the_captured_shape(shop: Shop) -> None:
    folder = conformance_dir("etsy")
    listing = shop.sim.listing_for(SIZED_PRODUCT)
    inventory = shop.json("GET", f"{API}/listings/{listing.listing_id}/inventory")
    # Newer fields (readiness_state_*) are allowed on top of the 2021 capture.
    assert_same_shape(
        inventory, json.loads((folder / "getListingInventory.response.200.json").read_text()), exact=False
    )
    sample = json.loads((folder / "updateListingInventory.variations.request.json").read_text())
    for product in inventory["products"]:
        for value in product["property_values"]:
            assert_same_shape(value, sample["products"][0]["property_values"][0], exact=False)
    assert len(inventory["products"]) == 6 and inventory["quantity_on_property"] == [200, 513]
    fresh = Shop()
    answer = fresh.refresh()
    token = json.loads(answer.body)
    assert_same_shape(token, json.loads((folder / "oauthToken.refresh.response.200.json").read_text()))
    assert token["access_token"].startswith(f"{DEMO_USER_ID}.") and token["refresh_token"].startswith(
        f"{DEMO_USER_ID}."
    )
    assert shop.json("GET", f"{API}/users/me") == {"user_id": DEMO_USER_ID, "shop_id": DEMO_SHOP_ID}


# ---------------------------------------------------------------- auth


def test_api_key_must_carry_the_shared_secret(shop: Shop) -> None:
    captured = json.loads((conformance_dir("etsy") / "error.403.shared-secret-required.json").read_text())
    keystring_only = shop.call("GET", f"{API}/users/me", api_key=DEMO_CLIENT_ID)
    assert keystring_only.status == 403 and json.loads(keystring_only.body) == captured
    bad_format = shop.call("GET", f"{API}/users/me", api_key=f"{DEMO_CLIENT_ID}:")
    assert bad_format.status == 403 and "keystring:shared_secret" in json.loads(bad_format.body)["error"]
    assert shop.call("GET", f"{API}/users/me", api_key=f"{DEMO_CLIENT_ID}:wrong").status == 403
    assert shop.call("GET", f"{API}/users/me", api_key=None).status == 403
    assert shop.call("GET", f"{API}/openapi-ping", bearer=False).status == 200
    no_token = shop.call("GET", f"{API}/users/me", bearer=False)
    assert no_token.status == 401 and json.loads(no_token.body)["error"] == "invalid_token"
    shop.sandbox.expire_tokens()
    expired = json.loads(shop.call("GET", f"{API}/users/me").body)
    assert expired == {"error": "invalid_token", "error_description": "access token is expired"}


def test_every_refresh_rotates_and_retires_the_old_refresh_token(shop: Shop) -> None:
    first = shop.refresh_token
    assert shop.refresh().status == 200 and shop.refresh_token != first
    reused = shop.refresh(first)
    assert reused.status == 400
    assert json.loads(reused.body) == json.loads(
        (conformance_dir("etsy") / "error.oauth-invalid-grant-revoked.json").read_text()
    )
    shop.sim.revoke_refresh_tokens()
    assert shop.refresh().status == 400
    json_body = shop.call("POST", TOKEN_PATH, body=b"{}", content_type="application/json", bearer=False)
    assert json_body.status == 400


# ---------------------------------------------------------------- receipts


def test_offset_paging_filters_and_sorting(shop: Shop) -> None:
    orders = shop.sim.book.orders
    newest_first = shop.json("GET", f"{SHOP}/receipts?sort_on=updated&sort_order=desc&limit=15")
    stamps = [r["updated_timestamp"] for r in newest_first["results"]]
    assert stamps == sorted(stamps, reverse=True) and newest_first["count"] == len(orders)
    seen: list[int] = []
    offset = 0
    while offset < len(orders):
        page = shop.json("GET", f"{SHOP}/receipts?sort_on=updated&limit=15&offset={offset}")
        seen += [r["receipt_id"] for r in page["results"]]
        offset += 15
    assert sorted(seen) == sorted(int(i) for i in orders) and len(seen) == len(set(seen))
    cutoff = sorted(o.updated_at for o in orders.values())[30]
    recent = shop.json("GET", f"{SHOP}/receipts?limit=100&min_last_modified={int(cutoff.timestamp())}")
    assert recent["count"] == sum(
        1 for o in orders.values() if int(o.updated_at.timestamp()) >= int(cutoff.timestamp())
    )
    paid = shop.json("GET", f"{SHOP}/receipts?limit=100&was_paid=false")
    assert all(not r["is_paid"] for r in paid["results"])
    for bad in ("limit=101", "limit=0", "offset=-1", "min_last_modified=5", "sort_on=price", "limit=ten"):
        answer = shop.call("GET", f"{SHOP}/receipts?{bad}")
        assert answer.status == 400 and json.loads(answer.body)["error"], bad
    assert shop.call("GET", f"{API}/shops/1/receipts").status == 403
    assert shop.call("GET", f"{SHOP}/receipts/1").status == 404


def test_short_pages_happen_but_the_count_says_how_many() -> None:
    s = Shop(backfill=60)
    s.sandbox.short_page_probability = 1.0
    assert s.refresh().status == 200
    page = s.json("GET", f"{SHOP}/receipts?limit=50")
    assert page["count"] == 60 and 1 <= len(page["results"]) < 50


def _paid_open_order(shop: Shop) -> str:
    return next(i for i, o in sorted(shop.sim.book.orders.items()) if o.status is GenStatus.UNSHIPPED)


def test_tracking_is_read_as_the_content_type_says(shop: Shop) -> None:
    target = _paid_open_order(shop)
    before = shop.sim.book.orders[target].updated_at
    shop.clock.advance(60)
    body = json.dumps(
        {"tracking_code": "1Z999AA10123456784", "carrier_name": "ups", "note_to_buyer": "Enjoy!"}
    )
    receipt = shop.json(
        "POST", f"{SHOP}/receipts/{target}/tracking", body=body.encode(), content_type="application/json"
    )
    assert receipt["is_shipped"] and receipt["status"] == "Completed"
    assert receipt["shipments"][-1]["tracking_code"] == "1Z999AA10123456784"
    assert receipt["shipments"][-1]["carrier_name"] == "UPS"  # Etsy shows the carrier's name, not the code
    assert shop.sim.book.orders[target].updated_at > before
    assert shop.sim.buyer_emails == [(target, "1Z999AA10123456784")]
    assert shop.sim.tracking_requests[-1].content_type == "application/json"
    # Another tracking call on a shipped receipt adds a second shipment record (and a second e-mail).
    again = shop.json(
        "POST", f"{SHOP}/receipts/{target}/tracking", body=body.encode(), content_type="application/json"
    )
    assert len(again["shipments"]) == len(receipt["shipments"]) + 1 and len(shop.sim.buyer_emails) == 2
    assert shop.sim.tracking_calls == 2


def test_json_sent_as_a_form_loses_the_tracking(shop: Shop) -> None:
    sample = (conformance_dir("etsy") / "createReceiptShipment.request.issue201.json").read_bytes()
    unshipped = [i for i, o in sorted(shop.sim.book.orders.items()) if o.status is GenStatus.UNSHIPPED]
    cheap, dear = unshipped[0], unshipped[1]
    shop.sim.book.orders[cheap].buyer.country = "GB"  # no tracking rule outside the US and India
    form = "application/x-www-form-urlencoded"
    lost = shop.json("POST", f"{SHOP}/receipts/{cheap}/tracking", body=sample, content_type=form)
    assert lost["is_shipped"] and not any(s["tracking_code"] for s in lost["shipments"])
    refused = shop.call("POST", f"{SHOP}/receipts/{dear}/tracking", body=sample, content_type=form)
    assert refused.status == 400
    assert json.loads(refused.body) == json.loads(
        (conformance_dir("etsy") / "error.tracking-number-required.json").read_text()
    )
    proper = shop.json(
        "POST",
        f"{SHOP}/receipts/{dear}/tracking",
        body=b"tracking_code=JC243137885GB&carrier_name=royal-mail",
        content_type=form,
    )
    assert proper["shipments"][-1]["tracking_code"] == "JC243137885GB"
    unknown = shop.call(
        "POST",
        f"{SHOP}/receipts/{unshipped[2]}/tracking",
        body=json.dumps({"tracking_code": "X1", "carrier_name": "pigeon-post"}).encode(),
        content_type="application/json",
    )
    assert unknown.status == 400 and "not a supported shipping carrier" in json.loads(unknown.body)["error"]
    cancelled = unshipped[3]
    shop.sim.book.cancel(cancelled, shop.clock.now())
    answer = shop.call(
        "POST", f"{SHOP}/receipts/{cancelled}/tracking", body=b"{}", content_type="application/json"
    )
    assert answer.status == 409


# ---------------------------------------------------------------- inventory


def test_inventory_put_is_a_validated_full_replacement(shop: Shop) -> None:
    listing = shop.sim.listing_for(SIZED_PRODUCT)
    url = f"{API}/listings/{listing.listing_id}/inventory"
    read = shop.json("GET", url)

    def put(body: Any) -> SandboxResponse:
        return shop.call("PUT", url, body=json.dumps(body).encode(), content_type="application/json")

    assert put(read).status == 400  # ids, is_deleted and Money prices as read cannot go back
    clean = {
        "products": [
            {
                "sku": p["sku"],
                "property_values": [
                    {k: v for k, v in pv.items() if k != "scale_name"} for pv in p["property_values"]
                ],
                "offerings": [
                    {"price": o["price"]["amount"] / 100, "quantity": 3, "is_enabled": True}
                    for o in p["offerings"]
                ],
            }
            for p in read["products"]
        ],
        **{k: read[k] for k in ("price_on_property", "quantity_on_property", "sku_on_property")},
    }
    stripped = json.loads(json.dumps(clean))
    stripped["products"][0]["property_values"] = []
    empty = put(stripped)
    assert empty.status == 400 and json.loads(empty.body) == {"error": "Property values can't be empty"}
    money_price = json.loads(json.dumps(clean))
    money_price["products"][0]["offerings"][0]["price"] = {"amount": 2100, "divisor": 100}
    assert put(money_price).status == 400
    too_many = json.loads(json.dumps(clean))
    too_many["products"][0]["offerings"][0]["quantity"] = 1000
    assert put(too_many).status == 400
    assert shop.call("PUT", url, body=json.dumps(clean).encode(), content_type="text/plain").status == 400
    # A body with fewer products replaces the set: the left-out variations are gone (Etsy's pitfall).
    partial = json.loads(json.dumps(clean))
    partial["products"] = partial["products"][:2]
    assert put(partial).status == 200
    assert len(shop.sim.listing_for(SIZED_PRODUCT).products) == 2
    assert set(shop.sim.listing_for(SIZED_PRODUCT).skus) == {SIZED_PRODUCT, SIZED_EXTRA_SKU}


def test_listings_show_their_skus_and_sales_take_stock() -> None:
    s = Shop(backfill=0, orders_per_hour=6.0)
    assert s.refresh().status == 200
    page = s.json("GET", f"{SHOP}/listings?state=active&limit=100")
    by_sku = {sku: listing for listing in page["results"] for sku in listing["skus"]}
    assert SIZED_EXTRA_SKU in by_sku and "PRT-LITHOPHANE" not in by_sku  # that listing's SKU field is empty
    before = sum(lst.quantity for lst in s.sim.listings.values())
    s.clock.advance(2 * 3600)
    s.json("GET", f"{API}/openapi-ping")  # any request brings the shop up to now
    sold = sum(line.quantity for o in s.sim.book.orders.values() for line in o.lines)
    assert sold > 0 and all(
        o["quantity"] > 0 for lst in s.sim.listings.values() for p in lst.products for o in p["offerings"]
    )
    assert sum(lst.quantity for lst in s.sim.listings.values()) == before - sold


# ---------------------------------------------------------------- limits


def test_rate_headers_throttling_and_the_daily_budget() -> None:
    s = Shop(daily_limit=14, rate_limits=True)
    assert s.refresh().status == 200
    answers = [s.call("GET", f"{API}/users/me") for _ in range(12)]
    statuses = [a.status for a in answers]
    assert statuses[:9] == [200] * 9 and 429 in statuses  # 10 a second, the refresh took one
    ok = answers[0]
    assert ok.header("x-limit-per-second") == "10" and ok.header("x-limit-per-day") == "14"
    assert int(ok.header("x-remaining-this-second") or -1) >= 0
    throttled = next(a for a in answers if a.status == 429)
    assert json.loads(throttled.body) == json.loads(
        (conformance_dir("etsy") / "error.429.per-second-rate-limit.json").read_text()
    )
    assert throttled.header("retry-after") == "1"
    s.clock.advance(5)
    daily = [s.call("GET", f"{API}/users/me") for _ in range(6)]
    spent = next(a for a in daily if a.status == 429)
    assert spent.header("x-remaining-today") == "0" and int(spent.header("retry-after") or 0) > 80_000
    s.clock.advance(86_401)
    assert s.call("GET", f"{API}/openapi-ping").status == 200


# ---------------------------------------------------------------- replay and serve


@pytest.fixture
def replay() -> Iterator[LoopbackServer]:
    sandbox = Sandbox(clock=FakeClock(), seed=1)
    sandbox.add(EtsyReplaySimulator(conformance_dir("etsy")))
    with LoopbackServer(sandbox) as server:
        yield server


def test_replay_serves_the_conformance_files_byte_for_byte(replay: LoopbackServer) -> None:
    folder = conformance_dir("etsy")
    headers = {"x-api-key": API_KEY, "Authorization": "Bearer 12345678.x"}
    with httpx.Client(base_url=replay.base_url, headers=headers) as http:
        pairs = [
            (http.get(f"{API}/shops/1/receipts"), "getShopReceipts.response.200.json"),
            (http.get(f"{API}/shops/1/receipts/3021745515"), "getShopReceipt.response.200.json"),
            (
                http.post(f"{API}/shops/1/receipts/3021745515/tracking", json={}),
                "getShopReceipt.response.200.json",
            ),
            (http.get(f"{API}/listings/1/inventory"), "getListingInventory.response.200.json"),
            (
                http.post(TOKEN_PATH, data={"grant_type": "refresh_token"}),
                "oauthToken.refresh.response.200.json",
            ),
        ]
        for response, name in pairs:
            assert response.status_code == 200 and response.content == (folder / name).read_bytes(), name
        refused = http.get(f"{API}/shops/1/receipts", headers={"x-api-key": DEMO_CLIENT_ID})
        assert refused.status_code == 403
        assert refused.content == (folder / "error.403.shared-secret-required.json").read_bytes()


async def test_the_client_reads_replayed_receipts_like_the_files(replay: LoopbackServer) -> None:
    folder = conformance_dir("etsy")
    clock = FakeClock()
    market = create_etsy_marketplace(
        base_url=replay.base_url,
        oauth_url=replay.base_url + TOKEN_PATH,
        client_id=DEMO_CLIENT_ID,
        shared_secret=DEMO_SHARED_SECRET,
        refresh_token="12345678.replayed",
        shop_id="1",
        clock=clock,
        rng=random.Random(1),
        settings=ClientSettings(read_timeout=5.0),
    )
    try:
        pages = [page async for page in market.fetch_orders(clock.now() - timedelta(days=1))]
        expected = parse_receipts_page(
            httpx.Response(200, content=(folder / "getShopReceipts.response.200.json").read_bytes())
        )
        assert len(pages) == 1 and pages[0].orders == expected.orders and pages[0].errors == []
        remote = await market.read_shipments(expected.orders[0])
        assert remote.order_found and remote.tracking_numbers == ["REDACTED0000000000"] and remote.shipped
    finally:
        await market.aclose()


def test_sandbox_serve_offers_the_etsy_simulator() -> None:
    assert load_factory("etsy") is not None
    process = subprocess.Popen(
        [sys.executable, "-m", "tf_console", "sandbox", "serve", "--platform", "etsy", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        text = "".join(lines)
        assert "Sandbox listening on http://127.0.0.1:" in text
        assert f"ETSY_CLIENT_ID = {DEMO_CLIENT_ID}" in text and f"ETSY_SHOP_ID = {DEMO_SHOP_ID}" in text
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)
