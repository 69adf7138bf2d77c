"""Access tokens: single-flight refresh, proactive before expiry, once on an auth error.

:class:`AuthProvider` is what :class:`tf_console.marketplaces.http.ApiClient`
asks for a token.  :class:`RefreshingTokenProvider` implements the bookkeeping
(lock, generation counter, expiry margin); :class:`OAuthRefreshProvider` is the
common OAuth ``refresh_token`` grant (Amazon LWA, eBay, Etsy, the test
platform), made through the same client so the token call is rate limited and
shows in health as operation ``"token"``.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import httpx

from tf_console.clock import Clock
from tf_console.marketplaces.base import (
    MalformedResponse,
    MarketplaceError,
    PermanentError,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.redact import REDACTOR, Redactor, redacting_logger
from tf_console.models import Platform

if TYPE_CHECKING:
    from tf_console.marketplaces.http import ApiClient

log = redacting_logger(__name__)

DEFAULT_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True, slots=True)
class TokenGrant:
    access_token: str
    expires_at: datetime | None
    refresh_token: str | None = None  # set when the grant rotated the refresh token

    def __repr__(self) -> str:
        return f"TokenGrant(<redacted>, expires_at={self.expires_at!r})"


@runtime_checkable
class AuthProvider(Protocol):
    @property
    def token_expires_at(self) -> datetime | None: ...

    async def get_token(self) -> str:
        """A token valid for a while yet (refreshed first when close to expiry)."""
        ...

    async def refresh(self, reason: str, *, failed_token: str | None = None) -> str:
        """A new token.  Concurrent callers that saw the same ``failed_token`` share one refresh."""
        ...


class RefreshingTokenProvider:
    """Bookkeeping shared by every refreshing provider; subclasses implement :meth:`fetch`."""

    def __init__(
        self,
        clock: Clock,
        *,
        margin: timedelta = DEFAULT_MARGIN,
        initial: TokenGrant | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        self._clock = clock
        self._margin = margin
        self._redactor = redactor
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at: datetime | None = None
        self.generation = 0
        self.refresh_count = 0
        if initial is not None and initial.access_token:
            self._install(initial)

    @property
    def token_expires_at(self) -> datetime | None:
        return self._expires_at

    def _fresh(self) -> bool:
        if self._token is None:
            return False
        return self._expires_at is None or self._clock.now() < self._expires_at - self._margin

    def _install(self, grant: TokenGrant) -> None:
        self._redactor.register_secret(grant.access_token)
        self._redactor.register_secret(grant.refresh_token)
        self._token = grant.access_token
        self._expires_at = grant.expires_at
        self.generation += 1

    async def get_token(self) -> str:
        if self._fresh():
            assert self._token is not None
            return self._token
        return await self.refresh("the token expires soon", stale_generation=self.generation)

    async def refresh(
        self, reason: str, *, failed_token: str | None = None, stale_generation: int | None = None
    ) -> str:
        async with self._lock:
            if failed_token is not None and self._token is not None and self._token != failed_token:
                return self._token  # another caller already replaced the token that failed
            if stale_generation is not None and stale_generation != self.generation and self._fresh():
                assert self._token is not None
                return self._token
            log.debug("refreshing an access token: %s", reason)
            grant = await self.fetch()
            self._install(grant)
            self.refresh_count += 1
            await self.on_grant(grant)
            return grant.access_token

    async def fetch(self) -> TokenGrant:
        raise NotImplementedError

    async def on_grant(self, grant: TokenGrant) -> None:
        """Called after every successful refresh (inside the single-flight lock)."""


RotateCallback = Callable[[TokenGrant], Awaitable[None] | None]


class OAuthRefreshProvider(RefreshingTokenProvider):
    """The OAuth 2 ``refresh_token`` grant: a form POST to ``token_url``.

    ``client_auth``: ``"body"`` sends client_id/client_secret as form fields (Amazon
    LWA), ``"basic"`` as HTTP Basic (eBay), ``"client_id"`` only the id (Etsy, the
    test platform).  A refused refresh token raises :class:`ReauthNeeded` naming
    ``refresh_variable``; ``on_rotate`` receives every new grant so a platform
    whose refresh tokens rotate (Etsy) can persist the newest one.
    """

    def __init__(
        self,
        client: ApiClient,
        *,
        token_url: str,
        refresh_token: str,
        client_id: str,
        client_secret: str | None = None,
        client_auth: str = "body",
        scope: str | None = None,
        extra_form: Mapping[str, str] | None = None,
        refresh_variable: str,
        client_variable: str = "",
        on_rotate: RotateCallback | None = None,
        margin: timedelta = DEFAULT_MARGIN,
        initial: TokenGrant | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        if client_auth not in ("body", "basic", "client_id"):
            raise ValueError("client_auth must be body, basic or client_id")
        super().__init__(client.clock, margin=margin, initial=initial, redactor=redactor)
        self._client = client
        self._token_url = token_url
        self._refresh_token = refresh_token
        self._client_id = client_id
        self._client_secret = client_secret
        self._client_auth = client_auth
        self._scope = scope
        self._extra_form = dict(extra_form or {})
        self._refresh_variable = refresh_variable
        self._client_variable = client_variable or refresh_variable
        self._on_rotate = on_rotate
        redactor.register_secret(refresh_token)
        redactor.register_secret(client_secret)
        if initial is not None:
            client.health.set_token_expiry(initial.expires_at)

    @property
    def platform(self) -> Platform:
        return self._client.platform

    def _form(self) -> dict[str, str]:
        form = {"grant_type": "refresh_token", "refresh_token": self._refresh_token}
        if self._client_auth in ("body", "client_id"):
            form["client_id"] = self._client_id
        if self._client_auth == "body" and self._client_secret is not None:
            form["client_secret"] = self._client_secret
        if self._scope:
            form["scope"] = self._scope
        form.update(self._extra_form)
        return form

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._client_auth == "basic":
            pair = f"{self._client_id}:{self._client_secret or ''}".encode()
            basic = base64.b64encode(pair).decode()
            self._redactor.register_secret(basic)
            headers["Authorization"] = f"Basic {basic}"
        return headers

    def classify_token_answer(self, response: httpx.Response) -> MarketplaceError | None:
        """OAuth errors are ``{"error": "...", "error_description": "..."}`` whatever the platform."""
        if 200 <= response.status_code < 300:
            return None
        label = self.platform.label
        code = ""
        try:
            body = json.loads(response.content)
            if isinstance(body, dict):
                code = str(body.get("error") or "")
        except ValueError:
            pass
        status = response.status_code
        if code in ("invalid_grant", "unauthorized_client") or (status in (400, 401) and not code):
            return ReauthNeeded(
                f"{label} refused the saved refresh token (it was revoked, expired or replaced); "
                f"authorise again and set it with `tf-console creds set {self._refresh_variable}`.",
                variable=self._refresh_variable,
                platform=self.platform,
                code=code or str(status),
                status=status,
            )
        if code in ("invalid_client", "invalid_request") and status in (400, 401, 403):
            return ReauthNeeded(
                f"{label} refused the app's client credentials; check them with "
                f"`tf-console creds set {self._client_variable}`.",
                variable=self._client_variable,
                platform=self.platform,
                code=code,
                status=status,
            )
        if status == 429 or status >= 500:
            return None  # the client's own rules retry these
        return PermanentError(
            f"{label} refused the token refresh (HTTP {status}{', ' + code if code else ''}).",
            platform=self.platform,
            code=code or str(status),
            status=status,
        )

    def _parse_grant(self, response: httpx.Response) -> TokenGrant:
        label = self.platform.label
        try:
            body = json.loads(response.content)
        except ValueError as exc:
            raise MalformedResponse(
                f"{label}'s token endpoint answered something that is not JSON.", platform=self.platform
            ) from exc
        if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
            raise MalformedResponse(
                f"{label}'s token endpoint answered without an access token.", platform=self.platform
            )
        expires_in = body.get("expires_in")
        expires_at: datetime | None = None
        if isinstance(expires_in, int | float | str) and str(expires_in).strip():
            try:
                expires_at = self._clock.now() + timedelta(seconds=float(expires_in))
            except ValueError as exc:
                raise MalformedResponse(
                    f"{label}'s token endpoint gave an unreadable expiry.", platform=self.platform
                ) from exc
        new_refresh = body.get("refresh_token")
        return TokenGrant(
            access_token=body["access_token"],
            expires_at=expires_at,
            refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh else None,
        )

    async def fetch(self) -> TokenGrant:
        try:
            grant = await self._client.request_parsed(
                "token",
                "POST",
                self._token_url,
                data=self._form(),
                headers=self._headers(),
                idempotent=True,
                auth=False,
                classify=self.classify_token_answer,
                parse=self._parse_grant,
            )
        except ReauthNeeded as exc:
            self._client.health.mark_reauth(exc.sentence)
            raise
        except TransientError:
            raise
        return grant

    async def on_grant(self, grant: TokenGrant) -> None:
        if grant.refresh_token and grant.refresh_token != self._refresh_token:
            self._refresh_token = grant.refresh_token
        self._client.health.set_token_expiry(grant.expires_at)
        if self._on_rotate is None:
            return
        try:
            result = self._on_rotate(grant)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:  # the new token is valid in memory; say loudly that saving it failed
            sentence = (
                f"The new {self.platform.label} token could not be saved ({type(exc).__name__}); "
                f"it works until this program stops."
            )
            log.error(sentence)
            self._client.health.record_error("token", sentence, code="token_not_saved")


class StaticTokenProvider:
    """A token that cannot be refreshed (eBay Auth'n'Auth): an auth error means re-auth."""

    def __init__(
        self,
        token: str,
        *,
        platform: Platform,
        variable: str,
        expires_at: datetime | None = None,
        redactor: Redactor = REDACTOR,
    ) -> None:
        redactor.register_secret(token)
        self._token = token
        self._platform = platform
        self._variable = variable
        self._expires_at = expires_at

    @property
    def token_expires_at(self) -> datetime | None:
        return self._expires_at

    async def get_token(self) -> str:
        return self._token

    async def refresh(self, reason: str, *, failed_token: str | None = None) -> str:
        raise ReauthNeeded(
            f"The {self._platform.label} token was refused and cannot be renewed automatically; "
            f"set a new one with `tf-console creds set {self._variable}`.",
            variable=self._variable,
            platform=self._platform,
            code="token_refused",
        )
