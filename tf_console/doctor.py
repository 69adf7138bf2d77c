"""``tf-console doctor``: the integration guide's production checklist as findings.

Each check is a small function ``(AppContext) -> Iterable[Finding]``; :data:`DEFAULT_CHECKS`
lists them in the order they print, and later features append their own (network checks,
alerts).  Findings are sentences for the shop owner.  No finding ever contains a secret:
checks look at the shape of a token (its type, whether it is set), never print it.
"""

from __future__ import annotations

import enum
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from tf_console.config import (
    AMAZON_MARKETPLACES_BY_REGION,
    CONFIG_DOC,
    ENDPOINT_VARIABLES,
    REQUIRED_VARIABLES,
    env_files,
    is_loopback_host,
)
from tf_console.context import AppContext
from tf_console.crypto import Cipher, FernetCipher
from tf_console.errors import UserError
from tf_console.keys import KeyLocation, find_data_key, key_file_path, missing_key_error
from tf_console.models import MARKETPLACES, Platform
from tf_console.vault import TokenVault

log = logging.getLogger(__name__)


class Level(enum.StrEnum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    section: str
    level: Level
    sentence: str


DoctorCheck = Callable[[AppContext], Iterable[Finding]]

EBAY_AUTHNAUTH_PREFIX = "AgAAAA"
EBAY_OAUTH_PREFIX = "v^1.1#"
AMAZON_REFRESH_PREFIX = "Atzr|"
AMAZON_CLIENT_ID_PREFIX = "amzn1.application-oa2-client."
EBAY_MIN_POLL_SECONDS = 900
_MAX_LISTED_FILES = 12


def _creds_hint(name: str) -> str:
    return f"tf-console creds set {name}"


def _human_size(size: int) -> str:
    amount = float(size)
    for unit in ("bytes", "kB", "MB", "GB"):
        if amount < 1000 or unit == "GB":
            return f"{int(amount)} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1000
    raise AssertionError("unreachable")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _shared_with_others(path: Path) -> bool:
    return bool(_mode(path) & 0o077)


# ---------------------------------------------------------------------------
# Checks


def check_configuration_files(ctx: AppContext) -> Iterator[Finding]:
    section = "Configuration"
    found = [env_file.path for env_file in env_files(ctx.cwd, ctx.config_dir) if env_file.path.is_file()]
    if found:
        yield Finding(section, Level.OK, f"Settings are read from {', '.join(map(str, found))}.")
    else:
        yield Finding(
            section,
            Level.INFO,
            f"No .env.local or .env file in {ctx.cwd} or {ctx.config_dir}: settings come from the "
            f"environment and the keyring only. Copy .env.example to .env.local, fill it in and "
            f"run chmod 600 .env.local — or store credentials with tf-console creds set NAME.",
        )
    for path in found:
        if _shared_with_others(path):
            yield Finding(
                section,
                Level.WARN,
                f"{path} can be read by other users and may hold secrets: run chmod 600 '{path}'.",
            )
    defaults = ctx.settings.endpoint_defaults()
    for name in ENDPOINT_VARIABLES:
        value = ctx.settings.value(name) or ""
        if value == defaults[name]:
            continue
        if is_loopback_host(urlsplit(value).hostname or ""):
            yield Finding(
                section,
                Level.WARN,
                f"{name} points at {value}, a loopback address (the sandbox or a test), "
                f"not the marketplace; unset it for real orders (default {defaults[name]}).",
            )
        else:
            yield Finding(section, Level.INFO, f"{name} is overridden to {value} (default {defaults[name]}).")


def check_platforms(ctx: AppContext) -> Iterator[Finding]:
    section = "Marketplaces"
    statuses = [ctx.platform_status(platform) for platform in MARKETPLACES]
    if not any(status.enabled or status.present for status in statuses):
        needs = "; ".join(f"{platform.label} needs {_required_words(platform)}" for platform in MARKETPLACES)
        yield Finding(
            section,
            Level.WARN,
            f"No marketplace is configured yet. Connect at least one by setting its credentials with "
            f"tf-console creds set NAME (stored in the keyring, or in .env.local when there is none) "
            f"or in .env.local: {needs}. Every variable is described in {CONFIG_DOC}.",
        )
        return
    for status in statuses:
        if status.enabled:
            yield Finding(section, Level.OK, status.reason)
        elif status.present:
            yield Finding(section, Level.WARN, f"{status.reason} Until then it is not polled.")
        else:
            yield Finding(
                section,
                Level.INFO,
                f"{status.platform.label} is not configured (optional): set "
                f"{_required_words(status.platform)} to connect it.",
            )


def _required_words(platform: Platform) -> str:
    words: list[str] = []
    for item in REQUIRED_VARIABLES[platform]:
        words.append(" or ".join(item) if isinstance(item, tuple) else item)
    return ", ".join(words)


def _configured(ctx: AppContext, platform: Platform) -> bool:
    status = ctx.platform_status(platform)
    return status.enabled or bool(status.present)


def check_amazon(ctx: AppContext) -> Iterator[Finding]:
    section = "Amazon"
    if not _configured(ctx, Platform.AMAZON):
        return
    settings = ctx.settings
    known = AMAZON_MARKETPLACES_BY_REGION[settings.amazon_region]
    ids = settings.amazon_marketplace_ids
    if ids:
        named = ", ".join(f"{mid} ({known[mid]})" if mid in known else mid for mid in ids)
        yield Finding(
            section,
            Level.OK,
            f"Region {settings.amazon_region} ({settings.amazon_sp_api_url}); "
            f"orders of marketplace(s) {named}.",
        )
        for mid in ids:
            if mid not in known:
                yield Finding(
                    section,
                    Level.WARN,
                    f"Marketplace id {mid} is not one of region {settings.amazon_region}'s marketplaces; "
                    f"check AMAZON_REGION and AMAZON_MARKETPLACE_IDS.",
                )
    refresh = settings.value("AMAZON_REFRESH_TOKEN")
    if refresh is not None and not refresh.startswith(AMAZON_REFRESH_PREFIX):
        yield Finding(
            section,
            Level.WARN,
            f"AMAZON_REFRESH_TOKEN does not look like a Login with Amazon refresh token (those begin "
            f"with {AMAZON_REFRESH_PREFIX}); check that the whole token was copied.",
        )
    client_id = settings.amazon_client_id
    if client_id is not None and not client_id.startswith(AMAZON_CLIENT_ID_PREFIX):
        yield Finding(
            section,
            Level.WARN,
            "AMAZON_CLIENT_ID does not look like an LWA client id "
            f"(those begin with {AMAZON_CLIENT_ID_PREFIX}).",
        )
    if settings.amazon_client_secret is not None:
        yield Finding(
            section,
            Level.INFO,
            f"Amazon requires rotating the LWA client secret every 180 days (it stops working "
            f"otherwise); after rotating it in Seller Central run {_creds_hint('AMAZON_CLIENT_SECRET')}.",
        )


def ebay_token_kind(token: str) -> str:
    """``authnauth``, ``oauth`` or ``unknown`` — by the documented prefixes."""
    if token.startswith(EBAY_AUTHNAUTH_PREFIX):
        return "authnauth"
    if token.startswith(EBAY_OAUTH_PREFIX):
        return "oauth"
    return "unknown"


def check_ebay(ctx: AppContext) -> Iterator[Finding]:
    section = "eBay"
    if not _configured(ctx, Platform.EBAY):
        return
    settings = ctx.settings
    yield Finding(
        section,
        Level.INFO,
        f"Environment {settings.ebay_environment}, site id {settings.ebay_site_id}, Trading API at "
        f"{settings.ebay_trading_url}; tokens work only in the environment that issued them.",
    )
    token = settings.value("EBAY_USER_TOKEN")
    has_refresh = settings.ebay_refresh_token is not None
    if token is None:
        if has_refresh:
            yield Finding(
                section,
                Level.OK,
                "No EBAY_USER_TOKEN is set; OAuth user access tokens are fetched with EBAY_REFRESH_TOKEN "
                f"(scopes: {settings.ebay_oauth_scopes}).",
            )
        return
    kind = ebay_token_kind(token)
    if kind == "authnauth":
        yield Finding(
            section,
            Level.OK,
            "EBAY_USER_TOKEN is an Auth'n'Auth token (sent as RequesterCredentials/eBayAuthToken); "
            "it lasts about 18 months and eBay starts warning 7 days before it expires.",
        )
    elif kind == "oauth" and has_refresh:
        yield Finding(
            section,
            Level.OK,
            "EBAY_USER_TOKEN is an OAuth user access token (sent in X-EBAY-API-IAF-TOKEN); it lasts "
            f"2 hours and is renewed with EBAY_REFRESH_TOKEN (scopes: {settings.ebay_oauth_scopes}).",
        )
    elif kind == "oauth":
        yield Finding(
            section,
            Level.WARN,
            "EBAY_USER_TOKEN is an OAuth user access token, which lasts only 2 hours and cannot be "
            f"renewed without EBAY_REFRESH_TOKEN: run {_creds_hint('EBAY_REFRESH_TOKEN')}.",
        )
    else:
        yield Finding(
            section,
            Level.WARN,
            f"EBAY_USER_TOKEN is neither an Auth'n'Auth token ({EBAY_AUTHNAUTH_PREFIX}…) nor an OAuth "
            f"user token ({EBAY_OAUTH_PREFIX}…); check that the whole token was copied.",
        )


def check_etsy(ctx: AppContext) -> Iterator[Finding]:
    section = "Etsy"
    if not _configured(ctx, Platform.ETSY):
        return
    settings = ctx.settings
    if settings.etsy_client_id is not None and settings.etsy_client_secret is None:
        yield Finding(
            section,
            Level.WARN,
            "ETSY_CLIENT_SECRET is missing: Etsy refuses every call whose x-api-key lacks the shared "
            "secret (403 'Shared secret is required'). Copy it from your Etsy app page and run "
            f"{_creds_hint('ETSY_CLIENT_SECRET')}.",
        )
    access = settings.value("ETSY_ACCESS_TOKEN")
    if access is not None:
        user_part, dot, _ = access.partition(".")
        if dot and user_part.isdigit():
            yield Finding(
                section, Level.OK, "ETSY_ACCESS_TOKEN has Etsy's shape (numeric user id, a dot, the token)."
            )
        else:
            yield Finding(
                section,
                Level.WARN,
                "ETSY_ACCESS_TOKEN does not start with a numeric user id and a dot, as Etsy's tokens "
                "do; check that the whole token was copied.",
            )
    if settings.etsy_refresh_token is not None:
        yield Finding(
            section,
            Level.OK,
            "ETSY_REFRESH_TOKEN is set. Etsy returns a new one on every refresh; the newest is kept "
            "encrypted in the token vault. Unused for 90 days it expires and Etsy must be re-authorised.",
        )
    elif access is not None:
        yield Finding(
            section,
            Level.WARN,
            "Only ETSY_ACCESS_TOKEN is set: it expires within an hour and cannot be renewed; run "
            f"{_creds_hint('ETSY_REFRESH_TOKEN')}.",
        )
    if settings.etsy_shop_id is not None:
        yield Finding(section, Level.OK, f"ETSY_SHOP_ID is {settings.etsy_shop_id}.")
    else:
        yield Finding(
            section,
            Level.INFO,
            "ETSY_SHOP_ID is not set; it is discovered with GET /v3/application/users/me at the first sync.",
        )


def check_keyring(ctx: AppContext) -> Iterator[Finding]:
    section = "Keyring"
    info = ctx.keyring.info()
    if info.usable and not info.insecure:
        yield Finding(section, Level.OK, f"Credentials can be kept in the keyring: {info.description}.")
    elif info.usable:
        yield Finding(section, Level.WARN, f"The keyring in use is {info.description}. {info.problem}")
    else:
        yield Finding(
            section,
            Level.INFO,
            f"No usable keyring ({info.problem_clause}). Secrets come from the environment and "
            f"env files; tf-console creds set writes them to .env.local (mode 600) instead.",
        )


def _existing_cipher(ctx: AppContext) -> Cipher | None:
    """The data key's cipher if a key exists; doctor never mints one."""
    found = find_data_key(keyring=ctx.keyring, config_dir=ctx.config_dir, data_dir=ctx.data_dir)
    return None if found is None else FernetCipher(found[0])


def check_data_key(ctx: AppContext) -> Iterator[Finding]:
    section = "Data key"
    found = find_data_key(keyring=ctx.keyring, config_dir=ctx.config_dir, data_dir=ctx.data_dir)
    if found is None:
        if ctx.state_exists:
            yield Finding(
                section, Level.ERROR, str(missing_key_error(ctx.data_dir, ctx.keyring, ctx.config_dir))
            )
            return
        place = (
            "the keyring"
            if ctx.keyring.usable and not ctx.keyring.insecure
            else str(key_file_path(ctx.config_dir))
        )
        yield Finding(
            section,
            Level.INFO,
            f"There is no data key yet; one is created in {place} when state is first written.",
        )
        return
    _, info = found
    yield Finding(
        section,
        Level.OK,
        f"The data key (id {info.key_id}) is in {info.where}. Back it up: without it the buyer "
        f"data under {ctx.data_dir} cannot be read.",
    )
    if info.location is KeyLocation.FILE:
        path = key_file_path(ctx.config_dir)
        if _shared_with_others(path):
            yield Finding(
                section,
                Level.ERROR,
                f"The key file {path} can be read by other users: run chmod 600 '{path}'.",
            )
        if path.resolve().is_relative_to(ctx.data_dir.resolve()):
            yield Finding(
                section,
                Level.WARN,
                f"The key file {path} is inside the data folder, so a copy of the data includes its key.",
            )


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        base = Path(folder)
        for name in dirs + files:
            yield base / name


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in _walk(path) if p.is_file())


