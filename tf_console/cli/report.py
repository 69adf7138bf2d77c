"""``report --days N [--format table|json|csv]``: the owner's numbers (definitions in
:mod:`tf_console.analytics.report`)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tf_console.errors import UserError

FORMATS = ("table", "json", "csv")
MAX_DAYS = 3660


def register(sub: Any) -> None:
    r = sub.add_parser(
        "report", help="orders, units, money, time to ship, production and API numbers per platform and day"
    )
    r.add_argument("--days", type=int, default=7, help="how many days back, today included (default 7)")
    r.add_argument("--format", choices=FORMATS, default="table")
    r.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from tf_console.analytics import AnalyticsService
    from tf_console.analytics.render import to_csv, to_json, to_table
    from tf_console.context import AppContext
    from tf_console.production.service import ProductionService

    if not 1 <= args.days <= MAX_DAYS:
        raise UserError(f"--days must be between 1 and {MAX_DAYS}.")
    ctx = AppContext.load(args.data_dir)
    store = ctx.open_store()
    try:
        production = ProductionService.open(
            store, ctx.data_dir, timezone=ctx.settings.timezone, clock=ctx.clock
        )
        service = AnalyticsService(store, ctx.clock, timezone=ctx.settings.timezone, production=production)
        report = service.report(args.days)
    finally:
        store.close()
    render = {"table": to_table, "json": to_json, "csv": to_csv}[args.format]
    text = render(report)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0
