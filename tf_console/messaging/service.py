"""Customer updates: what is due, queued once in the outbox, delivered once, recorded per order.

How a message comes to be
-------------------------
1. **Triggers.**  Every scan (the poller runs one a minute) looks at open orders,
   their print jobs, the schedule and the shipments the console confirmed, and
   finds the events that happened for each order: queued, printing, shipped,
   delayed (the order will miss its ship-by date, or missed it), customization.
   Only events the owner opted into count, and only those that happened after
   the owner opted in (an order created, a plate started, a shipment requested,
   a ship-by date falling after that moment), so turning an event on never
   messages every old order.
2. **Once.**  Each (order, event) has one outbox item id, ``msg:<platform>:<order>:<event>``;
   an id that exists is never queued again, whatever its fate.  The rendered
   subject and body, and the recipient, go into the item's payload, which the
   outbox stores encrypted; they are removed when the order's buyer data is
   purged.
3. **Delivery** (:meth:`MessagingService.deliver`, the outbox handler for
   ``OutboxKind.MESSAGE``): stale messages are dropped with a reason (the order
   was cancelled, or shipped before a "queued" update went out, or the event was
   turned off, or three days passed); Amazon is asked first whether it allows
   that message type for the order now.  The item is written ``sending`` before
   the call.  A refusal is final (``rejected``, with the marketplace's words); a
   failure that certainly did not reach the marketplace is retried with backoff;
   a lost answer — or an item found ``sending`` after a crash — is
   **unconfirmed**: it may have been delivered, and since no marketplace lets us
   read messages back, it is never sent again.  The owner sees it and can check
   the marketplace's message centre.
4. **Record.**  Every step lands in the item's history and in the audit log
   under the order key (never the text or the buyer's name), so the order's
   history shows what was sent, when, and how it went.

Etsy has no messaging API: its "shipped" update is the ``note_to_buyer`` of the
shipment call (:meth:`MessagingService.shipment_note`, installed on the Etsy
platform), and its other updates are e-mail over ``TF_SMTP_URL``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import Any

import anyio.to_thread

from tf_console.audit import AuditLog
from tf_console.clock import Clock
from tf_console.config import Settings
from tf_console.marketplaces.amazon import (
    CONFIRM_CUSTOMIZATION,
    UNEXPECTED_PROBLEM,
    AmazonMarketplace,
    message_text_problem,
)
from tf_console.marketplaces.base import (
    Marketplace,
    MarketplaceError,
    OutcomeUnknown,
    PermanentError,
    ReauthNeeded,
    TransientError,
)
from tf_console.marketplaces.ebay import MESSAGE_BODY_MAX, MESSAGE_SUBJECT_MAX, EbayMarketplace
from tf_console.marketplaces.redact import REDACTOR
from tf_console.messaging.events import Channel, MessageEvent, channel_for, opted_in
from tf_console.messaging.smtp import MailNotSent, MailOutcomeUnknown, SmtpMailer
from tf_console.messaging.templates import Templates
from tf_console.models import (
    FulfilledBy,
    JobState,
    Order,
    OrderStatus,
    Platform,
    PrintJob,
    Shipment,
    order_key,
)
from tf_console.production.service import ProductionService
from tf_console.store import Store
from tf_console.sync.outbox import (
    OutboxItem,
    OutboxKind,
    OutboxSender,
    OutboxState,
    outbox_collection,
)

log = logging.getLogger(__name__)

ITEM_PREFIX = "msg:"
SINCE_META = "messaging.opted_in_since"
#: a message not delivered within this long is out of date: it is dropped, never sent late
MAX_PENDING = timedelta(days=3)
#: confirmed shipments younger than this are looked at for "shipped" updates
SHIPPED_LOOKBACK = timedelta(days=7)
#: our own cap for the note Etsy adds to its shipping e-mail (Etsy publishes none)
ETSY_NOTE_MAX = 500
PURGED = "purged"
UNCONFIRMED = "unconfirmed"

_AMAZON_TYPES = {
    Channel.AMAZON_UNEXPECTED_PROBLEM: UNEXPECTED_PROBLEM,
    Channel.AMAZON_CUSTOMIZATION: CONFIRM_CUSTOMIZATION,
}
_BEFORE_SHIPPING = frozenset(
    {MessageEvent.QUEUED, MessageEvent.PRINTING, MessageEvent.DELAYED, MessageEvent.CUSTOMIZATION}
)
_PAID_OPEN = frozenset({OrderStatus.UNSHIPPED, OrderStatus.PARTIALLY_SHIPPED})


def message_item_id(key: str, event: MessageEvent) -> str:
    """The one outbox id of ``event`` for the order ``key`` ("platform:order_id")."""
    return f"{ITEM_PREFIX}{key}:{event.value}"


# ---------------------------------------------------------------------------
# Triggers (pure)


@dataclass(frozen=True, slots=True)
class Trigger:
    order: Order
    event: MessageEvent
    shipment: Shipment | None = None
    ready_at: datetime | None = None  # when the print queue expects the order ready (delayed)


@dataclass(frozen=True, slots=True)
class ProductionFacts:
    """What the print queue says about each order (by order key)."""

    jobs: Mapping[str, Sequence[PrintJob]] = field(default_factory=dict)
    ready_at: Mapping[str, datetime | None] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ConfirmedShipment:
    order: Order
    shipment: Shipment
    requested_at: datetime


SinceMap = Mapping[tuple[Platform, MessageEvent], datetime]


def _happened_after(
    since: SinceMap,
    opted: Mapping[Platform, frozenset[MessageEvent]],
    platform: Platform,
    event: MessageEvent,
    moment: datetime | None,
) -> bool:
    start = since.get((platform, event))
    return (
        event in opted.get(platform, frozenset())
        and moment is not None
        and start is not None
        and moment >= start
    )


def find_triggers(
    orders: Iterable[Order],
    production: ProductionFacts,
    shipped: Iterable[ConfirmedShipment],
    opted: Mapping[Platform, frozenset[MessageEvent]],
    since: SinceMap,
    now: datetime,
) -> list[Trigger]:
    """Every opted-in event that happened after its opt-in moment (see the module doc)."""
    found: list[Trigger] = []
    for order in orders:
        events = opted.get(order.platform, frozenset())
        if not events or order.fulfilled_by is FulfilledBy.MARKETPLACE or order.cancel_requested:
            continue
        if order.status not in _PAID_OPEN:
            continue

        def after(event: MessageEvent, moment: datetime | None, order: Order = order) -> bool:
            return _happened_after(since, opted, order.platform, event, moment)

        jobs = [j for j in production.jobs.get(order.key, ()) if j.state is not JobState.WITHDRAWN]
        if jobs and after(MessageEvent.QUEUED, order.created_at):
            found.append(Trigger(order, MessageEvent.QUEUED))
        started = [j.started_at for j in jobs if j.started_at is not None]
        if started and after(MessageEvent.PRINTING, min(started)):
            found.append(Trigger(order, MessageEvent.PRINTING))
        if any(i.personalisation for i in order.items) and after(
            MessageEvent.CUSTOMIZATION, order.created_at
        ):
            found.append(Trigger(order, MessageEvent.CUSTOMIZATION))
        ship_by = order.ship_by
        if ship_by is not None and after(MessageEvent.DELAYED, ship_by):
            ready = production.ready_at.get(order.key)
            if now > ship_by or (ready is not None and ready > ship_by):
                found.append(Trigger(order, MessageEvent.DELAYED, ready_at=ready))
    for confirmed in shipped:
        order = confirmed.order
        start = since.get((order.platform, MessageEvent.SHIPPED))
        if (
            MessageEvent.SHIPPED in opted.get(order.platform, frozenset())
            and channel_for(order.platform, MessageEvent.SHIPPED) is not Channel.ETSY_NOTE
            and order.status is not OrderStatus.CANCELLED
            and start is not None
            and confirmed.requested_at >= start
        ):
            found.append(Trigger(order, MessageEvent.SHIPPED, shipment=confirmed.shipment))
    return found


# ---------------------------------------------------------------------------
# Rendering


def _day(moment: datetime | None, tz: tzinfo, fallback: str) -> str:
    if moment is None:
        return fallback
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b}"


def _ready_day(ready: datetime | None, ship_by: datetime | None, tz: tzinfo) -> str:
    text = _day(ready, tz, "the next few days")
    if ready is not None and ship_by is not None and text == _day(ship_by, tz, ""):
        return f"{text}, {ready.astimezone(tz):%H:%M}"  # the same day as promised: the hour says more
    return text


def first_name(order: Order) -> str:
    """The buyer's first name — the only part of the buyer a message may carry."""
    name = order.buyer.name.strip() if order.buyer is not None and not order.pii_redacted else ""
    return name.split()[0] if name else "there"