def check_data_dir(ctx: AppContext) -> Iterator[Finding]:
    section = "Data folder"
    data_dir = ctx.data_dir
    if not data_dir.is_dir():
        yield Finding(
            section, Level.ERROR, f"The data folder {data_dir} does not exist and could not be created."
        )
        return
    entries = sorted(data_dir.iterdir(), key=lambda p: p.name)
    total = _tree_size(data_dir)
    mode = _mode(data_dir)
    yield Finding(
        section,
        Level.OK if mode & 0o077 == 0 else Level.WARN,
        f"State lives in {data_dir} (mode {mode:04o}, {_human_size(total)} in all)"
        + ("." if mode & 0o077 == 0 else f"; it should be private: run chmod 700 '{data_dir}'."),
    )
    exposed = [p for p in _walk(data_dir) if _shared_with_others(p)]
    if exposed:
        yield Finding(
            section,
            Level.WARN,
            f"{len(exposed)} file(s) or folder(s) under {data_dir} can be read by other users "
            f"(e.g. {exposed[0].name}): run chmod -R go-rwx '{data_dir}'.",
        )
    if not entries:
        yield Finding(section, Level.INFO, "The data folder is empty: no state has been written yet.")
        return
    listed = [
        f"{entry.name}{'/' if entry.is_dir() else ''} {_human_size(_tree_size(entry))}"
        for entry in entries[:_MAX_LISTED_FILES]
    ]
    more = f" and {len(entries) - _MAX_LISTED_FILES} more" if len(entries) > _MAX_LISTED_FILES else ""
    yield Finding(section, Level.INFO, f"State files: {', '.join(listed)}{more}.")


