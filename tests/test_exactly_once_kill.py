"""kill -9 between "outbox written" and "marketplace answered": exactly one confirmation.

For each marketplace, over a real loopback socket and real processes: the `ship`
command is killed while the simulator holds back its answer (the confirmation has
already been applied); running the same command again must reconcile with the
marketplace and finish without a second confirmation.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.e2e import UPS_TRACKING, Rig, rig
from tf_console.models import Platform

pytestmark = pytest.mark.slow


def _open_order(r: Rig) -> str:
    for order in r.export():
        if order["status"] == "unshipped" and order["items"]:
            return str(order["order_id"])
    raise AssertionError("the simulated shop has no open order to ship")


def _carrier(platform: Platform) -> str:
    return {Platform.AMAZON: "UPS", Platform.EBAY: "UPS", Platform.ETSY: "ups"}[platform]


@pytest.mark.parametrize("platform", [Platform.AMAZON, Platform.EBAY, Platform.ETSY])
def test_kill_during_confirmation_then_exactly_one(platform: Platform, tmp_path: Path) -> None:
    with rig(platform, tmp_path) as r:
        synced = r.cli("sync", "--once", "--days", "30")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        order_id = _open_order(r)
        args = ("ship", platform.value, order_id, "--carrier", _carrier(platform), "--tracking", UPS_TRACKING)

        # The simulator applies the confirmation, then sits on its answer.
        fault = r.sandbox.faults.inject("slow", route=r.confirm_route, delay=60.0, times=1)
        victim = r.popen(*args)
        try:
            r.wait_for(lambda: r.confirmations() == 1)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        r.sandbox.faults.remove(fault.fault_id)
        assert victim.returncode == -signal.SIGKILL

        again = r.cli(*args)
        assert again.returncode == 0, again.stdout + again.stderr
        assert r.confirmations() == 1, "the confirmation was sent twice"
        shipped = next(o for o in r.export() if o["order_id"] == order_id)
        assert shipped["status"] == "shipped"
        assert UPS_TRACKING in shipped["tracking"]

        # And once more: nothing is sent, and it says so.
        third = r.cli(*args)
        assert third.returncode == 0
        assert "nothing was sent" in third.stdout + third.stderr
        assert r.confirmations() == 1


def test_daemon_polls_alone_and_other_processes_ask_it(tmp_path: Path) -> None:
    import time

    with rig(Platform.ETSY, tmp_path) as r:
        daemon = r.popen("daemon", "--days", "30")
        try:
            r.wait_for(lambda: (r.data_dir / "lease.json").exists(), timeout=30)
            second = r.cli("daemon", timeout=30)
            assert second.returncode != 0
            assert "already polls" in second.stderr or "lease" in second.stderr
            # `sync --once` asks the daemon to poll rather than polling itself.
            asked = r.cli("sync", "--once")
            assert asked.returncode == 0, asked.stdout + asked.stderr
            assert "asking it to poll now" in asked.stderr
            # `ship` enqueues and waits for the daemon's delivery.
            order_id = _open_order(r)
            shipped = r.cli("ship", "etsy", order_id, "--carrier", "ups", "--tracking", UPS_TRACKING)
            assert shipped.returncode == 0, shipped.stdout + shipped.stderr
            assert "delivers it" in shipped.stderr
            assert r.confirmations() == 1
        finally:
            daemon.send_signal(signal.SIGTERM)
            _out, err = daemon.communicate(timeout=30)
        assert daemon.returncode == 0, err
        assert "outbox is intact" in err
        time.sleep(0.1)
        assert not (r.data_dir / "lease.json").exists()


@pytest.mark.parametrize("platform", [Platform.AMAZON, Platform.EBAY, Platform.ETSY])
def test_doctor_check_makes_one_authenticated_call(platform: Platform, tmp_path: Path) -> None:
    with rig(platform, tmp_path) as r:
        done = r.cli("doctor", "--check")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Credential check" in done.stdout
        assert "ok" in done.stdout
        for name, value in r.env.items():
            if name.endswith(("SECRET", "TOKEN")) and len(value) > 8:
                assert value not in done.stdout


def test_sync_once_evaluates_alerts_when_it_is_the_poller(tmp_path: Path) -> None:
    with rig(Platform.ETSY, tmp_path) as r:
        done = r.cli("sync", "--once", "--days", "30")
        assert done.returncode == 0, done.stdout + done.stderr
        # The seeded shop has a few orders past their ship-by date.
        assert "Alert: Etsy order" in done.stderr and "has not shipped" in done.stderr
        doctor = r.cli("doctor")
        assert "has not shipped" in doctor.stdout