def message_fields(
    trigger: Trigger, *, shop: str, tz: tzinfo, shipment: Shipment | None = None
) -> dict[str, str]:
    order = trigger.order
    shipment = shipment or trigger.shipment
    items = "; ".join(f"{i.quantity} × {i.title or i.sku}" for i in order.items if i.quantity > 0)
    fields = {
        "first_name": first_name(order),
        "order_id": order.order_id,
        "platform": order.platform.label,
        "items": items or "your items",
        "ship_by": _day(order.ship_by, tz, "the date in your order"),
        "ready_by": _ready_day(trigger.ready_at, order.ship_by, tz),
        "shop": shop,
        "carrier": "",
        "tracking": "",
        "personalisation": "",
    }
    if shipment is not None:
        fields["carrier"] = shipment.carrier_name or shipment.carrier
        fields["tracking"] = shipment.tracking
    if trigger.event is MessageEvent.CUSTOMIZATION:
        fields["personalisation"] = " / ".join(i.personalisation for i in order.items if i.personalisation)
    return fields


@dataclass(slots=True)
class PlannedMessage:
    """One message as it would be (or was) queued: exactly what goes to whom."""

    item_id: str
    platform: Platform
    order_id: str
    event: MessageEvent
    channel: Channel
    recipient: str  # for the owner's eyes: an e-mail address, an eBay user id, "the Amazon buyer"
    subject: str
    body: str
    template: str
    problem: str = ""  # set: the message cannot go out; it is recorded as not sent, with this reason
    payload: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------
