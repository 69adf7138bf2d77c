"""``tf-console demo`` in a real terminal (tmux): the three panes, then a shipment end to end.

Skipped when tmux is not installed.  The demo runs against the in-process
sandbox marketplaces; the test types like an operator would and reads the
screen with ``capture-pane``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tf_console.carriers import CarrierFamily, check_tracking

pytestmark = [pytest.mark.tmux, pytest.mark.slow]

TMUX = shutil.which("tmux")


def valid_usps_number() -> str:
    """A USPS IMpb tracking number with a correct check digit."""
    body = "9400111899223100000"
    for digits in range(100, 1000):
        for check in "0123456789":
            candidate = f"{body}{digits:03d}{check}"[:22]
            if check_tracking(CarrierFamily.USPS, candidate).ok:
                return candidate
    raise AssertionError("no valid USPS number found")


class Tmux:
    def __init__(self, session: str) -> None:
        self.session = session

    def run(self, *args: str) -> str:
        assert TMUX is not None
        done = subprocess.run([TMUX, *args], capture_output=True, text=True, timeout=10)
        return done.stdout

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.run("send-keys", "-t", self.session, key)
            time.sleep(0.15)

    def text(self, literal: str) -> None:
        self.run("send-keys", "-t", self.session, "-l", literal)
        time.sleep(0.2)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session)

    def wait_for(self, test: Callable[[str], bool], timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        shown = ""
        while time.monotonic() < deadline:
            shown = self.screen()
            if test(shown):
                return shown
            time.sleep(0.25)
        raise AssertionError(f"timed out; the screen shows:\n{shown}")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Tmux]:
    if TMUX is None:
        pytest.skip("tmux is not installed")
    session = f"tf-test-{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "demo"
    env = " ".join(
        [
            "TERM=xterm-256color",
            "TEXTUAL_ANIMATIONS=none",
            "LANG=C.UTF-8",
            f"HOME={os.environ.get('HOME', str(tmp_path))}",
        ]
    )
    command = (
        f"env -i PATH=/usr/bin:/bin {env} {sys.executable} -m tf_console demo "
        f"--data-dir {data_dir} --speed 60 --no-mouse; sleep 5"
    )
    assert TMUX is not None
    subprocess.run(
        [TMUX, "new-session", "-d", "-s", session, "-x", "120", "-y", "40", command],
        check=True,
        timeout=10,
        cwd=Path(__file__).resolve().parent.parent,
    )
    tmux = Tmux(session)
    try:
        yield tmux
    finally:
        subprocess.run([TMUX, "kill-session", "-t", session], capture_output=True, timeout=10)


def test_demo_shows_three_panes_and_ships_an_order(demo: Tmux) -> None:
    screen = demo.wait_for(
        lambda s: "1 Platforms" in s and "2 Orders" in s and "3 Queue" in s and "DEMO" in s
    )
    assert "Traceback" not in screen
    screen = demo.wait_for(lambda s: "this console polls" in s and "unshipped" in s)
    for platform in ("Amazon", "eBay", "Etsy"):
        assert platform in screen
    # An unpaid-free, open Etsy order: filter for it, then ship it with USPS.
    demo.keys("2", "/")
    demo.text("platform:etsy status:unshipped ship:none")
    demo.keys("Enter")
    demo.wait_for(lambda s: "/platform:etsy status:unshipped" in s)
    demo.keys("s")
    demo.wait_for(lambda s: "Ship Etsy order" in s and "Tracking" in s)
    demo.text(valid_usps_number())
    demo.keys("C-s")
    demo.wait_for(lambda s: "Confirm shipment to Etsy" in s)
    demo.keys("y")
    demo.wait_for(lambda s: "recorded" in s or "requested" in s or "confirmed" in s, timeout=15)
    # The order leaves the "ship:none" filter once its shipment is recorded; show every shipment state.
    demo.keys("Escape", "/")
    demo.text("platform:etsy ship:requested ship:confirmed")
    demo.keys("Enter")
    final = demo.wait_for(lambda s: "✔ confirmed" in s, timeout=30)
    assert "Traceback" not in final
    demo.keys("q")
    demo.wait_for(lambda s: "Quit TitanForge Console?" in s)
    demo.keys("y")
    demo.wait_for(lambda s: "3 Queue" not in s, timeout=15)
