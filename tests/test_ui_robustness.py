"""No traceback ever reaches the screen; signals end the console cleanly."""

from __future__ import annotations

import fcntl
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from rich.text import Text

from tests.ui_support import SIZE, make_console, settle
from tf_console.console.events import ConsoleEvent, EventKind
from tf_console.demo import DEMO_KEY_FILE
from tf_console.sync.lease import current_holder
from tf_console.ui.dashboard import DashboardScreen

SECRET_NAME = "Jane Secretbuyer"


async def test_a_failing_action_is_a_sentence_and_the_console_carries_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: DashboardScreen) -> None:
        buyer = SECRET_NAME  # a local a traceback with locals would print
        raise ValueError(f"cannot sort for {buyer}")

    monkeypatch.setattr(DashboardScreen, "action_sort", broken)
    with make_console(tmp_path) as console:
        app = console.app
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("o")
            await settle(pilot)
            assert app.is_running and app.errors_reported == 1
            assert any("running sort" in n and "ValueError" in n for n in app.notified)
            assert not any(SECRET_NAME in n for n in app.notified)


async def test_the_last_resort_leaves_with_a_sentence_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: DashboardScreen, _event: object) -> None:
        buyer = SECRET_NAME  # a local a traceback with locals would print
        raise ValueError(f"cannot focus for {buyer}")

    monkeypatch.setattr(DashboardScreen, "on_descendant_focus", broken)
    with make_console(tmp_path) as console:
        app = console.app
        with pytest.raises(ValueError):
            async with app.run_test(size=SIZE) as pilot:
                await pilot.press("3")
                await pilot.pause()
        assert "ValueError" in app.fatal_sentence and "outbox is intact" in app.fatal_sentence
        assert SECRET_NAME not in app.fatal_sentence
        assert app.return_code == 1
        assert all(isinstance(r, Text) for r in app._exit_renderables)  # no rich Traceback
        assert all(SECRET_NAME not in r.plain for r in app._exit_renderables if isinstance(r, Text))


async def test_a_failing_worker_is_reported_and_the_console_carries_on(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        app = console.app
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)

            async def explode() -> None:
                raise RuntimeError(SECRET_NAME)

            app.run_worker(explode(), name="refreshing the orders", exit_on_error=False)
            await pilot.pause(0.2)
            assert app.is_running and app.errors_reported == 1
            assert any("Something went wrong while refreshing the orders" in n for n in app.notified)
            assert not any(SECRET_NAME in n for n in app.notified)
            await pilot.press("o")  # still answering keys
            await settle(pilot)
            assert app.dashboard.model.query.sort == "ship-by"


async def test_a_failing_listener_never_breaks_the_others(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        seen: list[ConsoleEvent] = []

        def broken(_event: ConsoleEvent) -> None:
            raise RuntimeError("listener bug")

        console.service.subscribe(broken)
        console.service.subscribe(seen.append)
        console.service.emit(ConsoleEvent(EventKind.JOBS))
        assert [e.kind for e in seen] == [EventKind.JOBS]


async def test_user_errors_from_actions_are_sentences(tmp_path: Path) -> None:
    with make_console(tmp_path) as console:
        app = console.app
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await pilot.press("3", "end", "J")  # the last job cannot go further down
            await settle(pilot)
            assert any("already last" in n for n in app.notified)
            assert app.errors_reported == 0


# ---------------------------------------------------------------------------
# Signals, in a real terminal (a pseudo-terminal)


def _start_demo(data_dir: Path, columns: int = 100, rows: int = 30) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMAZON_", "EBAY_", "ETSY_", "TF_"))}
    env.update(TERM="xterm-256color", TEXTUAL_ANIMATIONS="none")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tf_console",
            "demo",
            "--data-dir",
            str(data_dir),
            "--speed",
            "30",
            "--no-mouse",
        ],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        close_fds=True,
    )
    os.close(slave)
    return process, master


def _read_until(master: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += chunk
            if needle in seen:
                return seen
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_signals_exit_cleanly_with_the_outbox_intact(tmp_path: Path, sig: signal.Signals) -> None:
    data_dir = tmp_path / "demo"
    process, master = _start_demo(data_dir)
    try:
        shown = _read_until(master, b"Queue", timeout=30)
        assert b"Platforms" in shown and b"Orders" in shown, shown[-2000:]
        deadline = time.monotonic() + 20
        while current_holder(data_dir) is None and time.monotonic() < deadline:
            time.sleep(0.1)  # the console takes the poller lease
        assert current_holder(data_dir) is not None
        process.send_signal(sig)
        rest = _read_until(master, b"\x1b[?1049l", timeout=15)  # the alternate screen is left
        code = process.wait(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert code == 0
    assert b"Traceback" not in shown + rest
    assert current_holder(data_dir) is None  # the lease is released: a daemon may take over
    assert (data_dir / "collections").is_dir()
    from tf_console.crypto import FernetCipher
    from tf_console.store import Store
    from tf_console.sync.outbox import outbox_collection

    key = (data_dir / DEMO_KEY_FILE).read_bytes().strip()
    with Store.open(data_dir, FernetCipher(key)) as store:
        assert store.orders.count() > 0
        outbox_collection(store).all()  # readable: nothing half-written


def test_run_needs_a_terminal(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tf_console", "demo", "--data-dir", str(tmp_path / "d")],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "needs a terminal" in result.stderr and "Traceback" not in result.stderr
