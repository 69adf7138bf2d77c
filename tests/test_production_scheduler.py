"""The scheduler: hypothesis properties plus worked examples of its heuristics."""

from __future__ import annotations

import itertools
import math
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tf_console.models import JobState, Platform, PrintJob, Priority
from tf_console.production.catalog import Profile
from tf_console.production.hours import StaffedHours
from tf_console.production.printers import Printer, ScheduleSettings, eligibility_problem
from tf_console.production.records import PlateRun, ratio_key
from tf_console.production.scheduler import (
    ScheduleInput,
    compute_schedule,
    queue_order,
    units_printable_before,
)

LONDON = ZoneInfo("Europe/London")
MONDAY_8AM = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
OFFICE = StaffedHours(timezone="Europe/London", start=time(8), end=time(18), days=frozenset(range(5)))


def printer(
    name: str, materials: tuple[str, ...] = ("PLA", "PETG"), nozzle: float = 0.4, model: str = "MK4S"
) -> Printer:
    return Printer(
        name=name,
        model=model,
        materials=frozenset(m.casefold() for m in materials),
        build_volume_mm=(250, 210, 220),
        nozzle=nozzle,
        material_labels=materials,
    )


def job(
    n: int,
    profile: Profile,
    quantity: int = 1,
    *,
    due: datetime | None = None,
    priority: Priority = Priority.NORMAL,
    pin: int | None = None,
    order: str | None = None,
    state: JobState = JobState.QUEUED,
    sku: str = "SKU",
) -> PrintJob:
    order_id = order or f"o{n}"
    return PrintJob(
        job_id=f"etsy:{order_id}:{n}",
        platform=Platform.ETSY,
        order_id=order_id,
        line_id=str(n),
        sku=sku,
        quantity=quantity,
        profile=profile.name,
        material=profile.material,
        minutes_per_unit=profile.minutes_per_unit,
        units_per_plate=profile.units_per_plate,
        plates=profile.plates_for(quantity),
        state=state,
        priority=priority,
        pin=pin,
        due=due,
        created_at=MONDAY_8AM - timedelta(days=1, minutes=n),
        updated_at=MONDAY_8AM,
    )


def schedule_input(
    jobs: list[PrintJob],
    printers: list[Printer],
    profiles: list[Profile],
    *,
    now: datetime = MONDAY_8AM,
    settings: ScheduleSettings | None = None,
    running: list[PlateRun] | None = None,
    printed: dict[str, int] | None = None,
    ratios: dict[str, float] | None = None,
) -> ScheduleInput:
    return ScheduleInput(
        jobs=jobs,
        printers=printers,
        profiles={p.name: p for p in profiles},
        now=now,
        settings=settings or ScheduleSettings(hours=StaffedHours.around_the_clock("Europe/London")),
        running=running or [],
        units_printed=printed or {},
        ratios=ratios or {},
    )


def is_staffed_locally(moment: datetime, hours: StaffedHours) -> bool:
    """An independent check of staffed time, straight from the local wall clock."""
    if hours.always:
        return True
    local = moment.astimezone(ZoneInfo(hours.timezone))
    return local.weekday() in hours.days and hours.start <= local.time() < hours.end


# ---------------------------------------------------------------------------
# Hypothesis properties

PROFILE_POOL = st.builds(
    lambda i, material, nozzle, minutes, upp, batch: Profile(
        name=f"prof{i}",
        material=material,
        minutes_per_unit=minutes,
        units_per_plate=upp,
        nozzle=nozzle,
        batch=batch,
    ),
    st.integers(0, 1000),
    st.sampled_from(["PLA", "PETG"]),
    st.sampled_from([0.4, 0.6, None]),
    st.floats(5, 900, allow_nan=False),
    st.integers(1, 4),
    st.booleans(),
)


