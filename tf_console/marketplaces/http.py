"""The one HTTP client every marketplace call goes through.

:class:`ApiClient` (one per platform) wraps ``httpx.AsyncClient`` and adds, in
this order for each attempt: the rate limiter (wait for a token), the access
token, the request itself (explicit timeouts, no redirects, response size cap
while streaming), the platform's error classification, health recording and the
retry policy:

* reads (``idempotent=True``) are retried with exponential backoff and full
  jitter on 429, 5xx, timeouts, dropped connections and truncated bodies,
  honouring ``Retry-After`` (seconds or an HTTP date), within ``max_attempts``
  and ``max_retry_seconds``;
* a side-effecting call (``idempotent=False``) is re-sent only when it certainly
  did not reach the marketplace's logic: a connection that never opened, a 429,
  an auth error (after one token refresh), or a platform-classified
  :class:`NotApplied`.  Anything else with an unknown outcome — a read timeout, a
  connection dropped after sending, a 5xx, an unreadable 2xx — raises
  :class:`OutcomeUnknown` and is never re-sent here: the outbox reconciles first.

A platform plugs in through :class:`PlatformHooks`: ``classify(response)``
returns a :class:`MarketplaceError` for answers that are errors in its own terms
(eBay ``Ack=Failure`` on HTTP 200, Amazon ``{"errors": [...]}``, Etsy
``{"error": ...}``; return :class:`ReauthNeeded` for an authentication error),
``rate_headers(operation, headers)`` maps its rate-limit headers to a
:class:`RateUpdate`, ``auth_headers(token)`` places the token.
"""

from __future__ import annotations

import contextlib
import email.utils
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar, cast
from urllib.parse import urljoin

import anyio
import httpx

from tf_console import __version__
from tf_console.clock import Clock
from tf_console.config import is_loopback_host
from tf_console.marketplaces.auth import AuthProvider
from tf_console.marketplaces.base import (
    MalformedResponse,
    MarketplaceError,
    NotConfigured,
    OutcomeUnknown,
    PermanentError,
    QuotaExhausted,
    RateLimited,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.cache import ResponseCache, cache_key
from tf_console.marketplaces.health import HealthRecorder
from tf_console.marketplaces.ratelimit import RateLimiter, RateUpdate
from tf_console.marketplaces.redact import REDACTOR, Redactor, redacting_logger
from tf_console.models import Platform

log = redacting_logger(__name__)

T = TypeVar("T")

Classifier = Callable[[httpx.Response], MarketplaceError | None]
RateHeaderParser = Callable[[str, httpx.Headers], RateUpdate | None]
Params = Mapping[str, str | int | float] | Sequence[tuple[str, str | int | float]]
_QueryPairs = list[tuple[str, str | int | float | bool | None]]

DEFAULT_REQUEST_ID_HEADERS: tuple[str, ...] = (
    "x-amzn-requestid",
    "x-amz-rid",
    "x-ebay-c-request-id",
    "x-etsy-request-uuid",
    "x-request-id",
)
_RATE_HEADER_PREFIXES = ("x-ratelimit", "x-amzn-ratelimit", "x-limit-", "x-remaining-", "retry-after")
_OK_STATUSES = frozenset(range(200, 300))
MIB = 1024 * 1024


class NotApplied(TransientError):
    """The marketplace said a side-effecting call did not take effect (safe to send again).

    A platform's ``classify`` returns it for answers it knows were refused before
    any processing (a 503 "try later" page, an eBay ``Ack=Failure`` with a
    "system busy" code); the client then retries like a read.
    """


def bearer_headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True, slots=True)
class PlatformHooks:
    classify: Classifier | None = None
    rate_headers: RateHeaderParser | None = None
    auth_headers: Callable[[str], Mapping[str, str]] = bearer_headers
    request_id_headers: tuple[str, ...] = DEFAULT_REQUEST_ID_HEADERS
    # Named in the sentence of a default 401 (`tf-console creds set NAME`).
    credential_variable: str = ""


