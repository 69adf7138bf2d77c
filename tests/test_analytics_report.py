"""The report on a hand-computed shop: every number below was worked out by hand from the
fixture, in the shop's time zone (New York), not read back from the code."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tf_console.analytics import AnalyticsService, build_report, percentile
from tf_console.analytics.render import report_object, to_csv, to_json, to_table
from tf_console.analytics.report import production_numbers
from tf_console.cli import main
from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.models import (
    FulfilledBy,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentState,
)
from tf_console.production.hours import to_minutes
from tf_console.production.printers import Printer
from tf_console.production.records import PlateRun, PrintTimeRatio, RunState
from tf_console.production.scheduler import JobSchedule, OrderSchedule, PlacedPlate, Schedule
from tf_console.store import Store

NY = ZoneInfo("America/New_York")
NOW = datetime(2026, 11, 5, 15, 0, tzinfo=UTC)  # 10:00 in New York
A, E, T = Platform.AMAZON, Platform.EBAY, Platform.ETSY


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def make(
    platform: Platform,
    order_id: str,
    created: datetime,
    *,
    amount: str | None,
    currency: str = "USD",
    units: int = 1,
    status: OrderStatus = OrderStatus.SHIPPED,
    shipped_at: datetime | None = None,
    ship_by: datetime | None = None,
    fba: bool = False,
) -> Order:
    shipments = (
        [
            Shipment(
                shipment_id="1",
                carrier="UPS",
                tracking=f"1Z{order_id}",
                shipped_at=shipped_at,
                state=ShipmentState.CONFIRMED,
            )
        ]
        if shipped_at is not None
        else []
    )
    return Order(
        platform=platform,
        order_id=order_id,
        status=status,
        created_at=created,
        updated_at=created,
        ship_by=ship_by,
        total=Money(amount=Decimal(amount), currency=currency) if amount is not None else None,
        total_is_proceeds=platform is A,
        items=[LineItem(line_id="L1", sku="PRT-X", quantity=units)],
        shipments=shipments,
        fulfilled_by=FulfilledBy.MARKETPLACE if fba else FulfilledBy.MERCHANT,
    )


def fixture_orders() -> list[Order]:
    orders = [
        # Amazon: proceeds. A2 was placed at 22:00 New York time on 3 November (03:00 UTC on the 4th).
        make(A, "A1", at(3, 14), amount="30.00", units=2, shipped_at=at(4, 14), ship_by=at(4, 12)),
        make(A, "A2", at(4, 3), amount="10.00", shipped_at=at(4, 15), ship_by=at(5, 12)),
        make(A, "A3", at(4, 16), amount="20.00", fba=True),
        make(A, "A4", at(5, 13), amount=None, status=OrderStatus.PENDING),
        # eBay: what the buyer paid, in two currencies kept apart.
        make(
            E,
            "E1",
            at(4, 13),
            amount="15.50",
            currency="GBP",
            status=OrderStatus.UNSHIPPED,
            ship_by=at(5, 12),
        ),
        make(E, "E2", at(4, 20), amount="25.00", units=3),  # shipped on eBay's site: no ship time
        make(E, "E3", at(4, 21), amount="99.00", units=5, status=OrderStatus.CANCELLED),
        make(E, "E4", at(1, 12), amount="50.00"),  # before the window
    ]
    # Etsy: ten orders placed 21:00 New York time on the 4th, shipped after 1..10 hours.
    for n in range(1, 11):
        orders.append(
            make(
                T, f"T{n}", at(5, 1), amount="1.00", currency="EUR", shipped_at=at(5, 1) + timedelta(hours=n)
            )
        )
    return orders


def test_percentile_is_nearest_rank() -> None:
    assert percentile([], 0.9) is None
    assert percentile([5.0], 0.9) == 5.0
    assert percentile([float(n) for n in range(1, 11)], 0.9) == 9.0
    assert percentile([1.0, 2.0, 3.0], 0.9) == 3.0


def test_orders_money_and_ship_times_per_platform_and_day() -> None:
    report = build_report(fixture_orders(), now=NOW, days=3, tz=NY, timezone_name="America/New_York")
    assert (report.first_day, report.last_day) == (date(2026, 11, 3), date(2026, 11, 5))
    cells = {(r.platform, r.day): r for r in report.rows}
    assert len(report.rows) == 9  # three platforms, every day of the window

    a3 = cells[(A, date(2026, 11, 3))]
    assert (a3.orders, a3.units, a3.cancelled) == (2, 3, 0)
    assert a3.proceeds == {"USD": Decimal("40.00")} and a3.buyer_paid == {}
    assert (a3.avg_ship_hours, a3.p90_ship_hours, a3.late_shipments) == (18.0, 24.0, 1)
    a4 = cells[(A, date(2026, 11, 4))]
    assert (a4.orders, a4.units, a4.proceeds, a4.shipped_with_time) == (1, 1, {"USD": Decimal("20.00")}, 0)
    assert a4.shipped_without_time == 0  # FBA: Amazon ships it, so no ship time is expected
    a5 = cells[(A, date(2026, 11, 5))]
    assert (a5.orders, a5.units, a5.proceeds) == (1, 1, {})

    e4 = cells[(E, date(2026, 11, 4))]
    assert (e4.orders, e4.units, e4.cancelled, e4.overdue, e4.shipped_without_time) == (3, 4, 1, 1, 1)
    assert e4.buyer_paid == {"GBP": Decimal("15.50"), "USD": Decimal("25.00")} and e4.proceeds == {}
    assert e4.avg_ship_hours is None
    assert cells[(E, date(2026, 11, 3))].orders == 0 and cells[(E, date(2026, 11, 5))].orders == 0

    t4 = cells[(T, date(2026, 11, 4))]
    assert (t4.orders, t4.units, t4.buyer_paid) == (10, 10, {"EUR": Decimal("10.00")})
    assert (t4.avg_ship_hours, t4.p90_ship_hours, t4.late_shipments) == (5.5, 9.0, 0)

    totals = {t.platform: t for t in report.totals}
    assert [t.platform for t in report.totals] == [A, E, T]
    assert (totals[A].orders, totals[A].units, totals[A].proceeds) == (4, 5, {"USD": Decimal("60.00")})
    assert (totals[A].avg_ship_hours, totals[A].p90_ship_hours, totals[A].late_shipments) == (18.0, 24.0, 1)
    assert (totals[E].orders, totals[E].cancelled, totals[E].overdue) == (3, 1, 1)
    assert totals[T].p90_ship_hours == 9.0


def fixture_schedule() -> tuple[Schedule, list[Printer]]:
    jobs = {
        "j1": JobSchedule("j1", 1, expected_minutes=180.0),
        "j2": JobSchedule("j2", 2, expected_minutes=300.0),
    }
    # P1 prints 15:00–18:00 UTC today; P2 from 22:00 New York time (03:00 UTC) for 8 hours:
    # 2 hours on the 5th and 6 hours on the 6th, local time.
    plates = (
        PlacedPlate(
            "P1",
            "vase",
            (("j1", 1),),
            to_minutes(NOW),
            to_minutes(NOW + timedelta(hours=3)),
            to_minutes(NOW + timedelta(hours=3)),
            180.0,
            180.0,
        ),
        PlacedPlate(
            "P2",
            "vase",
            (("j2", 1),),
            to_minutes(at(6, 3)),
            to_minutes(at(6, 11)),
            to_minutes(at(6, 11)),
            300.0,
            480.0,
        ),
    )
    late = OrderSchedule("ebay:E1", ("j2",), at(5, 12), 0.0, 60.0, -60.0, True, True)
    on_time = OrderSchedule("amazon:A9", ("j1",), None, None, 10.0, None, False, False)
    schedule = Schedule(NOW, ("j1", "j2"), jobs, {"ebay:E1": late, "amazon:A9": on_time}, plates, {}, ())
    printers = [
        Printer("P1", "MK4", frozenset({"pla"}), (250, 210, 220), 0.4),
        Printer("P2", "MK4", frozenset({"pla"}), (250, 210, 220), 0.4),
        Printer("P3", "MK4", frozenset({"pla"}), (250, 210, 220), 0.4, enabled=False),
    ]
    return schedule, printers


def fixture_runs() -> list[PlateRun]:
    def run(run_id: str, finished: datetime | None, state: RunState) -> PlateRun:
        return PlateRun(run_id=run_id, printer="P1", started_at=at(1, 9), finished_at=finished, state=state)

    return [
        run("r1", at(4, 12), RunState.PRINTED),
        run("r2", at(5, 9), RunState.PRINTED),
        run("r3", at(3, 18), RunState.FAILED),
        run("r4", at(2, 12), RunState.PRINTED),  # before the window
        run("r5", None, RunState.PRINTING),
    ]


def test_production_queue_capacity_and_estimate_accuracy() -> None:
    schedule, printers = fixture_schedule()
    ratios = [
        PrintTimeRatio(
            sku="PRT-A", printer_model="MK4", runs=3, estimate_minutes=100.0, actual_minutes=120.0
        ),
        PrintTimeRatio(sku="PRT-B", printer_model="MK4", runs=2, estimate_minutes=50.0, actual_minutes=45.0),
        PrintTimeRatio(sku="PRT-C", printer_model="MK4"),  # nothing learned yet
    ]
    stats = production_numbers(schedule, printers, ratios, fixture_runs(), now=NOW, days=3, tz=NY)
    assert (stats.queued_hours, stats.printers, stats.capacity_hours_per_day) == (8.0, 2, 48.0)
    assert stats.days_of_work == pytest.approx(8.0 / 48.0)
    forecast = [(d.day, d.scheduled_hours, d.capacity_hours) for d in stats.forecast]
    assert forecast[:3] == [
        (date(2026, 11, 5), 5.0, 48.0),
        (date(2026, 11, 6), 6.0, 48.0),
        (date(2026, 11, 7), 0.0, 48.0),
    ]
    assert len(forecast) == 7
    assert stats.estimate_ratio == pytest.approx(165.0 / 150.0) and stats.learned_runs == 5
    assert (stats.plates_printed, stats.plates_failed, stats.late_orders) == (2, 1, 1)


def health_records() -> list[dict[str, Any]]:
    def rec(platform: str, when: datetime, ok: bool, **kw: Any) -> dict[str, Any]:
        return {"platform": platform, "at": when.isoformat(), "ok": ok, "kind": "call", "status": 200, **kw}

    return [
        rec("amazon", at(4, 10), True),
        rec("amazon", at(4, 11), True),
        rec("amazon", at(5, 9), True),
        rec("amazon", at(5, 10), False, status=429, error_code="QuotaExceeded", message="throttled"),
        rec("amazon", at(5, 10), True, kind="warning", message="restricted data withheld"),
        rec("ebay", at(3, 16), True),
        rec("ebay", at(4, 16), True),
        rec("ebay", at(4, 17), False, kind="note", status=None, message="order 1 could not be read"),
        rec("ebay", at(1, 12), False, error_code="931", message="token"),  # before the window
    ]


def test_api_success_rates_and_errors_from_the_health_log() -> None:
    report = build_report([], now=NOW, days=3, tz=NY, health=health_records())
    api = {a.platform: a for a in report.api}
    assert (api[A].calls, api[A].ok, api[A].success_rate, api[A].throttled) == (4, 3, 0.75, 1)
    assert api[A].errors == [("QuotaExceeded: throttled", 1)]
    assert (api[E].calls, api[E].ok, api[E].success_rate) == (2, 2, 1.0)
    assert api[E].errors == [("order 1 could not be read", 1)]
    assert report.rows == () and report.totals == ()


def full_report() -> Any:
    schedule, printers = fixture_schedule()
    stats = production_numbers(schedule, printers, [], fixture_runs(), now=NOW, days=3, tz=NY)
    return build_report(
        fixture_orders(),
        now=NOW,
        days=3,
        tz=NY,
        timezone_name="America/New_York",
        production=stats,
        health=health_records(),
    )


def test_json_csv_and_table_carry_the_same_numbers() -> None:
    report = full_report()
    data = json.loads(to_json(report))
    assert data == json.loads(json.dumps(report_object(report)))
    assert all({"platform", "orders"} <= set(row) for row in data["rows"] + data["totals"])
    amazon_total = next(t for t in data["totals"] if t["platform"] == "amazon")
    assert amazon_total["orders"] == 4 and amazon_total["proceeds"] == {"USD": "60.00"}
    assert amazon_total["buyer_paid"] == {} and amazon_total["ship_time_p90_hours"] == 24.0
    assert data["production"]["queued_hours"] == 8.0 and data["production"]["days_of_work"] == 0.2
    assert data["api"][0] == {
        "platform": "amazon",
        "calls": 4,
        "ok": 3,
        "success_rate": 0.75,
        "throttled": 1,
        "errors": [{"message": "QuotaExceeded: throttled", "count": 1}],
    }

    rows = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert len(rows) == 9
    ebay_4 = next(r for r in rows if r["platform"] == "ebay" and r["day"] == "2026-11-04")
    assert (ebay_4["orders"], ebay_4["buyer_paid_GBP"], ebay_4["buyer_paid_USD"]) == ("3", "15.50", "25.00")
    assert ebay_4["proceeds_USD"] == "0" and ebay_4["ship_time_avg_hours"] == ""

    table = to_table(report)
    assert "60.00 USD" in table and "15.50 GBP, 25.00 USD" in table
    assert "8.0 h of printing queued on 2 printer(s)" in table and "75.0%" in table


async def test_the_service_reads_the_store_and_the_health_log(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    store = Store.open(tmp_path / "data", FernetCipher(FernetCipher.generate_key()), clock=clock)
    try:
        store.orders.upsert_many(fixture_orders())
        for record in health_records():
            store.log("health").append(record)
        service = AnalyticsService(store, clock, timezone="America/New_York")
        report = await service.report_async(3)
    finally:
        store.close()
    assert report_object(report) == report_object(
        build_report(
            fixture_orders(),
            now=NOW,
            days=3,
            tz=NY,
            timezone_name="America/New_York",
            health=health_records(),
        )
    )


def test_report_command_prints_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data_dir = tmp_path / "state"
    ctx = AppContext.load(data_dir, cwd=tmp_path, use_keyring=False)
    now = datetime.now(UTC)
    store = ctx.open_store()
    try:
        store.orders.upsert_many(
            [
                make(E, "C1", now - timedelta(hours=1), amount="12.00", status=OrderStatus.UNSHIPPED),
                make(E, "C2", now - timedelta(hours=2), amount="8.00", status=OrderStatus.UNSHIPPED),
            ]
        )
    finally:
        store.close()
    assert main(["--data-dir", str(data_dir), "report", "--days", "2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    ebay = next(t for t in data["totals"] if t["platform"] == "ebay")
    assert ebay["orders"] == 2 and ebay["buyer_paid"] == {"USD": "20.00"}
    assert main(["--data-dir", str(data_dir), "report", "--days", "0"]) == 2
    assert "--days must be between" in capsys.readouterr().err
