"""``tf-console demo`` and ``tf-console run``: the full-screen console."""

from __future__ import annotations

import argparse
import asyncio
import logging
import logging.handlers
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from tf_console.demo import DEFAULT_SEED, DEFAULT_SPEED, build_demo
from tf_console.errors import UserError
from tf_console.paths import private_mkdir
from tf_console.runtime import Runtime

LOG_FILE = "console.log"


def register(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="the console against built-in simulated marketplaces (no credentials needed)",
        description="Start the full console against simulated Amazon, eBay and Etsy shops running "
        "in-process: new orders arrive every few seconds and marketplaces misbehave now and then. "
        "Nothing of yours is used: no credentials, no keyring; state goes to a temporary folder.",
    )
    # dest differs from the global --data-dir: a subparser default would overwrite it.
    demo.add_argument(
        "--data-dir",
        dest="demo_data_dir",
        default=None,
        help="keep the demo's state here (default: a temp folder)",
    )
    demo.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"seed of the simulated shops ({DEFAULT_SEED})"
    )
    demo.add_argument(
        "--speed",
        type=float,
        default=DEFAULT_SPEED,
        help=f"simulated time runs this much faster ({DEFAULT_SPEED:g})",
    )
    _common(demo)
    demo.set_defaults(func=cmd_demo)

    run = sub.add_parser(
        "run",
        help="the console against your configured marketplaces",
        description="Start the full console. It polls when no daemon does, and attaches to a running daemon.",
    )
    _common(run)
    run.set_defaults(func=cmd_run)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="never write to a marketplace (no shipping, no outbox delivery)",
    )
    parser.add_argument(
        "--no-mouse",
        action="store_true",
        help="no mouse tracking (less traffic over SSH, normal text selection)",
    )
    parser.add_argument("--ansi", action="store_true", help="use the terminal's own 16 colours")


def setup_logging(folder: Path) -> Path:
    """Log to a 0600 rotated file in the state folder: nothing may write to the terminal Textual owns."""
    from tf_console.marketplaces.redact import install_log_redaction

    private_mkdir(folder)
    path = folder / LOG_FILE
    handler = logging.handlers.RotatingFileHandler(path, maxBytes=1_000_000, backupCount=2, encoding="utf-8")
    os.chmod(path, 0o600)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    install_log_redaction()
    return path


def _check_terminal() -> None:
    if not sys.stdout.isatty() or not sys.stdin.isatty():
        raise UserError("The console needs a terminal; run it in an interactive shell (or tmux/screen).")


def cmd_demo(args: argparse.Namespace) -> int:
    from tf_console.console import ConsoleService
    from tf_console.ui import ConsoleOptions, run_console

    if args.speed <= 0:
        raise UserError("--speed must be a positive number, such as 60.")
    _check_terminal()
    # Only a folder named on the command line: never TF_DATA_DIR, which holds real orders.
    chosen = args.demo_data_dir or args.data_dir or None
    data_dir = Path(chosen).expanduser() if chosen else Path(tempfile.mkdtemp(prefix="tf-console-demo-"))
    try:
        log_path = setup_logging(data_dir)
        setup = build_demo(data_dir, seed=args.seed, speed=args.speed, read_only=args.read_only)

        async def main() -> int:
            async with setup.runtime.started() as rt:
                service = ConsoleService(rt, read_only=args.read_only)
                options = ConsoleOptions(
                    mode_label=setup.label,
                    ansi=args.ansi,
                    log_path=log_path,
                    background=[setup.director.run],
                )
                return await run_console(service, options, mouse=not args.no_mouse)

        code = asyncio.run(main())
    finally:
        if not chosen:
            shutil.rmtree(data_dir, ignore_errors=True)
    if chosen:
        print(f"Demo state kept in {data_dir}.")
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from tf_console.console import ConsoleService
    from tf_console.ui import ConsoleOptions, run_console

    _check_terminal()
    runtime = Runtime.load(args.data_dir, lease_kind="console", read_only=args.read_only)
    log_path = setup_logging(runtime.ctx.data_dir)

    async def main() -> int:
        async with runtime.started() as rt:
            if not rt.marketplaces and not rt.disabled:
                raise UserError("No marketplace is configured; run `tf-console doctor` to see what to set.")
            service = ConsoleService(rt, read_only=args.read_only)
            options = ConsoleOptions(ansi=args.ansi, log_path=log_path)
            return await run_console(service, options, mouse=not args.no_mouse)

    return asyncio.run(main())
