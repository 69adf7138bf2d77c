"""The listing map: where each SKU's quantity lives on each marketplace.

Which listing SKUs carry a stock SKU comes from the catalog (``amazon``/``ebay``/
``etsy`` in its ``[stock."SKU"]`` table) or, by default, from the SKU itself and
the SKUs seen on order lines (:meth:`SkuPolicy.targets`).  This module discovers
what each marketplace holds under those SKUs — Amazon's listing (its
``productType`` and fulfilment channel, from ``getListingsItem``), eBay's
ItemIDs and variations (from ``GetSellerList``) — through the platform modules,
which cache those reads for ``MARKETPLACE_CACHE_TTL``.  Etsy's
listing/product/offering is resolved by the Etsy module at push time
(``getListingInventory``), and the push's answer names the listing.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

import anyio.to_thread
from pydantic import BaseModel, Field

from tf_console.clock import Clock
from tf_console.marketplaces.amazon import AmazonMarketplace
from tf_console.marketplaces.base import Marketplace, MarketplaceError
from tf_console.marketplaces.ebay import EbayMarketplace
from tf_console.models import Platform, UtcDatetime
from tf_console.store import Collection, Store

LISTINGS_COLLECTION = "stock_listings"


class ListingRecord(BaseModel):
    platform: Platform
    listing_sku: str
    found: bool
    detail: str  # a phrase for the stock table ("TOY_FIGURE, merchant-fulfilled")
    ids: list[str] = Field(default_factory=list)  # ASIN / ItemIDs
    held_by_marketplace: bool = False  # Amazon FBA: never pushed
    checked_at: UtcDatetime

    @property
    def key(self) -> str:
        return f"{self.platform.value}:{self.listing_sku.casefold()}"


class ListingDirectory:
    def __init__(
        self, store: Store, marketplaces: Mapping[Platform, Marketplace], clock: Clock, ttl: float
    ) -> None:
        self._records: Collection[ListingRecord] = store.collection(
            LISTINGS_COLLECTION, ListingRecord, key=lambda r: r.key
        )
        self._marketplaces = dict(marketplaces)
        self._clock = clock
        self._ttl = timedelta(seconds=max(60.0, ttl))

    def known(self) -> dict[str, ListingRecord]:
        return {r.key: r for r in self._records.all()}

    def _fresh(self, record: ListingRecord | None, now: datetime) -> bool:
        return record is not None and now - record.checked_at < self._ttl

    async def discover(self, platform: Platform, listing_sku: str) -> ListingRecord | None:
        """What ``platform`` holds under ``listing_sku`` (None where it cannot be asked)."""
        market = self._marketplaces.get(platform)
        now = self._clock.now()
        key = f"{platform.value}:{listing_sku.casefold()}"
        stored = await anyio.to_thread.run_sync(self._records.get, key)
        if self._fresh(stored, now):
            return stored
        try:
            if isinstance(market, AmazonMarketplace):
                found = await self._amazon(market, listing_sku, now)
            elif isinstance(market, EbayMarketplace):
                found = await self._ebay(market, listing_sku, now)
            else:
                return stored
        except MarketplaceError:
            return stored  # keep the last known answer; health shows the error
        await anyio.to_thread.run_sync(self._records.put, found)
        return found

    async def ebay_item_ids(self, listing_sku: str) -> list[str]:
        found = await self.discover(Platform.EBAY, listing_sku)
        return list(found.ids) if found is not None else []

    async def _amazon(self, market: AmazonMarketplace, sku: str, now: datetime) -> ListingRecord:
        listing = await market.listing(sku)
        if listing is None:
            return ListingRecord(
                platform=Platform.AMAZON, listing_sku=sku, found=False, detail="no listing", checked_at=now
            )
        channel = (
            "fulfilled by Amazon (never pushed)" if listing.fulfilled_by_amazon else "merchant-fulfilled"
        )
        detail = f"{listing.product_type or 'product type unknown'}, {channel}"
        if listing.asin:
            detail = f"ASIN {listing.asin}, {detail}"
        return ListingRecord(
            platform=Platform.AMAZON,
            listing_sku=sku,
            found=True,
            detail=detail,
            ids=[listing.asin] if listing.asin else [],
            held_by_marketplace=listing.fulfilled_by_amazon,
            checked_at=now,
        )

    async def _ebay(self, market: EbayMarketplace, sku: str, now: datetime) -> ListingRecord:
        targets = (await market.listing_targets()).get(sku, [])
        if not targets:
            return ListingRecord(
                platform=Platform.EBAY,
                listing_sku=sku,
                found=False,
                detail="no active fixed-price listing",
                checked_at=now,
            )
        ids = list(dict.fromkeys(t.item_id for t in targets))
        shown = ", ".join(f"{t.item_id}{' (variation)' if t.variation else ''}" for t in targets)
        return ListingRecord(
            platform=Platform.EBAY,
            listing_sku=sku,
            found=True,
            detail=f"ItemID {shown}",
            ids=ids,
            checked_at=now,
        )
