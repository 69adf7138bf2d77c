"""Inventory sync end to end: the runtime, the three simulators in process, the outbox.

A sale on Etsy reaches Amazon's and eBay's outbox within one poll and goes out as
one coalesced push each; Etsy, which lowered its own count, is left alone.  An
uncounted SKU is never pushed; Amazon's accepted update is read back; the Etsy
push of a made-to-order SKU keeps every variation of its listing.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.test_amazon_support import Model
from tf_console.audit import AuditLog
from tf_console.clock import FakeClock
from tf_console.demo import IsolatedSettings, demo_values, isolated_context
from tf_console.inventory import InventoryService, PushStatus, install_inventory
from tf_console.models import Platform
from tf_console.production.examples import example_text
from tf_console.runtime import Runtime
from tf_console.sandbox import Sandbox, SandboxTransport
from tf_console.sandbox.amazon import AmazonShopSimulator
from tf_console.sandbox.ebay import EbaySimulator
from tf_console.sandbox.etsy import SIZED_EXTRA_SKU, SIZED_PRODUCT, EtsySimulator
from tf_console.sandbox.shopgen import GenLine, GenOrder, GenStatus
from tf_console.sync.outbox import OutboxKind, OutboxState

AMAZON, EBAY, ETSY = Platform.AMAZON, Platform.EBAY, Platform.ETSY
FILAMENT = "STK-PLA-1KG-BLK"
FIXED_KEY = b"o4mJ0v3oVZ2cGkz8b7m1p0d5Jx3cQ9Yw6n2r8t4u1s0="
PATCHES, REVISIONS, ETSY_PUTS = "amazon.listings.patch", "ebay.ReviseInventoryStatus", "etsy.inventory.put"

STOCK_TABLES = f"""
[stock."{FILAMENT}"]
buffer = 2

[stock."{SIZED_EXTRA_SKU}"]
made_to_order = true
max = 3
lead_days = 5
"""


@dataclass
class Rig:
    clock: FakeClock
    runtime: Runtime
    sandboxes: dict[Platform, Sandbox]
    amazon: AmazonShopSimulator
    ebay: EbaySimulator
    etsy: EtsySimulator

    @property
    def service(self) -> InventoryService:
        return install_inventory(self.runtime)

    def calls(self) -> tuple[int, int, int]:
        return (
            self.sandboxes[AMAZON].log.count(PATCHES),
            self.sandboxes[EBAY].log.count(REVISIONS),
            self.sandboxes[ETSY].log.count(ETSY_PUTS),
        )

    async def deliver(self, seconds: float) -> None:
        """Let ``seconds`` pass and deliver whatever fell due, as the engine's rounds would."""
        self.clock.advance(seconds)
        await self.runtime.engine.sender.deliver_due()

    def sell_on_etsy(self, quantity: int) -> GenOrder:
        now = self.clock.now()
        order = self.etsy.generator.order(now - timedelta(seconds=5))
        order.lines = [
            GenLine(
                line_id=f"{order.order_id}1",
                sku=FILAMENT,
                title="PLA Filament 1.75 mm, 1 kg Spool, Black",
                kind="stock",
                quantity=quantity,
                unit_price=Decimal("19.99"),
                listing_id="",
            )
        ]
        order.status, order.paid_at, order.fulfilled_by_marketplace = GenStatus.UNSHIPPED, now, False
        order.currency = "USD"
        self.etsy.book.add(order)
        return order

    def etsy_quantity(self, sku: str) -> int:
        listing = self.etsy.listing_for(sku)
        return sum(int(o["quantity"]) for p in listing.products if p["sku"] == sku for o in p["offerings"])

    def ebay_quantity(self, sku: str) -> int:
        return self.ebay.listings[self.ebay.item_ids[sku]].quantity


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = FakeClock()
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / "catalog.toml").write_text(example_text("catalog.toml") + STOCK_TABLES, "utf-8")
    (data_dir / "printers.toml").write_text(example_text("printers.toml"), "utf-8")
    sandboxes = {p: Sandbox(clock=clock, seed=21) for p in (AMAZON, EBAY, ETSY)}
    amazon = AmazonShopSimulator(sandboxes[AMAZON], seed=21, orders_per_hour=0, backfill=0, fba_share=0)
    ebay = EbaySimulator(sandboxes[EBAY], seed=21, orders_per_hour=0, backfill=0)
    etsy = EtsySimulator(sandboxes[ETSY], seed=21, orders_per_hour=0, backfill=0)
    values = {"TF_TIMEZONE": "UTC", "TF_STOCK_PUSH_DELAY": "30"}
    documented = IsolatedSettings().endpoint_defaults()
    for platform, simulator in ((AMAZON, amazon), (EBAY, ebay), (ETSY, etsy)):
        sandboxes[platform].add(simulator)
        values.update(demo_values(platform, simulator, documented))
    runtime = Runtime(
        isolated_context(data_dir, values, clock=clock, key=FIXED_KEY),
        lease_kind="test",
        transports={p: SandboxTransport(s, sleep=clock.sleep) for p, s in sandboxes.items()},
        rng_seed=21,
    )
    async with runtime.started():
        assert runtime.disabled == {}
        assert await runtime.engine.take_lease()
        yield Rig(clock, runtime, sandboxes, amazon, ebay, etsy)


