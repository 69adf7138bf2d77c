"""Configuration: every variable, its default, where it is read from.

Precedence, highest first:

1. the process environment;
2. ``.env.local`` in the working directory, then in the config dir;
3. ``.env`` in the working directory, then in the config dir;
4. the system keyring, for credentials given nowhere above.

The config dir is ``platformdirs.user_config_dir("tf-console")`` (``~/.config/tf-console``
on Linux).  An empty value (``NAME=`` as in ``.env.example``) counts as unset.  Rotating
tokens (Etsy's refresh token, cached access tokens) additionally pass through the
encrypted token vault (:mod:`tf_console.vault`); :class:`tf_console.context.AppContext`
applies that rule.

Secrets are :class:`pydantic.SecretStr` until the moment a header is built, and no
error, log line or ``repr`` shows a configured value.
"""

from __future__ import annotations

import contextvars
import email.utils
import enum
import ipaddress
import os
import shlex
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import platformdirs
from dotenv import dotenv_values
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from tf_console.errors import UserError
from tf_console.models import Platform

if TYPE_CHECKING:
    from tf_console.keyring_access import KeyringAccess

APP_NAME = "tf-console"
CONFIG_DOC = "docs/configuration.md"


def default_config_dir() -> Path:
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


# ---------------------------------------------------------------------------
# Endpoints

AMAZON_SP_API_HOSTS: dict[str, str] = {
    "NA": "https://sellingpartnerapi-na.amazon.com",
    "EU": "https://sellingpartnerapi-eu.amazon.com",
    "FE": "https://sellingpartnerapi-fe.amazon.com",
}
AMAZON_LWA_URL_DEFAULT = "https://api.amazon.com/auth/o2/token"
EBAY_TRADING_URLS: dict[str, str] = {
    "production": "https://api.ebay.com/ws/api.dll",
    "sandbox": "https://api.sandbox.ebay.com/ws/api.dll",
}
EBAY_API_URLS: dict[str, str] = {
    "production": "https://api.ebay.com",
    "sandbox": "https://api.sandbox.ebay.com",
}
EBAY_OAUTH_SCOPES_DEFAULT = "https://api.ebay.com/oauth/api_scope"
ETSY_API_URL_DEFAULT = "https://api.etsy.com"
ETSY_OAUTH_URL_DEFAULT = "https://api.etsy.com/v3/public/oauth/token"

AMAZON_US_MARKETPLACE_ID = "ATVPDKIKX0DER"
# Marketplace ids per region (Amazon's "Marketplace IDs" page), for doctor's sanity check.
AMAZON_MARKETPLACES_BY_REGION: dict[str, dict[str, str]] = {
    "NA": {
        "ATVPDKIKX0DER": "US",
        "A2EUQ1WTGCTBG2": "CA",
        "A1AM78C64UM0Y8": "MX",
        "A2Q3Y263D00KWC": "BR",
    },
    "EU": {
        "A1F83G8C2ARO7P": "UK",
        "A1PA6795UKMFR9": "DE",
        "A13V1IB3VIYZZH": "FR",
        "APJ6JRA9NG5V4": "IT",
        "A1RKKUPIHCS9HS": "ES",
        "A1805IZSGTT6HS": "NL",
        "A2NODRKZP88ZB9": "SE",
        "A1C3SOZRARQ6R3": "PL",
        "AMEN7PMS3EDWL": "BE",
        "A28R8C7NBKEWEA": "IE",
        "A33AVAJ2PDY3EV": "TR",
        "A2VIGQ35RCS4UG": "AE",
        "A17E79C6D8DWNP": "SA",
        "ARBP9OOSHTCHU": "EG",
        "A21TJRUUN4KGV": "IN",
        "AE08WJ6YKNBMC": "ZA",
    },
    "FE": {"A1VC38T7YXB528": "JP", "A39IBJ37TRP1C6": "AU", "A19VAU5U5O7RUS": "SG"},
}