def _when(moment: datetime, ctx: AppContext) -> str:
    return moment.astimezone(ctx.settings.tzinfo).strftime("%Y-%m-%d %H:%M %Z")


def check_token_vault(ctx: AppContext) -> Iterator[Finding]:
    section = "Token vault"
    if not ctx.vault_path.exists():
        yield Finding(
            section,
            Level.INFO,
            "No rotated tokens are stored yet (the vault is written at the first refresh).",
        )
        return
    cipher = _existing_cipher(ctx)
    if cipher is None:
        yield Finding(
            section,
            Level.ERROR,
            f"The token vault {ctx.vault_path} exists but the data key that encrypts it is missing "
            f"(see Data key).",
        )
        return
    vault = TokenVault(ctx.vault_path, cipher, clock=ctx.clock)
    now = ctx.clock.now()
    described: list[str] = []
    for name, entry in vault.entries().items():
        words = f"{name} (stored {_when(entry.stored_at, ctx)}"
        if entry.expires_at is not None:
            verb = "expired" if entry.expired(now) else "expires"
            words += f", {verb} {_when(entry.expires_at, ctx)}"
        described.append(words + ")")
    if described:
        yield Finding(
            section,
            Level.OK,
            f"The token vault holds {'; '.join(described)}; a newer stored token is used instead of "
            f"the configured one until the configured one changes.",
        )
    else:
        yield Finding(section, Level.INFO, "The token vault is empty.")


