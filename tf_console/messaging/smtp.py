"""E-mail over SMTP (``TF_SMTP_URL``): STARTTLS on ``smtp://``, TLS from the first byte on ``smtps://``.

Credentials never travel in the clear: a server on ``smtp://`` that does not offer
STARTTLS gets nothing.  Certificates are verified (the system's CAs unless an SSL
context is given).  What happened to a message is told apart the way the outbox
needs it: :class:`MailNotSent` when the server certainly did not take it (refused
before or at the end of DATA, or the conversation broke before DATA) — safe to
try again unless ``permanent`` — and :class:`MailOutcomeUnknown` when the
connection broke while the message was being handed over, so it may have been
accepted and must not be sent again.
"""

from __future__ import annotations

import email.utils
import hashlib
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import unquote, urlsplit

import anyio.to_thread
from pydantic import SecretStr

from tf_console.config import Settings

DEFAULT_TIMEOUT = 30.0


class MailNotSent(Exception):
    """The server did not take the message; ``permanent`` when sending it again cannot help
    until something is fixed (a refused address, a wrong password…)."""

    def __init__(self, sentence: str, *, permanent: bool = False, config: bool = False) -> None:
        super().__init__(sentence)
        self.permanent = permanent
        self.config = config  # the owner must fix TF_SMTP_URL / TF_SMTP_FROM; retried after a long pause


class MailOutcomeUnknown(Exception):
    """The connection broke while the message was handed over: it may have been accepted."""


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    host: str
    port: int
    implicit_tls: bool
    username: str
    password: SecretStr = field(repr=False)
    from_address: str

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig | None:
        """The SMTP server from ``TF_SMTP_URL`` (None when unset); the sender is ``TF_SMTP_FROM``,
        else the URL's user name when it is an address."""
        secret = settings.smtp_url
        if secret is None:
            return None
        parts = urlsplit(secret.get_secret_value())
        implicit = parts.scheme == "smtps"
        username = unquote(parts.username or "")
        sender = settings.smtp_from or (username if "@" in username else "")
        return cls(
            host=parts.hostname or "",
            port=parts.port or (465 if implicit else 587),
            implicit_tls=implicit,
            username=username,
            password=SecretStr(unquote(parts.password or "")),
            from_address=sender,
        )

    @property
    def describe(self) -> str:
        how = "TLS" if self.implicit_tls else "STARTTLS"
        return f"{self.host}:{self.port} ({how})"


