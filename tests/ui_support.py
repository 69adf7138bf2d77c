"""A seeded console for UI tests and snapshots: a real store, fixed clock, fake marketplaces.

``make_console(tmp_path)`` opens a runtime on a fresh state folder (example catalog
and printers, isolated settings, its own data key), stores a deterministic shop of
orders, builds the print queue from them, and returns the service and the app —
with the sync engine off unless asked, so nothing changes unless a test does it.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from textual.pilot import Pilot
from textual.screen import ModalScreen
from textual.worker import WorkerState

from tests.sync_fakes import FakeMarket
from tf_console.clock import FakeClock
from tf_console.console import ConsoleService
from tf_console.demo import isolated_context
from tf_console.marketplaces.base import Marketplace
from tf_console.marketplaces.health import HealthRecorder
from tf_console.marketplaces.ratelimit import BucketSpec, RateLimiter
from tf_console.models import (
    Address,
    FulfilledBy,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentState,
)
from tf_console.paths import private_mkdir
from tf_console.production.examples import install_examples
from tf_console.runtime import Runtime
from tf_console.ui import ConsoleApp, ConsoleOptions

# Monday 2 November 2026, 10:00 UTC: inside the example's staffed hours.
UI_NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
FIXED_KEY = b"o4mJ0v3oVZ2cGkz8b7m1p0d5Jx3cQ9Yw6n2r8t4u1s0="
SIZE = (120, 40)
SMALL = (80, 24)

PRODUCTS: tuple[tuple[str, str, Decimal], ...] = (
    ("PRT-DRAGON-S", "Articulated Crystal Dragon, Small", Decimal("18.99")),
    ("PRT-DRAGON-L", "Articulated Crystal Dragon, Large", Decimal("44.00")),
    ("PRT-NAMEPLATE", "Custom Desk Name Plate", Decimal("24.50")),
    ("PRT-KEYCHAIN-NAME", "Name Keychain", Decimal("9.99")),
    ("PRT-VASE-SPIRAL-M", "Spiral Vase, Medium", Decimal("29.00")),
    ("STK-NOZZLE-04", "Hardened Steel Nozzle 0.4", Decimal("12.00")),
    ("STK-PLA-1KG-BLK", "PLA Filament 1 kg, Black", Decimal("21.99")),
    ("MYSTERY-GIFT-BOX", "Mystery Gift Box", Decimal("15.00")),
)
PLATFORMS = (Platform.AMAZON, Platform.EBAY, Platform.ETSY)


class PlatformFake(FakeMarket):
    """The sync tests' in-memory marketplace, posing as one of the real platforms,
    with a real health recorder and rate limiter so the health pane has data."""

    def __init__(self, clock: FakeClock, platform: Platform) -> None:
        super().__init__(clock)
        self.platform = platform
        limiter = RateLimiter(platform, clock, operations={"orders": BucketSpec(1.0, 20)}, per_minute_cap=60)
        self.client = _FakeClient(HealthRecorder(platform, clock, rate_source=limiter.snapshot), limiter)


@dataclass
class _FakeClient:
    health: HealthRecorder
    limiter: RateLimiter


def order_id(platform: Platform, n: int) -> str:
    if platform is Platform.AMAZON:
        return f"113-{4000000 + n * 7919:07d}-{1000000 + n * 104729 % 9000000:07d}"
    if platform is Platform.EBAY:
        return f"27-{10000 + n:05d}-{n * 37 % 99999:05d}"
    return f"{3000000000 + n * 13}"


def build_orders(count: int = 36, *, seed: int = 5, now: datetime = UI_NOW) -> list[Order]:
    """A deterministic mix: open and shipped, print, stock and unknown items, late and on time."""
    rng = random.Random(seed)
    orders: list[Order] = []
    for n in range(count):
        platform = PLATFORMS[n % 3]
        created = now - timedelta(minutes=17 + n * 97 + rng.randint(0, 30))
        roll = n % 9
        status = (
            OrderStatus.SHIPPED
            if roll in (7, 8)
            else OrderStatus.PENDING
            if roll == 6
            else OrderStatus.UNSHIPPED
        )
        lines: list[LineItem] = []
        for k in range(1 + (n % 4 == 0)):
            sku, title, price = PRODUCTS[(n * 3 + k * 5) % len(PRODUCTS)]
            qty = 1 + (n + k) % 3
            lines.append(
                LineItem(
                    line_id=f"{n}{k}1",
                    sku=sku,
                    title=title,
                    quantity=qty,
                    quantity_shipped=qty if status is OrderStatus.SHIPPED else 0,
                    unit_price=Money(amount=price, currency="USD"),
                    personalisation="For Mira, with love" if sku == "PRT-NAMEPLATE" else "",
                )
            )
        total = sum((line.unit_price.amount * line.quantity for line in lines if line.unit_price), Decimal(0))
        shipments: list[Shipment] = []
        if status is OrderStatus.SHIPPED:
            shipments.append(
                Shipment(
                    shipment_id="1",
                    carrier="USPS",
                    tracking=f"9400{n:018d}",
                    shipped_at=created + timedelta(hours=5),
                    state=ShipmentState.CONFIRMED,
                    requested_at=created + timedelta(hours=5),
                    updated_at=created + timedelta(hours=5),
                )
            )
        orders.append(
            Order(
                platform=platform,
                order_id=order_id(platform, n),
                status=status,
                raw_status={"unshipped": "Paid", "pending": "Pending", "shipped": "Shipped"}[status.value],
                created_at=created,
                updated_at=created + timedelta(hours=5) if shipments else created,
                ship_by=created + timedelta(hours=30 + (n % 5) * 20),
                currency="USD",
                total=Money(amount=total, currency="USD"),
                total_is_proceeds=platform is Platform.AMAZON,
                items=lines,
                buyer=Address(
                    name=f"Buyer Number{n}",
                    email=f"buyer{n}@example.com",
                    line1=f"{n} Elm Street",
                    city="Springfield",
                    region="IL",
                    postal_code="62701",
                    country="US",
                ),
                fulfilled_by=FulfilledBy.MARKETPLACE if n == 11 else FulfilledBy.MERCHANT,
                shipments=shipments,
                marketplace_tracking=[s.tracking for s in shipments],
            )
        )
    return orders


@dataclass
class Console:
    runtime: Runtime
    service: ConsoleService
    app: ConsoleApp
    clock: FakeClock
    markets: dict[Platform, PlatformFake]
    orders: list[Order]


def _returns(market: PlatformFake) -> Callable[[Runtime], Marketplace]:
    def build(_runtime: Runtime) -> Marketplace:
        return market

    return build


def open_runtime(data_dir: Path, clock: FakeClock) -> tuple[Runtime, dict[Platform, PlatformFake]]:
    private_mkdir(data_dir)
    install_examples(data_dir)
    ctx = isolated_context(data_dir, {"TF_TIMEZONE": "UTC"}, clock=clock, key=FIXED_KEY)
    markets = {p: PlatformFake(clock, p) for p in PLATFORMS}
    runtime = Runtime(
        ctx,
        lease_kind="console",
        platforms=(),
        extra_marketplaces={p: _returns(m) for p, m in markets.items()},
    )
    runtime.open()
    return runtime, markets


def seed_store(runtime: Runtime, orders: list[Order]) -> None:
    classified = [runtime.production.classify_order(o) for o in orders]
    runtime.store.orders.upsert_many(classified)
    runtime.production.sync_orders(classified)


def record_health(markets: dict[Platform, PlatformFake], clock: FakeClock) -> None:
    """Some calls in each platform's health record: eBay degraded, Etsy with a token."""
    for n, (platform, market) in enumerate(markets.items()):
        health = market.client.health
        for k in range(8):
            ok = not (platform is Platform.EBAY and k >= 6)
            health.record_call(
                operation="orders.list",
                method="GET",
                status=200 if ok else 503,
                latency_ms=80.0 + 40 * ((k * (n + 2)) % 5),
                attempt=1,
                ok=ok,
                message=""
                if ok
                else f"{platform.label} had a server problem (HTTP 503); it will be retried.",
                request_id=f"req-{platform.value}-{k}",
                rate_headers={"x-remaining": str(20 - k)},
            )
        health.set_poll_times(clock.now() - timedelta(minutes=2 + n), clock.now() + timedelta(minutes=3 + n))
        health.set_poller("this console")
    markets[Platform.ETSY].client.health.set_token_expiry(clock.now() + timedelta(minutes=42))


