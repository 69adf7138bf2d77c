"""``export`` and ``purge-pii``."""

from __future__ import annotations

import argparse
import re
import sys
from datetime import timedelta
from typing import Any

from tf_console.errors import UserError


def register(sub: Any) -> None:
    e = sub.add_parser("export", help="write every order (archived ones included) as JSON or CSV to stdout")
    e.add_argument("--format", choices=["json", "csv"], default="json")
    e.add_argument("--include-pii", action="store_true", help="add buyer name and address (decrypted)")
    e.set_defaults(func=cmd_export)

    p = sub.add_parser("purge-pii", help="redact buyer data of orders shipped or cancelled longer ago")
    p.add_argument("--older-than", default="30d", help="age such as 30d, 12w or 48h (default 30d)")
    p.set_defaults(func=cmd_purge)


def parse_age(text: str) -> timedelta:
    m = re.fullmatch(r"\s*(\d+)\s*([hdw])\s*", text)
    if not m:
        raise UserError(f"--older-than {text!r}: use a number with h, d or w, such as 30d.")
    n, unit = int(m.group(1)), m.group(2)
    return {"h": timedelta(hours=n), "d": timedelta(days=n), "w": timedelta(weeks=n)}[unit]


def cmd_export(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext
    from tf_console.store.export import export_orders

    ctx = AppContext.load(args.data_dir)
    store = ctx.open_store()
    try:
        count = export_orders(store, args.format, args.include_pii, sys.stdout)
    finally:
        store.close()
    print(f"Exported {count} order(s).", file=sys.stderr)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext
    from tf_console.messaging import purge_message_bodies

    age = parse_age(args.older_than)
    ctx = AppContext.load(args.data_dir)
    store = ctx.open_store()
    try:
        count = store.orders.purge_pii(age, ctx.clock.now())
        purge_message_bodies(store, ctx.clock)
    finally:
        store.close()
    days = age.total_seconds() / 86400
    print(f"Redacted buyer data of {count} order(s) shipped or cancelled more than {days:g} day(s) ago.")
    v1_backup = ctx.data_dir / "state.json.v1-backup"
    if v1_backup.exists():
        print(
            f"{v1_backup} (the copy kept when the store was upgraded) still holds buyer data of the old "
            "format, which purge cannot reach; once `tf-console export` shows every order, delete it.",
            file=sys.stderr,
        )
    return 0
