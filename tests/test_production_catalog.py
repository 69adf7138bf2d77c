"""Catalog: classification rules, errors with lines, reload on change, and assign keeping comments."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.production_fakes import order
from tf_console.models import ItemKind, LineItem, Platform
from tf_console.production.catalog import NO_RULE, assign_rule, parse_catalog, unknown_items
from tf_console.production.errors import ConfigFileError
from tf_console.production.examples import example_text, install_examples
from tf_console.production.printers import eligibility_problem, parse_printers
from tf_console.production.service import catalog_source

RULES = """\
[profiles.dragon]
material = "PLA"
minutes_per_unit = 120

[profiles.dragon-ebay]
material = "PLA"
minutes_per_unit = 150

[profiles.vase]
material = "PLA"
minutes_per_unit = 200

[[rules]]
name = "eBay only"
sku = "DRAGON"
platform = "ebay"
kind = "print"
profile = "dragon-ebay"

[[rules]]
sku = "prt-drg-special"
kind = "stock"
stock_sku = "SHELF-7"

[[rules]]
glob = "PRT-DRG-*"
kind = "print"
profile = "dragon"

[[rules]]
prefix = "PRT-"
kind = "print"
profile = "vase"

[[rules]]
glob = "STK-[AB]?"
platform = ["amazon", "etsy"]
kind = "stock"

[[title_rules]]
keywords = ["dragon", "articulated"]
kind = "print"
profile = "dragon"

