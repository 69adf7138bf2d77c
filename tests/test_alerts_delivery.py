"""Alert delivery: e-mail to a real SMTP server on loopback (aiosmtpd, started here), and
TF_ALERT_COMMAND with JSON on stdin, no shell, a timeout and no secret in its environment."""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from tests.alerts_support import HealthyFake, open_shop
from tf_console.alerts import delivery
from tf_console.alerts.delivery import CommandChannel, DeliveryError, EmailChannel, safe_environment
from tf_console.alerts.model import AlertEvent, Rule, Severity
from tf_console.clock import FakeClock
from tf_console.marketplaces.base import TransientError
from tf_console.models import Platform

SMTP_USER = "alerts@shop.example"
SMTP_PASSWORD = "s3cret-Smtp-Pa55word"
SECRETS = {
    "AMAZON_CLIENT_SECRET": "amzn1.oa2-cs.v1.do-not-leak-0123456789",
    "ETSY_REFRESH_TOKEN": "12345678.etsy-refresh-do-not-leak",
    "EBAY_USER_TOKEN": "AgAAAA**do-not-leak**",
    "TF_SMTP_URL": f"smtp://{SMTP_USER}:{SMTP_PASSWORD}@mail.example:587",
    "GITHUB_TOKEN": "ghp_do-not-leak",
}


def event(seq: int = 1, kind: str = "fired") -> AlertEvent:
    return AlertEvent(
        seq=seq,
        event=kind,
        key="platform_failing:amazon",
        rule=Rule.PLATFORM_FAILING,
        subject="amazon",
        severity=Severity.CRITICAL,
        title="Amazon polls are failing",
        sentence="Amazon has failed 3 poll(s) in a row since 2026-11-02 15:00 UTC (15 min): HTTP 503.",
        at=datetime(2026, 11, 2, 15, 15, tzinfo=UTC),
        since=datetime(2026, 11, 2, 15, 0, tzinfo=UTC),
    )


# ---------------------------------------------------------------------------
# A real SMTP server on loopback


class Inbox:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(
            {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "data": envelope.content.decode()}
        )
        return "250 Message accepted"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login, password = data.login.decode(), data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == (SMTP_USER, SMTP_PASSWORD), handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box = Inbox()
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        auth_require_tls=False,  # loopback only: the channel refuses plain SMTP anywhere else
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def smtp_url(port: int, *, password: str = SMTP_PASSWORD) -> SecretStr:
    return SecretStr(f"smtp://{SMTP_USER.replace('@', '%40')}:{password}@127.0.0.1:{port}")


def test_an_alert_email_reaches_a_real_smtp_server_with_login(inbox: tuple[Inbox, int]) -> None:
    box, port = inbox
    channel = EmailChannel(smtp_url(port), ["owner@shop.example", "ops@shop.example"], timeout=5)
    channel.send([event(1), event(2, "cleared")])
    assert box.logins == [(SMTP_USER, SMTP_PASSWORD)]
    [message] = box.messages
    assert message["from"] == SMTP_USER
    assert message["to"] == ["owner@shop.example", "ops@shop.example"]
    data = message["data"]
    assert "Subject: [tf-console] 2 alerts (1 firing, 1 cleared): Amazon polls are failing" in data
    assert "FIRING critical: Amazon polls are failing" in data and "CLEARED critical" in data
    assert "3 poll(s) in a row" in data
    assert SMTP_PASSWORD not in data
    assert SMTP_PASSWORD not in repr(channel)


def test_a_wrong_password_is_a_sentence_without_the_password(inbox: tuple[Inbox, int]) -> None:
    _box, port = inbox
    channel = EmailChannel(smtp_url(port, password="wrong-Pa55word-here"), ["owner@shop.example"], timeout=5)
    with pytest.raises(DeliveryError) as caught:
        channel.send([event()])
    assert "refused the user name or password" in str(caught.value)
    assert "wrong-Pa55word-here" not in str(caught.value)


