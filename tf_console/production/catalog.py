"""The shop's catalog: which order lines are printed, which come from stock, and how to print them.

``catalog.toml`` (in the data folder; an annotated example ships as
``tf_console/data/catalog.example.toml``) has three parts:

``[profiles.NAME]``
    How to print one item: ``file``, ``material``, ``colour``, ``nozzle`` (mm),
    ``bed`` (the build plate it needs), ``minutes_per_unit`` (slicer estimate),
    ``units_per_plate``, ``size_mm = [x, y, z]`` (the plate's footprint) and
    ``batch`` (plates of this profile may mix units from different orders).
``[[rules]]``
    SKU rules, tried in the order written; the first that matches decides.
    Exactly one of ``sku`` (exact), ``prefix`` or ``glob`` (``*``, ``?``, ``[…]``);
    ``kind = "print"`` with a ``profile``, or ``kind = "stock"`` with an optional
    ``stock_sku`` to decrement (default: the SKU itself); optional ``platform``
    (a name or a list) limits the rule to those marketplaces; optional ``name``.
``[[title_rules]]``
    The fallback for items whose SKU is empty (Etsy allows that) or matched no rule:
    every word in ``keywords`` must appear in the title (whole words, any case).
``[stock."SKU"]``
    Inventory sync settings of one stock SKU (the shelf item) or one printed SKU sold
    made to order (see :mod:`tf_console.inventory`): ``buffer`` (units held back from
    the marketplaces), ``made_to_order = true`` with ``max`` (the most ever offered)
    and ``lead_days`` (the promised lead time), ``sync = false`` (never push it), and
    ``amazon`` / ``ebay`` / ``etsy``: the listing SKU(s) on that marketplace when they
    differ from this SKU (a name or a list; ``[]`` = never push there).

SKUs and keywords compare case-insensitively: hand-typed Etsy SKUs vary in case,
and no shop keeps two SKUs that differ only by it.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomlkit
from tomlkit.items import AoT, Table

from tf_console.models import ItemKind, LineItem, Order, Platform
from tf_console.paths import write_private
from tf_console.production.errors import ConfigFileError
from tf_console.production.tomlfile import LineFinder, check_keys, parse_toml

MatchKind = Literal["sku", "prefix", "glob"]
_MATCH_KEYS: tuple[MatchKind, ...] = ("sku", "prefix", "glob")
_PROFILE_KEYS = frozenset(
    {"file", "material", "colour", "nozzle", "bed", "minutes_per_unit", "units_per_plate", "size_mm", "batch"}
)
_RULE_KEYS = frozenset({"sku", "prefix", "glob", "kind", "profile", "stock_sku", "platform", "name"})
_TITLE_RULE_KEYS = frozenset({"keywords", "kind", "profile", "stock_sku", "platform", "name"})
_STOCK_KEYS = frozenset({"buffer", "max", "made_to_order", "lead_days", "sync", "amazon", "ebay", "etsy"})
_LISTING_KEYS: tuple[Platform, ...] = (Platform.AMAZON, Platform.EBAY, Platform.ETSY)
_TOP_KEYS = frozenset({"profiles", "rules", "title_rules", "stock"})
NO_RULE = "no catalog rule matched"


@dataclass(frozen=True)
class Profile:
    """How one printed item is made."""

    name: str
    material: str
    minutes_per_unit: float
    units_per_plate: int = 1
    file: str = ""
    colour: str = ""
    nozzle: float | None = None
    bed: str = ""
    size_mm: tuple[float, float, float] | None = None
    batch: bool = False

    def plates_for(self, units: int) -> int:
        return math.ceil(units / self.units_per_plate) if units > 0 else 0

    def describe(self) -> str:
        parts = [self.material]
        if self.colour:
            parts.append(self.colour)
        if self.nozzle is not None:
            parts.append(f"{self.nozzle:g} mm nozzle")
        if self.bed:
            parts.append(self.bed)
        return ", ".join(parts)


@dataclass(frozen=True)
class _Target:
    """What a rule decides: the kind, and the profile or stock SKU that goes with it."""

    kind: ItemKind
    profile: str = ""
    stock_sku: str = ""
    platforms: frozenset[Platform] = frozenset()
    name: str = ""

    def applies_to(self, platform: Platform) -> bool:
        return not self.platforms or platform in self.platforms


@dataclass(frozen=True)
class SkuRule:
    index: int  # 1-based position among [[rules]]
    match: MatchKind
    pattern: str
    target: _Target
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, index: int, match: MatchKind, pattern: str, target: _Target) -> SkuRule:
        regex = re.compile(fnmatch.translate(pattern.casefold())) if match == "glob" else None
        return cls(index, match, pattern, target, regex)

    def matches(self, platform: Platform, folded_sku: str) -> bool:
        if not self.target.applies_to(platform):
            return False
        if self.match == "sku":
            return folded_sku == self.pattern.casefold()
        if self.match == "prefix":
            return folded_sku.startswith(self.pattern.casefold())
        assert self._regex is not None
        return self._regex.match(folded_sku) is not None

    def describe(self) -> str:
        label = f"rule {self.index}"
        if self.target.name:
            label += f" ({self.target.name})"
        return f"{label}: {self.match} {self.pattern}"


@dataclass(frozen=True)
class TitleRule:
    index: int  # 1-based position among [[title_rules]]
    keywords: tuple[str, ...]
    target: _Target
    _regexes: tuple[re.Pattern[str], ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def build(cls, index: int, keywords: tuple[str, ...], target: _Target) -> TitleRule:
        regexes = tuple(re.compile(rf"(?<!\w){re.escape(k)}(?!\w)", re.IGNORECASE) for k in keywords)
        return cls(index, keywords, target, regexes)

    def matches(self, platform: Platform, title: str) -> bool:
        return self.target.applies_to(platform) and all(r.search(title) for r in self._regexes)

    def describe(self) -> str:
        label = f"title rule {self.index}"
        if self.target.name:
            label += f" ({self.target.name})"
        return f"{label}: " + " + ".join(repr(k) for k in self.keywords)


@dataclass(frozen=True)
class Classification:
    """What the catalog says about one line item, and which rule said it."""

    kind: ItemKind
    rule: str
    profile: Profile | None = None
    stock_sku: str = ""


@dataclass(frozen=True)
class StockSettings:
    """A ``[stock."SKU"]`` table: how one SKU's quantity is published on the marketplaces."""

    sku: str
    buffer: int | None = None  # None: the shop-wide default (TF_STOCK_BUFFER)
    max: int | None = None  # made to order: the most ever offered (None: TF_MADE_TO_ORDER_MAX)
    made_to_order: bool = False
    lead_days: float | None = None  # made to order: the promised lead time (None: the default)
    sync: bool = True
    #: listing SKUs per marketplace when they differ from ``sku``; an empty tuple = never push there
    listings: Mapping[Platform, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    rules: tuple[SkuRule, ...] = ()
    title_rules: tuple[TitleRule, ...] = ()
    #: ``[stock."SKU"]`` tables keyed by the casefolded SKU
    stock: Mapping[str, StockSettings] = field(default_factory=dict)

    def stock_settings(self, sku: str) -> StockSettings | None:
        return self.stock.get(sku.strip().casefold())

    def classify(self, platform: Platform, sku: str, title: str) -> Classification:
        folded = sku.strip().casefold()
        if folded:
            for rule in self.rules:
                if rule.matches(platform, folded):
                    return self._decide(rule.target, rule.describe(), sku.strip())
        if title.strip():
            for title_rule in self.title_rules:
                if title_rule.matches(platform, title):
                    return self._decide(title_rule.target, title_rule.describe(), sku.strip())
        return Classification(ItemKind.UNKNOWN, NO_RULE)

    def classify_item(self, platform: Platform, item: LineItem) -> Classification:
        return self.classify(platform, item.sku, item.title)

    def _decide(self, target: _Target, rule: str, sku: str) -> Classification:
        if target.kind is ItemKind.PRINT:
            return Classification(ItemKind.PRINT, rule, profile=self.profiles[target.profile])
        return Classification(ItemKind.STOCK, rule, stock_sku=target.stock_sku or sku)

    def classify_order(self, order: Order) -> Order:
        """The order with every item's kind and deciding rule set (the same object if unchanged)."""
        items: list[LineItem] = []
        changed = False
        for item in order.items:
            decision = self.classify_item(order.platform, item)
            if item.kind is decision.kind and item.kind_rule == decision.rule:
                items.append(item)
            else:
                items.append(item.model_copy(update={"kind": decision.kind, "kind_rule": decision.rule}))
                changed = True
        return order.model_copy(update={"items": items}) if changed else order


# ---------------------------------------------------------------------------
# Parsing


def _platforms(value: Any, what: str, path: Path | str, line: int | None) -> frozenset[Platform]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigFileError(path, line, f"{what}: platform must be a name or a list of names")
    result: set[Platform] = set()
    for name in names:
        try:
            result.add(Platform(name.strip().lower()))
        except ValueError:
            known = ", ".join(p.value for p in Platform)
            raise ConfigFileError(path, line, f"{what}: unknown platform {name!r} (use {known})") from None
    return frozenset(result)


def _text(table: Mapping[str, Any], key: str, what: str, path: Path | str, line: int | None) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise ConfigFileError(path, line, f"{what}: {key} must be text in quotes")
    return value.strip()


def _number(value: Any, key: str, what: str, path: Path | str, line: int | None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0 or math.isnan(value):
        raise ConfigFileError(path, line, f"{what}: {key} must be a positive number")
    return float(value)


def _parse_profile(name: str, table: Any, path: Path | str, lines: LineFinder) -> Profile:
    header = lines.table("profiles", name)
    what = f"profile {name!r}"
    if not isinstance(table, dict):
        raise ConfigFileError(path, header, f"{what} must be a table ([profiles.{name}])")
    check_keys(table, _PROFILE_KEYS, what, path, lines, header)

    def at(key: str) -> int | None:
        return lines.key(key, header)

    material = _text(table, "material", what, path, at("material"))
    if not material:
        raise ConfigFileError(path, header, f'{what} needs a material, e.g. material = "PLA"')
    if "minutes_per_unit" not in table:
        raise ConfigFileError(path, header, f"{what} needs minutes_per_unit (the slicer's estimate)")
    minutes = _number(table["minutes_per_unit"], "minutes_per_unit", what, path, at("minutes_per_unit"))
    units = table.get("units_per_plate", 1)
    if isinstance(units, bool) or not isinstance(units, int) or units < 1:
        raise ConfigFileError(
            path, at("units_per_plate"), f"{what}: units_per_plate must be a whole number ≥ 1"
        )
    nozzle = None
    if "nozzle" in table:
        nozzle = _number(table["nozzle"], "nozzle", what, path, at("nozzle"))
    size: tuple[float, float, float] | None = None
    if "size_mm" in table:
        raw = table["size_mm"]
        if not isinstance(raw, list) or len(raw) != 3:
            raise ConfigFileError(path, at("size_mm"), f"{what}: size_mm must be [x, y, z] in millimetres")
        x, y, z = (_number(v, "size_mm", what, path, at("size_mm")) for v in raw)
        size = (x, y, z)
    batch = table.get("batch", False)
    if not isinstance(batch, bool):
        raise ConfigFileError(path, at("batch"), f"{what}: batch must be true or false")
    return Profile(
        name=name,
        material=material,
        minutes_per_unit=minutes,
        units_per_plate=units,
        file=_text(table, "file", what, path, at("file")),
        colour=_text(table, "colour", what, path, at("colour")),
        nozzle=nozzle,
        bed=_text(table, "bed", what, path, at("bed")),
        size_mm=size,
        batch=batch,
    )


def _parse_target(
    table: Mapping[str, Any],
    what: str,
    profiles: Mapping[str, Profile],
    path: Path | str,
    header: int | None,
    lines: LineFinder,
) -> _Target:
    kind_text = table.get("kind")
    if kind_text not in ("print", "stock"):
        raise ConfigFileError(path, lines.key("kind", header), f'{what}: kind must be "print" or "stock"')
    kind = ItemKind(kind_text)
    profile = _text(table, "profile", what, path, lines.key("profile", header))
    stock_sku = _text(table, "stock_sku", what, path, lines.key("stock_sku", header))
    if kind is ItemKind.PRINT:
        if not profile:
            raise ConfigFileError(
                path, header, f'{what}: a print rule needs profile = "…" naming a [profiles] entry'
            )
        if profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none defined yet"
            raise ConfigFileError(
                path,
                lines.key("profile", header),
                f"{what} names profile {profile!r}, which is not defined ({known})",
            )
        if stock_sku:
            raise ConfigFileError(
                path, lines.key("stock_sku", header), f"{what}: stock_sku belongs on stock rules"
            )
    elif profile:
        raise ConfigFileError(path, lines.key("profile", header), f"{what}: a stock rule takes no profile")
    platforms: frozenset[Platform] = frozenset()
    if "platform" in table:
        platforms = _platforms(table["platform"], what, path, lines.key("platform", header))
    name = _text(table, "name", what, path, lines.key("name", header))
    return _Target(kind, profile, stock_sku, platforms, name)


def _tables(doc: Mapping[str, Any], key: str, path: Path | str, lines: LineFinder) -> list[Any]:
    value = doc.get(key, [])
    if not isinstance(value, list):
        raise ConfigFileError(path, lines.table(key), f"{key} must be written as [[{key}]] tables")
    return value


def _whole(value: Any, key: str, what: str, path: Path | str, line: int | None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigFileError(path, line, f"{what}: {key} must be a whole number of units, 0 or more")
    return value


def _parse_stock(
    sku: str, table: Any, rules: tuple[SkuRule, ...], path: Path | str, lines: LineFinder
) -> StockSettings:
    header = lines.table("stock", sku)
    what = f"stock SKU {sku!r}"
    if not isinstance(table, dict):
        raise ConfigFileError(path, header, f'{what} must be a table ([stock."{sku}"])')
    check_keys(table, _STOCK_KEYS, what, path, lines, header)

    def at(key: str) -> int | None:
        return lines.key(key, header)

    flags = {}
    for key in ("made_to_order", "sync"):
        value = table.get(key, key == "sync")
        if not isinstance(value, bool):
            raise ConfigFileError(path, at(key), f"{what}: {key} must be true or false")
        flags[key] = value
    buffer = _whole(table["buffer"], "buffer", what, path, at("buffer")) if "buffer" in table else None
    most = _whole(table["max"], "max", what, path, at("max")) if "max" in table else None
    lead = (
        _number(table["lead_days"], "lead_days", what, path, at("lead_days"))
        if "lead_days" in table
        else None
    )
    if not flags["made_to_order"]:
        for key in ("max", "lead_days"):
            if key in table:
                raise ConfigFileError(path, at(key), f"{what}: {key} belongs to made_to_order = true SKUs")
    elif not any(
        rule.target.kind is ItemKind.PRINT and rule.matches(platform, sku.casefold())
        for rule in rules
        for platform in _LISTING_KEYS
    ):
        raise ConfigFileError(
            path, at("made_to_order"), f"{what} is made to order but no print rule matches it; add one"
        )
    listings: dict[Platform, tuple[str, ...]] = {}
    for platform in _LISTING_KEYS:
        if platform.value not in table:
            continue
        raw = table[platform.value]
        names = [raw] if isinstance(raw, str) else raw
        if not isinstance(names, list) or not all(isinstance(n, str) and n.strip() for n in names):
            raise ConfigFileError(
                path, at(platform.value), f"{what}: {platform.value} must be a listing SKU or a list of them"
            )
        listings[platform] = tuple(dict.fromkeys(n.strip() for n in names))
    return StockSettings(
        sku=sku,
        buffer=buffer,
        max=most,
        made_to_order=flags["made_to_order"],
        lead_days=lead,
        sync=flags["sync"],
        listings=listings,
    )


def parse_catalog(text: str, path: Path | str) -> Catalog:
    """A catalog from TOML text; :class:`ConfigFileError` names the line and the problem."""
    doc = parse_toml(text, path)
    lines = LineFinder(text)
    check_keys(doc, _TOP_KEYS, "the catalog", path, lines, None)
    raw_profiles = doc.get("profiles", {})
    if not isinstance(raw_profiles, dict):
        raise ConfigFileError(path, None, "profiles must be tables like [profiles.dragon-large]")
    profiles = {name: _parse_profile(name, table, path, lines) for name, table in raw_profiles.items()}

    rules: list[SkuRule] = []
    for number, table in enumerate(_tables(doc, "rules", path, lines), start=1):
        header = lines.array_table("rules", number)
        what = f"rule {number}"
        if not isinstance(table, dict):
            raise ConfigFileError(path, header, f"{what} must be a [[rules]] table")
        check_keys(table, _RULE_KEYS, what, path, lines, header)
        present = [k for k in _MATCH_KEYS if k in table]
        if len(present) != 1:
            raise ConfigFileError(path, header, f"{what} needs exactly one of sku, prefix or glob")
        match = present[0]
        pattern = _text(table, match, what, path, lines.key(match, header))
        if not pattern:
            raise ConfigFileError(path, lines.key(match, header), f"{what}: {match} must not be empty")
        rules.append(
            SkuRule.build(number, match, pattern, _parse_target(table, what, profiles, path, header, lines))
        )

    title_rules: list[TitleRule] = []
    for number, table in enumerate(_tables(doc, "title_rules", path, lines), start=1):
        header = lines.array_table("title_rules", number)
        what = f"title rule {number}"
        if not isinstance(table, dict):
            raise ConfigFileError(path, header, f"{what} must be a [[title_rules]] table")
        check_keys(table, _TITLE_RULE_KEYS, what, path, lines, header)
        raw = table.get("keywords")
        words = [raw] if isinstance(raw, str) else raw
        if (
            not isinstance(words, list)
            or not words
            or not all(isinstance(w, str) and w.strip() for w in words)
        ):
            raise ConfigFileError(
                path, lines.key("keywords", header), f"{what}: keywords must be a non-empty list of words"
            )
        target = _parse_target(table, what, profiles, path, header, lines)
        title_rules.append(TitleRule.build(number, tuple(w.strip() for w in words), target))
    raw_stock = doc.get("stock", {})
    if not isinstance(raw_stock, dict):
        raise ConfigFileError(
            path, lines.top_level("stock"), 'stock must be tables like [stock."STK-NOZZLE-04"]'
        )
    stock: dict[str, StockSettings] = {}
    for sku, table in raw_stock.items():
        settings = _parse_stock(sku.strip(), table, tuple(rules), path, lines)
        folded = settings.sku.casefold()
        if not folded or folded in stock:
            raise ConfigFileError(
                path,
                lines.table("stock", sku),
                f"stock SKU {sku!r} is empty or listed twice (SKUs ignore case)",
            )
        stock[folded] = settings
    return Catalog(profiles, tuple(rules), tuple(title_rules), stock)


def load_catalog(path: Path) -> Catalog:
    return parse_catalog(path.read_text(encoding="utf-8"), path)


# ---------------------------------------------------------------------------
# Writing a rule (``tf-console catalog assign`` and the console's classify key)


@dataclass(frozen=True)
class AssignResult:
    catalog: Catalog
    action: Literal["added", "updated", "unchanged"]
    rule_index: int  # 1-based position of the written rule among [[rules]]


def _scope(platform: Platform | None) -> frozenset[Platform]:
    return frozenset({platform}) if platform is not None else frozenset()


def assign_rule(
    path: Path,
    sku: str,
    kind: ItemKind,
    *,
    profile: str = "",
    stock_sku: str = "",
    platform: Platform | None = None,
) -> AssignResult:
    """Write an exact-SKU rule so ``sku`` classifies as ``kind``, keeping every comment.

    An existing exact rule for the same SKU and platform scope is edited in place;
    otherwise the new rule goes just before the first rule that currently matches
    the SKU (so it wins) or, when none does, at the end.  The file is replaced only
    after the result parses as a valid catalog.
    """
    sku = sku.strip()
    if not sku:
        raise ConfigFileError(
            path, None, "a rule needs a SKU; items without one are classified by title rules"
        )
    if kind is ItemKind.UNKNOWN:
        raise ConfigFileError(path, None, "assign a SKU to print or stock")
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    current = parse_catalog(text, path)
    if kind is ItemKind.PRINT and profile not in current.profiles:
        known = ", ".join(sorted(current.profiles)) or "none yet: add a [profiles.NAME] table first"
        raise ConfigFileError(
            path, None, f"printing {sku} needs --profile naming one of the catalog's profiles ({known})"
        )
    if kind is ItemKind.STOCK and profile:
        raise ConfigFileError(
            path, None, "a stock rule takes no profile; use --stock-sku to name the stock item"
        )

    document = tomlkit.parse(text)
    rules_value = document.get("rules")
    if rules_value is None:
        rules_value = tomlkit.aot()
        document.append("rules", rules_value)
    if not isinstance(rules_value, AoT):
        raise ConfigFileError(path, None, "rules must be written as [[rules]] tables for assign to add one")

    new_rule = tomlkit.table()
    new_rule.add("sku", sku)
    new_rule.add("kind", kind.value)
    if profile:
        new_rule.add("profile", profile)
    if stock_sku:
        new_rule.add("stock_sku", stock_sku)
    if platform is not None:
        new_rule.add("platform", platform.value)

    folded = sku.casefold()
    wanted_scope = _scope(platform)
    action: Literal["added", "updated", "unchanged"] = "added"
    index = len(current.rules)
    for rule in current.rules:
        if (
            rule.match == "sku"
            and rule.pattern.casefold() == folded
            and rule.target.platforms == wanted_scope
        ):
            index = rule.index - 1
            existing: Table = rules_value[index]
            same = (
                existing.get("kind") == kind.value
                and existing.get("profile", "") == profile
                and existing.get("stock_sku", "") == stock_sku
            )
            if same:
                return AssignResult(current, "unchanged", rule.index)
            existing["kind"] = kind.value
            for key, value in (("profile", profile), ("stock_sku", stock_sku)):
                if value:
                    existing[key] = value
                elif key in existing:
                    del existing[key]
            action = "updated"
            break
    else:
        for rule in current.rules:
            platforms = [platform] if platform is not None else list(Platform)
            if any(rule.matches(p, folded) for p in platforms):
                index = rule.index - 1
                break
        if index == len(current.rules):
            rules_value.append(new_rule)
        else:
            rules_value.insert(index, new_rule)

    new_text = tomlkit.dumps(document)
    result = parse_catalog(new_text, path)
    write_private(path, new_text.encode("utf-8"))
    return AssignResult(result, action, index + 1)


def unknown_items(catalog: Catalog, orders: Iterable[Order]) -> list[tuple[Order, LineItem]]:
    """The (order, item) pairs the catalog cannot classify, for review."""
    found: list[tuple[Order, LineItem]] = []
    for order in orders:
        for item in order.items:
            if catalog.classify_item(order.platform, item).kind is ItemKind.UNKNOWN:
                found.append((order, item))
    return found