def documented_endpoints(region: str, environment: str) -> dict[str, str]:
    """The documented URL of each endpoint variable; an unknown region or environment
    leaves its variables out (validation reports it)."""
    endpoints = {
        "AMAZON_LWA_URL": AMAZON_LWA_URL_DEFAULT,
        "ETSY_API_URL": ETSY_API_URL_DEFAULT,
        "ETSY_OAUTH_URL": ETSY_OAUTH_URL_DEFAULT,
    }
    if region in AMAZON_SP_API_HOSTS:
        endpoints["AMAZON_SP_API_URL"] = AMAZON_SP_API_HOSTS[region]
    if environment in EBAY_TRADING_URLS:
        endpoints["EBAY_TRADING_URL"] = EBAY_TRADING_URLS[environment]
        endpoints["EBAY_API_URL"] = EBAY_API_URLS[environment]
    return endpoints


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and addresses in 127.0.0.0/8 or ``::1``."""
    host = host.strip("[]").rstrip(".").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_endpoint_url(url: str) -> str:
    """Validate a marketplace endpoint: https, or plain http to a loopback address only.

    Returns the URL without a trailing slash.  The ``ValueError`` text is a sentence
    fragment that never repeats the URL (it could have been pasted with a secret in it).
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("is not a valid URL") from None
    del port  # only parsed to reject malformed ports
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be a full URL such as https://host.example/path")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not contain a user name or password")
    if parts.query or parts.fragment:
        raise ValueError("must not contain a query string or fragment")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            "must use https (plain http is allowed only for loopback addresses: "
            "127.0.0.0/8, ::1 and localhost)"
        )
    return url.rstrip("/")


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("must be an IANA time zone name such as Europe/Berlin or America/New_York") from None
    return name


def _check_smtp_url(secret: SecretStr | None) -> SecretStr | None:
    if secret is None:
        return None
    try:
        parts = urlsplit(secret.get_secret_value())
        parts.port  # noqa: B018 - parsing the port is the validation
    except ValueError:
        raise ValueError("is not a valid URL") from None
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("must look like smtp://user:password@host:587 (STARTTLS) or smtps://…:465")
    return secret


def _check_command(command: str | None) -> str | None:
    if command is None:
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        raise ValueError("has unbalanced quotes") from None
    if not words:
        return None
    return command


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.replace(";", ",").split(",") if part.strip())
    return value


def _check_marketplace_ids(ids: tuple[str, ...]) -> tuple[str, ...]:
    for marketplace_id in ids:
        if not (8 <= len(marketplace_id) <= 20 and marketplace_id.isalnum() and marketplace_id.isupper()):
            raise ValueError("must be a comma-separated list of Amazon marketplace ids such as ATVPDKIKX0DER")
    return ids


def _upper(value: object) -> object:
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


EndpointUrl = Annotated[str, AfterValidator(check_endpoint_url)]
Region = Annotated[Literal["NA", "EU", "FE"], BeforeValidator(_upper)]
EbayEnvironment = Annotated[Literal["production", "sandbox"], BeforeValidator(_lower)]
MarketplaceIds = Annotated[
    tuple[str, ...], NoDecode, BeforeValidator(_split_ids), AfterValidator(_check_marketplace_ids)
]
TimezoneName = Annotated[str, AfterValidator(_check_timezone)]
SmtpUrl = Annotated[SecretStr | None, AfterValidator(_check_smtp_url)]


# Customer messages each marketplace allows (opt-in per event; see tf_console.messaging).
# Amazon permits proactive messages only to complete an order or fix a problem.
AMAZON_MESSAGE_EVENTS: tuple[str, ...] = ("delayed", "customization")
EBAY_MESSAGE_EVENTS: tuple[str, ...] = ("queued", "printing", "shipped", "delayed")
# Etsy has no messaging API: "shipped" rides on the shipment's note_to_buyer, the rest go by e-mail.
ETSY_MESSAGE_EVENTS: tuple[str, ...] = ("queued", "printing", "shipped", "delayed")


def _message_events(allowed: tuple[str, ...], platform: str) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    def check(events: tuple[str, ...]) -> tuple[str, ...]:
        chosen = tuple(dict.fromkeys(event.lower() for event in events))
        unknown = [event for event in chosen if event not in allowed]
        if unknown:
            raise ValueError(
                f"may list only {', '.join(allowed)} (the messages {platform} allows), "
                "comma-separated"
            )
        return chosen

    return check


def _check_from_address(value: str | None) -> str | None:
    if value is None:
        return None
    _name, address = email.utils.parseaddr(value)
    # A line break would let a header be injected into every e-mail sent.
    if "@" not in address or any(ch in value for ch in "\r\n"):
        raise ValueError(
            "must be an e-mail address such as orders@shop.example or Shop <orders@shop.example>"
        )
    return value


AmazonMessageEvents = Annotated[
    tuple[str, ...],
    NoDecode,
    BeforeValidator(_split_ids),
    AfterValidator(_message_events(AMAZON_MESSAGE_EVENTS, "Amazon")),
]
EbayMessageEvents = Annotated[
    tuple[str, ...],
    NoDecode,
    BeforeValidator(_split_ids),
    AfterValidator(_message_events(EBAY_MESSAGE_EVENTS, "eBay")),
]
EtsyMessageEvents = Annotated[
    tuple[str, ...],
    NoDecode,
    BeforeValidator(_split_ids),
    AfterValidator(_message_events(ETSY_MESSAGE_EVENTS, "Etsy")),
]
FromAddress = Annotated[str | None, AfterValidator(_check_from_address)]
CommandLine = Annotated[str | None, AfterValidator(_check_command)]
PositiveSeconds = Annotated[int, Field(ge=1)]