@dataclass(frozen=True, slots=True)
class ClientSettings:
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    write_timeout: float = 30.0
    pool_timeout: float = 10.0
    max_response_bytes: int = 16 * MIB
    max_attempts: int = 5
    max_retry_seconds: float = 120.0
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    cache_ttl: float = 300.0  # MARKETPLACE_CACHE_TTL
    max_concurrency: int = 4
    # Longest wait for a rate-limit token before the call is postponed (None: wait as long as needed).
    max_rate_wait: float | None = None
    user_agent: str = f"tf-console/{__version__}"
    default_headers: Mapping[str, str] = field(default_factory=dict)

    def timeout(self) -> httpx.Timeout:
        return httpx.Timeout(
            connect=self.connect_timeout,
            read=self.read_timeout,
            write=self.write_timeout,
            pool=self.pool_timeout,
        )


def check_url(url: str, platform: Platform) -> httpx.URL:
    """Refuse anything but HTTPS, except plain HTTP to this machine (the sandbox)."""
    # The sentences name the host at most: a pasted URL may carry a secret in its query.
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise NotConfigured(
            f"A {platform.label} address is not a valid URL; fix the URL setting.", platform=platform
        ) from exc
    if parsed.scheme == "https" and parsed.host:
        return parsed
    if parsed.scheme == "http" and parsed.host and is_loopback_host(parsed.host):
        return parsed
    if parsed.scheme == "http":
        raise NotConfigured(
            f"The {platform.label} address {parsed.host} uses plain http; marketplace calls must use "
            f"https (plain http is allowed only to this machine, for the sandbox). Fix the URL setting.",
            platform=platform,
        )
    raise NotConfigured(
        f"A {platform.label} address is not an https URL; fix the URL setting.", platform=platform
    )


def parse_retry_after(value: str | None, now_epoch: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - now_epoch)
    return max(0.0, seconds) if seconds == seconds else None  # NaN is not a delay


class _BodyTooLarge(Exception):
    pass


@dataclass(slots=True)
class _Attempt:
    """What one attempt produced, for health and the retry decision."""

    status: int | None = None
    error: MarketplaceError | None = None
    request_id: str = ""
    rate_headers: dict[str, str] = field(default_factory=dict)
    sent: bool = True  # False: the request certainly never reached the server


