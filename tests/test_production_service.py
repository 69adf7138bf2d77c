"""ProductionService: jobs from orders, queue operations, plates and learning."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from tests.production_fakes import CATALOG_TOML, MONDAY_8AM, PRINTERS_TOML, Repos, line, make_service, order
from tf_console.clock import FakeClock
from tf_console.models import FulfilledBy, ItemKind, JobState, OrderStatus, Platform, Priority
from tf_console.production.errors import ProductionError
from tf_console.production.service import AWAITING_PAYMENT, CANCEL_REQUESTED, ProductionService

OFFICE_PRINTERS = PRINTERS_TOML.replace('staffed_hours = "always"', 'staffed_hours = "08:00-18:00"')


# ---------------------------------------------------------------------------
# Jobs from orders


def test_one_job_per_printed_line_and_repeated_polls_change_nothing(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    orders = [
        order(
            "1001",
            line("a", "PRT-DRG-RED", 3, personalisation="For Ana"),
            line("b", "STK-NOZ-04"),
            line("c", "MYSTERY", title="Unknown gadget"),
        ),
        order("1002", line("a", "PRT-CLIP", 4), platform=Platform.EBAY),
    ]
    change = service.sync_orders(orders)
    assert change.created == ("etsy:1001:a", "ebay:1002:a")
    job = repos.jobs.get("etsy:1001:a")
    assert job is not None
    assert (job.quantity, job.plates, job.profile, job.state) == (3, 2, "dragon", JobState.QUEUED)
    assert job.personalisation == "For Ana"
    assert job.due == orders[0].ship_by

    writes = repos.jobs.writes
    for _ in range(3):
        again = service.sync_orders(orders)
        assert not again.changed
    assert repos.jobs.writes == writes
    assert len(repos.jobs.all()) == 2


def test_classify_order_records_kind_and_rule(tmp_path: Path) -> None:
    service, _, _ = make_service(tmp_path)
    classified = service.classify_order(
        order("1", line("a", "PRT-DRG-X"), line("b", "STK-1"), line("c", "", title="no sku"))
    )
    kinds = [(i.kind, i.kind_rule) for i in classified.items]
    assert kinds == [
        (ItemKind.PRINT, "rule 1: glob PRT-DRG-*"),
        (ItemKind.STOCK, "rule 4: prefix STK-"),
        (ItemKind.UNKNOWN, "no catalog rule matched"),
    ]
    assert service.classify_order(classified) is classified


@pytest.mark.parametrize(
    "extra",
    [
        {"fulfilled_by": FulfilledBy.MARKETPLACE},
        {"status": OrderStatus.CANCELLED},
        {"cancel_requested": True},
        {"status": OrderStatus.SHIPPED},
    ],
)
def test_no_job_for_fba_cancelled_cancel_requested_or_shipped_orders(
    tmp_path: Path, extra: dict[str, object]
) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1")).model_copy(update=extra)])
    assert repos.jobs.all() == []


def test_unpaid_order_is_held_until_paid(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1"), status=OrderStatus.PENDING)])
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.HELD and job.flag == AWAITING_PAYMENT
    assert service.schedule().jobs[job.job_id].problem == "held"

    service.sync_orders([order("1", line("a", "PRT-DRG-1"))])
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.QUEUED and job.flag == ""


def test_quantity_change_adjusts_the_queued_job(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 3))])
    change = service.sync_orders([order("1", line("a", "PRT-DRG-1", 5))])
    assert change.updated == ("etsy:1:a",)
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and (job.quantity, job.plates) == (5, 3)
    assert "quantity 3 → 5" in job.history[-1]
    assert sum(u for p in service.schedule().plates for _, u in p.allocations) == 5


def test_cancellation_withdraws_queued_jobs_and_flags_a_printing_plate(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 2), line("b", "PRT-CLIP", 3))])
    service.start("1:a", "p1")

    change = service.sync_orders(
        [order("1", line("a", "PRT-DRG-1", 2), line("b", "PRT-CLIP", 3), status=OrderStatus.CANCELLED)]
    )
    assert change.withdrawn == ("etsy:1:b",)
    assert change.flagged == ("etsy:1:a",)
    queued = repos.jobs.get("etsy:1:b")
    printing = repos.jobs.get("etsy:1:a")
    assert queued is not None and queued.state is JobState.WITHDRAWN and queued.flag == "order cancelled"
    assert printing is not None and printing.state is JobState.PRINTING
    assert printing.quantity == 0 and "while a plate is printing" in printing.flag
    assert not service.sync_orders(
        [order("1", line("a", "PRT-DRG-1", 2), status=OrderStatus.CANCELLED)]
    ).changed

    service.mark_printed("1:a")
    done = repos.jobs.get("etsy:1:a")
    assert done is not None and done.state is JobState.WITHDRAWN and "2 units printed are spare" in done.flag


def test_removed_line_and_reclassified_item_are_withdrawn_and_can_return(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1"), line("b", "PRT-DRG-2"))])
    change = service.sync_orders([order("1", line("a", "PRT-DRG-1"))])
    assert change.withdrawn == ("etsy:1:b",)
    assert repos.jobs.get("etsy:1:b").flag == "the line was removed from the order"  # type: ignore[union-attr]

    stock_rule = '[[rules]]\nsku = "PRT-DRG-1"\nkind = "stock"\n\n'
    (tmp_path / "catalog.toml").write_text(
        CATALOG_TOML.replace("[[rules]]\nglob", stock_rule + "[[rules]]\nglob", 1)
    )
    change = service.sync_orders([order("1", line("a", "PRT-DRG-1"))])
    assert change.withdrawn == ("etsy:1:a",)
    assert "now classified stock" in repos.jobs.get("etsy:1:a").flag  # type: ignore[union-attr]

    (tmp_path / "catalog.toml").write_text(CATALOG_TOML + "\n# back to normal\n")
    change = service.sync_orders([order("1", line("a", "PRT-DRG-1"))])
    job = repos.jobs.get("etsy:1:a")
    assert change.updated == ("etsy:1:a",)
    assert job is not None and job.state is JobState.QUEUED and job.flag == ""


def test_shipped_order_packs_printed_jobs_and_withdraws_unprinted_ones(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    lines = [line("a", "PRT-DRG-1", 1), line("b", "PRT-DRG-2", 1)]
    service.sync_orders([order("1", *lines)])
    service.start("1:a", "p1")
    service.mark_printed("1:a")
    service.sync_orders([order("1", *lines, status=OrderStatus.SHIPPED)])
    assert repos.jobs.get("etsy:1:a").state is JobState.PACKED  # type: ignore[union-attr]
    unprinted = repos.jobs.get("etsy:1:b")
    assert unprinted is not None and unprinted.state is JobState.WITHDRAWN
    assert unprinted.flag == "order shipped before it was printed"


def test_buyer_cancel_request_holds_the_job_until_it_is_resolved(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1"))])
    service.sync_orders([order("1", line("a", "PRT-DRG-1"), cancel_requested=True)])
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.HELD and job.flag == CANCEL_REQUESTED
    service.sync_orders([order("1", line("a", "PRT-DRG-1"))])
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.QUEUED and job.flag == ""


def test_personalisation_follows_the_order_and_a_late_change_is_flagged(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", personalisation="Ana"))])
    service.sync_orders([order("1", line("a", "PRT-DRG-1", personalisation="Anna"))])
    assert repos.jobs.get("etsy:1:a").personalisation == "Anna"  # type: ignore[union-attr]
    service.start("1:a", "p1")
    change = service.sync_orders([order("1", line("a", "PRT-DRG-1", personalisation="Hanna"))])
    assert change.flagged == ("etsy:1:a",)
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and "personalisation changed after printing started" in job.flag
    assert all("Hanna" not in entry for entry in job.history)


def test_units_shipped_before_the_job_existed_count_as_done(tmp_path: Path) -> None:
    service, _repos, _ = make_service(tmp_path)
    service.sync_orders(
        [order("1", line("a", "PRT-DRG-1", 3, shipped=2), status=OrderStatus.PARTIALLY_SHIPPED)]
    )
    schedule = service.schedule()
    assert sum(u for p in schedule.plates for _, u in p.allocations) == 1
    assert not service.sync_orders(
        [order("1", line("a", "PRT-DRG-1", 3, shipped=2), status=OrderStatus.PARTIALLY_SHIPPED)]
    ).changed


# ---------------------------------------------------------------------------
# Batching


def test_batch_plate_mixes_orders_and_a_cancellation_takes_its_units_out(tmp_path: Path) -> None:
    service, _, _ = make_service(tmp_path)
    first = order("1", line("a", "PRT-CLIP", 5))
    second = order("2", line("a", "PRT-CLIP", 4))
    service.sync_orders([first, second])
    plates = service.schedule().plates
    assert len(plates) == 1 and dict(plates[0].allocations) == {"etsy:1:a": 5, "etsy:2:a": 4}

    service.sync_orders([second.model_copy(update={"status": OrderStatus.CANCELLED})])
    plates = service.schedule().plates
    assert len(plates) == 1 and dict(plates[0].allocations) == {"etsy:1:a": 5}


def test_starting_a_batch_job_puts_the_other_orders_on_the_same_plate(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-CLIP", 5)), order("2", line("a", "PRT-CLIP", 4))])
    run = service.start("2:a", "p1")
    assert run.allocations == {"etsy:2:a": 4, "etsy:1:a": 5}
    assert {j.state for j in repos.jobs.all()} == {JobState.PRINTING}
    service.mark_printed("1:a")
    assert {j.state for j in repos.jobs.all()} == {JobState.PRINTED}


# ---------------------------------------------------------------------------
# Queue operations


def _three_jobs(tmp_path: Path) -> tuple[ProductionService, Repos, FakeClock]:
    service, repos, clock = make_service(tmp_path)
    service.sync_orders(
        [
            order(name, line("a", "PRT-DRG-1"), ship_by=MONDAY_8AM + timedelta(days=day))
            for name, day in (("A", 1), ("B", 2), ("C", 3))
        ]
    )
    return service, repos, clock


def test_move_up_pins_the_jobs_above_and_unpin_restores_the_natural_order(tmp_path: Path) -> None:
    service, repos, _ = _three_jobs(tmp_path)
    assert service.sequence() == ["etsy:A:a", "etsy:B:a", "etsy:C:a"]
    assert service.move("C:a", "up") == ["etsy:A:a", "etsy:C:a", "etsy:B:a"]
    assert service.sequence() == ["etsy:A:a", "etsy:C:a", "etsy:B:a"]
    assert {j.job_id: j.pin for j in repos.jobs.all()} == {"etsy:A:a": 1, "etsy:C:a": 2, "etsy:B:a": None}

    assert service.move("C:a", "top") == ["etsy:C:a", "etsy:A:a", "etsy:B:a"]
    assert service.move("B:a", "down") == ["etsy:C:a", "etsy:A:a", "etsy:B:a"]  # already last
    assert service.move("C:a", "down") == ["etsy:A:a", "etsy:C:a", "etsy:B:a"]
    for ref in ("A:a", "C:a"):
        service.unpin(ref)
    assert service.sequence() == ["etsy:A:a", "etsy:B:a", "etsy:C:a"]
    assert service.schedule().sequence == tuple(service.sequence())


def test_priority_then_due_decides_among_unpinned_jobs(tmp_path: Path) -> None:
    service, _, _ = _three_jobs(tmp_path)
    service.set_priority("C:a", Priority.RUSH)
    service.set_priority("A:a", Priority.LOW)
    assert service.sequence() == ["etsy:C:a", "etsy:B:a", "etsy:A:a"]


def test_hold_release_and_their_refusals(tmp_path: Path) -> None:
    service, _, _ = _three_jobs(tmp_path)
    held = service.hold("B:a")
    assert held.state is JobState.HELD
    assert service.schedule().jobs["etsy:B:a"].problem == "held"
    with pytest.raises(ProductionError, match="held; release it first"):
        service.start("B:a", "p1")
    assert service.release("B:a").state is JobState.QUEUED
    with pytest.raises(ProductionError, match="not held"):
        service.release("B:a")
    service.start("A:a", "p1")
    with pytest.raises(ProductionError, match="is printing on p1"):
        service.hold("A:a")


def test_job_references_resolve_by_suffix_and_complain_when_ambiguous(tmp_path: Path) -> None:
    service, _, _ = _three_jobs(tmp_path)
    assert service.job("B:a").job_id == "etsy:B:a"
    with pytest.raises(ProductionError, match="matches several jobs"):
        service.job(":a")
    with pytest.raises(ProductionError, match="No job matches"):
        service.job("nope")


# ---------------------------------------------------------------------------
# Printing


def test_plates_move_a_job_through_its_states(tmp_path: Path) -> None:
    service, repos, _ = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 3))])  # two plates of two
    first = service.start("1:a")  # the schedule's printer
    assert first.printer in ("p1", "p2") and first.allocations == {"etsy:1:a": 2}
    second = service.start("1:a", "p2" if first.printer == "p1" else "p1")
    assert second.allocations == {"etsy:1:a": 1}
    with pytest.raises(ProductionError, match="already printed or printing"):
        service.start("1:a", "p1")
    with pytest.raises(ProductionError, match="say which with --printer"):
        service.mark_printed("1:a")

    service.mark_failed("1:a", printer=second.printer, reason="spaghetti")
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.PRINTING  # the other plate still runs
    service.mark_printed("1:a", printer=first.printer)
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.FAILED and job.flag.startswith("plate failed")
    assert "spaghetti" in job.flag
    assert sum(u for p in service.schedule().plates for _, u in p.allocations) == 1  # the reprint

    service.start("1:a", "p1")
    assert repos.jobs.get("etsy:1:a").flag == ""  # type: ignore[union-attr]
    service.mark_printed("1:a")
    job = repos.jobs.get("etsy:1:a")
    assert job is not None and job.state is JobState.PRINTED and job.plates_done == 2
    assert service.mark_packed("1:a").state is JobState.PACKED


def test_start_refuses_busy_ineligible_and_unknown_printers(tmp_path: Path) -> None:
    service, _, _ = make_service(tmp_path)
    service.sync_orders(
        [
            order("1", line("a", "PRT-DRG-1")),
            order("2", line("a", "PRT-DRG-2")),
            order("3", line("a", "PRT-VASE-1")),
        ]
    )
    service.start("1:a", "p1")
    with pytest.raises(ProductionError, match="still printing etsy:1:a"):
        service.start("2:a", "p1")
    with pytest.raises(ProductionError, match=r"vase-1 has a 0\.6 mm nozzle, not 0\.4 mm"):
        service.start("2:a", "vase-1")
    with pytest.raises(ProductionError, match="no printer 'p9'"):
        service.start("2:a", "p9")
    with pytest.raises(ProductionError, match="no plate printing"):
        service.mark_printed("2:a")


# ---------------------------------------------------------------------------
# Learning


def test_recorded_print_times_change_the_eta(tmp_path: Path) -> None:
    service, _, clock = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 2))])
    before = service.schedule().jobs["etsy:1:a"]
    assert before.expected_minutes == before.estimate_minutes == 240

    for n in range(3):
        service.sync_orders([order(f"r{n}", line("a", "PRT-DRG-1", 2))])
        service.start(f"r{n}:a", "p1")
        clock.advance(60)
        service.mark_printed(f"r{n}:a", minutes=360)  # 1.5 × the slicer's 240
    ratio = service.learned_ratio("PRT-DRG-1", "MK4S")
    assert ratio is not None and ratio.runs == 3 and ratio.ratio == pytest.approx(1.5)
    after = service.schedule().jobs["etsy:1:a"]
    assert after.estimate_minutes == 240
    assert after.expected_minutes == pytest.approx(360)
    assert after.learned


def test_a_plate_that_spanned_the_night_teaches_nothing_without_minutes(tmp_path: Path) -> None:
    service, repos, clock = make_service(
        tmp_path, printers=OFFICE_PRINTERS, start=MONDAY_8AM + timedelta(hours=9)
    )
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 2))])
    service.start("1:a", "p1")  # Monday 17:00
    clock.advance(16 * 3600)  # marked Tuesday 09:00
    service.mark_printed("1:a")
    assert service.learned_ratio("PRT-DRG-1", "MK4S") is None
    assert "not learned" in repos.jobs.get("etsy:1:a").history[-1]  # type: ignore[union-attr]


def test_a_wildly_off_time_is_treated_as_a_late_mark(tmp_path: Path) -> None:
    service, _, clock = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 2))])
    service.start("1:a", "p1")
    clock.advance(30 * 3600)
    service.mark_printed("1:a")
    assert service.learned_ratio("PRT-DRG-1", "MK4S") is None


# ---------------------------------------------------------------------------
# Catalog in force


def test_malformed_catalog_keeps_the_previous_one_in_force(tmp_path: Path) -> None:
    service, _, _ = make_service(tmp_path)
    assert service.classify_order(order("1", line("a", "PRT-CLIP"))).items[0].kind is ItemKind.PRINT
    (tmp_path / "catalog.toml").write_text(CATALOG_TOML.replace('sku = "PRT-CLIP"', 'sku = "PRT-CLIP'))
    assert service.classify_order(order("1", line("a", "PRT-CLIP"))).items[0].kind is ItemKind.PRINT
    error = service.catalog_source.error
    assert (
        error is not None and "catalog.toml, line 26" in error and "previous version stays in force" in error
    )


def test_prune_forgets_old_finished_jobs_but_keeps_learning(tmp_path: Path) -> None:
    service, repos, clock = make_service(tmp_path)
    service.sync_orders([order("1", line("a", "PRT-DRG-1", 2))])
    service.start("1:a", "p1")
    service.mark_printed("1:a", minutes=250)
    service.mark_packed("1:a")
    clock.advance(61 * 86400)
    assert service.prune_finished() == 1
    assert repos.jobs.all() == [] and repos.runs.all() == []
    assert service.learned_ratio("PRT-DRG-1", "MK4S") is not None
