"""The Alerts section of ``tf-console doctor``: active alerts, delivery, credential ages.

Read from ``alerts.json`` and ``credential_ages.json`` without the store or the
network; what the daemon (or a polling console) last found is what is shown.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta

from tf_console.alerts.credentials import LIFETIMES, CredentialAges, applies, credential_ages
from tf_console.alerts.delivery import parse_recipients
from tf_console.alerts.rules import HOW_WORDS, duration_words, local_time
from tf_console.alerts.state import AlertStateFile
from tf_console.context import AppContext
from tf_console.doctor import Finding, Level
from tf_console.models import MARKETPLACES

SECTION = "Alerts"
_SHOWN = 8


def alert_findings(ctx: AppContext) -> Iterator[Finding]:
    tz = ctx.settings.tzinfo
    state = AlertStateFile(ctx.data_dir).read()
    active = state.sorted_active()
    if state.evaluated_at is None:
        yield Finding(
            SECTION,
            Level.INFO,
            "No alert has been evaluated yet: the daemon (or a console that polls) evaluates the "
            "alert rules after every poll.",
        )
    elif not active:
        yield Finding(
            SECTION, Level.OK, f"No alert is active (last evaluated {local_time(state.evaluated_at, tz)})."
        )
    for alert in active[:_SHOWN]:
        clearing = " (cause gone; clears soon if it stays away)" if alert.clearing else ""
        yield Finding(
            SECTION,
            Level.WARN,
            f"{alert.severity.value.upper()} since {local_time(alert.since, tz)}: {alert.sentence}{clearing}",
        )
    if len(active) > _SHOWN:
        yield Finding(
            SECTION, Level.WARN, f"{len(active) - _SHOWN} more active alert(s); the console lists all."
        )
    yield from _delivery_findings(ctx)
    for channel, problem in sorted(state.delivery_problems.items()):
        if problem:
            yield Finding(SECTION, Level.WARN, f"The last alert delivery by {channel} failed: {problem}")
    owed = sum(len(p.events) for p in state.pending)
    if owed:
        yield Finding(SECTION, Level.WARN, f"{owed} alert event(s) are waiting to be delivered again.")
    for platform in MARKETPLACES:
        check = state.checks.get(platform.value)
        if check is None:
            continue
        verdict = {True: "passed", False: "FAILED", None: "could not run"}[check.ok]
        yield Finding(
            SECTION,
            Level.INFO if check.ok is not False else Level.WARN,
            f"The last {platform.label} credential check ({local_time(check.at, tz)}) {verdict}: "
            + check.sentence,
        )
    yield from _credential_age_findings(ctx)


def _delivery_findings(ctx: AppContext) -> Iterator[Finding]:
    settings = ctx.settings
    recipients = parse_recipients(settings.alert_email_to)
    email = settings.smtp_url is not None and bool(recipients)
    if settings.smtp_url is not None and not recipients:
        yield Finding(
            SECTION,
            Level.INFO,
            "TF_SMTP_URL is set but TF_ALERT_EMAIL_TO is not, so alerts are not e-mailed; set "
            "TF_ALERT_EMAIL_TO to the addresses that should get them.",
        )
    if recipients and settings.smtp_url is None:
        yield Finding(
            SECTION,
            Level.WARN,
            "TF_ALERT_EMAIL_TO is set but TF_SMTP_URL is not, so no alert e-mail can be sent; set it with "
            "tf-console creds set TF_SMTP_URL.",
        )
    if email:
        yield Finding(SECTION, Level.OK, f"Alerts are e-mailed to {', '.join(recipients)}.")
    command = settings.alert_command
    if command:
        program = shlex.split(command)[0]
        if shutil.which(program) is None:
            yield Finding(
                SECTION,
                Level.WARN,
                f"TF_ALERT_COMMAND runs {program}, which is not an executable found on PATH; alerts cannot "
                "reach it. Give the full path of the program.",
            )
        else:
            yield Finding(
                SECTION,
                Level.OK,
                f"Alerts are also handed to {program} (JSON on stdin, no shell, "
                f"{settings.alert_command_timeout} s at most, no secret in its environment).",
            )
    if not email and not command:
        yield Finding(
            SECTION,
            Level.INFO,
            "Alerts show only in the console and here; set TF_ALERT_EMAIL_TO (with TF_SMTP_URL) or "
            "TF_ALERT_COMMAND to be told when nobody is looking.",
        )


def _credential_age_findings(ctx: AppContext) -> Iterator[Finding]:
    settings = ctx.settings
    configured = {name: value for name in LIFETIMES if (value := settings.value(name))}
    if not configured:
        return
    records = CredentialAges.standalone(ctx.data_dir, ctx.clock).records()
    now = ctx.clock.now()
    tz = settings.tzinfo
    ages = {
        age.name: age for age in credential_ages(records, configured, rotated_at=_rotations(ctx, configured))
    }
    for name, value in configured.items():
        if not applies(name, value) or not ctx.platform_status(LIFETIMES[name].platform).enabled:
            continue
        age = ages.get(name)
        if age is None:
            yield Finding(
                SECTION,
                Level.INFO,
                f"{name}: not seen by a running tf-console yet; its age counts from the first poll, "
                "or from `tf-console creds set`.",
            )
            continue
        remaining = age.remaining(now)
        warn = remaining <= timedelta(days=settings.alert_credential_days)
        state = (
            f"it expires around {local_time(age.expires_at, tz)} (in {duration_words(remaining)})"
            if remaining > timedelta(0)
            else f"it has probably expired ({local_time(age.expires_at, tz)})"
        )
        how = HOW_WORDS.get(age.how, "recorded on")
        yield Finding(
            SECTION,
            Level.WARN if warn else Level.OK,
            f"{name} was {how} {local_time(age.since, tz)}; {age.life.rule}, so {state}."
            + (f" {age.life.renew}" if warn else ""),
        )


def _rotations(ctx: AppContext, configured: dict[str, str]) -> dict[str, datetime]:
    """Etsy refresh tokens renewed by tf-console itself live in the token vault."""
    if not ctx.vault_path.exists():
        return {}
    try:
        vault = ctx.vault()
        rotated: dict[str, datetime] = {}
        for name in LIFETIMES:
            entry = vault.entry(name)
            if entry is not None and vault.persisted_wins(name, configured.get(name)):
                rotated[name] = entry.stored_at
        return rotated
    except Exception:  # the vault's own finding explains a missing key or a damaged file
        return {}
