"""The analytics screen in a tiny app: it shows the report's numbers, changes the window,
goes back, and looks the same every time (a snapshot at 100×30)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import DataTable, Static

from tests.test_analytics_report import full_report
from tf_console.analytics import Report
from tf_console.ui.analytics_screen import AnalyticsScreen, stylesheet, summary_text

SIZE = (100, 30)


class FixedSource:
    def __init__(self, report: Report) -> None:
        self.report = report
        self.asked: list[int] = []

    async def report_async(self, days: int) -> Report:
        self.asked.append(days)
        return self.report


class Host(App[None]):
    def __init__(self, source: FixedSource) -> None:
        super().__init__()
        self.source = source

    def on_mount(self) -> None:
        self.push_screen(AnalyticsScreen(self.source))


@pytest.fixture(autouse=True)
def calm_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    monkeypatch.delenv("NO_COLOR", raising=False)


async def settle(pilot: Pilot[Any]) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_screen_shows_the_reports_numbers_and_changes_the_window() -> None:
    source = FixedSource(full_report())
    app = Host(source)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, AnalyticsScreen)
        table = screen.query_one("#analytics-totals", DataTable)
        assert table.row_count == 3
        amazon = table.get_row("amazon")
        assert amazon[:3] == ["Amazon", "4", "5"] and amazon[3] == "60.00 USD (proceeds)"
        assert amazon[4:7] == ["18.0", "24.0", "1"]
        assert table.get_row("ebay")[3] == "15.50 GBP, 25.00 USD"
        summary = str(screen.query_one("#analytics-summary", Static).render())
        assert "Queue 8.0 h on 2 printer(s)" in summary and "75.0% of 4 calls ok" in summary
        assert source.asked == [7]
        await pilot.press("d")
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
        assert source.asked == [7, 14, 30]
        await pilot.press("r")
        await settle(pilot)
        assert source.asked[-1] == 30
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, AnalyticsScreen)


def test_summary_text_for_a_shop_without_a_queue() -> None:
    report = full_report()
    bare = Report(
        report.generated_at,
        report.days,
        report.timezone,
        report.first_day,
        report.last_day,
        report.rows,
        report.totals,
        None,
        (),
    )
    assert summary_text(bare) == "Production: no print queue."


def test_the_stylesheet_copies_match() -> None:
    packaged = Path(__file__).resolve().parent.parent / "tf_console" / "ui" / "styles" / "analytics.tcss"
    assert stylesheet().read_text() == packaged.read_text(), (
        "copy styles/analytics.tcss to tf_console/ui/styles/"
    )


def test_analytics_screen_snapshot(snap_compare: Callable[..., bool]) -> None:
    app = Host(FixedSource(full_report()))
    app.animation_level = "none"
    assert snap_compare(app, terminal_size=SIZE, run_before=settle)
