"""The sandbox's "test" marketplace, implementing the :class:`Marketplace` protocol.

This is the model the Amazon, eBay and Etsy modules copy: one module that
builds requests, sends every one through :class:`ApiClient` (rate limits,
retries, tokens, health) and parses the wire format — here the plain JSON of
:mod:`tf_console.sandbox.testsim` — into :mod:`tf_console.models`.

The pieces a platform provides: operation names with their published limits
(:data:`TEST_OPERATIONS`), ``classify`` (its error answers → our errors),
``rate_headers`` (its rate-limit headers → :class:`RateUpdate`), an auth provider,
and the parsers.  :func:`create_test_marketplace` wires them together.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx

from tf_console.clock import Clock
from tf_console.marketplaces.auth import OAuthRefreshProvider, RotateCallback, TokenGrant
from tf_console.marketplaces.base import (
    ConfirmState,
    CredentialCheck,
    MalformedResponse,
    MarketplaceError,
    OrderPage,
    PermanentError,
    PushResult,
    PushState,
    RateLimited,
    ReauthNeeded,
    RemoteShipments,
    ShipmentResult,
    TransientError,
)
from tf_console.marketplaces.health import HealthRecorder, Sink
from tf_console.marketplaces.http import ApiClient, ClientSettings, PlatformHooks
from tf_console.marketplaces.ratelimit import BucketSpec, RateLimiter, RateUpdate
from tf_console.marketplaces.redact import REDACTOR, Redactor
from tf_console.models import (
    Address,
    FulfilledBy,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
)

PLATFORM = Platform.TEST
REFRESH_VARIABLE = "TEST_REFRESH_TOKEN"
CLIENT_VARIABLE = "TEST_CLIENT_ID"
PAGE_LIMIT = 100

# Published limits of the test marketplace (rate per second, burst); the sandbox's are the same.
TEST_OPERATIONS: dict[str, BucketSpec] = {
    "token": BucketSpec(1.0, 5),
    "me": BucketSpec(2.0, 5),
    "orders.list": BucketSpec(2.0, 5),
    "orders.get": BucketSpec(5.0, 10),
    "shipments.create": BucketSpec(2.0, 5),
    "inventory.put": BucketSpec(2.0, 5),
}

_STATUSES = {
    "pending": OrderStatus.PENDING,
    "paid": OrderStatus.UNSHIPPED,
    "partially_shipped": OrderStatus.PARTIALLY_SHIPPED,
    "shipped": OrderStatus.SHIPPED,
    "cancelled": OrderStatus.CANCELLED,
}


# ---------------------------------------------------------------------------
# Hooks for ApiClient


def _json_body(response: httpx.Response) -> Any:
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def classify(response: httpx.Response) -> MarketplaceError | None:
    """The test marketplace's errors are ``{"error": code, "message": sentence}``."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    body = _json_body(response)
    code = str(body.get("error") or "") if isinstance(body, dict) else ""
    said = str(body.get("message") or "") if isinstance(body, dict) else ""
    said_part = f" ({said.rstrip('.')})" if said else ""
    if status == 401:
        return ReauthNeeded(
            f"The test marketplace refused the access token{said_part}; "
            f"set a new refresh token with `tf-console creds set {REFRESH_VARIABLE}`.",
            variable=REFRESH_VARIABLE,
            code=code or "401",
            status=status,
        )
    if status == 429:
        return RateLimited("The test marketplace is throttling requests.", code=code or "429", status=status)
    if status >= 500:
        return TransientError(
            f"The test marketplace had a server problem (HTTP {status}); it will be retried.",
            code=code or str(status),
            status=status,
        )
    return PermanentError(
        f"The test marketplace refused the request{said_part}.", code=code or str(status), status=status
    )


def rate_headers(operation: str, headers: httpx.Headers) -> RateUpdate | None:
    limit = headers.get("x-ratelimit-limit")
    remaining = headers.get("x-ratelimit-remaining")
    if limit is None and remaining is None:
        return None
    return RateUpdate(
        rate=float(limit) if limit else None,
        remaining=float(remaining) if remaining is not None else None,
    )


# ---------------------------------------------------------------------------
# Parsing the wire format