def message_id_for(key: str, from_address: str) -> str:
    """A Message-ID stable per outbox item, so a receiving server can spot a duplicate."""
    _name, address = email.utils.parseaddr(from_address)
    domain = address.rpartition("@")[2] or "tf-console.invalid"
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def build_message(config: SmtpConfig, to: str, subject: str, body: str, key: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config.from_address
    message["To"] = to
    message["Subject"] = " ".join(subject.split())
    message["Date"] = email.utils.formatdate(localtime=False, usegmt=True)
    message["Message-ID"] = message_id_for(key, config.from_address)
    message.set_content(body)
    return message


def _refused(code: int, what: str, said: bytes | str) -> MailNotSent:
    text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
    text = " ".join(text.split())[:200]
    permanent = code >= 500
    later = "" if permanent else "; it is tried again later"
    return MailNotSent(f"the mail server refused {what} ({code} {text}){later}", permanent=permanent)


class SmtpMailer:
    def __init__(
        self,
        config: SmtpConfig,
        *,
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        local_hostname: str | None = None,
    ) -> None:
        self.config = config
        self._ssl = ssl_context or ssl.create_default_context()
        self._timeout = timeout
        self._local_hostname = local_hostname

    def problem(self) -> str:
        """A sentence when the configuration cannot work ("" when it can)."""
        if not self.config.host:
            return "TF_SMTP_URL names no host."
        if not self.config.from_address:
            return "Set TF_SMTP_FROM (the From address of e-mail); TF_SMTP_URL's user is not an address."
        return ""

    async def send(self, to: str, subject: str, body: str, *, key: str) -> str:
        return await anyio.to_thread.run_sync(self.send_blocking, to, subject, body, key)

    def send_blocking(self, to: str, subject: str, body: str, key: str) -> str:
        """Hand one message to the server; returns its answer. Raises MailNotSent or MailOutcomeUnknown."""
        problem = self.problem()
        if problem:
            raise MailNotSent(problem, permanent=True, config=True)
        _name, address = email.utils.parseaddr(to)
        if "@" not in address or any(ch in to for ch in "\r\n"):
            raise MailNotSent("the buyer's e-mail address is not usable", permanent=True)
        message = build_message(self.config, to, subject, body, key)
        connection = self._connect()
        try:
            self._handshake(connection)
            code, said = connection.mail(email.utils.parseaddr(self.config.from_address)[1])
            if code != 250:
                raise _refused(code, "the sender address", said)
            code, said = connection.rcpt(address)
            if code not in (250, 251):
                raise _refused(code, "the buyer's address", said)
            return self._data(connection, message)
        finally:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()

    def _connect(self) -> smtplib.SMTP:
        config = self.config
        try:
            if config.implicit_tls:
                return smtplib.SMTP_SSL(
                    config.host,
                    config.port,
                    local_hostname=self._local_hostname,
                    timeout=self._timeout,
                    context=self._ssl,
                )
            return smtplib.SMTP(
                config.host, config.port, local_hostname=self._local_hostname, timeout=self._timeout
            )
        except ssl.SSLCertVerificationError as exc:
            raise MailNotSent(
                f"the mail server {config.describe} has a certificate that cannot be trusted "
                f"({exc.verify_message}); check TF_SMTP_URL",
                permanent=True,
                config=True,
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailNotSent(
                f"the mail server {config.describe} could not be reached ({type(exc).__name__}); "
                "it is tried again later"
            ) from None

    def _handshake(self, connection: smtplib.SMTP) -> None:
        config = self.config
        try:
            connection.ehlo()
            if not config.implicit_tls:
                if not connection.has_extn("starttls"):
                    raise MailNotSent(
                        f"the mail server {config.describe} does not offer STARTTLS, so nothing was sent "
                        "(credentials and buyer addresses never travel unencrypted); use a server that "
                        "does, or smtps://",
                        permanent=True,
                        config=True,
                    )
                connection.starttls(context=self._ssl)
                connection.ehlo()
            if config.username:
                self._login(connection)
        except smtplib.SMTPAuthenticationError:
            raise MailNotSent(
                f"the mail server {config.describe} refused the user name or password in TF_SMTP_URL",
                permanent=True,
                config=True,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise MailNotSent(
                f"the mail server {config.describe} has a certificate that cannot be trusted "
                f"({exc.verify_message}); check TF_SMTP_URL",
                permanent=True,
                config=True,
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _refused(exc.smtp_code, "the connection", exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailNotSent(
                f"the conversation with the mail server {config.describe} broke before anything was sent "
                f"({type(exc).__name__}); it is tried again later"
            ) from None

    def _login(self, connection: smtplib.SMTP) -> None:
        """One attempt with the first mechanism both sides know (smtplib's ``login`` would try
        every mechanism in turn, and some servers hang up after the first refusal)."""
        config = self.config
        offered = connection.esmtp_features.get("auth", "").upper().split()
        for mechanism in ("PLAIN", "LOGIN"):
            if mechanism in offered:
                connection.user, connection.password = config.username, config.password.get_secret_value()
                method = connection.auth_plain if mechanism == "PLAIN" else connection.auth_login
                connection.auth(mechanism, method, initial_response_ok=True)
                return
        connection.login(config.username, config.password.get_secret_value())

    def _data(self, connection: smtplib.SMTP, message: EmailMessage) -> str:
        try:
            code, said = connection.data(message.as_bytes())
        except smtplib.SMTPDataError as exc:
            # An explicit refusal, before or after the message: the server did not take it.
            raise _refused(exc.smtp_code, "the message", exc.smtp_error) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise MailOutcomeUnknown(
                f"the connection to the mail server {self.config.describe} broke while the message was "
                f"handed over ({type(exc).__name__}); it may have been delivered"
            ) from None
        if code != 250:
            # smtplib returns (rather than raises) the verdict given after the message.
            raise _refused(code, "the message", said)
        return f"{code} {said.decode('utf-8', 'replace')}".strip()
