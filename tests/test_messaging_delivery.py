"""Customer messages through the outbox against the simulated marketplaces: once, retried,
refused with reasons, recorded per order, never re-sent after an unknown outcome."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.messaging_helpers import Shop, shop
from tf_console.audit import AuditLog
from tf_console.marketplaces.base import PermanentError
from tf_console.marketplaces.ebay import EbayMarketplace
from tf_console.messaging import MessageEvent, message_item_id, purge_message_bodies
from tf_console.messaging.service import SINCE_META
from tf_console.models import Order, Platform
from tf_console.sync.outbox import OutboxKind, OutboxState
from tf_console.sync.shipping import ShipRequest, enqueue_shipment

UPS = "1Z999AA10123456784"
MESSAGE_ROUTE = "ebay.AddMemberMessageAAQToPartner"


async def ship(s: Shop, order: Order, carrier: str = "UPS") -> None:
    request = ShipRequest(platform=order.platform, order_id=order.order_id, carrier=carrier, tracking=UPS)
    item = enqueue_shipment(s.runtime.store, request, s.clock)
    done = await s.deliver(item.item_id)
    assert done.state is OutboxState.DONE, done.answer


def message_items(s: Shop) -> list[str]:
    return [i.item_id for i in s.service.items.all() if i.kind is OutboxKind.MESSAGE]


def ebay_sent(s: Shop) -> int:
    return s.sandbox.log.count(MESSAGE_ROUTE, applied_only=True)


async def test_ebay_shipped_message_goes_out_once_and_is_recorded(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        assert s.service.scan() == []  # opting in records the moment; nothing before it is messaged
        order = s.unshipped()[0]
        await ship(s, order)

        created = s.service.scan()
        assert [i.item_id for i in created] == [message_item_id(order.key, MessageEvent.SHIPPED)]
        assert s.service.scan() == []  # once queued, never queued again
        done = await s.deliver(created[0].item_id)
        assert done.state is OutboxState.DONE, done.answer

        sent = s.sim.messages
        assert len(sent) == 1 and ebay_sent(s) == 1
        assert sent[0].recipient == order.extra["buyer_user_id"]
        assert sent[0].item_id == order.items[0].listing_id
        assert UPS in sent[0].body and order.order_id in sent[0].subject
        first = order.buyer.name.split()[0] if order.buyer else "there"
        assert sent[0].body.startswith(f"Hi {first},")
        assert order.buyer is not None and order.buyer.name not in sent[0].body  # the first name at most

        again = await s.deliver(created[0].item_id)
        assert again.state is OutboxState.DONE and ebay_sent(s) == 1
        assert s.service.scan() == [] and ebay_sent(s) == 1

        history = s.service.history(Platform.EBAY, order.order_id)
        assert [(v.event, v.status) for v in history] == [(MessageEvent.SHIPPED, "sent")]
        audit = [e.action for e in AuditLog(s.runtime.store, s.clock).entries(target=order.key)]
        assert "message.queued" in audit and "message.sent" in audit


async def test_ebay_lost_answer_is_unconfirmed_and_never_resent(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        s.service.scan()
        order = s.unshipped()[0]
        await ship(s, order)
        (item,) = s.service.scan()
        s.sandbox.faults.inject("drop-after-apply", route=MESSAGE_ROUTE, times=1)
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.DONE and done.payload["unconfirmed"] is True
        assert "not sent again" in done.answer
        assert len(s.sim.messages) == 1
        for _ in range(3):
            s.clock.advance(600)
            await s.runtime.engine.sender.deliver_due()
        assert len(s.sim.messages) == 1 and ebay_sent(s) == 1
        (view,) = s.service.history(Platform.EBAY, order.order_id)
        assert view.status == "unconfirmed"


async def test_a_message_found_in_flight_after_a_crash_is_not_sent_again(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        s.service.scan()
        order = s.unshipped()[0]
        await ship(s, order)
        (item,) = s.service.scan()
        # The process wrote "sending" and died before the answer: start-up recovery finds it.
        item.state = OutboxState.SENDING
        s.service.items.put(item)
        assert await s.runtime.engine.sender.recover() == 1
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.DONE and done.payload["unconfirmed"] is True
        assert ebay_sent(s) == 0


async def test_ebay_message_not_reaching_ebay_is_retried_then_sent_once(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        s.service.scan()
        order = s.unshipped()[0]
        await ship(s, order)
        (item,) = s.service.scan()
        fault = s.sandbox.faults.inject("connect-error", route=MESSAGE_ROUTE, times=50)
        first = await s.deliver(item.item_id)
        assert first.state is OutboxState.PENDING and first.next_attempt_at > s.clock.now()
        assert s.sim.messages == []
        s.sandbox.faults.remove(fault.fault_id)
        s.clock.set(first.next_attempt_at)
        second = await s.deliver(item.item_id)
        assert second.state is OutboxState.DONE, second.answer
        assert len(s.sim.messages) == 1


async def test_ebay_refusal_is_final_with_ebays_words(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        s.service.scan()
        order = s.unshipped()[0]
        await ship(s, order)
        (item,) = s.service.scan()
        item.payload["recipient"] = "someone-else"  # eBay refuses a member who did not buy the item
        s.service.items.put(item)
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.REJECTED
        assert "did not buy item" in done.answer
        assert "someone-else" not in done.answer + str(done.history)  # stored in clear: no buyer ids
        assert s.sim.messages == []
        (view,) = s.service.history(Platform.EBAY, order.order_id)
        assert view.status == "not sent"


async def test_ebay_refuses_to_send_past_ninety_days_without_a_call(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        market = s.runtime.marketplaces[Platform.EBAY]
        assert isinstance(market, EbayMarketplace)
        order = s.open_orders()[0]
        with pytest.raises(PermanentError, match="within 90 days"):
            await market.add_member_message_aaq_to_partner(
                item_id=order.items[0].listing_id,
                recipient_id=order.extra["buyer_user_id"],
                subject="Hello",
                body="Hello",
                sold_at=s.clock.now() - timedelta(days=91),
            )
        assert s.sandbox.log.count(MESSAGE_ROUTE) == 0


async def test_stale_or_withdrawn_messages_are_dropped_with_a_reason(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped,delayed") as s:
        await s.poll()
        s.service.scan()
        order = s.unshipped()[0]
        await ship(s, order)
        (item,) = s.service.scan()
        s.clock.advance(timedelta(days=4).total_seconds())
        dropped = await s.deliver(item.item_id)
        assert dropped.state is OutboxState.REJECTED and "out of date" in dropped.answer
        assert s.sim.messages == []


async def test_amazon_delay_notice_after_amazon_lists_it(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.AMAZON, events="delayed") as s:
        await s.poll()
        # Orders whose ship-by falls after the opt-in and that the queue cannot finish in time.
        created = s.service.scan()
        assert created, "the simulated queue projects a late order"
        assert all(i.payload["message_type"] == "unexpectedProblem" for i in created)
        assert all(i.payload["subject"] == "" for i in created)
        item = created[0]
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.DONE, done.answer
        sent = [m for m in s.sim.messages if m.order_id == item.order_id]
        assert len(sent) == 1 and sent[0].message_type == "unexpectedProblem"
        assert "will not ship by" in sent[0].text
        assert s.sandbox.log.count("amazon.messaging.actions") == 1
        assert s.service.scan() == [] and len(s.sim.messages) == 1


async def test_amazon_message_not_listed_for_the_order_is_not_sent(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.AMAZON, events="delayed") as s:
        await s.poll()
        item = s.service.scan()[0]
        s.sim.allowed_messages = lambda _order: []  # Amazon stopped offering the message type
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.REJECTED
        assert "does not allow a unexpectedProblem message" in done.answer
        assert s.sandbox.log.count("amazon.messaging.unexpectedProblem") == 0


async def test_amazon_customization_check_for_personalised_orders(tmp_path: Path) -> None:
    options = {"backfill": 0, "orders_per_hour": 30.0}
    async with shop(tmp_path, Platform.AMAZON, events="customization", sim_options=options) as s:
        s.service.scan()  # the opt-in moment: only orders placed after it are asked
        s.clock.advance(4 * 3600)
        await s.poll()
        personalised = [
            o
            for o in s.unshipped()
            if any(i.personalisation for i in o.items) and o.created_at > s.clock.now() - timedelta(hours=4)
        ]
        assert personalised, "new orders include a personalised one"
        created = s.service.scan()
        assert {i.order_id for i in created} == {o.order_id for o in personalised}
        order = personalised[0]
        item = next(i for i in created if i.order_id == order.order_id)
        done = await s.deliver(item.item_id)
        assert done.state is OutboxState.DONE, done.answer
        (sent,) = [m for m in s.sim.messages if m.order_id == order.order_id]
        assert sent.message_type == "confirmCustomizationDetails"
        shown = next(i.personalisation for i in order.items if i.personalisation)
        assert shown in sent.text and len(sent.text) <= 800


async def test_message_text_is_encrypted_at_rest_and_purged_with_the_buyer(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        await s.poll()
        s.service.scan()
        order = s.unshipped()[0]
        await ship(s, order)
        (item,) = s.service.scan()
        await s.deliver(item.item_id)
        kept = s.service.items.get(item.item_id)
        assert kept is not None
        body = str(kept.payload["body"])
        first = body.split(",")[0].removeprefix("Hi ")
        stored = json.loads((s.runtime.store.data_dir / "collections" / "outbox.json").read_text())
        (record,) = [doc for doc in stored["outbox"].values() if doc.get("_key") == item.item_id]
        raw = json.dumps(record)
        assert "body" not in raw and first not in raw and "Hi " not in raw and UPS not in raw

        assert purge_message_bodies(s.runtime.store, s.clock) == 0  # the buyer data is still kept
        s.clock.advance(timedelta(days=40).total_seconds())
        assert s.runtime.store.orders.purge_pii(timedelta(days=30), s.clock.now()) >= 1
        assert purge_message_bodies(s.runtime.store, s.clock) == 1
        (view,) = s.service.history(Platform.EBAY, order.order_id)
        assert view.status == "sent" and "removed" in view.body and UPS not in view.body


async def test_opting_in_never_messages_what_happened_before(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="queued,shipped,delayed") as s:
        await s.poll()
        opted_at = s.clock.now()
        created = s.service.scan()
        assert set(s.runtime.store.meta.get(SINCE_META)) == {"ebay:queued", "ebay:shipped", "ebay:delayed"}
        # Orders placed before the opt-in get no "queued"; overdue ones no late notice; only orders
        # whose ship-by is still ahead and that the queue cannot finish in time are told.
        assert {i.payload["event"] for i in created} <= {"delayed"}
        for item in created:
            order = s.runtime.store.orders.get(Platform.EBAY, item.order_id)
            assert order is not None and order.ship_by is not None and order.ship_by >= opted_at
        assert s.service.scan() == []


async def test_the_poller_queues_and_the_outbox_delivers_once_installed(tmp_path: Path) -> None:
    async with shop(tmp_path, Platform.EBAY, events="shipped") as s:
        engine = s.runtime.engine
        jobs = {name: job for name, _interval, job in engine.periodic}
        assert {"customer-messages", "customer-message-purge"} <= set(jobs)
        assert OutboxKind.MESSAGE in engine.sender.handlers
        await s.poll()
        await jobs["customer-messages"]()
        order = s.unshipped()[0]
        await ship(s, order)
        await jobs["customer-messages"]()
        delivered = [i for i in await engine.sender.deliver_due() if i.kind is OutboxKind.MESSAGE]
        assert [i.state for i in delivered] == [OutboxState.DONE]
        assert ebay_sent(s) == 1
        await jobs["customer-messages"]()
        assert await engine.sender.deliver_due() == [] and ebay_sent(s) == 1
