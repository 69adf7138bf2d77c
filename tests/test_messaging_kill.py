"""kill -9 while a customer message is on the wire: it reaches the buyer once, never twice.

Real processes over a real loopback socket: `tf-console messages send` is killed while
the simulated eBay holds back its answer (the message was already delivered); the next
run finds the message in flight, cannot read it back (no marketplace lets us), and
marks it unconfirmed instead of sending it again.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.e2e import UPS_TRACKING, Rig, rig
from tf_console.models import Platform

pytestmark = pytest.mark.slow

MESSAGE_ROUTE = "ebay.AddMemberMessageAAQToPartner"


def delivered(r: Rig) -> int:
    return r.sandbox.log.count(MESSAGE_ROUTE, applied_only=True)


def _open_order(r: Rig) -> str:
    for order in r.export():
        if order["status"] == "unshipped" and order["items"]:
            return str(order["order_id"])
    raise AssertionError("the simulated shop has no open order to ship")


def test_message_goes_out_once_across_a_kill(tmp_path: Path) -> None:
    with rig(Platform.EBAY, tmp_path) as r:
        r.env["TF_MESSAGES_EBAY"] = "shipped"
        synced = r.cli("sync", "--once", "--days", "30")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        first = r.cli("messages", "send")  # the opt-in moment: nothing earlier is messaged
        assert first.returncode == 0, first.stdout + first.stderr
        order_id = _open_order(r)
        shipped = r.cli("ship", "ebay", order_id, "--carrier", "UPS", "--tracking", UPS_TRACKING)
        assert shipped.returncode == 0, shipped.stdout + shipped.stderr

        preview = r.cli("messages", "preview")
        assert preview.returncode == 0, preview.stderr
        assert f"eBay order {order_id} · shipped" in preview.stdout
        assert "→ eBay user " in preview.stdout and UPS_TRACKING in preview.stdout
        assert delivered(r) == 0, "a preview sends nothing"

        # eBay delivers the message, then sits on its answer; the sender dies meanwhile.
        fault = r.sandbox.faults.inject("slow", route=MESSAGE_ROUTE, delay=60.0, times=1)
        victim = r.popen("messages", "send")
        try:
            r.wait_for(lambda: delivered(r) == 1)
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        r.sandbox.faults.remove(fault.fault_id)
        assert victim.returncode == -signal.SIGKILL

        again = r.cli("messages", "send")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "unconfirmed" in again.stdout
        assert delivered(r) == 1, "the message was sent twice"

        history = r.cli("messages", "history", "ebay", order_id)
        assert history.returncode == 0, history.stderr
        assert "unconfirmed" in history.stdout and "not sent again" in history.stdout

        third = r.cli("messages", "send")
        assert third.returncode == 0 and "Nothing to send now." in third.stdout
        assert delivered(r) == 1
        assert len(r.simulator.messages) == 1  # type: ignore[attr-defined]

        # The text (with the buyer's first name) is encrypted at rest; the audit says what happened.
        sent_body = r.simulator.messages[0].body  # type: ignore[attr-defined]
        greeting = sent_body.split("\n")[0].encode()
        blob = b"".join(p.read_bytes() for p in r.data_dir.rglob("*") if p.is_file())
        assert greeting.startswith(b"Hi ") and greeting not in blob
        assert UPS_TRACKING.encode() + b". Thank you" not in blob
        audit = (r.data_dir / "logs" / "audit.jsonl").read_text()
        assert f"ebay:{order_id}" in audit and "message.unconfirmed" in audit
