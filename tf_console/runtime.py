"""The composition root: settings → store → production → marketplaces → sync engine.

The CLI, the daemon and the console all start through :class:`Runtime`, so every
process wires the same pieces the same way.  Tests and the demo pass transports
(the in-process sandbox), a clock, and a rate scale.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio.to_thread
import httpx

from tf_console.alerts import AlertService, install_alerts
from tf_console.audit import AuditLog, install_audit
from tf_console.clock import Clock
from tf_console.context import AppContext
from tf_console.inventory import install_inventory
from tf_console.marketplaces.base import Marketplace
from tf_console.marketplaces.health import HealthRecorder
from tf_console.marketplaces.registry import BuiltMarketplaces, build_marketplaces, make_deps_factory
from tf_console.messaging import install_messaging
from tf_console.models import MARKETPLACES, Platform
from tf_console.production.service import ProductionService
from tf_console.store import Store
from tf_console.sync.engine import SyncEngine

log = logging.getLogger(__name__)

HEALTH_LOG = "health"
ARCHIVE_EVERY = 6 * 3600.0  # seconds between moves of long-closed orders to the archive


def bucket_key(platform: Platform) -> str:
    return f"buckets:{platform.value}"


def client_of(market: Marketplace) -> Any:
    """The platform's ApiClient (every platform module keeps it as ``client``)."""
    return getattr(market, "client", None)


class Runtime:
    def __init__(
        self,
        ctx: AppContext,
        *,
        lease_kind: str,
        transports: Mapping[Platform, httpx.AsyncBaseTransport] | None = None,
        rate_scale: float = 1.0,
        rng_seed: int | None = None,
        read_only: bool = False,
        platforms: tuple[Platform, ...] = MARKETPLACES,
        skip_config_check: bool = False,
        client_overrides: Mapping[str, Any] | None = None,
        catalog_path: Path | None = None,
        printers_path: Path | None = None,
        extra_marketplaces: Mapping[Platform, Callable[[Runtime], Marketplace]] | None = None,
        smtp_ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.clock: Clock = ctx.clock
        self.lease_kind = lease_kind
        self.read_only = read_only
        self._transports = dict(transports or {})
        self._rate_scale = rate_scale
        self._rng_seed = rng_seed
        self._platforms = platforms
        self._skip_config_check = skip_config_check
        self._client_overrides = dict(client_overrides or {})
        self._catalog_path = catalog_path
        self._printers_path = printers_path
        self._extra = dict(extra_marketplaces or {})
        self._smtp_ssl_context = smtp_ssl_context  # tests: trust a local mail server's certificate
        self._store: Store | None = None
        self._engine: SyncEngine | None = None
        self._production: ProductionService | None = None
        self._built = BuiltMarketplaces()
        self.audit: AuditLog | None = None
        self.alerts: AlertService | None = None

    @classmethod
    def load(cls, data_dir: str | None, *, lease_kind: str, read_only: bool = False) -> Runtime:
        return cls(AppContext.load(data_dir), lease_kind=lease_kind, read_only=read_only)

    # ------------------------------------------------------------------ accessors

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the runtime is not started")
        return self._store

    @property
    def engine(self) -> SyncEngine:
        if self._engine is None:
            raise RuntimeError("the runtime is not started")
        return self._engine

    @property
    def production(self) -> ProductionService:
        if self._production is None:
            raise RuntimeError("the runtime is not started")
        return self._production

    @property
    def disabled(self) -> dict[Platform, str]:
        return dict(self._built.disabled)

    @property
    def marketplaces(self) -> dict[Platform, Marketplace]:
        return dict(self._built.enabled)

    def health(self, platform: Platform) -> HealthRecorder | None:
        market = self._built.enabled.get(platform)
        client = client_of(market) if market is not None else None
        return getattr(client, "health", None)

    # ------------------------------------------------------------------ lifecycle

    def _health_sink(self, platform: Platform) -> Callable[[dict[str, Any]], None]:
        def sink(record: dict[str, Any]) -> None:
            if self._store is not None:
                self._store.log(HEALTH_LOG).append({"platform": platform.value, **record})

        return sink

    def open(self) -> None:
        """Blocking part of start-up: store, production, marketplaces, engine."""
        store = self.ctx.open_store()
        self._store = store
        self._production = ProductionService.open(
            store,
            self.ctx.data_dir,
            timezone=self.settings.timezone,
            clock=self.clock,
            catalog_path=self._catalog_path,
            printers_path=self._printers_path,
        )
        deps_for = make_deps_factory(
            self.ctx,
            clock=self.clock,
            rng_seed=self._rng_seed,
            transports=self._transports,
            health_sink=self._health_sink,
            rate_scale=self._rate_scale,
            client_overrides=self._client_overrides,
        )
        self._built = build_marketplaces(
            self.ctx,
            deps_for=deps_for,
            platforms=self._platforms,
            skip_config_check=self._skip_config_check,
        )
        for platform, factory in self._extra.items():
            self._built.enabled[platform] = factory(self)
        self._restore_buckets()
        production = self._production
        self._engine = SyncEngine(
            store,
            self._built.enabled,
            self.clock,
            poll_intervals={p: float(self.settings.poll_interval_for(p)) for p in MARKETPLACES},
            default_interval=float(self.settings.poll_interval),
            classify=production.classify_order,
            process_orders=self._production_sync,
            lease_kind=self.lease_kind,
            after_poll=lambda _p: self.save_buckets(),
        )
        for platform, reason in self._built.disabled.items():
            log.info("%s disabled: %s", platform.label, reason)
        self._engine.periodic.append(("archive-old-orders", ARCHIVE_EVERY, self._archive_old))
        install_inventory(self)
        install_messaging(self, ssl_context=self._smtp_ssl_context)
        self.audit = install_audit(self)
        self.alerts = install_alerts(self)

    async def _archive_old(self) -> None:
        """Move long-closed orders out of the hot files so every write stays small."""
        moved = await anyio.to_thread.run_sync(self.store.orders.archive_old, self.clock.now())
        if moved:
            log.info("archived %d closed order(s)", moved)

    def _production_sync(self, orders: list[Any]) -> None:
        try:
            self.production.sync_orders(orders)
        except Exception:  # production trouble must never stop orders from being stored
            log.exception("production queue update failed")

    def _restore_buckets(self) -> None:
        for platform, market in self._built.enabled.items():
            client = client_of(market)
            if client is None:
                continue
            state = self.store.meta.get(bucket_key(platform))
            if state:
                client.limiter.restore(state)

    def save_buckets(self) -> None:
        """Persist rate-limit buckets: a restart must not refill the marketplace's bucket."""
        if self._store is None:
            return
        for platform, market in self._built.enabled.items():
            client = client_of(market)
            if client is not None:
                self._store.meta.set(bucket_key(platform), client.limiter.state())

    def close(self) -> None:
        if self._store is not None:
            with contextlib.suppress(Exception):
                self.save_buckets()
            self._store.close()
            self._store = None

    @contextlib.asynccontextmanager
    async def started(self) -> AsyncIterator[Runtime]:
        await anyio.to_thread.run_sync(self.open)
        try:
            yield self
        finally:
            with anyio.CancelScope(shield=True):
                if self._engine is not None:
                    await self._engine.aclose()
                await anyio.to_thread.run_sync(self.close)
