"""``queue`` and ``catalog``: the print queue and the catalog from the command line.

JOB arguments take a job id (``etsy:3141592653:27182818``), the end of one
(``3141592653:27182818``) or a queue position as ``tf-console queue`` numbers it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from tf_console.errors import UserError
from tf_console.models import ItemKind, Order, Platform, PrintJob, Priority
from tf_console.production.catalog import AssignResult, Catalog
from tf_console.production.examples import install_examples
from tf_console.production.printers import eligibility_problem
from tf_console.production.scheduler import Schedule
from tf_console.production.service import CATALOG_FILE, PRINTERS_FILE, ProductionChange, ProductionService

_MAX_POSITION_DIGITS = 5  # "12" is a queue position; longer digit strings are ids


def register(sub: Any) -> None:
    # SUPPRESS: the options may be given before or after the action without one level
    # resetting what the other set.
    files = argparse.ArgumentParser(add_help=False)
    files.add_argument(
        "--catalog",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"catalog file (default: DATA_DIR/{CATALOG_FILE})",
    )
    files.add_argument(
        "--printers",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"printers file (default: DATA_DIR/{PRINTERS_FILE})",
    )

    queue = sub.add_parser("queue", parents=[files], help="the print queue and its schedule")
    queue.set_defaults(func=cmd_queue)
    queue.add_argument("--all", action="store_true", help="also list printed, packed and withdrawn jobs")
    actions = queue.add_subparsers(dest="queue_command", metavar="ACTION")

    def job_action(name: str, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = actions.add_parser(name, parents=[files], help=help_text)
        parser.add_argument("job", metavar="JOB", help="job id, its end, or its queue position")
        return parser

    show = job_action("show", "everything about one job, personalisation included")
    show.set_defaults(func=cmd_show)

    move = job_action("move", "move a job in the queue (a moved job is pinned)")
    where = move.add_mutually_exclusive_group(required=True)
    where.add_argument("--top", dest="where", action="store_const", const="top", help="first in the queue")
    where.add_argument("--up", dest="where", action="store_const", const="up", help="one place up")
    where.add_argument("--down", dest="where", action="store_const", const="down", help="one place down")
    where.add_argument(
        "--unpin", dest="where", action="store_const", const="unpin", help="back to priority and due order"
    )
    move.set_defaults(func=cmd_move)

    start = job_action("start", "start the job's next plate on a printer")
    start.add_argument("--printer", help="printer name (default: where the schedule puts it)")
    start.set_defaults(func=cmd_start)

    printed = job_action("printed", "the job's plate came off the printer")
    printed.add_argument("--printer", help="which printer, when the job prints on several")
    printed.add_argument("--minutes", type=float, help="print time from the printer's display, for learning")
    printed.set_defaults(func=cmd_printed)

    failed = job_action("failed", "the job's plate failed; its units are queued for a reprint")
    failed.add_argument("--printer", help="which printer, when the job prints on several")
    failed.add_argument("--reason", default="", help="what went wrong (kept in the job's history)")
    failed.set_defaults(func=cmd_failed)

    priority = job_action("priority", "set a job's priority class")
    priority.add_argument("level", choices=[p.value for p in Priority])
    priority.set_defaults(func=cmd_priority)

    hold = job_action("hold", "keep a job out of the schedule")
    hold.set_defaults(func=cmd_hold)
    release = job_action("release", "put a held job back in the schedule")
    release.set_defaults(func=cmd_release)
    packed = job_action("packed", "a printed job is packed")
    packed.set_defaults(func=cmd_packed)

    catalog = sub.add_parser("catalog", parents=[files], help="which items are printed and how")
    catalog.set_defaults(func=cmd_catalog_check)
    catalog_actions = catalog.add_subparsers(dest="catalog_command", metavar="ACTION")
    check = catalog_actions.add_parser(
        "check", parents=[files], help="validate catalog.toml and printers.toml"
    )
    check.set_defaults(func=cmd_catalog_check)
    unknown = catalog_actions.add_parser(
        "unknown", parents=[files], help="open-order items no rule classifies"
    )
    unknown.set_defaults(func=cmd_catalog_unknown)
    assign = catalog_actions.add_parser(
        "assign", parents=[files], help="write a rule classifying a SKU (comments in the file are kept)"
    )
    assign.add_argument("sku", metavar="SKU")
    assign.add_argument("kind", choices=["print", "stock"])
    assign.add_argument("--profile", default="", help="print profile (required for print)")
    assign.add_argument("--stock-sku", default="", help="shelf item to decrement, when it differs from SKU")
    assign.add_argument("--platform", choices=[p.value for p in Platform], help="only on this marketplace")
    assign.set_defaults(func=cmd_catalog_assign)
    init = catalog_actions.add_parser(
        "init", parents=[files], help="copy the commented example catalog.toml and printers.toml"
    )
    init.add_argument("--force", action="store_true", help="overwrite existing files")
    init.set_defaults(func=cmd_catalog_init)


# ---------------------------------------------------------------------------
# Wiring


@contextmanager
def _opened(args: argparse.Namespace) -> Iterator[tuple[ProductionService, Any]]:
    from tf_console.audit import AuditLog
    from tf_console.context import AppContext

    ctx = AppContext.load(args.data_dir)
    store = ctx.open_store()
    try:
        service = ProductionService.open(
            store,
            ctx.data_dir,
            timezone=ctx.settings.timezone,
            clock=ctx.clock,
            catalog_path=getattr(args, "catalog", None),
            printers_path=getattr(args, "printers", None),
        )
        service.audit = AuditLog(store, ctx.clock).try_record
        yield service, store
    finally:
        store.close()


def resolve_reference(service: ProductionService, ref: str) -> str:
    """A queue position ("3") becomes that job's id; anything else passes through."""
    text = ref.strip()
    if text.isdigit() and len(text) <= _MAX_POSITION_DIGITS:
        sequence = service.sequence()
        position = int(text)
        if not 1 <= position <= len(sequence):
            raise UserError(f"The queue has {len(sequence)} job(s); there is no position {position}.")
        return sequence[position - 1]
    return text