@st.composite
def scenarios(draw: st.DrawFn, *, lookahead: bool | None = None) -> ScheduleInput:
    profiles_raw = draw(st.lists(PROFILE_POOL, min_size=1, max_size=4))
    profiles = [
        Profile(
            name=f"prof{i}",
            material=p.material,
            minutes_per_unit=p.minutes_per_unit,
            units_per_plate=p.units_per_plate,
            nozzle=p.nozzle,
            batch=p.batch,
        )
        for i, p in enumerate(profiles_raw)
    ]
    printers = [
        printer(
            f"p{i}",
            materials=draw(st.sampled_from([("PLA",), ("PETG",), ("PLA", "PETG")])),
            nozzle=draw(st.sampled_from([0.4, 0.6])),
            model=draw(st.sampled_from(["MK4S", "X1C"])),
        )
        for i in range(draw(st.integers(1, 4)))
    ]
    now = datetime(2026, 3, 20, 6, 0, tzinfo=UTC) + timedelta(
        minutes=draw(st.integers(0, 240 * 24 * 60))
    )  # spans both DST changes of 2026
    jobs = []
    for n in range(draw(st.integers(0, 25))):
        profile = draw(st.sampled_from(profiles))
        due_hours = draw(st.one_of(st.none(), st.integers(-48, 400)))
        jobs.append(
            job(
                n,
                profile,
                draw(st.integers(1, 6)),
                due=None if due_hours is None else now + timedelta(hours=due_hours),
                priority=draw(st.sampled_from(list(Priority))),
                pin=draw(st.one_of(st.none(), st.none(), st.integers(1, 5))),
                order=f"o{draw(st.integers(0, 8))}",
                state=draw(
                    st.sampled_from([JobState.QUEUED, JobState.QUEUED, JobState.FAILED, JobState.HELD])
                ),
            )
        )
    staffed = draw(st.booleans())
    hours = OFFICE if staffed else StaffedHours.around_the_clock("Europe/London")
    use_lookahead = draw(st.booleans()) if lookahead is None else lookahead
    settings_ = ScheduleSettings(
        hours=hours,
        packing_buffer_minutes=draw(st.sampled_from([0, 60, 120, 600])),
        changeover_minutes=draw(st.sampled_from([0, 10, 45])),
        shift_end_lookahead=8 if use_lookahead else 0,
    )
    ratios = {ratio_key("SKU", "X1C"): draw(st.sampled_from([1.0, 0.8, 1.5]))}
    return schedule_input(jobs, printers, profiles, now=now, settings=settings_, ratios=ratios)


PROPERTY_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(scenarios())
def test_no_printer_runs_two_plates_at_once(inp: ScheduleInput) -> None:
    result = compute_schedule(inp)
    by_printer = defaultdict(list)
    for plate in result.plates:
        by_printer[plate.printer].append(plate)
    for plates in by_printer.values():
        plates.sort(key=lambda p: p.start)
        for earlier, later in itertools.pairwise(plates):
            assert earlier.end <= earlier.clear <= later.start


@PROPERTY_SETTINGS
@given(scenarios())
def test_plates_go_only_to_eligible_printers_and_every_unit_is_placed_once(inp: ScheduleInput) -> None:
    result = compute_schedule(inp)
    printers = {p.name: p for p in inp.printers}
    placed: dict[str, int] = defaultdict(int)
    for plate in result.plates:
        assert eligibility_problem(inp.profiles[plate.profile], printers[plate.printer]) is None
        assert sum(u for _, u in plate.allocations) <= inp.profiles[plate.profile].units_per_plate
        for job_id, units in plate.allocations:
            placed[job_id] += units
    for j in inp.jobs:
        eligible = [p for p in inp.printers if eligibility_problem(inp.profiles[j.profile], p) is None]
        expected = j.quantity if j.state is not JobState.HELD and eligible else 0
        assert placed[j.job_id] == expected
        assert bool(result.jobs[j.job_id].problem) == (expected == 0)


@PROPERTY_SETTINGS
@given(scenarios())
def test_every_start_falls_in_staffed_hours(inp: ScheduleInput) -> None:
    result = compute_schedule(inp)
    for plate in result.plates:
        assert is_staffed_locally(plate.start, inp.settings.hours), plate
        assert plate.clear >= plate.end
        assert is_staffed_locally(plate.clear, inp.settings.hours) or plate.clear == plate.end
        assert plate.start >= inp.now - timedelta(seconds=1)


def _due_key(pack_by: datetime | None) -> float:
    return math.inf if pack_by is None else pack_by.timestamp()