def check_timezone(ctx: AppContext) -> Iterator[Finding]:
    section = "Time zone"
    settings = ctx.settings
    now = _when(ctx.clock.now(), ctx)
    if settings.timezone == "UTC":
        yield Finding(
            section,
            Level.INFO,
            f"TF_TIMEZONE is not set, so times are shown in UTC (now {now}); set it to the shop's "
            f"time zone, e.g. Europe/Berlin, for ship-by dates and staffed hours.",
        )
    else:
        yield Finding(
            section,
            Level.OK,
            f"Times are shown in {settings.timezone} (now {now}); state is stored in UTC.",
        )


def check_polling(ctx: AppContext) -> Iterator[Finding]:
    section = "Polling"
    settings = ctx.settings
    intervals = ", ".join(
        f"{platform.label} every {settings.poll_interval_for(platform)} s" for platform in MARKETPLACES
    )
    yield Finding(
        section,
        Level.INFO,
        f"Orders are polled: {intervals}; at most {settings.marketplace_api_rate_limit} requests per minute "
        f"per platform; shop and listing data are cached for {settings.marketplace_cache_ttl} s.",
    )
    if settings.ebay_poll_interval < EBAY_MIN_POLL_SECONDS:
        yield Finding(
            section,
            Level.WARN,
            f"EBAY_POLL_INTERVAL is {settings.ebay_poll_interval} s; eBay suggests polling no more "
            f"often than every 15 minutes ({EBAY_MIN_POLL_SECONDS} s) and allows 5,000 Trading calls a day.",
        )


