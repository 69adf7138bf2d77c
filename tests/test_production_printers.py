"""printers.toml, printer eligibility and staffed hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_console.production.catalog import Profile
from tf_console.production.errors import ConfigFileError
from tf_console.production.hours import StaffedCalendar, StaffedHours, from_minutes, to_minutes
from tf_console.production.printers import eligibility_problem, parse_printers

PRINTERS = """\
[schedule]
staffed_hours = "09:00-17:30"
staffed_days = ["mon", "tue", "wed", "thu", "fri", "sat"]
packing_buffer_minutes = 90

[[printers]]
name = "mk4s-1"
model = "Prusa MK4S"
materials = ["PLA", "PETG"]
build_volume_mm = [250, 210, 220]
nozzle = 0.4
beds = ["Textured PEI"]

[[printers]]
name = "old-mini"
model = "Prusa MINI+"
materials = ["PLA"]
build_volume_mm = [180, 180, 180]
enabled = false
"""


def test_printers_file_parses_with_schedule_settings() -> None:
    config = parse_printers(PRINTERS, "printers.toml")
    assert [p.name for p in config.printers] == ["mk4s-1", "old-mini"]
    settings_ = config.pattern.settings("America/New_York")
    assert settings_.hours.start == time(9) and settings_.hours.end == time(17, 30)
    assert settings_.hours.days == frozenset(range(6))
    assert settings_.packing_buffer_minutes == 90
    assert config.by_name("MK4S-1") is config.printers[0]


@pytest.mark.parametrize(
    ("broken", "line", "words"),
    [
        (
            PRINTERS.replace('staffed_hours = "09:00-17:30"', 'staffed_hours = "9 to 5"'),
            2,
            "should look like",
        ),
        (PRINTERS.replace('"sat"]', '"sab"]'), 3, "not a weekday name"),
        (
            PRINTERS.replace("build_volume_mm = [250, 210, 220]", "build_volume_mm = [250, 210]"),
            10,
            "build_volume_mm must be [x, y, z]",
        ),
        (PRINTERS.replace('name = "old-mini"', 'name = "mk4s-1"'), 14, "used twice"),
        (PRINTERS.replace("nozzle = 0.4", "nozzle = 0"), 11, "nozzle must be a positive number"),
        (PRINTERS.replace('model = "Prusa MINI+"', 'modle = "Prusa MINI+"'), 16, "unknown key 'modle'"),
    ],
)
def test_malformed_printers_file_names_the_line(broken: str, line: int, words: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_printers(broken, "printers.toml")
    assert caught.value.line == line, str(caught.value)
    assert words in caught.value.problem


def test_eligibility_checks_material_nozzle_bed_volume_and_enabled() -> None:
    mk4, mini = parse_printers(PRINTERS, "printers.toml").printers
    base = Profile(
        name="p", material="pla", minutes_per_unit=10, nozzle=0.4, bed="textured pei", size_mm=(200, 240, 100)
    )
    assert eligibility_problem(base, mk4) is None  # rotated 90° it fits 250 × 210
    assert eligibility_problem(base, mini) == "is disabled in printers.toml"
    cases = {
        "does not print ABS (it takes PLA, PETG)": Profile(name="p", material="ABS", minutes_per_unit=1),
        "has a 0.4 mm nozzle, not 0.6 mm": Profile(name="p", material="PLA", minutes_per_unit=1, nozzle=0.6),
        "has no smooth PEI plate": Profile(name="p", material="PLA", minutes_per_unit=1, bed="smooth PEI"),
        "is too small (250×210×220 mm) for 260×100×50 mm": Profile(
            name="p", material="PLA", minutes_per_unit=1, size_mm=(260, 100, 50)
        ),
        "is too small (250×210×220 mm) for 100×100×230 mm": Profile(
            name="p", material="PLA", minutes_per_unit=1, size_mm=(100, 100, 230)
        ),
    }
    for reason, profile in cases.items():
        assert eligibility_problem(profile, mk4) == reason


# ---------------------------------------------------------------------------
# Staffed hours

OFFICE = StaffedHours(timezone="Europe/London", start=time(8), end=time(18))


def test_next_staffed_across_evenings_weekends_and_dst() -> None:
    calendar = StaffedCalendar(OFFICE, to_minutes(datetime(2026, 10, 20, tzinfo=UTC)))

    def next_at(moment: datetime) -> datetime:
        return from_minutes(calendar.next_staffed(to_minutes(moment)))

    friday_evening = datetime(2026, 10, 23, 19, 0, tzinfo=UTC)  # 20:00 BST
    # Monday after the clocks went back: 08:00 GMT is 08:00 UTC.
    assert next_at(friday_evening) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)
    thursday_noon_bst = datetime(2026, 10, 22, 11, 0, tzinfo=UTC)
    assert next_at(thursday_noon_bst) == thursday_noon_bst
    before_shift_bst = datetime(2026, 10, 22, 6, 30, tzinfo=UTC)  # 07:30 BST
    assert next_at(before_shift_bst) == datetime(2026, 10, 22, 7, 0, tzinfo=UTC)
    end_of_shift = datetime(2026, 10, 22, 17, 0, tzinfo=UTC)  # exactly 18:00 BST: the shift is over
    assert next_at(end_of_shift) == datetime(2026, 10, 23, 7, 0, tzinfo=UTC)


def test_subtracting_staffed_time_skips_nights_and_weekends() -> None:
    calendar = StaffedCalendar(OFFICE, to_minutes(datetime(2026, 11, 2, tzinfo=UTC)))
    monday_9am = to_minutes(datetime(2026, 11, 9, 9, 0, tzinfo=UTC))
    assert from_minutes(calendar.subtract_staffed(monday_9am, 30)) == datetime(2026, 11, 9, 8, 30, tzinfo=UTC)
    assert from_minutes(calendar.subtract_staffed(monday_9am, 120)) == datetime(
        2026, 11, 6, 17, 0, tzinfo=UTC
    )
    sunday = to_minutes(datetime(2026, 11, 8, 12, 0, tzinfo=UTC))
    assert from_minutes(calendar.subtract_staffed(sunday, 60)) == datetime(2026, 11, 6, 17, 0, tzinfo=UTC)
    far_past = to_minutes(datetime(2025, 1, 6, 9, 0, tzinfo=UTC))  # before the generated range
    assert from_minutes(calendar.subtract_staffed(far_past, 120)) == datetime(2025, 1, 3, 17, 0, tzinfo=UTC)


def test_shift_past_midnight_and_around_the_clock() -> None:
    night = StaffedHours(timezone="UTC", start=time(22), end=time(6), days=frozenset(range(7)))
    calendar = StaffedCalendar(night, to_minutes(datetime(2026, 11, 2, tzinfo=UTC)))
    assert calendar.is_staffed(to_minutes(datetime(2026, 11, 3, 2, 0, tzinfo=UTC)))
    assert not calendar.is_staffed(to_minutes(datetime(2026, 11, 3, 12, 0, tzinfo=UTC)))
    always = StaffedCalendar(StaffedHours.around_the_clock(), 0.0)
    assert always.next_staffed(123.0) == 123.0 and always.subtract_staffed(100.0, 30) == 70.0


def test_bad_hours_are_sentences() -> None:
    with pytest.raises(ValueError, match="at least one day"):
        StaffedHours.parse("08:00-18:00", [], "UTC")
    with pytest.raises(ValueError, match="TF_TIMEZONE"):
        StaffedHours(timezone="Mars/Olympus")


@settings(max_examples=200, deadline=None)
@given(
    st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(["Europe/London", "America/New_York", "Australia/Sydney", "UTC"]),
)
def test_next_staffed_is_the_first_staffed_minute(moment: datetime, timezone: str) -> None:
    hours = StaffedHours(timezone=timezone, start=time(8), end=time(18))
    calendar = StaffedCalendar(hours, to_minutes(datetime(2026, 6, 1, tzinfo=UTC)))
    result = from_minutes(calendar.next_staffed(to_minutes(moment)))
    local = result.astimezone(__import__("zoneinfo").ZoneInfo(timezone))
    assert local.weekday() < 5 and time(8) <= local.time() < time(18)
    assert result >= moment - timedelta(seconds=1)
    if result > moment + timedelta(seconds=1):  # nothing staffed in between
        probe = moment + (result - moment) / 2
        plocal = probe.astimezone(__import__("zoneinfo").ZoneInfo(timezone))
        assert not (plocal.weekday() < 5 and time(8) <= plocal.time() < time(18))
