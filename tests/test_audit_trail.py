"""The audit trail: an entry for every action that changes something outside the console or in
production — and none of them holds a secret or a buyer's name (grepped on the files)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.alerts_support import BUYER_NAME, Shop, open_shop
from tests.sync_fakes import make_order
from tf_console import audit as audit_module
from tf_console.audit import AuditLog, os_user
from tf_console.cli import main
from tf_console.clock import FakeClock
from tf_console.models import ItemKind, Platform, Priority
from tf_console.sync.shipping import ShipRequest, enqueue_shipment

UPS = ["1Z999AA10123456784", "1Z999AA10123456793", "1Z999AA10123456800", "1Z999AA10123456819"]
SECRET = "amzn1.oa2-cs.v1.audit-secret-abcdef0123456789"
PERSONALISATION = "Happy birthday Mira"


@pytest.fixture
def shop(tmp_path: Path) -> Iterator[Shop]:
    clock = FakeClock()
    opened = open_shop(tmp_path, clock=clock)
    for n in range(1, 6):
        opened.market.add(make_order(n, clock.now() - timedelta(hours=10 - n)))
    yield opened
    opened.close()


def audit_text(data_dir: Path) -> str:
    return "".join(p.read_text() for p in sorted((data_dir / "logs").glob("audit*.jsonl")))


async def ship(shop: Shop, order_id: str, tracking: str, behaviour: str) -> None:
    shop.market.confirm_behaviour = behaviour
    enqueue_shipment(shop.runtime.store, ShipRequest(Platform.TEST, order_id, "UPS", tracking), shop.clock)
    await shop.runtime.engine.sender.deliver_due()


async def test_every_listed_action_is_audited_without_secrets_or_buyer_names(
    shop: Shop, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.poll()
    # Ship confirmations: confirmed, refused, outcome unknown then verified, retried.
    await ship(shop, "T-00001", UPS[0], "ok")
    await ship(shop, "T-00002", UPS[1], "reject")
    await ship(shop, "T-00003", UPS[2], "lose-answer")
    shop.clock.advance(200)
    await shop.runtime.engine.sender.deliver_due()
    shop.clock.advance(200)
    await shop.runtime.engine.sender.deliver_due()
    await ship(shop, "T-00004", UPS[3], "transient")

    # Queue changes and a catalog change.
    production = shop.runtime.production
    jobs = sorted(j.job_id for j in production.jobs() if j.order_id == "T-00005")
    assert jobs, "the print line of T-00005 is queued"
    job = jobs[0]
    production.move(job, "top")
    production.unpin(job)
    production.set_priority(job, Priority.RUSH)
    production.hold(job)
    production.release(job)
    production.start(job, "mk4s-1")
    production.mark_failed(job, "mk4s-1", reason="spaghetti on layer 3")
    production.start(job, "mk4s-1")
    production.mark_printed(job, "mk4s-1", minutes=50)
    production.mark_packed(job)
    production.assign(
        "PRT-NEW-THING", ItemKind.PRINT, profile="keychain-name", orders=shop.runtime.store.orders
    )

    # Credentials, through the command line (no keyring here: they land in ./.env.local).
    monkeypatch.chdir(tmp_path)
    data_dir = shop.runtime.ctx.data_dir
    assert main(["--data-dir", str(data_dir), "creds", "set", "AMAZON_CLIENT_SECRET", "--value", SECRET]) == 0
    assert main(["--data-dir", str(data_dir), "creds", "delete", "AMAZON_CLIENT_SECRET"]) == 0
    assert main(["--data-dir", str(data_dir), "creds", "delete", "AMAZON_CLIENT_SECRET"]) == 1
    capsys.readouterr()

    entries = list(AuditLog.in_folder(data_dir, shop.clock).entries())
    actions = Counter(e.action for e in entries)
    for action in (
        "ship.requested",
        "ship.confirmed",
        "ship.rejected",
        "ship.unknown",
        "ship.retry",
        "queue.move",
        "queue.unpin",
        "queue.priority",
        "queue.hold",
        "queue.release",
        "queue.start",
        "queue.failed",
        "queue.printed",
        "queue.packed",
        "catalog.assign",
        "creds.set",
        "creds.delete",
    ):
        assert actions[action] >= 1, f"no {action} entry"
    assert actions["ship.requested"] == 4
    by_target = {(e.action, e.target): e for e in entries}
    assert by_target[("ship.confirmed", "test:T-00001")].outcome == "ok"
    rejected = by_target[("ship.rejected", "test:T-00002")]
    assert rejected.outcome == "rejected" and "tracking number is required" in rejected.detail
    assert by_target[("ship.unknown", "test:T-00003")].outcome == "unknown"
    assert by_target[("ship.confirmed", "test:T-00003")].outcome == "ok"  # verified by reading back
    assert by_target[("ship.retry", "test:T-00004")].outcome == "failed"
    assert by_target[("queue.priority", job)].detail == "priority rush"
    assert "spaghetti" in by_target[("queue.failed", job)].detail
    assert by_target[("catalog.assign", "SKU PRT-NEW-THING")].outcome == "added"
    assert by_target[("creds.set", "AMAZON_CLIENT_SECRET")].outcome == "ok"
    deletes = [e.outcome for e in entries if e.action == "creds.delete"]
    assert deletes == ["ok", "nothing-deleted"]
    assert all(e.user == os_user() and e.at and e.outcome for e in entries)

    # The grep: no secret, no buyer name, no personalisation, no address, no tracking number.
    text = audit_text(data_dir)
    for forbidden in (SECRET, BUYER_NAME, "Jane", PERSONALISATION, "1 Main St", "Springfield", *UPS):
        assert forbidden not in text, forbidden
    # Every line is one JSON object with the documented fields.
    for line in text.splitlines():
        assert set(json.loads(line)) == {"at", "user", "action", "target", "outcome", "detail"}

    # The console's views: per order (its print jobs included) and the latest entries.
    audit = AuditLog(shop.runtime.store, shop.clock)
    assert {"queue.move", "queue.printed", "queue.packed"} <= {
        e.action for e in audit.for_order("test:T-00005")
    }
    assert audit.recent(3) == entries[-3:]


async def test_tf_console_audit_prints_filters_and_speaks_json(
    shop: Shop, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    await shop.poll()
    await ship(shop, "T-00001", UPS[0], "ok")
    shop.clock.advance(3 * 86400)
    await ship(shop, "T-00002", UPS[1], "reject")
    data_dir = str(shop.runtime.ctx.data_dir)
    capsys.readouterr()

    # The CLI runs on the real clock: "--since all" and a date far back see everything.
    assert main(["--data-dir", data_dir, "audit", "--since", "all"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["time", "user", "action", "target", "outcome", "detail"]
    assert [line.split()[4] for line in table[1:]] == [  # time is three words
        "ship.requested",
        "ship.confirmed",
        "ship.requested",
        "ship.rejected",
    ]
    assert main(["--data-dir", data_dir, "audit", "--since", "2000-01-01", "--target", "test:T-00002"]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert len(lines) == 2 and all("test:T-00002" in line for line in lines)
    assert (
        main(["--data-dir", data_dir, "audit", "--since", "all", "--action", "ship.rejected", "--json"]) == 0
    )
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["target"] == "test:T-00002" and record["outcome"] == "rejected"
    assert main(["--data-dir", data_dir, "audit", "--since", "all", "--limit", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    # The command runs on the real clock; a window after every entry shows none.
    assert main(["--data-dir", data_dir, "audit", "--since", "2099-01-01"]) == 0
    assert "No audit entries since 2099-01-01" in capsys.readouterr().out
    assert main(["--data-dir", data_dir, "audit", "--since", "last tuesday"]) == 2
    assert "--since 'last tuesday' is not understood" in capsys.readouterr().err


def test_the_since_spans(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tf_console.cli.audit import parse_since

    now = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
    assert parse_since("7d", now, UTC) == now - timedelta(days=7)
    assert parse_since("12h", now, UTC) == now - timedelta(hours=12)
    assert parse_since("30m", now, UTC) == now - timedelta(minutes=30)
    assert parse_since("2w", now, UTC) == now - timedelta(weeks=2)
    assert parse_since("all", now, UTC) is None
    assert parse_since("2026-11-01", now, UTC) == datetime(2026, 11, 1, tzinfo=UTC)


def test_the_audit_log_is_append_only_bounded_and_rotated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_module, "AUDIT_MAX_BYTES", 2_000)
    monkeypatch.setattr(audit_module, "AUDIT_KEEP", 3)
    clock = FakeClock()
    log = AuditLog.in_folder(tmp_path / "data", clock)
    for n in range(300):
        log.record("queue.move", f"test:T-{n:05d}:L1", "ok", "moved top")
        clock.advance(1)
    files = sorted((tmp_path / "data" / "logs").glob("audit*.jsonl"))
    assert 2 <= len(files) <= 4  # the live file and at most three rotated ones
    assert sum(f.stat().st_size for f in files) < 4 * 2_000 + 1_000
    targets = [e.target for e in log.entries()]
    assert targets == sorted(targets) and targets[-1] == "test:T-00299:L1"  # oldest first, newest kept
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in files)