async def _poll_everything(rig: Rig) -> None:
    results = await rig.runtime.engine.poll_all()
    assert all(r.ok for r in results), [r.summary for r in results]


def _inventory_items(rig: Rig) -> list[Any]:
    return [i for i in rig.runtime.engine.sender.items.all() if i.kind is OutboxKind.INVENTORY]


async def test_an_uncounted_sku_is_never_pushed(rig: Rig) -> None:
    rig.sell_on_etsy(2)
    await _poll_everything(rig)
    await rig.service.refresh()
    record = rig.service.book.record(FILAMENT)
    assert record is not None and record.allocated == 2 and record.on_hand is None
    planned = await rig.service.plan(delay=0)
    # Only the made-to-order SKU is offered; the filament has no shelf count, so it is left alone.
    assert {item.sku for item in planned} <= {SIZED_EXTRA_SKU}
    await rig.deliver(1)
    assert rig.calls()[:2] == (0, 0)
    assert not any(item.sku == FILAMENT for item in _inventory_items(rig))
    row = next(r for r in rig.service.rows() if r.sku == FILAMENT)
    assert row.offered is None and "no shelf count" in row.why


async def test_a_sale_on_etsy_is_pushed_once_to_amazon_and_ebay_and_not_back_to_etsy(rig: Rig) -> None:
    await _poll_everything(rig)
    change = await _in_thread(rig.service.set_on_hand, FILAMENT, 40)
    assert change.after.on_hand == 40
    allocated = change.after.allocated
    first = await rig.service.plan()
    assert {(i.platform, i.sku) for i in first} >= {(AMAZON, FILAMENT), (EBAY, FILAMENT), (ETSY, FILAMENT)}
    await rig.deliver(31)
    offered = 40 - allocated - 2
    assert rig.ebay_quantity(FILAMENT) == offered and rig.etsy_quantity(FILAMENT) == offered
    # Amazon queued it: read back until the listing shows it (the simulator applies after 120 s).
    pushes = {(p.platform, p.listing_sku): p for p in rig.service.sync.pushes.all()}
    assert pushes[(AMAZON, FILAMENT)].status is PushStatus.QUEUED
    for _ in range(3):
        await rig.deliver(61)
    amazon_push = rig.service.sync.pushes.get(f"amazon:{FILAMENT.casefold()}")
    assert amazon_push is not None and amazon_push.status is PushStatus.APPLIED
    assert amazon_push.latency is not None and timedelta(seconds=120) < amazon_push.latency < timedelta(
        minutes=5
    )
    before = rig.calls()

    # Two sales on Etsy, seen by two polls inside the push delay: one push each, latest value only.
    rig.sell_on_etsy(2)
    await rig.runtime.engine.poll(ETSY)
    planned = await rig.service.plan()
    assert {(i.platform, i.sku) for i in planned if i.sku == FILAMENT} == {
        (AMAZON, FILAMENT),
        (EBAY, FILAMENT),
    }
    rig.clock.advance(10)
    rig.sell_on_etsy(1)
    await rig.runtime.engine.poll(ETSY)
    coalesced = await rig.service.plan()
    assert {i.item_id for i in coalesced} == {i.item_id for i in planned if i.sku == FILAMENT}
    await rig.deliver(21)
    after = rig.calls()
    assert (after[0] - before[0], after[1] - before[1], after[2] - before[2]) == (1, 1, 0)
    offered_now = offered - 3
    assert rig.ebay_quantity(FILAMENT) == offered_now
    _sku, body = rig.amazon.listing_patches[-1]
    assert body["patches"][0]["value"][0]["quantity"] == offered_now
    # The patch matches the listings model and re-sends the attribute's other keys.
    assert Model.load("listingsItems_2021-08-01.json").check(body, "ListingsItemPatchRequest") == []
    assert body["patches"][0]["value"] == [
        {"fulfillment_channel_code": "DEFAULT", "quantity": offered_now, "lead_time_to_ship_max_days": 3}
    ]
    # Nothing is planned again while the marketplaces agree (Etsy lowered its own count).
    await rig.deliver(200)
    assert [i for i in await rig.service.plan() if i.sku == FILAMENT] == []
    row = next(r for r in rig.service.rows() if r.sku == FILAMENT)
    assert (row.on_hand, row.allocated, row.buffer, row.offered) == (40, allocated + 3, 2, offered_now)
    assert row.pushes[EBAY][0].applied and row.pushes[ETSY][0].quantity == offered
    audit = [e for e in AuditLog(rig.runtime.store).entries() if e.target == f"SKU {FILAMENT}"]
    assert next(e.action for e in audit) == "stock.set"
    assert {e.outcome for e in audit if e.action == "stock.push"} >= {"applied", "queued"}


