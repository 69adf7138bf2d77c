"""Sending alerts out: e-mail over SMTP (``TF_SMTP_URL``) and a command (``TF_ALERT_COMMAND``).

Both are blocking and run in a worker thread.  A failure raises
:class:`DeliveryError` with a sentence that never quotes the SMTP password or the
server's own words; the service retries later.

The command runs without a shell (``shlex`` splits the setting), with a timeout
after which its whole process group is killed, with the alert as JSON on stdin,
and with an environment built from an allow-list: nothing of the process
environment reaches it except the basics a program needs (PATH, HOME, locale…),
so no token, secret or password can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import smtplib
import socket
import ssl
import subprocess
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Protocol
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from tf_console.alerts.model import AlertEvent
from tf_console.config import is_loopback_host

SMTP_TIMEOUT = 15.0
#: environment variables a command may see; everything else (tokens, secrets, TF_*) is left out
SAFE_ENVIRONMENT = frozenset(
    {"PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "TZ", "TMPDIR", "SHELL", "TERM"}
)
_SAFE_PREFIXES = ("LC_",)
_STDERR_SHOWN = 200


class DeliveryError(Exception):
    """A delivery failed; ``str()`` is a sentence safe to show and log."""


class Channel(Protocol):
    name: str

    def send(self, events: Sequence[AlertEvent]) -> None: ...


def safe_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in environ.items()
        if name in SAFE_ENVIRONMENT or name.startswith(_SAFE_PREFIXES)
    }


# ---------------------------------------------------------------------------
# E-mail


def parse_recipients(text: str | None) -> list[str]:
    if not text:
        return []
    return [part.strip() for part in text.replace(";", ",").split(",") if part.strip()]


def describe_events(events: Sequence[AlertEvent]) -> tuple[str, str]:
    """Subject and plain-text body of an alert e-mail."""
    if len(events) == 1:
        subject = f"[tf-console] {events[0].headline}"
    else:
        fired = sum(1 for e in events if e.event == "fired")
        cleared = len(events) - fired
        parts = [f"{fired} firing"] if fired else []
        if cleared:
            parts.append(f"{cleared} cleared")
        subject = f"[tf-console] {len(events)} alerts ({', '.join(parts)}): {events[0].title}"
    lines: list[str] = []
    for event in events:
        lines.append(event.headline)
        lines.append(f"  {event.sentence}")
        lines.append(
            f"  since {event.since:%Y-%m-%d %H:%M} UTC; {event.event} {event.at:%Y-%m-%d %H:%M} UTC; "
            f"key {event.key}"
        )
        lines.append("")
    lines.append("Sent by tf-console. `tf-console doctor` lists the alerts still active.")
    return subject, "\n".join(lines) + "\n"


class EmailChannel:
    """One message per batch of events, to every recipient.

    ``smtp://`` upgrades with STARTTLS; the plain protocol (and a login over it) is
    allowed only to a loopback server.  ``smtps://`` is TLS from the first byte.
    """

    name = "email"

    def __init__(
        self,
        url: SecretStr,
        recipients: Sequence[str],
        *,
        sender: str | None = None,
        timeout: float = SMTP_TIMEOUT,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        if not recipients:
            raise ValueError("an e-mail channel needs at least one recipient")
        self._url = url
        parts = urlsplit(url.get_secret_value())
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port or (465 if parts.scheme == "smtps" else 587)
        self._user = unquote(parts.username) if parts.username else ""
        self._password = SecretStr(unquote(parts.password) if parts.password else "")
        self.recipients = list(recipients)
        self.sender = sender or (self._user if "@" in self._user else f"tf-console@{socket.gethostname()}")
        self.timeout = timeout
        self._tls = tls_context

    def __repr__(self) -> str:
        return f"EmailChannel({self.scheme}://{self.host}:{self.port} → {len(self.recipients)} recipient(s))"

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    def message(self, events: Sequence[AlertEvent]) -> EmailMessage:
        subject, body = describe_events(events)
        message = EmailMessage()
        message["Subject"] = subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = make_msgid(domain="tf-console.local")
        message.set_content(body)
        return message

    def send(self, events: Sequence[AlertEvent]) -> None:
        if not events:
            return
        message = self.message(events)
        context = self._tls or ssl.create_default_context()
        try:
            if self.scheme == "smtps":
                with smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context) as smtp:
                    self._login_and_send(smtp, message)
                return
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
                elif not is_loopback_host(self.host):
                    raise DeliveryError(
                        f"The mail server {self.where} does not offer STARTTLS, so the alert e-mail was "
                        "not sent in plain text; use a server with STARTTLS or smtps:// in TF_SMTP_URL."
                    )
                self._login_and_send(smtp, message)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError:
            raise DeliveryError(
                f"The mail server {self.where} refused the user name or password in TF_SMTP_URL; "
                "the alert e-mail was not sent."
            ) from None
        except smtplib.SMTPRecipientsRefused:
            raise DeliveryError(
                f"The mail server {self.where} refused the recipients in TF_ALERT_EMAIL_TO; "
                "the alert e-mail was not sent."
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(
                f"The alert e-mail could not be sent through {self.where} ({type(exc).__name__}); "
                "it will be tried again."
            ) from None

    def _login_and_send(self, smtp: smtplib.SMTP, message: EmailMessage) -> None:
        if self._user:
            smtp.login(self._user, self._password.get_secret_value())
        smtp.send_message(message, from_addr=self.sender, to_addrs=self.recipients)


# ---------------------------------------------------------------------------
# Command


class CommandChannel:
    """Runs the command once per event with the event's JSON on stdin."""

    name = "command"

    def __init__(self, command: str, *, timeout: float, environ: Mapping[str, str] | None = None) -> None:
        self.argv = shlex.split(command)
        if not self.argv:
            raise ValueError("the alert command is empty")
        self.timeout = timeout
        self._environ = environ

    def __repr__(self) -> str:
        return f"CommandChannel({self.argv[0]!r})"

    def environment(self) -> dict[str, str]:
        return safe_environment(os.environ if self._environ is None else self._environ)

    def send(self, events: Sequence[AlertEvent]) -> None:
        for event in events:
            self.run(event)

    def run(self, event: AlertEvent) -> None:
        payload = (json.dumps(event.to_json(), ensure_ascii=False) + "\n").encode("utf-8")
        program = self.argv[0]
        try:
            process = subprocess.Popen(
                self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=self.environment(),
                start_new_session=True,  # its own process group: a timeout kills its children too
                close_fds=True,
            )
        except OSError as exc:
            raise DeliveryError(
                f"TF_ALERT_COMMAND could not start {program} ({type(exc).__name__}); check the program "
                "path (it runs without a shell and sees only PATH, HOME and locale variables)."
            ) from None
        try:
            _, stderr = process.communicate(payload, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise DeliveryError(
                f"TF_ALERT_COMMAND ({program}) did not finish within {self.timeout:g} s and was stopped."
            ) from None
        if process.returncode != 0:
            said = stderr.decode("utf-8", "replace").strip().splitlines()
            hint = f"; it said: {said[-1][:_STDERR_SHOWN]}" if said else ""
            raise DeliveryError(
                f"TF_ALERT_COMMAND ({program}) exited with status {process.returncode}{hint}."
            )
