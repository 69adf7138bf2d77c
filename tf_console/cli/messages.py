"""``messages``: opt-in status, a preview (dry run) of exactly what would be sent to whom,
sending now, one order's message history, and the built-in templates."""

from __future__ import annotations

import argparse
import asyncio
import sys
import textwrap
from typing import Any

from tf_console.errors import UserError
from tf_console.messaging import (
    DEFAULT_TOML,
    MessageView,
    MessagingService,
    PlannedMessage,
    install_messaging,
)
from tf_console.messaging.service import view_of
from tf_console.models import Platform
from tf_console.runtime import Runtime
from tf_console.sync.outbox import OutboxKind

PLATFORMS = [p.value for p in (Platform.AMAZON, Platform.EBAY, Platform.ETSY)]


def register(sub: Any) -> None:
    m = sub.add_parser("messages", help="customer updates: status, preview (dry run), send, history")
    m.set_defaults(func=cmd_status)
    actions = m.add_subparsers(dest="messages_command", metavar="ACTION")

    s = actions.add_parser("status", help="which updates are on, per platform and event (the default)")
    s.set_defaults(func=cmd_status)

    p = actions.add_parser("preview", help="exactly what would be sent now, and to whom (sends nothing)")
    p.add_argument("--order", default="", metavar="PLATFORM:ORDER_ID", help="only this order")
    p.set_defaults(func=cmd_preview)

    d = actions.add_parser("send", help="queue the updates that are due and deliver them now")
    d.add_argument("--dry-run", action="store_true", help="show what would be sent; send nothing")
    d.set_defaults(func=cmd_send)

    h = actions.add_parser("history", help="the messages of one order")
    h.add_argument("platform", choices=PLATFORMS)
    h.add_argument("order_id")
    h.set_defaults(func=cmd_history)

    t = actions.add_parser(
        "templates", help="print the built-in templates (a start for TF_MESSAGE_TEMPLATES)"
    )
    t.set_defaults(func=cmd_templates)


# ---------------------------------------------------------------------------
# Output


def _indent(text: str) -> str:
    return textwrap.indent(text, "    | ", predicate=lambda _line: True)


def show_planned(planned: PlannedMessage) -> str:
    head = (
        f"{planned.platform.label} order {planned.order_id} · {planned.event.value} · "
        f"{planned.channel.label} → {planned.recipient}  [{planned.template}]"
    )
    lines = [head]
    if planned.problem:
        lines.append(f"    NOT SENT: {planned.problem}")
    if planned.subject:
        lines.append(f"    Subject: {planned.subject}")
    lines.append(_indent(planned.body))
    return "\n".join(lines)


def show_view(view: MessageView, *, with_body: bool) -> str:
    when = f"{view.updated_at:%Y-%m-%d %H:%M} UTC"
    lines = [
        f"{view.platform.label} order {view.order_id} · {view.event.value} · {view.channel.label} → "
        f"{view.recipient} · {view.status} ({when})"
    ]
    if view.answer:
        lines.append(f"    {view.answer}")
    if with_body:
        if view.subject:
            lines.append(f"    Subject: {view.subject}")
        lines.append(_indent(view.body))
    return "\n".join(lines)


def _order_filter(text: str) -> tuple[Platform, str] | None:
    if not text:
        return None
    platform, sep, order_id = text.partition(":")
    if not sep or platform not in PLATFORMS or not order_id:
        raise UserError(f"--order {text!r}: write PLATFORM:ORDER_ID, such as ebay:12-34567-89012.")
    return Platform(platform), order_id


# ---------------------------------------------------------------------------
# Commands


def _runtime(args: argparse.Namespace, *, read_only: bool) -> Runtime:
    return Runtime.load(args.data_dir, lease_kind="cli", read_only=read_only)


def cmd_templates(args: argparse.Namespace) -> int:
    del args
    sys.stdout.write(DEFAULT_TOML)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    return asyncio.run(_status(_runtime(args, read_only=True)))


async def _status(runtime: Runtime) -> int:
    async with runtime.started() as rt:
        service = install_messaging(rt, strict=True)
        print("Customer updates (opt-in; TF_MESSAGES_AMAZON, TF_MESSAGES_EBAY, TF_MESSAGES_ETSY):")
        for row in service.opt_in_rows():
            mark = "on " if row.on else "off"
            print(f"  {row.platform.label:<7} {row.event.value:<14} {mark}  {row.channel.label}")
        if service.mailer is not None:
            print(
                f"E-mail: {service.mailer.config.describe}, from {service.mailer.config.from_address or '?'}"
            )
        source = rt.settings.message_templates or "built-in"
        print(f"Templates: {source}")
        for warning in service.warnings():
            print(f"Warning: {warning}")
        views = service.messages()
        counts: dict[str, int] = {}
        for view in views:
            counts[view.status] = counts.get(view.status, 0) + 1
        if counts:
            print("Messages: " + ", ".join(f"{n} {status}" for status, n in sorted(counts.items())))
        unconfirmed = [v for v in views if v.status == "unconfirmed"]
        for view in unconfirmed[:10]:
            print(show_view(view, with_body=False))
    return 0