def _var(
    *, credential: bool = False, rotating: bool = False, default_doc: str | None = None
) -> dict[str, Any]:
    """Metadata on a field: ``credential`` variables can live in the keyring and be set
    with ``tf-console creds``; ``rotating`` ones also pass through the token vault."""
    extra: dict[str, Any] = {"credential": credential, "rotating": rotating}
    if default_doc is not None:
        extra["default_doc"] = default_doc
    return extra


# Values from the keyring for the load in progress (lowest precedence); see Settings.load.
_NO_VALUES: Mapping[str, str] = MappingProxyType({})
_KEYRING_VALUES: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "tf_console_keyring_values", default=_NO_VALUES
)


class _KeyringValuesSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        alias = field.alias or field_name
        return _KEYRING_VALUES.get().get(alias), alias, False

    def __call__(self) -> dict[str, Any]:
        values = _KEYRING_VALUES.get()
        aliases = (field.alias for field in self.settings_cls.model_fields.values())
        return {alias: values[alias] for alias in aliases if alias is not None and alias in values}


class Settings(BaseSettings):
    """Every configuration variable.  Field aliases are the variable names."""

    model_config = SettingsConfigDict(
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
        str_strip_whitespace=True,
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
    )

    # --- Amazon SP-API -------------------------------------------------------
    amazon_seller_id: str | None = Field(
        None,
        alias="AMAZON_SELLER_ID",
        description="Selling partner (merchant) id.",
        json_schema_extra=_var(credential=True),
    )
    amazon_refresh_token: SecretStr | None = Field(
        None,
        alias="AMAZON_REFRESH_TOKEN",
        description="Login with Amazon refresh token from authorising the app (Atzr|…).",
        json_schema_extra=_var(credential=True),
    )
    amazon_client_id: str | None = Field(
        None,
        alias="AMAZON_CLIENT_ID",
        description="LWA client id of the app (amzn1.application-oa2-client.…).",
        json_schema_extra=_var(credential=True),
    )
    amazon_client_secret: SecretStr | None = Field(
        None,
        alias="AMAZON_CLIENT_SECRET",
        description="LWA client secret; Amazon requires rotating it every 180 days.",
        json_schema_extra=_var(credential=True),
    )
    amazon_region: Region = Field(
        "NA", alias="AMAZON_REGION", description="SP-API region: NA, EU or FE (picks the API host)."
    )
    amazon_marketplace_ids: MarketplaceIds = Field(
        (),
        alias="AMAZON_MARKETPLACE_IDS",
        description="Comma-separated marketplace ids to fetch orders for.",
        json_schema_extra=_var(default_doc="ATVPDKIKX0DER (US) for NA; required for EU and FE"),
    )
    amazon_poll_interval: PositiveSeconds = Field(
        300,
        alias="AMAZON_POLL_INTERVAL",
        description="Seconds between Amazon order polls.",
        json_schema_extra=_var(default_doc="TF_POLL_INTERVAL"),
    )
    amazon_sp_api_url: EndpointUrl = Field(
        AMAZON_SP_API_HOSTS["NA"],
        alias="AMAZON_SP_API_URL",
        description="SP-API base URL; documented paths are appended.",
        json_schema_extra=_var(
            default_doc="https://sellingpartnerapi-na.amazon.com (-eu, -fe by AMAZON_REGION)"
        ),
    )
    amazon_lwa_url: EndpointUrl = Field(
        AMAZON_LWA_URL_DEFAULT, alias="AMAZON_LWA_URL", description="LWA token URL (full URL)."
    )

    # --- eBay Trading API ----------------------------------------------------
    ebay_app_id: str | None = Field(
        None,
        alias="EBAY_APP_ID",
        description="App ID (client id) of the eBay keyset.",
        json_schema_extra=_var(credential=True),
    )
    ebay_dev_id: str | None = Field(
        None,
        alias="EBAY_DEV_ID",
        description="Dev ID of the eBay keyset.",
        json_schema_extra=_var(credential=True),
    )
    ebay_cert_id: SecretStr | None = Field(
        None,
        alias="EBAY_CERT_ID",
        description="Cert ID (client secret) of the eBay keyset.",
        json_schema_extra=_var(credential=True),
    )
    ebay_user_token: SecretStr | None = Field(
        None,
        alias="EBAY_USER_TOKEN",
        description="Seller's user token: Auth'n'Auth (AgAAAA…) or OAuth user access token (v^1.1#…).",
        json_schema_extra=_var(credential=True, rotating=True),
    )
    ebay_refresh_token: SecretStr | None = Field(
        None,
        alias="EBAY_REFRESH_TOKEN",
        description="OAuth refresh token (about 18 months); renews OAuth user access tokens.",
        json_schema_extra=_var(credential=True),
    )
    ebay_oauth_scopes: str = Field(
        EBAY_OAUTH_SCOPES_DEFAULT,
        alias="EBAY_OAUTH_SCOPES",
        description="Space-separated scopes sent on refresh; the consent's scopes or a subset.",
    )
    ebay_environment: EbayEnvironment = Field(
        "production", alias="EBAY_ENVIRONMENT", description="production or sandbox (picks the hosts)."
    )
    ebay_site_id: int = Field(0, alias="EBAY_SITE_ID", ge=0, description="Numeric eBay site id (0 = US).")
    ebay_poll_interval: PositiveSeconds = Field(
        900,
        alias="EBAY_POLL_INTERVAL",
        description="Seconds between eBay order polls (eBay suggests 15 minutes or more).",
    )
    ebay_trading_url: EndpointUrl = Field(
        EBAY_TRADING_URLS["production"],
        alias="EBAY_TRADING_URL",
        description="Trading API URL (full URL).",
        json_schema_extra=_var(
            default_doc="https://api.ebay.com/ws/api.dll (api.sandbox.ebay.com for sandbox)"
        ),
    )
    ebay_api_url: EndpointUrl = Field(
        EBAY_API_URLS["production"],
        alias="EBAY_API_URL",
        description="eBay REST base URL (OAuth token path /identity/v1/oauth2/token appended).",
        json_schema_extra=_var(default_doc="https://api.ebay.com (https://api.sandbox.ebay.com for sandbox)"),
    )

    # --- Etsy Open API v3 ----------------------------------------------------
    etsy_client_id: str | None = Field(
        None,
        alias="ETSY_CLIENT_ID",
        description="Etsy app keystring (client id).",
        json_schema_extra=_var(credential=True),
    )
    etsy_client_secret: SecretStr | None = Field(
        None,
        alias="ETSY_CLIENT_SECRET",
        description="Etsy shared secret; every call sends x-api-key: keystring:shared_secret.",
        json_schema_extra=_var(credential=True),
    )
    etsy_access_token: SecretStr | None = Field(
        None,
        alias="ETSY_ACCESS_TOKEN",
        description="OAuth access token (1 hour; renewed automatically with the refresh token).",
        json_schema_extra=_var(credential=True, rotating=True),
    )
    etsy_refresh_token: SecretStr | None = Field(
        None,
        alias="ETSY_REFRESH_TOKEN",
        description="OAuth refresh token (90 days; Etsy returns a new one on every refresh).",
        json_schema_extra=_var(credential=True, rotating=True),
    )
    etsy_shop_id: int | None = Field(
        None,
        alias="ETSY_SHOP_ID",
        gt=0,
        description="Numeric shop id.",
        json_schema_extra=_var(default_doc="discovered with GET /v3/application/users/me"),
    )
    etsy_poll_interval: PositiveSeconds = Field(
        300,
        alias="ETSY_POLL_INTERVAL",
        description="Seconds between Etsy order polls.",
        json_schema_extra=_var(default_doc="TF_POLL_INTERVAL"),
    )
    etsy_api_url: EndpointUrl = Field(
        ETSY_API_URL_DEFAULT,
        alias="ETSY_API_URL",
        description="Etsy base URL; paths /v3/application/… are appended.",
    )
    etsy_oauth_url: EndpointUrl = Field(
        ETSY_OAUTH_URL_DEFAULT, alias="ETSY_OAUTH_URL", description="Etsy OAuth token URL (full URL)."
    )

    # --- Shared --------------------------------------------------------------
    marketplace_api_rate_limit: int = Field(
        100,
        alias="MARKETPLACE_API_RATE_LIMIT",
        ge=1,
        description="Global cap in requests per minute per platform, on top of each API's own limits.",
    )
    marketplace_cache_ttl: int = Field(
        300,
        alias="MARKETPLACE_CACHE_TTL",
        ge=0,
        description="Seconds to cache slow-changing reads (shop and listing data, never orders).",
    )
    poll_interval: PositiveSeconds = Field(
        300, alias="TF_POLL_INTERVAL", description="Default seconds between order polls per platform."
    )
    timezone: TimezoneName = Field(
        "UTC",
        alias="TF_TIMEZONE",
        description="The shop's IANA time zone for display, ship-by and staffed hours (storage stays UTC).",
    )
    data_dir: Path = Field(
        Path("."),
        alias="TF_DATA_DIR",
        description="Folder for the state (orders, queue, logs, token vault); overridden by --data-dir.",
        json_schema_extra=_var(default_doc="platformdirs user data dir (~/.local/share/tf-console)"),
    )
    archive_after_days: int = Field(
        30,
        alias="TF_ARCHIVE_AFTER_DAYS",
        ge=1,
        description="Shipped or cancelled orders older than this move to the monthly archive files.",
    )
    smtp_url: SmtpUrl = Field(
        None,
        alias="TF_SMTP_URL",
        description="SMTP server for e-mail (alerts, Etsy buyer updates): smtp://user:pass@host:587.",
        json_schema_extra=_var(credential=True),
    )
    alert_command: CommandLine = Field(
        None,
        alias="TF_ALERT_COMMAND",
        description="Command run with each alert as JSON on stdin (no shell).",
    )

    # --- Alerts ----------------------------------------------------------------
    alert_email_to: str | None = Field(
        None,
        alias="TF_ALERT_EMAIL_TO",
        description="Comma-separated addresses that get alert e-mails (sent over TF_SMTP_URL).",
    )
    alert_command_timeout: PositiveSeconds = Field(
        15,
        alias="TF_ALERT_COMMAND_TIMEOUT",
        description="Seconds TF_ALERT_COMMAND may run before it is stopped.",
    )
    alert_failing_minutes: int = Field(
        15,
        alias="TF_ALERT_FAILING_MINUTES",
        ge=1,
        description="Alert when a platform's polls have been failing for this many minutes…",
    )
    alert_failing_polls: int = Field(
        3,
        alias="TF_ALERT_FAILING_POLLS",
        ge=1,
        description="…or for this many polls in a row, whichever comes first.",
    )
    alert_success_rate: int = Field(
        80,
        alias="TF_ALERT_SUCCESS_RATE",
        ge=1,
        le=100,
        description="Alert when fewer than this percentage of a platform's calls in the last hour succeeded.",
    )
    alert_credential_days: int = Field(
        14,
        alias="TF_ALERT_CREDENTIAL_DAYS",
        ge=0,
        description="Warn this many days before a credential expires (client secret, refresh token).",
    )
    alert_quota_percent: int = Field(
        90,
        alias="TF_ALERT_QUOTA_PERCENT",
        ge=1,
        le=100,
        description="Alert when this percentage of a platform's daily call budget is spent.",
    )
    alert_clear_minutes: int = Field(
        10,
        alias="TF_ALERT_CLEAR_MINUTES",
        ge=0,
        description="An alert clears only after its cause stayed away this many minutes (no flapping).",
    )

    # --- Inventory sync -------------------------------------------------------
    stock_buffer: int = Field(
        0,
        alias="TF_STOCK_BUFFER",
        ge=0,
        description="Units of each synced SKU held back from the marketplaces, unless the catalog's "
        "[stock] table sets its own buffer.",
    )
    stock_push_delay: int = Field(
        30,
        alias="TF_STOCK_PUSH_DELAY",
        ge=0,
        description="Seconds a stock change waits before it is pushed, so quick changes go out as one.",
    )
    made_to_order_lead_days: float = Field(
        5.0,
        alias="TF_MADE_TO_ORDER_LEAD_DAYS",
        gt=0,
        description="Days promised for made-to-order items: only units printable in time are offered.",
    )
    made_to_order_max: int = Field(
        10,
        alias="TF_MADE_TO_ORDER_MAX",
        ge=0,
        description="The most units of a made-to-order SKU ever offered, unless the catalog sets max.",
    )

    # --- Customer messages (opt-in per event) --------------------------------
    messages_amazon: AmazonMessageEvents = Field(
        (),
        alias="TF_MESSAGES_AMAZON",
        description="Amazon buyer messages to send, comma-separated: delayed, customization.",
        json_schema_extra=_var(default_doc="none (opt-in)"),
    )
    messages_ebay: EbayMessageEvents = Field(
        (),
        alias="TF_MESSAGES_EBAY",
        description="eBay buyer messages to send, comma-separated: queued, printing, shipped, delayed.",
        json_schema_extra=_var(default_doc="none (opt-in)"),
    )
    messages_etsy: EtsyMessageEvents = Field(
        (),
        alias="TF_MESSAGES_ETSY",
        description="Etsy buyer updates, comma-separated: shipped (note on the shipment); queued, "
        "printing, delayed (e-mail over TF_SMTP_URL).",
        json_schema_extra=_var(default_doc="none (opt-in)"),
    )
    message_templates: Path | None = Field(
        None,
        alias="TF_MESSAGE_TEMPLATES",
        description="TOML file whose message templates replace the built-in ones.",
        json_schema_extra=_var(default_doc="built-in templates"),
    )
    shop_name: str = Field(
        "TitanForge", alias="TF_SHOP_NAME", description="The shop's name as customer messages sign it."
    )
    smtp_from: FromAddress = Field(
        None,
        alias="TF_SMTP_FROM",
        description="From address of e-mail sent over TF_SMTP_URL.",
        json_schema_extra=_var(default_doc="the TF_SMTP_URL user when it is an address"),
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, dotenv_settings, _KeyringValuesSource(settings_cls))

    @model_validator(mode="before")
    @classmethod
    def _fill_derived_defaults(cls, data: Any) -> Any:
        """Defaults that depend on other variables (region, environment, poll interval)."""
        if not isinstance(data, dict):
            return data
        values = dict(data)

        def given(field_name: str) -> Any:
            alias = cls.model_fields[field_name].alias
            for key in (alias, field_name):
                if key is not None and values.get(key) not in (None, ""):
                    return values[key]
            return None

        def fill(field_name: str, value: Any) -> None:
            if given(field_name) is None and value is not None:
                values[field_name] = value

        region = str(_upper(given("amazon_region") or "NA"))
        environment = str(_lower(given("ebay_environment") or "production"))
        field_by_alias = {field.alias: name for name, field in cls.model_fields.items()}
        for variable, url in documented_endpoints(region, environment).items():
            fill(field_by_alias[variable], url)
        if region == "NA":
            fill("amazon_marketplace_ids", (AMAZON_US_MARKETPLACE_ID,))
        poll = given("poll_interval")
        # An unparsable TF_POLL_INTERVAL is reported once, under its own name.
        if poll is not None and str(poll).strip().isdigit():
            fill("amazon_poll_interval", poll)
            fill("etsy_poll_interval", poll)
        fill("data_dir", default_data_dir())
        return values

    @model_validator(mode="after")
    def _expand_data_dir(self) -> Settings:
        # Frozen model: the validator may still normalise its own field through object.__setattr__.
        object.__setattr__(self, "data_dir", self.data_dir.expanduser())
        return self

    # ------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        *,
        cwd: Path | None = None,
        config_dir: Path | None = None,
        use_keyring: bool = True,
        keyring: KeyringAccess | None = None,
    ) -> Settings:
        """Read the configuration with the documented precedence.

        Raises :class:`UserError` with a sentence per invalid variable (never its value).
        """
        cwd = Path.cwd() if cwd is None else cwd
        config_dir = default_config_dir() if config_dir is None else config_dir
        files = env_files(cwd, config_dir)
        keyring_values: dict[str, str] = {}
        if use_keyring:
            if keyring is None:
                from tf_console.keyring_access import KeyringAccess

                keyring = KeyringAccess()
            given = _names_given(files)
            wanted = [name for name in CREDENTIAL_VARIABLES if name not in given]
            if wanted and keyring.usable:
                keyring_values = keyring.get_many(wanted)
        token = _KEYRING_VALUES.set(keyring_values)
        try:
            # pydantic-settings lets the last env file win: lowest precedence first.
            lowest_first = tuple(str(env_file.path) for env_file in reversed(files))
            return cls(_env_file=lowest_first)
        except ValidationError as exc:
            raise UserError(_describe_validation_error(exc, files)) from None
        finally:
            _KEYRING_VALUES.reset(token)

    # ------------------------------------------------------------------
    def value(self, name: str) -> str | None:
        """The configured value of variable ``name`` as plain text (secrets revealed:
        callers hand it straight to a header or a hash, never to a log)."""
        raw = getattr(self, field_name_for(name))
        if raw is None:
            return None
        if isinstance(raw, SecretStr):
            return raw.get_secret_value()
        if isinstance(raw, tuple):
            return ",".join(raw)
        return str(raw)

    def secret(self, name: str) -> SecretStr | None:
        plain = self.value(name)
        return None if plain is None else SecretStr(plain)

    @property
    def tzinfo(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def poll_interval_for(self, platform: Platform) -> int:
        return {
            Platform.AMAZON: self.amazon_poll_interval,
            Platform.EBAY: self.ebay_poll_interval,
            Platform.ETSY: self.etsy_poll_interval,
        }.get(platform, self.poll_interval)

    def endpoint_defaults(self) -> dict[str, str]:
        """The documented endpoint of every endpoint variable for the current region/environment."""
        return documented_endpoints(self.amazon_region, self.ebay_environment)


# ---------------------------------------------------------------------------
# The variable registry, derived from the model (docs and .env.example are tested against it)


@dataclass(frozen=True, slots=True)
class VariableInfo:
    name: str
    field_name: str
    default: str
    meaning: str
    secret: bool
    credential: bool
    rotating: bool


def _is_secret(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is SecretStr or "SecretStr" in repr(annotation)


def _default_text(field: FieldInfo, extra: Mapping[str, Any]) -> str:
    if "default_doc" in extra:
        return str(extra["default_doc"])
    if field.default is None:
        return ""
    return str(field.default)


def variables() -> list[VariableInfo]:
    """Every configuration variable in declaration order."""
    out: list[VariableInfo] = []
    for field_name, field in Settings.model_fields.items():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        out.append(
            VariableInfo(
                name=cast(str, field.alias),
                field_name=field_name,
                default=_default_text(field, extra),
                meaning=field.description or "",
                secret=_is_secret(field),
                credential=bool(extra.get("credential")),
                rotating=bool(extra.get("rotating")),
            )
        )
    return out


VARIABLES: dict[str, VariableInfo] = {info.name: info for info in variables()}
CREDENTIAL_VARIABLES: tuple[str, ...] = tuple(v.name for v in VARIABLES.values() if v.credential)
ROTATING_VARIABLES: frozenset[str] = frozenset(v.name for v in VARIABLES.values() if v.rotating)
SECRET_VARIABLES: frozenset[str] = frozenset(v.name for v in VARIABLES.values() if v.secret)
ENDPOINT_VARIABLES: tuple[str, ...] = (
    "AMAZON_SP_API_URL",
    "AMAZON_LWA_URL",
    "EBAY_TRADING_URL",
    "EBAY_API_URL",
    "ETSY_API_URL",
    "ETSY_OAUTH_URL",
)


def validate_value(name: str, value: str) -> None:
    """Check one variable's value on its own (``creds set``); UserError names the variable,
    never the value."""
    field = Settings.model_fields[field_name_for(name)]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    adapter: TypeAdapter[Any] = TypeAdapter(annotation)
    try:
        adapter.validate_python(value)
    except ValidationError as exc:
        problems = "; ".join(
            _error_text(error) for error in exc.errors(include_input=False, include_url=False)
        )
        raise UserError(f"{name.upper()} {problems}; nothing was stored.") from None


def field_name_for(name: str) -> str:
    info = VARIABLES.get(name.upper())
    if info is None:
        raise KeyError(name)
    return info.field_name


# ---------------------------------------------------------------------------
# Where values come from


class SourceKind(enum.StrEnum):
    ENVIRONMENT = "environment"
    DOTENV_LOCAL = ".env.local"
    DOTENV = ".env"
    KEYRING = "keyring"
    VAULT = "vault"


@dataclass(frozen=True, slots=True)
class EnvFile:
    path: Path
    kind: SourceKind


def env_files(cwd: Path, config_dir: Path) -> list[EnvFile]:
    """The env files in precedence order, highest first (existing or not)."""
    folders: list[Path] = [cwd]
    if config_dir.resolve() != cwd.resolve():
        folders.append(config_dir)
    out: list[EnvFile] = []
    for file_name, kind in ((".env.local", SourceKind.DOTENV_LOCAL), (".env", SourceKind.DOTENV)):
        out.extend(EnvFile(folder / file_name, kind) for folder in folders)
    return out


def read_env_file(path: Path) -> dict[str, str]:
    """Non-empty values of an env file, keys upper-cased (names are case-insensitive)."""
    if not path.is_file():
        return {}
    values = dotenv_values(path, encoding="utf-8")
    return {key.upper(): value for key, value in values.items() if value}


def _environment() -> dict[str, str]:
    return {key.upper(): value for key, value in os.environ.items() if value}


def _names_given(files: Iterable[EnvFile]) -> set[str]:
    given = set(_environment())
    for env_file in files:
        given.update(read_env_file(env_file.path))
    return given


@dataclass(frozen=True, slots=True)
class ValueOrigin:
    """One place that holds a value for a variable; the first in a list is the one in use."""

    kind: SourceKind
    location: str  # a path, or words like "the process environment"
    value: SecretStr

    def __repr__(self) -> str:
        return f"ValueOrigin(kind={self.kind.value!r}, location={self.location!r})"


def value_origins(
    name: str,
    *,
    cwd: Path,
    config_dir: Path,
    keyring: KeyringAccess | None = None,
) -> list[ValueOrigin]:
    """Every place holding a value for ``name``, highest precedence first
    (the vault is added by the caller: it needs the data key)."""
    name = name.upper()
    origins: list[ValueOrigin] = []
    env_value = _environment().get(name)
    if env_value:
        origins.append(ValueOrigin(SourceKind.ENVIRONMENT, "the process environment", SecretStr(env_value)))
    for env_file in env_files(cwd, config_dir):
        file_value = read_env_file(env_file.path).get(name)
        if file_value:
            origins.append(ValueOrigin(env_file.kind, str(env_file.path), SecretStr(file_value)))
    if keyring is not None and name in CREDENTIAL_VARIABLES and keyring.usable:
        keyring_value = keyring.get(name)
        if keyring_value:
            origins.append(
                ValueOrigin(SourceKind.KEYRING, keyring.backend_description(), SecretStr(keyring_value))
            )
    return origins


# ---------------------------------------------------------------------------
# Validation errors as sentences


def _error_text(error: Mapping[str, Any]) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "int_parsing":
        return "must be a whole number"
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return f"must be at least {bound}" if kind == "greater_than_equal" else f"must be more than {bound}"
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "")
        return f"must be one of {expected}"
    if kind == "value_error":
        return str(error.get("msg", "")).removeprefix("Value error, ")
    # pydantic's own messages describe the expected shape, not the input.
    return str(error.get("msg", "is not valid")).rstrip(".").lower()


def _describe_validation_error(exc: ValidationError, files: list[EnvFile]) -> str:
    problems: list[str] = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = error.get("loc") or ()
        name = str(loc[0]) if loc else "a variable"
        if name in Settings.model_fields:
            name = cast(str, Settings.model_fields[name].alias)
        where = _where_set(name, files)
        problems.append(f"{name} {_error_text(error)}{where}")
    unique = list(dict.fromkeys(problems))
    return (
        "The configuration is not valid: "
        + "; ".join(unique)
        + f". Fix it in the environment, .env.local or .env (see {CONFIG_DOC})."
    )


def _where_set(name: str, files: list[EnvFile]) -> str:
    if name in _environment():
        return " (set in the environment)"
    for env_file in files:
        if name in read_env_file(env_file.path):
            return f" (set in {env_file.path})"
    if name in CREDENTIAL_VARIABLES:
        return " (set in the keyring)"
    return ""


# ---------------------------------------------------------------------------
# Which platforms can run


@dataclass(frozen=True, slots=True)
class PlatformConfigStatus:
    platform: Platform
    enabled: bool
    reason: str
    missing: list[str]
    #: names among the platform's variables that hold a value (for "partly configured")
    present: list[str]


# Required variables per platform; a tuple of names means "any one of these".
REQUIRED_VARIABLES: dict[Platform, tuple[str | tuple[str, ...], ...]] = {
    Platform.AMAZON: ("AMAZON_SELLER_ID", "AMAZON_REFRESH_TOKEN", "AMAZON_CLIENT_ID", "AMAZON_CLIENT_SECRET"),
    Platform.EBAY: (
        "EBAY_APP_ID",
        "EBAY_DEV_ID",
        "EBAY_CERT_ID",
        ("EBAY_USER_TOKEN", "EBAY_REFRESH_TOKEN"),
    ),
    Platform.ETSY: (
        "ETSY_CLIENT_ID",
        "ETSY_CLIENT_SECRET",
        ("ETSY_REFRESH_TOKEN", "ETSY_ACCESS_TOKEN"),
    ),
}


def _flatten(required: Iterable[str | tuple[str, ...]]) -> Iterator[str]:
    for item in required:
        if isinstance(item, tuple):
            yield from item
        else:
            yield item


def platform_status(
    settings: Settings,
    platform: Platform,
    *,
    has_value: Callable[[str], bool] | None = None,
) -> PlatformConfigStatus:
    """Whether ``platform`` has what it needs; a disabled platform carries a sentence saying
    what to set.  ``has_value`` lets the caller count values only the token vault holds."""

    def present(name: str) -> bool:
        return settings.value(name) is not None or (has_value is not None and has_value(name))

    if platform not in REQUIRED_VARIABLES:
        reason = f"The {platform.label} platform needs no credentials."
        return PlatformConfigStatus(platform, True, reason, [], [])
    required = REQUIRED_VARIABLES[platform]
    missing: list[str] = []
    for item in required:
        alternatives = item if isinstance(item, tuple) else (item,)
        if not any(present(name) for name in alternatives):
            missing.append(alternatives[0])
    other_missing: list[str] = []
    if platform is Platform.AMAZON and not settings.amazon_marketplace_ids:
        other_missing.append("AMAZON_MARKETPLACE_IDS")
    given = [name for name in _flatten(required) if present(name)]
    label = platform.label
    if not missing and not other_missing:
        return PlatformConfigStatus(platform, True, f"{label} is configured.", [], given)
    parts: list[str] = []
    if missing:
        parts.append(f"{', '.join(missing)} (tf-console creds set NAME)")
    if other_missing:
        parts.append(
            f"{', '.join(other_missing)} (in the environment or .env.local; required for region "
            f"{settings.amazon_region})"
        )
    reason = f"{label} is disabled: set {' and '.join(parts)}."
    return PlatformConfigStatus(platform, False, reason, missing + other_missing, given)