def _config_notes(service: ProductionService, out: TextIO) -> None:
    for source in (service.catalog_source, service.printers_source):
        if source.error:
            print(f"Note: {source.error}", file=out)


# ---------------------------------------------------------------------------
# Formatting


def format_minutes(minutes: float) -> str:
    total = round(minutes)
    if total < 60:
        return f"{total}m"
    return f"{total // 60}h{total % 60:02d}"


def format_slack(minutes: float | None) -> str:
    if minutes is None:
        return "-"
    sign = "-" if minutes < 0 else "+"
    total = abs(round(minutes))
    days, rest = divmod(total, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{sign}{days}d{hours}h"
    return f"{sign}{hours}h{mins:02d}"


def format_when(moment: datetime | None, tz: ZoneInfo, now: datetime) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(tz)
    today = now.astimezone(tz).date()
    if local.date() == today:
        return local.strftime("%H:%M")
    if abs((local.date() - today).days) < 7:
        return local.strftime("%a %H:%M")
    return local.strftime("%d %b %H:%M")


def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out
        )


def render_queue(jobs: Sequence[PrintJob], schedule: Schedule, timezone: str, out: TextIO) -> None:
    """The queue as a table: position, pin, job, SKU, quantity, material, printer, times, state."""
    tz = ZoneInfo(timezone)
    now = schedule.now
    by_id = {j.job_id: j for j in jobs}
    header = [
        "#",
        "pin",
        "job",
        "sku",
        "qty",
        "material",
        "printer",
        "estimate",
        "start",
        "end",
        "pack-by",
        "slack",
        "state",
    ]
    rows = [header]
    listed = [by_id[jid] for jid in schedule.sequence if jid in by_id]
    listed += [j for j in jobs if j.job_id not in schedule.jobs]
    for job in listed:
        planned = schedule.jobs.get(job.job_id)
        estimate = "-"
        if planned is not None and planned.estimate_minutes:
            estimate = format_minutes(planned.estimate_minutes)
            if planned.learned:
                estimate += f"→{format_minutes(planned.expected_minutes)}"
        state = job.state.value
        if planned is not None and planned.problem and planned.problem != "held":
            state += " (unscheduled)"
        elif planned is not None and planned.late:
            state += " LATE"
        elif planned is not None and planned.late_risk:
            state += " at risk"
        if job.flag:
            state += " !"
        rows.append(
            [
                str(planned.position) if planned else "",
                str(job.pin) if job.pin is not None else "",
                job.job_id,
                job.sku or "(no SKU)",
                str(job.quantity),
                job.material,
                planned.printer if planned and planned.printers else "-",
                estimate,
                format_when(planned.start if planned else None, tz, now),
                format_when(planned.end if planned else None, tz, now),
                format_when(planned.pack_by if planned else None, tz, now),
                format_slack(planned.slack_minutes if planned else None),
                state,
            ]
        )
    if len(rows) == 1:
        print("The print queue is empty.", file=out)
    else:
        _table(rows, out)
        flagged = [j for j in listed if j.flag]
        if flagged:
            print("", file=out)
            for job in flagged:
                print(f"! {job.job_id}: {job.flag}", file=out)
    if schedule.warnings:
        print("", file=out)
        for warning in schedule.warnings:
            print(warning, file=out)


