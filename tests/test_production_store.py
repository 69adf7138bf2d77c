"""Production on the real store, and the ``queue``/``catalog`` commands end to end."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.production_fakes import CATALOG_TOML, MONDAY_8AM, PRINTERS_TOML, line, order
from tf_console.cli import main
from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.models import ItemKind, JobState, OrderStatus
from tf_console.production.service import ProductionService
from tf_console.store import Store


def _service(store: Store, data_dir: Path, clock: FakeClock) -> ProductionService:
    return ProductionService.open(store, data_dir, timezone="Europe/London", clock=clock)


def test_jobs_survive_a_restart_and_personalisation_is_encrypted_at_rest(tmp_path: Path) -> None:
    (tmp_path / "catalog.toml").write_text(CATALOG_TOML)
    (tmp_path / "printers.toml").write_text(PRINTERS_TOML)
    cipher = FernetCipher(FernetCipher.generate_key())
    clock = FakeClock(MONDAY_8AM)
    store = Store.open(tmp_path, cipher, clock=clock)
    try:
        service = _service(store, tmp_path, clock)
        service.sync_orders([order("1", line("a", "PRT-DRG-1", 3, personalisation="For Zoë, love Gran"))])
        service.move("1:a", "top")
        service.start("1:a", "p1")
    finally:
        store.close()

    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*.json"))
    assert "Zoë".encode() not in on_disk and b"love Gran" not in on_disk

    store = Store.open(tmp_path, cipher, clock=clock)
    try:
        service = _service(store, tmp_path, clock)
        job = service.job("1:a")
        assert job.personalisation == "For Zoë, love Gran"
        assert (job.state, job.pin, job.printer) == (JobState.PRINTING, 1, "p1")
        assert len(service.runs()) == 1
        assert not service.sync_orders(
            [order("1", line("a", "PRT-DRG-1", 3, personalisation="For Zoë, love Gran"))]
        ).changed
    finally:
        store.close()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "catalog.toml").write_text(CATALOG_TOML)
    (folder / "printers.toml").write_text(PRINTERS_TOML)
    ctx = AppContext.load(folder)
    store = ctx.open_store()
    try:
        soon = ctx.clock.now() + timedelta(days=2)
        orders = [
            order("1001", line("a", "PRT-DRG-RED", 3, personalisation="Ana"), ship_by=soon),
            order(
                "1002",
                line("a", "PRT-CLIP", 4),
                line("b", "MYSTERY-9", title="Mystery gadget"),
                ship_by=soon + timedelta(days=1),
            ),
            order("1003", line("a", "PRT-DRG-BLUE", 1), status=OrderStatus.CANCELLED),
        ]
        store.orders.upsert_many(orders)
        service = ProductionService.open(store, folder, timezone=ctx.settings.timezone, clock=ctx.clock)
        service.sync_orders(service.classify_order(o) for o in orders)
    finally:
        store.close()
    return folder


def run_cli(data_dir: Path, *argv: str) -> int:
    return main(["--data-dir", str(data_dir), *argv])


def test_queue_table_and_job_commands(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(data_dir, "queue") == 0
    table = capsys.readouterr().out
    assert "etsy:1001:a" in table and "etsy:1002:a" in table and "1003" not in table
    assert table.splitlines()[0].split()[:4] == ["#", "pin", "job", "sku"]

    assert run_cli(data_dir, "queue", "move", "1002:a", "--top") == 0
    assert "now number 1 of 2" in capsys.readouterr().out
    assert run_cli(data_dir, "queue", "start", "1", "--printer", "p2") == 0
    assert "Started a plate on p2: etsy:1002:a ×4" in capsys.readouterr().out
    assert run_cli(data_dir, "queue", "printed", "1002:a", "--minutes", "50") == 0
    out = capsys.readouterr().out
    assert "etsy:1002:a is printed" in out and "Printed in 50 min" in out
    assert run_cli(data_dir, "queue", "show", "1001:a") == 0
    shown = capsys.readouterr().out
    assert "personalisation  Ana" in shown and "position" in shown
    assert run_cli(data_dir, "queue", "priority", "1001:a", "rush") == 0
    assert run_cli(data_dir, "queue", "hold", "1001:a") == 0
    assert run_cli(data_dir, "queue", "release", "1001:a") == 0
    capsys.readouterr()

    assert run_cli(data_dir, "queue", "failed", "1001:a") == 2
    assert "has no plate printing" in capsys.readouterr().err
    assert run_cli(data_dir, "queue", "start", "99") == 2
    assert "there is no position 99" in capsys.readouterr().err


def test_catalog_check_unknown_and_assign(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(data_dir, "catalog", "check") == 0
    out = capsys.readouterr().out
    assert "3 profile(s), 4 SKU rule(s)" in out and "1 item(s) in open orders are unknown" in out

    assert run_cli(data_dir, "catalog", "unknown") == 0
    out = capsys.readouterr().out
    assert "MYSTERY-9" in out and "Mystery gadget" in out

    assert run_cli(data_dir, "catalog", "assign", "MYSTERY-9", "print", "--profile", "vase") == 0
    out = capsys.readouterr().out
    assert "Added rule 5" in out and "jobs: 1 created" in out
    assert "# Test catalog: the owner's comment at the top." in (data_dir / "catalog.toml").read_text()

    ctx = AppContext.load(data_dir)
    store = ctx.open_store()
    try:
        stored = store.orders.get("etsy", "1002")
        assert stored is not None and stored.items[1].kind is ItemKind.PRINT
        assert stored.items[1].kind_rule == "rule 5: sku MYSTERY-9"
    finally:
        store.close()

    assert run_cli(data_dir, "catalog", "assign", "X", "print", "--profile", "nope") == 2
    assert "needs --profile naming one of the catalog's profiles" in capsys.readouterr().err


def test_catalog_check_reports_a_broken_file_with_its_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = data_dir / "catalog.toml"
    path.write_text(path.read_text().replace('kind = "stock"', 'kind = "stok"'))
    assert run_cli(data_dir, "catalog", "check") == 1
    out = capsys.readouterr().out
    assert "catalog.toml, line 37: rule 4: kind must be" in out
    assert "keeps using the last good version" in out
