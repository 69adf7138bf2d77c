"""``doctor`` and ``creds set|get|delete``."""

from __future__ import annotations

import argparse
import getpass
import io
import re
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

from tf_console.config import (
    CONFIG_DOC,
    CREDENTIAL_VARIABLES,
    ROTATING_VARIABLES,
    validate_value,
    value_origins,
)
from tf_console.errors import UserError
from tf_console.keyring_access import KeyringUnavailable, as_clause
from tf_console.paths import write_private

ENV_LOCAL = ".env.local"
# Shorter secrets show no leading characters at all when masked.
_MASK_MIN_LENGTH = 16
_MASK_SHOWN = 4


def register(sub: Any) -> None:
    doctor = sub.add_parser(
        "doctor",
        help="check configuration, credentials, keyring, data key and state folder (never prints a secret)",
    )
    doctor.add_argument(
        "--check",
        action="store_true",
        help="also make one cheap authenticated call per configured platform",
    )
    doctor.set_defaults(func=cmd_doctor)

    creds = sub.add_parser(
        "creds", help="store, inspect or delete a credential (in the keyring, or .env.local without one)"
    )
    actions = creds.add_subparsers(dest="creds_action", metavar="ACTION", required=True)
    names = ", ".join(CREDENTIAL_VARIABLES)

    set_parser = actions.add_parser(
        "set",
        help="store a credential",
        description=f"Store a credential. NAME is one of: {names}. The value is read from --value, "
        "else from standard input when it is not a terminal, else from a hidden prompt.",
    )
    set_parser.add_argument("name", metavar="NAME")
    set_parser.add_argument(
        "--value", help="the value (prefer the prompt or stdin: a command line lands in shell history)"
    )
    set_parser.set_defaults(func=cmd_creds_set)

    get_parser = actions.add_parser(
        "get", help="say whether a credential is set and where it comes from (masked, never the secret)"
    )
    get_parser.add_argument("name", metavar="NAME")
    get_parser.set_defaults(func=cmd_creds_get)

    delete_parser = actions.add_parser(
        "delete", help="remove a credential from the keyring and ./.env.local (and the token vault)"
    )
    delete_parser.add_argument("name", metavar="NAME")
    delete_parser.set_defaults(func=cmd_creds_delete)


# ---------------------------------------------------------------------------
# doctor


def cmd_doctor(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext
    from tf_console.doctor import Finding, Level, exit_code, render, run_doctor

    try:
        ctx = AppContext.load(args.data_dir)
    except UserError as exc:
        findings = [Finding("Configuration", Level.ERROR, str(exc))]
    else:
        findings = run_doctor(ctx)
        if getattr(args, "check", False) and exit_code(findings) == 0:
            import asyncio

            from tf_console.doctor_check import online_findings
            from tf_console.runtime import Runtime

            findings += asyncio.run(online_findings(Runtime(ctx, lease_kind="cli")))
    sys.stdout.write(render(findings))
    return exit_code(findings)


# ---------------------------------------------------------------------------
# creds


def credential_name(raw: str) -> str:
    name = raw.strip().upper()
    if name not in CREDENTIAL_VARIABLES:
        raise UserError(
            f"{raw} is not a credential tf-console knows; use one of {', '.join(CREDENTIAL_VARIABLES)} "
            f"(other settings go in the environment or .env.local, see {CONFIG_DOC})."
        )
    return name


def mask(value: str) -> str:
    """``AgAA…(52 chars)``: enough to recognise a value, never enough to use it."""
    shown = value[:_MASK_SHOWN] if len(value) >= _MASK_MIN_LENGTH else ""
    return f"{shown}…({len(value)} chars)"


def _read_value(name: str, given: str | None) -> str:
    if given is not None:
        value = given
    elif sys.stdin is not None and not sys.stdin.isatty():
        value = sys.stdin.read()
    else:
        value = getpass.getpass(f"{name}: ")
    value = value.strip()
    if not value:
        raise UserError(f"No value was given for {name}; nothing was stored.")
    return value


def dotenv_line(name: str, value: str) -> str:
    """``NAME='value'`` in a form python-dotenv reads back exactly (checked, not assumed)."""
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise UserError(
            f"The value for {name} contains a line break or control character; nothing was stored."
        )
    if "'" not in value:
        line = f"{name}='{value}'"
    elif "${" in value:
        raise UserError(
            f"The value for {name} contains both ' and ${{ and cannot be written to an env file "
            f"safely; set it in the environment instead."
        )
    else:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        line = f'{name}="{escaped}"'
    if dotenv_values(stream=io.StringIO(line + "\n")).get(name) != value:
        raise UserError(
            f"The value for {name} cannot be written to an env file exactly; "
            "set it in the environment instead."
        )
    return line


def _assignment_pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"^\s*(?:export\s+)?{re.escape(name)}\s*=", re.IGNORECASE)


def write_env_entry(path: Path, name: str, value: str) -> None:
    """Set ``name`` in the env file ``path`` (created 0600), keeping every other line."""
    new_line = dotenv_line(name, value)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    pattern = _assignment_pattern(name)
    replaced = False
    out: list[str] = []
    for line in lines:
        if pattern.match(line):
            if not replaced:
                out.append(new_line)
                replaced = True
            continue
        out.append(line)
    if not replaced:
        out.append(new_line)
    write_private(path, ("\n".join(out) + "\n").encode("utf-8"))


