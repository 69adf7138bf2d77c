"""``MarketplaceIntegrationService`` — the integration guide's API, in Python.

``await service.get_all_orders(days=7)`` reads every configured platform at once
and returns the orders; one platform failing never cancels or loses the others:
its error is kept in ``service.errors`` (and in that platform's health).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

import anyio

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.marketplaces.base import Marketplace, MarketplaceError
from tf_console.models import Order, Platform

log = logging.getLogger(__name__)


class MarketplaceIntegrationService:
    def __init__(self, marketplaces: Mapping[Platform, Marketplace], clock: Clock = SYSTEM_CLOCK) -> None:
        self.marketplaces = dict(marketplaces)
        self.clock = clock
        self.errors: dict[Platform, str] = {}

    async def get_all_orders(self, days: int = 7) -> list[Order]:
        since = self.clock.now() - timedelta(days=days)
        found: dict[Platform, list[Order]] = {}
        self.errors = {}

        async def one(platform: Platform, market: Marketplace) -> None:
            orders: list[Order] = []
            try:
                async for page in market.fetch_orders(since):
                    orders.extend(page.orders)
            except MarketplaceError as exc:
                self.errors[platform] = exc.sentence
            except Exception as exc:  # caught here so the task group never cancels the others
                log.exception("reading %s orders failed", platform.value)
                self.errors[platform] = f"unexpected {type(exc).__name__}; see the log."
            found[platform] = orders

        async with anyio.create_task_group() as tg:
            for platform, market in self.marketplaces.items():
                tg.start_soon(one, platform, market)
        merged = [o for p in self.marketplaces for o in found.get(p, [])]
        merged.sort(key=lambda o: o.created_at, reverse=True)
        return merged
