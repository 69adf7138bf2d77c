"""The command palette (ctrl+p): every key's action, found by name."""

from __future__ import annotations

from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import Screen

from tf_console.ui.keys import APP_KEYS, DASHBOARD_KEYS, DETAIL_KEYS, HEALTH_KEYS, JOB_KEYS, KeySpec


def specs_for(screen: Screen[Any]) -> tuple[KeySpec, ...]:
    from tf_console.ui.dashboard import DashboardScreen
    from tf_console.ui.detail import JobDetailScreen, OrderDetailScreen
    from tf_console.ui.health_view import HealthScreen

    scoped: tuple[KeySpec, ...] = ()
    if isinstance(screen, DashboardScreen):
        scoped = DASHBOARD_KEYS
    elif isinstance(screen, OrderDetailScreen):
        scoped = DETAIL_KEYS
    elif isinstance(screen, JobDetailScreen):
        scoped = JOB_KEYS
    elif isinstance(screen, HealthScreen):
        scoped = HEALTH_KEYS
    return scoped + tuple(spec for spec in APP_KEYS if spec.id != "app.quit_ctrl")


class ConsoleCommands(Provider):
    """One command per key of the screen the palette was opened on, plus the app's own."""

    async def _run(self, spec: KeySpec) -> None:
        if spec in APP_KEYS:
            await self.app.run_action(spec.action)
        else:
            await self.screen.run_action(spec.action)

    def _title(self, spec: KeySpec) -> str:
        return f"{spec.description} ({spec.display})"

    async def discover(self) -> Hits:
        for spec in specs_for(self.screen):
            yield DiscoveryHit(self._title(spec), partial(self._run, spec), help=spec.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for spec in specs_for(self.screen):
            title = self._title(spec)
            score = max(matcher.match(title), matcher.match(spec.help) * 0.8)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._run, spec), help=spec.help)