def remove_env_entry(path: Path, name: str) -> bool:
    if not path.exists():
        return False
    lines = path.read_text(encoding="utf-8").splitlines()
    pattern = _assignment_pattern(name)
    kept = [line for line in lines if not pattern.match(line)]
    if len(kept) == len(lines):
        return False
    write_private(path, ("\n".join(kept) + "\n" if kept else "").encode("utf-8"))
    return True


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def cmd_creds_set(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext

    name = credential_name(args.name)
    value = _read_value(name, args.value)
    validate_value(name, value)
    dotenv_line(name, value)  # refuse values an env file cannot hold before writing anywhere
    ctx = AppContext.load(args.data_dir)

    reason = ctx.keyring.info().problem_clause
    stored_in: str | None = None
    if ctx.keyring.usable:
        try:
            ctx.keyring.set(name, value)
            stored_in = ctx.keyring.backend_description()
            print(f"Stored {name} in {stored_in}.")
        except KeyringUnavailable as exc:
            reason = as_clause(str(exc))
    if stored_in is None:
        stored_in = _write_env_local(ctx.cwd, name, value, reason=reason)
    if ctx.keyring.usable and ctx.keyring.insecure:
        print(f"Warning: {ctx.keyring.info().problem}", file=sys.stderr)

    origins = value_origins(name, cwd=ctx.cwd, config_dir=ctx.config_dir, keyring=ctx.keyring)
    configured = origins[0].value.get_secret_value() if origins else None
    if name in ROTATING_VARIABLES and ctx.vault_path.exists():
        # The newly set token replaces the rotated one, whatever source it shadows.
        ctx.vault().store(name, value, env_value=configured)
        print(f"The token vault's rotated {name} was replaced by the new value.")
    elif origins and configured != value:
        print(
            f"Note: {name} is also set in {origins[0].location}, which takes precedence over "
            f"{stored_in}; remove it there for the new value to take effect.",
            file=sys.stderr,
        )
    from tf_console.alerts.credentials import note_credential_change

    in_force = configured == value or name in ROTATING_VARIABLES
    note_credential_change(
        ctx, "creds.set", name, "ok", f"stored in {stored_in}", value=value if in_force else None
    )
    return 0


def _write_env_local(cwd: Path, name: str, value: str, *, reason: str) -> str:
    path = cwd / ENV_LOCAL
    write_env_entry(path, name, value)
    print(
        f"There is no usable keyring ({reason}), so {name} was written to {path} "
        f"(readable only by you; keep it out of version control)."
    )
    return str(path)


def cmd_creds_get(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext

    name = credential_name(args.name)
    ctx = AppContext.load(args.data_dir)
    origins = value_origins(name, cwd=ctx.cwd, config_dir=ctx.config_dir, keyring=ctx.keyring)
    configured = origins[0].value.get_secret_value() if origins else None
    described = [f"{origin.location}, {mask(origin.value.get_secret_value())}" for origin in origins]
    if name in ROTATING_VARIABLES and ctx.vault_path.exists():
        vault = ctx.vault()
        entry = vault.entry(name)
        if entry is not None:
            words = (
                f"the token vault (rotated {_when(entry.stored_at)}), {mask(entry.value.get_secret_value())}"
            )
            if vault.persisted_wins(name, configured):
                described.insert(0, words)
            else:
                described.append(words + " — superseded because the configured value changed")
    if not described:
        keyring_words = "the keyring" if ctx.keyring.usable else "no keyring (none is usable)"
        print(
            f"{name} is not set (looked in the environment, .env.local and .env in {ctx.cwd} and "
            f"{ctx.config_dir}, and {keyring_words}). Set it with: tf-console creds set {name}"
        )
        return 1
    print(f"{name} is set; in use: {described[0]}.")
    for other in described[1:]:
        print(f"Also set, not used: {other}.")
    return 0


def cmd_creds_delete(args: argparse.Namespace) -> int:
    from tf_console.context import AppContext

    name = credential_name(args.name)
    ctx = AppContext.load(args.data_dir)
    removed: list[str] = []
    if ctx.keyring.usable:
        try:
            if ctx.keyring.delete(name):
                removed.append(ctx.keyring.backend_description())
        except KeyringUnavailable as exc:
            print(f"Warning: {exc}", file=sys.stderr)
    env_local = ctx.cwd / ENV_LOCAL
    if remove_env_entry(env_local, name):
        removed.append(str(env_local))
    if name in ROTATING_VARIABLES and ctx.vault_path.exists() and ctx.vault().forget(name):
        removed.append("the token vault")
    if removed:
        print(f"Deleted {name} from {' and '.join(removed)}.")
    else:
        print(f"{name} was not stored in the keyring or in {env_local}; nothing was deleted.")
    remaining = value_origins(name, cwd=ctx.cwd, config_dir=ctx.config_dir, keyring=ctx.keyring)
    for origin in remaining:
        print(f"{name} is still set in {origin.location}; remove it there if it should go.")
    from tf_console.alerts.credentials import note_credential_change

    where = f"from {' and '.join(removed)}" if removed else "nothing was stored"
    note_credential_change(ctx, "creds.delete", name, "ok" if removed else "nothing-deleted", where)
    return 0 if removed else 1
