"""In-memory stand-ins for the store's collections, and builders for production tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel

from tf_console.clock import FakeClock
from tf_console.models import LineItem, Order, OrderStatus, Platform, PrintJob
from tf_console.production.records import PlateRun, PrintTimeRatio
from tf_console.production.service import ProductionService, catalog_source, printers_source

M = TypeVar("M", bound=BaseModel)

# Monday 2 Nov 2026, 08:00 in Europe/London (UTC+0 in November).
MONDAY_8AM = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class MemoryCollection(Generic[M]):
    """The Collection contract (get/all/put/put_many/delete) over a dict of JSON copies.

    Records are stored as JSON and re-parsed on read, like the real store, so a test
    cannot pass by mutating a shared object.
    """

    def __init__(self, model: type[M], key: Callable[[M], str]) -> None:
        self._model = model
        self._key = key
        self._docs: dict[str, str] = {}
        self.writes = 0

    def get(self, key: str) -> M | None:
        doc = self._docs.get(key)
        return None if doc is None else self._model.model_validate_json(doc)

    def all(self) -> list[M]:
        return [self._model.model_validate_json(self._docs[k]) for k in sorted(self._docs)]

    def put(self, item: M) -> None:
        self.put_many([item])

    def put_many(self, items: Iterable[M]) -> None:
        batch = list(items)
        if batch:
            self.writes += 1
        for item in batch:
            self._docs[self._key(item)] = item.model_dump_json()

    def delete(self, key: str) -> bool:
        return self._docs.pop(key, None) is not None

    def mutate(self, fn: Callable[[dict[str, M]], None]) -> None:
        records = {key: self._model.model_validate_json(doc) for key, doc in self._docs.items()}
        fn(records)
        self.writes += 1
        self._docs = {key: record.model_dump_json() for key, record in records.items()}


class Repos:
    def __init__(self) -> None:
        self.jobs: MemoryCollection[PrintJob] = MemoryCollection(PrintJob, lambda j: j.job_id)
        self.runs: MemoryCollection[PlateRun] = MemoryCollection(PlateRun, lambda r: r.run_id)
        self.ratios: MemoryCollection[PrintTimeRatio] = MemoryCollection(PrintTimeRatio, lambda r: r.key)


CATALOG_TOML = """\
# Test catalog: the owner's comment at the top.
[profiles.dragon]
material = "PLA"
minutes_per_unit = 120
units_per_plate = 2
nozzle = 0.4

[profiles.clips]
material = "PETG"
minutes_per_unit = 10
units_per_plate = 12
batch = true

[profiles.vase]
material = "PLA"
minutes_per_unit = 600
units_per_plate = 1
nozzle = 0.6

[[rules]]
glob = "PRT-DRG-*"
kind = "print"
profile = "dragon"

[[rules]]
sku = "PRT-CLIP"
kind = "print"
profile = "clips"

[[rules]]
prefix = "PRT-VASE"
kind = "print"
profile = "vase"

[[rules]]
prefix = "STK-"
kind = "stock"
"""

PRINTERS_TOML = """\
[schedule]
staffed_hours = "always"
packing_buffer_minutes = 0
changeover_minutes = 0

[[printers]]
name = "p1"
model = "MK4S"
materials = ["PLA", "PETG"]
build_volume_mm = [250, 210, 220]
nozzle = 0.4

[[printers]]
name = "p2"
model = "MK4S"
materials = ["PLA", "PETG"]
build_volume_mm = [250, 210, 220]
nozzle = 0.4

[[printers]]
name = "vase-1"
model = "XL"
materials = ["PLA"]
build_volume_mm = [360, 360, 360]
nozzle = 0.6
"""


def make_service(
    tmp_path: Path,
    *,
    catalog: str = CATALOG_TOML,
    printers: str = PRINTERS_TOML,
    start: datetime = MONDAY_8AM,
    timezone: str = "Europe/London",
) -> tuple[ProductionService, Repos, FakeClock]:
    (tmp_path / "catalog.toml").write_text(catalog, encoding="utf-8")
    (tmp_path / "printers.toml").write_text(printers, encoding="utf-8")
    repos = Repos()
    clock = FakeClock(start)
    service = ProductionService(
        jobs=repos.jobs,
        runs=repos.runs,
        ratios=repos.ratios,
        catalog=catalog_source(tmp_path / "catalog.toml"),
        printers=printers_source(tmp_path / "printers.toml"),
        timezone=timezone,
        clock=clock,
    )
    return service, repos, clock


def line(
    line_id: str, sku: str, quantity: int = 1, *, title: str = "", personalisation: str = "", shipped: int = 0
) -> LineItem:
    return LineItem(
        line_id=line_id,
        sku=sku,
        title=title,
        quantity=quantity,
        personalisation=personalisation,
        quantity_shipped=shipped,
    )


def order(
    order_id: str,
    *items: LineItem,
    platform: Platform = Platform.ETSY,
    status: OrderStatus = OrderStatus.UNSHIPPED,
    ship_by: datetime | None = MONDAY_8AM + timedelta(days=3),
    created: datetime = MONDAY_8AM - timedelta(hours=1),
    **extra: object,
) -> Order:
    return Order.model_validate(
        {
            "platform": platform,
            "order_id": order_id,
            "status": status,
            "created_at": created,
            "updated_at": created,
            "ship_by": ship_by,
            "items": list(items),
            **extra,
        }
    )
