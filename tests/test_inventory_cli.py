"""``tf-console stock``: in process for the ledger commands, and as a real process against a
simulator on loopback for the push that follows a shelf count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e import rig
from tf_console.audit import AuditLog
from tf_console.cli import main
from tf_console.clock import FakeClock
from tf_console.models import Platform
from tf_console.sandbox.etsy import EtsySimulator


def run(data_dir: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--data-dir", str(data_dir), *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_set_adjust_printed_list_and_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    code, out, _ = run(data, capsys, "stock")
    assert code == 0 and "No stock is tracked yet" in out
    code, out, _ = run(data, capsys, "stock", "set", "STK-NOZZLE-04", "12")
    assert code == 0
    assert "STK-NOZZLE-04: on-hand unset → 12, allocated 0 (shelf count)." in out
    assert "No marketplace is configured" in out
    assert run(data, capsys, "stock", "adjust", "stk-nozzle-04", "-3", "--reason", "two broke")[0] == 0
    assert run(data, capsys, "stock", "adjust", "STK-NOZZLE-04", "+1", "--reason", "found one")[0] == 0
    assert run(data, capsys, "stock", "printed", "STK-NOZZLE-04", "2")[0] == 0
    code, out, _ = run(data, capsys, "stock")
    lines = out.splitlines()
    assert lines[0].split() == [
        "SKU",
        "On",
        "hand",
        "Allocated",
        "Buffer",
        "Available",
        "Amazon",
        "eBay",
        "Etsy",
    ]
    assert lines[1].split() == ["STK-NOZZLE-04", "12", "0", "0", "12", "-", "-", "-"]
    code, out, _ = run(data, capsys, "stock", "--format", "json")
    (row,) = json.loads(out)
    assert (row["sku"], row["on_hand"], row["allocated"], row["available"], row["synced"]) == (
        "STK-NOZZLE-04",
        12,
        0,
        12,
        True,
    )
    code, out, _ = run(data, capsys, "stock", "show", "STK-NOZZLE-04")
    assert code == 0
    for expected in ("on-hand = 12", "on-hand -3", "two broke", "on-hand +2", "print finished"):
        assert expected in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stock", "adjust", "STK-NEW", "-1", "--reason", "x"), "has no stock record; count it first"),
        (("stock", "adjust", "STK-NOZZLE-04", "-50", "--reason", "x"), "would go below zero"),
        (("stock", "adjust", "STK-NOZZLE-04", "0", "--reason", "x"), "changes nothing"),
        (("stock", "set", "STK-NOZZLE-04", "-2"), "cannot be negative"),
        (("stock", "show", "STK-UNKNOWN"), "has no stock record"),
    ],
)
def test_mistakes_are_sentences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    data = tmp_path / "data"
    assert run(data, capsys, "stock", "set", "STK-NOZZLE-04", "5")[0] == 0
    code, _out, err = run(data, capsys, *args)
    assert code == 2 and message in err and "Traceback" not in err


def test_manual_changes_are_audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tf_console.context import AppContext

    data = tmp_path / "data"
    run(data, capsys, "stock", "set", "STK-PEI-SHEET", "4", "--reason", "stocktake")
    run(data, capsys, "stock", "adjust", "STK-PEI-SHEET", "-1", "--reason", "scratched")
    ctx = AppContext.load(str(data), clock=FakeClock())
    with ctx.open_store() as store:
        entries = list(AuditLog(store).entries(target="SKU STK-PEI-SHEET"))
    assert [(e.action, e.outcome) for e in entries] == [("stock.set", "ok"), ("stock.adjust", "ok")]
    assert entries[0].detail == "on-hand unset → 4: stocktake" and entries[1].detail == "-1 (scratched)"


def test_a_shelf_count_is_pushed_at_once_when_nobody_polls(tmp_path: Path) -> None:
    with rig(Platform.ETSY, tmp_path) as etsy:
        simulator = etsy.simulator
        assert isinstance(simulator, EtsySimulator)
        done = etsy.cli("stock", "set", "STK-PLA-1KG-BLK", "7")
        assert done.returncode == 0, done.stderr
        assert "Etsy STK-PLA-1KG-BLK: 7 — Etsy listing" in done.stdout
        listing = simulator.listing_for("STK-PLA-1KG-BLK")
        assert [o["quantity"] for p in listing.products for o in p["offerings"]] == [7] * len(
            listing.products
        )
        shown = etsy.cli("stock")
        assert shown.returncode == 0, shown.stderr
        assert "7 applied in 0 s" in shown.stdout