@PROPERTY_SETTINGS
@given(scenarios())
def test_queue_order_pins_then_priority_then_edd(inp: ScheduleInput) -> None:
    result = compute_schedule(inp)
    jobs = {j.job_id: j for j in inp.jobs}
    sequence = [jobs[jid] for jid in result.sequence]
    assert result.sequence == tuple(queue_order(inp))
    pinned = [j for j in sequence if j.pin is not None]
    assert sequence[: len(pinned)] == pinned
    assert [j.pin for j in pinned] == sorted(j.pin for j in pinned if j.pin is not None)
    unpinned = sequence[len(pinned) :]
    for a, b in itertools.pairwise(unpinned):
        assert a.priority.rank <= b.priority.rank
        if a.priority is b.priority:
            assert _due_key(result.jobs[a.job_id].pack_by) <= _due_key(result.jobs[b.job_id].pack_by)


@PROPERTY_SETTINGS
@given(scenarios(lookahead=False))
def test_plates_sharing_printers_start_in_list_order(inp: ScheduleInput) -> None:
    """Without the shift-end heuristic, EDD order holds in time: earlier due never starts later."""
    result = compute_schedule(inp)

    def eligible(profile_name: str) -> frozenset[str]:
        profile = inp.profiles[profile_name]
        return frozenset(p.name for p in inp.printers if eligibility_problem(profile, p) is None)

    groups: dict[frozenset[str], list[datetime]] = defaultdict(list)
    for plate in result.plates:  # placed plates come out in list order
        groups[eligible(plate.profile)].append(plate.start)
    for starts in groups.values():
        assert starts == sorted(starts)


@PROPERTY_SETTINGS
@given(scenarios())
def test_lateness_and_slack_follow_from_ready_and_pack_by(inp: ScheduleInput) -> None:
    result = compute_schedule(inp)
    clears: dict[str, datetime] = {}
    for plate in result.plates:
        for job_id, _ in plate.allocations:
            clears[job_id] = max(clears.get(job_id, plate.clear), plate.clear)
    one_second = timedelta(seconds=1)
    for summary in result.orders.values():
        if summary.ready_at is None:
            assert summary.blocked or not any(jid in clears for jid in summary.job_ids)
            continue
        assert summary.ready_at == max(clears[jid] for jid in summary.job_ids)
        if summary.pack_by is None:
            assert summary.slack is None and not summary.late
            continue
        assert summary.slack is not None
        assert abs(summary.slack - (summary.pack_by - summary.ready_at)) <= one_second
        expected_lateness = max(timedelta(0), summary.ready_at - summary.pack_by)
        assert abs(summary.lateness - expected_lateness) <= one_second
        assert summary.late == (summary.slack < timedelta(0))
        ship_by = min(j.due for j in inp.jobs if j.job_id in summary.job_ids and j.due is not None)
        assert summary.ship_by == ship_by
        buffer = timedelta(minutes=inp.settings.packing_buffer_minutes)
        if inp.settings.hours.always:
            assert abs(summary.pack_by - (ship_by - buffer)) <= one_second
        else:
            assert summary.pack_by <= ship_by - buffer + one_second


# ---------------------------------------------------------------------------
# Worked examples

DRAGON = Profile(name="dragon", material="PLA", minutes_per_unit=60, units_per_plate=1)
LONG = Profile(name="long", material="PLA", minutes_per_unit=14 * 60, units_per_plate=1)


def office_settings(**overrides: float) -> ScheduleSettings:
    values: dict[str, float] = {"packing_buffer_minutes": 0, "changeover_minutes": 0}
    values.update(overrides)
    return ScheduleSettings(hours=OFFICE, **values)  # type: ignore[arg-type]


def test_next_start_waits_for_staff_after_a_plate_ends_at_night() -> None:
    # A 9-hour plate started at 16:00 ends at 01:00; nobody clears it until 08:00.
    nine_hours = Profile(name="nine", material="PLA", minutes_per_unit=540, units_per_plate=1)
    jobs = [
        job(1, nine_hours, due=MONDAY_8AM + timedelta(days=5)),
        job(2, DRAGON, due=MONDAY_8AM + timedelta(days=6)),
    ]
    now = MONDAY_8AM + timedelta(hours=8)  # Monday 16:00 London
    result = compute_schedule(
        schedule_input(
            jobs,
            [printer("p1")],
            [nine_hours, DRAGON],
            now=now,
            settings=office_settings(changeover_minutes=10, shift_end_lookahead=0),
        )
    )
    first, second = result.plates
    assert first.start == now
    assert first.end == datetime(2026, 11, 3, 1, 0, tzinfo=UTC)
    assert first.clear == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
    assert second.start == datetime(2026, 11, 3, 8, 10, tzinfo=UTC)


