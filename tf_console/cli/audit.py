"""``tf-console audit``: who did what, when — shipments, queue and catalog changes, credentials."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, tzinfo
from typing import Any, TextIO

from tf_console.audit import AuditEntry, AuditLog
from tf_console.errors import UserError

_SPAN = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$", re.IGNORECASE)
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "audit",
        help="print the audit trail: shipments, queue and catalog changes, credential changes",
        description="Print the audit trail, oldest first: time, operating-system user, action, target "
        "(an order, a print job, a SKU or a credential name), outcome and detail. It holds no secret "
        "and no buyer data.",
    )
    parser.add_argument(
        "--since",
        default="7d",
        help="how far back: 30m, 12h, 7d, 4w, a date such as 2026-11-01, or all (default: 7d)",
    )
    parser.add_argument(
        "--target",
        help="only entries about this order (platform:order_id, its print jobs included), SKU or credential",
    )
    parser.add_argument("--action", help="only this action or family of actions (ship, queue.move, creds…)")
    parser.add_argument("--limit", type=int, default=0, metavar="N", help="only the last N entries")
    parser.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    parser.set_defaults(func=cmd_audit)


def parse_since(text: str, now: datetime, tz: tzinfo) -> datetime | None:
    """``7d`` → seven days before ``now``; a date or date-time in the shop's time zone; ``all`` → None."""
    raw = text.strip()
    if raw.lower() == "all":
        return None
    span = _SPAN.match(raw)
    if span:
        amount, unit = int(span.group(1)), span.group(2).lower()
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise UserError(
            f"--since {text!r} is not understood: give a span such as 30m, 12h, 7d or 4w, "
            "a date such as 2026-11-01, or all."
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)


def render_entries(entries: Sequence[AuditEntry], tz: tzinfo, out: TextIO) -> None:
    rows = [["time", "user", "action", "target", "outcome", "detail"]]
    for entry in entries:
        try:
            when = entry.when.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")
        except (TypeError, ValueError):
            when = entry.at
        rows.append([when, entry.user, entry.action, entry.target, entry.outcome, entry.detail])
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        print("  ".join([*cells, row[5]]).rstrip(), file=out)


def cmd_audit(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext

    if args.limit < 0:
        raise UserError("--limit must be a whole number of entries, 1 or more (0 shows all).")
    ctx = AppContext.load(args.data_dir)
    tz = ctx.settings.tzinfo
    since = parse_since(args.since, ctx.clock.now(), tz)
    audit = AuditLog.in_folder(ctx.data_dir, ctx.clock)
    entries = list(audit.entries(since=since, target=args.target, action=args.action))
    if args.limit:
        entries = entries[-args.limit :]
    if args.json:
        for entry in entries:
            print(json.dumps(asdict(entry), ensure_ascii=False))
        return 0
    if not entries:
        window = "ever" if since is None else f"since {since.astimezone(tz):%Y-%m-%d %H:%M %Z}"
        filters = [f"about {args.target}" if args.target else "", f"for {args.action}" if args.action else ""]
        words = " ".join(f for f in filters if f)
        print(f"No audit entries {words + ' ' if words else ''}{window}; try --since all.")
        return 0
    render_entries(entries, tz, sys.stdout)
    return 0
