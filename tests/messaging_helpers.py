"""A small shop for the customer-update tests: one simulated marketplace in process, a real
runtime on a fixed clock, messaging installed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tf_console.data
from tf_console.clock import FakeClock
from tf_console.demo import IsolatedSettings, demo_values, isolated_context
from tf_console.messaging import MessagingService, install_messaging
from tf_console.models import Order, OrderStatus, Platform
from tf_console.runtime import Runtime
from tf_console.sandbox import Sandbox, SandboxTransport, Simulator
from tf_console.sandbox.amazon import AmazonShopSimulator
from tf_console.sandbox.ebay import EbaySimulator
from tf_console.sandbox.etsy import EtsySimulator
from tf_console.sync.outbox import OutboxItem

EXAMPLES = Path(tf_console.data.__file__).resolve().parent
FIXED_KEY = b"o4mJ0v3oVZ2cGkz8b7m1p0d5Jx3cQ9Yw6n2r8t4u1s0="


@dataclass
class Shop:
    runtime: Runtime
    clock: FakeClock
    sandbox: Sandbox
    sim: Any
    service: MessagingService
    platform: Platform

    async def poll(self) -> None:
        result = await self.runtime.engine.poll(self.platform, days=30)
        assert result.ok, result.error

    def open_orders(self) -> list[Order]:
        return [o for o in self.runtime.store.orders.open_orders() if o.platform is self.platform]

    def unshipped(self) -> list[Order]:
        return [o for o in self.open_orders() if o.status is OrderStatus.UNSHIPPED and o.shippable]

    async def deliver(self, item_id: str) -> OutboxItem:
        return await self.runtime.engine.sender.deliver(item_id)


def _simulator(platform: Platform, sandbox: Sandbox, seed: int, options: Mapping[str, Any]) -> Simulator:
    chosen: dict[str, Any] = {"seed": seed, "orders_per_hour": 0.0, **options}
    if platform is Platform.AMAZON:
        return AmazonShopSimulator(sandbox, **{"fba_share": 0.0, **chosen})
    if platform is Platform.EBAY:
        return EbaySimulator(sandbox, **chosen)
    return EtsySimulator(sandbox, **chosen)


@asynccontextmanager
async def shop(
    tmp_path: Path,
    platform: Platform,
    *,
    events: str,
    seed: int = 5,
    values: Mapping[str, str] | None = None,
    sim_options: Mapping[str, Any] | None = None,
    ssl_context: Any = None,
) -> AsyncIterator[Shop]:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=seed, short_page_probability=0.0)
    sim = sandbox.add(_simulator(platform, sandbox, seed, sim_options or {}))
    given = demo_values(platform, sim, IsolatedSettings().endpoint_defaults())
    given[f"TF_MESSAGES_{platform.value.upper()}"] = events
    given["TF_TIMEZONE"] = "UTC"
    given.update(values or {})
    ctx = isolated_context(tmp_path / "data", given, clock=clock, key=FIXED_KEY)
    runtime = Runtime(
        ctx,
        lease_kind="test",
        transports={platform: SandboxTransport(sandbox, sleep=clock.sleep)},
        platforms=(platform,),
        client_overrides={"read_timeout": 5.0},
        catalog_path=EXAMPLES / "catalog.example.toml",
        printers_path=EXAMPLES / "printers.example.toml",
        smtp_ssl_context=ssl_context,
    )
    async with runtime.started() as rt:
        service = install_messaging(rt, ssl_context=ssl_context)
        yield Shop(rt, clock, sandbox, sim, service, platform)