def test_nothing_starts_before_the_shift_or_at_the_weekend() -> None:
    saturday = datetime(2026, 11, 7, 10, 0, tzinfo=UTC)
    result = compute_schedule(
        schedule_input([job(1, DRAGON)], [printer("p1")], [DRAGON], now=saturday, settings=office_settings())
    )
    assert result.plates[0].start == datetime(2026, 11, 9, 8, 0, tzinfo=UTC)  # Monday 08:00


def test_long_plate_starts_at_shift_end_and_short_ones_run_during_the_day() -> None:
    long_job = job(0, LONG, due=MONDAY_8AM + timedelta(days=3))
    shorts = [job(n, DRAGON, due=MONDAY_8AM + timedelta(days=4)) for n in range(1, 9)]
    inp = schedule_input([long_job, *shorts], [printer("p1")], [LONG, DRAGON], settings=office_settings())
    result = compute_schedule(inp)
    long_plate = next(p for p in result.plates if p.profile == "long")
    assert long_plate.start == MONDAY_8AM + timedelta(hours=8)  # 16:00, after eight one-hour plates
    assert all(p.end <= long_plate.start for p in result.plates if p.profile == "dragon")
    assert result.jobs[long_job.job_id].ready_at == datetime(2026, 11, 3, 8, 0, tzinfo=UTC)

    # The plain list order would start the long plate first and leave the printer idle all night.
    plain = compute_schedule(
        schedule_input(
            [long_job, *shorts],
            [printer("p1")],
            [LONG, DRAGON],
            settings=office_settings(shift_end_lookahead=0),
        )
    )
    assert plain.plates[0].profile == "long"
    assert max(p.clear for p in plain.plates) > max(p.clear for p in result.plates)


def test_shift_end_heuristic_never_makes_the_long_plate_late() -> None:
    urgent_long = job(0, LONG, due=MONDAY_8AM + timedelta(hours=30))  # must start now to make Tuesday 14:00
    shorts = [job(n, DRAGON, due=MONDAY_8AM + timedelta(days=4)) for n in range(1, 4)]
    result = compute_schedule(
        schedule_input([urgent_long, *shorts], [printer("p1")], [LONG, DRAGON], settings=office_settings())
    )
    assert result.plates[0].profile == "long"
    assert result.plates[0].start == MONDAY_8AM


def test_pack_by_counts_the_buffer_in_staffed_time() -> None:
    monday_9am_ship_by = datetime(2026, 11, 9, 9, 0, tzinfo=UTC)
    result = compute_schedule(
        schedule_input(
            [job(1, DRAGON, due=monday_9am_ship_by)],
            [printer("p1")],
            [DRAGON],
            settings=office_settings(packing_buffer_minutes=120),
        )
    )
    # One staffed hour on Monday morning, the other on Friday afternoon.
    assert result.jobs["etsy:o1:1"].pack_by == datetime(2026, 11, 6, 17, 0, tzinfo=UTC)


def test_late_orders_are_flagged_and_overload_names_the_worst() -> None:
    jobs = [job(n, DRAGON, 10, due=MONDAY_8AM + timedelta(hours=3), order=f"rush{n}") for n in range(6)]
    result = compute_schedule(
        schedule_input(
            jobs,
            [printer("p1")],
            [DRAGON],
            settings=ScheduleSettings(
                hours=StaffedHours.around_the_clock(),
                packing_buffer_minutes=0,
                changeover_minutes=0,
                overload_warn_count=3,
            ),
        )
    )
    late = result.late_orders()
    assert len(late) == 6 and all(o.late and o.late_risk for o in late)
    assert late[0].lateness >= late[-1].lateness
    assert result.warnings[0].startswith("6 order(s) are projected to miss their pack-by time")
    assert len(result.warnings) == 1 + 3
    assert late[0].order_key in result.warnings[1]


