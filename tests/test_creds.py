"""``tf-console creds set|get|delete``: keyring first, else a 0600 .env.local; never print a secret."""

from __future__ import annotations

import io
import logging
import stat

import pytest
from dotenv import dotenv_values

from tests.fixtures_config import (  # noqa: F401 - fixtures
    ConfigPaths,
    MemoryKeyring,
    config_paths_fixture,
    memory_keyring_fixture,
    write_env,
)
from tf_console.cli import main
from tf_console.cli.setup import dotenv_line, mask
from tf_console.config import Settings
from tf_console.context import AppContext
from tf_console.errors import UserError

TOKEN = "12345.known-secret-refresh-token-abcdefghijklmnop"


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_set_without_keyring_writes_a_0600_env_local(
    config_paths: ConfigPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(capsys, "creds", "set", "ETSY_REFRESH_TOKEN", "--value", TOKEN)
    assert code == 0
    env_local = config_paths.cwd / ".env.local"
    assert f"written to {env_local}" in out and "no usable keyring" in out
    assert stat.S_IMODE(env_local.stat().st_mode) == 0o600
    assert dotenv_values(env_local) == {"ETSY_REFRESH_TOKEN": TOKEN}
    assert "known" not in out
    settings = Settings.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert settings.value("ETSY_REFRESH_TOKEN") == TOKEN


def test_set_updates_env_local_in_place_keeping_other_lines(
    config_paths: ConfigPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    env_local = config_paths.cwd / ".env.local"
    env_local.write_text(
        "# my notes\nTF_TIMEZONE=Europe/Berlin\nexport ETSY_CLIENT_ID=old\nETSY_CLIENT_ID=older\n"
    )
    env_local.chmod(0o644)
    assert run_cli(capsys, "creds", "set", "etsy_client_id", "--value", "new-id")[0] == 0
    text = env_local.read_text()
    assert text == "# my notes\nTF_TIMEZONE=Europe/Berlin\nETSY_CLIENT_ID='new-id'\n"
    assert stat.S_IMODE(env_local.stat().st_mode) == 0o600


def test_set_reads_stdin_when_no_value_is_given(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert run_cli(capsys, "creds", "set", "ETSY_ACCESS_TOKEN")[0] == 0
    assert dotenv_values(config_paths.cwd / ".env.local")["ETSY_ACCESS_TOKEN"] == TOKEN


def test_set_with_a_keyring_stores_it_there(
    config_paths: ConfigPaths, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(capsys, "creds", "set", "AMAZON_CLIENT_SECRET", "--value", TOKEN)
    assert code == 0
    assert memory_keyring.entries[("tf-console", "AMAZON_CLIENT_SECRET")] == TOKEN
    assert "Stored AMAZON_CLIENT_SECRET in the keyring" in out
    assert not (config_paths.cwd / ".env.local").exists()
    assert "known" not in out


def test_set_warns_when_a_higher_source_shadows_the_new_value(
    config_paths: ConfigPaths,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AMAZON_CLIENT_SECRET", "old-in-environment")
    code, out = run_cli(capsys, "creds", "set", "AMAZON_CLIENT_SECRET", "--value", "new-value")
    assert code == 0
    assert "also set in the process environment, which takes precedence" in out


def test_unknown_names_and_bad_values_are_refused_with_sentences(
    config_paths: ConfigPaths, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_cli(capsys, "creds", "set", "TF_TIMEZONE", "--value", "Europe/Berlin")
    assert code == 2 and "not a credential tf-console knows" in out
    code, out = run_cli(capsys, "creds", "set", "TF_SMTP_URL", "--value", "http://u:known-pw@host")
    assert code == 2 and "TF_SMTP_URL must look like" in out and "known" not in out
    code, out = run_cli(capsys, "creds", "set", "ETSY_CLIENT_ID", "--value", "  ")
    assert code == 2 and "No value was given" in out
    assert not (config_paths.cwd / ".env.local").exists()


def test_get_says_where_the_value_comes_from_masked(
    config_paths: ConfigPaths,
    memory_keyring: MemoryKeyring,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out = run_cli(capsys, "creds", "get", "ETSY_REFRESH_TOKEN")
    assert code == 1 and "ETSY_REFRESH_TOKEN is not set" in out
    memory_keyring.set_password("tf-console", "ETSY_REFRESH_TOKEN", TOKEN)
    write_env(config_paths.cwd / ".env", ETSY_REFRESH_TOKEN="12345.known-secret-other-token-value")
    code, out = run_cli(capsys, "creds", "get", "ETSY_REFRESH_TOKEN")
    assert code == 0
    assert f"in use: {config_paths.cwd / '.env'}, 1234…(36 chars)" in out
    assert "Also set, not used: the keyring" in out and f"({len(TOKEN)} chars)" in out
    assert "known" not in out


def test_get_reports_the_vault_value_in_use(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ETSY_REFRESH_TOKEN", "configured-known-secret-value-1")
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    ctx.vault().store("ETSY_REFRESH_TOKEN", TOKEN, env_value="configured-known-secret-value-1")
    code, out = run_cli(capsys, "creds", "get", "ETSY_REFRESH_TOKEN")
    assert code == 0
    assert "in use: the token vault (rotated" in out
    assert "Also set, not used: the process environment" in out
    assert "known" not in out


def test_set_of_a_rotating_token_replaces_the_vault_value(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The environment outranks .env.local, so only replacing the vault's value makes the new one count.
    monkeypatch.setenv("ETSY_REFRESH_TOKEN", "first-authorisation")
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    ctx.vault().store("ETSY_REFRESH_TOKEN", "rotated-by-etsy", env_value="first-authorisation")
    code, out = run_cli(capsys, "creds", "set", "ETSY_REFRESH_TOKEN", "--value", "re-authorised")
    assert code == 0 and "replaced" in out
    fresh = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert fresh.secret("ETSY_REFRESH_TOKEN").get_secret_value() == "re-authorised"  # type: ignore[union-attr]


def test_delete_removes_from_keyring_env_local_and_vault(
    config_paths: ConfigPaths,
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
) -> None:
    memory_keyring.set_password("tf-console", "ETSY_ACCESS_TOKEN", "from-keyring")
    write_env(config_paths.cwd / ".env.local", ETSY_ACCESS_TOKEN="from-file", ETSY_CLIENT_ID="keep")
    ctx = AppContext.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    ctx.vault().store("ETSY_ACCESS_TOKEN", "cached", env_value="from-file")
    write_env(config_paths.config_dir / ".env", ETSY_ACCESS_TOKEN="elsewhere")
    code, out = run_cli(capsys, "creds", "delete", "ETSY_ACCESS_TOKEN")
    assert code == 0
    assert "Deleted ETSY_ACCESS_TOKEN from the keyring" in out and "the token vault" in out
    assert f"still set in {config_paths.config_dir / '.env'}" in out
    assert memory_keyring.entries.get(("tf-console", "ETSY_ACCESS_TOKEN")) is None
    assert dotenv_values(config_paths.cwd / ".env.local") == {"ETSY_CLIENT_ID": "keep"}
    assert ctx.vault().entry("ETSY_ACCESS_TOKEN") is None
    code, out = run_cli(capsys, "creds", "delete", "ETSY_ACCESS_TOKEN")
    assert code == 1 and "nothing was deleted" in out


def test_no_secret_reaches_the_logs(
    config_paths: ConfigPaths,
    memory_keyring: MemoryKeyring,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    run_cli(capsys, "creds", "set", "ETSY_REFRESH_TOKEN", "--value", TOKEN)
    run_cli(capsys, "creds", "get", "ETSY_REFRESH_TOKEN")
    run_cli(capsys, "doctor")
    run_cli(capsys, "creds", "delete", "ETSY_REFRESH_TOKEN")
    assert "known" not in caplog.text


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        "with space # and hash",
        "v^1.1#i^1#r^1#p^3",
        "Atzr|IwE/a+b=",
        "has'quote",
        'dq"and\\back',
        "$HOME",
    ],
)
def test_env_file_lines_read_back_exactly(value: str) -> None:
    line = dotenv_line("ETSY_REFRESH_TOKEN", value)
    assert dotenv_values(stream=io.StringIO(line + "\n"))["ETSY_REFRESH_TOKEN"] == value


def test_env_file_lines_refuse_what_cannot_round_trip() -> None:
    with pytest.raises(UserError, match="line break"):
        dotenv_line("X", "a\nb")
    with pytest.raises(UserError, match="cannot be written"):
        dotenv_line("X", "it's ${HOME}")


def test_mask_shows_length_and_at_most_a_short_prefix() -> None:
    assert mask("AgAAAA" + "x" * 46) == "AgAA…(52 chars)"
    assert mask("short-secret") == "…(12 chars)"


def test_a_keyring_that_refuses_to_store_falls_back_to_env_local(
    config_paths: ConfigPaths, memory_keyring: MemoryKeyring, capsys: pytest.CaptureFixture[str]
) -> None:
    from keyring.errors import PasswordSetError

    def refuse(service: str, username: str, password: str) -> None:
        raise PasswordSetError("locked")

    memory_keyring.set_password = refuse  # type: ignore[method-assign]
    code, out = run_cli(capsys, "creds", "set", "EBAY_CERT_ID", "--value", "cert-value")
    assert code == 0
    assert "the keyring refused to store EBAY_CERT_ID (PasswordSetError)" in out
    assert dotenv_values(config_paths.cwd / ".env.local") == {"EBAY_CERT_ID": "cert-value"}
