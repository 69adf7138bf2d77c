"""Configuration: precedence, defaults, validation, secrets kept out of reprs and errors."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.fixtures_config import (  # noqa: F401 - fixtures
    ConfigPaths,
    MemoryKeyring,
    config_paths_fixture,
    memory_keyring_fixture,
    write_env,
)
from tf_console.config import (
    CREDENTIAL_VARIABLES,
    ROTATING_VARIABLES,
    SECRET_VARIABLES,
    VARIABLES,
    Settings,
    SourceKind,
    check_endpoint_url,
    is_loopback_host,
    platform_status,
    validate_value,
    value_origins,
)
from tf_console.errors import UserError
from tf_console.keyring_access import KeyringAccess
from tf_console.models import Platform

REPO = Path(__file__).resolve().parent.parent

AMAZON = {
    "AMAZON_SELLER_ID": "A1SELLER",
    "AMAZON_REFRESH_TOKEN": "Atzr|known-amazon-refresh-6Y2q",
    "AMAZON_CLIENT_ID": "amzn1.application-oa2-client.abc",
    "AMAZON_CLIENT_SECRET": "known-amazon-client-secret-9Kp",
}
EBAY = {
    "EBAY_APP_ID": "Shop-App-PRD",
    "EBAY_DEV_ID": "dev-1",
    "EBAY_CERT_ID": "PRD-known-ebay-cert-3Wd",
    "EBAY_USER_TOKEN": "AgAAAA**known-ebay-user-token-7Hs",
}
ETSY = {
    "ETSY_CLIENT_ID": "keystring1",
    "ETSY_CLIENT_SECRET": "known-etsy-shared-secret-2Lm",
    "ETSY_REFRESH_TOKEN": "12345.known-etsy-refresh-8Qz",
}
SECRET_VALUES = [
    value for source in (AMAZON, EBAY, ETSY) for name, value in source.items() if name in SECRET_VARIABLES
]


def load(paths: ConfigPaths, **kwargs: object) -> Settings:
    return Settings.load(cwd=paths.cwd, config_dir=paths.config_dir, **kwargs)  # type: ignore[arg-type]


# --- precedence ----------------------------------------------------------------


def test_precedence_env_then_env_local_then_env_with_cwd_before_config_dir(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = config_paths
    layers = [
        ("env", None),
        ("cwd .env.local", paths.cwd / ".env.local"),
        ("config .env.local", paths.config_dir / ".env.local"),
        ("cwd .env", paths.cwd / ".env"),
        ("config .env", paths.config_dir / ".env"),
    ]
    for label, path in layers:
        if path is None:
            monkeypatch.setenv("AMAZON_SELLER_ID", label)
        else:
            write_env(path, AMAZON_SELLER_ID=label)
    # Remove the winner layer by layer: the next one down must take over.
    for index, (label, path) in enumerate(layers):
        assert load(paths, use_keyring=False).amazon_seller_id == label, f"layer {index}"
        if path is None:
            monkeypatch.delenv("AMAZON_SELLER_ID")
        else:
            path.unlink()
    assert load(paths, use_keyring=False).amazon_seller_id is None


def test_layers_merge_per_variable(config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    write_env(config_paths.config_dir / ".env", ETSY_CLIENT_ID="from-config", TF_TIMEZONE="Europe/Berlin")
    write_env(config_paths.cwd / ".env.local", ETSY_CLIENT_ID="from-cwd-local")
    monkeypatch.setenv("TF_POLL_INTERVAL", "120")
    settings = load(config_paths, use_keyring=False)
    assert settings.etsy_client_id == "from-cwd-local"
    assert settings.timezone == "Europe/Berlin"
    assert settings.poll_interval == 120


def test_empty_values_count_as_unset(config_paths: ConfigPaths) -> None:
    # .env.example copied as is: every variable present and empty.
    write_env(config_paths.cwd / ".env.local", AMAZON_REGION="", TF_POLL_INTERVAL="", ETSY_CLIENT_ID="")
    write_env(config_paths.cwd / ".env", ETSY_CLIENT_ID="lower-layer")
    settings = load(config_paths, use_keyring=False)
    assert settings.amazon_region == "NA"
    assert settings.poll_interval == 300
    assert settings.etsy_client_id == "lower-layer"


def test_keyring_fills_only_credentials_given_nowhere_else(
    config_paths: ConfigPaths, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory_keyring.set_password("tf-console", "ETSY_REFRESH_TOKEN", "from-keyring-refresh")
    memory_keyring.set_password("tf-console", "ETSY_CLIENT_ID", "from-keyring-id")
    memory_keyring.set_password("tf-console", "TF_TIMEZONE", "Asia/Tokyo")  # not a credential
    write_env(config_paths.cwd / ".env", ETSY_CLIENT_ID="from-env-file")
    settings = load(config_paths, keyring=KeyringAccess())
    assert settings.value("ETSY_REFRESH_TOKEN") == "from-keyring-refresh"
    assert settings.etsy_client_id == "from-env-file"
    assert settings.timezone == "UTC"
    monkeypatch.setenv("ETSY_REFRESH_TOKEN", "from-environment")
    assert load(config_paths, keyring=KeyringAccess()).value("ETSY_REFRESH_TOKEN") == "from-environment"
    assert load(config_paths, use_keyring=False).value("ETSY_CLIENT_ID") == "from-env-file"


def test_value_origins_lists_every_place_highest_first(
    config_paths: ConfigPaths, memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory_keyring.set_password("tf-console", "EBAY_CERT_ID", "val-keyring")
    write_env(config_paths.config_dir / ".env", EBAY_CERT_ID="val-config")
    write_env(config_paths.cwd / ".env.local", EBAY_CERT_ID="val-local")
    monkeypatch.setenv("EBAY_CERT_ID", "val-env")
    origins = value_origins(
        "ebay_cert_id", cwd=config_paths.cwd, config_dir=config_paths.config_dir, keyring=KeyringAccess()
    )
    assert [(o.kind, o.value.get_secret_value()) for o in origins] == [
        (SourceKind.ENVIRONMENT, "val-env"),
        (SourceKind.DOTENV_LOCAL, "val-local"),
        (SourceKind.DOTENV, "val-config"),
        (SourceKind.KEYRING, "val-keyring"),
    ]
    assert "val-" not in repr(origins)


# --- defaults -----------------------------------------------------------------


def test_defaults(config_paths: ConfigPaths) -> None:
    settings = load(config_paths, use_keyring=False)
    assert settings.amazon_region == "NA"
    assert settings.amazon_marketplace_ids == ("ATVPDKIKX0DER",)
    assert settings.amazon_sp_api_url == "https://sellingpartnerapi-na.amazon.com"
    assert settings.amazon_lwa_url == "https://api.amazon.com/auth/o2/token"
    assert settings.ebay_environment == "production"
    assert settings.ebay_site_id == 0
    assert settings.ebay_trading_url == "https://api.ebay.com/ws/api.dll"
    assert settings.ebay_api_url == "https://api.ebay.com"
    assert settings.etsy_api_url == "https://api.etsy.com"
    assert settings.etsy_oauth_url == "https://api.etsy.com/v3/public/oauth/token"
    assert settings.marketplace_api_rate_limit == 100
    assert settings.marketplace_cache_ttl == 300
    assert settings.poll_interval == 300
    assert settings.poll_interval_for(Platform.AMAZON) == 300
    assert settings.poll_interval_for(Platform.EBAY) == 900
    assert settings.poll_interval_for(Platform.ETSY) == 300
    assert settings.archive_after_days == 30
    assert settings.timezone == "UTC"
    assert settings.data_dir == config_paths.data_dir


def test_data_dir_defaults_to_platformdirs(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TF_DATA_DIR")
    settings = load(config_paths, use_keyring=False)
    assert settings.data_dir == Path.home() / ".local" / "share" / "tf-console"


def test_region_and_environment_pick_hosts(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMAZON_REGION", "fe")
    monkeypatch.setenv("AMAZON_MARKETPLACE_IDS", "A1VC38T7YXB528, A39IBJ37TRP1C6")
    monkeypatch.setenv("EBAY_ENVIRONMENT", "Sandbox")
    monkeypatch.setenv("TF_POLL_INTERVAL", "60")
    settings = load(config_paths, use_keyring=False)
    assert settings.amazon_sp_api_url == "https://sellingpartnerapi-fe.amazon.com"
    assert settings.amazon_marketplace_ids == ("A1VC38T7YXB528", "A39IBJ37TRP1C6")
    assert settings.ebay_trading_url == "https://api.sandbox.ebay.com/ws/api.dll"
    assert settings.ebay_api_url == "https://api.sandbox.ebay.com"
    assert settings.poll_interval_for(Platform.AMAZON) == 60
    assert settings.poll_interval_for(Platform.ETSY) == 60
    assert settings.poll_interval_for(Platform.EBAY) == 900


def test_explicit_endpoints_and_intervals_win_over_derived_defaults(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMAZON_REGION", "EU")
    monkeypatch.setenv("AMAZON_SP_API_URL", "http://127.0.0.1:8701/")
    monkeypatch.setenv("TF_POLL_INTERVAL", "60")
    monkeypatch.setenv("ETSY_POLL_INTERVAL", "45")
    settings = load(config_paths, use_keyring=False)
    assert settings.amazon_sp_api_url == "http://127.0.0.1:8701"
    assert settings.poll_interval_for(Platform.ETSY) == 45
    assert settings.poll_interval_for(Platform.AMAZON) == 60


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://api.etsy.com",
        "https://example.com:8443/base/",
        "http://127.0.0.1:8080",
        "http://127.5.6.7",
        "http://[::1]:9000/x",
        "http://localhost:1234",
        "http://LOCALHOST",
    ],
)
def test_endpoint_accepts_https_and_loopback_http(url: str) -> None:
    assert check_endpoint_url(url) == url.rstrip("/")


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://api.etsy.com", "must use https"),
        ("http://10.0.0.5:8080", "must use https"),
        ("http://localhost.evil.com", "must use https"),
        ("ftp://127.0.0.1", "full URL"),
        ("api.etsy.com", "full URL"),
        ("https://user:pw@api.etsy.com", "user name or password"),
        ("https://api.etsy.com/?token=x", "query"),
        ("https://api.etsy.com:99999", "not a valid URL"),
    ],
)
def test_endpoint_rejects_non_https_and_odd_urls(url: str, words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words)):
        check_endpoint_url(url)


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("localhost")
    assert not is_loopback_host("128.0.0.1") and not is_loopback_host("example.com")


def test_invalid_endpoint_is_a_sentence_naming_the_variable(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETSY_API_URL", "http://evil.example.com/known-url-part")
    with pytest.raises(UserError) as caught:
        load(config_paths, use_keyring=False)
    text = str(caught.value)
    assert "ETSY_API_URL must use https" in text
    assert "set in the environment" in text
    assert "known-url-part" not in text


def test_validation_errors_name_variables_and_never_echo_values(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    write_env(
        config_paths.cwd / ".env.local",
        AMAZON_REGION="Atzr|known-value-in-region",
        TF_POLL_INTERVAL="known-value-in-interval",
    )
    monkeypatch.setenv("TF_SMTP_URL", "ftp://user:known-smtp-password@mail.example.com")
    monkeypatch.setenv("TF_TIMEZONE", "Mars/known-zone")
    monkeypatch.setenv("EBAY_ENVIRONMENT", "known-env-value")
    with pytest.raises(UserError) as caught:
        load(config_paths, use_keyring=False)
    text = str(caught.value)
    for name in ("AMAZON_REGION", "TF_POLL_INTERVAL", "TF_SMTP_URL", "TF_TIMEZONE", "EBAY_ENVIRONMENT"):
        assert name in text
    assert "must be one of NA, EU or FE" in text
    assert f"set in {config_paths.cwd / '.env.local'}" in text
    assert "known" not in text
    assert "known" not in caplog.text
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_validate_value_checks_one_variable() -> None:
    validate_value("TF_SMTP_URL", "smtp://shop:pw@mail.example.com:587")
    with pytest.raises(UserError, match="TF_SMTP_URL must look like") as caught:
        validate_value("TF_SMTP_URL", "http://shop:known-pw@mail.example.com")
    assert "known-pw" not in str(caught.value)


def test_eu_region_needs_marketplace_ids_and_disables_amazon_without_them(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AMAZON.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AMAZON_REGION", "EU")
    status = platform_status(load(config_paths, use_keyring=False), Platform.AMAZON)
    assert not status.enabled
    assert status.missing == ["AMAZON_MARKETPLACE_IDS"]
    assert "required for region EU" in status.reason
    monkeypatch.setenv("AMAZON_MARKETPLACE_IDS", "A1PA6795UKMFR9")
    assert platform_status(load(config_paths, use_keyring=False), Platform.AMAZON).enabled


# --- secrets ---------------------------------------------------------------------


def test_repr_and_str_show_no_secret(config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**AMAZON, **EBAY, **ETSY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("TF_SMTP_URL", "smtp://shop:known-smtp-password@mail.example.com")
    settings = load(config_paths, use_keyring=False)
    shown = repr(settings) + str(settings) + repr(settings.model_dump())
    for secret in [*SECRET_VALUES, "known-smtp-password"]:
        assert secret not in shown
    assert settings.value("AMAZON_CLIENT_SECRET") == AMAZON["AMAZON_CLIENT_SECRET"]


def test_every_token_and_secret_is_a_secretstr() -> None:
    assert {
        "AMAZON_REFRESH_TOKEN",
        "AMAZON_CLIENT_SECRET",
        "EBAY_CERT_ID",
        "EBAY_USER_TOKEN",
        "EBAY_REFRESH_TOKEN",
        "ETSY_CLIENT_SECRET",
        "ETSY_ACCESS_TOKEN",
        "ETSY_REFRESH_TOKEN",
        "TF_SMTP_URL",
    } <= SECRET_VARIABLES
    assert set(CREDENTIAL_VARIABLES) >= SECRET_VARIABLES
    assert {"ETSY_REFRESH_TOKEN", "ETSY_ACCESS_TOKEN"} <= ROTATING_VARIABLES


# --- platform status --------------------------------------------------------------


def test_missing_credentials_disable_only_that_platform(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in {**AMAZON, **EBAY}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ETSY_CLIENT_ID", "keystring1")
    settings = load(config_paths, use_keyring=False)
    amazon, ebay, etsy = (
        platform_status(settings, p) for p in (Platform.AMAZON, Platform.EBAY, Platform.ETSY)
    )
    assert amazon.enabled and ebay.enabled
    assert not etsy.enabled
    assert etsy.missing == ["ETSY_CLIENT_SECRET", "ETSY_REFRESH_TOKEN"]
    assert etsy.reason == (
        "Etsy is disabled: set ETSY_CLIENT_SECRET, ETSY_REFRESH_TOKEN (tf-console creds set NAME)."
    )
    assert etsy.present == ["ETSY_CLIENT_ID"]


def test_nothing_configured_disables_every_platform_with_reasons(config_paths: ConfigPaths) -> None:
    settings = load(config_paths, use_keyring=False)
    etsy = platform_status(settings, Platform.ETSY)
    assert etsy.reason == (
        "Etsy is disabled: set ETSY_CLIENT_ID, ETSY_CLIENT_SECRET, ETSY_REFRESH_TOKEN "
        "(tf-console creds set NAME)."
    )
    assert not platform_status(settings, Platform.AMAZON).enabled
    assert platform_status(settings, Platform.EBAY).missing == [
        "EBAY_APP_ID",
        "EBAY_DEV_ID",
        "EBAY_CERT_ID",
        "EBAY_USER_TOKEN",
    ]


def test_alternative_tokens_satisfy_a_platform(
    config_paths: ConfigPaths, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("EBAY_APP_ID", "EBAY_DEV_ID", "EBAY_CERT_ID"):
        monkeypatch.setenv(name, EBAY[name])
    monkeypatch.setenv("EBAY_REFRESH_TOKEN", "v^1.1#refresh")
    monkeypatch.setenv("ETSY_CLIENT_ID", "k")
    monkeypatch.setenv("ETSY_CLIENT_SECRET", "s")
    monkeypatch.setenv("ETSY_ACCESS_TOKEN", "1.a")
    settings = load(config_paths, use_keyring=False)
    assert platform_status(settings, Platform.EBAY).enabled
    assert platform_status(settings, Platform.ETSY).enabled


def test_vault_held_token_counts_when_the_caller_says_so(config_paths: ConfigPaths) -> None:
    settings = Settings.load(cwd=config_paths.cwd, config_dir=config_paths.config_dir, use_keyring=False)
    settings = settings.model_copy(update={"etsy_client_id": "k", "etsy_client_secret": None})
    status = platform_status(
        settings, Platform.ETSY, has_value=lambda name: name in {"ETSY_CLIENT_SECRET", "ETSY_REFRESH_TOKEN"}
    )
    assert status.enabled


# --- documentation stays complete --------------------------------------------------


def test_docs_and_env_example_list_every_variable() -> None:
    doc = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    example = (REPO / ".env.example").read_text(encoding="utf-8")
    example_names = re.findall(r"^([A-Z][A-Z0-9_]+)=\s*$", example, flags=re.MULTILINE)
    assert sorted(example_names) == sorted(VARIABLES), "every variable, empty, in .env.example"
    for name, info in VARIABLES.items():
        row = re.search(rf"^\| `{name}` \|(.*)$", doc, flags=re.MULTILINE)
        assert row is not None, f"{name} has a row in docs/configuration.md"
        assert ("| yes |" in row.group(0)) == info.secret, f"{name}'s secret column"


def test_data_dir_argument_overrides_tf_data_dir_and_is_created_private(
    config_paths: ConfigPaths, tmp_path: Path
) -> None:
    from tf_console.context import AppContext

    chosen = tmp_path / "chosen" / "state"
    ctx = AppContext.load(str(chosen), cwd=config_paths.cwd, config_dir=config_paths.config_dir)
    assert ctx.data_dir == chosen == ctx.settings.data_dir
    assert (chosen.stat().st_mode & 0o777) == 0o700
    assert not config_paths.data_dir.exists()
