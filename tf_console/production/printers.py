"""The shop's printers (``printers.toml``) and which printer can take which job.

``[[printers]]`` tables: ``name``, ``model``, ``materials``, ``build_volume_mm =
[x, y, z]``, ``nozzle`` (mm), ``beds`` (the build plates on hand for it) and
``enabled``.  A ``[schedule]`` table holds the shop's working pattern:
``staffed_hours`` (``"08:00-18:00"`` or ``"always"``), ``staffed_days``,
``packing_buffer_minutes``, ``changeover_minutes`` and ``late_risk_margin_minutes``.
The time zone is the shop's ``TF_TIMEZONE``, not part of this file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tf_console.production.catalog import Profile
from tf_console.production.errors import ConfigFileError
from tf_console.production.hours import WEEKDAY_NAMES, StaffedHours
from tf_console.production.tomlfile import LineFinder, check_keys, parse_toml

_PRINTER_KEYS = frozenset({"name", "model", "materials", "build_volume_mm", "nozzle", "beds", "enabled"})
_SCHEDULE_KEYS = frozenset(
    {
        "staffed_hours",
        "staffed_days",
        "packing_buffer_minutes",
        "changeover_minutes",
        "late_risk_margin_minutes",
        "shift_end_lookahead",
        "overnight_gain_minutes",
    }
)
_EPSILON = 1e-6


@dataclass(frozen=True)
class Printer:
    name: str
    model: str
    materials: frozenset[str]  # casefolded
    build_volume_mm: tuple[float, float, float]
    nozzle: float
    beds: frozenset[str] = frozenset()  # casefolded; empty = any plate will do
    enabled: bool = True
    material_labels: tuple[str, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class ScheduleSettings:
    """The knobs of the scheduler; every one a heuristic the shop may tune."""

    hours: StaffedHours = field(default_factory=StaffedHours)
    packing_buffer_minutes: float = 120.0
    changeover_minutes: float = 10.0
    late_risk_margin_minutes: float = 240.0
    # The shift-end heuristic looks this many plates ahead for one that fills the night.
    shift_end_lookahead: int = 8
    # …and only deviates from the list order when that saves at least this much idle time.
    overnight_gain_minutes: float = 60.0
    overload_warn_count: int = 5


@dataclass(frozen=True)
class SchedulePattern:
    """The ``[schedule]`` table as written; the time zone joins it from the settings."""

    staffed_hours: str = "08:00-18:00"
    staffed_days: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    packing_buffer_minutes: float = 120.0
    changeover_minutes: float = 10.0
    late_risk_margin_minutes: float = 240.0
    shift_end_lookahead: int = 8
    overnight_gain_minutes: float = 60.0

    def settings(self, timezone: str) -> ScheduleSettings:
        return ScheduleSettings(
            hours=StaffedHours.parse(self.staffed_hours, self.staffed_days, timezone),
            packing_buffer_minutes=self.packing_buffer_minutes,
            changeover_minutes=self.changeover_minutes,
            late_risk_margin_minutes=self.late_risk_margin_minutes,
            shift_end_lookahead=self.shift_end_lookahead,
            overnight_gain_minutes=self.overnight_gain_minutes,
        )


@dataclass(frozen=True)
class PrinterConfig:
    printers: tuple[Printer, ...] = ()
    pattern: SchedulePattern = field(default_factory=SchedulePattern)

    def by_name(self, name: str) -> Printer | None:
        folded = name.strip().casefold()
        return next((p for p in self.printers if p.name.casefold() == folded), None)


def eligibility_problem(profile: Profile, printer: Printer) -> str | None:
    """Why ``printer`` cannot print ``profile`` as a clause, or None when it can."""
    if not printer.enabled:
        return "is disabled in printers.toml"
    if profile.material.casefold() not in printer.materials:
        loaded = ", ".join(printer.material_labels) or "none"
        return f"does not print {profile.material} (it takes {loaded})"
    if profile.nozzle is not None and abs(profile.nozzle - printer.nozzle) > _EPSILON:
        return f"has a {printer.nozzle:g} mm nozzle, not {profile.nozzle:g} mm"
    if profile.bed and printer.beds and profile.bed.casefold() not in printer.beds:
        return f"has no {profile.bed} plate"
    if profile.size_mm is not None:
        x, y, z = profile.size_mm
        bx, by, bz = printer.build_volume_mm
        fits_flat = (x <= bx + _EPSILON and y <= by + _EPSILON) or (x <= by + _EPSILON and y <= bx + _EPSILON)
        if not fits_flat or z > bz + _EPSILON:
            return f"is too small ({bx:g}×{by:g}×{bz:g} mm) for {x:g}×{y:g}×{z:g} mm"
    return None


def _strings(value: Any, key: str, what: str, path: Path | str, line: int | None) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigFileError(path, line, f"{what}: {key} must be a list of names in quotes")
    return [v.strip() for v in value]


def _positive(
    value: Any, key: str, what: str, path: Path | str, line: int | None, *, zero_ok: bool = False
) -> float:
    ok = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (value >= 0 if zero_ok else value > 0)
    )
    if not ok:
        bound = "zero or more" if zero_ok else "a positive number"
        raise ConfigFileError(path, line, f"{what}: {key} must be {bound}")
    return float(value)


def _parse_printer(number: int, table: Any, path: Path | str, lines: LineFinder) -> Printer:
    header = lines.array_table("printers", number)
    what = f"printer {number}"
    if not isinstance(table, dict):
        raise ConfigFileError(path, header, f"{what} must be a [[printers]] table")
    check_keys(table, _PRINTER_KEYS, what, path, lines, header)
    name = table.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigFileError(path, header, f'{what} needs a name, e.g. name = "mk4s-1"')
    what = f"printer {name!r}"
    model = table.get("model", "")
    if not isinstance(model, str) or not model.strip():
        raise ConfigFileError(
            path, lines.key("model", header), f'{what} needs a model, e.g. model = "Prusa MK4S"'
        )
    materials = _strings(table.get("materials"), "materials", what, path, lines.key("materials", header))
    volume = table.get("build_volume_mm")
    if not isinstance(volume, list) or len(volume) != 3:
        raise ConfigFileError(
            path,
            lines.key("build_volume_mm", header),
            f"{what}: build_volume_mm must be [x, y, z] in millimetres",
        )
    x, y, z = (
        _positive(v, "build_volume_mm", what, path, lines.key("build_volume_mm", header)) for v in volume
    )
    nozzle = _positive(table.get("nozzle", 0.4), "nozzle", what, path, lines.key("nozzle", header))
    beds = (
        _strings(table.get("beds", []), "beds", what, path, lines.key("beds", header))
        if "beds" in table
        else []
    )
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        raise ConfigFileError(path, lines.key("enabled", header), f"{what}: enabled must be true or false")
    return Printer(
        name=name.strip(),
        model=model.strip(),
        materials=frozenset(m.casefold() for m in materials),
        build_volume_mm=(x, y, z),
        nozzle=nozzle,
        beds=frozenset(b.casefold() for b in beds),
        enabled=enabled,
        material_labels=tuple(materials),
    )


def _parse_pattern(raw: Any, path: Path | str, lines: LineFinder, timezone_check: str) -> SchedulePattern:
    header = lines.table("schedule")
    if not isinstance(raw, dict):
        raise ConfigFileError(path, header, "schedule must be a [schedule] table")
    check_keys(raw, _SCHEDULE_KEYS, "[schedule]", path, lines, header)
    defaults = SchedulePattern()
    hours = raw.get("staffed_hours", defaults.staffed_hours)
    if not isinstance(hours, str):
        raise ConfigFileError(
            path, lines.key("staffed_hours", header), 'staffed_hours must be text like "08:00-18:00"'
        )
    days = (
        _strings(raw["staffed_days"], "staffed_days", "[schedule]", path, lines.key("staffed_days", header))
        if "staffed_days" in raw
        else list(defaults.staffed_days)
    )
    for day in days:
        if day.lower()[:3] not in WEEKDAY_NAMES:
            line = lines.key("staffed_days", header)
            raise ConfigFileError(path, line, f"staffed day {day!r} is not a weekday name (mon … sun)")

    def minutes(key: str, default: float) -> float:
        if key not in raw:
            return default
        return _positive(raw[key], key, "[schedule]", path, lines.key(key, header), zero_ok=True)

    lookahead = raw.get("shift_end_lookahead", defaults.shift_end_lookahead)
    if isinstance(lookahead, bool) or not isinstance(lookahead, int) or lookahead < 0:
        raise ConfigFileError(
            path, lines.key("shift_end_lookahead", header), "shift_end_lookahead must be a whole number ≥ 0"
        )
    pattern = SchedulePattern(
        staffed_hours=hours,
        staffed_days=tuple(days),
        packing_buffer_minutes=minutes("packing_buffer_minutes", defaults.packing_buffer_minutes),
        changeover_minutes=minutes("changeover_minutes", defaults.changeover_minutes),
        late_risk_margin_minutes=minutes("late_risk_margin_minutes", defaults.late_risk_margin_minutes),
        shift_end_lookahead=lookahead,
        overnight_gain_minutes=minutes("overnight_gain_minutes", defaults.overnight_gain_minutes),
    )
    try:
        pattern.settings(timezone_check)
    except ValueError as exc:
        raise ConfigFileError(path, lines.key("staffed_hours", header), str(exc)) from None
    return pattern


def parse_printers(text: str, path: Path | str) -> PrinterConfig:
    doc = parse_toml(text, path)
    lines = LineFinder(text)
    check_keys(doc, frozenset({"printers", "schedule"}), "printers.toml", path, lines, None)
    raw_printers = doc.get("printers", [])
    if not isinstance(raw_printers, list):
        raise ConfigFileError(
            path, lines.table("printers"), "printers must be written as [[printers]] tables"
        )
    printers = [_parse_printer(n, table, path, lines) for n, table in enumerate(raw_printers, start=1)]
    seen: set[str] = set()
    for number, printer in enumerate(printers, start=1):
        folded = printer.name.casefold()
        if folded in seen:
            raise ConfigFileError(
                path, lines.array_table("printers", number), f"printer name {printer.name!r} is used twice"
            )
        seen.add(folded)
    pattern = _parse_pattern(doc.get("schedule", {}), path, lines, "UTC")
    return PrinterConfig(tuple(printers), pattern)


def load_printers(path: Path) -> PrinterConfig:
    return parse_printers(path.read_text(encoding="utf-8"), path)
