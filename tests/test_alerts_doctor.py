"""Credential ages from ``creds set`` and first sight, and the Alerts section of ``tf-console doctor``."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tf_console.alerts.credentials import CREDENTIAL_AGES_FILE, CredentialAges
from tf_console.alerts.doctor import alert_findings
from tf_console.alerts.model import Condition, Rule, Severity
from tf_console.alerts.state import AlertState, AlertStateFile, CheckResult, reconcile
from tf_console.cli import main
from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.doctor import Level

SECRET_1 = "amzn1.oa2-cs.v1.first-0123456789abcdef0123456789abcdef"
SECRET_2 = "amzn1.oa2-cs.v1.second-0123456789abcdef0123456789abcdef"
AMAZON = {
    "AMAZON_SELLER_ID": "A1SELLER",
    "AMAZON_REFRESH_TOKEN": "Atzr|IwEBIrefresh0123456789",
    "AMAZON_CLIENT_ID": "amzn1.application-oa2-client.0123",
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    for name, value in AMAZON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TF_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def context(home: Path, clock: FakeClock | None = None) -> AppContext:
    return AppContext.load(
        home / "data", cwd=home, config_dir=home / "config", clock=clock or FakeClock(), use_keyring=False
    )


def ages_file(home: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((home / "data" / CREDENTIAL_AGES_FILE).read_text())
    return document


def test_creds_set_records_when_an_expiring_credential_was_set_and_never_the_value(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["creds", "set", "AMAZON_CLIENT_SECRET", "--value", SECRET_1]) == 0
    first = ages_file(home)["entries"]["AMAZON_CLIENT_SECRET"]
    assert first["how"] == "creds set"
    raw = (home / "data" / CREDENTIAL_AGES_FILE).read_text()
    assert SECRET_1 not in raw and "first-0123" not in raw
    assert (home / "data" / CREDENTIAL_AGES_FILE).stat().st_mode & 0o777 == 0o600
    # The same value again keeps its age; a new value restarts it.
    assert main(["creds", "set", "AMAZON_CLIENT_SECRET", "--value", SECRET_1]) == 0
    assert ages_file(home)["entries"]["AMAZON_CLIENT_SECRET"] == first
    assert main(["creds", "set", "AMAZON_CLIENT_SECRET", "--value", SECRET_2]) == 0
    second = ages_file(home)["entries"]["AMAZON_CLIENT_SECRET"]
    assert second["fingerprint"] != first["fingerprint"]
    # Credentials without a lifetime are audited but not aged.
    assert main(["creds", "set", "AMAZON_SELLER_ID", "--value", "A2OTHER"]) == 0
    assert set(ages_file(home)["entries"]) == {"AMAZON_CLIENT_SECRET"}
    capsys.readouterr()

    findings = [f for f in alert_findings(context(home)) if "AMAZON_CLIENT_SECRET" in f.sentence]
    assert len(findings) == 1 and findings[0].level is Level.OK
    assert "set with `tf-console creds set` on" in findings[0].sentence
    assert "every 180 days" in findings[0].sentence and "expires around" in findings[0].sentence


def test_doctor_warns_ahead_of_the_expiry(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["creds", "set", "AMAZON_CLIENT_SECRET", "--value", SECRET_1]) == 0
    capsys.readouterr()
    since = CredentialAges.standalone(home / "data").records()["AMAZON_CLIENT_SECRET"].since
    later = FakeClock(since + timedelta(days=170))
    [finding] = [f for f in alert_findings(context(home, later)) if "AMAZON_CLIENT_SECRET" in f.sentence]
    assert finding.level is Level.WARN and "(in 10 days)" in finding.sentence
    assert "Generate a new client secret" in finding.sentence


def test_observe_records_first_sight_and_a_changed_value(tmp_path: Path) -> None:
    clock = FakeClock()
    ages = CredentialAges(tmp_path, lock=contextlib.nullcontext, clock=clock)
    ages.observe({"ETSY_REFRESH_TOKEN": "12345.refresh-a", "ETSY_CLIENT_ID": "keystring"})
    first = ages.records()["ETSY_REFRESH_TOKEN"]
    assert first.how == "first seen" and set(ages.records()) == {"ETSY_REFRESH_TOKEN"}
    clock.advance(3600)
    ages.observe({"ETSY_REFRESH_TOKEN": "12345.refresh-a"})
    assert ages.records()["ETSY_REFRESH_TOKEN"] == first
    ages.observe({"ETSY_REFRESH_TOKEN": "12345.refresh-b"})
    changed = ages.records()["ETSY_REFRESH_TOKEN"]
    assert changed.how == "changed" and changed.since == clock.now()


def write_state(home: Path, clock: FakeClock) -> None:
    state_file = AlertStateFile(home / "data")

    def change(state: AlertState) -> None:
        condition = Condition(
            Rule.PLATFORM_FAILING,
            "amazon",
            Severity.CRITICAL,
            "Amazon polls are failing",
            "Amazon has failed 4 poll(s) in a row; check its status page.",
        )
        reconcile(state, [condition], clock.now(), timedelta(minutes=10))
        state.checks["amazon"] = CheckResult(at=clock.now(), ok=False, sentence="Amazon refused the token.")
        state.delivery_problems["email"] = "The alert e-mail could not be sent through mail:587."

    state_file.update(change)


def test_doctor_shows_active_alerts_checks_and_delivery(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = FakeClock(datetime(2026, 11, 2, 15, 0, tzinfo=UTC))
    ctx = context(home, clock)
    first = [f.sentence for f in alert_findings(ctx)]
    assert any("No alert has been evaluated yet" in s for s in first)
    assert any("Alerts show only in the console and here" in s for s in first)
    write_state(home, clock)
    monkeypatch.setenv("TF_ALERT_EMAIL_TO", "owner@shop.example")
    monkeypatch.setenv("TF_ALERT_COMMAND", "/nonexistent/pager --json")
    findings = {f.sentence: f.level for f in alert_findings(context(home, clock))}
    worst = (
        "CRITICAL since 2026-11-02 15:00 UTC: Amazon has failed 4 poll(s) in a row; check its status page."
    )
    assert findings[worst] is Level.WARN
    assert any("TF_ALERT_EMAIL_TO is set but TF_SMTP_URL is not" in s for s in findings)
    assert any("/nonexistent/pager, which is not an executable" in s for s in findings)
    assert any(s.startswith("The last alert delivery by email failed") for s in findings)
    assert any("The last Amazon credential check (2026-11-02 15:00 UTC) FAILED" in s for s in findings)

    assert main(["doctor"]) in (0, 1)
    out = capsys.readouterr().out
    assert "\nAlerts\n" in out and "Amazon has failed 4 poll(s)" in out