@contextmanager
def make_console(
    tmp_path: Path,
    *,
    orders: list[Order] | None = None,
    read_only: bool = False,
    poll: bool = False,
    health: bool = True,
) -> Iterator[Console]:
    clock = FakeClock(UI_NOW)
    runtime, markets = open_runtime(tmp_path / "state", clock)
    shop = build_orders() if orders is None else orders
    try:
        seed_store(runtime, shop)
        if health:
            record_health(markets, clock)
        service = ConsoleService(runtime, read_only=read_only)
        app = ConsoleApp(service, ConsoleOptions(poll=poll))
        yield Console(runtime, service, app, clock, markets, shop)
        service.close()
    finally:
        runtime.engine.lease.release()
        runtime.close()


LONG_RUNNING = frozenset({"engine", "background"})
# Workers that wait for the operator while a dialog is open.
INTERACTIVE = frozenset({"ship", "ship-dialog", "classify", "priority", "quit"})


def pending_workers(app: ConsoleApp) -> list[str]:
    ignored = LONG_RUNNING | (INTERACTIVE if isinstance(app.screen, ModalScreen) else frozenset())
    return [
        w.name or w.group
        for w in app.workers
        if w.group not in ignored and w.state in (WorkerState.PENDING, WorkerState.RUNNING)
    ]


async def settle(pilot: Pilot[int], rounds: int = 400) -> None:
    """Wait until every refresh and write has finished and nothing is left to repaint."""
    app = pilot.app
    assert isinstance(app, ConsoleApp)
    quiet = 0
    for _ in range(rounds):
        await pilot.pause()
        if app.busy() or pending_workers(app) or app.service.writes_pending:
            quiet = 0
            await asyncio.sleep(0.01)
            continue
        quiet += 1
        if quiet >= 3:
            return
    raise AssertionError(f"the console did not settle: {pending_workers(app)}")
