"""Shared pieces of the alert and audit tests: a runtime on in-memory marketplaces with real
health recorders, a fixed clock, and the alert service the runtime carries (or one installed)."""

from __future__ import annotations

import random
import shutil
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import tf_console.data
from tests.sync_fakes import FakeMarket
from tf_console.alerts import AlertEvent, AlertService, install_alerts
from tf_console.audit import AuditLog, install_audit
from tf_console.clock import FakeClock
from tf_console.demo import isolated_context
from tf_console.marketplaces.base import CredentialCheck, OrderPage, ReauthNeeded
from tf_console.marketplaces.health import HealthRecorder
from tf_console.marketplaces.ratelimit import BucketSpec, DailyBudgetSpec, RateLimiter
from tf_console.models import Platform
from tf_console.runtime import Runtime
from tf_console.sync.outbox import RetryPolicy

EXAMPLES = Path(tf_console.data.__file__).resolve().parent
KEY = b"o4mJ0v3oVZ2cGkz8b7m1p0d5Jx3cQ9Yw6n2r8t4u1s0="
BUYER_NAME = "Jane Buyer"  # the name tests.sync_fakes.make_order gives every buyer


@dataclass
class FakeClient:
    health: HealthRecorder
    limiter: RateLimiter


class HealthyFake(FakeMarket):
    """The sync tests' in-memory marketplace with a real health recorder and rate limiter:
    each order fetch is recorded as one call, and the credential check can be scripted."""

    def __init__(
        self, clock: FakeClock, platform: Platform = Platform.TEST, daily: DailyBudgetSpec | None = None
    ) -> None:
        super().__init__(clock)
        self.platform = platform
        limiter = RateLimiter(platform, clock, operations={"orders": BucketSpec(10.0, 20)}, daily=daily)
        self.client = FakeClient(HealthRecorder(platform, clock, rate_source=limiter.snapshot), limiter)
        self.credentials: CredentialCheck | Exception = CredentialCheck(True, "Test credentials work.")
        self.credential_calls = 0

    async def fetch_orders(
        self, since: datetime, *, until: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        failure = self.fail_fetch
        self.client.health.record_call(
            operation="orders",
            method="GET",
            status=503 if failure else 200,
            latency_ms=40.0,
            attempt=1,
            ok=failure is None,
            message=str(failure) if failure else "",
        )
        async for page in super().fetch_orders(since, until=until):
            yield page

    async def check_credentials(self) -> CredentialCheck:
        self.credential_calls += 1
        if isinstance(self.credentials, Exception):
            raise self.credentials
        return self.credentials


def reauth(platform: Platform = Platform.TEST) -> ReauthNeeded:
    return ReauthNeeded(
        f"{platform.label} refused the refresh token; run tf-console creds set TEST_REFRESH_TOKEN.",
        platform=platform,
    )


@dataclass
class Shop:
    runtime: Runtime
    clock: FakeClock
    markets: dict[Platform, HealthyFake]
    alerts: AlertService
    audit: AuditLog
    events: list[AlertEvent] = field(default_factory=list)

    @property
    def market(self) -> HealthyFake:
        return next(iter(self.markets.values()))

    def keys(self, kind: str) -> list[str]:
        return [e.key for e in self.events if e.event == kind]

    async def poll(self) -> None:
        for platform in self.markets:
            await self.runtime.engine.poll(platform)

    async def round(self) -> None:
        """One round of the engine loop as the lease holder runs it: polls due, deliveries, periodic jobs."""
        engine = self.runtime.engine
        assert await engine.take_lease()
        engine.request_poll_now()
        await engine._one_round(7)

    def close(self) -> None:
        self.runtime.engine.lease.release()
        self.runtime.close()


def open_shop(
    tmp_path: Path,
    *,
    clock: FakeClock | None = None,
    markets: Mapping[Platform, HealthyFake] | None = None,
    values: Mapping[str, str] | None = None,
) -> Shop:
    clock = clock or FakeClock()
    markets = dict(markets) if markets is not None else {Platform.TEST: HealthyFake(clock)}
    data_dir = tmp_path / "data"
    config = tmp_path / "shop-config"
    config.mkdir(exist_ok=True)
    for name in ("catalog", "printers"):  # copies: catalog assign rewrites its file
        target = config / f"{name}.toml"
        if not target.exists():
            shutil.copyfile(EXAMPLES / f"{name}.example.toml", target)
    ctx = isolated_context(data_dir, {"TF_TIMEZONE": "UTC", **dict(values or {})}, clock=clock, key=KEY)
    runtime = Runtime(
        ctx,
        lease_kind="test",
        platforms=(),
        extra_marketplaces={p: (lambda _rt, m=m: m) for p, m in markets.items()},  # type: ignore[misc]
        catalog_path=config / "catalog.toml",
        printers_path=config / "printers.toml",
    )
    runtime.open()
    engine = runtime.engine
    engine.sender.policy = RetryPolicy(
        base_delay=1, max_delay=10, verify_wait=60, verify_reads=2, verify_interval=20
    )
    engine.sender.rng = random.Random(3)
    # Once the lead wires these into Runtime.open the runtime carries them; until then install here.
    service = getattr(runtime, "alerts", None)
    if not isinstance(service, AlertService):
        service = install_alerts(runtime)
    audit = AuditLog(runtime.store, clock)
    if runtime.production.audit is None:
        audit = install_audit(runtime)
    shop = Shop(runtime, clock, markets, service, audit)
    service.subscribe(shop.events.append)
    return shop
