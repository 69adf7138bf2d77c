"""The simulated-marketplace core: routes, server-side rate limits, faults, tokens, a request log.

A platform simulator (see ``docs/sandbox.md``) registers routes on a
:class:`Sandbox`; :meth:`Sandbox.handle` turns a :class:`SandboxRequest` into a
:class:`SandboxResponse` synchronously and thread-safely.  The same sandbox is
reachable in-process (:class:`tf_console.sandbox.transport.SandboxTransport`) and
over loopback HTTP (:class:`tf_console.sandbox.transport.LoopbackServer`); a
response's :class:`Delivery` tells either of them how to (mis)deliver it.
"""

from __future__ import annotations

import enum
import json
import logging
import random
import re
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.sandbox.faults import Fault, FaultController, FaultKind

log = logging.getLogger(__name__)

ADMIN_PREFIX = "/_sandbox/"


# ---------------------------------------------------------------------------
# Requests and responses


@dataclass(frozen=True, slots=True)
class SandboxRequest:
    method: str
    path: str  # as sent, still percent-encoded; route parameters are decoded
    query: tuple[tuple[str, str], ...] = ()
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""

    @classmethod
    def build(
        cls, method: str, target: str, headers: Iterable[tuple[str, str]] = (), body: bytes = b""
    ) -> SandboxRequest:
        """From a request target (``/path?query``) as it arrives on the wire."""
        path, _, query = target.partition("?")
        return cls(
            method=method.upper(),
            path=path or "/",
            query=tuple(parse_qsl(query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in headers},
            body=body,
        )

    def param(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.query:
            if key == name:
                return value
        return default

    def params(self, name: str) -> list[str]:
        return [value for key, value in self.query if key == name]

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """The JSON body; raises ValueError when it is not JSON."""
        return json.loads(self.body.decode("utf-8"))

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode("utf-8"), keep_blank_values=True))

    def bearer_token(self) -> str | None:
        value = self.header("authorization") or ""
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


class Delivery(enum.StrEnum):
    NORMAL = "normal"
    DELAY = "delay"  # answer after ``delay`` seconds
    TIMEOUT = "timeout"  # never answer (in-process: ReadTimeout; loopback: hold, then close)
    TRUNCATE = "truncate"  # full Content-Length, half the body, then close
    DROP = "drop"  # close without any answer
    REFUSE = "refuse"  # connection refused (in-process: ConnectError; loopback: close unanswered)


@dataclass(slots=True)
class SandboxResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    delivery: Delivery = Delivery.NORMAL
    delay: float = 0.0

    @classmethod
    def json(
        cls, payload: Any, status: int = 200, headers: Iterable[tuple[str, str]] = ()
    ) -> SandboxResponse:
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return cls(status, body, [("Content-Type", "application/json"), *headers])

    @classmethod
    def text(
        cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
    ) -> SandboxResponse:
        return cls(status, text.encode("utf-8"), [("Content-Type", content_type)])

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def set_header(self, name: str, value: str) -> None:
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        self.headers.append((name, value))


# ---------------------------------------------------------------------------
# Routes


@dataclass(frozen=True, slots=True)
class ServerRate:
    """The marketplace's own limit for a route (before the sandbox's ``rate_scale``)."""

    rate: float  # tokens per second
    burst: float


@dataclass(frozen=True, slots=True)
class RouteMatch:
    route: Route
    params: dict[str, str]
    rate_limit: float | None = None  # the scaled rate of the route's bucket, per second
    rate_remaining: float | None = None  # whole tokens left after this request


Handler = Callable[[SandboxRequest, RouteMatch], SandboxResponse]

_PARAM = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, slots=True)
class Route:
    simulator: str
    method: str
    pattern: str
    name: str
    handler: Handler
    regex: re.Pattern[str]
    rate: ServerRate | None = None
    rate_bucket: str = ""  # routes sharing a bucket name share one server-side bucket
    authenticated: bool = False
    when: Callable[[SandboxRequest], bool] | None = None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """``/orders/{id}/shipments`` → a regex with named groups matching one path segment each."""
    parts: list[str] = []
    last = 0
    for match in _PARAM.finditer(pattern):
        parts.append(re.escape(pattern[last : match.start()]))
        parts.append(f"(?P<{match.group(1)}>[^/]+)")
        last = match.end()
    parts.append(re.escape(pattern[last:]))
    return re.compile("".join(parts))


