"""Which SKUs are synced, and how: the catalog's ``[stock."SKU"]`` tables over the shop-wide defaults."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tf_console.config import Settings
from tf_console.models import Platform
from tf_console.production.catalog import Catalog, StockSettings


@dataclass(frozen=True, slots=True)
class InventoryDefaults:
    buffer: int = 0
    push_delay: float = 30.0
    lead_days: float = 5.0
    made_to_order_max: int = 10
    cache_ttl: float = 300.0

    @classmethod
    def from_settings(cls, settings: Settings) -> InventoryDefaults:
        return cls(
            buffer=settings.stock_buffer,
            push_delay=float(settings.stock_push_delay),
            lead_days=float(settings.made_to_order_lead_days),
            made_to_order_max=settings.made_to_order_max,
            cache_ttl=float(settings.marketplace_cache_ttl),
        )


@dataclass(frozen=True, slots=True)
class SkuPolicy:
    """Everything the planner needs to know about one SKU."""

    sku: str
    buffer: int
    sync: bool = True
    made_to_order: bool = False
    max: int = 0
    lead: timedelta = timedelta(days=5)
    #: per marketplace: the listing SKUs written in the catalog (an empty tuple = never push there)
    overrides: dict[Platform, tuple[str, ...]] | None = None

    def targets(self, platform: Platform, seen: list[str]) -> list[str]:
        """The listing SKUs on ``platform`` that carry this SKU's quantity.

        The catalog's list when it has one; otherwise this SKU itself plus every other
        SKU seen on that marketplace's order lines that the catalog maps to it.
        """
        if not self.sync:
            return []
        if self.overrides is not None and platform in self.overrides:
            return list(self.overrides[platform])
        found: dict[str, str] = {self.sku.casefold(): self.sku}
        for listing_sku in seen:
            if listing_sku.strip():
                found.setdefault(listing_sku.strip().casefold(), listing_sku.strip())
        return list(found.values())


def policy_for(sku: str, catalog: Catalog, defaults: InventoryDefaults) -> SkuPolicy:
    written: StockSettings | None = catalog.stock_settings(sku)
    if written is None:
        return SkuPolicy(sku=sku, buffer=defaults.buffer, lead=timedelta(days=defaults.lead_days))
    return SkuPolicy(
        sku=written.sku,
        buffer=written.buffer if written.buffer is not None else defaults.buffer,
        sync=written.sync,
        made_to_order=written.made_to_order,
        max=written.max if written.max is not None else defaults.made_to_order_max,
        lead=timedelta(days=written.lead_days if written.lead_days is not None else defaults.lead_days),
        overrides=dict(written.listings),
    )


def made_to_order_skus(catalog: Catalog) -> list[str]:
    return [s.sku for s in catalog.stock.values() if s.made_to_order and s.sync]
