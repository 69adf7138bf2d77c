"""The outbox: every side effect on a marketplace, written down before it is sent.

An intent (confirm this shipment, set this quantity, send this message) is first
stored durably as an :class:`OutboxItem`; then the single sender (the process
holding the poller lease) delivers it and records the answer.  A call whose
outcome is unknown — the process died mid-call, the answer was lost — is never
re-sent blindly: the item goes to ``verifying`` and the sender reads the
marketplace (tracking numbers on the order) until it can decide.  A permanent
rejection is kept with the marketplace's words; nothing is silently dropped.
"""

from __future__ import annotations

import enum
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from pydantic import BaseModel, Field

from tf_console.audit import AuditHook, AuditLog
from tf_console.clock import Clock
from tf_console.marketplaces.base import (
    ConfirmState,
    Marketplace,
    MarketplaceError,
    OutcomeUnknown,
    PermanentError,
    PushState,
    ReauthNeeded,
    RemoteShipments,
    ShipmentResult,
    TransientError,
)
from tf_console.models import (
    Order,
    OrderStatus,
    Platform,
    Shipment,
    ShipmentState,
    UtcDatetime,
    order_key,
)
from tf_console.store import Collection, Store

log = logging.getLogger(__name__)


class OutboxKind(enum.StrEnum):
    SHIPMENT = "shipment"
    INVENTORY = "inventory"
    MESSAGE = "message"


class OutboxState(enum.StrEnum):
    PENDING = "pending"  # not sent, or known not to have taken effect: safe to send
    SENDING = "sending"  # written just before the call; found at start-up it means "outcome unknown"
    VERIFYING = "verifying"  # outcome unknown or accepted-but-not-visible: read back before anything else
    DONE = "done"
    REJECTED = "rejected"  # refused for good; ``answer`` holds the marketplace's words

    @property
    def is_active(self) -> bool:
        return self in (OutboxState.PENDING, OutboxState.SENDING, OutboxState.VERIFYING)


class OutboxEvent(BaseModel):
    at: UtcDatetime
    event: str
    detail: str = ""


class OutboxItem(BaseModel):
    item_id: str
    kind: OutboxKind
    platform: Platform
    order_id: str = ""
    sku: str = ""
    payload: dict[str, Any] = Field(default_factory=dict)
    state: OutboxState = OutboxState.PENDING
    attempts: int = 0
    verify_reads: int = 0
    created_at: UtcDatetime
    updated_at: UtcDatetime
    next_attempt_at: UtcDatetime
    unknown_since: UtcDatetime | None = None
    answer: str = ""
    history: list[OutboxEvent] = Field(default_factory=list)

    def note(self, at: datetime, event: str, detail: str = "") -> None:
        self.history.append(OutboxEvent(at=at, event=event, detail=detail))
        if len(self.history) > 50:  # bounded: a long-failing item must not grow without limit
            del self.history[1:-40]
        self.updated_at = at

    @property
    def shipment(self) -> Shipment:
        return Shipment.model_validate(self.payload["shipment"])


def outbox_collection(store: Store) -> Collection[OutboxItem]:
    # payload can carry a customer message: encrypted like other PII.
    return store.collection(
        "outbox", OutboxItem, key=lambda i: i.item_id, encrypted_fields=frozenset({"payload"})
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    base_delay: float = 5.0
    max_delay: float = 900.0
    #: how long an unknown outcome is watched (and how many reads) before a re-send is allowed
    verify_wait: float = 120.0
    verify_reads: int = 2
    verify_interval: float = 30.0
    #: how long an accepted-but-not-visible confirmation is watched before it is reported
    accepted_patience: float = 3600.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        # Full jitter: a random delay in [0, min(max, base·2^attempt)].
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** max(0, attempt - 1)))


OutboxListener = Callable[[OutboxItem], None]
OutboxHandler = Callable[["OutboxSender", OutboxItem], Awaitable[OutboxItem]]