def render_job(job: PrintJob, schedule: Schedule, timezone: str, out: TextIO) -> None:
    tz = ZoneInfo(timezone)
    planned = schedule.jobs.get(job.job_id)
    now = schedule.now
    lines = [
        ("job", job.job_id),
        ("order", f"{job.platform.label} {job.order_id}, line {job.line_id}"),
        ("item", f"{job.sku or '(no SKU)'} {job.title}".strip()),
        ("quantity", f"{job.quantity} in {job.plates} plate(s), {job.plates_done} printed"),
        ("profile", f"{job.profile} ({job.material}{', ' + job.colour if job.colour else ''})"),
        ("state", job.state.value + (f" — {job.flag}" if job.flag else "")),
        ("priority", job.priority.value + (f", pinned at {job.pin}" if job.pin is not None else "")),
        ("ship-by", format_when(job.due, tz, now)),
        ("personalisation", job.personalisation or "-"),
    ]
    if planned is not None:
        if planned.problem:
            lines.append(("schedule", f"not scheduled: {planned.problem}"))
        else:
            lines.append(
                (
                    "schedule",
                    f"position {planned.position} on {planned.printer or '-'}, "
                    f"{format_when(planned.start, tz, now)} → {format_when(planned.end, tz, now)}",
                )
            )
            estimate = f"{format_minutes(planned.estimate_minutes)} (slicer)"
            if planned.learned:
                estimate += f", {format_minutes(planned.expected_minutes)} learned"
            lines.append(("estimate", estimate))
            lines.append(
                (
                    "pack-by",
                    f"{format_when(planned.pack_by, tz, now)}, slack {format_slack(planned.slack_minutes)}",
                )
            )
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        print(f"{label.rjust(width)}  {value}", file=out)
    if job.history:
        print("", file=out)
        for entry in job.history[-15:]:
            print(f"  {entry}", file=out)


# ---------------------------------------------------------------------------
# queue commands


