"""Screen snapshots (SVG under ``snapshots/test_ui_snapshots/``) of every screen and dialog.

The console runs on a fixed clock with a seeded shop and no sync engine, every
refresh is awaited before the picture is taken, animations are off and input
cursors do not blink, so a picture changes only when the rendering does.
Review a changed picture, then accept it with ``pytest --snapshot-update``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import Input, Select

from tests.ui_support import SIZE, SMALL, build_orders, make_console, settle
from tf_console.models import OrderStatus, Platform
from tf_console.ui.app import ConsoleApp

Snap = Callable[..., bool]
Before = Callable[[Pilot[Any]], Awaitable[None]]

UPS_TYPO = "1Z999AA10123456785"


@pytest.fixture(autouse=True)
def calm_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)


def stop_blinking(app: ConsoleApp) -> None:
    for field in app.screen.query(Input):
        field.cursor_blink = False


def picture(
    snap_compare: Snap,
    tmp_path: Path,
    *,
    press: Iterable[str] = (),
    size: tuple[int, int] = SIZE,
    before: Before | None = None,
    read_only: bool = False,
    ansi: bool = False,
) -> bool:
    with make_console(tmp_path, read_only=read_only) as console:
        console.app.animation_level = "none"
        if ansi:
            console.app.theme = "ansi-dark"

        async def run_before(pilot: Pilot[Any]) -> None:
            await settle(pilot)
            if before is not None:
                await before(pilot)
                await settle(pilot)
            for key in press:
                await pilot.press(key)
                await settle(pilot)
            stop_blinking(console.app)
            await settle(pilot)

        return snap_compare(console.app, terminal_size=size, run_before=run_before)


def key_of(predicate: Callable[[Any], bool]) -> str:
    return next(o.key for o in build_orders() if predicate(o))


def select(key: str) -> Before:
    async def go(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, ConsoleApp)
        await pilot.press("2")
        app.dashboard.orders_pane.table.go_to(key)

    return go


ETSY_OPEN = key_of(
    lambda o: o.platform is Platform.ETSY and o.status is OrderStatus.UNSHIPPED and len(o.items) == 1
)
NAMEPLATE = key_of(lambda o: any(i.sku == "PRT-NAMEPLATE" for i in o.items) and o.status.is_open)
MYSTERY = key_of(lambda o: any(i.sku == "MYSTERY-GIFT-BOX" for i in o.items) and o.status.is_open)


def test_dashboard(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path)


def test_dashboard_80x24(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, size=SMALL)


def test_dashboard_no_color(snap_compare: Snap, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert picture(snap_compare, tmp_path)


def test_dashboard_ansi_theme(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, ansi=True)


def test_dashboard_read_only(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, read_only=True, size=SMALL)


def test_dashboard_filtered(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["slash", *"status:open etsy"])


def test_queue_zoomed(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["3", "z"], size=SMALL)


def test_ship_dialog(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, before=select(ETSY_OPEN), press=["s"])


def test_ship_dialog_80x24(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, before=select(ETSY_OPEN), press=["s"], size=SMALL)


def fill_typo(pilot: Pilot[Any]) -> None:
    screen = pilot.app.screen
    screen.query_one("#carrier", Select).value = "ups"
    screen.query_one("#tracking", Input).value = UPS_TYPO


def test_ship_tracking_mismatch(snap_compare: Snap, tmp_path: Path) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await select(ETSY_OPEN)(pilot)
        await pilot.press("s")
        await settle(pilot)
        fill_typo(pilot)

    assert picture(snap_compare, tmp_path, before=before, press=["ctrl+s"])


def test_ship_final_confirm(snap_compare: Snap, tmp_path: Path) -> None:
    async def before(pilot: Pilot[Any]) -> None:
        await select(ETSY_OPEN)(pilot)
        await pilot.press("s")
        await settle(pilot)
        fill_typo(pilot)

    assert picture(snap_compare, tmp_path, before=before, press=["ctrl+s", "y"])


def test_priority_dialog(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["3", "p"])


def test_classify_dialog(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, before=select(MYSTERY), press=["c"])


def test_help_screen(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["question_mark"])


def test_order_detail(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, before=select(NAMEPLATE), press=["enter"])


def test_job_detail(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["3", "enter"])


def test_health_view(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["H", "right"])


def test_quit_confirm(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["q"])


def test_command_palette(snap_compare: Snap, tmp_path: Path) -> None:
    assert picture(snap_compare, tmp_path, press=["ctrl+p", *"ship"])
