"""Turning "ship this order" into a validated shipment intent in the outbox.

Validation happens before anything is written: an unknown order, nothing left to
ship, an FBA or cancelled order, an empty or mistyped tracking number — each is
a sentence and nothing changes.  The intent is written to the outbox first and
the order's shipment record second, both under the store lock; the outbox item
carries the whole shipment, so a crash between the two writes loses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from tf_console.audit import AuditLog
from tf_console.carriers import CarrierFamily, check_tracking, find_carrier
from tf_console.clock import Clock
from tf_console.errors import UserError
from tf_console.models import (
    FulfilledBy,
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentLine,
    ShipmentState,
)
from tf_console.store import Store
from tf_console.sync.outbox import OutboxItem, OutboxKind, OutboxState, outbox_collection


@dataclass(slots=True)
class ShipRequest:
    platform: Platform
    order_id: str
    carrier: str
    tracking: str
    carrier_name: str = ""  # free text when the carrier is not on the platform's list
    lines: list[tuple[str, int | None]] = field(default_factory=list)  # (line_id, qty or None = all)
    force: bool = False  # accept a tracking number that fails its carrier's check digit
    shipped_at: datetime | None = None


class AlreadyShipped(UserError):
    """The same shipment was already recorded: nothing is sent again (not an error)."""

    exit_code = 0


def parse_item_arg(text: str) -> tuple[str, int | None]:
    line_id, sep, qty = text.partition(":")
    if not line_id:
        raise UserError(f"--item {text!r}: give a line id, optionally with :QUANTITY.")
    if not sep:
        return line_id, None
    if not qty.isdigit() or int(qty) <= 0:
        raise UserError(f"--item {text!r}: the quantity after ':' must be a whole number above 0.")
    return line_id, int(qty)


def _resolve_carrier(platform: Platform, carrier: str, carrier_name: str) -> tuple[str, str, CarrierFamily]:
    if not carrier.strip():
        raise UserError("Choose a carrier (--carrier).")
    found = find_carrier(platform, carrier)
    if found is not None and found.code.lower() != "other":
        return found.code, carrier_name or found.label, found.family
    # Not on the platform's list: each platform has its own way to say "other".
    name = carrier_name or carrier
    family = CarrierFamily.OTHER
    by_family = {f.value: f for f in CarrierFamily}
    family = by_family.get(name.strip().lower(), family)
    if platform is Platform.AMAZON:
        return "Other", name, family
    if platform is Platform.ETSY:
        return "other", name, family
    return name, name, family


def plan_shipment(order: Order, req: ShipRequest, now: datetime) -> Shipment:
    """Validate ``req`` against ``order`` and build the shipment to record. Raises UserError."""
    where = f"{order.platform.label} order {order.order_id}"
    tracking = req.tracking.strip()
    for s in order.shipments:
        if (
            s.state is not ShipmentState.REJECTED
            and "".join(s.tracking.split()).upper() == "".join(tracking.split()).upper()
        ):
            raise AlreadyShipped(
                f"{where} already has a shipment with tracking {s.tracking} ({s.state.value}); "
                "nothing was sent."
            )
    if order.fulfilled_by is FulfilledBy.MARKETPLACE:
        raise UserError(
            f"{where} is fulfilled by Amazon (FBA): Amazon ships it, so there is nothing to confirm."
        )
    if order.status is OrderStatus.CANCELLED:
        raise UserError(f"{where} is cancelled; it must not be shipped.")
    if order.cancel_requested:
        raise UserError(f"The buyer asked to cancel {where}; resolve the request on the marketplace first.")
    if order.status is OrderStatus.PENDING:
        raise UserError(f"{where} is not paid yet ({order.raw_status or 'pending'}); wait until it is.")
    in_flight = [s for s in order.shipments if s.state in (ShipmentState.REQUESTED, ShipmentState.UNKNOWN)]
    if in_flight:
        raise AlreadyShipped(
            f"{where} already has a shipment being confirmed (tracking {in_flight[0].tracking}); "
            "nothing more was sent — wait for its answer."
        )
    unshipped = {i.line_id: i.quantity_unshipped for i in order.items}
    if order.status is OrderStatus.SHIPPED or not any(unshipped.values()):
        raise UserError(f"{where} has nothing left to ship; nothing was sent.")
    lines: list[ShipmentLine] = []
    for line_id, qty in req.lines:
        if line_id not in unshipped:
            known = ", ".join(unshipped) or "none"
            raise UserError(f"{where} has no line {line_id!r} (lines: {known}).")
        left = unshipped[line_id]
        want = left if qty is None else qty
        if want > left or left == 0:
            raise UserError(f"Line {line_id} of {where} has {left} unit(s) left to ship, not {want}.")
        lines.append(ShipmentLine(line_id=line_id, quantity=want))
    _check_partial_supported(order, lines, unshipped)
    code, name, family = _resolve_carrier(order.platform, req.carrier, req.carrier_name)
    check = check_tracking(family, tracking)
    if not check.ok and (check.hard or not req.force):
        raise UserError(check.sentence)
    if not lines:
        lines = [ShipmentLine(line_id=lid, quantity=q) for lid, q in unshipped.items() if q > 0]
    number = 1 + max((int(s.shipment_id) for s in order.shipments if s.shipment_id.isdigit()), default=0)
    return Shipment(
        shipment_id=str(number),  # also Amazon's packageReferenceId: a positive number unique per order
        carrier=code,
        carrier_name=name,
        tracking=tracking,
        shipped_at=req.shipped_at or now,
        lines=lines,
        state=ShipmentState.REQUESTED,
        requested_at=now,
        updated_at=now,
    )


def _check_partial_supported(order: Order, lines: list[ShipmentLine], unshipped: dict[str, int]) -> None:
    """What each marketplace can express; refused here, before anything is queued."""
    remaining = {lid for lid, q in unshipped.items() if q > 0}
    chosen = {ln.line_id for ln in lines}
    if not lines or (chosen == remaining and all(ln.quantity == unshipped[ln.line_id] for ln in lines)):
        return  # everything left: every platform can do that
    where = f"{order.platform.label} order {order.order_id}"
    if order.platform is Platform.ETSY:
        raise UserError(
            f"Etsy marks the whole order shipped with one tracking number, so {where} cannot be "
            "shipped line by line; ship it without --item."
        )
    if order.platform is Platform.EBAY:
        partial = [ln for ln in lines if ln.quantity != unshipped[ln.line_id]]
        if partial or len(lines) > 1:
            raise UserError(
                f"eBay marks whole order lines shipped: for {where} ship one whole line at a time "
                "(--item LINE_ID without a quantity) or the whole order."
            )


def shipment_item_id(order: Order, shipment: Shipment) -> str:
    return f"ship:{order.key}:{shipment.shipment_id}"


def enqueue_shipment(store: Store, req: ShipRequest, clock: Clock) -> OutboxItem:
    """Validate and durably record a shipment intent. Raises UserError; writes nothing then."""
    outbox = outbox_collection(store)
    with store.lock():
        order = store.orders.get(req.platform, req.order_id)
        if order is None:
            raise UserError(
                f"No {req.platform.label} order {req.order_id} is in the store; "
                "run `tf-console sync --once` if it is new."
            )
        now = clock.now()
        shipment = plan_shipment(order, req, now)
        item = OutboxItem(
            item_id=shipment_item_id(order, shipment),
            kind=OutboxKind.SHIPMENT,
            platform=order.platform,
            order_id=order.order_id,
            payload={"shipment": shipment.model_dump(mode="json")},
            state=OutboxState.PENDING,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
        )
        item.note(now, "requested", f"{shipment.carrier} {shipment.tracking}")
        outbox.put(item)

        def add(o: Order) -> Order:
            o = o.model_copy(deep=True)
            o.shipments.append(shipment)
            return o

        store.orders.update(order.platform, order.order_id, add)
    units = sum(line.quantity for line in shipment.lines)
    AuditLog(store, clock).try_record(
        "ship.requested",
        order.key,
        "requested",
        f"shipment {shipment.shipment_id} via {shipment.carrier_name or shipment.carrier}, {units} unit(s)",
    )
    return item
