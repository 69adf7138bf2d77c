"""Pilot tests: every key of the console does what it says (and nothing else)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest
from rich.console import Console as RichConsole
from textual.command import CommandPalette
from textual.widgets import Input, Select

from tests.ui_support import SIZE, UI_NOW, Console, build_orders, make_console, settle
from tf_console.console import ConsoleEvent, EventKind, OrderQuery
from tf_console.models import JobState, OrderStatus, Platform, Priority, ShipmentState
from tf_console.sync.outbox import outbox_collection
from tf_console.ui.app import ConsoleApp
from tf_console.ui.commands import ConsoleCommands, specs_for
from tf_console.ui.dashboard import DashboardScreen
from tf_console.ui.detail import JobDetailScreen, OrderDetailScreen
from tf_console.ui.health_view import HealthScreen
from tf_console.ui.help import HelpScreen, help_text
from tf_console.ui.keys import ALL_SCOPES, APP_KEYS, DASHBOARD_KEYS
from tf_console.ui.modals import ClassifyModal, ConfirmModal, PriorityModal, ShipModal

UPS_OK = "1Z999AA10123456784"
UPS_TYPO = "1Z999AA10123456785"


def order_key(predicate: object) -> str:
    for order in build_orders():
        if callable(predicate) and predicate(order):
            return order.key
    raise AssertionError("no such order in the fixture")


def open_etsy_single_line(order: object) -> bool:
    from tf_console.models import Order

    assert isinstance(order, Order)
    return order.platform is Platform.ETSY and order.status is OrderStatus.UNSHIPPED and len(order.items) == 1


def open_two_lines(order: object) -> bool:
    from tf_console.models import Order

    assert isinstance(order, Order)
    return (
        order.status is OrderStatus.UNSHIPPED
        and len(order.items) == 2
        and order.fulfilled_by.value == "merchant"
    )


async def select_order(console: Console, pilot: object, key: str) -> None:
    dashboard = console.app.dashboard
    await pilot.press("2")  # type: ignore[attr-defined]
    assert dashboard.orders_pane.table.go_to(key)
    assert dashboard.selected_order_key() == key


async def press(pilot: object, *keys: str) -> None:
    await pilot.press(*keys)  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The key table


def test_every_key_has_an_id_a_footer_label_help_and_a_palette_entry() -> None:
    ids = [spec.id for _scope, specs in ALL_SCOPES for spec in specs]
    assert len(ids) == len(set(ids))
    printer = RichConsole(width=140, record=True, file=io.StringIO())
    printer.print(help_text(read_only=True))
    text = printer.export_text()
    for _scope, specs in ALL_SCOPES:
        for spec in specs:
            assert spec.binding().id == spec.id
            assert spec.description and spec.help
    assert "off: read-only" in text
    for _scope, specs in ALL_SCOPES:
        for spec in specs:
            assert spec.display in text and spec.help[:40] in text
    dashboard_actions = {b.action for b in DashboardScreen.BINDINGS if not isinstance(b, tuple)}
    assert dashboard_actions == {spec.action for spec in DASHBOARD_KEYS}
    assert {b.id for b in ConsoleApp.BINDINGS if not isinstance(b, tuple)} == {spec.id for spec in APP_KEYS}
    assert ConsoleCommands in ConsoleApp.COMMANDS


async def test_palette_lists_the_dashboard_actions_and_runs_them(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            found = {spec.id for spec in specs_for(console.app.dashboard)}
            assert {spec.id for spec in DASHBOARD_KEYS} <= found
            await press(pilot, "ctrl+p")
            assert isinstance(console.app.screen, CommandPalette)
            await pilot.press(*"health view")
            await pilot.pause(0.3)
            await press(pilot, "enter")
            assert isinstance(console.app.screen, HealthScreen)


# ---------------------------------------------------------------------------
# Shipping


async def fill_ship_form(modal: ShipModal, carrier: str, tracking: str) -> None:
    modal.query_one("#carrier", Select).value = carrier
    modal.query_one("#tracking", Input).value = tracking


async def test_ship_flow_writes_exactly_one_outbox_item(tmp_path: Path) -> None:
    key = order_key(open_etsy_single_line)
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await select_order(console, pilot, key)
            await press(pilot, "s")
            modal = console.app.screen
            assert isinstance(modal, ShipModal)
            assert modal.form.carriers[0].code == "usps"  # Etsy's own carrier codes, common ones first
            await fill_ship_form(modal, "ups", "")
            await press(pilot, "ctrl+s")
            assert "tracking number is required" in str(modal.query_one("#ship-error").render())
            await fill_ship_form(modal, "ups", UPS_OK)
            await press(pilot, "ctrl+s")
            confirm = console.app.screen
            assert isinstance(confirm, ConfirmModal) and "Confirm shipment" in confirm.title_text
            assert outbox_collection(console.runtime.store).all() == []  # nothing before the confirm
            await press(pilot, "y")
            assert isinstance(console.app.screen, DashboardScreen)
            items = outbox_collection(console.runtime.store).all()
            assert len(items) == 1
            assert items[0].shipment.tracking == UPS_OK and items[0].shipment.carrier == "ups"
            summary = console.service.index.get(key)
            assert summary is not None and summary.shipment_state is ShipmentState.REQUESTED
            assert any("recorded" in note for note in console.app.notified)
            # A second s on the same order refuses: a shipment is being confirmed.
            await press(pilot, "s")
            assert isinstance(console.app.screen, DashboardScreen)
            assert any("being confirmed" in note for note in console.app.notified)
            assert len(outbox_collection(console.runtime.store).all()) == 1


async def test_ship_mismatch_warns_and_asks_then_partial_lines(tmp_path: Path) -> None:
    key = order_key(open_two_lines)
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await select_order(console, pilot, key)
            await press(pilot, "s")
            modal = console.app.screen
            assert isinstance(modal, ShipModal)
            ups = next(c.code for c in modal.form.carriers if c.label.upper().startswith("UPS"))
            await fill_ship_form(modal, ups, UPS_TYPO)
            modal.query_one("#qty-0", Input).value = "0"  # ship only the second line now
            await press(pilot, "ctrl+s")
            warning = console.app.screen
            assert isinstance(warning, ConfirmModal) and "does not match" in warning.title_text
            await press(pilot, "n")
            assert console.app.screen is modal
            assert "Check the tracking number" in str(modal.query_one("#ship-error").render())
            await press(pilot, "ctrl+s", "y")  # send anyway
            final = console.app.screen
            assert isinstance(final, ConfirmModal) and "Lines:" in final.message
            await press(pilot, "y")
            items = outbox_collection(console.runtime.store).all()
            assert len(items) == 1
            assert isinstance(modal, ShipModal)
            second_line = modal.form.lines[1]
            assert [(ln.line_id, ln.quantity) for ln in items[0].shipment.lines] == [
                (second_line.line_id, second_line.unshipped)
            ]


async def test_ship_cancel_writes_nothing(tmp_path: Path) -> None:
    key = order_key(open_etsy_single_line)
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await select_order(console, pilot, key)
            await press(pilot, "s")
            assert isinstance(console.app.screen, ShipModal)
            await press(pilot, "escape")
            assert isinstance(console.app.screen, DashboardScreen)
            assert outbox_collection(console.runtime.store).all() == []
            assert "Nothing was shipped." in console.app.notified


async def test_read_only_refuses_to_ship(tmp_path: Path) -> None:
    key = order_key(open_etsy_single_line)
    with make_console(tmp_path, read_only=True) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await select_order(console, pilot, key)
            await press(pilot, "s")
            assert isinstance(console.app.screen, DashboardScreen)
            assert any("read-only" in note for note in console.app.notified)
            assert outbox_collection(console.runtime.store).all() == []
            assert "READ-ONLY" in str(console.app.dashboard.status.render())


# ---------------------------------------------------------------------------
# The queue


async def test_reorder_moves_the_row_at_once_and_changes_the_schedule(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            dashboard = console.app.dashboard
            await press(pilot, "3", "end")
            sequence = dashboard.model.sequence
            last = sequence[-1]
            assert dashboard.queue_pane.table.cursor_key == last
            before = dashboard.model.projection
            assert before is not None
            await pilot.press("K")  # no settle: the row must have moved already
            assert dashboard.model.sequence[-2] == last
            assert dashboard.queue_pane.table.cursor_key == last
            await press(pilot, "shift+up")
            assert dashboard.model.sequence[-3] == last
            await settle(pilot)
            stored = console.service.load_queue().sequence
            assert stored[-3] == last
            after = dashboard.model.projection
            assert after is not None and after.sequence[-3] == last
            assert after.sequence != before.sequence
            await press(pilot, "J")
            assert console.service.load_queue().sequence[-2] == last
            await press(pilot, "shift+down")
            assert console.service.load_queue().sequence[-1] == last
            await press(pilot, "t")
            assert console.service.load_queue().sequence[0] == last
            assert dashboard.model.sequence[0] == last
            on_top = dashboard.model.projection
            assert on_top is not None and on_top.sequence[0] == last
            start_before, start_now = before.jobs[last].start, on_top.jobs[last].start
            assert start_before is not None and start_now is not None and start_now < start_before
            assert console.service.load_queue().jobs[last].pin == 1
            await press(pilot, "u")
            assert console.service.load_queue().jobs[last].pin is None
            assert any("Unpinned" in note for note in console.app.notified)


async def test_queue_keys_need_the_queue_pane(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            before = console.service.load_queue().sequence
            await press(pilot, "2", "K")
            assert console.service.load_queue().sequence == before
            assert any("Select a job in the queue" in note for note in console.app.notified)


async def test_priority_and_hold(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            dashboard = console.app.dashboard
            await press(pilot, "3")
            job_id = dashboard.queue_pane.table.cursor_key
            assert job_id is not None
            await press(pilot, "p")
            assert isinstance(console.app.screen, PriorityModal)
            await press(pilot, "up", "enter")  # normal → rush
            assert console.service.load_queue().jobs[job_id].priority is Priority.RUSH
            await press(pilot, "3")
            job_id = dashboard.queue_pane.table.cursor_key
            assert job_id is not None
            await press(pilot, "h")
            assert console.service.load_queue().jobs[job_id].state is JobState.HELD
            assert dashboard.model.jobs[job_id].state is JobState.HELD
            await press(pilot, "3")
            dashboard.queue_pane.table.go_to(job_id)
            await press(pilot, "h")
            assert console.service.load_queue().jobs[job_id].state is JobState.QUEUED


async def test_classify_writes_a_catalog_rule(tmp_path: Path) -> None:
    key = order_key(lambda o: any(i.sku == "MYSTERY-GIFT-BOX" for i in o.items) and o.status.is_open)
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await select_order(console, pilot, key)
            await press(pilot, "c")
            modal = console.app.screen
            assert isinstance(modal, ClassifyModal)
            assert modal.items[0].sku == "MYSTERY-GIFT-BOX"
            await press(pilot, "ctrl+s")
            assert "Choose the print profile" in str(modal.query_one("#classify-error").render())
            modal.query_one("#classify-profile", Select).value = "keychain-name"
            await press(pilot, "ctrl+s")
            assert isinstance(console.app.screen, DashboardScreen)
            await settle(pilot)
            catalog = (console.runtime.ctx.data_dir / "catalog.toml").read_text()
            assert 'sku = "MYSTERY-GIFT-BOX"' in catalog
            summary = console.service.index.get(key)
            assert summary is not None and summary.unknown_units == 0
            assert any(job.sku == "MYSTERY-GIFT-BOX" for job in console.app.dashboard.model.jobs.values())


# ---------------------------------------------------------------------------
# Navigation


async def test_enter_opens_order_detail_masked_and_v_reveals(tmp_path: Path) -> None:
    key = order_key(lambda o: any(i.sku == "PRT-NAMEPLATE" for i in o.items) and o.status.is_open)
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await select_order(console, pilot, key)
            await press(pilot, "enter")
            screen = console.app.screen
            assert isinstance(screen, OrderDetailScreen) and screen.detail is not None
            assert not any("Buyer Number" in line for line in screen.detail.buyer_lines)
            await press(pilot, "v")
            assert screen.detail is not None and screen.detail.revealed
            assert any("Buyer Number" in line for line in screen.detail.buyer_lines)
            await press(pilot, "escape")
            assert isinstance(console.app.screen, DashboardScreen)


async def test_enter_on_a_job_and_on_a_platform(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await press(pilot, "3", "enter")
            screen = console.app.screen
            assert isinstance(screen, JobDetailScreen)
            await press(pilot, "o")
            assert isinstance(console.app.screen, OrderDetailScreen)
            await press(pilot, "escape", "escape")
            await press(pilot, "1", "down", "enter")
            health = console.app.screen
            assert isinstance(health, HealthScreen) and health.platform is Platform.EBAY


async def test_filter_runs_over_every_order_and_escape_clears_it(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            dashboard = console.app.dashboard
            total = len(dashboard.orders_pane.table.item_keys)
            await press(pilot, "slash")
            assert dashboard.orders_pane.filter_input.has_focus
            await pilot.press(*"platform:etsy")  # typed: the list follows each key
            await settle(pilot)
            assert all(k.startswith("etsy:") for k in dashboard.orders_pane.table.item_keys)
            dashboard.orders_pane.filter_input.value += " status:shipped"
            await settle(pilot)
            keys = dashboard.orders_pane.table.item_keys
            assert keys and all(k.startswith("etsy:") for k in keys)
            assert all(console.service.index.get(k).status is OrderStatus.SHIPPED for k in keys)  # type: ignore[union-attr]
            assert "/platform:etsy status:shipped" in str(dashboard.orders_pane.border_title)
            await press(pilot, "enter")
            assert dashboard.orders_pane.table.has_focus
            await press(pilot, "escape")
            assert len(dashboard.orders_pane.table.item_keys) == total
            assert dashboard.model.query == OrderQuery()


async def test_sort_focus_zoom_and_help(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            dashboard = console.app.dashboard
            await press(pilot, "o")
            assert dashboard.model.query.sort == "ship-by"
            first = console.service.index.get(dashboard.orders_pane.table.item_keys[0])
            assert first is not None and first.is_open
            for name, key in (("health", "1"), ("orders", "2"), ("queue", "3")):
                await press(pilot, key)
                assert dashboard.focused_pane() == name
                assert console.app.focused is getattr(dashboard, f"{name}_pane").table
            await press(pilot, "z")
            assert dashboard.maximized is dashboard.queue_pane
            await press(pilot, "z")
            assert dashboard.maximized is None
            await press(pilot, "question_mark")
            assert isinstance(console.app.screen, HelpScreen)
            await press(pilot, "escape")
            await press(pilot, "H")
            assert isinstance(console.app.screen, HealthScreen)
            await press(pilot, "T")
            assert any("credentials work" in note for note in console.app.notified)
            await press(pilot, "escape")
            assert isinstance(console.app.screen, DashboardScreen)


async def test_poll_now_brings_in_a_new_order(tmp_path: Path) -> None:
    with make_console(tmp_path, poll=True) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            for _ in range(100):  # the engine takes the lease and polls once at start
                if console.service.engine.is_poller and all(m.requests for m in console.markets.values()):
                    break
                await pilot.pause(0.05)
            new = build_orders(1)[0].model_copy(
                update={
                    "order_id": "NEW-1",
                    "platform": Platform.AMAZON,
                    "created_at": UI_NOW,
                    "updated_at": UI_NOW,
                }
            )
            console.markets[Platform.AMAZON].add(new)
            await press(pilot, "r")
            assert "Polling every platform now." in console.app.notified
            for _ in range(200):
                await pilot.pause(0.05)
                if console.service.index.get("amazon:NEW-1") is not None:
                    break
            await settle(pilot)
            assert console.service.index.get("amazon:NEW-1") is not None
            assert console.app.dashboard.orders_pane.table.item_keys[0] == "amazon:NEW-1"
            assert "this console polls" in str(console.app.dashboard.status.render())


# ---------------------------------------------------------------------------
# Quitting


async def test_q_asks_and_n_stays(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await press(pilot, "q")
            assert isinstance(console.app.screen, ConfirmModal)
            await press(pilot, "n")
            assert isinstance(console.app.screen, DashboardScreen)
            assert console.app.is_running


async def test_ctrl_q_asks_too_and_y_quits(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("ctrl+q")
            await pilot.pause()
            assert isinstance(console.app.screen, ConfirmModal)
            assert console.app.is_running
            await pilot.press("ctrl+q")  # a second ctrl+q does not stack another dialog
            await pilot.pause()
            await pilot.press("y")
            for _ in range(50):
                if not console.app.is_running:
                    break
                await asyncio.sleep(0.05)
        assert console.app.return_code == 0


async def test_nothing_repaints_when_nothing_changes(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            dashboard = console.app.dashboard
            tables = (dashboard.health_pane.table, dashboard.orders_pane.table, dashboard.queue_pane.table)
            before = [t.cell_updates for t in tables]
            runs = dashboard.refresh_orders.runs
            await pilot.pause(2.5)  # two ticks and a disk watch, with a fixed clock
            await settle(pilot)
            assert [t.cell_updates for t in tables] == before
            assert dashboard.refresh_orders.runs == runs


async def test_a_backfill_shows_a_progress_bar_until_it_ends(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            bar = console.app.dashboard.progress
            assert not bar.display
            console.service.emit(ConsoleEvent(EventKind.PROGRESS, platform=Platform.EBAY, page=3, total=10))
            await settle(pilot)
            assert bar.display and bar.total == 10 and bar.progress == 3
            console.service.emit(
                ConsoleEvent(EventKind.POLL_FINISHED, platform=Platform.EBAY, text="eBay: done.")
            )
            await settle(pilot)
            assert not bar.display


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_every_pane_is_visible(tmp_path: Path, size: tuple[int, int]) -> None:
    with make_console(tmp_path) as console:
        async with console.app.run_test(size=size) as pilot:
            await settle(pilot)
            dashboard = console.app.dashboard
            for pane in (dashboard.health_pane, dashboard.orders_pane, dashboard.queue_pane):
                assert pane.region.height >= 4
                assert pane.table.window >= 1 and pane.table.row_count >= 1


async def test_i_opens_stock_and_a_opens_analytics(tmp_path: Path) -> None:
    from tf_console.ui.analytics_screen import AnalyticsScreen
    from tf_console.ui.stock_screen import StockScreen

    with make_console(tmp_path) as console:
        async with console.app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await press(pilot, "i")
            assert isinstance(console.app.screen, StockScreen)
            await press(pilot, "escape")
            assert isinstance(console.app.screen, DashboardScreen)
            await press(pilot, "a")
            assert isinstance(console.app.screen, AnalyticsScreen)
            await press(pilot, "escape")
            assert isinstance(console.app.screen, DashboardScreen)