def test_ineligible_jobs_are_reported_not_scheduled() -> None:
    petg_06 = Profile(name="petg06", material="PETG", minutes_per_unit=30, units_per_plate=1, nozzle=0.6)
    result = compute_schedule(schedule_input([job(1, petg_06)], [printer("p1", ("PLA",))], [petg_06]))
    assert result.plates == ()
    assert "does not print PETG" in result.jobs["etsy:o1:1"].problem
    assert any("cannot be scheduled" in w and "printers.toml" in w for w in result.warnings)


def test_learned_ratio_stretches_the_plate_on_that_model_only() -> None:
    inp = schedule_input(
        [job(1, DRAGON, sku="PRT-DRG")],
        [printer("p1", model="MK4S")],
        [DRAGON],
        ratios={ratio_key("PRT-DRG", "MK4S"): 1.5, ratio_key("PRT-DRG", "X1C"): 0.5},
    )
    result = compute_schedule(inp)
    summary = result.jobs["etsy:o1:1"]
    assert summary.estimate_minutes == 60
    assert summary.expected_minutes == 90
    assert summary.learned
    assert result.plates[0].end - result.plates[0].start == timedelta(minutes=90)


def test_running_plate_blocks_its_printer_and_counts_for_the_job() -> None:
    started = MONDAY_8AM - timedelta(minutes=30)
    run = PlateRun(
        run_id="r1",
        printer="p1",
        printer_model="MK4S",
        profile="dragon",
        allocations={"etsy:o1:1": 1},
        sku_estimates={"SKU": 60},
        expected_minutes=60,
        started_at=started,
    )
    running_job = job(1, DRAGON, 2, state=JobState.PRINTING)
    result = compute_schedule(schedule_input([running_job], [printer("p1")], [DRAGON], running=[run]))
    running, queued = result.plates
    assert running.running and running.end == MONDAY_8AM + timedelta(minutes=30)
    assert queued.start == running.clear + timedelta(minutes=ScheduleSettings().changeover_minutes)
    assert result.jobs[running_job.job_id].plates == 2


def test_batch_profile_shares_plates_across_orders() -> None:
    clips = Profile(name="clips", material="PETG", minutes_per_unit=10, units_per_plate=12, batch=True)
    jobs = [job(n, clips, 5, order=f"o{n}", due=MONDAY_8AM + timedelta(days=n)) for n in range(1, 4)]
    result = compute_schedule(schedule_input(jobs, [printer("p1")], [clips]))
    assert [sum(u for _, u in p.allocations) for p in result.plates] == [12, 3]
    assert result.plates[0].allocations == (("etsy:o1:1", 5), ("etsy:o2:2", 5), ("etsy:o3:3", 2))


def test_units_printable_before_follows_staffed_hours() -> None:
    # Free from Monday 08:00; two-hour plates of 2 units; deadline Monday 18:00:
    # plates clear at 10, 12, 14, 16, 18 -> the one ending 18:00 clears only on Tuesday.
    two_hours = Profile(name="two", material="PLA", minutes_per_unit=60, units_per_plate=2)
    inp = schedule_input(
        [], [printer("p1"), printer("p2", ("PETG",))], [two_hours], settings=office_settings()
    )
    result = compute_schedule(inp)
    units = units_printable_before(inp, result, two_hours, "SKU", MONDAY_8AM + timedelta(hours=10))
    assert units == 4 * 2


def test_a_thousand_jobs_schedule_completely() -> None:
    """Speed is measured in bench/schedule.py; here: a large queue is placed whole and consistently."""
    profiles = [
        Profile(
            name=f"prof{i}",
            material=("PLA", "PETG")[i % 2],
            minutes_per_unit=30 + 40 * i,
            units_per_plate=1 + i % 3,
        )
        for i in range(6)
    ]
    printers = [printer(f"p{i}", materials=(("PLA", "PETG"), ("PLA",), ("PETG",))[i % 3]) for i in range(10)]
    jobs = [
        job(n, profiles[n % 6], 1 + n % 4, due=MONDAY_8AM + timedelta(hours=n % 300), order=f"o{n // 2}")
        for n in range(1000)
    ]
    inp = schedule_input(jobs, printers, profiles, settings=office_settings())
    result = compute_schedule(inp)
    assert len(result.sequence) == 1000
    assert compute_schedule(inp).sequence == result.sequence  # deterministic