# What the owner sees


@dataclass(frozen=True, slots=True)
class MessageView:
    item_id: str
    platform: Platform
    order_id: str
    event: MessageEvent
    channel: Channel
    status: str  # waiting | sending | sent | unconfirmed | not sent
    recipient: str
    subject: str
    body: str
    answer: str
    created_at: datetime
    updated_at: datetime
    attempts: int

    @property
    def order_key(self) -> str:
        return order_key(self.platform, self.order_id)


def view_of(item: OutboxItem) -> MessageView:
    payload = item.payload
    if item.state is OutboxState.PENDING:
        status = "waiting"
    elif item.state in (OutboxState.SENDING, OutboxState.VERIFYING):
        status = "sending"
    elif item.state is OutboxState.REJECTED:
        status = "not sent"
    else:
        status = UNCONFIRMED if payload.get(UNCONFIRMED) else "sent"
    purged = bool(payload.get(PURGED))
    return MessageView(
        item_id=item.item_id,
        platform=item.platform,
        order_id=item.order_id,
        event=MessageEvent(payload.get("event", MessageEvent.QUEUED.value)),
        channel=Channel(payload.get("channel", Channel.EMAIL.value)),
        status=status,
        recipient="(removed with the buyer's data)" if purged else str(payload.get("recipient_label", "")),
        subject="" if purged else str(payload.get("subject", "")),
        body="(removed with the buyer's data)" if purged else str(payload.get("body", "")),
        answer=item.answer,
        created_at=item.created_at,
        updated_at=item.updated_at,
        attempts=item.attempts,
    )


@dataclass(frozen=True, slots=True)
class OptInRow:
    platform: Platform
    event: MessageEvent
    channel: Channel
    on: bool


def order_of(store: Store, item: OutboxItem) -> Order | None:
    """The order of a message item, found straight in its archive month when it was archived."""
    created = item.payload.get("order_created_at")
    when = datetime.fromisoformat(created) if isinstance(created, str) else None
    return store.orders.get(item.platform, item.order_id, created_at=when)


def purge_message_bodies(store: Store, clock: Clock, *, older_than: timedelta | None = None) -> int:
    """Remove text and recipient from finished messages whose order's buyer data is gone (purged,
    or the order no longer stored), or that finished longer than ``older_than`` ago.  Blocking;
    ``purge-pii`` calls it after redacting orders, and the poller once an hour."""
    items = outbox_collection(store)
    now = clock.now()
    finished = [
        item
        for item in items.all()
        if item.kind is OutboxKind.MESSAGE and not item.state.is_active and not item.payload.get(PURGED)
    ]
    doomed: set[str] = set()
    for item in finished:
        if older_than is not None and now - item.updated_at >= older_than:
            doomed.add(item.item_id)
            continue
        order = order_of(store, item)
        if order is None or order.pii_redacted:
            doomed.add(item.item_id)
    if not doomed:
        return 0

    def strip(stored: dict[str, OutboxItem]) -> None:
        for item_id in doomed:
            item = stored.get(item_id)
            if item is None or item.state.is_active:
                continue
            kept = {k: v for k, v in item.payload.items() if k in ("event", "channel", "template")}
            item.payload = {**kept, PURGED: True}
            item.note(now, PURGED, "text and recipient removed with the buyer's data")

    items.mutate(strip)
    return len(doomed)


