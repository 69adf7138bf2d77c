"""An in-memory marketplace for sync-engine unit tests (the sandbox tests cover the wire)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from tf_console.clock import FakeClock
from tf_console.marketplaces.base import (
    ConfirmState,
    CredentialCheck,
    OrderPage,
    OutcomeUnknown,
    PermanentError,
    PushResult,
    PushState,
    RemoteShipments,
    ShipmentResult,
    TransientError,
)
from tf_console.models import (
    Address,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    Shipment,
)


def make_order(
    n: int,
    when: datetime,
    *,
    platform: Platform = Platform.TEST,
    status: OrderStatus = OrderStatus.UNSHIPPED,
    qty: int = 1,
    sku: str = "PRT-DRAGON-S",
) -> Order:
    return Order(
        platform=platform,
        order_id=f"T-{n:05d}",
        status=status,
        raw_status=status.value,
        created_at=when,
        updated_at=when,
        ship_by=when + timedelta(days=3),
        currency="USD",
        total=Money(amount=Decimal("24.50") * qty, currency="USD"),
        items=[
            LineItem(
                line_id=f"L{n}-1",
                sku=sku,
                title="Articulated dragon, small",
                quantity=qty,
                unit_price=Money(amount=Decimal("24.50"), currency="USD"),
                personalisation="Happy birthday Mira",
            )
        ],
        buyer=Address(name="Jane Buyer", line1="1 Main St", city="Springfield", country="US"),
    )


class FakeMarket:
    platform = Platform.TEST
    max_backfill_days: int | None = 90
    min_poll_interval = 0.0

    def __init__(self, clock: FakeClock, page_size: int = 3) -> None:
        self.clock = clock
        self.orders: dict[str, Order] = {}
        self.page_size = page_size
        self.requests: list[str] = []
        self.confirm_calls: list[tuple[str, str]] = []
        self.hidden_updates: set[str] = set()  # changes the modified-since filter does not surface
        self.fail_fetch: Exception | None = None
        self.confirm_behaviour: str = "ok"  # ok | lose-answer | transient | reject | accepted
        self.visible_after_reads = 0  # accepted confirmations show up after this many reads

    def add(self, order: Order) -> None:
        self.orders[order.order_id] = order

    def update(self, order_id: str, *, hidden: bool = False, **changes: object) -> None:
        o = self.orders[order_id].model_copy(update=changes)
        if not hidden:
            o = o.model_copy(update={"updated_at": self.clock.now()})
        else:
            self.hidden_updates.add(order_id)
        self.orders[order_id] = o

    async def fetch_orders(
        self, since: datetime, *, until: datetime | None = None
    ) -> AsyncIterator[OrderPage]:
        self.requests.append(f"fetch since={since.isoformat()}")
        if self.fail_fetch is not None:
            raise self.fail_fetch
        found = sorted((o for o in self.orders.values() if o.updated_at >= since), key=lambda o: o.updated_at)
        if not found:
            yield OrderPage(orders=[], page_number=1, total_pages=1)
            return
        pages = [found[i : i + self.page_size] for i in range(0, len(found), self.page_size)]
        for n, page in enumerate(pages, 1):
            if n > 1:
                self.requests.append("fetch next page")
            yield OrderPage(
                orders=[o.model_copy(deep=True) for o in page], page_number=n, total_pages=len(pages)
            )

    async def fetch_orders_by_id(self, order_ids: Sequence[str]) -> list[Order]:
        self.requests.append(f"by-id {len(order_ids)}")
        return [self.orders[i].model_copy(deep=True) for i in order_ids if i in self.orders]

    async def confirm_shipment(self, order: Order, shipment: Shipment) -> ShipmentResult:
        self.confirm_calls.append((order.order_id, shipment.tracking))
        behaviour = self.confirm_behaviour
        if behaviour == "transient":
            self.confirm_calls.pop()  # never reached the marketplace
            raise TransientError("Test marketplace is throttling (429); try later.")
        if behaviour == "reject":
            raise PermanentError("Test marketplace says: A tracking number is required.")
        self._apply(order.order_id, shipment)
        if behaviour == "lose-answer":
            raise OutcomeUnknown("The connection dropped before the answer arrived.")
        if behaviour == "accepted":
            return ShipmentResult(ConfirmState.PENDING, "accepted")
        return ShipmentResult(ConfirmState.CONFIRMED, "shipped")

    def _apply(self, order_id: str, shipment: Shipment) -> None:
        o = self.orders[order_id]
        tracking = [*o.marketplace_tracking, shipment.tracking]
        self.update(order_id, status=OrderStatus.SHIPPED, marketplace_tracking=tracking)

    async def read_shipments(self, order: Order) -> RemoteShipments:
        self.requests.append(f"read {order.order_id}")
        remote = self.orders.get(order.order_id)
        if remote is None:
            return RemoteShipments(order_found=False)
        if self.visible_after_reads > 0:
            self.visible_after_reads -= 1
            return RemoteShipments(order_found=True, tracking_numbers=[], shipped=False)
        return RemoteShipments(
            order_found=True,
            tracking_numbers=list(remote.marketplace_tracking),
            shipped=remote.status is OrderStatus.SHIPPED,
            order=remote,
        )

    async def set_quantity(self, sku: str, quantity: int) -> PushResult:
        return PushResult(PushState.APPLIED, f"{sku}={quantity}")

    async def check_credentials(self) -> CredentialCheck:
        return CredentialCheck(True, "Test marketplace credentials work.")

    async def aclose(self) -> None:
        return None