def shipment_status_after(order: Order) -> OrderStatus:
    if order.status is OrderStatus.CANCELLED:
        return order.status
    if all(i.quantity_unshipped == 0 for i in order.items) and order.items:
        return OrderStatus.SHIPPED
    if any(i.quantity_shipped > 0 for i in order.items):
        return OrderStatus.PARTIALLY_SHIPPED
    return order.status


def apply_confirmed_shipment(order: Order, shipment: Shipment, at: datetime, answer: str = "") -> Order:
    """The order after the marketplace accepted ``shipment``: lines shipped, status moved on."""
    order = order.model_copy(deep=True)
    existing = next((s for s in order.shipments if s.shipment_id == shipment.shipment_id), None)
    already_confirmed = existing is not None and existing.state is ShipmentState.CONFIRMED
    record = shipment.model_copy(
        update={"state": ShipmentState.CONFIRMED, "updated_at": at, "marketplace_answer": answer}
    )
    order.shipments = [s for s in order.shipments if s.shipment_id != shipment.shipment_id] + [record]
    if not already_confirmed:
        wanted = {ln.line_id: ln.quantity for ln in shipment.lines}
        for item in order.items:
            qty = wanted.get(item.line_id, item.quantity_unshipped if not wanted else 0)
            item.quantity_shipped = min(item.quantity, item.quantity_shipped + qty)
    if shipment.tracking not in order.marketplace_tracking:
        order.marketplace_tracking.append(shipment.tracking)
    order.status = shipment_status_after(order)
    return order


def set_shipment_state(
    order: Order, shipment: Shipment, state: ShipmentState, at: datetime, answer: str
) -> Order:
    order = order.model_copy(deep=True)
    record = shipment.model_copy(update={"state": state, "updated_at": at, "marketplace_answer": answer})
    order.shipments = [s for s in order.shipments if s.shipment_id != shipment.shipment_id] + [record]
    return order


