"""E-mail over a real SMTP server on loopback (aiosmtpd, started here): STARTTLS, login,
refusals told apart from lost answers, and Etsy production updates sent once."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from tests.messaging_helpers import shop
from tf_console.messaging import MessageEvent
from tf_console.messaging.smtp import MailNotSent, MailOutcomeUnknown, SmtpConfig, SmtpMailer
from tf_console.models import Platform
from tf_console.sync.outbox import OutboxState

USER, PASSWORD = "shop@titanforge.example", "known-smtp-password-77"
SENDER = "TitanForge <orders@titanforge.example>"


@dataclass
class Inbox:
    messages: list[tuple[str, list[str], Message]] = field(default_factory=list)
    refuse_rcpt: str = ""
    drop_after_data: bool = False

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.refuse_rcpt and address == self.refuse_rcpt:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), message_from_bytes(envelope.content))
        )
        if self.drop_after_data:
            server.transport.close()  # accepted, but the answer never reaches the client
        return "250 2.0.0 queued as TF1"


def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword) and data.login == USER.encode() and data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@dataclass
class Server:
    port: int
    inbox: Inbox
    client_context: ssl.SSLContext

    def config(self, password: str = PASSWORD) -> SmtpConfig:
        return SmtpConfig("127.0.0.1", self.port, False, USER, SecretStr(password), SENDER)

    def mailer(self, **kw: Any) -> SmtpMailer:
        return SmtpMailer(self.config(**kw), ssl_context=self.client_context, timeout=5.0)


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "smtp.crt", folder / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(tmp_path: Path, *, starttls: bool) -> Iterator[Server]:
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    inbox = Inbox()
    options: dict[str, Any] = {"authenticator": authenticator, "auth_require_tls": True}
    if starttls:
        options.update(tls_context=server_context, require_starttls=True)
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port(), **options)
    controller.start()
    try:
        yield Server(controller.port, inbox, ssl.create_default_context(cafile=str(cert)))
    finally:
        controller.stop()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, starttls=True)


@pytest.fixture
def plain_server(tmp_path: Path) -> Iterator[Server]:
    yield from _serve(tmp_path, starttls=False)


def test_mail_goes_out_over_starttls_with_login(server: Server) -> None:
    answer = server.mailer().send_blocking(
        "jane@buyer.example", "Your order 42", "Hi Jane,\n\nit prints.", "k1"
    )
    assert answer.startswith("250")
    ((mail_from, rcpt, message),) = server.inbox.messages
    assert mail_from == "orders@titanforge.example" and rcpt == ["jane@buyer.example"]
    assert message["From"] == SENDER
    assert message["Subject"] == "Your order 42" and message["To"] == "jane@buyer.example"
    assert message["Message-ID"].endswith("@titanforge.example>")
    assert "it prints." in message.get_payload()


def test_a_wrong_password_is_a_configuration_problem(server: Server) -> None:
    with pytest.raises(MailNotSent) as caught:
        server.mailer(password="wrong").send_blocking("jane@buyer.example", "s", "b", "k2")
    assert caught.value.config and "TF_SMTP_URL" in str(caught.value)
    assert PASSWORD not in str(caught.value) and "wrong" not in str(caught.value)
    assert server.inbox.messages == []


def test_a_server_without_starttls_gets_nothing(plain_server: Server) -> None:
    with pytest.raises(MailNotSent, match="STARTTLS") as caught:
        plain_server.mailer().send_blocking("jane@buyer.example", "s", "b", "k3")
    assert caught.value.permanent and plain_server.inbox.messages == []


def test_an_untrusted_certificate_is_refused(server: Server) -> None:
    mailer = SmtpMailer(server.config(), ssl_context=ssl.create_default_context(), timeout=5.0)
    with pytest.raises(MailNotSent, match="certificate"):
        mailer.send_blocking("jane@buyer.example", "s", "b", "k4")
    assert server.inbox.messages == []


def test_a_refused_address_is_final(server: Server) -> None:
    server.inbox.refuse_rcpt = "gone@buyer.example"
    with pytest.raises(MailNotSent, match="550") as caught:
        server.mailer().send_blocking("gone@buyer.example", "s", "b", "k5")
    assert caught.value.permanent and not caught.value.config


def test_an_answer_lost_after_the_data_is_an_unknown_outcome(server: Server) -> None:
    server.inbox.drop_after_data = True
    with pytest.raises(MailOutcomeUnknown):
        server.mailer().send_blocking("jane@buyer.example", "s", "b", "k6")
    assert len(server.inbox.messages) == 1


def test_nobody_listening_is_worth_a_retry() -> None:
    config = SmtpConfig("127.0.0.1", _free_port(), False, USER, SecretStr(PASSWORD), SENDER)
    with pytest.raises(MailNotSent) as caught:
        SmtpMailer(config, timeout=2.0).send_blocking("jane@buyer.example", "s", "b", "k7")
    assert not caught.value.permanent


async def test_etsy_production_update_is_mailed_once_to_the_buyer(server: Server, tmp_path: Path) -> None:
    values = {"TF_SMTP_URL": f"smtp://{USER}:{PASSWORD}@127.0.0.1:{server.port}", "TF_SMTP_FROM": SENDER}
    options = {"backfill": 0, "orders_per_hour": 20.0}
    async with shop(
        tmp_path,
        Platform.ETSY,
        events="queued",
        values=values,
        sim_options=options,
        ssl_context=server.client_context,
    ) as s:
        assert s.service.warnings() == []
        s.service.scan()  # the opt-in moment
        s.clock.advance(3 * 3600)
        await s.poll()
        created = [i for i in s.service.scan() if i.payload["event"] == MessageEvent.QUEUED.value]
        with_address = [i for i in created if i.state is OutboxState.PENDING]
        assert with_address, "new paid Etsy orders with prints"
        item = with_address[0]
        order = s.runtime.store.orders.get(Platform.ETSY, item.order_id)
        assert order is not None and order.buyer is not None
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.DONE, done.answer
        ((_from, rcpt, message),) = server.inbox.messages
        assert rcpt == [order.buyer.email]
        assert order.order_id in message["Subject"]
        assert f"Hi {order.buyer.name.split()[0]}," in message.get_payload()
        assert await s.deliver(item.item_id) == done and len(server.inbox.messages) == 1
        (view,) = s.service.history(Platform.ETSY, order.order_id)
        assert view.status == "sent" and view.recipient == order.buyer.email
