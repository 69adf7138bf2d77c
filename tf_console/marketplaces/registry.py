"""Building the configured marketplaces: one place decides which platforms run.

A platform with missing credentials, or whose module refuses its configuration,
is *disabled with a reason* — the others run.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from tf_console.errors import UserError
from tf_console.marketplaces.base import Marketplace, MarketplaceError
from tf_console.marketplaces.deps import PlatformDeps
from tf_console.models import MARKETPLACES, Platform

if TYPE_CHECKING:
    from tf_console.context import AppContext

log = logging.getLogger(__name__)

PLATFORM_MODULES: dict[Platform, str] = {
    Platform.AMAZON: "tf_console.marketplaces.amazon",
    Platform.EBAY: "tf_console.marketplaces.ebay",
    Platform.ETSY: "tf_console.marketplaces.etsy",
}


@dataclass
class BuiltMarketplaces:
    enabled: dict[Platform, Marketplace] = field(default_factory=dict)
    disabled: dict[Platform, str] = field(default_factory=dict)


def build_marketplaces(
    ctx: AppContext,
    *,
    deps_for: Callable[[Platform], PlatformDeps],
    platforms: tuple[Platform, ...] = MARKETPLACES,
    skip_config_check: bool = False,
) -> BuiltMarketplaces:
    built = BuiltMarketplaces()
    for platform in platforms:
        if not skip_config_check:
            status = ctx.platform_status(platform)
            if not status.enabled:
                built.disabled[platform] = status.reason
                continue
        try:
            module = importlib.import_module(PLATFORM_MODULES[platform])
            built.enabled[platform] = module.from_deps(deps_for(platform))
        except (MarketplaceError, UserError) as exc:
            built.disabled[platform] = str(exc)
    return built


def make_deps_factory(
    ctx: AppContext,
    *,
    clock: Any,
    rng_seed: int | None = None,
    transports: Mapping[Platform, httpx.AsyncBaseTransport] | None = None,
    health_sink: Callable[[Platform], Callable[[dict[str, Any]], None]] | None = None,
    rate_scale: float = 1.0,
    client_overrides: Mapping[str, Any] | None = None,
) -> Callable[[Platform], PlatformDeps]:
    import random

    def deps_for(platform: Platform) -> PlatformDeps:
        return PlatformDeps(
            settings=ctx.settings,
            secret=ctx.secret,
            clock=clock,
            rng=random.Random(None if rng_seed is None else f"{rng_seed}:{platform.value}"),
            vault=ctx.vault(),
            transport=(transports or {}).get(platform),
            health_sink=health_sink(platform) if health_sink else None,
            rate_scale=rate_scale,
            client_overrides=dict(client_overrides or {}),
        )

    return deps_for