class OutboxSender:
    """Delivers due outbox items, one at a time per platform, exactly once.

    Only the process holding the poller lease runs a sender.
    """

    def __init__(
        self,
        store: Store,
        marketplaces: Mapping[Platform, Marketplace],
        clock: Clock,
        *,
        policy: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.items = outbox_collection(store)
        self.marketplaces = marketplaces
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.rng = rng or random.Random()
        self.listeners: list[OutboxListener] = []
        # Kinds delivered by other features (customer messages…) register a handler here.
        self.handlers: dict[OutboxKind, OutboxHandler] = {}
        # Every shipment answer (confirmed, rejected, unknown, retry) goes to the audit trail.
        self.audit: AuditHook | None = AuditLog(store, clock).try_record

    def register(self, kind: OutboxKind, handler: OutboxHandler) -> None:
        """Deliver items of ``kind`` with ``handler(sender, item) -> item`` (it must save the item)."""
        self.handlers[kind] = handler

    # ----------------------------------------------------------------- recovery

    async def recover(self) -> int:
        """At start-up: an item left ``sending`` by a dead process has an unknown outcome."""
        now = self.clock.now()
        recovered = 0

        def fix(items: dict[str, OutboxItem]) -> None:
            nonlocal recovered
            for item in items.values():
                if item.state is OutboxState.SENDING:
                    item.state = OutboxState.VERIFYING
                    item.unknown_since = item.unknown_since or now
                    item.verify_reads = 0
                    item.next_attempt_at = now
                    item.note(now, "recovered", "found in flight at start-up; reading the marketplace first")
                    recovered += 1

        await anyio.to_thread.run_sync(self.items.mutate, fix)
        return recovered

    # ----------------------------------------------------------------- delivery

    def due(self, now: datetime | None = None) -> list[OutboxItem]:
        now = now or self.clock.now()
        items = [i for i in self.items.all() if i.state.is_active and i.next_attempt_at <= now]
        items.sort(key=lambda i: (i.next_attempt_at, i.created_at))
        return items

    def next_due_at(self) -> datetime | None:
        times = [i.next_attempt_at for i in self.items.all() if i.state.is_active]
        return min(times) if times else None

    async def deliver_due(self, platforms: set[Platform] | None = None) -> list[OutboxItem]:
        done: list[OutboxItem] = []
        items: list[OutboxItem] = await anyio.to_thread.run_sync(self.due)
        for item in items:
            if platforms is not None and item.platform not in platforms:
                continue
            if item.platform not in self.marketplaces:
                continue
            done.append(await self.deliver(item.item_id))
        return done

    async def deliver(self, item_id: str) -> OutboxItem:
        item: OutboxItem | None = await anyio.to_thread.run_sync(self.items.get, item_id)
        if item is None:
            raise KeyError(item_id)
        if not item.state.is_active:
            return item
        if item.kind is OutboxKind.SHIPMENT:
            if item.state in (OutboxState.VERIFYING, OutboxState.SENDING):
                return await self._verify_shipment(item)
            return await self._send_shipment(item)
        if item.kind in self.handlers:
            return await self.handlers[item.kind](self, item)
        if item.kind is OutboxKind.INVENTORY:
            return await self._send_inventory(item)
        raise ValueError(f"no handler delivers outbox items of kind {item.kind}")

    async def save(self, item: OutboxItem) -> None:
        """Store ``item`` durably and tell the listeners (for handlers of other kinds)."""
        await self._save(item)

    async def _save(self, item: OutboxItem) -> None:
        await anyio.to_thread.run_sync(self.items.put, item)
        for listener in list(self.listeners):
            try:
                listener(item)
            except Exception:  # a listener (the UI) must never break delivery
                log.exception("outbox listener failed")

    async def _audit(self, action: str, item: OutboxItem, outcome: str, detail: str) -> None:
        if self.audit is None:
            return
        shipment_id = item.payload.get("shipment", {}).get("shipment_id", "")
        words = f"shipment {shipment_id}: {detail}" if shipment_id else detail
        try:
            await anyio.to_thread.run_sync(
                self.audit, action, order_key(item.platform, item.order_id), outcome, words
            )
        except Exception as exc:  # the answer is stored; the trail missing a line must not undo it
            log.warning("could not record %s in the audit trail: %s", action, type(exc).__name__)

    async def _order(self, item: OutboxItem) -> Order | None:
        order: Order | None = await anyio.to_thread.run_sync(
            self.store.orders.get, item.platform, item.order_id
        )
        return order

    async def _update_order(self, item: OutboxItem, fn: Callable[[Order], Order]) -> None:
        await anyio.to_thread.run_sync(self.store.orders.update, item.platform, item.order_id, fn)

    async def _send_shipment(self, item: OutboxItem) -> OutboxItem:
        now = self.clock.now()
        order = await self._order(item)
        if order is None:
            item.state = OutboxState.REJECTED
            item.answer = f"Order {item.order_id} is no longer in the store; nothing was sent."
            item.note(now, "rejected", item.answer)
            await self._save(item)
            await self._audit("ship.rejected", item, "not-sent", item.answer)
            return item
        shipment = item.shipment
        if order.status is OrderStatus.CANCELLED or order.cancel_requested:
            item.state = OutboxState.REJECTED
            item.answer = (
                f"{order.platform.label} order {order.order_id} was cancelled"
                " (or the buyer asked to cancel); the shipment was not sent."
            )
            item.note(now, "rejected", item.answer)
            await self._update_order(
                item, lambda o: set_shipment_state(o, shipment, ShipmentState.REJECTED, now, item.answer)
            )
            await self._save(item)
            await self._audit("ship.rejected", item, "not-sent", item.answer)
            return item
        # Durably mark "sending" BEFORE the call: a crash from here on means "outcome unknown".
        item.state = OutboxState.SENDING
        item.attempts += 1
        item.note(now, "sending", f"attempt {item.attempts}")
        await self._save(item)
        market = self.marketplaces[item.platform]
        try:
            result: ShipmentResult = await market.confirm_shipment(order, shipment)
        except OutcomeUnknown as exc:
            return await self._to_verifying(item, f"no answer from the marketplace: {exc}")
        except ReauthNeeded as exc:
            return await self._retry_later(item, str(exc), long=True)
        except PermanentError as exc:
            return await self._reject_shipment(item, shipment, str(exc))
        except TransientError as exc:
            return await self._retry_later(item, str(exc))
        except MarketplaceError as exc:
            return await self._to_verifying(item, str(exc))
        except Exception as exc:  # unknown failure after the call may have left: verify, never re-send
            log.exception("shipment confirmation failed unexpectedly")
            return await self._to_verifying(item, f"unexpected error ({type(exc).__name__})")
        return await self._apply_result(item, shipment, result)

    async def _apply_result(self, item: OutboxItem, shipment: Shipment, result: ShipmentResult) -> OutboxItem:
        now = self.clock.now()
        if result.state is ConfirmState.CONFIRMED:
            await self._update_order(
                item, lambda o: apply_confirmed_shipment(o, shipment, now, result.answer)
            )
            item.state = OutboxState.DONE
            item.answer = result.answer or "The marketplace shows the shipment."
            item.note(now, "confirmed", item.answer)
        elif result.state is ConfirmState.REJECTED:
            return await self._reject_shipment(item, shipment, result.answer)
        else:  # accepted, not visible yet: read it back later
            item.state = OutboxState.VERIFYING
            item.unknown_since = now
            item.verify_reads = 0
            item.answer = result.answer or "Accepted; waiting for the marketplace to show it."
            item.next_attempt_at = now + timedelta(seconds=self.policy.verify_interval)
            item.note(now, "accepted", item.answer)
            item.payload["accepted"] = True
        await self._save(item)
        if item.state is OutboxState.DONE:
            await self._audit("ship.confirmed", item, "ok", item.answer)
        else:
            await self._audit("ship.accepted", item, "accepted", item.answer)
        return item

    async def _reject_shipment(self, item: OutboxItem, shipment: Shipment, answer: str) -> OutboxItem:
        now = self.clock.now()
        item.state = OutboxState.REJECTED
        item.answer = answer or "The marketplace refused the shipment."
        item.note(now, "rejected", item.answer)
        await self._update_order(
            item, lambda o: set_shipment_state(o, shipment, ShipmentState.REJECTED, now, item.answer)
        )
        await self._save(item)
        await self._audit("ship.rejected", item, "rejected", item.answer)
        return item

    async def _retry_later(self, item: OutboxItem, why: str, *, long: bool = False) -> OutboxItem:
        now = self.clock.now()
        item.state = OutboxState.PENDING
        delay = self.policy.max_delay if long else self.policy.backoff(item.attempts, self.rng)
        item.next_attempt_at = now + timedelta(seconds=max(1.0, delay))
        item.answer = why
        item.note(now, "retry", f"{why} — next try at {item.next_attempt_at:%H:%M:%S} UTC")
        await self._save(item)
        if item.kind is OutboxKind.SHIPMENT:
            await self._audit("ship.retry", item, "failed", why)
        return item

    async def _to_verifying(self, item: OutboxItem, why: str) -> OutboxItem:
        now = self.clock.now()
        item.state = OutboxState.VERIFYING
        item.unknown_since = now
        item.verify_reads = 0
        item.answer = why
        item.next_attempt_at = now + timedelta(seconds=self.policy.verify_interval)
        item.note(now, "unknown", f"{why}; reading the order back before deciding")
        await self._save(item)
        if item.kind is OutboxKind.SHIPMENT:
            shipment = item.shipment
            await self._update_order(
                item, lambda o: set_shipment_state(o, shipment, ShipmentState.UNKNOWN, now, why)
            )
            await self._audit("ship.unknown", item, "unknown", why)
        return item

    async def _verify_shipment(self, item: OutboxItem) -> OutboxItem:
        now = self.clock.now()
        shipment = item.shipment
        order = await self._order(item)
        if order is None:
            return await self._reject_shipment(item, shipment, "The order is no longer in the store.")
        market = self.marketplaces[item.platform]
        try:
            remote: RemoteShipments = await market.read_shipments(order)
        except MarketplaceError as exc:
            item.next_attempt_at = now + timedelta(
                seconds=self.policy.backoff(item.verify_reads + 1, self.rng) + 1
            )
            item.note(now, "verify-failed", f"could not read the order back: {exc}")
            await self._save(item)
            return item
        item.verify_reads += 1
        ours = _norm(shipment.tracking)
        seen = [_norm(t) for t in remote.tracking_numbers]
        if ours in seen:
            item.note(now, "verified", "the marketplace shows our tracking number")
            return await self._apply_result(
                item, shipment, ShipmentResult(ConfirmState.CONFIRMED, "The marketplace shows the shipment.")
            )
        if remote.shipped:
            # Fully shipped on the marketplace without our number: someone shipped it elsewhere
            # (e.g. on the marketplace's site). Sending ours now would be a second shipment.
            known = {_norm(s.tracking) for s in order.shipments if s.state is ShipmentState.CONFIRMED}
            foreign = [t for t in remote.tracking_numbers if _norm(t) not in known]
            shown = f"with tracking {', '.join(foreign)}" if foreign else "without our tracking number"
            answer = (
                f"{item.platform.label} already shows order {item.order_id} shipped {shown}; "
                "nothing more was sent. Check whether someone shipped it on the marketplace's site."
            )
            return await self._reject_shipment(item, shipment, answer)
        if not remote.order_found and item.verify_reads < self.policy.verify_reads:
            item.next_attempt_at = now + timedelta(seconds=self.policy.verify_interval)
            item.note(now, "verify", "order not found on the marketplace yet; reading again")
            await self._save(item)
            return item
        waited = (now - (item.unknown_since or now)).total_seconds()
        if item.payload.get("accepted"):
            # The marketplace said yes; it is slow to show it. Never re-send an accepted call.
            if waited < self.policy.accepted_patience:
                item.next_attempt_at = now + timedelta(seconds=self.policy.verify_interval)
                item.note(now, "verify", "accepted, not visible yet")
                await self._save(item)
                return item
            item.state = OutboxState.DONE
            item.answer = "Accepted by the marketplace but still not visible after an hour; check its site."
            item.note(now, "accepted-unverified", item.answer)
            await self._update_order(item, lambda o: apply_confirmed_shipment(o, shipment, now, item.answer))
            await self._save(item)
            await self._audit("ship.confirmed", item, "unverified", item.answer)
            return item
        if item.verify_reads < self.policy.verify_reads or waited < self.policy.verify_wait:
            item.next_attempt_at = now + timedelta(seconds=self.policy.verify_interval)
            item.note(now, "verify", f"not visible yet (read {item.verify_reads}); waiting before deciding")
            await self._save(item)
            return item
        # Read back several times over the wait: the earlier call did not take effect. Safe to send.
        item.state = OutboxState.PENDING
        item.unknown_since = None
        item.next_attempt_at = now
        item.note(now, "resend-allowed", f"not visible after {item.verify_reads} reads over {waited:.0f} s")
        await self._save(item)
        return await self._send_shipment(item)

    # ----------------------------------------------------------------- inventory

    async def _send_inventory(self, item: OutboxItem) -> OutboxItem:
        now = self.clock.now()
        quantity = int(item.payload["quantity"])
        item.state = OutboxState.SENDING
        item.attempts += 1
        item.note(now, "sending", f"quantity {quantity}")
        await self._save(item)
        market = self.marketplaces[item.platform]
        try:
            result = await market.set_quantity(item.sku, quantity)
        except (TransientError, OutcomeUnknown) as exc:
            # Setting an absolute quantity is idempotent: re-sending the same value is safe.
            return await self._retry_later(item, str(exc))
        except ReauthNeeded as exc:
            return await self._retry_later(item, str(exc), long=True)
        except MarketplaceError as exc:
            item.state = OutboxState.REJECTED
            item.answer = str(exc)
            item.note(now, "rejected", item.answer)
            await self._save(item)
            return item
        item.answer = result.answer
        item.state = OutboxState.REJECTED if result.state is PushState.REJECTED else OutboxState.DONE
        item.payload["push_state"] = result.state.value
        item.note(self.clock.now(), result.state.value, result.answer)
        await self._save(item)
        return item


def _norm(tracking: str) -> str:
    return "".join(tracking.split()).upper()
