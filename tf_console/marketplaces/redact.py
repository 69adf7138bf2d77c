"""Scrubbing of secrets and PII from every text that leaves the marketplace layer.

Health records, log lines and error sentences pass through :func:`scrub` (or the
:class:`Redactor` they were given).  Two kinds of protection stack up:

* exact values: tokens, client secrets and buyer names/e-mails are registered as
  they become known (``register_secret`` / ``register_pii``) and replaced wherever
  they appear;
* patterns: the token shapes the three marketplaces use (LWA ``Atza|``/``Atzr|``,
  eBay ``AgAAAA…`` and ``v^1.1#…``, ``Bearer …``), ``key=value`` pairs whose key
  names a credential, e-mail addresses, and long base64-ish strings.

:func:`install_log_redaction` quiets httpx/httpcore (their INFO lines carry full
URLs) and attaches :class:`RedactingFilter` to the root handlers.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable

SECRET_MARK = "<secret>"
PII_MARK = "<pii>"
EMAIL_MARK = "<email>"

# Shorter values would scrub ordinary words; a real token or secret is never this short.
_MIN_SECRET_LENGTH = 6
_MIN_PII_LENGTH = 3
_MAX_PII_VALUES = 5000

_CREDENTIAL_KEYS = (
    r"authorization|x-amz-access-token|x-api-key|x-ebay-api-iaf-token|ebayauthtoken|"
    r"access_token|refresh_token|client_secret|id_token|password|token|secret|api_key"
)
_TOKEN_END = r"[^\s\"'&,;<>)\]}]"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # <eBayAuthToken>…</eBayAuthToken> inside a Trading request body
    (re.compile(r"(<eBayAuthToken>)[^<]*(</eBayAuthToken>)", re.IGNORECASE), r"\1" + SECRET_MARK + r"\2"),
    (re.compile(r"\bBearer\s+" + _TOKEN_END + r"+", re.IGNORECASE), "Bearer " + SECRET_MARK),
    (re.compile(r"\bBasic\s+[A-Za-z0-9+/=]{8,}", re.IGNORECASE), "Basic " + SECRET_MARK),
    (re.compile(r"Atz[ar]\|" + _TOKEN_END + r"+"), SECRET_MARK),
    (re.compile(r"AgAAAA" + _TOKEN_END + r"*"), SECRET_MARK),
    (re.compile(r"v\^1\.1#" + _TOKEN_END + r"+"), SECRET_MARK),
    (
        re.compile(r"(?i)\b(" + _CREDENTIAL_KEYS + r")([\"']?\s*[:=]\s*[\"']?)(" + _TOKEN_END + r"+)"),
        r"\1\2" + SECRET_MARK,
    ),
    (re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}"), EMAIL_MARK),
)

_LONG_OPAQUE = re.compile(r"(?<![\w\-+/])[A-Za-z0-9+/_\-]{32,}={0,2}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _scrub_long_opaque(match: re.Match[str]) -> str:
    text = match.group(0)
    # Request ids are UUIDs and worth keeping; an opaque run needs letters and digits to look like a token.
    if _UUID.fullmatch(text):
        return text
    has_digit = any(c.isdigit() for c in text)
    has_alpha = any(c.isalpha() for c in text)
    return SECRET_MARK if has_digit and has_alpha else text


class Redactor:
    """Known secret and PII values plus the token patterns; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self._pii: OrderedDict[str, None] = OrderedDict()
        self._ordered_secrets: list[str] = []
        self._ordered_pii: list[str] = []
        self._dirty = False

    def register_secret(self, value: str | None) -> None:
        """Scrub ``value`` (a token, secret or key) from now on."""
        if not value or len(value) < _MIN_SECRET_LENGTH:
            return
        with self._lock:
            if value not in self._secrets:
                self._secrets.add(value)
                self._dirty = True

    def register_pii(self, values: Iterable[str | None]) -> None:
        """Scrub buyer names, e-mails, phone numbers and the like; the most recent
        values are kept (bounded), older ones are also covered by the e-mail pattern."""
        with self._lock:
            for value in values:
                if not value:
                    continue
                value = value.strip()
                if len(value) < _MIN_PII_LENGTH:
                    continue
                if value in self._pii:
                    self._pii.move_to_end(value)
                    continue
                self._pii[value] = None
                self._dirty = True
                while len(self._pii) > _MAX_PII_VALUES:
                    self._pii.popitem(last=False)

    def _known_values(self) -> tuple[list[str], list[str]]:
        with self._lock:
            if self._dirty:
                self._ordered_secrets = sorted(self._secrets, key=len, reverse=True)
                self._ordered_pii = sorted(self._pii, key=len, reverse=True)
                self._dirty = False
            return self._ordered_secrets, self._ordered_pii

    def scrub(self, text: str) -> str:
        """``text`` with every registered value and token-shaped string replaced."""
        if not text:
            return text
        # Plain substring checks: thousands of registered names stay cheap, where one big
        # alternation regex would have to be recompiled after every page of orders.
        secrets, pii = self._known_values()
        for value in secrets:
            if value in text:
                text = text.replace(value, SECRET_MARK)
        for value in pii:
            if value in text:
                text = text.replace(value, PII_MARK)
        for pattern, replacement in _PATTERNS:
            text = pattern.sub(replacement, text)
        return _LONG_OPAQUE.sub(_scrub_long_opaque, text)


REDACTOR = Redactor()
"""The process-wide redactor: the logging filter and every health recorder use it by default."""


def scrub(text: str) -> str:
    return REDACTOR.scrub(text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through the redactor before any handler formats it."""

    def __init__(self, redactor: Redactor = REDACTOR) -> None:
        super().__init__()
        self._redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not hide the line: keep its template only
            message = str(record.msg)
        cleaned = self._redactor.scrub(message)
        if cleaned != message or record.args:
            record.msg = cleaned
            record.args = None
        return True


_installed_lock = threading.Lock()


def redacting_logger(name: str, redactor: Redactor = REDACTOR) -> logging.Logger:
    """``logging.getLogger(name)`` with the redacting filter attached once.

    Logger filters only see records created on that very logger, so each of our
    modules asks for its own filtered logger.
    """
    logger = logging.getLogger(name)
    with _installed_lock:
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter(redactor))
    return logger


def install_log_redaction(redactor: Redactor = REDACTOR) -> None:
    """Quiet httpx/httpcore and scrub every record the root handlers emit."""
    for noisy in ("httpx", "httpcore", "hpack"):
        noisy_logger = logging.getLogger(noisy)
        noisy_logger.setLevel(logging.WARNING)
        redacting_logger(noisy, redactor)
    with _installed_lock:
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, RedactingFilter) for f in handler.filters):
                handler.addFilter(RedactingFilter(redactor))
