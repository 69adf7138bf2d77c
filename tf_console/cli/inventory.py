"""``stock``: the stock ledger and what each marketplace offers, from the command line.

``tf-console stock`` lists every tracked SKU (on-hand, allocated, buffer, what is
offered, and each marketplace's last push and whether it applied); ``stock set``
records a shelf count, ``stock adjust`` a change with its reason, ``stock printed``
finished prints going on the shelf, ``stock show`` one SKU explained.  A change is
pushed to the marketplaces at once when no daemon or console is polling, and by
the poller otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from datetime import tzinfo
from typing import Any

import anyio.to_thread

from tf_console.inventory import (
    InventoryService,
    LedgerEntry,
    PushView,
    StockChange,
    StockRow,
    install_inventory,
)
from tf_console.inventory.ledger import EntryKind
from tf_console.models import MARKETPLACES, Platform
from tf_console.runtime import Runtime
from tf_console.sync.outbox import OutboxItem, OutboxState

PUSH_TIMEOUT = 60.0


def register(sub: Any) -> None:
    stock = sub.add_parser("stock", help="stock levels and the quantities pushed to each marketplace")
    stock.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    stock.set_defaults(func=cmd_stock)
    actions = stock.add_subparsers(dest="stock_command", metavar="ACTION")

    def pushing(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--timeout",
            type=float,
            default=PUSH_TIMEOUT,
            help="seconds to wait for the marketplaces' answers",
        )

    set_parser = actions.add_parser("set", help="record a shelf count: SKU has N units on hand")
    set_parser.add_argument("sku", metavar="SKU")
    set_parser.add_argument("count", metavar="N", type=int)
    set_parser.add_argument("--reason", default="", help="why (default: shelf count)")
    pushing(set_parser)
    set_parser.set_defaults(func=cmd_set)

    adjust = actions.add_parser("adjust", help="add or remove units with a reason: +N or -N")
    adjust.add_argument("sku", metavar="SKU")
    adjust.add_argument("delta", metavar="±N", type=_signed)
    adjust.add_argument("--reason", required=True, help="why the count changes (kept in the ledger)")
    pushing(adjust)
    adjust.set_defaults(func=cmd_adjust)

    printed = actions.add_parser("printed", help="N finished prints of SKU went on the shelf")
    printed.add_argument("sku", metavar="SKU")
    printed.add_argument("units", metavar="N", type=int)
    printed.add_argument("--note", default="", help="e.g. the printer or plate")
    pushing(printed)
    printed.set_defaults(func=cmd_printed)

    show = actions.add_parser("show", help="one SKU explained: ledger entries, listings, pushes")
    show.add_argument("sku", metavar="SKU")
    show.set_defaults(func=cmd_show)


def _signed(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number such as +3 or -2") from None


def _runtime(args: argparse.Namespace) -> Runtime:
    return Runtime.load(args.data_dir, lease_kind="cli")


# ---------------------------------------------------------------------------
# stock


def cmd_stock(args: argparse.Namespace) -> int:
    return asyncio.run(_list(_runtime(args), args.format))


async def _list(runtime: Runtime, fmt: str) -> int:
    async with runtime.started() as rt:
        service = install_inventory(rt)
        rows = await anyio.to_thread.run_sync(service.rows)
        platforms = _columns(rt, rows)
        if fmt == "json":
            json.dump([_row_json(r) for r in rows], sys.stdout, indent=2)
            sys.stdout.write("\n")
        else:
            print(render_table(rows, platforms))
    return 0


def _columns(rt: Runtime, rows: Sequence[StockRow]) -> list[Platform]:
    shown = set(rt.marketplaces) | {p for r in rows for p in r.pushes}
    ordered = [p for p in MARKETPLACES if p in shown or not shown] + sorted(shown - set(MARKETPLACES))
    return ordered


def _count(value: int | None) -> str:
    return "unset" if value is None else str(value)


def push_cell(views: Sequence[PushView]) -> str:
    if not views:
        return "-"
    if len(views) == 1:
        return views[0].text
    return "; ".join(f"{v.listing_sku}: {v.text}" for v in views)


def render_table(rows: Sequence[StockRow], platforms: Sequence[Platform]) -> str:
    if not rows:
        return (
            "No stock is tracked yet. Count a shelf item with `tf-console stock set SKU N`; "
            'made-to-order SKUs are set up in catalog.toml ([stock."SKU"] made_to_order = true).'
        )
    header = ["SKU", "On hand", "Allocated", "Buffer", "Available", *[p.label for p in platforms]]
    body: list[list[str]] = []
    for row in rows:
        offered = str(row.offered) if row.offered is not None else "-"
        cells = [
            row.sku,
            "to order" if row.made_to_order and row.on_hand is None else _count(row.on_hand),
            str(row.allocated),
            str(row.buffer),
            offered,
            *[push_cell(row.pushes.get(p, ())) for p in platforms],
        ]
        body.append(cells)
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    numeric = {1, 2, 3, 4}

    def line(cells: list[str]) -> str:
        return "  ".join(
            cell.rjust(widths[i]) if i in numeric else cell.ljust(widths[i]) for i, cell in enumerate(cells)
        ).rstrip()

    out = [line(header)]
    out.extend(line(cells) for cells in body)
    unsynced = [r for r in rows if not r.synced]
    if unsynced:
        out.append("")
        for row in unsynced:
            out.append(f"{row.sku} is not pushed: {row.why}.")
    return "\n".join(out)


def _row_json(row: StockRow) -> dict[str, Any]:
    return {
        "sku": row.sku,
        "on_hand": row.on_hand,
        "allocated": row.allocated,
        "buffer": row.buffer,
        "available": row.offered,
        "made_to_order": row.made_to_order,
        "synced": row.synced,
        "why": row.why,
        "pushes": {
            platform.value: [
                {
                    "listing_sku": v.listing_sku,
                    "quantity": v.quantity,
                    "status": v.status.value,
                    "applied": v.applied,
                    "seconds_to_apply": v.latency.total_seconds() if v.latency is not None else None,
                    "answer": v.answer,
                    "at": v.at.isoformat() if v.at is not None else None,
                }
                for v in views
            ]
            for platform, views in row.pushes.items()
        },
    }


# ---------------------------------------------------------------------------
# set / adjust / printed


def cmd_set(args: argparse.Namespace) -> int:
    return asyncio.run(
        _change(_runtime(args), lambda s: s.set_on_hand(args.sku, args.count, args.reason), args.timeout)
    )


def cmd_adjust(args: argparse.Namespace) -> int:
    return asyncio.run(
        _change(_runtime(args), lambda s: s.adjust(args.sku, args.delta, args.reason), args.timeout)
    )


def cmd_printed(args: argparse.Namespace) -> int:
    return asyncio.run(
        _change(_runtime(args), lambda s: s.add_printed(args.sku, args.units, args.note), args.timeout)
    )


def describe_change(change: StockChange) -> str:
    before, after = change.before, change.after
    moved = f"on-hand {_count(before.on_hand)} → {_count(after.on_hand)}"
    return f"{change.sku}: {moved}, allocated {after.allocated} ({change.entry.reason})."


async def _change(runtime: Runtime, act: Any, timeout: float) -> int:
    async with runtime.started() as rt:
        service = install_inventory(rt)
        change: StockChange = await anyio.to_thread.run_sync(act, service)
        print(describe_change(change))
        return await _push_now(rt, service, timeout)


async def _push_now(rt: Runtime, service: InventoryService, timeout: float) -> int:
    if not rt.marketplaces:
        print("No marketplace is configured, so nothing was pushed; `tf-console doctor` shows what to set.")
        return 0
    holder = rt.engine.holder()
    if holder is not None or not await rt.engine.take_lease():
        who = holder.describe() if holder is not None else "process polling this data folder"
        delay = service.defaults.push_delay
        print(f"The {who} pushes the new quantity to the marketplaces within about {delay:.0f} s.")
        return 0
    items = await service.plan(delay=0)
    if not items:
        print("Every marketplace already shows the right quantity; nothing was pushed.")
        return 0
    deadline = time.monotonic() + timeout
    finished: list[OutboxItem] = []
    for item in items:
        if time.monotonic() >= deadline:
            finished.append(item)
            continue
        finished.append(await rt.engine.sender.deliver(item.item_id))
    for item in finished:
        print(f"{item.platform.label} {item.sku}: {_outcome(item)}")
    if any(item.state.is_active for item in finished):
        print(
            "Updates still waiting stay in the outbox; `tf-console daemon` or the console finishes them.",
            file=sys.stderr,
        )
    return 0


def _outcome(item: OutboxItem) -> str:
    quantity = item.payload.get("quantity")
    if item.state is OutboxState.DONE:
        return f"{quantity} — {item.answer or 'done'}"
    if item.state is OutboxState.REJECTED:
        return f"refused {quantity} — {item.answer}"
    if item.state is OutboxState.VERIFYING:
        return f"{quantity} accepted, being read back — {item.answer}"
    return f"{quantity} waiting — {item.answer or 'not sent yet'}"


# ---------------------------------------------------------------------------
# show


def cmd_show(args: argparse.Namespace) -> int:
    return asyncio.run(_show(_runtime(args), args.sku))


async def _show(runtime: Runtime, sku: str) -> int:
    async with runtime.started() as rt:
        service = install_inventory(rt)
        detail = await anyio.to_thread.run_sync(service.detail, sku)
        zone = rt.settings.tzinfo
        row = detail.row
        print(f"{row.sku}")
        if row.made_to_order:
            print("  made to order")
            if detail.quote is not None:
                print(f"  offered: {detail.quote.explanation}")
        else:
            print(f"  on hand {_count(row.on_hand)}, allocated {row.allocated}, buffer {row.buffer}")
            print(f"  available: {row.offered if row.offered is not None else '-'} ({row.why})")
        print("  listings:")
        known = {(r.platform, r.listing_sku.casefold()): r for r in detail.listings}
        for platform, names in detail.targets.items():
            if not names:
                print(f"    {platform.label}: never pushed (catalog)")
            for name in names:
                found = known.get((platform, name.casefold()))
                where = found.detail if found is not None else "looked up when pushed"
                views = [
                    v for v in row.pushes.get(platform, ()) if v.listing_sku.casefold() == name.casefold()
                ]
                last = f"; last push {views[0].text}" if views else ""
                print(f"    {platform.label}: SKU {name} — {where}{last}")
        print("  ledger (latest last):")
        for entry in detail.entries[-20:]:
            print(f"    {format_entry(entry, zone)}")
    return 0


def format_entry(entry: LedgerEntry, zone: tzinfo) -> str:
    if entry.kind in (EntryKind.COUNT, EntryKind.OPENING):
        moved = f"on-hand = {_count(entry.on_hand)}"
        if entry.kind is EntryKind.OPENING:
            moved += f", allocated = {entry.allocated or 0}"
    else:
        parts = []
        if entry.on_hand_delta:
            parts.append(f"on-hand {entry.on_hand_delta:+d}")
        if entry.allocated_delta:
            parts.append(f"allocated {entry.allocated_delta:+d}")
        moved = ", ".join(parts) or "no change"
    who = f" ({entry.user})" if entry.user else ""
    return (
        f"{entry.at.astimezone(zone):%Y-%m-%d %H:%M}  {entry.kind.value:<8} {moved:<26} {entry.reason}{who}"
    )