class _ServerBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.level = burst
        self.stamp = now

    def take(self, now: float) -> float | None:
        """Take a token; None when granted, else the seconds until one is available."""
        if now > self.stamp:
            self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        # Lenient by a thousandth of a token, so float rounding never turns a client's
        # exactly-timed call into a 429.
        if self.level >= 1.0 - 1e-3:
            self.level -= 1.0
            return None
        return (1.0 - self.level) / self.rate


# ---------------------------------------------------------------------------
# Tokens


class TokenStatus(enum.StrEnum):
    VALID = "valid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    refresh_token: str | None  # a new refresh token when they rotate


class TokenAuthority:
    """Issues and checks a simulator's OAuth tokens on the sandbox clock."""

    def __init__(
        self,
        clock: Clock,
        rng: random.Random,
        *,
        prefix: str,
        refresh_tokens: Iterable[str],
        access_ttl: float = 3600.0,
        rotate_refresh: bool = False,
        client_id: str | None = None,
    ) -> None:
        self._clock = clock
        self._rng = rng
        self._prefix = prefix
        self._access_ttl = access_ttl
        self._rotate = rotate_refresh
        self._client_id = client_id
        self._lock = threading.Lock()
        self._refresh: set[str] = set(refresh_tokens)
        self._access: dict[str, float] = {}  # token -> expiry (epoch seconds)
        self.refreshes = 0

    def _mint(self, kind: str) -> str:
        return f"{self._prefix}-{kind}-{self._rng.getrandbits(160):040x}"

    def exchange(self, refresh_token: str, client_id: str | None = None) -> IssuedToken | None:
        """A refresh_token grant; None when the refresh token (or client id) is refused."""
        with self._lock:
            if refresh_token not in self._refresh:
                return None
            if self._client_id is not None and client_id != self._client_id:
                return None
            access = self._mint("at")
            self._access[access] = self._clock.now().timestamp() + self._access_ttl
            new_refresh: str | None = None
            if self._rotate:
                self._refresh.discard(refresh_token)
                new_refresh = self._mint("rt")
                self._refresh.add(new_refresh)
            self.refreshes += 1
            return IssuedToken(access, int(self._access_ttl), new_refresh)

    def check(self, access_token: str | None) -> TokenStatus:
        with self._lock:
            if not access_token or access_token not in self._access:
                return TokenStatus.UNKNOWN
            if self._clock.now().timestamp() >= self._access[access_token]:
                return TokenStatus.EXPIRED
            return TokenStatus.VALID

    def expire_all(self) -> None:
        now = self._clock.now().timestamp()
        with self._lock:
            for token in self._access:
                self._access[token] = min(self._access[token], now)

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            self._refresh.clear()

    @property
    def current_refresh_tokens(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._refresh)


# ---------------------------------------------------------------------------
# Simulators


class Simulator(Protocol):
    """What a platform simulator provides (see ``docs/sandbox.md``)."""

    name: str

    def install(self, sandbox: Sandbox) -> None:
        """Register the simulator's routes (``sandbox.route(...)``)."""
        ...

    def advance(self, now: datetime) -> None:
        """Bring the simulated shop up to ``now`` (new orders, payments…); called before each request."""
        ...

    def throttled_response(self, request: SandboxRequest, retry_after: float) -> SandboxResponse: ...

    def server_error_response(self, request: SandboxRequest, status: int) -> SandboxResponse: ...

    def expire_tokens(self) -> None:
        """Make every access token issued so far expired (the expired-token fault)."""
        ...

    def describe(self) -> dict[str, str]:
        """Non-secret facts for ``tf-console sandbox serve`` to print (paths, demo credentials)."""
        ...


