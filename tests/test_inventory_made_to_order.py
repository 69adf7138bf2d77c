"""The made-to-order quantity follows its documented formula on a queue computed by hand."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from tf_console.inventory.made_to_order import made_to_order_quantity, profile_of
from tf_console.models import JobState, Platform, PrintJob
from tf_console.production.catalog import Profile, parse_catalog
from tf_console.production.errors import ConfigFileError
from tf_console.production.hours import StaffedHours
from tf_console.production.printers import Printer, ScheduleSettings
from tf_console.production.records import ratio_key
from tf_console.production.scheduler import ScheduleInput, compute_schedule

MONDAY_8AM = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # London is on UTC in November
OFFICE = StaffedHours(timezone="Europe/London", start=time(8), end=time(18), days=frozenset(range(5)))
SETTINGS = ScheduleSettings(hours=OFFICE, packing_buffer_minutes=120, changeover_minutes=0)

QUEUED = Profile(name="vase", material="PLA", minutes_per_unit=120, units_per_plate=1)
KEYRING = Profile(name="keyring", material="PLA", minutes_per_unit=30, units_per_plate=4)


def printer(name: str, materials: tuple[str, ...], model: str = "MK4S") -> Printer:
    return Printer(
        name=name,
        model=model,
        materials=frozenset(m.casefold() for m in materials),
        build_volume_mm=(250, 210, 220),
        nozzle=0.4,
        material_labels=materials,
    )


def queue_input(ratios: dict[str, float] | None = None) -> ScheduleInput:
    # One vase (a 2-hour plate) is queued: it holds printer p1 from 08:00 to 10:00.
    vase = PrintJob(
        job_id="etsy:1:1",
        platform=Platform.ETSY,
        order_id="1",
        line_id="1",
        sku="PRT-VASE",
        quantity=1,
        profile="vase",
        material="PLA",
        minutes_per_unit=120,
        units_per_plate=1,
        plates=1,
        state=JobState.QUEUED,
        due=MONDAY_8AM + timedelta(days=4),
        created_at=MONDAY_8AM - timedelta(days=1),
        updated_at=MONDAY_8AM,
    )
    return ScheduleInput(
        jobs=[vase],
        # p2 loads only PETG: it cannot print the PLA keyring and adds nothing.
        printers=[printer("p1", ("PLA",)), printer("p2", ("PETG",))],
        profiles={"vase": QUEUED, "keyring": KEYRING},
        now=MONDAY_8AM,
        settings=SETTINGS,
        ratios=ratios or {},
    )


def test_the_quantity_is_what_fits_before_the_promised_lead_time_capped_by_the_maximum() -> None:
    inp = queue_input()
    schedule = compute_schedule(inp)
    assert schedule.printer_free_at["p1"] == MONDAY_8AM + timedelta(hours=2)
    # By hand: deadline = Monday 08:00 + 1 day − 2 h packing = Tuesday 06:00.  Keyring plates
    # take 4 × 30 min = 2 h and queue behind the vase on p1: they clear at 12:00, 14:00 and
    # 16:00; the one ending 18:00 waits for Tuesday 08:00, after the deadline.  3 × 4 = 12.
    quote = made_to_order_quantity(inp, schedule, KEYRING, "PRT-KEYRING", lead=timedelta(days=1), cap=50)
    assert quote.deadline == datetime(2026, 11, 3, 6, 0, tzinfo=UTC)
    assert (quote.printable, quote.quantity) == (12, 12)
    assert quote.explanation == "min(max 50, 12 printable by 2026-11-03 06:00 UTC) = 12"

    capped = made_to_order_quantity(inp, schedule, KEYRING, "PRT-KEYRING", lead=timedelta(days=1), cap=10)
    assert capped.quantity == 10
    with_shelf = made_to_order_quantity(
        inp, schedule, KEYRING, "PRT-KEYRING", lead=timedelta(days=1), cap=50, shelf=3
    )
    assert with_shelf.quantity == 15 and "3 on the shelf" in with_shelf.explanation


def test_learned_print_times_and_a_too_short_lead_time_lower_the_quantity() -> None:
    # This SKU prints 1.5× slower than the slicer says on the MK4S: 3-hour plates clear at
    # 13:00 and 16:00; the one ending 19:00 clears on Tuesday at 08:00, too late.  2 × 4 = 8.
    inp = queue_input({ratio_key("PRT-KEYRING", "MK4S"): 1.5})
    schedule = compute_schedule(inp)
    quote = made_to_order_quantity(inp, schedule, KEYRING, "PRT-KEYRING", lead=timedelta(days=1), cap=50)
    assert quote.printable == 8
    # A lead time shorter than the packing buffer leaves nothing printable in time.
    hurried = made_to_order_quantity(inp, schedule, KEYRING, "PRT-KEYRING", lead=timedelta(hours=1), cap=50)
    assert hurried.quantity == 0


CATALOG = """
[profiles.keyring]
material = "PLA"
minutes_per_unit = 30
units_per_plate = 4

[[rules]]
prefix = "PRT-"
kind = "print"
profile = "keyring"

[[rules]]
prefix = "STK-"
kind = "stock"

[stock."PRT-KEYRING"]
made_to_order = true
max = 6
lead_days = 2

[stock."STK-PLA-1KG-BLK"]
buffer = 2
ebay = ["PLA-BLACK-1KG", "PLA-BLK"]
amazon = []
"""


def test_the_catalog_stock_tables_parse_and_a_made_to_order_sku_needs_a_print_rule() -> None:
    catalog = parse_catalog(CATALOG, "catalog.toml")
    keyring = catalog.stock_settings("prt-keyring")
    assert keyring is not None and keyring.made_to_order and keyring.max == 6 and keyring.lead_days == 2
    assert profile_of(catalog, "PRT-KEYRING") == catalog.profiles["keyring"]
    pla = catalog.stock_settings("STK-PLA-1KG-BLK")
    assert pla is not None and pla.buffer == 2
    assert pla.listings == {Platform.EBAY: ("PLA-BLACK-1KG", "PLA-BLK"), Platform.AMAZON: ()}
    broken = CATALOG + '\n[stock."STK-NOZZLE-04"]\nmade_to_order = true\n'
    with pytest.raises(ConfigFileError, match="no print rule matches it"):
        parse_catalog(broken, "catalog.toml")
    with pytest.raises(ConfigFileError, match=r"line \d+: .*max belongs to made_to_order"):
        parse_catalog(CATALOG.replace("buffer = 2", "buffer = 2\nmax = 3"), "catalog.toml")
    with pytest.raises(ConfigFileError, match="buffer must be a whole number"):
        parse_catalog(CATALOG.replace("buffer = 2", "buffer = -1"), "catalog.toml")


def test_the_example_catalog_still_parses(tmp_path: Path) -> None:
    import tf_console.data

    example = Path(tf_console.data.__file__).resolve().parent / "catalog.example.toml"
    assert parse_catalog(example.read_text("utf-8"), example).stock == {}
