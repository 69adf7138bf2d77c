"""The alerts banner in a tiny app: hidden while all is well, one line naming the alerts
otherwise, and a notification for every event it had not seen."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.notifications import SeverityLevel
from textual.widgets import Static

from tf_console.alerts.model import ActiveAlert, AlertEvent, Rule, Severity
from tf_console.ui.alerts_widget import AlertsBanner, banner_text

REPO = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)


def alert(
    key: str, title: str, severity: Severity, minutes: int, seq: int, clearing: bool = False
) -> ActiveAlert:
    rule, _, subject = key.partition(":")
    return ActiveAlert(
        key=key,
        rule=Rule(rule),
        subject=subject,
        severity=severity,
        title=title,
        sentence=f"{title}: what to do about it.",
        since=T0 + timedelta(minutes=minutes),
        fired_at=T0 + timedelta(minutes=minutes + 1),
        seq=seq,
        clear_since=T0 if clearing else None,
    )


def fired(a: ActiveAlert) -> AlertEvent:
    return AlertEvent(
        seq=a.seq,
        event="fired",
        key=a.key,
        rule=a.rule,
        subject=a.subject,
        severity=a.severity,
        title=a.title,
        sentence=a.sentence,
        at=a.fired_at,
        since=a.since,
    )


class FakeSource:
    def __init__(self) -> None:
        self.active: list[ActiveAlert] = []
        self.events: list[AlertEvent] = []
        self.version = 0

    def raise_alert(self, a: ActiveAlert) -> None:
        self.active.append(a)
        self.events.append(fired(a))
        self.version += 1

    def active_alerts(self) -> list[ActiveAlert]:
        return sorted(self.active, key=lambda a: (a.severity.rank, a.seq))

    def events_after(self, seq: int) -> list[AlertEvent]:
        return [e for e in self.events if e.seq > seq]

    def latest_seq(self) -> int:
        return max((e.seq for e in self.events), default=0)

    def stamp(self) -> int:
        return self.version


class BannerApp(App[None]):
    CSS_PATH = str(REPO / "styles" / "alerts.tcss")

    def __init__(self, source: FakeSource) -> None:
        super().__init__()
        self.source = source
        self.notes: list[tuple[str, str, SeverityLevel]] = []

    def compose(self) -> ComposeResult:
        yield AlertsBanner(self.source, interval=3600)
        yield Static("the dashboard's panes", id="body")

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        self.notes.append((title, message, severity))


def shop_with_three() -> FakeSource:
    source = FakeSource()
    source.raise_alert(alert("platform_failing:amazon", "Amazon polls are failing", Severity.CRITICAL, 5, 1))
    source.raise_alert(
        alert("ship_by_overdue:etsy:3012", "etsy:3012 is past its ship-by time", Severity.WARNING, 9, 2)
    )
    source.raise_alert(
        alert("quota:ebay", "eBay daily calls nearly spent", Severity.WARNING, 12, 3, clearing=True)
    )
    source.raise_alert(alert("success_rate:ebay", "eBay calls often fail", Severity.WARNING, 20, 4))
    return source


def test_banner_text_names_the_worst_first_and_counts_the_rest() -> None:
    source = shop_with_three()
    text = banner_text(source.active_alerts())
    assert text.startswith("✖ 4 alerts: Amazon polls are failing (since 15:05)")
    assert "eBay daily calls nearly spent (clearing)" in text and text.count(" · ") == 3 and "+1 more" in text
    assert banner_text([]) == ""
    warning_only = banner_text([alert("quota:ebay", "eBay quota", Severity.WARNING, 0, 1)])
    assert warning_only.startswith("⚠ 1 alert: eBay quota")


async def test_the_banner_hides_shows_and_notifies_new_events_only() -> None:
    source = FakeSource()
    source.raise_alert(alert("quota:ebay", "eBay daily calls nearly spent", Severity.WARNING, 0, 1))
    source.active.clear()  # an old event whose alert already cleared
    source.version += 1
    app = BannerApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        banner = app.query_one(AlertsBanner)
        assert banner.display is False and app.notes == []
        source.raise_alert(
            alert("platform_failing:amazon", "Amazon polls are failing", Severity.CRITICAL, 5, 2)
        )
        banner.refresh_alerts()
        await pilot.pause()
        assert banner.display is True and banner.has_class("-critical")
        assert app.notes == [
            ("Alert: Amazon polls are failing", "Amazon polls are failing: what to do about it.", "error")
        ]
        banner.refresh_alerts()  # nothing changed: nothing again
        assert len(app.notes) == 1
        source.active.clear()
        source.events.append(
            fired(
                alert("platform_failing:amazon", "Amazon polls are failing", Severity.CRITICAL, 5, 3)
            ).model_copy(update={"event": "cleared"})
        )
        source.version += 1
        banner.handle_event(source.events[-1])
        await pilot.pause()
        assert banner.display is False
        assert app.notes[-1][0] == "Cleared: Amazon polls are failing" and app.notes[-1][2] == "information"


def test_banner_snapshot(snap_compare: Callable[..., bool], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    app = BannerApp(shop_with_three())

    async def settle(pilot: Any) -> None:
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 30), run_before=settle)


async def test_a_burst_of_new_alerts_is_one_summary_note_not_a_wall_of_toasts() -> None:
    source = FakeSource()
    app = BannerApp(source)
    async with app.run_test(size=(100, 30)) as pilot:
        banner = app.query_one(AlertsBanner)
        for n in range(1, 13):
            source.raise_alert(
                alert(
                    f"ship_by_overdue:etsy:{n}", f"etsy:{n} is past its ship-by time", Severity.WARNING, n, n
                )
            )
        banner.refresh_alerts()
        await pilot.pause()
        assert len(app.notes) == 1
        title, message, severity = app.notes[0]
        assert title == "Alerts" and message.startswith("12 new alert(s)") and severity == "warning"
        assert banner.display is True