def check_alerts(ctx: AppContext) -> Iterator[Finding]:
    # Imported here: the alerts package builds on this module's Finding and Level.
    from tf_console.alerts.doctor import alert_findings

    yield from alert_findings(ctx)


DEFAULT_CHECKS: list[DoctorCheck] = [
    check_configuration_files,
    check_platforms,
    check_amazon,
    check_ebay,
    check_etsy,
    check_keyring,
    check_data_key,
    check_data_dir,
    check_token_vault,
    check_timezone,
    check_polling,
    check_alerts,
]


# ---------------------------------------------------------------------------
# Running and printing


def run_doctor(ctx: AppContext, checks: Sequence[DoctorCheck] | None = None) -> list[Finding]:
    """All findings; a check that fails becomes an error finding instead of stopping the rest."""
    findings: list[Finding] = []
    for check in DEFAULT_CHECKS if checks is None else checks:
        try:
            findings.extend(check(ctx))
        except UserError as exc:
            findings.append(Finding(_section_of(check), Level.ERROR, str(exc)))
        except Exception as exc:
            # The exception text could quote data; its type is enough to report the bug.
            log.warning("doctor check %s failed: %s", check.__name__, type(exc).__name__)
            findings.append(
                Finding(
                    _section_of(check),
                    Level.ERROR,
                    f"The {check.__name__} check failed unexpectedly ({type(exc).__name__}); "
                    f"the other checks still ran.",
                )
            )
    return findings


def _section_of(check: DoctorCheck) -> str:
    return check.__name__.removeprefix("check_").replace("_", " ").capitalize()


def render(findings: Sequence[Finding]) -> str:
    lines: list[str] = []
    section = None
    for finding in findings:
        if finding.section != section:
            section = finding.section
            if lines:
                lines.append("")
            lines.append(section)
        lines.append(f"  {finding.level.value:<5}  {finding.sentence}")
    counts = {level: sum(1 for f in findings if f.level is level) for level in Level}
    lines.append("")
    if counts[Level.ERROR]:
        verdict = "Fix the errors above before relying on tf-console."
    elif counts[Level.WARN]:
        verdict = "No errors; the warnings above are worth a look."
    else:
        verdict = "Everything checked is in order."
    lines.append(
        f"{counts[Level.ERROR]} error(s), {counts[Level.WARN]} warning(s), {counts[Level.OK]} ok. {verdict}"
    )
    return "\n".join(lines) + "\n"


def exit_code(findings: Sequence[Finding]) -> int:
    return 1 if any(f.level is Level.ERROR for f in findings) else 0
