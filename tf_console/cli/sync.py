"""``sync --once``, ``ship`` and ``daemon``."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from typing import Any

from tf_console.errors import UserError
from tf_console.models import Platform
from tf_console.runtime import Runtime
from tf_console.sync.outbox import OutboxItem, OutboxState
from tf_console.sync.shipping import AlreadyShipped, ShipRequest, enqueue_shipment, parse_item_arg

WAIT_FOR_HOLDER = 120.0
ALERTS_LISTED = 5


def register(sub: Any) -> None:
    p = sub.add_parser("sync", help="poll the marketplaces (one round with --once)")
    p.add_argument("--once", action="store_true", required=True, help="one poll of every configured platform")
    p.add_argument("--days", type=int, default=7, help="first backfill only: how many days back (default 7)")
    p.set_defaults(func=cmd_sync)

    s = sub.add_parser("ship", help="mark an order shipped with tracking, on its marketplace")
    s.add_argument("platform", choices=[p.value for p in Platform if p is not Platform.TEST] + ["test"])
    s.add_argument("order_id")
    s.add_argument("--carrier", required=True, help="carrier code or name (e.g. UPS, usps, Royal Mail)")
    s.add_argument("--carrier-name", default="", help="free-text carrier name when the carrier is 'Other'")
    s.add_argument("--tracking", required=True)
    s.add_argument(
        "--item",
        action="append",
        default=[],
        metavar="LINE_ID[:QTY]",
        help="ship only these lines (repeatable)",
    )
    s.add_argument("--force", action="store_true", help="accept a tracking number that fails its check digit")
    s.add_argument("--timeout", type=float, default=WAIT_FOR_HOLDER, help="seconds to wait for the answer")
    s.set_defaults(func=cmd_ship)

    d = sub.add_parser("daemon", help="poll and deliver in the background (for systemd)")
    d.add_argument("--days", type=int, default=7, help="first backfill: how many days back")
    d.set_defaults(func=cmd_daemon)


def _progress_printer(enabled: bool) -> Any:
    if not enabled:
        return None

    def show(platform: Platform, page: int, total: int | None) -> None:
        if total:
            width = 30
            done = int(width * min(page, total) / total)
            bar = "█" * done + "·" * (width - done)
            sys.stderr.write(f"\r{platform.label:<7} [{bar}] page {page}/{total}")
        else:
            sys.stderr.write(f"\r{platform.label:<7} page {page}")
        sys.stderr.flush()
        if total and page >= total:
            sys.stderr.write("\n")

    return show


def cmd_sync(args: argparse.Namespace) -> int:
    if args.days < 1:
        raise UserError("--days must be at least 1.")
    runtime = Runtime.load(args.data_dir, lease_kind="cli")
    return asyncio.run(_sync_once(runtime, args.days))


async def _sync_once(runtime: Runtime, days: int) -> int:
    async with runtime.started() as rt:
        for platform, reason in rt.disabled.items():
            print(f"{platform.label}: skipped — {reason}", file=sys.stderr)
        if not rt.engine.marketplaces:
            raise UserError("No marketplace is configured; run `tf-console doctor` to see what to set.")
        holder = rt.engine.holder()
        if holder is not None and not await rt.engine.take_lease():
            print(f"A {holder.describe()} is polling; asking it to poll now…", file=sys.stderr)
            req = rt.engine.ask_holder_to_poll(days=days)
            deadline = time.monotonic() + WAIT_FOR_HOLDER
            while time.monotonic() < deadline:
                answered = rt.engine.control_request(req.request_id)
                if answered is not None and answered.finished_at is not None:
                    for r in answered.results:
                        print(r.get("summary", ""))
                    return 0 if answered.state.value == "done" else 1
                await asyncio.sleep(0.25)
            raise UserError(
                f"The {holder.describe()} did not answer within {WAIT_FOR_HOLDER:.0f} s; "
                "it may be busy with a long backfill. Check `tf-console doctor`.",
                exit_code=1,
            )
        if not await rt.engine.take_lease():
            raise UserError("Another process started polling at the same moment; try again.", exit_code=1)
        for listener in (_progress_printer(sys.stderr.isatty()),):
            if listener is not None:
                rt.engine.listeners.progress.append(listener)
        results = await rt.engine.poll_all(days=days)
        for result in results:
            print(result.summary)
        if rt.alerts is not None:
            # This process is the poller for now: alerts are evaluated and owed ones sent, as the
            # daemon would after its poll.
            await rt.alerts.tick()
            active = rt.alerts.active_alerts()
            for alert in active[:ALERTS_LISTED]:
                print(f"Alert: {alert.sentence}", file=sys.stderr)
            if len(active) > ALERTS_LISTED:
                print(
                    f"… and {len(active) - ALERTS_LISTED} more alert(s); `tf-console doctor` lists them all.",
                    file=sys.stderr,
                )
        failed = [r for r in results if not r.ok]
        if failed:
            names = ", ".join(r.platform.label for r in failed)
            print(f"tf-console: sync failed for {names}; see the lines above.", file=sys.stderr)
            return 1
        return 0


def cmd_ship(args: argparse.Namespace) -> int:
    request = ShipRequest(
        platform=Platform(args.platform),
        order_id=args.order_id,
        carrier=args.carrier,
        carrier_name=args.carrier_name,
        tracking=args.tracking,
        lines=[parse_item_arg(t) for t in args.item],
        force=args.force,
    )
    runtime = Runtime.load(args.data_dir, lease_kind="cli")
    return asyncio.run(_ship(runtime, request, args.timeout))


def _describe(item: OutboxItem) -> str:
    return f"{item.platform.label} order {item.order_id}"


async def _ship(runtime: Runtime, request: ShipRequest, timeout: float) -> int:
    async with runtime.started() as rt:
        if request.platform not in rt.engine.marketplaces:
            reason = rt.disabled.get(request.platform, "it is not configured")
            raise UserError(f"Cannot ship on {request.platform.label}: {reason}")
        try:
            item = enqueue_shipment(rt.store, request, rt.clock)
        except AlreadyShipped as exc:
            unfinished = _unfinished_shipment(rt, request)
            if unfinished is None:
                print(str(exc))
                return 0
            # The same shipment is still in the outbox (e.g. a process died mid-call):
            # finish it — reconcile with the marketplace — rather than send anything new.
            item = unfinished
            print(f"{exc} Finishing the earlier request instead.", file=sys.stderr)
        print(
            f"Shipment for {_describe(item)} recorded; sending it to {item.platform.label}…", file=sys.stderr
        )
        holder = rt.engine.holder()
        deadline = time.monotonic() + timeout
        if holder is None and await rt.engine.take_lease():
            while True:
                item = await rt.engine.sender.deliver(item.item_id)
                if not item.state.is_active or time.monotonic() >= deadline:
                    break
                wait = max(0.0, (item.next_attempt_at - rt.clock.now()).total_seconds())
                await asyncio.sleep(min(wait, max(0.0, deadline - time.monotonic())))
        else:
            who = holder.describe() if holder else "another process"
            print(f"The {who} delivers it; waiting for the answer…", file=sys.stderr)
            while time.monotonic() < deadline:
                found = rt.engine.sender.items.get(item.item_id)
                if found is not None:
                    item = found
                if not item.state.is_active:
                    break
                await asyncio.sleep(0.25)
        return _report_shipment(item)


def _unfinished_shipment(rt: Runtime, request: ShipRequest) -> OutboxItem | None:
    for item in rt.engine.sender.items.all():
        if (
            item.platform is request.platform
            and item.order_id == request.order_id
            and item.state.is_active
            and item.kind.value == "shipment"
        ):
            return item
    return None


def _report_shipment(item: OutboxItem) -> int:
    where = _describe(item)
    if item.state is OutboxState.DONE:
        print(f"{where} is marked shipped on {item.platform.label} ({item.answer}).")
        return 0
    if item.state is OutboxState.REJECTED:
        print(
            f"tf-console: {item.platform.label} refused the shipment for {item.order_id}: {item.answer}",
            file=sys.stderr,
        )
        return 1
    print(
        f"tf-console: {where} is not confirmed yet ({item.state.value}: {item.answer or 'waiting'}). "
        "It stays in the outbox and is delivered exactly once; "
        "`tf-console daemon` or the console finishes it.",
        file=sys.stderr,
    )
    return 3


def cmd_daemon(args: argparse.Namespace) -> int:
    runtime = Runtime.load(args.data_dir, lease_kind="daemon")
    return asyncio.run(_daemon(runtime, args.days))


async def _daemon(runtime: Runtime, days: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        loop.add_signal_handler(sig, stop.set)
    async with runtime.started() as rt:
        if not rt.engine.marketplaces:
            raise UserError("No marketplace is configured; run `tf-console doctor` to see what to set.")
        holder = rt.engine.holder()
        if holder is not None:
            raise UserError(
                f"A {holder.describe()} already polls this data folder; only one may.", exit_code=1
            )
        if not await rt.engine.take_lease():
            raise UserError("Another process took the poller lease first; only one may poll.", exit_code=1)
        names = ", ".join(p.label for p in rt.engine.marketplaces)
        print(f"tf-console daemon polling {names}; data in {rt.store.data_dir}.", file=sys.stderr)
        rt.engine.listeners.poll_finished.append(lambda r: print(r.summary, flush=True))
        await rt.engine.run(stop, days=days)
        print("tf-console daemon stopped; the outbox is intact.", file=sys.stderr)
    return 0
