"""The sandbox's own small "test" marketplace: a plain JSON API that proves the framework.

Its wire format is deliberately simple and its client is
:mod:`tf_console.marketplaces.testplatform`.  It has what the real simulators
need too: OAuth-like tokens that expire (and rotating refresh tokens),
key-set paging with opaque ``+/=`` page tokens and short pages, per-route
server-side rate limits with headers, stateful shipments that bump an order's
modified time, and inventory.

=========================================  ==========================================
``POST /test/oauth/token``                 form ``grant_type=refresh_token``,
                                           ``refresh_token``, ``client_id``
``GET  /test/me``                          ``{"shop_id", "shop_name"}``
``GET  /test/orders``                      ``modified_since`` (ISO), ``page_token``,
                                           ``limit`` (≤ 100) → ``{"orders", "next_page_token"}``
``GET  /test/orders/{id}``                 one order
``POST /test/orders/{id}/shipments``       ``{"tracking", "carrier", "lines": [{"line_id",
                                           "quantity"}]}`` → 201 ``{"shipment", "order"}``
``PUT  /test/inventory/{sku}``             ``{"quantity"}`` → ``{"sku", "quantity"}``
=========================================  ==========================================

Errors are ``{"error": code, "message": sentence}``; an invalid or expired token is
401 ``invalid_token``; throttling is 429 with ``Retry-After``; every answer of a
rate-limited route carries ``X-RateLimit-Limit`` (per second) and ``X-RateLimit-Remaining``.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from tf_console.sandbox.core import (
    BaseSimulator,
    RouteMatch,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    ServerRate,
    TokenAuthority,
    TokenStatus,
)
from tf_console.sandbox.shopgen import GenOrder, GenStatus, OrderBook, ShipError, ShopGenerator

NAME = "test"
PREFIX = "/test"
DEMO_CLIENT_ID = "tf-test-client"
DEMO_REFRESH_TOKEN = "tf-test-refresh-0000"
MAX_PAGE = 100

# The test marketplace's published limits (per second, burst), before the sandbox's rate_scale.
RATES: dict[str, ServerRate] = {
    "test.token": ServerRate(1.0, 5),
    "test.me": ServerRate(2.0, 5),
    "test.orders.list": ServerRate(2.0, 5),
    "test.orders.get": ServerRate(5.0, 10),
    "test.shipments.create": ServerRate(2.0, 5),
    "test.inventory.put": ServerRate(2.0, 5),
}

# Page tokens start with these bytes so their base64 always has the URL-unsafe "+/".
_TOKEN_MAGIC = b"\xfb\xff\xbf"


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("a time needs a UTC offset")
    return value.astimezone(UTC)


def _error(status: int, code: str, message: str) -> SandboxResponse:
    return SandboxResponse.json({"error": code, "message": message}, status=status)


class TestShopSimulator(BaseSimulator):
    """The test marketplace; ``book`` is its shop, ``inventory`` its stock levels."""

    __test__ = False  # not a pytest test class, whatever its name says

    name = NAME

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        seed: int | None = None,
        orders_per_hour: float = 12.0,
        backfill: int = 40,
        backfill_days: float = 7.0,
        access_ttl: float = 3600.0,
        rotate_refresh: bool = True,
        client_id: str = DEMO_CLIENT_ID,
        refresh_token: str = DEMO_REFRESH_TOKEN,
        shop_id: str = "TSHOP-1",
    ) -> None:
        self._sandbox = sandbox
        seed = sandbox.seed if seed is None else seed
        self.generator = ShopGenerator(seed)
        self.book = OrderBook(
            self.generator,
            sandbox.now(),
            orders_per_hour=orders_per_hour,
            backfill=backfill,
            backfill_days=backfill_days,
        )
        self.tokens = TokenAuthority(
            sandbox.clock,
            self.generator.rng,
            prefix="tsb",
            refresh_tokens=[refresh_token],
            access_ttl=access_ttl,
            rotate_refresh=rotate_refresh,
            client_id=client_id,
        )
        self.authority = self.tokens  # the base class expires these on the expired-token fault
        self.client_id = client_id
        self.initial_refresh_token = refresh_token
        self.shop_id = shop_id
        self.inventory: dict[str, int] = {p.sku: 25 for p in self.generator.catalog}

    # -- installation --------------------------------------------------------------

    def install(self, sandbox: Sandbox) -> None:
        add = sandbox.route
        add(self, "POST", f"{PREFIX}/oauth/token", self._token, name="test.token", rate=RATES["test.token"])
        add(self, "GET", f"{PREFIX}/me", self._me, name="test.me", rate=RATES["test.me"], authenticated=True)
        add(
            self,
            "GET",
            f"{PREFIX}/orders",
            self._orders,
            name="test.orders.list",
            rate=RATES["test.orders.list"],
            authenticated=True,
        )
        add(
            self,
            "GET",
            f"{PREFIX}/orders/{{order_id}}",
            self._order,
            name="test.orders.get",
            rate=RATES["test.orders.get"],
            authenticated=True,
        )
        add(
            self,
            "POST",
            f"{PREFIX}/orders/{{order_id}}/shipments",
            self._ship,
            name="test.shipments.create",
            rate=RATES["test.shipments.create"],
            authenticated=True,
        )
        add(
            self,
            "PUT",
            f"{PREFIX}/inventory/{{sku}}",
            self._inventory,
            name="test.inventory.put",
            rate=RATES["test.inventory.put"],
            authenticated=True,
        )

    def advance(self, now: datetime) -> None:
        self.book.advance(now)

    def describe(self) -> dict[str, str]:
        return {
            "base path": PREFIX,
            "TEST_CLIENT_ID": self.client_id,
            "TEST_REFRESH_TOKEN": self.initial_refresh_token,
            "orders": str(len(self.book.orders)),
        }

    def throttled_response(self, request: SandboxRequest, retry_after: float) -> SandboxResponse:
        response = super().throttled_response(request, retry_after)
        response.body = json.dumps(
            {"error": "rate_limited", "message": "Too many requests; slow down."}
        ).encode()
        return response

    # -- helpers ----------------------------------------------------------------------

    def _unauthorised(self, request: SandboxRequest) -> SandboxResponse | None:
        status = self.tokens.check(request.bearer_token())
        if status is TokenStatus.VALID:
            return None
        expired = status is TokenStatus.EXPIRED
        return _error(401, "invalid_token", f"The access token {'expired' if expired else 'is invalid'}.")

    @staticmethod
    def _rate_headers(match: RouteMatch) -> list[tuple[str, str]]:
        if match.rate_limit is None:
            return []
        return [
            ("X-RateLimit-Limit", f"{match.rate_limit:g}"),
            ("X-RateLimit-Remaining", f"{int(match.rate_remaining or 0)}"),
        ]

    def render(self, order: GenOrder) -> dict[str, Any]:
        """An order on the test marketplace's wire."""
        wire_status = {
            GenStatus.PENDING: "pending",
            GenStatus.UNSHIPPED: "paid",
            GenStatus.PARTIALLY_SHIPPED: "partially_shipped",
            GenStatus.SHIPPED: "shipped",
            GenStatus.CANCELLED: "cancelled",
        }[order.status]
        buyer = order.buyer
        return {
            "id": order.order_id,
            "status": wire_status,
            "created_at": iso(order.created_at),
            "updated_at": iso(order.updated_at),
            "ship_by": iso(order.ship_by),
            "currency": order.currency,
            "total": format(order.total, "f"),
            "fulfilled_by": "marketplace" if order.fulfilled_by_marketplace else "merchant",
            "buyer": {
                "name": buyer.name,
                "email": buyer.email,
                "address": {
                    "line1": buyer.line1,
                    "line2": buyer.line2,
                    "city": buyer.city,
                    "region": buyer.region,
                    "postal_code": buyer.postal_code,
                    "country": buyer.country,
                },
            },
            "lines": [
                {
                    "line_id": line.line_id,
                    "sku": line.sku,
                    "title": line.title,
                    "quantity": line.quantity,
                    "quantity_shipped": line.quantity_shipped,
                    "unit_price": format(line.unit_price, "f"),
                    "listing_id": line.listing_id,
                    "variation": line.variation,
                    "personalisation": line.personalisation,
                }
                for line in order.lines
            ],
            "shipments": [
                {
                    "shipment_id": s.shipment_id,
                    "carrier": s.carrier,
                    "tracking": s.tracking,
                    "shipped_at": iso(s.shipped_at),
                    "lines": [{"line_id": lid, "quantity": q} for lid, q in s.lines],
                }
                for s in order.shipments
            ],
        }

    # -- routes ------------------------------------------------------------------------

    def _token(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        form = request.form()
        if form.get("grant_type") != "refresh_token":
            return SandboxResponse.json({"error": "unsupported_grant_type"}, status=400)
        issued = self.tokens.exchange(form.get("refresh_token", ""), form.get("client_id"))
        if issued is None:
            return SandboxResponse.json(
                {"error": "invalid_grant", "error_description": "The refresh token is invalid or revoked."},
                status=400,
            )
        body: dict[str, Any] = {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
        }
        if issued.refresh_token:
            body["refresh_token"] = issued.refresh_token
        return SandboxResponse.json(body, headers=self._rate_headers(match))

    def _me(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._unauthorised(request)
        if refused:
            return refused
        return SandboxResponse.json(
            {"shop_id": self.shop_id, "shop_name": "TitanForge Test Shop"}, headers=self._rate_headers(match)
        )

    def _orders(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._unauthorised(request)
        if refused:
            return refused
        try:
            limit = min(MAX_PAGE, max(1, int(request.param("limit") or MAX_PAGE)))
            token = request.param("page_token")
            if token:
                since, after = _decode_page_token(token)
            else:
                since = parse_iso(request.param("modified_since") or "1970-01-01T00:00:00Z")
                after = None
        except (ValueError, KeyError):
            return _error(400, "bad_request", "modified_since, page_token or limit is not valid.")
        candidates = self.book.modified_since(since)
        if after is not None:
            candidates = [o for o in candidates if (o.updated_at, o.order_id) > after]
        size = self._sandbox.page_size(limit)
        page = candidates[:size]
        next_token = None
        if len(candidates) > size:
            last = page[-1]
            next_token = _encode_page_token(since, (last.updated_at, last.order_id))
        return SandboxResponse.json(
            {"orders": [self.render(o) for o in page], "next_page_token": next_token},
            headers=self._rate_headers(match),
        )

    def _order(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._unauthorised(request)
        if refused:
            return refused
        order = self.book.get(match.params["order_id"])
        if order is None:
            return _error(404, "not_found", f"Order {match.params['order_id']} does not exist.")
        return SandboxResponse.json(self.render(order), headers=self._rate_headers(match))

    def _ship(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._unauthorised(request)
        if refused:
            return refused
        order_id = match.params["order_id"]
        try:
            body = request.json()
            tracking = str(body.get("tracking") or "")
            carrier = str(body.get("carrier") or "")
            raw_lines = body.get("lines") or []
            lines = [(str(item["line_id"]), int(item["quantity"])) for item in raw_lines] or None
        except (ValueError, KeyError, TypeError, AttributeError):
            return _error(400, "bad_request", "The shipment body is not valid JSON with tracking and lines.")
        if not carrier:
            return _error(400, "carrier_required", "A carrier is required.")
        try:
            shipment = self.book.ship(order_id, carrier, tracking, lines, self._sandbox.now())
        except ShipError as exc:
            status = 404 if exc.code == "not_found" else 409 if exc.code == "order_cancelled" else 400
            return _error(status, exc.code, str(exc))
        order = self.book.orders[order_id]
        return SandboxResponse.json(
            {
                "shipment": {
                    "shipment_id": shipment.shipment_id,
                    "tracking": shipment.tracking,
                    "carrier": shipment.carrier,
                    "shipped_at": iso(shipment.shipped_at),
                },
                "order": self.render(order),
            },
            status=201,
            headers=self._rate_headers(match),
        )

    def _inventory(self, request: SandboxRequest, match: RouteMatch) -> SandboxResponse:
        refused = self._unauthorised(request)
        if refused:
            return refused
        sku = match.params["sku"]
        if sku not in self.inventory:
            return _error(404, "not_found", f"No listing has SKU {sku}.")
        try:
            quantity = int(request.json()["quantity"])
        except (ValueError, KeyError, TypeError):
            return _error(400, "bad_request", 'The body must be {"quantity": N}.')
        if quantity < 0:
            return _error(400, "bad_quantity", "A quantity cannot be negative.")
        self.inventory[sku] = quantity
        return SandboxResponse.json({"sku": sku, "quantity": quantity}, headers=self._rate_headers(match))


def _encode_page_token(since: datetime, after: tuple[datetime, str]) -> str:
    # Full precision: the key-set position must not round onto a neighbour.
    payload = json.dumps(
        {"s": since.isoformat(), "u": after[0].isoformat(), "i": after[1]}, separators=(",", ":")
    )
    return base64.b64encode(_TOKEN_MAGIC + payload.encode()).decode("ascii")


def _decode_page_token(token: str) -> tuple[datetime, tuple[datetime, str]]:
    raw = base64.b64decode(token.encode("ascii"), validate=True)
    if not raw.startswith(_TOKEN_MAGIC):
        raise ValueError("not a page token")
    data = json.loads(raw[len(_TOKEN_MAGIC) :])
    return parse_iso(data["s"]), (parse_iso(data["u"]), str(data["i"]))


def create_simulator(sandbox: Sandbox, *, seed: int) -> TestShopSimulator:
    """The factory ``tf-console sandbox serve`` calls (see :mod:`tf_console.sandbox.registry`)."""
    return TestShopSimulator(sandbox, seed=seed)