def _time(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise MalformedResponse(f"the order's {field} is missing")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise MalformedResponse(f"the order's {field} has no time zone")
    return parsed.astimezone(UTC)


def _money(amount: Any, currency: str) -> Money:
    try:
        return Money(amount=Decimal(str(amount)), currency=currency)
    except (InvalidOperation, ValueError) as exc:
        raise MalformedResponse(f"the amount {amount!r} is not a number") from exc


def parse_order(data: Any, redactor: Redactor = REDACTOR) -> Order:
    """One wire order → :class:`Order`; raises MalformedResponse (a sentence fragment) when unusable."""
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        raise MalformedResponse("an order without an id")
    raw_status = str(data.get("status") or "")
    status = _STATUSES.get(raw_status.lower())
    if status is None:
        raise MalformedResponse(f"order {data['id']} has an unknown status {raw_status!r}")
    currency = str(data.get("currency") or "")
    buyer_raw = data.get("buyer") or {}
    address = buyer_raw.get("address") or {}
    buyer = Address(
        name=str(buyer_raw.get("name") or ""),
        email=str(buyer_raw.get("email") or ""),
        line1=str(address.get("line1") or ""),
        line2=str(address.get("line2") or ""),
        city=str(address.get("city") or ""),
        region=str(address.get("region") or ""),
        postal_code=str(address.get("postal_code") or ""),
        country=str(address.get("country") or ""),
    )
    redactor.register_pii([buyer.name, buyer.email, buyer.line1])
    items = [
        LineItem(
            line_id=str(line["line_id"]),
            sku=str(line.get("sku") or ""),
            title=str(line.get("title") or ""),
            quantity=int(line["quantity"]),
            quantity_shipped=int(line.get("quantity_shipped") or 0),
            unit_price=_money(line["unit_price"], currency) if line.get("unit_price") is not None else None,
            listing_id=str(line.get("listing_id") or ""),
            variation=str(line.get("variation") or ""),
            personalisation=str(line.get("personalisation") or ""),
        )
        for line in data.get("lines") or []
    ]
    total = data.get("total")
    return Order(
        platform=PLATFORM,
        order_id=data["id"],
        status=status,
        raw_status=raw_status,
        created_at=_time(data.get("created_at"), "created_at"),
        updated_at=_time(data.get("updated_at"), "updated_at"),
        ship_by=_time(data["ship_by"], "ship_by") if data.get("ship_by") else None,
        currency=currency,
        total=_money(total, currency) if total is not None else None,
        items=items,
        buyer=buyer if not buyer.is_empty() else None,
        fulfilled_by=FulfilledBy.MARKETPLACE
        if data.get("fulfilled_by") == "marketplace"
        else FulfilledBy.MERCHANT,
        marketplace_tracking=[str(s["tracking"]) for s in data.get("shipments") or [] if s.get("tracking")],
    )


@dataclass(slots=True)
class _Page:
    orders: list[Order]
    errors: list[str]
    next_token: str | None


def _parse_page(response: httpx.Response) -> _Page:
    body = json.loads(response.content)
    if not isinstance(body, dict) or not isinstance(body.get("orders"), list):
        raise MalformedResponse("The test marketplace's order page has no order list.", code="malformed")
    orders: list[Order] = []
    errors: list[str] = []
    for raw in body["orders"]:
        try:
            orders.append(parse_order(raw))
        except (MalformedResponse, KeyError, ValueError, TypeError, AttributeError) as exc:
            order_id = raw.get("id") if isinstance(raw, dict) else None
            errors.append(f"Order {order_id or '(no id)'} could not be read: {exc}.")
    token = body.get("next_page_token")
    return _Page(orders, errors, str(token) if token else None)


def _parse_shop_id(response: httpx.Response) -> str:
    body = json.loads(response.content)
    if not isinstance(body, dict) or not body.get("shop_id"):
        raise MalformedResponse("The test marketplace did not say which shop the credentials belong to.")
    return str(body["shop_id"])


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------------------
# The marketplace


class TestMarketplace:
    """The test platform through an :class:`ApiClient` (whose ``base_url`` is the sandbox)."""

    __test__ = False  # not a pytest test class

    platform = PLATFORM
    max_backfill_days: int | None = None
    min_poll_interval = 0.0

    def __init__(self, client: ApiClient, *, page_limit: int = PAGE_LIMIT) -> None:
        self.client = client
        self.page_limit = page_limit

    async def fetch_orders(
        self, since: datetime, *, until: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        first: dict[str, str | int] = {"modified_since": _iso(since), "limit": self.page_limit}
        token: str | None = None
        page_number = 0
        while True:
            page_number += 1
            params: dict[str, str | int] = (
                {"page_token": token, "limit": self.page_limit} if token else dict(first)
            )
            page = await self.client.request_parsed(
                "orders.list", "GET", "/test/orders", params=params, idempotent=True, parse=_parse_page
            )
            for error in page.errors:
                self.client.report_error("orders.list", error)
            orders = page.orders
            beyond = False
            if until is not None:
                beyond = any(o.updated_at > until for o in orders)
                orders = [o for o in orders if o.updated_at <= until]
            yield OrderPage(orders=orders, errors=page.errors, page_number=page_number)
            token = page.next_token
            if not token or beyond:  # pages are in modified order: nothing later is before ``until``
                return

    async def _get_order(self, order_id: str) -> Order | None:
        try:
            return await self.client.request_parsed(
                "orders.get",
                "GET",
                f"/test/orders/{quote(order_id, safe='')}",
                idempotent=True,
                parse=lambda r: parse_order(json.loads(r.content)),
            )
        except PermanentError as exc:
            if exc.status == 404:
                return None
            raise

    async def fetch_orders_by_id(self, order_ids: Sequence[str]) -> list[Order]:
        found: list[Order] = []
        for order_id in order_ids:
            order = await self._get_order(order_id)
            if order is not None:
                found.append(order)
        return found

    async def confirm_shipment(self, order: Order, shipment: Shipment) -> ShipmentResult:
        body = {
            "tracking": shipment.tracking,
            "carrier": shipment.carrier_name if shipment.carrier.lower() == "other" else shipment.carrier,
            "lines": [{"line_id": line.line_id, "quantity": line.quantity} for line in shipment.lines],
        }
        try:
            remote = await self.client.request_parsed(
                "shipments.create",
                "POST",
                f"/test/orders/{quote(order.order_id, safe='')}/shipments",
                json=body,
                idempotent=False,
                ok_statuses=frozenset({201}),
                parse=lambda r: parse_order(json.loads(r.content)["order"]),
            )
        except PermanentError as exc:
            return ShipmentResult(ConfirmState.REJECTED, answer=exc.sentence, request_id=exc.request_id)
        if shipment.tracking in remote.marketplace_tracking:
            return ShipmentResult(ConfirmState.CONFIRMED, answer="The test marketplace shows the tracking.")
        return ShipmentResult(ConfirmState.PENDING, answer="Accepted; the tracking is not shown yet.")

    async def read_shipments(self, order: Order) -> RemoteShipments:
        remote = await self._get_order(order.order_id)
        if remote is None:
            return RemoteShipments(order_found=False)
        return RemoteShipments(
            order_found=True,
            tracking_numbers=list(remote.marketplace_tracking),
            shipped=remote.status is OrderStatus.SHIPPED,
            order=remote,
        )

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        try:
            # Setting an absolute quantity is idempotent: sending it twice changes nothing.
            await self.client.request(
                "inventory.put",
                "PUT",
                f"/test/inventory/{quote(sku, safe='')}",
                json={"quantity": quantity},
                idempotent=True,
            )
        except PermanentError as exc:
            if exc.status == 404:
                return PushResult(PushState.SKIPPED, answer=f"No test listing has SKU {sku}.")
            return PushResult(PushState.REJECTED, answer=exc.sentence)
        return PushResult(PushState.APPLIED)

    async def check_credentials(self) -> CredentialCheck:
        try:
            shop_id = await self.client.request_parsed(
                "me", "GET", "/test/me", idempotent=True, cache=True, parse=_parse_shop_id
            )
        except MarketplaceError as exc:
            return CredentialCheck(ok=False, sentence=exc.sentence)
        return CredentialCheck(
            ok=True,
            sentence=f"Test marketplace credentials work (shop {shop_id}).",
            details={"shop_id": shop_id},
        )

    async def aclose(self) -> None:
        await self.client.aclose()


def create_test_marketplace(
    *,
    base_url: str,
    client_id: str,
    refresh_token: str,
    clock: Clock,
    rng: random.Random,
    transport: httpx.AsyncBaseTransport | None = None,
    settings: ClientSettings | None = None,
    rate_limit_per_minute: int | None = None,
    rate_scale: float = 1.0,
    access_token: TokenGrant | None = None,
    on_rotate: RotateCallback | None = None,
    health_sink: Sink | None = None,
    redactor: Redactor = REDACTOR,
) -> TestMarketplace:
    """Wire limiter, health, client and OAuth refresh for the test platform.

    ``rate_scale`` multiplies the published rates (match the sandbox's); ``access_token``
    is a saved grant to start from; ``on_rotate`` receives every new grant.
    """
    limiter = RateLimiter(
        PLATFORM,
        clock,
        operations={name: spec.scaled(rate_scale) for name, spec in TEST_OPERATIONS.items()},
        per_minute_cap=rate_limit_per_minute,
    )
    health = HealthRecorder(PLATFORM, clock, sink=health_sink, redactor=redactor)
    client = ApiClient(
        PLATFORM,
        clock=clock,
        rng=rng,
        limiter=limiter,
        health=health,
        hooks=PlatformHooks(
            classify=classify, rate_headers=rate_headers, credential_variable=REFRESH_VARIABLE
        ),
        base_url=base_url,
        transport=transport,
        settings=settings,
        redactor=redactor,
    )
    auth = OAuthRefreshProvider(
        client,
        token_url="/test/oauth/token",
        refresh_token=refresh_token,
        client_id=client_id,
        client_auth="client_id",
        refresh_variable=REFRESH_VARIABLE,
        client_variable=CLIENT_VARIABLE,
        on_rotate=on_rotate,
        initial=access_token,
        redactor=redactor,
    )
    client.attach_auth(auth)
    return TestMarketplace(client)