class BaseSimulator:
    """Generic JSON answers; a platform simulator overrides what its marketplace does differently."""

    name = "base"
    authority: TokenAuthority | None = None

    def install(self, sandbox: Sandbox) -> None:
        raise NotImplementedError

    def advance(self, now: datetime) -> None:
        return None

    def throttled_response(self, request: SandboxRequest, retry_after: float) -> SandboxResponse:
        return SandboxResponse.json(
            {"error": "rate_limited", "message": "Too many requests."},
            status=429,
            headers=[("Retry-After", _retry_after_value(retry_after))],
        )

    def server_error_response(self, request: SandboxRequest, status: int) -> SandboxResponse:
        return SandboxResponse.json({"error": "server_error", "message": "Internal failure."}, status=status)

    def expire_tokens(self) -> None:
        if self.authority is not None:
            self.authority.expire_all()

    def describe(self) -> dict[str, str]:
        return {}


def _retry_after_value(seconds: float) -> str:
    # Retry-After is whole seconds on the wire; never advertise 0 for a real wait.
    whole = int(seconds) + (1 if seconds > int(seconds) else 0)
    return str(max(1, whole))


# ---------------------------------------------------------------------------
# Request log


@dataclass(frozen=True, slots=True)
class LoggedRequest:
    seq: int
    at: datetime
    method: str
    path: str
    route: str | None
    status: int
    fault: str | None
    applied: bool  # the route's handler ran (its side effect, if any, happened)
    delivery: Delivery


class RequestLog:
    """What the sandbox was asked, for tests and benchmarks (bounded; counts are exact)."""

    def __init__(self, capacity: int) -> None:
        self._entries: deque[LoggedRequest] = deque(maxlen=capacity)
        self._counts: Counter[tuple[str | None, str, bool]] = Counter()
        self._throttled = 0
        self._lock = threading.Lock()
        self._seq = 0

    def append(self, **fields: Any) -> LoggedRequest:
        with self._lock:
            self._seq += 1
            entry = LoggedRequest(seq=self._seq, **fields)
            self._entries.append(entry)
            self._counts[(entry.route, entry.method, entry.applied)] += 1
            if entry.status == 429:
                self._throttled += 1
            return entry

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def count(
        self,
        route: str | None = None,
        *,
        method: str | None = None,
        applied_only: bool = False,
        status: int | None = None,
        path_prefix: str | None = None,
    ) -> int:
        """How many requests matched (``applied_only``: the handler ran)."""
        if status is not None or path_prefix is not None:
            return sum(
                1
                for e in self.entries()
                if (route is None or e.route == route)
                and (method is None or e.method == method.upper())
                and (not applied_only or e.applied)
                and (status is None or e.status == status)
                and (path_prefix is None or e.path.startswith(path_prefix))
            )
        with self._lock:
            return sum(
                n
                for (r, m, applied), n in self._counts.items()
                if (route is None or r == route)
                and (method is None or m == method.upper())
                and (not applied_only or applied)
            )

    @property
    def total(self) -> int:
        with self._lock:
            return self._seq

    @property
    def throttled(self) -> int:
        """How many 429s the sandbox answered (server-side limit or fault)."""
        with self._lock:
            return self._throttled

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()
            self._throttled = 0


# ---------------------------------------------------------------------------
# The sandbox


