"""The quantity published for a printed SKU sold made to order.

No shelf count exists for an item that is printed after it sells; what the shop can
promise is how many more units the printers can finish before the lead time it
advertises.  The formula, for a SKU with profile *P*, lead time *L*, cap *max*::

    deadline  = now + L − packing buffer              (printers.toml [schedule])
    printable = Σ over printers eligible for P of
                  (full plates of P that can be cleared off that printer by the
                   deadline, queued behind every job already scheduled on it,
                   starting and clearing only in staffed hours, with changeover)
                  × units_per_plate of P
    shelf     = max(0, on-hand − allocated − buffer)   when on-hand is counted, else 0
    offered   = min(max, shelf + printable)

*printable* is :func:`tf_console.production.scheduler.units_printable_before`; a
plate's time is the slicer estimate times the learned ratio for the SKU on that
printer's model.  Open orders of the SKU are already jobs in the schedule, so they
are not subtracted a second time.  The number is an estimate that moves as plates
finish early or late and as the queue changes; the cap keeps a quiet week from
offering more than the shop wants to take on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from tf_console.models import MARKETPLACES, ItemKind
from tf_console.production.catalog import Catalog, Profile
from tf_console.production.scheduler import Schedule, ScheduleInput, units_printable_before


@dataclass(frozen=True, slots=True)
class MadeToOrderQuote:
    sku: str
    quantity: int
    printable: int
    shelf: int
    cap: int
    deadline: datetime
    explanation: str


def profile_of(catalog: Catalog, sku: str) -> Profile | None:
    """The print profile the catalog gives ``sku`` on any marketplace."""
    for platform in MARKETPLACES:
        decision = catalog.classify(platform, sku, "")
        if decision.kind is ItemKind.PRINT and decision.profile is not None:
            return decision.profile
    return None


def made_to_order_quantity(
    inp: ScheduleInput,
    schedule: Schedule,
    profile: Profile,
    sku: str,
    *,
    lead: timedelta,
    cap: int,
    shelf: int = 0,
) -> MadeToOrderQuote:
    """The quantity to offer now, by the formula in this module's docstring."""
    deadline = inp.now + lead - timedelta(minutes=inp.settings.packing_buffer_minutes)
    printable = units_printable_before(inp, schedule, profile, sku, deadline) if deadline > inp.now else 0
    shelf = max(0, shelf)
    quantity = max(0, min(cap, shelf + printable))
    parts = [f"{printable} printable by {deadline:%Y-%m-%d %H:%M} UTC"]
    if shelf:
        parts.append(f"{shelf} on the shelf")
    explanation = f"min(max {cap}, " + " + ".join(parts) + f") = {quantity}"
    return MadeToOrderQuote(sku, quantity, printable, shelf, cap, deadline, explanation)
