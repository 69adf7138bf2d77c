"""The alerts banner: a line above the dashboard's panes while any alert is active.

It reads the persisted alert state through an :class:`AlertSource` (the runtime's
:class:`~tf_console.alerts.AlertService`), so a console attached to a daemon shows
what the daemon found.  A cheap change stamp is checked every couple of seconds and
the state re-read only when it changed; every event newer than the banner has
seen becomes a notification (fired alerts as errors or warnings, cleared ones as
information).  Nothing here blocks: reading the state is one small JSON file.
"""

from __future__ import annotations

from datetime import UTC, tzinfo
from typing import Protocol

from textual.notifications import SeverityLevel
from textual.widgets import Static

from tf_console.alerts.model import ActiveAlert, AlertEvent, Severity

REFRESH_SECONDS = 2.0
SHOWN_TITLES = 3
NOTIFY_SECONDS = 12.0


class AlertSource(Protocol):
    def active_alerts(self) -> list[ActiveAlert]: ...

    def events_after(self, seq: int) -> list[AlertEvent]: ...

    def latest_seq(self) -> int: ...

    def stamp(self) -> int: ...


def banner_text(active: list[ActiveAlert], tz: tzinfo = UTC) -> str:
    """``✖ 3 alerts: Amazon polls are failing (since 14:05) · … · +1 more — press …``."""
    if not active:
        return ""
    glyph = "✖" if any(a.severity is Severity.CRITICAL for a in active) else "⚠"
    parts = []
    for alert in active[:SHOWN_TITLES]:
        since = alert.since.astimezone(tz).strftime("%H:%M")
        parts.append(f"{alert.title} ({'clearing' if alert.clearing else f'since {since}'})")
    if len(active) > SHOWN_TITLES:
        parts.append(f"+{len(active) - SHOWN_TITLES} more")
    noun = "alert" if len(active) == 1 else "alerts"
    return f"{glyph} {len(active)} {noun}: " + " · ".join(parts) + " — tf-console doctor lists them all"


NOTIFY_AT_MOST = 3  # more new alert events at once than this become one summary note

class AlertsBanner(Static):
    """Hidden while nothing is wrong; ``-critical`` / ``-warning`` classes colour it."""

    def __init__(
        self,
        source: AlertSource,
        *,
        tz: tzinfo = UTC,
        notify: bool = True,
        interval: float = REFRESH_SECONDS,
        id: str | None = "alerts-banner",
    ) -> None:
        super().__init__("", id=id, markup=False)
        self.source = source
        self.tz = tz
        self.notify_events = notify
        self.interval = interval
        self.active: list[ActiveAlert] = []
        self._stamp: int | None = None
        self._seen = 0

    def on_mount(self) -> None:
        # Events from before the banner existed are shown in it, not notified again.
        self._seen = self.source.latest_seq()
        self.refresh_alerts()
        self.set_interval(self.interval, self.refresh_alerts)

    def handle_event(self, _event: AlertEvent) -> None:
        """Hook for :func:`~tf_console.alerts.install_alerts`'s ``on_alert``: refresh at once."""
        self.refresh_alerts(force=True)

    def refresh_alerts(self, force: bool = False) -> None:
        stamp = self.source.stamp()
        if stamp == self._stamp and not force:
            return
        self._stamp = stamp
        self.active = self.source.active_alerts()
        self.update(banner_text(self.active, self.tz))
        self.display = bool(self.active)
        critical = any(a.severity is Severity.CRITICAL for a in self.active)
        self.set_class(critical, "-critical")
        self.set_class(bool(self.active) and not critical, "-warning")
        fresh = self.source.events_after(self._seen)
        if fresh:
            self._seen = max(e.seq for e in fresh)
        if not self.notify_events or not fresh:
            return
        if len(fresh) > NOTIFY_AT_MOST:
            # A burst (say, the first evaluation of a busy shop) is one calm note, not a wall of
            # toasts: the banner lists them.
            fired = sum(1 for e in fresh if e.event == "fired")
            cleared = len(fresh) - fired
            parts = [f"{fired} new alert(s)"] if fired else []
            if cleared:
                parts.append(f"{cleared} cleared")
            self.app.notify(
                " and ".join(parts) + "; the banner above the panes lists what needs attention.",
                title="Alerts",
                severity="warning" if fired else "information",
                timeout=NOTIFY_SECONDS,
                markup=False,
            )
            return
        for event in fresh:
            self._notify(event)

    def _notify(self, event: AlertEvent) -> None:
        severity: SeverityLevel
        if event.event == "cleared":
            severity = "information"
        else:
            severity = "error" if event.severity is Severity.CRITICAL else "warning"
        title = ("Alert: " if event.event == "fired" else "Cleared: ") + event.title
        self.app.notify(event.sentence, title=title, severity=severity, timeout=NOTIFY_SECONDS, markup=False)