def _preview_lines(service: MessagingService, wanted: tuple[Platform, str] | None) -> list[str]:
    lines: list[str] = []
    due = [
        p for p in service.due() if wanted is None or (p.platform is wanted[0] and p.order_id == wanted[1])
    ]
    waiting = [
        v
        for v in service.messages()
        if v.status in ("waiting", "sending")
        and (wanted is None or (v.platform is wanted[0] and v.order_id == wanted[1]))
    ]
    if not service.enabled:
        lines.append("No customer updates are turned on; see `tf-console messages status`.")
    for warning in service.warnings():
        lines.append(f"Warning: {warning}")
    if due:
        lines.append(f"Due now, not queued yet ({len(due)}):")
        lines.extend(show_planned(p) for p in due)
    if waiting:
        lines.append(f"Queued, waiting to be sent ({len(waiting)}):")
        lines.extend(show_view(v, with_body=True) for v in waiting)
    if service.enabled and not due and not waiting:
        lines.append("Nothing to send now.")
    return lines


def _note_lines(rt: Runtime, service: MessagingService, wanted: tuple[Platform, str] | None) -> list[str]:
    if wanted is None or wanted[0] is not Platform.ETSY:
        return []
    order = rt.store.orders.get(wanted[0], wanted[1])
    if order is None:
        raise UserError(f"No Etsy order {wanted[1]} is in the store.")
    note = service.note_preview(order)
    if not note:
        return []
    return ["When shipped, Etsy's shipping e-mail will carry this note:", _indent(note)]


def cmd_preview(args: argparse.Namespace) -> int:
    wanted = _order_filter(args.order)
    return asyncio.run(_preview(_runtime(args, read_only=True), wanted))


async def _preview(runtime: Runtime, wanted: tuple[Platform, str] | None) -> int:
    async with runtime.started() as rt:
        service = install_messaging(rt, strict=True)
        lines = _preview_lines(service, wanted) + _note_lines(rt, service, wanted)
        print("\n".join(lines))
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    if args.dry_run:
        return asyncio.run(_preview(_runtime(args, read_only=True), None))
    return asyncio.run(_send(_runtime(args, read_only=False)))


async def _send(runtime: Runtime) -> int:
    async with runtime.started() as rt:
        service = install_messaging(rt, strict=True)
        for warning in service.warnings():
            print(f"Warning: {warning}", file=sys.stderr)
        if not service.enabled:
            print("No customer updates are turned on; nothing to send.")
            return 0
        holder = rt.engine.holder()
        if holder is not None and not await rt.engine.take_lease():
            created = await asyncio.to_thread(service.scan)
            print(
                f"Queued {len(created)} message(s); the {holder.describe()} delivers them "
                "(`tf-console messages status` shows how they went)."
            )
            return 0
        if not await rt.engine.take_lease():
            raise UserError("Another process started polling at the same moment; try again.", exit_code=1)
        created = await asyncio.to_thread(service.scan)
        if created:
            print(f"Queued {len(created)} message(s).", file=sys.stderr)
        sender = rt.engine.sender
        due = [i for i in await asyncio.to_thread(sender.due) if i.kind is OutboxKind.MESSAGE]
        if not due:
            print("Nothing to send now.")
            return 0
        failed = 0
        for item in due:
            if item.platform not in rt.engine.marketplaces:
                continue
            shown = view_of(await sender.deliver(item.item_id))
            print(show_view(shown, with_body=False))
            failed += shown.status == "not sent"
        return 1 if failed else 0


def cmd_history(args: argparse.Namespace) -> int:
    return asyncio.run(_history(_runtime(args, read_only=True), Platform(args.platform), args.order_id))


async def _history(runtime: Runtime, platform: Platform, order_id: str) -> int:
    async with runtime.started() as rt:
        service = install_messaging(rt, strict=True)
        views = service.history(platform, order_id)
        if not views:
            print(f"No customer messages for {platform.label} order {order_id}.")
            return 0
        for view in views:
            print(show_view(view, with_body=True))
    return 0
