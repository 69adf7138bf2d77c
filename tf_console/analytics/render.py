"""The report as JSON objects, CSV rows and a plain-text table."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tf_console.analytics.report import ApiStats, PlatformDay, ProductionStats, Report


def _hours(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def money_text(amounts: Mapping[str, Decimal]) -> str:
    return ", ".join(f"{amount:f} {currency}" for currency, amount in sorted(amounts.items())) or "—"


def row_object(row: PlatformDay) -> dict[str, Any]:
    return {
        "platform": row.platform.value,
        "day": row.day.isoformat() if row.day is not None else None,
        "orders": row.orders,
        "units": row.units,
        "cancelled": row.cancelled,
        "buyer_paid": {c: format(a, "f") for c, a in sorted(row.buyer_paid.items())},
        "proceeds": {c: format(a, "f") for c, a in sorted(row.proceeds.items())},
        "ship_time_avg_hours": _hours(row.avg_ship_hours),
        "ship_time_p90_hours": _hours(row.p90_ship_hours),
        "shipped_with_time": row.shipped_with_time,
        "shipped_without_time": row.shipped_without_time,
        "late_shipments": row.late_shipments,
        "overdue": row.overdue,
    }


def production_object(stats: ProductionStats) -> dict[str, Any]:
    return {
        "queued_hours": stats.queued_hours,
        "printers": stats.printers,
        "capacity_hours_per_day": stats.capacity_hours_per_day,
        "days_of_work": _hours(stats.days_of_work),
        "forecast": [
            {
                "day": d.day.isoformat(),
                "scheduled_hours": d.scheduled_hours,
                "capacity_hours": d.capacity_hours,
            }
            for d in stats.forecast
        ],
        "estimate_ratio": None if stats.estimate_ratio is None else round(stats.estimate_ratio, 3),
        "learned_runs": stats.learned_runs,
        "plates_printed": stats.plates_printed,
        "plates_failed": stats.plates_failed,
        "late_orders": stats.late_orders,
    }


def api_object(stats: ApiStats) -> dict[str, Any]:
    rate = stats.success_rate
    return {
        "platform": stats.platform.value,
        "calls": stats.calls,
        "ok": stats.ok,
        "success_rate": None if rate is None else round(rate, 4),
        "throttled": stats.throttled,
        "errors": [{"message": message, "count": count} for message, count in stats.errors],
    }


def report_object(report: Report) -> dict[str, Any]:
    return {
        "generated_at": report.generated_at.isoformat(),
        "days": report.days,
        "timezone": report.timezone,
        "from": report.first_day.isoformat(),
        "to": report.last_day.isoformat(),
        "rows": [row_object(r) for r in report.rows],
        "totals": [row_object(t) for t in report.totals],
        "production": production_object(report.production) if report.production is not None else None,
        "api": [api_object(a) for a in report.api],
    }


def to_json(report: Report) -> str:
    return json.dumps(report_object(report), indent=2, ensure_ascii=False)


def to_csv(report: Report) -> str:
    """One line per platform and day; a money column per currency seen."""
    paid = sorted({c for r in report.rows for c in r.buyer_paid})
    proceeds = sorted({c for r in report.rows for c in r.proceeds})
    header = [
        "platform",
        "day",
        "orders",
        "units",
        "cancelled",
        *(f"buyer_paid_{c}" for c in paid),
        *(f"proceeds_{c}" for c in proceeds),
        "ship_time_avg_hours",
        "ship_time_p90_hours",
        "shipped_with_time",
        "shipped_without_time",
        "late_shipments",
        "overdue",
    ]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in report.rows:
        obj = row_object(row)
        writer.writerow(
            [
                obj["platform"],
                obj["day"],
                obj["orders"],
                obj["units"],
                obj["cancelled"],
                *(obj["buyer_paid"].get(c, "0") for c in paid),
                *(obj["proceeds"].get(c, "0") for c in proceeds),
                "" if obj["ship_time_avg_hours"] is None else obj["ship_time_avg_hours"],
                "" if obj["ship_time_p90_hours"] is None else obj["ship_time_p90_hours"],
                obj["shipped_with_time"],
                obj["shipped_without_time"],
                obj["late_shipments"],
                obj["overdue"],
            ]
        )
    return out.getvalue()


def _cell(value: float | None, unit: str = "") -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    out = [line, "  ".join("─" * w for w in widths)]
    out.extend("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)
    return out


def _order_cells(row: PlatformDay, label: str) -> list[str]:
    return [
        label,
        str(row.orders),
        str(row.units),
        money_text(row.buyer_paid),
        money_text(row.proceeds),
        _cell(row.avg_ship_hours),
        _cell(row.p90_ship_hours),
        str(row.late_shipments),
        str(row.overdue),
        str(row.cancelled),
    ]


def _production_lines(production: ProductionStats) -> list[str]:
    if production.printers == 0:
        return [
            f"Production: {production.queued_hours:.1f} h of printing queued, but no printer is enabled "
            "(printers.toml), so there is no capacity to compare with."
        ]
    work = production.days_of_work
    lines = [
        f"Production: {production.queued_hours:.1f} h of printing queued on {production.printers} "
        f"printer(s) ({production.capacity_hours_per_day:.0f} printer-hours a day"
        + (f", {work:.1f} day(s) of work)" if work is not None else ")")
        + f"; {production.late_orders} order(s) projected late."
    ]
    if production.estimate_ratio is not None:
        lines.append(
            f"Estimate accuracy: prints take {production.estimate_ratio:.2f}× the slicer estimate "
            f"(learned over {production.learned_runs} plate(s))."
        )
    lines.append(
        f"Plates in the window: {production.plates_printed} printed, {production.plates_failed} failed."
    )
    lines.extend(
        _table(
            ["day", "scheduled h", "capacity h"],
            [
                [str(d.day), f"{d.scheduled_hours:.1f}", f"{d.capacity_hours:.0f}"]
                for d in production.forecast
            ],
        )
    )
    return lines


ORDER_HEADER = [
    "",
    "orders",
    "units",
    "buyer paid",
    "proceeds",
    "avg h",
    "p90 h",
    "late",
    "overdue",
    "cancel",
]


def to_table(report: Report) -> str:
    lines = [
        f"Report {report.first_day} to {report.last_day} ({report.days} day(s), {report.timezone}); "
        "buyer paid = eBay/Etsy totals, proceeds = Amazon's; ship hours from order to shipment."
    ]
    if not report.rows:
        lines.append("No orders were placed in this window.")
    for total in report.totals:
        lines.append("")
        lines.append(f"{total.platform.label}")
        rows = [_order_cells(r, str(r.day)) for r in report.series(total.platform)]
        rows.append(_order_cells(total, "total"))
        lines.extend(_table(ORDER_HEADER, rows))
        if total.shipped_without_time:
            lines.append(
                f"{total.shipped_without_time} shipped order(s) have no ship time here "
                "(shipped on the marketplace's site)."
            )
    production = report.production
    if production is not None:
        lines.append("")
        lines.extend(_production_lines(production))
    if report.api:
        lines.append("")
        lines.append("API")
        rows = []
        for api in report.api:
            rate = api.success_rate
            rows.append(
                [
                    api.platform.label,
                    str(api.calls),
                    "—" if rate is None else f"{rate:.1%}",
                    str(api.throttled),
                    "; ".join(f"{m} (×{n})" for m, n in api.errors[:2]) or "—",
                ]
            )
        lines.extend(_table(["", "calls", "success", "429s", "most frequent errors"], rows))
    return "\n".join(lines) + "\n"
