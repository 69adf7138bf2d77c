"""The stock screen in a tiny app: its table, the adjust and count actions, and a snapshot."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePath
from typing import Any, ClassVar

import pytest
from textual.app import App, ComposeResult
from textual.pilot import Pilot
from textual.widgets import DataTable, Input, Static

from tests.sync_fakes import make_order
from tests.test_inventory_planner import CATALOG_EXTRA, ReadableMarket, ScriptedMarket
from tf_console.clock import FakeClock
from tf_console.crypto import FernetCipher
from tf_console.inventory import InventoryService
from tf_console.inventory.policy import InventoryDefaults
from tf_console.marketplaces.base import PushResult, PushState
from tf_console.models import Platform
from tf_console.production.examples import example_text
from tf_console.production.service import ProductionService
from tf_console.store import Store
from tf_console.sync.outbox import OutboxKind, OutboxSender
from tf_console.ui.stock_screen import StockChangeModal, StockScreen, stylesheet_path

AMAZON, EBAY, ETSY = Platform.AMAZON, Platform.EBAY, Platform.ETSY
NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
MADE_TO_ORDER = """
[stock."PRT-KEYCHAIN-NAME"]
made_to_order = true
max = 8
lead_days = 3
"""

Snap = Callable[..., bool]


@dataclass
class ReadableBySku(ReadableMarket):
    """Answers one SKU as told, every other SKU with "applied"."""

    by_sku: dict[str, PushResult] = field(default_factory=dict)

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        self.calls.append((sku, quantity))
        return self.by_sku.get(sku) or PushResult(PushState.APPLIED, f"{sku} now {quantity}")


@dataclass
class Shop:
    clock: FakeClock
    service: InventoryService


@contextmanager
def stocked_shop(tmp_path: Path) -> Iterator[Shop]:
    """Three counted SKUs with pushes in every state, an uncounted one, a made-to-order one."""
    clock = FakeClock(NOW)
    store = Store.open(
        tmp_path / "data", FernetCipher(FernetCipher.generate_key()), clock=clock, durable=False
    )
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(example_text("catalog.toml") + CATALOG_EXTRA + MADE_TO_ORDER, "utf-8")
    printers = tmp_path / "printers.toml"
    printers.write_text(example_text("printers.toml"), "utf-8")
    production = ProductionService.open(
        store, tmp_path, timezone="UTC", clock=clock, catalog_path=catalog, printers_path=printers
    )
    nozzle = "STK-NOZZLE-04"
    markets: dict[Platform, ScriptedMarket] = {
        AMAZON: ReadableBySku(AMAZON, by_sku={nozzle: PushResult(PushState.QUEUED, "Amazon accepted it.")}),
        EBAY: ReadableBySku(
            EBAY, by_sku={nozzle: PushResult(PushState.REJECTED, "eBay: the listing has ended.")}
        ),
        ETSY: ScriptedMarket(ETSY),
    }
    sender = OutboxSender(store, markets, clock, rng=random.Random(5))  # type: ignore[arg-type]
    service = InventoryService(
        store=store,
        production=production,
        marketplaces=markets,  # type: ignore[arg-type]
        clock=clock,
        defaults=InventoryDefaults(buffer=1, push_delay=0.0),
        sender=sender,
    )
    sender.register(OutboxKind.INVENTORY, service.deliver)
    service.set_on_hand("STK-NOZZLE-04", 12)
    service.set_on_hand("STK-PEI-SHEET", 3)
    service.apply_orders([make_order(1, NOW - timedelta(hours=2), platform=EBAY, qty=2, sku="STK-NOZZLE-04")])
    service.apply_orders(
        [make_order(2, NOW - timedelta(hours=1), platform=ETSY, qty=1, sku="STK-PLA-1KG-BLK")]
    )

    async def push() -> None:
        await service.plan()
        clock.advance(42)
        await sender.deliver_due()

    asyncio.run(push())
    try:
        yield Shop(clock, service)
    finally:
        store.close()


class StockApp(App[None]):
    CSS_PATH: ClassVar[list[str | PurePath]] = [Path(stylesheet_path()).parent / "modals.tcss"]

    def __init__(self, service: InventoryService, *, read_only: bool = False) -> None:
        super().__init__()
        self.service = service
        self.read_only = read_only

    def compose(self) -> ComposeResult:
        yield Static("dashboard")

    def on_mount(self) -> None:
        self.push_screen(StockScreen(self.service, read_only=self.read_only, refresh_every=None))


async def loaded(pilot: Pilot[Any], at_least: int = 1) -> StockScreen:
    for _ in range(400):
        await pilot.pause()
        screen = pilot.app.screen
        if isinstance(screen, StockScreen) and screen.loads >= at_least and not screen.workers:
            return screen
        await asyncio.sleep(0.01)
    raise AssertionError("the stock screen did not load")


def test_the_table_shows_counts_availability_and_each_marketplace_push(tmp_path: Path) -> None:
    with stocked_shop(tmp_path) as shop:

        async def scenario() -> None:
            app = StockApp(shop.service)
            async with app.run_test(size=(100, 30)) as pilot:
                screen = await loaded(pilot)
                table: DataTable[Any] = screen.query_one(DataTable)
                nozzle = [str(c) for c in table.get_row("STK-NOZZLE-04")]
                assert nozzle[:5] == ["STK-NOZZLE-04", "12", "2", "1", "9"]
                assert nozzle[5:] == ["9 queued", "9 ✗ refused", "9 ✓ 42s"]
                pla = [str(c) for c in table.get_row("STK-PLA-1KG-BLK")]
                assert pla[:5] == ["STK-PLA-1KG-BLK", "unset", "1", "1", "-"]
                keychain = [str(c) for c in table.get_row("PRT-KEYCHAIN-NAME")]
                assert keychain[1] == "to order" and keychain[4] == "8"
                table.move_cursor(row=table.get_row_index("STK-NOZZLE-04"))
                await pilot.pause()
                detail = str(screen.query_one("#stock-detail", Static).render())
                assert "STK-NOZZLE-04" in detail and "on-hand 12 − allocated 2 − buffer 1" in detail
                assert "eBay: the listing has ended." in detail

        asyncio.run(scenario())


def test_adjust_and_count_from_the_screen(tmp_path: Path) -> None:
    with stocked_shop(tmp_path) as shop:

        async def scenario() -> None:
            app = StockApp(shop.service)
            async with app.run_test(size=(100, 30)) as pilot:
                screen = await loaded(pilot)
                screen.table.move_cursor(row=screen.table.get_row_index("STK-NOZZLE-04"))
                await pilot.press("a")
                await pilot.pause()
                assert isinstance(app.screen, StockChangeModal)
                await pilot.press("-", "3")
                await pilot.press("enter")
                await pilot.pause()
                problem = str(app.screen.query_one("#stock-change-problem", Static).render())
                assert "needs +N or -N and a reason" in problem
                app.screen.query_one("#stock-change-reason", Input).value = "dropped a pack"
                await pilot.press("enter")
                screen = await loaded(pilot, 2)
                assert str(screen.table.get_row("STK-NOZZLE-04")[1]) == "9"
                record = shop.service.book.record("STK-NOZZLE-04")
                assert record is not None and record.entries[-1].reason == "dropped a pack"
                # The uncounted filament: adjusting waits for a count; counting starts syncing it.
                screen.table.move_cursor(row=screen.table.get_row_index("STK-PLA-1KG-BLK"))
                await pilot.press("a")
                await pilot.pause()
                assert isinstance(app.screen, StockScreen)
                await pilot.press("c")
                await pilot.pause()
                await pilot.press("5", "enter")
                screen = await loaded(pilot, 3)
                assert [str(c) for c in screen.table.get_row("STK-PLA-1KG-BLK")][1:5] == ["5", "1", "1", "3"]

        asyncio.run(scenario())


def test_a_read_only_console_does_not_change_stock(tmp_path: Path) -> None:
    with stocked_shop(tmp_path) as shop:

        async def scenario() -> None:
            app = StockApp(shop.service, read_only=True)
            async with app.run_test(size=(100, 30)) as pilot:
                await loaded(pilot)
                await pilot.press("c")
                await pilot.pause()
                assert isinstance(app.screen, StockScreen)
                record = shop.service.book.record("STK-NOZZLE-04")
                assert record is not None and record.on_hand == 12

        asyncio.run(scenario())


def test_the_package_keeps_a_copy_of_the_stylesheet() -> None:
    from tf_console.ui.styles import PACKAGE_STYLES, REPOSITORY_STYLES

    assert (PACKAGE_STYLES / "stock.tcss").read_text() == (REPOSITORY_STYLES / "stock.tcss").read_text()


@pytest.fixture(autouse=True)
def calm_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)


def test_snapshot_of_the_stock_screen(tmp_path: Path, snap_compare: Snap) -> None:
    with stocked_shop(tmp_path) as shop:
        app = StockApp(shop.service)

        async def run_before(pilot: Pilot[Any]) -> None:
            await loaded(pilot)

        assert snap_compare(app, terminal_size=(100, 30), run_before=run_before)