class Sandbox:
    """Routes of every installed simulator, driven by one clock, one RNG and one lock."""

    def __init__(
        self,
        *,
        clock: Clock = SYSTEM_CLOCK,
        seed: int = 0,
        rate_scale: float = 1.0,
        short_page_probability: float = 0.25,
        admin: bool = True,
        log_capacity: int = 100_000,
    ) -> None:
        if rate_scale <= 0:
            raise ValueError("rate_scale must be positive")
        self.clock = clock
        self.seed = seed
        self.rng = random.Random(seed)
        self.rate_scale = rate_scale
        self.short_page_probability = short_page_probability
        self.admin = admin
        self.faults = FaultController(random.Random(seed ^ 0x5EED))
        self.log = RequestLog(log_capacity)
        self._lock = threading.RLock()
        self._routes: list[Route] = []
        self._simulators: dict[str, Simulator] = {}
        self._buckets: dict[str, _ServerBucket] = {}
        self.rate_limits_enabled = True

    # -- set-up ---------------------------------------------------------------

    def add(self, simulator: Simulator) -> Simulator:
        with self._lock:
            if simulator.name in self._simulators:
                raise ValueError(f"a simulator named {simulator.name!r} is already installed")
            self._simulators[simulator.name] = simulator
            simulator.install(self)
        return simulator

    def simulator(self, name: str) -> Simulator:
        return self._simulators[name]

    @property
    def simulators(self) -> list[Simulator]:
        return list(self._simulators.values())

    def route(
        self,
        simulator: Simulator,
        method: str,
        pattern: str,
        handler: Handler,
        *,
        name: str,
        rate: ServerRate | None = None,
        rate_bucket: str | None = None,
        authenticated: bool = False,
        when: Callable[[SandboxRequest], bool] | None = None,
    ) -> Route:
        """Register ``handler`` for ``method pattern`` (``{param}`` matches one path segment)."""
        route = Route(
            simulator=simulator.name,
            method=method.upper(),
            pattern=pattern,
            name=name,
            handler=handler,
            regex=compile_pattern(pattern),
            rate=rate,
            rate_bucket=rate_bucket or name,
            authenticated=authenticated,
            when=when,
        )
        with self._lock:
            self._routes.append(route)
        return route

    def add_replay(
        self,
        simulator: Simulator,
        method: str,
        pattern: str,
        file: Path,
        *,
        name: str,
        status: int = 200,
        content_type: str = "application/json",
        headers: Iterable[tuple[str, str]] = (),
        when: Callable[[SandboxRequest], bool] | None = None,
    ) -> Route:
        """Serve ``file`` byte for byte (conformance payloads); ``when`` picks among replays."""
        body = file.read_bytes()
        extra = list(headers)

        def replay(_request: SandboxRequest, _match: RouteMatch) -> SandboxResponse:
            return SandboxResponse(status, body, [("Content-Type", content_type), *extra])

        return self.route(simulator, method, pattern, replay, name=name, when=when)

    # -- helpers for simulators ----------------------------------------------------

    def page_size(self, requested: int) -> int:
        """``requested``, or now and then fewer, as real marketplaces do."""
        with self._lock:
            if requested > 1 and self.rng.random() < self.short_page_probability:
                return self.rng.randint(1, requested - 1)
            return requested

    def now(self) -> datetime:
        return self.clock.now()

    def expire_tokens(self) -> None:
        """Expire every access token every simulator has issued."""
        with self._lock:
            for simulator in self._simulators.values():
                simulator.expire_tokens()

    # -- the request path ------------------------------------------------------------

    def handle(self, request: SandboxRequest) -> SandboxResponse:
        with self._lock:
            now = self.clock.now()
            for simulator in self._simulators.values():
                simulator.advance(now)
            if self.admin and request.path.startswith(ADMIN_PREFIX):
                return self._admin(request)
            found = self._match(request)
            if isinstance(found, SandboxResponse):
                self._log(request, None, found, None, applied=False, now=now)
                return found
            route, params = found
            simulator = self._simulators[route.simulator]
            fault = self.faults.pick(request.method, request.path, route.name)
            response, applied = self._respond(request, route, params, simulator, fault, now)
            self._log(request, route, response, fault, applied=applied, now=now)
            return response

    def _respond(
        self,
        request: SandboxRequest,
        route: Route,
        params: dict[str, str],
        simulator: Simulator,
        fault: Fault | None,
        now: datetime,
    ) -> tuple[SandboxResponse, bool]:
        kind = fault.kind if fault else None
        if fault is not None and kind is FaultKind.CONNECT_ERROR:
            return SandboxResponse(0, delivery=Delivery.REFUSE), False
        if fault is not None and kind is FaultKind.RATE_LIMIT:
            return simulator.throttled_response(request, fault.retry_after), False
        if fault is not None and kind is FaultKind.SERVER_ERROR:
            return simulator.server_error_response(request, fault.status), False
        if fault is not None and kind is FaultKind.EXPIRED_TOKEN and route.authenticated:
            simulator.expire_tokens()
        rate_limit: float | None = None
        remaining: float | None = None
        if route.rate is not None and self.rate_limits_enabled:
            bucket = self._bucket(route, now.timestamp())
            wait = bucket.take(now.timestamp())
            if wait is not None:
                return simulator.throttled_response(request, wait), False
            rate_limit, remaining = bucket.rate, float(int(bucket.level))
        if fault is not None and kind is FaultKind.TIMEOUT and not fault.apply_first:
            return SandboxResponse(0, delivery=Delivery.TIMEOUT, delay=fault.hold), False
        match = RouteMatch(route, params, rate_limit, remaining)
        try:
            response = route.handler(request, match)
        except Exception:
            log.exception("sandbox route %s failed", route.name)
            response = SandboxResponse.json({"error": "sandbox_bug", "message": "The simulator failed."}, 500)
        if fault is None:
            return response, True
        if kind is FaultKind.MALFORMED:
            response.body = corrupt(response.body)
        elif kind is FaultKind.TRUNCATED:
            response.delivery = Delivery.TRUNCATE
        elif kind is FaultKind.DROP_AFTER_APPLY:
            response.delivery = Delivery.DROP
        elif kind is FaultKind.TIMEOUT:
            response.delivery, response.delay = Delivery.TIMEOUT, fault.hold
        elif kind is FaultKind.SLOW:
            response.delivery, response.delay = Delivery.DELAY, fault.delay
        return response, True

    def _bucket(self, route: Route, now: float) -> _ServerBucket:
        key = f"{route.simulator}:{route.rate_bucket}"
        bucket = self._buckets.get(key)
        if bucket is None:
            assert route.rate is not None
            bucket = self._buckets[key] = _ServerBucket(
                route.rate.rate * self.rate_scale, route.rate.burst, now
            )
        return bucket

    def _match(self, request: SandboxRequest) -> tuple[Route, dict[str, str]] | SandboxResponse:
        path_matched = False
        for route in self._routes:
            m = route.regex.fullmatch(request.path)
            if m is None:
                continue
            path_matched = True
            if route.method != request.method:
                continue
            if route.when is not None and not route.when(request):
                continue
            return route, {k: unquote(v) for k, v in m.groupdict().items()}
        if path_matched:
            return SandboxResponse.json(
                {"error": "method_not_allowed", "message": f"{request.method} is not allowed here."}, 405
            )
        return SandboxResponse.json(
            {"error": "not_found", "message": f"No sandbox route for {request.method} {request.path}."}, 404
        )

    def _log(
        self,
        request: SandboxRequest,
        route: Route | None,
        response: SandboxResponse,
        fault: Fault | None,
        *,
        applied: bool,
        now: datetime,
    ) -> None:
        self.log.append(
            at=now,
            method=request.method,
            path=request.path,
            route=route.name if route else None,
            status=response.status,
            fault=fault.kind.value if fault else None,
            applied=applied,
            delivery=response.delivery,
        )

    # -- run-time control over HTTP ------------------------------------------------------

    def _admin(self, request: SandboxRequest) -> SandboxResponse:
        action = request.path[len(ADMIN_PREFIX) :].strip("/")
        if action == "status" and request.method == "GET":
            return SandboxResponse.json(
                {
                    "now": self.clock.now().isoformat(),
                    "simulators": sorted(self._simulators),
                    "faults": [f.to_json() for f in self.faults.active()],
                    "requests": self.log.total,
                    "throttled": self.log.throttled,
                }
            )
        if action == "faults" and request.method == "POST":
            try:
                fault = self.faults.add(Fault.from_json(dict(request.json())))
            except (ValueError, KeyError, TypeError) as exc:
                return SandboxResponse.json({"error": "bad_fault", "message": str(exc)}, 400)
            return SandboxResponse.json({"id": fault.fault_id}, 201)
        if action == "faults" and request.method == "DELETE":
            self.faults.clear()
            return SandboxResponse(204)
        if action == "requests" and request.method == "GET":
            method = request.param("method")
            applied = request.param("applied") in ("1", "true")
            count = self.log.count(request.param("route"), method=method, applied_only=applied)
            return SandboxResponse.json({"count": count})
        if action == "expire-tokens" and request.method == "POST":
            self.expire_tokens()
            return SandboxResponse(204)
        return SandboxResponse.json({"error": "not_found", "message": "Unknown sandbox control."}, 404)


def corrupt(body: bytes) -> bytes:
    """A complete body (Content-Length matches) that no JSON or XML parser accepts."""
    return body[: len(body) // 2] + b"\x00<<garbled>>"
