"""The Textual application: screens, keys, the engine worker, errors and signals.

No exception may reach Textual's crash screen (it prints local variables):
workers run with ``exit_on_error=False`` and their errors are reported in one
place (:meth:`ConsoleApp.on_worker_state_changed`), user mistakes arrive as
:class:`~tf_console.errors.UserError` sentences, and a last-resort override of
the exception hook logs the traceback to the console log (never to the screen)
and leaves with a plain sentence.  SIGTERM and SIGHUP shut down cleanly: the
engine finishes its round, the outbox stays on disk, a daemon keeps syncing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

from rich.text import Text
from textual.actions import ActionParseResult
from textual.app import App
from textual.dom import DOMNode
from textual.message import Message
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.worker import Worker, WorkerState

from tf_console.analytics.service import AnalyticsService
from tf_console.console.events import ConsoleEvent
from tf_console.console.service import ConsoleService
from tf_console.errors import UserError
from tf_console.inventory import install_inventory
from tf_console.ui.analytics_screen import AnalyticsScreen
from tf_console.ui.commands import ConsoleCommands
from tf_console.ui.dashboard import DashboardScreen
from tf_console.ui.health_view import HealthScreen
from tf_console.ui.help import HelpScreen
from tf_console.ui.keys import APP_KEYS, bindings
from tf_console.ui.modals import ConfirmModal
from tf_console.ui.stock_screen import StockScreen
from tf_console.ui.styles import stylesheet_paths

log = logging.getLogger(__name__)

T = TypeVar("T")
Announce = Callable[[str], None]
Background = Callable[[asyncio.Event, Announce], Awaitable[None]]

SHUTDOWN_GRACE_SECONDS = 5.0
NOTIFIED_KEPT = 100
SWITCH_INTERVAL_SECONDS = 0.001
TITLE = "TitanForge Console"


class ServiceEvent(Message):
    """A :class:`ConsoleEvent` delivered on the UI's thread."""

    def __init__(self, event: ConsoleEvent) -> None:
        super().__init__()
        self.event = event


@dataclass
class ConsoleOptions:
    poll: bool = True  # run the sync engine (False: tests and snapshots show the store only)
    mode_label: str = ""  # e.g. "demo: sandbox marketplaces at 60× speed"
    ansi: bool = False  # use the terminal's own 16 colours (ansi-dark theme)
    log_path: Path | None = None  # where unexpected errors are written (said in the sentence)
    background: list[Background] = field(default_factory=list)  # tasks run until quit (demo faults)