def test_plain_smtp_to_a_remote_server_is_refused(
    inbox: tuple[Inbox, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, port = inbox
    # Pretend 127.0.0.1 were a remote host: without STARTTLS nothing (and no password) is sent.
    monkeypatch.setattr(delivery, "is_loopback_host", lambda host: False)
    with pytest.raises(DeliveryError, match="does not offer STARTTLS"):
        EmailChannel(smtp_url(port), ["owner@shop.example"], timeout=5).send([event()])
    assert box.logins == [] and box.messages == []


async def test_alerts_are_emailed_once_and_retried_while_the_server_is_down(tmp_path: Path) -> None:
    port = free_port()
    clock = FakeClock()
    market = HealthyFake(clock)
    values = {"TF_SMTP_URL": smtp_url(port).get_secret_value(), "TF_ALERT_EMAIL_TO": "owner@shop.example"}
    shop = open_shop(tmp_path, clock=clock, markets={Platform.TEST: market}, values=values)
    box = Inbox()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate, auth_require_tls=False
    )
    try:
        market.fail_fetch = TransientError("Test answered 503.")
        for _ in range(3):
            clock.advance(300)
            await shop.round()  # the server is not running yet: the e-mail is owed
        assert [e.key for e in shop.events] == ["platform_failing:test"]
        state = shop.alerts.state()
        assert len(state.pending) == 1 and state.pending[0].attempts == 1
        assert "could not be sent through 127.0.0.1" in state.delivery_problems["email"]
        controller.start()
        clock.advance(30)
        await shop.round()
        assert box.messages == []  # not due yet: the retry waits a minute
        clock.advance(40)
        await shop.round()
        assert len(box.messages) == 1 and "FIRING critical: Test polls are failing" in box.messages[0]["data"]
        for _ in range(5):
            clock.advance(60)
            await shop.round()
        failing = [m for m in box.messages if "Test polls are failing" in m["data"]]
        assert len(failing) == 1  # delivered exactly once (other alerts may follow: it still fails)
        state = shop.alerts.state()
        assert state.pending == [] and state.delivery_problems["email"] == ""
    finally:
        controller.stop()
        shop.close()


# ---------------------------------------------------------------------------
# TF_ALERT_COMMAND

RECORDER = """
import json, os, sys
document = json.loads(sys.stdin.read())
with open(sys.argv[1], "a") as out:
    out.write(json.dumps({"alert": document, "env": dict(os.environ), "argv": sys.argv[1:]}) + "\\n")
"""


@pytest.fixture
def secret_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def recorder(tmp_path: Path) -> tuple[str, Path]:
    script = tmp_path / "record alert.py"  # a space in the path: no shell splits it wrongly
    script.write_text(RECORDER)
    out = tmp_path / "received.jsonl"
    return f"{sys.executable} '{script}' '{out}'", out


def test_the_command_gets_valid_json_on_stdin_and_no_secret_in_its_environment(
    tmp_path: Path, secret_environment: None
) -> None:
    command, out = recorder(tmp_path)
    CommandChannel(command, timeout=10).send([event(1), event(2, "cleared")])
    received = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["alert"]["event"] for r in received] == ["fired", "cleared"]
    first = received[0]["alert"]
    assert first["version"] == 1 and first["source"] == "tf-console"
    assert first["key"] == "platform_failing:amazon" and first["severity"] == "critical"
    assert first["since"] == "2026-11-02T15:00:00Z" and "3 poll(s)" in first["sentence"]
    environment = received[0]["env"]
    assert set(environment) <= delivery.SAFE_ENVIRONMENT | {n for n in environment if n.startswith("LC_")}
    blob = json.dumps(received)
    for value in SECRETS.values():
        assert value not in blob
    assert SMTP_PASSWORD not in blob
    assert environment.get("PATH") == os.environ.get("PATH")


def test_no_shell_interprets_the_command(tmp_path: Path) -> None:
    marker = tmp_path / "injected"
    command, out = recorder(tmp_path)
    CommandChannel(f"{command} '; touch {marker}'", timeout=10).send([event()])
    assert not marker.exists()
    [received] = [json.loads(line) for line in out.read_text().splitlines()]
    assert received["argv"][-1] == f"; touch {marker}"


def test_a_hanging_command_is_killed_at_the_timeout(tmp_path: Path) -> None:
    script = tmp_path / "hang.py"
    child_pid = tmp_path / "child.pid"
    script.write_text(
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(child_pid)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="did not finish within 1 s and was stopped"):
        CommandChannel(f"{sys.executable} {script}", timeout=1).send([event()])
    assert time.monotonic() - started < 10
    pid = int(child_pid.read_text())
    for _ in range(50):  # its child went with it (the whole process group is killed)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, 9)
        raise AssertionError("the command's child outlived the timeout")


def test_a_failing_or_missing_command_is_a_sentence(tmp_path: Path) -> None:
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nsys.stderr.write('no route to pager\\n')\nsys.exit(3)\n")
    with pytest.raises(DeliveryError, match="exited with status 3; it said: no route to pager"):
        CommandChannel(f"{sys.executable} {failing}", timeout=10).send([event()])
    with pytest.raises(DeliveryError, match="could not start /nonexistent/pager"):
        CommandChannel("/nonexistent/pager --alert", timeout=10).send([event()])


async def test_the_runtime_hands_each_event_to_the_command(tmp_path: Path, secret_environment: None) -> None:
    command, out = recorder(tmp_path)
    clock = FakeClock()
    market = HealthyFake(clock)
    shop = open_shop(
        tmp_path, clock=clock, markets={Platform.TEST: market}, values={"TF_ALERT_COMMAND": command}
    )
    try:
        market.fail_fetch = TransientError("Test answered 503.")
        for _ in range(3):
            clock.advance(300)
            await shop.round()
        market.fail_fetch = None
        for _ in range(12):
            clock.advance(60)
            await shop.round()
        received = [json.loads(line) for line in out.read_text().splitlines()]
        mine = [r["alert"] for r in received if r["alert"]["key"] == "platform_failing:test"]
        assert [a["event"] for a in mine] == ["fired", "cleared"]
        for value in SECRETS.values():
            assert value not in out.read_text()
    finally:
        shop.close()


def test_safe_environment_keeps_only_the_basics() -> None:
    kept = safe_environment(
        {"PATH": "/bin", "LC_ALL": "C", "HOME": "/h", **SECRETS, "AWS_SECRET_ACCESS_KEY": "x"}
    )
    assert kept == {"PATH": "/bin", "LC_ALL": "C", "HOME": "/h"}