def cmd_queue(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        _config_notes(service, sys.stderr)
        schedule = service.schedule()
        render_queue(service.jobs(include_finished=args.all), schedule, service.timezone, sys.stdout)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job = service.job(resolve_reference(service, args.job))
        render_job(job, service.schedule(), service.timezone, sys.stdout)
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job_id = service.job(resolve_reference(service, args.job)).job_id
        order = service.unpin(job_id) if args.where == "unpin" else service.move(job_id, args.where)
        position = order.index(job_id) + 1
        verb = "Unpinned" if args.where == "unpin" else "Moved"
        print(f"{verb} {job_id}; it is now number {position} of {len(order)} in the queue.")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        run = service.start(resolve_reference(service, args.job), args.printer)
        jobs = ", ".join(f"{job_id} ×{units}" for job_id, units in run.allocations.items())
        print(f"Started a plate on {run.printer}: {jobs}; expected {format_minutes(run.expected_minutes)}.")
    return 0


def cmd_printed(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job_id = service.job(resolve_reference(service, args.job)).job_id
        run = service.mark_printed(job_id, args.printer, args.minutes)
        job = service.job(job_id)
        print(f"Plate on {run.printer} printed; {job_id} is {job.state.value}.")
        note = job.history[-1].partition("; ")[2] if job.history else ""
        if note:
            print(note[0].upper() + note[1:] + ".")
    return 0


def cmd_failed(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job_id = service.job(resolve_reference(service, args.job)).job_id
        run = service.mark_failed(job_id, args.printer, args.reason)
        units = sum(run.allocations.values())
        print(f"Plate on {run.printer} marked failed; {units} unit(s) are queued for a reprint.")
    return 0


def cmd_priority(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job = service.set_priority(resolve_reference(service, args.job), Priority(args.level))
        print(f"{job.job_id} is now {job.priority.value} priority.")
    return 0


def cmd_hold(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job = service.hold(resolve_reference(service, args.job))
        print(
            f"Held {job.job_id}; it stays out of the schedule until `tf-console queue release {job.job_id}`."
        )
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job = service.release(resolve_reference(service, args.job))
        print(f"Released {job.job_id}; it is {job.state.value} again.")
    return 0


def cmd_packed(args: argparse.Namespace) -> int:
    with _opened(args) as (service, _):
        job = service.mark_packed(resolve_reference(service, args.job))
        print(f"{job.job_id} is packed.")
    return 0


# ---------------------------------------------------------------------------
# catalog commands


def check_files(service: ProductionService, out: TextIO) -> bool:
    """Report on catalog.toml and printers.toml; True when both are usable as they are on disk."""
    ok = True
    catalog = service.catalog()
    printers = service.printer_config()
    for label, source in (("catalog", service.catalog_source), ("printers", service.printers_source)):
        if source.error:
            ok = False
            print(f"{label}: {source.error}", file=out)
    if service.catalog_source.loaded:
        print(
            f"catalog: {len(catalog.profiles)} profile(s), {len(catalog.rules)} SKU rule(s), "
            f"{len(catalog.title_rules)} title rule(s) in {service.catalog_source.path}",
            file=out,
        )
    if service.printers_source.loaded:
        enabled = sum(1 for p in printers.printers if p.enabled)
        try:
            hours = service.settings().hours.describe()
        except UserError as exc:
            ok = False
            hours = str(exc)
        print(f"printers: {enabled} of {len(printers.printers)} enabled; staffed {hours}", file=out)
    if service.catalog_source.loaded and service.printers_source.loaded:
        for profile in catalog.profiles.values():
            if not any(eligibility_problem(profile, p) is None for p in printers.printers):
                ok = False
                reasons = (
                    "; ".join(f"{p.name} {eligibility_problem(profile, p)}" for p in printers.printers)
                    or "no printers are listed"
                )
                print(f"profile {profile.name!r}: no printer can print it ({reasons}).", file=out)
    return ok


def render_unknown(items: Sequence[tuple[Order, Any]], catalog: Catalog, out: TextIO) -> None:
    if not items:
        print("Every item of every open order is classified.", file=out)
        return
    print(f"{len(items)} item(s) in open orders match no catalog rule:", file=out)
    rows = [["platform", "order", "sku", "title"]]
    for order, item in items:
        rows.append([order.platform.value, order.order_id, item.sku or "(no SKU)", item.title[:60]])
    _table(rows, out)
    profiles = ", ".join(sorted(catalog.profiles)) or "none yet"
    print(
        "\nClassify one with `tf-console catalog assign SKU print --profile NAME` or `… SKU stock` "
        f"(profiles: {profiles}); items without a SKU need a [[title_rules]] entry in the catalog.",
        file=out,
    )


def describe_assignment(result: AssignResult, sku: str, kind: ItemKind, profile: str, path: Path) -> str:
    what = f"print (profile {profile})" if kind is ItemKind.PRINT else "stock"
    if result.action == "unchanged":
        return f"{path} already classifies {sku} as {what} (rule {result.rule_index})."
    verb = "Added" if result.action == "added" else "Updated"
    return f"{verb} rule {result.rule_index} in {path}: {sku} → {what}."


def describe_change(reclassified: int, change: ProductionChange) -> str:
    return f"Re-classified {reclassified} open order(s); {change.summary()}."


def cmd_catalog_check(args: argparse.Namespace) -> int:
    with _opened(args) as (service, store):
        ok = check_files(service, sys.stdout)
        if service.catalog_source.loaded:
            unknown = service.unknown_items(store.orders.open_orders())
            if unknown:
                print(
                    f"{len(unknown)} item(s) in open orders are unknown; "
                    "`tf-console catalog unknown` lists them."
                )
    if not ok:
        print("Fix the lines named above; a running console keeps using the last good version until then.")
    return 0 if ok else 1


def cmd_catalog_unknown(args: argparse.Namespace) -> int:
    with _opened(args) as (service, store):
        _config_notes(service, sys.stderr)
        render_unknown(service.unknown_items(store.orders.open_orders()), service.catalog(), sys.stdout)
    return 0


def cmd_catalog_assign(args: argparse.Namespace) -> int:
    kind = ItemKind(args.kind)
    platform = Platform(args.platform) if args.platform else None
    with _opened(args) as (service, store):
        done = service.assign(
            args.sku,
            kind,
            profile=args.profile,
            stock_sku=args.stock_sku,
            platform=platform,
            orders=store.orders,
        )
        print(describe_assignment(done.rule, args.sku, kind, args.profile, service.catalog_source.path))
        print(describe_change(done.reclassified_orders, done.change))
    return 0


def cmd_catalog_init(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext

    ctx = AppContext.load(args.data_dir)
    targets = {
        CATALOG_FILE: getattr(args, "catalog", None) or ctx.data_dir / CATALOG_FILE,
        PRINTERS_FILE: getattr(args, "printers", None) or ctx.data_dir / PRINTERS_FILE,
    }
    written = install_examples(targets, overwrite=args.force)
    for path in written:
        print(f"Wrote {path}; edit it to match your shop.")
    if not written:
        print(f"{targets[CATALOG_FILE]} and {targets[PRINTERS_FILE]} already exist (--force replaces them).")
    return 0
