"""``tf-console doctor``: sentences about every part of the setup, never a secret."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from datetime import timedelta

import keyring
import pytest

from tests.fixtures_config import (  # noqa: F401 - fixtures
    ConfigPaths,
    MemoryKeyring,
    PlaintextKeyring,
    config_paths_fixture,
    memory_keyring_fixture,
    write_env,
)
from tf_console.cli import main
from tf_console.context import AppContext
from tf_console.doctor import (
    DEFAULT_CHECKS,
    Finding,
    Level,
    ebay_token_kind,
    exit_code,
    render,
    run_doctor,
)

SECRETS = {
    "AMAZON_SELLER_ID": "A1SELLERID",
    "AMAZON_REFRESH_TOKEN": "Atzr|known-secret-amazon-refresh-41",
    "AMAZON_CLIENT_ID": "amzn1.application-oa2-client.known42",
    "AMAZON_CLIENT_SECRET": "known-secret-amazon-client-43",
    "EBAY_APP_ID": "Shop-App-PRD-44",
    "EBAY_DEV_ID": "dev-45",
    "EBAY_CERT_ID": "PRD-known-secret-ebay-cert-46",
    "EBAY_USER_TOKEN": "v^1.1#i^1#known-secret-ebay-user-47",
    "EBAY_REFRESH_TOKEN": "v^1.1#i^1#known-secret-ebay-refresh-48",
    "ETSY_CLIENT_ID": "keystring49",
    "ETSY_CLIENT_SECRET": "known-secret-etsy-shared-50",
    "ETSY_ACCESS_TOKEN": "12345.known-secret-etsy-access-51",
    "ETSY_REFRESH_TOKEN": "12345.known-secret-etsy-refresh-52",
    "TF_SMTP_URL": "smtp://shop:known-secret-smtp-53@mail.example.com:587",
}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_no_configuration_explains_what_to_set(
    config_paths: ConfigPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(capsys, "doctor")
    assert code == 0
    assert "No marketplace is configured yet" in out
    for name in ("AMAZON_SELLER_ID", "EBAY_USER_TOKEN", "ETSY_CLIENT_SECRET", "tf-console creds set NAME"):
        assert name in out
    assert "No usable keyring" in out
    assert "There is no data key yet" in out
    assert str(config_paths.data_dir) in out
    assert "Traceback" not in out


def test_full_configuration_never_prints_a_secret(
    config_paths: ConfigPaths,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    halves = list(SECRETS.items())
    write_env(config_paths.cwd / ".env.local", **dict(halves[:5]))
    for name, value in halves[5:10]:
        monkeypatch.setenv(name, value)
    for name, value in halves[10:]:
        memory_keyring.set_password("tf-console", name, value)
    # A rotated token in the vault must not show either.
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    ctx.vault().store(
        "ETSY_ACCESS_TOKEN",
        "12345.known-secret-rotated-54",
        env_value=SECRETS["ETSY_ACCESS_TOKEN"],
        expires_at=ctx.clock.now() + timedelta(hours=1),
    )
    code, out = run_cli(capsys, "doctor")
    assert code == 0, out
    for status in ("Amazon is configured.", "eBay is configured.", "Etsy is configured."):
        assert status in out
    assert "OAuth user access token" in out and "renewed with EBAY_REFRESH_TOKEN" in out
    assert "ETSY_ACCESS_TOKEN (stored" in out
    assert "The data key (id" in out
    assert "known" not in out
    assert "known" not in caplog.text


def test_ebay_token_types_are_told_apart(config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    assert ebay_token_kind("AgAAAA**xyz") == "authnauth"
    assert ebay_token_kind("v^1.1#i^1#r^0") == "oauth"
    assert ebay_token_kind("garbage") == "unknown"
    for name in ("EBAY_APP_ID", "EBAY_DEV_ID", "EBAY_CERT_ID"):
        monkeypatch.setenv(name, SECRETS[name])
    expectations = {
        "AgAAAA**abc": (Level.OK, "Auth'n'Auth"),
        "v^1.1#i^1#abc": (Level.WARN, "cannot be renewed without EBAY_REFRESH_TOKEN"),
        "abc": (Level.WARN, "neither an Auth'n'Auth token"),
    }
    for token, (level, words) in expectations.items():
        monkeypatch.setenv("EBAY_USER_TOKEN", token)
        ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
        ebay = [f for f in run_doctor(ctx) if f.section == "eBay" and "EBAY_USER_TOKEN" in f.sentence]
        assert [(f.level, words in f.sentence) for f in ebay] == [(level, True)], token


def test_partly_configured_platform_is_a_warning_naming_what_is_missing(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETSY_CLIENT_ID", "k")
    findings = run_doctor(AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir))
    market = [f for f in findings if f.section == "Marketplaces"]
    etsy = next(f for f in market if f.sentence.startswith("Etsy"))
    assert etsy.level is Level.WARN
    assert "ETSY_CLIENT_SECRET, ETSY_REFRESH_TOKEN" in etsy.sentence
    assert any("shared secret" in f.sentence for f in findings if f.section == "Etsy")
    amazon = next(f for f in market if f.sentence.startswith("Amazon"))
    assert amazon.level is Level.INFO and "optional" in amazon.sentence


def test_missing_data_key_with_state_is_an_error_and_exit_1(
    config_paths: ConfigPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    config_paths.data_dir.mkdir(mode=0o700)
    (config_paths.data_dir / "meta.json").write_text(json.dumps({"key_id": "abcabcabcabc"}))
    code, out = run_cli(capsys, "doctor")
    assert code == 1
    assert "encrypted with data key abcabcabcabc" in out
    assert not (config_paths.config_dir / "data.key").exists()


def test_invalid_configuration_is_an_error_sentence(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EBAY_TRADING_URL", "http://ebay.example.com/known-secret-path")
    code, out = run_cli(capsys, "doctor")
    assert code == 1
    assert "EBAY_TRADING_URL must use https" in out
    assert "known" not in out and "Traceback" not in out


def test_insecure_keyring_and_loose_permissions_are_flagged(
    config_paths: ConfigPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    keyring.set_keyring(PlaintextKeyring())
    env_file = write_env(config_paths.cwd / ".env", ETSY_CLIENT_ID="k")
    os.chmod(env_file, 0o644)
    config_paths.data_dir.mkdir(mode=0o755)
    os.chmod(config_paths.data_dir, 0o755)
    loose = config_paths.data_dir / "orders.json"
    loose.write_text("{}")
    os.chmod(loose, 0o644)
    code, out = run_cli(capsys, "doctor")
    assert code == 0
    assert "plain-text file" in out
    assert f"run chmod 600 '{env_file}'" in out
    assert f"1 file(s) or folder(s) under {config_paths.data_dir} can be read by other users" in out
    # Loading the context tightens the data folder itself.
    assert config_paths.data_dir.stat().st_mode & 0o777 == 0o700


def test_loopback_endpoint_override_is_pointed_out(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETSY_API_URL", "http://127.0.0.1:8765")
    findings = run_doctor(AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir))
    assert any(
        f.level is Level.WARN and "ETSY_API_URL points at http://127.0.0.1:8765" in f.sentence
        for f in findings
    )


def test_data_dir_sizes_and_file_list(config_paths: ConfigPaths) -> None:
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    (ctx.data_dir / "orders.json").write_bytes(b"x" * 1500)
    findings = [f for f in run_doctor(ctx) if f.section == "Data folder"]
    assert "mode 0700, 1.5 kB in all" in findings[0].sentence
    assert any("orders.json 1.5 kB" in f.sentence for f in findings)


def test_a_failing_check_becomes_an_error_finding_and_the_rest_still_run(
    config_paths: ConfigPaths,
) -> None:
    def check_broken(ctx: AppContext) -> Iterator[Finding]:
        raise RuntimeError("known-secret-in-exception")
        yield  # pragma: no cover

    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    findings = run_doctor(ctx, [check_broken, *DEFAULT_CHECKS])
    assert findings[0].level is Level.ERROR and "RuntimeError" in findings[0].sentence
    assert "known" not in render(findings)
    assert len(findings) > 1
    assert exit_code(findings) == 1