[[title_rules]]
keywords = ["vase"]
platform = "etsy"
kind = "print"
profile = "vase"
"""

CATALOG = parse_catalog(RULES, "catalog.toml")


@pytest.mark.parametrize(
    ("platform", "sku", "title", "kind", "rule", "extra"),
    [
        # exact rules win over later globs; case and surrounding spaces do not matter
        (Platform.ETSY, "PRT-DRG-SPECIAL", "", ItemKind.STOCK, "rule 2: sku prt-drg-special", "SHELF-7"),
        (Platform.ETSY, " prt-drg-red ", "", ItemKind.PRINT, "rule 3: glob PRT-DRG-*", "dragon"),
        # first match wins: PRT-DRG-* comes before the PRT- prefix
        (Platform.EBAY, "PRT-DRG-RED", "", ItemKind.PRINT, "rule 3: glob PRT-DRG-*", "dragon"),
        (Platform.ETSY, "PRT-VASE", "", ItemKind.PRINT, "rule 4: prefix PRT-", "vase"),
        # per-platform rules apply only there
        (Platform.EBAY, "DRAGON", "", ItemKind.PRINT, "rule 1 (eBay only): sku DRAGON", "dragon-ebay"),
        (Platform.AMAZON, "DRAGON", "", ItemKind.UNKNOWN, NO_RULE, ""),
        (Platform.AMAZON, "STK-A1", "", ItemKind.STOCK, "rule 5: glob STK-[AB]?", "STK-A1"),
        (Platform.EBAY, "STK-A1", "", ItemKind.UNKNOWN, NO_RULE, ""),
        (Platform.ETSY, "STK-C1", "", ItemKind.UNKNOWN, NO_RULE, ""),
        # empty or unknown SKUs fall back to title rules, whole words only
        (
            Platform.ETSY,
            "",
            "Articulated Dragon, large",
            ItemKind.PRINT,
            "title rule 1: 'dragon' + 'articulated'",
            "dragon",
        ),
        (Platform.ETSY, "   ", "Spiral VASE", ItemKind.PRINT, "title rule 2: 'vase'", "vase"),
        (Platform.ETSY, "OLD-123", "Spiral vase", ItemKind.PRINT, "title rule 2: 'vase'", "vase"),
        (Platform.EBAY, "", "Spiral vase", ItemKind.UNKNOWN, NO_RULE, ""),
        (Platform.ETSY, "", "Vaseline tub", ItemKind.UNKNOWN, NO_RULE, ""),
        (Platform.ETSY, "", "", ItemKind.UNKNOWN, NO_RULE, ""),
    ],
)
def test_classification_table(
    platform: Platform, sku: str, title: str, kind: ItemKind, rule: str, extra: str
) -> None:
    decision = CATALOG.classify(platform, sku, title)
    assert (decision.kind, decision.rule) == (kind, rule)
    if kind is ItemKind.PRINT:
        assert decision.profile is not None and decision.profile.name == extra
    elif kind is ItemKind.STOCK:
        assert decision.stock_sku == extra


def test_unknown_items_are_listed_for_review() -> None:
    orders = [
        order(
            "1",
            LineItem(line_id="a", sku="", title="Mystery box", quantity=1),
            LineItem(line_id="b", sku="PRT-DRG-1", quantity=1),
        )
    ]
    found = unknown_items(CATALOG, orders)
    assert [(o.order_id, i.line_id) for o, i in found] == [("1", "a")]


@pytest.mark.parametrize(
    ("broken", "line", "words"),
    [
        (RULES.replace('kind = "stock"\nstock_sku', 'kind = "stok"\nstock_sku'), 22, "kind must be"),
        (
            RULES.replace('profile = "vase"\n\n[[rules]]', 'profile = "vases"\n\n[[rules]]'),
            33,
            "names profile 'vases'",
        ),
        (RULES.replace("minutes_per_unit = 200", "minutes_per_unit = 0"), 11, "must be a positive number"),
        (
            RULES.replace('prefix = "PRT-"', 'prefix = "PRT-"\nsku = "X"'),
            30,
            "exactly one of sku, prefix or glob",
        ),
        (RULES.replace('platform = "etsy"', 'platform = "etsi"'), 47, "unknown platform 'etsi'"),
        (RULES.replace('keywords = ["vase"]', "keywords = []"), 46, "keywords must be a non-empty list"),
        (RULES.replace("[[title_rules]]", "[[title_rules]", 1), 40, "Unexpected character"),
        (RULES + '\n[profiles.x]\nmaterial = "PLA"\nminutes = 5\n', 53, "unknown key 'minutes'"),
    ],
)
def test_malformed_catalog_names_file_line_and_problem(broken: str, line: int, words: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        parse_catalog(broken, "catalog.toml")
    assert caught.value.line == line, str(caught.value)
    assert words in caught.value.problem
    assert str(caught.value).startswith(f"catalog.toml, line {line}: ")


def _bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_watched_catalog_reloads_on_change_and_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    source = catalog_source(path)
    assert source.current().rules == () and "does not exist yet" in (source.error or "")
    path.write_text(RULES)
    assert source.current().classify(Platform.ETSY, "PRT-X", "").kind is ItemKind.PRINT
    assert source.error is None

    path.write_text(RULES.replace('prefix = "PRT-"', 'prefix = "PRT-'))
    _bump_mtime(path)
    assert source.current().classify(Platform.ETSY, "PRT-X", "").kind is ItemKind.PRINT
    assert source.error is not None and "line 31" in source.error and "previous version" in source.error

    path.write_text(RULES.replace('prefix = "PRT-"', 'prefix = "PRX-"'))
    _bump_mtime(path)
    assert source.current().classify(Platform.ETSY, "PRT-X", "").kind is ItemKind.UNKNOWN
    assert source.error is None

    path.unlink()
    assert source.current().classify(Platform.ETSY, "PRX-1", "").kind is ItemKind.PRINT
    assert "missing" in (source.error or "")


OWNED = """\
# TitanForge catalog, maintained by Sam.  Do not reorder the dragon rules!

[profiles.dragon]  # the bestseller
material = "PLA"   # silk PLA only
minutes_per_unit = 120

# --- rules ---
[[rules]]
glob = "PRT-DRG-*"   # every dragon colour
kind = "print"
profile = "dragon"