class ConsoleApp(App[int]):
    TITLE = TITLE
    CSS_PATH = stylesheet_paths()
    BINDINGS = bindings(APP_KEYS)
    COMMANDS = App.COMMANDS | {ConsoleCommands}

    # Full-screen views by name.  A later screen (stock, analytics, audit) registers here
    # and adds a KeySpec to keys.APP_KEYS with the action "open_view('<name>')".
    VIEWS: ClassVar[dict[str, Callable[[ConsoleApp], Screen[Any]]]] = {
        "health": lambda _app: HealthScreen(),
        "stock": lambda app: _stock_screen(app),
        "analytics": lambda app: _analytics_screen(app),
    }

    def __init__(self, service: ConsoleService, options: ConsoleOptions | None = None) -> None:
        self.options = options or ConsoleOptions()
        super().__init__(ansi_color=self.options.ansi)
        self.service = service
        self.tz = ZoneInfo(service.runtime.settings.timezone)
        self.title_text = TITLE
        self.mode_label = self.options.mode_label
        self.dashboard = DashboardScreen(self)
        self.errors_reported = 0
        self.notified: list[str] = []  # the latest notifications' text (tests and the bench read it)
        self.fatal_sentence = ""
        self._stop = asyncio.Event()
        self._engine: Worker[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._signals: list[int] = []
        self._shutting_down = False
        self._quit_open = False
        self._switch_interval = sys.getswitchinterval()
        if self.options.ansi:
            self.theme = "ansi-dark"

    def get_default_screen(self) -> Screen[Any]:
        return self.dashboard

    # ------------------------------------------------------------------ life cycle

    def on_mount(self) -> None:
        # Worker threads (store reads, the scheduler) hand the interpreter back sooner, so
        # painting a key press does not wait behind them.
        self._switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        self._unsubscribe = self.service.subscribe(self._deliver)
        if self.options.poll:
            self._engine = self.run_worker(
                self.service.run_engine(self._stop), name="engine", group="engine", exit_on_error=False
            )
        for task in self.options.background:
            self.run_worker(
                task(self._stop, self._announce), name="background", group="background", exit_on_error=False
            )
        self._install_signal_handlers()

    def on_unmount(self) -> None:
        sys.setswitchinterval(self._switch_interval)
        self._stop.set()
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._remove_signal_handlers()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGHUP):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._on_signal, sig)
                self._signals.append(sig)

    def _remove_signal_handlers(self) -> None:
        with contextlib.suppress(RuntimeError):
            loop = asyncio.get_running_loop()
            for sig in self._signals:
                loop.remove_signal_handler(sig)
        self._signals.clear()

    def _on_signal(self, sig: int) -> None:
        log.info("received %s; shutting down", signal.Signals(sig).name)
        self.run_worker(self.shutdown(), name="shutdown", group="shutdown", exit_on_error=False)

    async def shutdown(self) -> None:
        """Stop the engine after its current round (bounded wait), then leave."""
        if self._shutting_down:
            return
        self._shutting_down = True
        try:
            self.dashboard.flush_moves()  # queued by the write thread; close() waits for it
        except Exception as exc:
            self.report_error(exc, "saving the last queue moves")
        self._stop.set()
        engine = self._engine
        if engine is not None and engine.state in (WorkerState.PENDING, WorkerState.RUNNING):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(engine.wait(), timeout=SHUTDOWN_GRACE_SECONDS)
        self.exit(0)

    # ------------------------------------------------------------------ service events

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Sentences are plain text: a marketplace's answer with brackets must not parse as markup."""
        self.notified.append(message)
        del self.notified[:-NOTIFIED_KEPT]
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    def _announce(self, sentence: str) -> None:
        self.notify(sentence, title="Demo", timeout=8)

    def _deliver(self, event: ConsoleEvent) -> None:
        self.post_message(ServiceEvent(event))  # thread-safe: listeners may run on worker threads

    def on_service_event(self, message: ServiceEvent) -> None:
        try:
            self.dashboard.handle_event(message.event)
            screen = self.screen
            handler = getattr(screen, "handle_event", None)
            if screen is not self.dashboard and handler is not None:
                handler(message.event)
        except Exception as exc:
            self.report_error(exc, "updating the screen")

    async def call_service(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking service call in a thread."""
        return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))

    # ------------------------------------------------------------------ errors

    def report_error(self, error: BaseException, doing: str = "") -> None:
        """One place for every failure: a sentence on screen, the details in the log."""
        if isinstance(error, UserError):
            self.notify(str(error), severity="error", timeout=8)
            return
        self.errors_reported += 1
        log.error(
            "unexpected %s while %s",
            type(error).__name__,
            doing or "working",
            exc_info=(type(error), error, None),
        )
        where = f" (details in {self.options.log_path})" if self.options.log_path else ""
        self.notify(
            f"Something went wrong while {doing or 'working'} ({type(error).__name__}); "
            f"the console carries on{where}.",
            severity="error",
            timeout=10,
        )

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Every key, palette command and button goes through here: a failing action is a
        sentence on screen, and the console carries on."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as exc:
            name = action if isinstance(action, str) else str(action[1])
            self.report_error(exc, f"running {name.split('(')[0]}")
            return True

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if event.state is not WorkerState.ERROR or worker.error is None:
            return
        error = worker.error
        if worker is self._engine and not self._shutting_down:
            log.error(
                "the sync engine stopped: %s", type(error).__name__, exc_info=(type(error), error, None)
            )
            self.notify(
                f"Syncing stopped unexpectedly ({type(error).__name__}); orders on screen may be stale. "
                "Quit and start the console again, or run `tf-console daemon`.",
                severity="error",
                timeout=30,
            )
            return
        self.report_error(error, worker.name or "working in the background")

    def _handle_exception(self, error: Exception) -> None:
        # Last resort: Textual's own handler renders the traceback with local variables,
        # which may hold buyer data. Log it (the redacting file log) and leave with a sentence.
        log.error(
            "unhandled %s in the console",
            type(error).__name__,
            exc_info=(type(error), error, error.__traceback__),
        )
        where = f" Details are in {self.options.log_path}." if self.options.log_path else ""
        self.fatal_sentence = (
            f"tf-console: the console stopped after an unexpected {type(error).__name__}.{where} "
            "The outbox is intact; start it again with the same command."
        )
        self._return_code = 1
        if self._exception is None:
            self._exception = error
            self._exception_event.set()
        self._exit_renderables.append(Text(self.fatal_sentence))
        self._close_messages_no_wait()

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.service.read_only))

    def action_health(self) -> None:
        self.action_open_view("health")

    def action_open_view(self, name: str) -> None:
        """Open a full-screen view by name (once: pressing its key again keeps the one shown)."""
        factory = self.VIEWS.get(name)
        if factory is None:
            self.notify(f"There is no {name} view in this version.", severity="warning")
            return
        view = factory(self)
        if type(self.screen) is not type(view):
            self.push_screen(view)

    def action_request_quit(self) -> None:
        if self._quit_open or self._shutting_down:
            return
        self._quit_open = True
        self.run_worker(self._confirm_quit(), name="quit", group="quit", exit_on_error=False)

    async def action_quit(self) -> None:
        """Every way to quit (ctrl+q, q, the palette) asks first."""
        self.action_request_quit()

    async def _confirm_quit(self) -> None:
        try:
            confirmed = await self.push_screen_wait(
                ConfirmModal(
                    "Quit TitanForge Console?",
                    "Everything is saved and the outbox is kept: unsent shipments go out when the console "
                    "or `tf-console daemon` runs again (a running daemon keeps syncing).",
                    yes="Quit",
                    no="Stay",
                )
            )
        finally:
            self._quit_open = False
        if confirmed:
            await self.shutdown()

    # ------------------------------------------------------------------ tests and benches

    def busy(self) -> bool:
        """Whether any refresh is running or waiting (tests wait for this to settle)."""
        d = self.dashboard
        refreshers = (
            d.refresh_orders,
            d.refresh_queue,
            d.refresh_projection,
            d.refresh_health,
            d.refresh_status,
        )
        return (
            any(r.running or r.dirty for r in refreshers)
            or not self.service.index.complete
            or d.moves_pending
        )


async def run_console(service: ConsoleService, options: ConsoleOptions, *, mouse: bool = True) -> int:
    """Run the console on a started runtime's service until the operator quits or a signal arrives."""
    app = ConsoleApp(service, options)
    try:
        await app.run_async(mouse=mouse)
    finally:
        service.close()
    if app.fatal_sentence:
        return 1  # the sentence was printed on exit in place of Textual's traceback
    return app.return_code or 0


def _stock_screen(app: ConsoleApp) -> Screen[Any]:
    service: ConsoleService = app.service
    return StockScreen(install_inventory(service.runtime), read_only=service.read_only, tz=app.tz)


def _analytics_screen(app: ConsoleApp) -> Screen[Any]:
    service: ConsoleService = app.service
    return AnalyticsScreen(AnalyticsService.from_runtime(service.runtime))