class ApiClient:
    """One per platform; see the module docstring for the rules."""

    def __init__(
        self,
        platform: Platform,
        *,
        clock: Clock,
        rng: random.Random,
        limiter: RateLimiter,
        health: HealthRecorder,
        hooks: PlatformHooks | None = None,
        auth: AuthProvider | None = None,
        base_url: str = "",
        transport: httpx.AsyncBaseTransport | None = None,
        settings: ClientSettings | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self.platform = platform
        self.clock = clock
        self.rng = rng
        self.limiter = limiter
        self.health = health
        self.hooks = hooks or PlatformHooks()
        self.settings = settings or ClientSettings()
        self.redactor = redactor
        self._auth = auth
        self.base_url = str(check_url(base_url, platform)) if base_url else ""
        self.cache = ResponseCache(self.settings.cache_ttl, clock.monotonic)
        self._semaphore = anyio.Semaphore(max(1, self.settings.max_concurrency))
        headers = {"User-Agent": self.settings.user_agent, **self.settings.default_headers}
        self._http = httpx.AsyncClient(
            transport=transport,
            timeout=self.settings.timeout(),
            follow_redirects=False,
            headers=headers,
            trust_env=False,
        )
        health.attach_rate_source(limiter.snapshot)
        self.calls_sent = 0

    @property
    def auth(self) -> AuthProvider | None:
        return self._auth

    def attach_auth(self, auth: AuthProvider | None) -> None:
        """Set the token provider (an OAuth provider needs the client first, hence late)."""
        self._auth = auth
        if auth is not None:
            self.health.set_token_expiry(auth.token_expires_at)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- reporting hooks for platforms -------------------------------------------

    def report_warning(self, operation: str, message: str) -> None:
        """A call succeeded but the marketplace warned (eBay ``Ack=Warning``)."""
        self.health.record_warning(operation, message)

    def report_error(self, operation: str, error: MarketplaceError | str) -> None:
        """A problem the platform found after the call (one unreadable order in a page…)."""
        if isinstance(error, MarketplaceError):
            self.health.record_error(operation, error.sentence, code=error.code)
        else:
            self.health.record_error(operation, error)

    # -- the call ------------------------------------------------------------------

    async def request(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        idempotent: bool,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        auth: bool = True,
        cache: bool = False,
        ok_statuses: frozenset[int] = _OK_STATUSES,
        classify: Classifier | None = None,
    ) -> httpx.Response:
        """Send a call and return the (fully read) response once it counts as a success."""
        return await self.request_parsed(
            operation,
            method,
            url,
            idempotent=idempotent,
            params=params,
            headers=headers,
            content=content,
            data=data,
            json=json,
            auth=auth,
            cache=cache,
            ok_statuses=ok_statuses,
            classify=classify,
            parse=_identity,
        )

    async def request_parsed(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        parse: Callable[[httpx.Response], T],
        idempotent: bool,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | str | None = None,
        data: Mapping[str, str] | None = None,
        json: Any = None,
        auth: bool = True,
        cache: bool = False,
        ok_statuses: frozenset[int] = _OK_STATUSES,
        classify: Classifier | None = None,
    ) -> T:
        """Like :meth:`request`, with ``parse(response)`` as part of the call: a parse
        failure is recorded in health against this call and raised as
        :class:`MalformedResponse` (or :class:`OutcomeUnknown` for a side-effecting
        call, whose answer was unreadable but may have taken effect)."""
        method = method.upper()
        full_url = str(check_url(urljoin(self.base_url, url) if self.base_url else url, self.platform))
        if cache and not idempotent:
            raise ValueError("only idempotent reads may be cached")
        key = None
        if cache:
            body_bytes = content.encode() if isinstance(content, str) else (content or b"")
            if data is not None or json is not None:
                body_bytes += repr((sorted(data.items()) if data else None, json)).encode()
            key = cache_key(operation, method, full_url, _params_for_key(params), body_bytes)
            hit = self.cache.get(key)
            if hit is not None:
                cached = httpx.Response(
                    hit.status,
                    headers=list(hit.headers),
                    content=hit.body,
                    request=httpx.Request(method, full_url),
                )
                return parse(cached)

        started = self.clock.monotonic()
        attempt = 0
        refreshed = False
        while True:
            attempt += 1
            # Token calls skip the concurrency gate: callers holding a slot may be waiting on them.
            gate = self._semaphore if auth else contextlib.nullcontext()
            async with gate:
                # The rate token is taken inside the gate, right before sending, so calls
                # queued at the gate cannot reach the marketplace bunched together.
                await self._acquire(operation)
                token: str | None = None
                request_headers: dict[str, str] = dict(headers or {})
                if auth and self._auth is not None:
                    try:
                        token = await self._auth.get_token()
                    except ReauthNeeded as exc:
                        self.health.mark_reauth(exc.sentence)
                        raise
                    request_headers.update(self.hooks.auth_headers(token))
                request = self._http.build_request(
                    method,
                    full_url,
                    params=_query_pairs(params),
                    headers=request_headers,
                    content=content,
                    data=data,
                    json=json,
                )
                outcome, response, latency_ms = await self._send_once(request, operation)
            result: T | None = None
            error = outcome.error
            if response is not None and error is None:
                error = self._classify(response, ok_statuses, classify, operation)
                if error is None:
                    result, error = self._parse(parse, response, operation)
            error = self._settle(error, outcome, idempotent, operation)
            if error is not None:
                self._scrub(error)
            retry_after = error.retry_after if isinstance(error, RateLimited) else None
            self.health.record_call(
                operation=operation,
                method=method,
                status=outcome.status,
                latency_ms=latency_ms,
                attempt=attempt,
                ok=error is None,
                error_code=error.code if error else "",
                message=error.sentence if error else "",
                request_id=outcome.request_id,
                rate_headers=outcome.rate_headers,
            )
            if error is None:
                if key is not None and response is not None:
                    self.cache.put(
                        key, response.status_code, response.headers.multi_items(), response.content
                    )
                return cast(T, result)

            # --- what now? ---------------------------------------------------------
            if isinstance(error, ReauthNeeded):
                if auth and self._auth is not None and not refreshed:
                    refreshed = True
                    try:
                        await self._auth.refresh(f"{operation} was refused", failed_token=token)
                    except ReauthNeeded as exc:
                        self.health.mark_reauth(exc.sentence)
                        raise
                    attempt -= 1  # the refresh fixed our side; it is not a failed attempt
                    continue
                self.health.mark_reauth(error.sentence)
                raise error
            if isinstance(error, RateLimited):
                self.limiter.throttled(operation, retry_after)
            retryable = (
                not outcome.sent
                or isinstance(error, RateLimited | NotApplied)
                or (
                    idempotent and isinstance(error, TransientError) and not isinstance(error, QuotaExhausted)
                )
            )
            if not retryable:
                raise error
            if attempt >= self.settings.max_attempts:
                raise error
            delay = self._backoff(attempt, retry_after)
            elapsed = self.clock.monotonic() - started
            if elapsed + delay > self.settings.max_retry_seconds:
                if isinstance(error, RateLimited):
                    error.retry_after = max(error.retry_after or 0.0, delay)
                raise error
            await self.clock.sleep(delay)

    def _scrub(self, error: MarketplaceError) -> None:
        """Marketplaces echo inputs (names, tokens) in their error texts; callers log and store
        these sentences, so they leave the client scrubbed."""
        text = str(error)
        cleaned = self.redactor.scrub(text)
        if cleaned != text:
            error.args = (cleaned, *error.args[1:])

    async def _acquire(self, operation: str) -> None:
        try:
            await self.limiter.acquire(operation, max_wait=self.settings.max_rate_wait)
        except (QuotaExhausted, RateLimited) as exc:
            self.health.record_error(operation, exc.sentence, code=exc.code)
            raise

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        ceiling = min(self.settings.backoff_cap, self.settings.backoff_base * (2 ** (attempt - 1)))
        jitter = self.rng.uniform(0.0, ceiling)
        if retry_after is not None:
            return max(retry_after, jitter)
        return jitter

    def _unknown(self, operation: str, status: int | None, why: str) -> OutcomeUnknown:
        return OutcomeUnknown(
            f"{self.platform.label} did not confirm {operation}: {why}, so it may or may not have "
            f"taken effect; it will be checked on {self.platform.label} before anything is sent again.",
            platform=self.platform,
            code="outcome_unknown",
            status=status,
        )

    async def _send_once(
        self, request: httpx.Request, operation: str
    ) -> tuple[_Attempt, httpx.Response | None, float]:
        """Send and read the whole body under the size cap; map transport failures."""
        label = self.platform.label
        outcome = _Attempt()
        t0 = time.perf_counter()
        response: httpx.Response | None = None
        try:
            self.calls_sent += 1
            response = await self._read(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as exc:
            outcome.sent = False
            outcome.error = TransientError(
                f"Could not connect to {label} ({request.url.host}); check the network connection.",
                platform=self.platform,
                code=type(exc).__name__,
            )
        except httpx.TimeoutException as exc:
            outcome.error = TransientError(
                f"{label} did not answer {operation} in time.",
                platform=self.platform,
                code=type(exc).__name__,
            )
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.NetworkError) as exc:
            outcome.error = TransientError(
                f"The connection to {label} broke during {operation} (the answer was cut short).",
                platform=self.platform,
                code=type(exc).__name__,
            )
        except _BodyTooLarge:
            cap = self.settings.max_response_bytes
            outcome.error = MalformedResponse(
                f"{label}'s answer to {operation} was larger than the {cap // MIB or 1} MiB limit "
                "and was not read.",
                platform=self.platform,
                code="too_large",
            )
        except (httpx.UnsupportedProtocol, httpx.LocalProtocolError, httpx.DecodingError) as exc:
            outcome.error = PermanentError(
                f"The {operation} call to {label} could not be made ({type(exc).__name__}).",
                platform=self.platform,
                code=type(exc).__name__,
            )
        latency_ms = (time.perf_counter() - t0) * 1000.0
        if response is not None:
            outcome.status = response.status_code
            outcome.request_id = _first_header(response.headers, self.hooks.request_id_headers)
            outcome.rate_headers = {
                name: value
                for name, value in response.headers.items()
                if name.lower().startswith(_RATE_HEADER_PREFIXES)
            }
            if self.hooks.rate_headers is not None:
                try:
                    self.limiter.apply(operation, self.hooks.rate_headers(operation, response.headers))
                except (ValueError, TypeError) as exc:
                    log.warning(
                        "%s: unreadable rate-limit headers (%s)", self.platform.value, type(exc).__name__
                    )
        return outcome, response, latency_ms

    def _parse(
        self, parse: Callable[[httpx.Response], T], response: httpx.Response, operation: str
    ) -> tuple[T | None, MarketplaceError | None]:
        try:
            return parse(response), None
        except MarketplaceError as exc:
            return None, exc
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            # A parser tripping over an unexpected shape means the answer was malformed, not a crash.
            log.warning("%s %s: unreadable answer (%s)", self.platform.value, operation, type(exc).__name__)
            return None, MalformedResponse(
                f"{self.platform.label}'s answer to {operation} could not be read.",
                platform=self.platform,
                code="malformed",
                status=response.status_code,
            )

    def _settle(
        self, error: MarketplaceError | None, outcome: _Attempt, idempotent: bool, operation: str
    ) -> MarketplaceError | None:
        """For a side-effecting call that reached the server, turn every answer that does
        not prove the call failed into :class:`OutcomeUnknown`."""
        if error is None or idempotent or not outcome.sent:
            return error
        if isinstance(error, RateLimited | NotApplied | ReauthNeeded | OutcomeUnknown):
            return error
        if outcome.status is None:
            return self._unknown(operation, None, "the answer was lost")
        if isinstance(error, MalformedResponse):
            return self._unknown(operation, outcome.status, "its answer could not be read")
        if outcome.status >= 500 and isinstance(error, TransientError):
            return self._unknown(operation, outcome.status, f"it answered HTTP {outcome.status}")
        return error

    async def _read(self, request: httpx.Request) -> httpx.Response:
        cap = self.settings.max_response_bytes
        response = await self._http.send(request, stream=True)
        try:
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > cap:
                raise _BodyTooLarge
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > cap:
                    raise _BodyTooLarge
                chunks.append(chunk)
        finally:
            await response.aclose()
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        body = b"".join(chunks)
        headers.append(("content-length", str(len(body))))
        return httpx.Response(response.status_code, headers=headers, content=body, request=request)

    def _classify(
        self,
        response: httpx.Response,
        ok_statuses: frozenset[int],
        override: Classifier | None,
        operation: str,
    ) -> MarketplaceError | None:
        classifier = override or self.hooks.classify
        error: MarketplaceError | None = None
        if classifier is not None:
            try:
                error = classifier(response)
            except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
                log.warning("%s: error classification failed (%s)", self.platform.value, type(exc).__name__)
                error = None
        status = response.status_code
        if error is None and status not in ok_statuses:
            error = self._default_error(response, operation)
        if error is not None:
            if error.platform is None:
                error.platform = self.platform
            if error.status is None:
                error.status = status
            if not error.request_id:
                error.request_id = _first_header(response.headers, self.hooks.request_id_headers)
            if isinstance(error, RateLimited) and error.retry_after is None:
                error.retry_after = parse_retry_after(
                    response.headers.get("retry-after"), self.clock.now().timestamp()
                )
        return error

    def _default_error(self, response: httpx.Response, operation: str) -> MarketplaceError:
        label = self.platform.label
        status = response.status_code
        if status == 429:
            retry_after = parse_retry_after(response.headers.get("retry-after"), self.clock.now().timestamp())
            return RateLimited(
                f"{label} is throttling {operation} calls (HTTP 429); they will be retried later.",
                retry_after=retry_after,
                platform=self.platform,
                code="429",
                status=status,
            )
        if status == 401:
            variable = self.hooks.credential_variable
            hint = (
                f"set new credentials with `tf-console creds set {variable}`"
                if variable
                else "check the credentials"
            )
            return ReauthNeeded(
                f"{label} refused the credentials (HTTP 401); {hint}.",
                variable=variable,
                platform=self.platform,
                code="401",
                status=status,
            )
        if status >= 500:
            return TransientError(
                f"{label} had a server problem answering {operation} (HTTP {status}); "
                "it will be retried later.",
                platform=self.platform,
                code=str(status),
                status=status,
            )
        if 300 <= status < 400:
            return PermanentError(
                f"{label} answered {operation} with a redirect (HTTP {status}); "
                "check the platform's URL setting.",
                platform=self.platform,
                code=str(status),
                status=status,
            )
        return PermanentError(
            f"{label} refused the {operation} call (HTTP {status}).",
            platform=self.platform,
            code=str(status),
            status=status,
        )


def _identity(response: httpx.Response) -> httpx.Response:
    return response


def _first_header(headers: httpx.Headers, names: Sequence[str]) -> str:
    for name in names:
        value = headers.get(name)
        if value:
            return str(value)
    return ""


def _query_pairs(params: Params | None) -> _QueryPairs | None:
    if params is None:
        return None
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), v) for k, v in items]


def _params_for_key(params: Params | None) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in _query_pairs(params) or []]
