"""The ``tf-console`` command line.

Each command family lives in its own module exposing ``register(subparsers)``;
a command sets ``func`` (``(args) -> int``) on its parser.  Errors reach the
user as sentences on stderr, never as tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from tf_console import __version__
from tf_console.errors import UserError
from tf_console.marketplaces.redact import install_log_redaction
from tf_console.paths import set_private_umask

# Command modules, in the order their commands appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "tf_console.cli.setup",
    "tf_console.cli.sync",
    "tf_console.cli.data",
    "tf_console.cli.sandbox",
    "tf_console.cli.production",
    "tf_console.cli.inventory",
    "tf_console.cli.console",
    "tf_console.cli.messages",
    "tf_console.cli.report",
    "tf_console.cli.audit",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tf-console",
        description="TitanForge Console: orders, shipping and print production for Amazon, eBay and Etsy.",
    )
    parser.add_argument("--version", action="version", version=f"tf-console {__version__}")
    parser.add_argument(
        "--data-dir", default=None, help="state folder (default: TF_DATA_DIR or the user data dir)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # a family not built yet is simply absent from --help
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    set_private_umask()
    # Warnings and errors go to stderr (journald under systemd); every record is scrubbed of
    # tokens, secrets and registered PII before any handler writes it.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except UserError as exc:
        print(f"tf-console: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tf-console: interrupted.", file=sys.stderr)
        return 130


def run() -> None:
    sys.exit(main())
