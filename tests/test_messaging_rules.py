"""The rules of customer updates on hand-made orders: channels, opt-in, triggers, templates,
and Etsy's note on the shipment call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.messaging_helpers import shop
from tf_console.audit import AuditLog
from tf_console.config import Settings
from tf_console.errors import UserError
from tf_console.marketplaces.amazon import message_text_problem
from tf_console.marketplaces.etsy import tracking_body
from tf_console.messaging import Channel, MessageEvent, Templates, channel_for, install_messaging
from tf_console.messaging.service import (
    ConfirmedShipment,
    ProductionFacts,
    Trigger,
    find_triggers,
    message_fields,
)
from tf_console.models import (
    Address,
    FulfilledBy,
    JobState,
    LineItem,
    Money,
    Order,
    OrderStatus,
    Platform,
    PrintJob,
    Shipment,
)
from tf_console.sync.outbox import OutboxState
from tf_console.sync.shipping import ShipRequest, enqueue_shipment

NOW = datetime(2026, 11, 2, 15, 0, tzinfo=UTC)
OPTED = NOW - timedelta(days=1)
EVERYTHING = {
    Platform.AMAZON: frozenset({MessageEvent.DELAYED, MessageEvent.CUSTOMIZATION}),
    Platform.EBAY: frozenset(
        {MessageEvent.QUEUED, MessageEvent.PRINTING, MessageEvent.SHIPPED, MessageEvent.DELAYED}
    ),
    Platform.ETSY: frozenset({MessageEvent.QUEUED, MessageEvent.SHIPPED}),
}
SINCE = {(p, e): OPTED for p, events in EVERYTHING.items() for e in events}


def order(
    platform: Platform = Platform.EBAY,
    order_id: str = "1",
    *,
    created: datetime = NOW - timedelta(hours=2),
    ship_by: datetime | None = NOW + timedelta(days=2),
    status: OrderStatus = OrderStatus.UNSHIPPED,
    personalisation: str = "",
    **extra: object,
) -> Order:
    return Order(
        platform=platform,
        order_id=order_id,
        status=status,
        created_at=created,
        updated_at=created,
        ship_by=ship_by,
        total=Money(amount=Decimal("20.00"), currency="USD"),
        items=[
            LineItem(
                line_id="L1",
                sku="PRT-VASE",
                title="Spiral Vase",
                quantity=2,
                listing_id="110",
                personalisation=personalisation,
            )
        ],
        buyer=Address(name="Jane Q. Public", email="jane@buyer.example", line1="1 Main St"),
        extra={"buyer_user_id": "jane_q"},
        **extra,
    )


def job(o: Order, *, started: datetime | None = None, state: JobState = JobState.QUEUED) -> PrintJob:
    return PrintJob(
        job_id=f"{o.platform.value}:{o.order_id}:L1",
        platform=o.platform,
        order_id=o.order_id,
        line_id="L1",
        sku="PRT-VASE",
        quantity=2,
        state=state,
        started_at=started,
    )


def events_of(found: list[Trigger]) -> list[tuple[str, MessageEvent]]:
    return sorted((t.order.order_id, t.event) for t in found)


def test_each_marketplace_gets_only_the_channels_it_allows() -> None:
    assert channel_for(Platform.AMAZON, MessageEvent.PRINTING) is None
    assert channel_for(Platform.AMAZON, MessageEvent.QUEUED) is None
    assert channel_for(Platform.AMAZON, MessageEvent.SHIPPED) is None
    assert channel_for(Platform.AMAZON, MessageEvent.DELAYED) is Channel.AMAZON_UNEXPECTED_PROBLEM
    assert channel_for(Platform.AMAZON, MessageEvent.CUSTOMIZATION) is Channel.AMAZON_CUSTOMIZATION
    assert channel_for(Platform.EBAY, MessageEvent.CUSTOMIZATION) is None
    assert channel_for(Platform.ETSY, MessageEvent.SHIPPED) is Channel.ETSY_NOTE
    assert channel_for(Platform.ETSY, MessageEvent.PRINTING) is Channel.EMAIL


def test_config_refuses_messages_a_marketplace_does_not_allow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_MESSAGES_AMAZON", "delayed,printing")
    with pytest.raises(UserError, match="TF_MESSAGES_AMAZON may list only delayed, customization"):
        Settings.load(use_keyring=False)
    monkeypatch.setenv("TF_MESSAGES_AMAZON", " Delayed ")
    monkeypatch.setenv("TF_MESSAGES_EBAY", "queued, shipped")
    settings = Settings.load(use_keyring=False)
    assert settings.messages_amazon == ("delayed",) and settings.messages_ebay == ("queued", "shipped")
    monkeypatch.setenv("TF_SMTP_FROM", "Shop <orders@shop.example>\r\nBcc: x@evil.example")
    with pytest.raises(UserError, match="TF_SMTP_FROM"):
        Settings.load(use_keyring=False)


def test_triggers_follow_the_queue_and_the_opt_in_moment() -> None:
    queued = order(order_id="queued")
    old = order(order_id="old", created=OPTED - timedelta(hours=1))
    printing = order(order_id="printing", created=OPTED - timedelta(hours=1))
    stock_only = order(order_id="stock")
    fba = order(Platform.AMAZON, "fba", fulfilled_by=FulfilledBy.MARKETPLACE, personalisation="JANE")
    cancelling = order(order_id="cancelling", cancel_requested=True)
    facts = ProductionFacts(
        jobs={
            queued.key: [job(queued)],
            old.key: [job(old)],
            printing.key: [job(printing, started=NOW - timedelta(minutes=30), state=JobState.PRINTING)],
            cancelling.key: [job(cancelling)],
        }
    )
    found = find_triggers(
        [queued, old, printing, stock_only, fba, cancelling], facts, [], EVERYTHING, SINCE, NOW
    )
    assert events_of(found) == [("printing", MessageEvent.PRINTING), ("queued", MessageEvent.QUEUED)]


def test_delay_notices_when_the_ship_by_date_will_be_or_was_missed() -> None:
    overdue = order(order_id="overdue", ship_by=NOW - timedelta(hours=1))
    projected = order(order_id="projected", ship_by=NOW + timedelta(hours=5))
    on_time = order(order_id="on-time", ship_by=NOW + timedelta(hours=5))
    before_opt_in = order(order_id="ancient", ship_by=OPTED - timedelta(days=3))
    no_date = order(order_id="no-date", ship_by=None)
    facts = ProductionFacts(
        ready_at={projected.key: NOW + timedelta(hours=9), on_time.key: NOW + timedelta(hours=2)}
    )
    found = find_triggers(
        [overdue, projected, on_time, before_opt_in, no_date], facts, [], EVERYTHING, SINCE, NOW
    )
    assert events_of(found) == [("overdue", MessageEvent.DELAYED), ("projected", MessageEvent.DELAYED)]
    projected_trigger = next(t for t in found if t.order.order_id == "projected")
    assert projected_trigger.ready_at == NOW + timedelta(hours=9)


def test_amazon_gets_only_customization_checks_and_delay_notices() -> None:
    personalised = order(Platform.AMAZON, "111-1", personalisation="JANE 2026")
    plain = order(Platform.AMAZON, "111-2")
    facts = ProductionFacts(
        jobs={personalised.key: [job(personalised, started=NOW)], plain.key: [job(plain)]}
    )
    found = find_triggers([personalised, plain], facts, [], EVERYTHING, SINCE, NOW)
    assert events_of(found) == [("111-1", MessageEvent.CUSTOMIZATION)]


def test_shipped_updates_come_from_console_shipments_after_the_opt_in() -> None:
    shipped = order(order_id="s1", status=OrderStatus.SHIPPED)
    earlier = order(order_id="s0", status=OrderStatus.SHIPPED)
    etsy = order(Platform.ETSY, "e1", status=OrderStatus.SHIPPED)
    parcel = Shipment(shipment_id="1", carrier="UPS", tracking="1Z999AA10123456784", shipped_at=NOW)
    confirmed = [
        ConfirmedShipment(shipped, parcel, NOW - timedelta(hours=1)),
        ConfirmedShipment(earlier, parcel, OPTED - timedelta(hours=1)),
        ConfirmedShipment(etsy, parcel, NOW),  # Etsy's shipped update is the note on the call itself
    ]
    found = find_triggers([], ProductionFacts(), confirmed, EVERYTHING, SINCE, NOW)
    assert events_of(found) == [("s1", MessageEvent.SHIPPED)]


def test_fields_carry_the_first_name_at_most() -> None:
    o = order(personalisation="JANE")
    parcel = Shipment(shipment_id="1", carrier="UPS", tracking="1Z999AA10123456784", shipped_at=NOW)
    fields = message_fields(Trigger(o, MessageEvent.SHIPPED, shipment=parcel), shop="TF", tz=UTC)
    assert fields["first_name"] == "Jane"
    assert fields["tracking"] == "1Z999AA10123456784" and fields["personalisation"] == ""
    assert fields["items"] == "2 × Spiral Vase" and fields["ship_by"] == "Wed 4 Nov"
    text = " ".join(fields.values())
    assert "Public" not in text and "jane@buyer.example" not in text and "Main St" not in text
    redacted = o.model_copy(update={"pii_redacted": True, "buyer": None})
    assert message_fields(Trigger(redacted, MessageEvent.QUEUED), shop="TF", tz=UTC)["first_name"] == "there"


def test_templates_file_overrides_and_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "templates.toml"
    path.write_text('[ebay.queued]\nsubject = "Queued {order_id}"\nbody = "Hello {first_name} from {shop}"\n')
    templates = Templates.load(path)
    fields = {"first_name": "Jane", "order_id": "7", "shop": "TF"}
    ebay = templates.render(Platform.EBAY, MessageEvent.QUEUED, fields)
    assert (ebay.subject, ebay.body, ebay.template) == ("Queued 7", "Hello Jane from TF", "ebay.queued")
    assert templates.render(Platform.ETSY, MessageEvent.QUEUED, fields).template == "default.queued"

    for bad, words in [
        ('[ebay.queued]\nbody = "{order.__class__}"\n', "not a plain placeholder"),
        ('[ebay.queued]\nbody = "{email}"\n', "not a placeholder"),
        ('[ebay.queued]\nbody = "{tracking}"\n', "only in shipped"),
        ('[ebay.sold]\nbody = "x"\n', "not an event"),
        ('[walmart.queued]\nbody = "x"\n', "not a template group"),
        ("[ebay.queued\n", "not valid TOML"),
    ]:
        path.write_text(bad)
        with pytest.raises(UserError, match=words):
            Templates.load(path)
    with pytest.raises(UserError, match="cannot be read"):
        Templates.load(tmp_path / "missing.toml")


def test_amazon_text_rules() -> None:
    assert message_text_problem("unexpectedProblem", "Your order is late, sorry.") == ""
    assert "HTML" in message_text_problem("unexpectedProblem", "<b>late</b>")
    assert "e-mail" in message_text_problem("unexpectedProblem", "write to help@shop.example")
    assert "800" in message_text_problem("confirmCustomizationDetails", "x" * 801)
    assert "empty" in message_text_problem("unexpectedProblem", "  ")


def test_etsy_tracking_body_adds_the_note_after_the_carrier_sentence() -> None:
    parcel = Shipment(shipment_id="1", carrier="ups", tracking="1Z999AA10123456784", shipped_at=NOW)
    assert tracking_body(parcel, "Thanks!") == {
        "tracking_code": "1Z999AA10123456784",
        "carrier_name": "ups",
        "note_to_buyer": "Thanks!",
    }
    assert "note_to_buyer" not in tracking_body(parcel)
    other = parcel.model_copy(update={"carrier": "other", "carrier_name": "Pigeon Post"})
    note = tracking_body(other, "Thanks!")["note_to_buyer"]
    assert note == "Shipped with Pigeon Post, tracking number 1Z999AA10123456784. Thanks!"
    own = parcel.model_copy(update={"note_to_buyer": "Own words."})
    assert tracking_body(own, "Thanks!")["note_to_buyer"] == "Own words."


async def test_etsy_shipped_update_rides_on_the_shipment_call(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.ETSY, events="shipped", values={"TF_SHOP_NAME": "Forge & Co"}) as s:
        await s.poll()
        target = s.unshipped()[0]
        request = ShipRequest(
            platform=Platform.ETSY, order_id=target.order_id, carrier="ups", tracking="1Z999AA10123456784"
        )
        item = enqueue_shipment(s.runtime.store, request, s.clock)
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.DONE, done.answer
        (sent,) = [r for r in s.sim.tracking_requests if r.receipt_id == target.order_id]
        assert sent.fields["note_to_buyer"] == "Thank you for your order! Printed with care by Forge & Co."
        stored = s.runtime.store.orders.get(Platform.ETSY, target.order_id)
        assert stored is not None and all(sh.note_to_buyer == "" for sh in stored.shipments)
        assert s.service.scan() == []  # no separate message: Etsy e-mails the note itself
        actions = [e.action for e in AuditLog(s.runtime.store, s.clock).entries(target=target.key)]
        assert "message.note" in actions


async def test_an_unusable_templates_file_holds_messages_back_without_stopping_the_runtime(
    tmp_path: Path,
) -> None:
    broken = tmp_path / "templates.toml"
    broken.write_text('[ebay.shipped]\nbody = "{buyer_email}"\n')
    async with shop(
        tmp_path, Platform.EBAY, events="shipped", values={"TF_MESSAGE_TEMPLATES": str(broken)}
    ) as s:
        await s.poll()  # syncing goes on
        assert "not a placeholder" in s.service.held_back
        assert any("held back" in w for w in s.service.warnings())
        assert s.service.scan() == [] and s.service.enabled is False
        with pytest.raises(UserError, match="not a placeholder"):
            install_messaging(s.runtime, strict=True)