# ---------------------------------------------------------------------------
# The service


class MessagingService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        *,
        production: ProductionService | None = None,
        marketplaces: Mapping[Platform, Marketplace] | None = None,
        templates: Templates | None = None,
        mailer: SmtpMailer | None = None,
        audit: AuditLog | None = None,
        held_back: str = "",
    ) -> None:
        self.store = store
        #: a sentence when every message is held back (an unusable templates file)
        self.held_back = held_back
        self.settings = settings
        self.clock = clock
        self.production = production
        self.marketplaces = dict(marketplaces or {})
        self.templates = templates if templates is not None else Templates.load(settings.message_templates)
        self.mailer = mailer
        self.audit = audit if audit is not None else AuditLog(store, clock)
        self.opted = (
            {p: frozenset[MessageEvent]() for p in opted_in(settings)} if held_back else opted_in(settings)
        )
        self.items = outbox_collection(store)
        self.tz = settings.tzinfo
        self.shop = settings.shop_name

    # ------------------------------------------------------------------ status

    @property
    def enabled(self) -> bool:
        return any(self.opted.values())

    def opt_in_rows(self) -> list[OptInRow]:
        rows: list[OptInRow] = []
        for platform in (Platform.AMAZON, Platform.EBAY, Platform.ETSY):
            for event in MessageEvent:
                channel = channel_for(platform, event)
                if channel is not None:
                    rows.append(OptInRow(platform, event, channel, event in self.opted[platform]))
        return rows

    def warnings(self) -> list[str]:
        """Sentences about opted-in messages that cannot go out as configured."""
        found: list[str] = []
        if self.held_back:
            found.append(f"Customer messages are held back: {self.held_back}")
        email_events = [
            e.value for e in self.opted[Platform.ETSY] if channel_for(Platform.ETSY, e) is Channel.EMAIL
        ]
        if email_events:
            if self.mailer is None:
                found.append(
                    f"Etsy e-mail updates ({', '.join(sorted(email_events))}) are on but TF_SMTP_URL is not "
                    "set, so none are sent; set it with `tf-console creds set TF_SMTP_URL`."
                )
            elif self.mailer.problem():
                found.append(f"Etsy e-mail updates cannot be sent: {self.mailer.problem()}")
        for platform, events in self.opted.items():
            if events and self.marketplaces and platform not in self.marketplaces:
                found.append(
                    f"{platform.label} messages are on, but {platform.label} is not configured; "
                    "they wait until it is."
                )
        return found

    # ------------------------------------------------------------------ planning

    def _since(self, *, persist: bool) -> dict[tuple[Platform, MessageEvent], datetime]:
        """When each opted-in event was turned on (first seen on); ``persist`` records new ones."""
        now = self.clock.now()
        stored = self.store.meta.get(SINCE_META) or {}
        recorded: dict[str, str] = dict(stored) if isinstance(stored, dict) else {}
        wanted = {f"{p.value}:{e.value}": (p, e) for p, events in self.opted.items() for e in events}
        current = {name: recorded.get(name) or now.isoformat() for name in wanted}
        if persist and current != recorded:
            self.store.meta.set(SINCE_META, current)
        return {wanted[name]: datetime.fromisoformat(moment) for name, moment in current.items()}

    def _production_facts(self) -> ProductionFacts:
        if self.production is None:
            return ProductionFacts()
        try:
            jobs: dict[str, list[PrintJob]] = {}
            for job in self.production.jobs(include_finished=True):
                jobs.setdefault(order_key(job.platform, job.order_id), []).append(job)
            ready: dict[str, datetime | None] = {}
            if any(MessageEvent.DELAYED in events for events in self.opted.values()):
                schedule = self.production.schedule()
                ready = {key: entry.ready_at for key, entry in schedule.orders.items()}
            return ProductionFacts(jobs, ready)
        except Exception:  # a broken catalog must not stop shipped or delay notices
            log.exception("the print queue could not be read for customer updates")
            return ProductionFacts()

    def _confirmed_shipments(self, now: datetime) -> list[ConfirmedShipment]:
        if not any(MessageEvent.SHIPPED in events for events in self.opted.values()):
            return []
        found: list[ConfirmedShipment] = []
        for item in self.items.all():
            if (
                item.kind is not OutboxKind.SHIPMENT
                or item.state is not OutboxState.DONE
                or now - item.updated_at > SHIPPED_LOOKBACK
                or MessageEvent.SHIPPED not in self.opted.get(item.platform, frozenset())
            ):
                continue
            order = self.store.orders.get(item.platform, item.order_id)
            if order is not None:
                found.append(ConfirmedShipment(order, item.shipment, item.created_at))
        return found

    def triggers(self, *, persist: bool = False) -> list[Trigger]:
        if not self.enabled:
            return []
        now = self.clock.now()
        since = self._since(persist=persist)
        return find_triggers(
            self.store.orders.open_orders(),
            self._production_facts(),
            self._confirmed_shipments(now),
            self.opted,
            since,
            now,
        )

    def plan(self, trigger: Trigger) -> PlannedMessage:
        """Render ``trigger`` into the exact message, or say why it cannot go out."""
        order = trigger.order
        channel = channel_for(order.platform, trigger.event)
        if channel is None:
            raise ValueError(f"{order.platform.label} has no channel for {trigger.event.value} messages")
        rendered = self.templates.render(
            order.platform, trigger.event, message_fields(trigger, shop=self.shop, tz=self.tz)
        )
        planned = PlannedMessage(
            item_id=message_item_id(order.key, trigger.event),
            platform=order.platform,
            order_id=order.order_id,
            event=trigger.event,
            channel=channel,
            recipient="",
            subject=rendered.subject,
            body=rendered.body,
            template=rendered.template,
        )
        payload: dict[str, Any] = {
            "event": trigger.event.value,
            "channel": channel.value,
            "template": rendered.template,
            "order_created_at": order.created_at.isoformat(),
        }
        if channel in _AMAZON_TYPES:
            planned.subject = ""
            planned.recipient = "the buyer, through Amazon Buyer-Seller Messaging"
            payload["message_type"] = _AMAZON_TYPES[channel]
            payload["marketplace_id"] = order.extra.get("marketplace_id", "")
            problem = message_text_problem(_AMAZON_TYPES[channel], rendered.body)
            planned.problem = f"Amazon would refuse it: {problem}." if problem else ""
        elif channel is Channel.EBAY_MESSAGE:
            buyer = order.extra.get("buyer_user_id", "")
            listing = next((i.listing_id for i in order.items if i.listing_id), "")
            planned.recipient = f"eBay user {buyer}" if buyer else "the eBay buyer (user id unknown)"
            payload["recipient"] = buyer
            payload["listing_id"] = listing
            if not buyer or not listing:
                planned.problem = (
                    "eBay did not give the buyer's user id or the listing, so no message can go."
                )
            elif len(rendered.subject) > MESSAGE_SUBJECT_MAX or not rendered.subject:
                planned.problem = f"the subject must have 1 to {MESSAGE_SUBJECT_MAX} characters for eBay."
            elif len(rendered.body) > MESSAGE_BODY_MAX:
                planned.problem = f"the message has more than {MESSAGE_BODY_MAX} characters, eBay's limit."
        elif channel is Channel.EMAIL:
            address = order.buyer.email.strip() if order.buyer is not None and not order.pii_redacted else ""
            planned.recipient = address or "(no e-mail address)"
            payload["to"] = address
            if not address:
                planned.problem = (
                    f"{order.platform.label} gave no e-mail address for the buyer, so no e-mail can go."
                )
        payload["subject"] = planned.subject
        payload["body"] = planned.body
        payload["recipient_label"] = planned.recipient
        planned.payload = payload
        return planned

    def _deliverable(self, trigger: Trigger) -> bool:
        """Whether the channel is set up at all (an unset SMTP server queues nothing)."""
        channel = channel_for(trigger.order.platform, trigger.event)
        if channel is Channel.EMAIL:
            return self.mailer is not None and not self.mailer.problem()
        return True

    def due(self) -> list[PlannedMessage]:
        """Messages a scan would queue now — the dry run: nothing is written."""
        existing = set(self.items.keys())
        planned: list[PlannedMessage] = []
        for trigger in self.triggers(persist=False):
            item_id = message_item_id(trigger.order.key, trigger.event)
            if item_id not in existing and self._deliverable(trigger):
                planned.append(self.plan(trigger))
        return planned

    def scan(self) -> list[OutboxItem]:
        """Queue every due message once; returns the new outbox items. Blocking."""
        if not self.enabled:
            return []
        created: list[OutboxItem] = []
        existing = set(self.items.keys())
        for trigger in self.triggers(persist=True):
            if not self._deliverable(trigger):
                continue
            if message_item_id(trigger.order.key, trigger.event) in existing:
                continue
            planned = self.plan(trigger)
            item = self._queue(planned)
            if item is not None:
                created.append(item)
        return created

    def _queue(self, planned: PlannedMessage) -> OutboxItem | None:
        now = self.clock.now()
        item = OutboxItem(
            item_id=planned.item_id,
            kind=OutboxKind.MESSAGE,
            platform=planned.platform,
            order_id=planned.order_id,
            payload=planned.payload,
            state=OutboxState.REJECTED if planned.problem else OutboxState.PENDING,
            created_at=now,
            updated_at=now,
            next_attempt_at=now,
            answer=planned.problem,
        )
        item.note(now, "queued", f"{planned.event.value} via {planned.channel.label} ({planned.template})")
        if planned.problem:
            item.note(now, "rejected", planned.problem)
        with self.store.lock():
            if self.items.get(planned.item_id) is not None:  # another process queued it first
                return None
            self.items.put(item)
        key = order_key(planned.platform, planned.order_id)
        if planned.problem:
            self.audit.try_record(
                "message.rejected", key, "rejected", f"{planned.event.value}: {planned.problem}"
            )
        else:
            self.audit.try_record(
                "message.queued", key, "requested", f"{planned.event.value} via {planned.channel}"
            )
        return item

    # ------------------------------------------------------------------ views

    def messages(self, *, platform: Platform | None = None, order_id: str | None = None) -> list[MessageView]:
        """Message items (newest first), optionally of one order."""
        views = [
            view_of(item)
            for item in self.items.all()
            if item.kind is OutboxKind.MESSAGE
            and (platform is None or item.platform is platform)
            and (order_id is None or item.order_id == order_id)
        ]
        views.sort(key=lambda v: (v.created_at, v.item_id), reverse=True)
        return views

    def history(self, platform: Platform, order_id: str) -> list[MessageView]:
        """The messages of one order, oldest first (the order's history in the console)."""
        return list(reversed(self.messages(platform=platform, order_id=order_id)))

    def note_preview(self, order: Order) -> str:
        """The note an Etsy shipment of ``order`` would carry now ("" when none)."""
        if MessageEvent.SHIPPED not in self.opted.get(order.platform, frozenset()):
            return ""
        if channel_for(order.platform, MessageEvent.SHIPPED) is not Channel.ETSY_NOTE:
            return ""
        trigger = Trigger(order, MessageEvent.SHIPPED)
        text = self.templates.render(
            order.platform, MessageEvent.SHIPPED, message_fields(trigger, shop=self.shop, tz=self.tz)
        ).body
        return text if 0 < len(text) <= ETSY_NOTE_MAX else ""

    # ------------------------------------------------------------------ purge

    def purge_bodies(self, *, older_than: timedelta | None = None) -> int:
        return purge_message_bodies(self.store, self.clock, older_than=older_than)

    # ------------------------------------------------------------------ Etsy note

    def shipment_note(self, order: Order, shipment: Shipment) -> str:
        """The opted-in ``note_to_buyer`` for an Etsy shipment (the Etsy platform calls this)."""
        text = self.note_preview(order)
        if text:
            self.audit.try_record(
                "message.note",
                order.key,
                "attached",
                f"shipped note on shipment {shipment.shipment_id} ({len(text)} characters)",
            )
        return text

    # ------------------------------------------------------------------ delivery

    async def deliver(self, sender: OutboxSender, item: OutboxItem) -> OutboxItem:
        """The outbox handler for ``OutboxKind.MESSAGE``: send once, or say why not."""
        if item.state in (OutboxState.SENDING, OutboxState.VERIFYING):
            return await self._unconfirmed(
                sender,
                item,
                "The attempt was interrupted before the answer came back, so it may have been delivered.",
            )
        if not item.state.is_active:
            return item
        if self.held_back:
            return await self._retry(sender, item, f"Held back: {self.held_back}", long=True)
        order = await anyio.to_thread.run_sync(order_of, self.store, item)
        stale = self._stale(item, order)
        if stale:
            return await self._reject(sender, item, stale)
        assert order is not None
        channel = Channel(item.payload["channel"])
        try:
            await self._allowed_now(item, order, channel)
        except PermanentError as exc:
            return await self._reject(sender, item, exc.sentence)
        except ReauthNeeded as exc:
            return await self._retry(sender, item, exc.sentence, long=True)
        except MarketplaceError as exc:  # a read: nothing was sent, try again later
            return await self._retry(sender, item, exc.sentence)
        now = self.clock.now()
        item.state = OutboxState.SENDING
        item.attempts += 1
        item.note(now, "sending", f"attempt {item.attempts} via {channel.label}")
        await sender.save(item)  # durable before the call: a crash from here on means "unconfirmed"
        try:
            answer = await self._send(channel, item, order)
        except (OutcomeUnknown, MailOutcomeUnknown) as exc:
            return await self._unconfirmed(sender, item, str(exc))
        except ReauthNeeded as exc:
            return await self._retry(sender, item, exc.sentence, long=True)
        except PermanentError as exc:
            return await self._reject(sender, item, exc.sentence)
        except TransientError as exc:  # certainly not applied (the client turns doubt into OutcomeUnknown)
            return await self._retry(sender, item, exc.sentence)
        except MailNotSent as exc:
            if exc.config:
                return await self._retry(sender, item, f"Not sent: {exc}.", long=True)
            if exc.permanent:
                return await self._reject(sender, item, f"Not sent: {exc}.")
            return await self._retry(sender, item, f"Not sent: {exc}.")
        except Exception as exc:  # the call may have left: never send it again
            log.exception("a customer message failed unexpectedly")
            return await self._unconfirmed(sender, item, f"unexpected error ({type(exc).__name__})")
        return await self._finish(sender, item, answer)

    def _stale(self, item: OutboxItem, order: Order | None) -> str:
        """Why ``item`` must not go out any more ("" when it may)."""
        event = MessageEvent(item.payload.get("event", MessageEvent.QUEUED.value))
        where = f"{item.platform.label} order {item.order_id}"
        if item.payload.get(PURGED) or "body" not in item.payload:
            return "The message text was removed with the buyer's data; nothing was sent."
        if order is None:
            return f"{where} is no longer in the store; nothing was sent."
        if order.status is OrderStatus.CANCELLED or order.cancel_requested:
            return (
                f"{where} was cancelled (or the buyer asked to cancel); "
                f"the {event.value} message was not sent."
            )
        if event in _BEFORE_SHIPPING and order.status is OrderStatus.SHIPPED:
            return (
                f"{where} shipped before the {event.value} message went out; it was not sent (out of date)."
            )
        if event not in self.opted.get(item.platform, frozenset()):
            return (
                f"{item.platform.label} {event.value} messages were turned off "
                f"(TF_MESSAGES_{item.platform.value.upper()}); nothing was sent."
            )
        if self.clock.now() - item.created_at > MAX_PENDING:
            return (
                f"The {event.value} message for {where} could not be sent for "
                f"{MAX_PENDING.days} days; it was dropped rather than sent out of date."
            )
        return ""

    def _market(self, platform: Platform) -> Marketplace:
        market = self.marketplaces.get(platform)
        if market is None:
            raise TransientError(f"{platform.label} is not configured; the message waits until it is.")
        return market

    async def _allowed_now(self, item: OutboxItem, order: Order, channel: Channel) -> None:
        """Amazon lists what it allows per order: ask before sending (a read, safe to repeat)."""
        if channel not in _AMAZON_TYPES:
            return
        market = self._market(item.platform)
        if not isinstance(market, AmazonMarketplace):
            raise PermanentError("Amazon messages need the Amazon platform; nothing was sent.")
        wanted = _AMAZON_TYPES[channel]
        allowed = await market.get_messaging_actions_for_order(
            order.order_id, marketplace_id=item.payload.get("marketplace_id") or None
        )
        if wanted not in allowed:
            raise PermanentError(
                f"Amazon does not allow a {wanted} message for order {order.order_id} now; nothing was sent."
            )

    async def _send(self, channel: Channel, item: OutboxItem, order: Order) -> str:
        payload = item.payload
        body = str(payload["body"])
        if channel in _AMAZON_TYPES:
            market = self._market(item.platform)
            assert isinstance(market, AmazonMarketplace)
            marketplace_id = payload.get("marketplace_id") or None
            if channel is Channel.AMAZON_UNEXPECTED_PROBLEM:
                request_id = await market.create_unexpected_problem(
                    order.order_id, body, marketplace_id=marketplace_id
                )
            else:
                request_id = await market.create_confirm_customization_details(
                    order.order_id, body, marketplace_id=marketplace_id
                )
            said = f" (request id {request_id})" if request_id else ""
            return f"Amazon accepted the message{said}."
        if channel is Channel.EBAY_MESSAGE:
            market = self._market(item.platform)
            if not isinstance(market, EbayMarketplace):
                raise PermanentError("eBay messages need the eBay platform; nothing was sent.")
            await market.add_member_message_aaq_to_partner(
                item_id=str(payload.get("listing_id", "")),
                recipient_id=str(payload.get("recipient", "")),
                subject=str(payload.get("subject", "")),
                body=body,
                sold_at=order.created_at,
            )
            return "eBay accepted the message."
        if channel is Channel.EMAIL:
            if self.mailer is None:
                raise MailNotSent("TF_SMTP_URL is not set", permanent=True, config=True)
            said = await self.mailer.send(
                str(payload.get("to", "")), str(payload.get("subject", "")), body, key=item.item_id
            )
            return f"The mail server accepted the e-mail ({said})."
        raise PermanentError(f"{channel.label} is not sent through the outbox; nothing was sent.")

    @staticmethod
    def _clear_text(item: OutboxItem, text: str) -> str:
        """``text`` fit to be stored in clear (an item's answer and history, the audit log):
        marketplaces and mail servers echo the recipient in refusals, so it is replaced."""
        for key in ("to", "recipient"):
            value = str(item.payload.get(key) or "")
            if len(value) >= 3:
                text = text.replace(value, "the buyer")
        return REDACTOR.scrub(text)

    async def _record(self, action: str, item: OutboxItem, outcome: str, detail: str) -> None:
        event = item.payload.get("event", "")
        await anyio.to_thread.run_sync(
            self.audit.try_record,
            action,
            order_key(item.platform, item.order_id),
            outcome,
            f"{event}: {detail}",
        )

    async def _finish(self, sender: OutboxSender, item: OutboxItem, answer: str) -> OutboxItem:
        now = self.clock.now()
        answer = self._clear_text(item, answer)
        item.state = OutboxState.DONE
        item.answer = answer
        item.note(now, "sent", answer)
        await sender.save(item)
        await self._record("message.sent", item, "ok", answer)
        return item

    async def _reject(self, sender: OutboxSender, item: OutboxItem, why: str) -> OutboxItem:
        now = self.clock.now()
        why = self._clear_text(item, why)
        item.state = OutboxState.REJECTED
        item.answer = why
        item.note(now, "rejected", why)
        await sender.save(item)
        await self._record("message.rejected", item, "rejected", why)
        return item

    async def _unconfirmed(self, sender: OutboxSender, item: OutboxItem, why: str) -> OutboxItem:
        now = self.clock.now()
        why = self._clear_text(item, why)
        item.state = OutboxState.DONE
        item.payload[UNCONFIRMED] = True
        item.answer = (
            f"{why.rstrip('.')}. It is not sent again, so the buyer never gets it twice; check the "
            f"{item.platform.label} message centre (or the sent mail) and write by hand if it is missing."
        )
        item.note(now, UNCONFIRMED, item.answer)
        await sender.save(item)
        await self._record("message.unconfirmed", item, "unknown", why)
        return item

    async def _retry(
        self, sender: OutboxSender, item: OutboxItem, why: str, *, long: bool = False
    ) -> OutboxItem:
        now = self.clock.now()
        why = self._clear_text(item, why)
        item.state = OutboxState.PENDING
        delay = sender.policy.max_delay if long else sender.policy.backoff(item.attempts, sender.rng)
        item.next_attempt_at = now + timedelta(seconds=max(1.0, delay))
        item.answer = why
        item.note(now, "retry", f"{why} — next try at {item.next_attempt_at:%H:%M:%S} UTC")
        await sender.save(item)
        return item
