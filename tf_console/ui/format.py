"""How values look in cells: short, aligned, and readable without colour.

Every state carries a word or a glyph as well as a style, so the console reads
the same under ``NO_COLOR`` or a monochrome terminal.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from rich.text import Text

from tf_console.models import JobState, OrderStatus, PlatformState, Priority, ShipmentState

SPARK_BARS = "▁▂▃▄▅▆▇█"
DASH = "—"

STATE_STYLES: dict[PlatformState, str] = {
    PlatformState.OK: "green",
    PlatformState.DEGRADED: "yellow",
    PlatformState.DOWN: "bold red",
    PlatformState.DISABLED: "dim",
    PlatformState.REAUTH: "bold magenta",
}

SHIPMENT_STYLES: dict[ShipmentState, str] = {
    ShipmentState.REQUESTED: "cyan",
    ShipmentState.CONFIRMED: "green",
    ShipmentState.REJECTED: "bold red",
    ShipmentState.UNKNOWN: "yellow",
}

SHIPMENT_GLYPHS: dict[ShipmentState, str] = {
    ShipmentState.REQUESTED: "→",
    ShipmentState.CONFIRMED: "✔",
    ShipmentState.REJECTED: "✖",
    ShipmentState.UNKNOWN: "?",
}

STATUS_STYLES: dict[OrderStatus, str] = {
    OrderStatus.PENDING: "dim",
    OrderStatus.UNSHIPPED: "bold",
    OrderStatus.PARTIALLY_SHIPPED: "cyan",
    OrderStatus.SHIPPED: "green",
    OrderStatus.CANCELLED: "dim strike",
}

JOB_STYLES: dict[JobState, str] = {
    JobState.QUEUED: "",
    JobState.PRINTING: "bold cyan",
    JobState.PRINTED: "green",
    JobState.PACKED: "dim",
    JobState.HELD: "yellow",
    JobState.FAILED: "bold red",
    JobState.WITHDRAWN: "dim strike",
}


def text(value: str, style: str = "") -> Text:
    return Text(value, style=style, no_wrap=True, overflow="ellipsis")


def compact_span(delta: timedelta) -> str:
    """``45s``, ``12m``, ``3h05``, ``2d4h``, ``6w`` — the shortest honest reading of a span."""
    seconds = int(abs(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    if days < 14:
        return f"{days}d{hours}h" if hours else f"{days}d"
    return f"{days // 7}w"


def age(created: datetime, now: datetime) -> str:
    return calm_span(now - created) if now >= created else "new"


def calm_span(delta: timedelta) -> str:
    """Like :func:`compact_span` but never in seconds: a cell that changed every second
    would repaint every second (terminal traffic over SSH) for no decision it informs."""
    if abs(delta) < timedelta(minutes=1):
        return "<1m"
    return compact_span(delta)


def countdown(when: datetime | None, now: datetime) -> str:
    if when is None:
        return DASH
    if when <= now:
        return "due"
    return "in " + calm_span(when - now)


def since(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "never"
    if when > now or now - when < timedelta(minutes=1):
        return "just now"
    return compact_span(now - when) + " ago"


def local(when: datetime | None, tz: ZoneInfo, *, with_day: bool = True, now: datetime | None = None) -> str:
    """``Mon 14:20`` within six days of ``now`` (a weekday names one day only then), else ``24 Nov``;
    ``14:20:05`` for times of day."""
    if when is None:
        return DASH
    moment = when.astimezone(tz)
    if not with_day:
        return moment.strftime("%H:%M:%S")
    if now is not None and abs(when - now) >= timedelta(days=6):
        return (
            moment.strftime("%d %b %Y") if abs(when - now) > timedelta(days=300) else moment.strftime("%d %b")
        )
    return moment.strftime("%a %H:%M")


def money(amount: Decimal | None, currency: str) -> str:
    if amount is None:
        return DASH
    return f"{amount:,.2f} {currency}".strip()


def minutes_text(minutes: float | None) -> str:
    if minutes is None:
        return DASH
    total = round(minutes)
    hours, rest = divmod(abs(total), 60)
    sign = "-" if total < 0 else ""
    return f"{sign}{hours}h{rest:02d}" if hours else f"{sign}{rest}m"


def slack_cell(minutes: float | None, late: bool, late_risk: bool) -> Text:
    if minutes is None:
        return text(DASH, "dim")
    shown = ("+" if minutes >= 0 else "") + minutes_text(minutes)
    if late:
        return text(f"✖{shown}", "bold red")
    if late_risk:
        return text(f"!{shown}", "yellow")
    return text(shown, "green")


def ship_by_cell(ship_by: datetime | None, now: datetime, *, is_open: bool, at_risk: bool = False) -> Text:
    """Late in red with a cross, due within a day (or projected late) in yellow with a bang."""
    if ship_by is None:
        return text(DASH, "dim")
    if not is_open:
        return text(ship_by.strftime("%d %b"), "dim")
    if ship_by < now:
        return text("✖late " + compact_span(now - ship_by), "bold red")
    left = ship_by - now
    label = "in " + compact_span(left)
    if at_risk or left < timedelta(hours=24):
        return text("!" + label, "yellow")
    return text(label)


def platform_state_cell(state: PlatformState) -> Text:
    label = "re-auth" if state is PlatformState.REAUTH else state.value
    return text(f"{state.glyph} {label}", STATE_STYLES[state])


def shipment_cell(state: ShipmentState | None) -> Text:
    if state is None:
        return text(DASH, "dim")
    return text(f"{SHIPMENT_GLYPHS[state]} {state.value}", SHIPMENT_STYLES[state])


def status_cell(status: OrderStatus, *, cancel_requested: bool = False, fba: bool = False) -> Text:
    label = status.value.replace("_", " ")
    if cancel_requested:
        return text("⚠ cancel asked", "bold magenta")
    if fba:
        label += " (FBA)"
    return text(label, STATUS_STYLES[status])


def job_state_cell(state: JobState, priority: Priority, flag: str) -> Text:
    marks = ""
    if priority is Priority.RUSH:
        marks = "»"
    elif priority is Priority.LOW:
        marks = "·"
    if flag:
        marks += "⚑"
    style = JOB_STYLES[state]
    if priority is Priority.RUSH and not style:
        style = "bold"
    return text(f"{state.value}{(' ' + marks) if marks else ''}", style)


def meter(value: float, maximum: float, width: int = 6) -> str:
    """``▮▮▮▯▯▯ 12/60``: filled blocks for the share used."""
    if maximum <= 0:
        return f"{int(value)}"
    share = min(1.0, max(0.0, value / maximum))
    filled = round(share * width)
    return "▮" * filled + "▯" * (width - filled) + f" {int(value)}/{int(maximum)}"


def meter_cell(value: float, maximum: float, width: int = 6) -> Text:
    if maximum <= 0:
        return text(DASH, "dim")
    share = value / maximum
    style = "bold red" if share >= 0.95 else "yellow" if share >= 0.75 else ""
    return text(meter(value, maximum, width), style)


def sparkline(values: Sequence[float | None], width: int = 12) -> str:
    """One bar per value (the latest ``width``), scaled to the largest; gaps as a middle dot."""
    shown = list(values)[-width:]
    numbers = [v for v in shown if v is not None]
    if not numbers:
        return "·" * min(width, max(1, len(shown))) if shown else DASH
    top = max(numbers) or 1.0
    bars = []
    for value in shown:
        if value is None:
            bars.append("·")
        else:
            level = round((value / top) * (len(SPARK_BARS) - 1))
            bars.append(SPARK_BARS[max(0, min(len(SPARK_BARS) - 1, level))])
    return "".join(bars)


def percent(rate: float | None) -> str:
    return DASH if rate is None else f"{rate:.0%}"


def percent_cell(rate: float | None) -> Text:
    if rate is None:
        return text(DASH, "dim")
    style = "bold red" if rate < 0.5 else "yellow" if rate < 0.9 else "green"
    return text(percent(rate), style)


def token_cell(expires: datetime | None, now: datetime) -> Text:
    if expires is None:
        return text(DASH, "dim")
    if expires <= now:
        return text("expired", "yellow")
    left = expires - now
    return text(calm_span(left), "yellow" if left < timedelta(minutes=5) else "")


def mix(printed: int, stock: int, unknown: int) -> Text:
    """``P2 S1 ?1``: printed, stock and unclassified units (unknown ones need a rule: key c)."""
    parts = []
    if printed:
        parts.append(f"P{printed}")
    if stock:
        parts.append(f"S{stock}")
    result = text(" ".join(parts))
    if unknown:
        if parts:
            result.append(" ")
        result.append(f"?{unknown}", style="bold yellow")
    if not parts and not unknown:
        return text(DASH, "dim")
    return result


def cell_signature(cell: object) -> str:
    """What must differ for a cell to be repainted (text, style and spans)."""
    if isinstance(cell, Text):
        return f"{cell.plain}\x00{cell.style}\x00{cell.spans!r}"
    return str(cell)