async def test_a_made_to_order_push_to_etsy_keeps_every_variation(rig: Rig) -> None:
    listing = rig.etsy.listing_for(SIZED_PRODUCT)
    before = json.loads(json.dumps(listing.products))
    on_property = list(listing.quantity_on_property)
    await rig.service.refresh()
    quote = rig.service.sync.quotes[SIZED_EXTRA_SKU.casefold()]
    assert 0 <= quote.quantity <= 3 and quote.explanation.startswith("min(max 3, ")
    await rig.service.plan(delay=0)
    await rig.deliver(1)
    after = rig.etsy.listing_for(SIZED_PRODUCT).products
    assert len(after) == len(before) == 6
    for old, new in zip(before, after, strict=True):
        assert (old["sku"], old["property_values"], old["offerings"][0]["price"]) == (
            new["sku"],
            new["property_values"],
            new["offerings"][0]["price"],
        )
        wanted = quote.quantity if new["sku"] == SIZED_EXTRA_SKU else old["offerings"][0]["quantity"]
        assert new["offerings"][0]["quantity"] == wanted
    assert rig.etsy.listing_for(SIZED_PRODUCT).quantity_on_property == on_property
    pushes = {p.platform: p for p in rig.service.sync.pushes.all() if p.listing_sku == SIZED_EXTRA_SKU}
    assert pushes[ETSY].status is PushStatus.APPLIED
    # Amazon and eBay have no listing with that SKU: skipped, and not asked again for an hour.
    assert pushes[AMAZON].status is PushStatus.SKIPPED and pushes[EBAY].status is PushStatus.SKIPPED
    assert rig.calls()[:2] == (0, 0)
    assert await rig.service.plan(delay=0) == []


async def test_a_push_found_in_flight_after_a_crash_is_sent_again_with_the_latest_value(rig: Rig) -> None:
    await _poll_everything(rig)
    await _in_thread(rig.service.set_on_hand, FILAMENT, 12)
    items = [i for i in await rig.service.plan(delay=0) if i.platform is EBAY and i.sku == FILAMENT]
    (item,) = items
    sender = rig.runtime.engine.sender
    item.state = OutboxState.SENDING  # the process died mid-call
    await sender.save(item)
    assert await sender.recover() == 1
    await _in_thread(rig.service.adjust, FILAMENT, -1, "one spool was damp")
    await rig.service.plan(delay=0)
    await rig.deliver(1)
    done = sender.items.get(item.item_id)
    assert done is not None and done.state is OutboxState.DONE
    record = rig.service.book.record(FILAMENT)
    assert record is not None and rig.ebay_quantity(FILAMENT) == 11 - record.allocated - 2


async def _in_thread(fn: Any, *args: Any) -> Any:
    import anyio.to_thread

    return await anyio.to_thread.run_sync(fn, *args)
