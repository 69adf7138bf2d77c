"""The console's service facade (no Textual): index, filters, ship, queue writes, health."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.ui_support import UI_NOW, build_orders, make_console
from tf_console.console import OrderFilter, OrderIndex, OrderQuery, SortKey, summarize
from tf_console.console.service import (
    AREA_JOBS,
    AREA_ORDERS,
    address_lines,
    health_from_records,
    mask_text,
)
from tf_console.console.views import RequestView
from tf_console.errors import UserError
from tf_console.models import (
    Address,
    ItemKind,
    OrderStatus,
    Platform,
    PlatformState,
    ShipmentState,
)
from tf_console.sync.outbox import OutboxKind, OutboxState, outbox_collection
from tf_console.sync.shipping import ShipRequest
from tf_console.ui import styles

UPS_OK = "1Z999AA10123456784"


def first_open(platform: Platform) -> str:
    for order in build_orders():
        if order.platform is platform and order.status is OrderStatus.UNSHIPPED and order.items:
            return order.key
    raise AssertionError("no open order")


# ---------------------------------------------------------------------------
# Filters and the index


def test_filter_parses_words_and_fields() -> None:
    flt = OrderFilter.parse("dragon platform:etsy status:open ship:none late kind:print bogus:x")
    assert flt.words == ("dragon", "bogus:x")
    assert flt.platforms == {Platform.ETSY}
    assert flt.statuses == {OrderStatus.PENDING, OrderStatus.UNSHIPPED, OrderStatus.PARTIALLY_SHIPPED}
    assert flt.shipment_states == {"none"}
    assert flt.kinds == {ItemKind.PRINT}
    assert flt.late
    assert OrderFilter.parse("status:nonsense").problems == ("status:nonsense",)
    assert OrderFilter.parse("   ").is_empty


def test_filter_matches_summaries() -> None:
    orders = {o.key: summarize(o) for o in build_orders()}
    by_sku = OrderFilter.parse("prt-nameplate")
    hits = {k for k, s in orders.items() if by_sku.matches(s, UI_NOW)}
    assert hits and all("PRT-NAMEPLATE" in orders[k].skus for k in hits)
    shipped = OrderFilter.parse("status:shipped ship:confirmed")
    assert all(orders[k].status is OrderStatus.SHIPPED for k in orders if shipped.matches(orders[k], UI_NOW))
    unknown = OrderFilter.parse("kind:unknown")
    assert all(orders[k].unknown_units for k in orders if unknown.matches(orders[k], UI_NOW))
    late = OrderFilter.parse("late")
    expected = {k for k, s in orders.items() if s.is_open and s.ship_by is not None and s.ship_by < UI_NOW}
    assert expected and {k for k, s in orders.items() if late.matches(s, UI_NOW)} == expected
    assert not any(late.matches(s, UI_NOW - timedelta(days=30)) for s in orders.values())


def test_summary_never_carries_buyer_or_personalisation() -> None:
    order = build_orders()[2]
    assert order.buyer is not None
    summary = summarize(
        order.model_copy(
            update={"items": [i.model_copy(update={"personalisation": "For Mira"}) for i in order.items]}
        )
    )
    text = repr(summary) + summary.search_text
    assert order.buyer.name.lower() not in text.lower()
    assert "mira" not in text.lower()
    assert order.buyer.email not in text


def test_index_scans_never_overwrite_newer_events() -> None:
    index = OrderIndex()
    order = build_orders()[0]
    newer = summarize(order.model_copy(update={"status": OrderStatus.SHIPPED}))
    assert index.put([newer]) == [order.key]
    assert index.add_scanned([summarize(order)]) == 0
    got = index.get(order.key)
    assert got is not None and got.status is OrderStatus.SHIPPED
    assert index.put([newer]) == []  # unchanged: no version bump, nothing to repaint


def test_index_sorts_and_filters_100k_orders_quickly() -> None:
    base = build_orders(30)
    index = OrderIndex()
    summaries = []
    for n in range(100_000):
        template = base[n % len(base)]
        order = template.model_copy(
            update={"order_id": f"{template.order_id}-{n}", "created_at": UI_NOW - timedelta(minutes=n)}
        )
        summaries.append(summarize(order))
    index.add_scanned(summaries)
    assert len(index) == 100_000
    started = time.perf_counter()
    newest = index.listing(OrderQuery(), UI_NOW)
    first_sort = time.perf_counter() - started
    assert len(newest) == 100_000
    assert newest.keys[0].endswith("-0") and newest.keys[-1].endswith("-99999")
    started = time.perf_counter()
    found = index.listing(
        OrderQuery(OrderFilter.parse("platform:etsy prt-dragon-l"), SortKey.SHIP_BY), UI_NOW
    )
    filtered = time.perf_counter() - started
    assert found.keys and all(k.startswith("etsy:") for k in found.keys)
    # One new order: the cached sort is reused (timsort on an almost sorted list).
    index.put(
        [
            summarize(
                base[0].model_copy(update={"order_id": "NEW", "created_at": UI_NOW + timedelta(minutes=1)})
            )
        ]
    )
    started = time.perf_counter()
    again = index.listing(OrderQuery(), UI_NOW)
    resort = time.perf_counter() - started
    assert again.keys[0] == f"{base[0].platform.value}:NEW"
    assert first_sort < 2.0 and filtered < 2.0 and resort < 1.0, (first_sort, filtered, resort)


def test_index_covers_archived_orders(tmp_path: Path) -> None:
    old = [
        o.model_copy(
            update={
                "order_id": f"OLD-{n}",
                "created_at": UI_NOW - timedelta(days=200 + n),
                "updated_at": UI_NOW - timedelta(days=199 + n),
                "status": OrderStatus.SHIPPED,
            }
        )
        for n, o in enumerate(build_orders(12))
    ]
    with make_console(tmp_path, orders=[*build_orders(), *old]) as console:
        store = console.runtime.store
        assert store.orders.count(include_archive=False) == len(build_orders())  # the old ones are archived
        assert console.service.build_index() > 0
        assert console.service.index.complete
        listing = console.service.listing(OrderQuery(OrderFilter.parse("old-3")))
        assert listing.keys == ("amazon:OLD-3",)
        assert len(console.service.listing(OrderQuery())) == len(build_orders()) + len(old)


def test_changed_areas_follow_the_files(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        service = console.service
        service.build_index()
        assert service.changed_areas() == set()
        order = console.orders[0]
        console.runtime.store.orders.update(
            order.platform, order.order_id, lambda o: o.model_copy(update={"refunded": True})
        )
        job = console.runtime.production.jobs()[0]
        console.runtime.production.hold(job.job_id)
        assert service.changed_areas() >= {AREA_ORDERS, AREA_JOBS}
        assert service.changed_areas() == set()
        assert service.rescan() == [order.key]


# ---------------------------------------------------------------------------
# Order detail and shipping


def test_detail_masks_buyer_until_revealed(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        key = next(o.key for o in console.orders if any(i.sku == "PRT-NAMEPLATE" for i in o.items))
        masked = console.service.order_detail(key)
        assert masked is not None and not masked.revealed
        text = " ".join(masked.buyer_lines) + " ".join(i.personalisation for i in masked.items)
        assert "Buyer" not in text and "Elm" not in text and "Mira" not in text
        assert "US" in masked.buyer_lines  # the country alone stays readable
        shown = console.service.order_detail(key, reveal=True)
        assert shown is not None
        assert any("Buyer Number" in line for line in shown.buyer_lines)
        assert any("Mira" in i.personalisation for i in shown.items)
        assert all(i.kind_rule for i in shown.items if i.kind is not ItemKind.UNKNOWN)


def test_mask_helpers() -> None:
    assert mask_text("Jane Buyer") == "J••• B••••"
    assert address_lines(None, reveal=True) == ()
    lines = address_lines(Address(name="Jane Buyer", city="Springfield", country="US"), reveal=False)
    assert lines == ("J••• B••••", "S••••••", "US")


def test_ship_writes_exactly_one_outbox_item_and_requested_state(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        service = console.service
        key = first_open(Platform.ETSY)
        order_id = key.partition(":")[2]
        form = service.ship_form(key)
        assert form.platform is Platform.ETSY
        assert form.carriers[0].code == "usps" and any(c.code == "other" for c in form.carriers)
        receipt = service.ship(ShipRequest(Platform.ETSY, order_id, carrier="ups", tracking=UPS_OK))
        assert not receipt.already and "recorded" in receipt.sentence
        items = outbox_collection(console.runtime.store).all()
        assert [(i.kind, i.state, i.order_id) for i in items] == [
            (OutboxKind.SHIPMENT, OutboxState.PENDING, order_id)
        ]
        summary = service.index.get(key)
        assert summary is not None and summary.shipment_state is ShipmentState.REQUESTED
        again = service.ship(ShipRequest(Platform.ETSY, order_id, carrier="ups", tracking=UPS_OK))
        assert again.already
        assert len(outbox_collection(console.runtime.store).all()) == 1
        with pytest.raises(UserError, match="being confirmed"):
            service.ship_form(key)


def test_ship_refuses_bad_input_and_read_only(tmp_path: Path) -> None:
    with make_console(tmp_path, read_only=True) as console:
        key = first_open(Platform.EBAY)
        with pytest.raises(UserError, match="read-only"):
            console.service.ship_form(key)
        with pytest.raises(UserError, match="read-only"):
            console.service.ship(
                ShipRequest(Platform.EBAY, key.partition(":")[2], carrier="UPS", tracking=UPS_OK)
            )
        assert outbox_collection(console.runtime.store).all() == []
    fba = next(o for o in build_orders() if o.fulfilled_by.value == "marketplace")
    with make_console(tmp_path / "two") as console:
        with pytest.raises(UserError, match="FBA"):
            console.service.ship_form(fba.key)
        pending = next(o for o in build_orders() if o.status is OrderStatus.PENDING)
        with pytest.raises(UserError, match="not paid"):
            console.service.ship_form(pending.key)


def test_tracking_check_words() -> None:
    from tf_console.console import ConsoleService

    bad = ConsoleService.check_tracking(Platform.AMAZON, "UPS", "", "1Z999AA10123456785")
    assert not bad.ok and not bad.hard and "confirm to send it anyway" in bad.sentence
    assert ConsoleService.check_tracking(Platform.AMAZON, "UPS", "", UPS_OK).ok
    empty = ConsoleService.check_tracking(Platform.ETSY, "usps", "", "  ")
    assert not empty.ok and empty.hard
    assert ConsoleService.check_tracking(Platform.AMAZON, "Other", "Evri", "H00AB12345678").ok


# ---------------------------------------------------------------------------
# Queue


def test_queue_moves_are_applied_in_order_and_change_the_schedule(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        service = console.service
        view = service.load_queue()
        assert view.sequence
        last = view.sequence[-1]
        before = service.project()
        preview, pins = service.preview_move(view.sequence, [], last, "top")
        assert preview[0] == last and pins == {last: 1}
        futures = [service.move(last, "top"), service.move(view.sequence[0], "down")]
        results = [f.result(timeout=10) for f in futures]
        assert results[0][0] == last
        assert service.writes_pending == 0
        after = service.project()
        assert after.sequence[0] == last
        assert after.jobs[last].start != before.jobs[last].start
        assert service.load_queue().jobs[last].pin == 1
        assert service.unpin(last).result(timeout=10)[0] != last or len(view.sequence) == 1


def test_hold_priority_and_classify(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        service = console.service
        job_id = service.load_queue().sequence[0]
        assert "held" in service.toggle_hold(job_id).result(timeout=10)
        assert service.load_queue().jobs[job_id].state.value == "held"
        assert "released" in service.toggle_hold(job_id).result(timeout=10)
        from tf_console.models import Priority

        assert "rush" in service.set_priority(job_id, Priority.RUSH).result(timeout=10)
        sentence = service.classify("MYSTERY-GIFT-BOX", ItemKind.PRINT, profile="keychain-name").result(
            timeout=10
        )
        assert "MYSTERY-GIFT-BOX" in sentence and "re-classified" in sentence
        catalog = (console.runtime.ctx.data_dir / "catalog.toml").read_text()
        assert 'sku = "MYSTERY-GIFT-BOX"' in catalog
        assert any(j.sku == "MYSTERY-GIFT-BOX" for j in service.load_queue().jobs.values())
        with pytest.raises(UserError):
            service.classify("MYSTERY-GIFT-BOX", ItemKind.PRINT, profile="no-such-profile").result(timeout=10)


# ---------------------------------------------------------------------------
# Health


def test_health_rows_use_live_records(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        rows = {row.platform: row for row in console.service.health_rows()}
        assert set(rows) == {Platform.AMAZON, Platform.EBAY, Platform.ETSY}
        assert rows[Platform.EBAY].health.state is PlatformState.DEGRADED
        assert rows[Platform.AMAZON].health.success_rate == 1.0
        detail = console.service.health_detail(Platform.EBAY)
        assert detail.requests[0].request_id == "req-ebay-7"  # newest first
        assert detail.errors and detail.errors[0].code == "503"
        assert "503" in detail.errors[0].sentence
        assert any(v is not None for v in detail.success_over_time)


def test_health_from_another_process_log() -> None:
    records = [
        RequestView(
            UI_NOW - timedelta(minutes=k),
            "orders.list",
            "GET",
            None,
            0.0,
            False,
            1,
            "",
            "timeout",
            "",
            (),
            "call",
        )
        for k in (3, 2, 1)
    ]
    health = health_from_records(Platform.EBAY, records, UI_NOW, None, "daemon (pid 9 on box)")
    assert health.state is PlatformState.DOWN and health.poller.startswith("daemon")
    ok = [RequestView(UI_NOW, "orders.list", "GET", 200, 50.0, True, 1, "", "", "", (), "call")]
    assert health_from_records(Platform.EBAY, ok, UI_NOW, None, "").state is PlatformState.OK
    refused = [RequestView(UI_NOW, "orders.list", "GET", 401, 50.0, False, 1, "", "refused", "", (), "call")]
    assert health_from_records(Platform.EBAY, refused, UI_NOW, None, "").state is PlatformState.REAUTH


async def test_test_connection_records_the_check(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        result = await console.service.test_connection(Platform.AMAZON)
        assert result.ok and "work" in result.sentence
        assert "work" in console.service.health_detail(Platform.AMAZON).credential_check


def test_money_and_units_in_summary() -> None:
    order = build_orders()[0]
    summary = summarize(order)
    assert summary.total == sum(
        (i.unit_price.amount * i.quantity for i in order.items if i.unit_price), Decimal(0)
    )
    assert summary.units == sum(i.quantity for i in order.items)


def test_stylesheet_copies_match() -> None:
    assert styles.styles_dir() == styles.REPOSITORY_STYLES
    for name in styles.STYLESHEETS:
        repository = (styles.REPOSITORY_STYLES / name).read_text()
        assert (styles.PACKAGE_STYLES / name).read_text() == repository, (
            f"copy styles/{name} to tf_console/ui/styles/"
        )


async def test_attached_to_a_daemon_reads_its_health_log_and_asks_it_to_poll(tmp_path: Path) -> None:
    from tf_console.marketplaces.health import CallRecord
    from tf_console.runtime import HEALTH_LOG
    from tf_console.sync.lease import Lease

    with make_console(tmp_path, health=False) as console:
        store = console.runtime.store
        daemon = Lease(store.data_dir, console.clock, kind="daemon")
        assert daemon.try_acquire()
        try:
            info = console.service.poller_info()
            assert not info.this_console and info.description.startswith("daemon (pid")
            for k in range(3):
                record = CallRecord(
                    at=UI_NOW - timedelta(minutes=3 - k),
                    platform=Platform.ETSY,
                    operation="orders.list",
                    method="GET",
                    status=503,
                    latency_ms=30.0,
                    attempt=1,
                    ok=False,
                    message="Etsy had a server problem (HTTP 503); it will be retried.",
                )
                store.log(HEALTH_LOG).append({"platform": "etsy", **record.to_dict()})
            rows = {row.platform: row for row in console.service.health_rows()}
            etsy = rows[Platform.ETSY]
            assert etsy.source == "log" and etsy.health.poller.startswith("daemon")
            assert etsy.health.state is PlatformState.DOWN  # three 5xx in a row, as the live recorder says
            sentence = await console.service.poll_now()
            assert sentence.startswith("Asked the daemon")
            from tf_console.sync.engine import ControlRequest

            pending = store.collection("control", ControlRequest, key=lambda r: r.request_id).all()
            assert [r.kind for r in pending] == ["poll"]
        finally:
            daemon.release()
