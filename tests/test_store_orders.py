"""Orders: upsert, merge, hot/archive placement, re-polls of archived orders, PII purge."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import (
    BUYER_NAME,
    NOW,
    PERSONALISATION,
    make_order,
    open_store,
    shipped_order,
)

from tf_console.clock import FakeClock
from tf_console.models import Address, Order, OrderStatus, Platform
from tf_console.store import Store
from tf_console.store.orders import PII_FIELD, encode_order_document
from tf_console.store.storage import doc_id_for


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(tmp_path / "data")
    yield opened
    opened.close()


def _files_holding(store: Store, order_id: str) -> list[str]:
    return sorted(
        path.name
        for path in (store.data_dir / "orders").glob("*.json")
        if f'"order_id":"{order_id}"' in path.read_text()
    )


def test_upsert_is_idempotent(store: Store) -> None:
    first = store.orders.upsert_many([make_order("1"), make_order("2")])
    assert first.inserted == ["etsy:1", "etsy:2"] and first.updated == [] and first.unchanged == []
    token = store.change_token()
    again = store.orders.upsert_many([make_order("1"), make_order("2")])
    assert again.inserted == [] and again.updated == [] and again.unchanged == ["etsy:1", "etsy:2"]
    assert not store.changed_since(token), "an unchanged order must not rewrite any file"
    assert store.orders.get("etsy", "1") == make_order("1")
    assert store.orders.count() == 2


def test_upsert_updates_and_reports(store: Store) -> None:
    store.orders.upsert_many([make_order("1"), make_order("2")])
    result = store.orders.upsert_many([make_order("1", total="50.00"), make_order("2"), make_order("3")])
    assert result.updated == ["etsy:1"] and result.unchanged == ["etsy:2"] and result.inserted == ["etsy:3"]
    stored = store.orders.get("etsy", "1")
    assert stored is not None and stored.total is not None and str(stored.total.amount) == "50.00"
    # Only the buyer changing still counts as an update, and the new buyer is stored.
    changed_buyer = make_order("2", buyer_name="Someone Else")
    assert store.orders.upsert_many([changed_buyer]).updated == ["etsy:2"]
    assert store.orders.get("etsy", "2") == changed_buyer


def test_merge_sees_existing_and_may_leave_unchanged(store: Store) -> None:
    store.orders.upsert_many([make_order("1", total="10.00")])
    seen: list[tuple[str | None, str]] = []

    def keep_higher_total(existing: Order | None, incoming: Order) -> Order | None:
        seen.append((existing.order_id if existing else None, incoming.order_id))
        assert existing is None or existing.buyer is not None  # the merge sees decrypted PII
        if (
            existing is not None
            and existing.total
            and incoming.total
            and existing.total.amount >= incoming.total.amount
        ):
            return None
        return incoming

    result = store.orders.upsert_many(
        [make_order("1", total="5.00"), make_order("2", total="7.00"), make_order("2", total="9.00")],
        merge=keep_higher_total,
    )
    assert seen == [("1", "1"), (None, "2"), ("2", "2")], "a repeated key merges with the batch's result"
    assert result.unchanged == ["etsy:1"] and result.inserted == ["etsy:2"]
    stored = store.orders.get("etsy", "2")
    assert stored is not None and stored.total is not None and str(stored.total.amount) == "9.00"
    with pytest.raises(ValueError, match="keep the key"):
        store.orders.upsert_many([make_order("1")], merge=lambda e, i: make_order("99"))


def test_update_and_open_orders(store: Store) -> None:
    store.orders.upsert_many(
        [
            make_order("b", created_at=NOW - timedelta(hours=1)),
            make_order("a", created_at=NOW - timedelta(hours=2)),
            shipped_order("c", days_ago=1),
        ]
    )
    assert [o.order_id for o in store.orders.open_orders()] == ["a", "b"]
    shipped = store.orders.update("etsy", "a", lambda o: o.model_copy(update={"status": OrderStatus.SHIPPED}))
    assert shipped.status is OrderStatus.SHIPPED
    assert [o.order_id for o in store.orders.open_orders()] == ["b"]
    fetched = store.orders.get("etsy", "a")
    assert (
        fetched is not None
        and fetched.status is OrderStatus.SHIPPED
        and fetched.buyer == make_order("a").buyer
    )
    with pytest.raises(KeyError):
        store.orders.update("etsy", "missing", lambda o: o)
    with pytest.raises(ValueError, match="keep the key"):
        store.orders.update("etsy", "b", lambda o: o.model_copy(update={"order_id": "zzz"}))
    assert store.orders.get("amazon", "a") is None


def test_old_closed_orders_go_to_the_archive_and_stay_visible(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    with open_store(tmp_path / "data", clock=clock) as store:
        store.orders.upsert_many(
            [
                make_order("open"),
                shipped_order("recent", days_ago=5),
                shipped_order("old", days_ago=45),
                make_order(
                    "cancelled",
                    status=OrderStatus.CANCELLED,
                    created_at=NOW - timedelta(days=300),
                    updated_at=NOW - timedelta(days=299),
                ),
            ]
        )
        # Ingest files an already old closed order straight into the archive month of created_at.
        old_month = (NOW - timedelta(days=47)).strftime("%Y-%m")
        assert _files_holding(store, "old") == [f"archive-{old_month}.json"]
        assert _files_holding(store, "cancelled") == [
            f"archive-{(NOW - timedelta(days=300)).strftime('%Y-%m')}.json"
        ]
        assert _files_holding(store, "recent")[0].startswith("hot-")

        clock.advance(timedelta(days=30).total_seconds())
        assert store.orders.archive_old() == 1  # "recent" is now 35 days past its last update
        assert _files_holding(store, "recent")[0].startswith("archive-")
        assert store.orders.archive_old() == 0

        for order_id in ("open", "recent", "old", "cancelled"):
            found = store.orders.get("etsy", order_id)
            assert found is not None and found.buyer is not None and found.buyer.name == BUYER_NAME
        assert sorted(o.order_id for o in store.orders.iter_all()) == ["cancelled", "old", "open", "recent"]
        assert [o.order_id for o in store.orders.iter_all(include_archive=False)] == ["open"]
        assert store.orders.count() == 4 and store.orders.count(include_archive=False) == 1
        hot_bytes = sum(p.stat().st_size for p in (store.data_dir / "orders").glob("hot-*.json"))
        archive_bytes = sum(p.stat().st_size for p in (store.data_dir / "orders").glob("archive-*.json"))
        assert hot_bytes < archive_bytes


def test_repoll_of_archived_order_updates_it_in_place_or_moves_it_back(tmp_path: Path) -> None:
    with open_store(tmp_path / "data") as store:
        old = shipped_order("old", days_ago=100)
        store.orders.upsert_many([old])
        [archive_name] = _files_holding(store, "old")
        assert archive_name.startswith("archive-")

        refunded = old.model_copy(update={"refunded": True, "updated_at": NOW})
        result = store.orders.upsert_many([refunded])
        assert result.updated == ["etsy:old"] and result.inserted == []
        assert _files_holding(store, "old") == [archive_name], "a late refund stays in its archive file"
        assert store.orders.get("etsy", "old") == refunded
        assert store.orders.count() == 1

        assert store.orders.upsert_many([refunded]).unchanged == ["etsy:old"]

        reopened = refunded.model_copy(update={"status": OrderStatus.UNSHIPPED})
        assert store.orders.upsert_many([reopened]).updated == ["etsy:old"]
        [hot_name] = _files_holding(store, "old")
        assert hot_name.startswith("hot-"), "a re-opened order moves back to the hot shards"
        assert [o.order_id for o in store.orders.open_orders()] == ["old"]
        assert store.orders.count() == 1


def test_update_finds_an_archived_order_without_its_creation_date(store: Store) -> None:
    store.orders.upsert_many([shipped_order("old", days_ago=200), shipped_order("older", days_ago=400)])
    updated = store.orders.update("etsy", "older", lambda o: o.model_copy(update={"refunded": True}))
    assert updated.refunded
    fetched = store.orders.get("etsy", "older")
    assert fetched is not None and fetched.refunded
    direct = store.orders.get("etsy", "older", created_at=shipped_order("older", days_ago=400).created_at)
    assert direct == fetched


def test_a_copy_left_by_an_interrupted_move_is_seen_once(store: Store) -> None:
    """A crash between writing the destination and cleaning the source leaves two copies."""
    old = shipped_order("dup", days_ago=100)
    store.orders.upsert_many([old])
    reopened = old.model_copy(
        update={"status": OrderStatus.UNSHIPPED, "total": make_order("x", total="1.00").total}
    )
    store.orders.upsert_many([reopened])
    assert [name[:4] for name in _files_holding(store, "dup")] == ["hot-"]
    # Put the stale archived copy back, as if the clean-up write never happened.
    month = (NOW - timedelta(days=102)).strftime("%Y-%m")
    stale_file = store.core.table_file(
        store.core.orders_dir / f"archive-{month}.json", "orders", bounded=True
    )
    with store.lock():
        stale_file.replace({doc_id_for("etsy:dup"): encode_order_document(old, store.cipher)})
    assert [o.status for o in store.orders.iter_all()] == [OrderStatus.UNSHIPPED]
    assert store.orders.count() == 1
    assert store.orders.get("etsy", "dup") == reopened


def test_iter_all_without_pii_skips_decryption(store: Store) -> None:
    store.orders.upsert_many([make_order("1"), shipped_order("2", days_ago=90)])
    orders = list(store.orders.iter_all(include_pii=False))
    assert len(orders) == 2
    assert all(o.buyer is None and all(i.personalisation == "" for i in o.items) for o in orders)


def test_purge_pii_redacts_exactly_the_orders_past_the_limit(tmp_path: Path) -> None:
    with open_store(tmp_path / "data") as store:
        store.orders.upsert_many(
            [
                make_order("open-old", created_at=NOW - timedelta(days=90)),
                shipped_order("shipped-29", days_ago=29),
                shipped_order("shipped-31", days_ago=31),
                shipped_order("shipped-400", days_ago=400),
                make_order(
                    "cancelled-60",
                    status=OrderStatus.CANCELLED,
                    created_at=NOW - timedelta(days=61),
                    updated_at=NOW - timedelta(days=60),
                ),
                make_order(
                    "cancelled-10",
                    status=OrderStatus.CANCELLED,
                    created_at=NOW - timedelta(days=11),
                    updated_at=NOW - timedelta(days=10),
                ),
            ]
        )
        envelopes_before = {
            o.order_id: _envelope(store, o.order_id) for o in store.orders.iter_all(include_pii=False)
        }
        assert store.orders.purge_pii(timedelta(days=30), NOW) == 3
        redacted = {"shipped-31", "shipped-400", "cancelled-60"}
        for order in store.orders.iter_all():
            if order.order_id in redacted:
                assert order.pii_redacted and order.buyer is None
                assert all(item.personalisation == "" for item in order.items)
                assert _envelope(store, order.order_id) is None
            else:
                assert not order.pii_redacted and order.buyer is not None
                assert order.items[0].personalisation == PERSONALISATION
        assert store.orders.purge_pii(timedelta(days=30), NOW) == 0

        # The purged envelopes are gone from every byte on disk, backups included.
        everything = b"".join(p.read_bytes() for p in store.data_dir.rglob("*") if p.is_file())
        for order_id in redacted:
            envelope = envelopes_before[order_id]
            assert envelope is not None and envelope.encode() not in everything

        # A re-poll bringing the buyer back does not undo the purge.
        store.orders.upsert_many([shipped_order("shipped-31", days_ago=31)])
        again = store.orders.get("etsy", "shipped-31")
        assert again is not None and again.pii_redacted and again.buyer is None
        assert again.items[0].personalisation == ""


def _envelope(store: Store, order_id: str) -> str | None:
    for table_file in store.orders.hot_files() + store.orders.archive_files():
        for doc in table_file.documents().values():
            if doc["order_id"] == order_id:
                token = doc.get(PII_FIELD)
                return str(token) if token else None
    raise AssertionError(order_id)


def test_threads_writing_at_once_lose_nothing(store: Store) -> None:
    def add(prefix: str) -> None:
        for i in range(40):
            store.orders.upsert_many([make_order(f"{prefix}-{i}")])
            store.orders.update("etsy", f"{prefix}-{i}", lambda o: o.model_copy(update={"refunded": True}))

    threads = [threading.Thread(target=add, args=(name,)) for name in ("a", "b", "c")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    orders = list(store.orders.iter_all())
    assert len(orders) == 120 and all(o.refunded for o in orders)


def test_another_store_instance_sees_writes_at_once(tmp_path: Path) -> None:
    with open_store(tmp_path / "data") as first, open_store(tmp_path / "data") as second:
        first.orders.upsert_many([make_order("1")])
        assert second.orders.get("etsy", "1") is not None
        second.orders.update("etsy", "1", lambda o: o.model_copy(update={"refunded": True}))
        seen = first.orders.get("etsy", "1")
        assert seen is not None and seen.refunded
        first.orders.upsert_many([shipped_order("2", days_ago=100)])
        assert second.orders.count() == 2


def test_platforms_are_separate_keys(store: Store) -> None:
    store.orders.upsert_many(
        [make_order("1", platform=Platform.AMAZON), make_order("1", platform=Platform.EBAY)]
    )
    amazon = store.orders.get("amazon", "1")
    assert amazon is not None and amazon.platform is Platform.AMAZON
    assert store.orders.count() == 2


def test_orders_without_pii_have_no_envelope(store: Store) -> None:
    bare = make_order("1").model_copy(update={"buyer": None, "items": []})
    store.orders.upsert_many([bare])
    assert _envelope(store, "1") is None
    assert store.orders.get("etsy", "1") == bare
    with_empty_buyer = bare.model_copy(update={"buyer": Address()})
    assert store.orders.upsert_many([with_empty_buyer]).updated == ["etsy:1"]
    assert store.orders.get("etsy", "1") == with_empty_buyer


def test_purge_also_clears_envelopes_left_in_hot_backups(tmp_path: Path) -> None:
    clock = FakeClock(NOW)
    with open_store(tmp_path / "data", clock=clock) as store:
        store.orders.upsert_many([shipped_order("moved", days_ago=20), make_order("open")])
        envelope = _envelope(store, "moved")
        assert envelope is not None
        clock.advance(timedelta(days=15).total_seconds())
        assert store.orders.archive_old() == 1
        everything = b"".join(p.read_bytes() for p in store.data_dir.rglob("*") if p.is_file())
        assert envelope.encode() in everything, "the hot shard's backup still holds it before the purge"
        assert store.orders.purge_pii(timedelta(days=30)) == 1
        everything = b"".join(p.read_bytes() for p in store.data_dir.rglob("*") if p.is_file())
        assert envelope.encode() not in everything
        still_open = store.orders.get("etsy", "open")
        assert still_open is not None and still_open.buyer is not None
