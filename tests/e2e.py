"""A real-process harness: a platform simulator on a loopback port, `tf-console` as a subprocess.

The simulator runs in the test process (a thread serving 127.0.0.1), so the test can
inspect what reached it; the CLI runs as a separate process with its environment
pointing at the simulator, so it can be killed with SIGKILL at the worst moment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tf_console.clock import SYSTEM_CLOCK
from tf_console.config import Settings
from tf_console.demo import demo_values
from tf_console.models import Platform
from tf_console.sandbox import IN_PROCESS_BASE_URL, LoopbackServer, Sandbox, Simulator
from tf_console.sandbox.registry import load_factory

# The route each simulator gives its shipment confirmation.
CONFIRM_ROUTES = {
    Platform.AMAZON: "amazon.shipment.confirm",
    Platform.EBAY: "ebay.CompleteSale",
    Platform.ETSY: "etsy.receipts.tracking",
}

UPS_TRACKING = "1Z999AA10123456784"


@dataclass
class Rig:
    platform: Platform
    sandbox: Sandbox
    simulator: Simulator
    server: LoopbackServer
    env: dict[str, str]
    data_dir: Path

    def cli(self, *args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tf_console", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=self.data_dir.parent,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "tf_console", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=self.data_dir.parent,
        )

    @property
    def confirm_route(self) -> str:
        return CONFIRM_ROUTES[self.platform]

    def confirmations(self) -> int:
        """Confirmation calls that reached the marketplace and took effect."""
        return self.sandbox.log.count(CONFIRM_ROUTES[self.platform], applied_only=True)

    def export(self) -> list[dict[str, Any]]:
        done = self.cli("export", "--format", "json")
        assert done.returncode == 0, done.stderr
        orders: list[dict[str, Any]] = json.loads(done.stdout)
        return orders

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("timed out waiting for the simulator")


def loopback_values(platform: Platform, simulator: Simulator, base_url: str) -> dict[str, str]:
    documented = Settings.load(use_keyring=False).endpoint_defaults()
    values = demo_values(platform, simulator, documented)
    return {
        name: value.replace(IN_PROCESS_BASE_URL, base_url) if value.startswith(IN_PROCESS_BASE_URL) else value
        for name, value in values.items()
    }


@contextmanager
def rig(platform: Platform, tmp_path: Path, *, seed: int = 11) -> Iterator[Rig]:
    factory = load_factory(platform.value)
    assert factory is not None, f"no simulator for {platform.value}"
    sandbox = Sandbox(clock=SYSTEM_CLOCK, seed=seed, short_page_probability=0.0)
    simulator = sandbox.add(factory(sandbox, seed=seed))
    server = LoopbackServer(sandbox).start()
    data_dir = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMAZON_", "EBAY_", "ETSY_", "TF_"))}
    env.update(loopback_values(platform, simulator, server.base_url))
    env["TF_DATA_DIR"] = str(data_dir)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    try:
        yield Rig(platform, sandbox, simulator, server, env, data_dir)
    finally:
        server.stop()
