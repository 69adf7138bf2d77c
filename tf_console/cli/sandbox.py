"""``tf-console sandbox serve``: simulated marketplaces on a loopback port (demos, manual tests)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from tf_console.clock import SYSTEM_CLOCK, Clock, ScaledClock
from tf_console.errors import UserError
from tf_console.sandbox.core import Sandbox
from tf_console.sandbox.faults import Fault, FaultKind
from tf_console.sandbox.registry import SIMULATOR_MODULES, install
from tf_console.sandbox.transport import LoopbackServer

DEFAULT_PORT = 8765
DEFAULT_FAULT_PROBABILITY = 0.1


def register(sub: Any) -> None:
    parser = sub.add_parser("sandbox", help="simulated marketplaces for demos and tests")
    actions = parser.add_subparsers(dest="sandbox_action", metavar="ACTION")
    serve = actions.add_parser(
        "serve",
        help="serve simulated marketplaces on 127.0.0.1",
        description="Serve simulated marketplaces on 127.0.0.1 until Ctrl-C. Point a platform's URL "
        "setting at the printed address to use it.",
    )
    serve.add_argument(
        "--platform",
        choices=[*SIMULATOR_MODULES, "all"],
        default="test",
        help="which simulator to serve (default test; all = every simulator available)",
    )
    serve.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0 = any)"
    )
    serve.add_argument("--seed", type=int, default=1, help="seed of the simulated shop (default 1)")
    serve.add_argument(
        "--speed", type=float, default=1.0, help="simulated time runs this many times faster (default 1)"
    )
    serve.add_argument(
        "--rate-scale", type=float, default=1.0, help="multiply the marketplaces' rate limits (default 1)"
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME[:P]",
        help="inject a fault into a share P of requests (default 0.1); NAME is one of "
        + ", ".join(k.value for k in FaultKind),
    )
    serve.set_defaults(func=cmd_serve)
    parser.set_defaults(func=lambda _args: _usage(parser))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def parse_fault(text: str) -> Fault:
    name, _, share = text.partition(":")
    try:
        kind = FaultKind.parse(name)
    except ValueError as exc:
        raise UserError(f"{exc}.") from None
    probability = DEFAULT_FAULT_PROBABILITY
    if share:
        try:
            probability = float(share)
        except ValueError:
            raise UserError(f"The share in --fault {text} must be a number between 0 and 1.") from None
        if not 0.0 < probability <= 1.0:
            raise UserError(f"The share in --fault {text} must be between 0 and 1.")
    return Fault(kind=kind, probability=probability)


def cmd_serve(args: argparse.Namespace) -> int:
    if args.speed <= 0 or args.rate_scale <= 0:
        raise UserError("--speed and --rate-scale must be positive numbers.")
    if not 0 <= args.port <= 65535:
        raise UserError("--port must be between 0 and 65535.")
    faults = [parse_fault(text) for text in args.fault]
    clock: Clock = ScaledClock(args.speed) if args.speed != 1.0 else SYSTEM_CLOCK
    sandbox = Sandbox(clock=clock, seed=args.seed, rate_scale=args.rate_scale)
    names = list(SIMULATOR_MODULES) if args.platform == "all" else [args.platform]
    installed, missing = install(sandbox, names, seed=args.seed)
    if not installed:
        raise UserError(f"The {', '.join(missing)} simulator is not available in this version.")
    for fault in faults:
        sandbox.faults.add(fault)
    server = LoopbackServer(sandbox, port=args.port)
    try:
        server.start()
    except OSError as exc:
        raise UserError(
            f"Could not listen on 127.0.0.1:{args.port} ({exc.strerror or exc}); "
            "pick another port with --port."
        ) from None
    out = sys.stdout
    out.write(
        f"Sandbox listening on {server.base_url} (seed {args.seed}, speed {args.speed:g}x, "
        f"rate limits x{args.rate_scale:g}).\n"
    )
    for simulator in installed:
        out.write(f"  {simulator.name}:\n")
        for key, value in simulator.describe().items():
            out.write(f"    {key} = {value}\n")
    if missing:
        out.write(f"  not available yet: {', '.join(missing)}\n")
    for fault in faults:
        out.write(f"  fault {fault.kind.value} on {fault.probability:.0%} of requests\n")
    out.write("Press Ctrl-C to stop.\n")
    out.flush()

    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, on_signal)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.stop()
    out.write(f"Sandbox stopped after {sandbox.log.total} requests.\n")
    return 0