# shelf stuff below
[[rules]]
prefix = "STK-"
kind = "stock"
"""


def test_assign_adds_an_exact_rule_and_keeps_every_comment(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(OWNED)
    result = assign_rule(path, "NEW-LAMP-1", ItemKind.STOCK, stock_sku="LAMP")
    text = path.read_text()
    for comment in (
        "# TitanForge catalog, maintained by Sam.",
        "# the bestseller",
        "# silk PLA only",
        "# --- rules ---",
        "# every dragon colour",
        "# shelf stuff below",
    ):
        assert comment in text
    assert result.action == "added" and result.rule_index == 3
    assert text.endswith('[[rules]]\nsku = "NEW-LAMP-1"\nkind = "stock"\nstock_sku = "LAMP"\n')
    assert result.catalog.classify(Platform.ETSY, "new-lamp-1", "").stock_sku == "LAMP"
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_assign_goes_before_the_rule_it_must_beat_and_edits_its_own_rule_in_place(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(OWNED)
    first = assign_rule(path, "PRT-DRG-KEYRING", ItemKind.STOCK, platform=Platform.ETSY)
    assert first.rule_index == 1
    catalog = first.catalog
    assert catalog.classify(Platform.ETSY, "PRT-DRG-KEYRING", "").kind is ItemKind.STOCK
    assert catalog.classify(Platform.EBAY, "PRT-DRG-KEYRING", "").kind is ItemKind.PRINT
    assert "# every dragon colour" in path.read_text()

    second = assign_rule(path, "prt-drg-keyring", ItemKind.PRINT, profile="dragon", platform=Platform.ETSY)
    assert (second.action, second.rule_index) == ("updated", 1)
    assert len(second.catalog.rules) == 3
    assert second.catalog.classify(Platform.ETSY, "PRT-DRG-KEYRING", "").kind is ItemKind.PRINT
    assert (
        assign_rule(path, "PRT-DRG-KEYRING", ItemKind.PRINT, profile="dragon", platform=Platform.ETSY).action
        == "unchanged"
    )
    assert "# TitanForge catalog, maintained by Sam." in path.read_text()


def test_assign_refuses_what_would_break_the_catalog(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(OWNED)
    with pytest.raises(
        ConfigFileError, match="needs --profile naming one of the catalog's profiles \\(dragon\\)"
    ):
        assign_rule(path, "X", ItemKind.PRINT, profile="nope")
    with pytest.raises(ConfigFileError, match="a stock rule takes no profile"):
        assign_rule(path, "X", ItemKind.STOCK, profile="dragon")
    path.write_text(OWNED.replace('kind = "stock"', 'kind = "stok"'))
    with pytest.raises(ConfigFileError, match="line 16"):
        assign_rule(path, "X", ItemKind.STOCK)
    assert 'kind = "stok"' in path.read_text()


def test_assign_creates_a_catalog_from_nothing(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    result = assign_rule(path, "STK-1", ItemKind.STOCK)
    assert result.catalog.classify(Platform.ETSY, "STK-1", "").kind is ItemKind.STOCK


def test_shipped_examples_are_valid_and_every_profile_has_a_printer(tmp_path: Path) -> None:
    written = install_examples(tmp_path)
    assert {p.name for p in written} == {"catalog.toml", "printers.toml"}
    assert install_examples(tmp_path) == []
    catalog = parse_catalog(example_text("catalog.toml"), "catalog.toml")
    printers = parse_printers(example_text("printers.toml"), "printers.toml")
    assert len(catalog.profiles) >= 8 and len(printers.printers) >= 4
    for profile in catalog.profiles.values():
        assert any(eligibility_problem(profile, p) is None for p in printers.printers), profile.name
    assert any(p.batch for p in catalog.profiles.values())
    for sku in ("PRT-DRAGON-S", "PRT-NAMEPLATE", "PRT-CABLE-CLIP-10", "PRT-PLANTER-M"):
        assert catalog.classify(Platform.ETSY, sku, "").kind is ItemKind.PRINT, sku
    for sku in ("STK-NOZZLE-04", "STK-PLA-1KG-BLK", "STK-PEI-SHEET"):
        assert catalog.classify(Platform.AMAZON, sku, "").kind is ItemKind.STOCK, sku
    assert catalog.classify(Platform.ETSY, "", "Custom Desk Name Plate").kind is ItemKind.PRINT
