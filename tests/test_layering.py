"""The house rules on who may import what, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "tf_console"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text("utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def modules_under(folder: str) -> list[Path]:
    root = PACKAGE / folder
    return sorted(root.rglob("*.py")) if root.is_dir() else [PACKAGE / f"{folder}.py"]


def offenders(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    bad = []
    for path in modules_under(folder):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in forbidden):
                bad.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    return bad


def test_domain_core_imports_nothing_above_it() -> None:
    for module in ("models", "clock", "crypto", "paths", "errors"):
        assert (
            offenders(module, ("tf_console.store", "tf_console.sync", "tf_console.ui", "textual", "httpx"))
            == []
        )


def test_marketplaces_and_sandbox_never_import_the_ui() -> None:
    for folder in ("marketplaces", "sandbox", "store", "sync", "production"):
        assert offenders(folder, ("tf_console.ui", "textual")) == []


def test_ui_never_talks_http_or_tinydb() -> None:
    assert (
        offenders("ui", ("httpx", "tinydb", "tf_console.store.storage", "tf_console.marketplaces.http")) == []
    )


_PARSERS = {"fromstring", "parse", "iterparse", "XMLParser", "XML", "XMLPullParser", "fromstringlist"}


def test_xml_is_parsed_with_defusedxml_only() -> None:
    """The standard library may *build* XML; only defusedxml may *parse* it."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        names = imports_of(path)
        assert not any(n.startswith(("xml.dom", "xml.sax", "lxml")) for n in names), path
        stdlib_aliases = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.startswith("xml.etree")
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("xml.etree"):
                assert not {a.name for a in node.names} & _PARSERS, f"{path} imports a stdlib XML parser"
            if (
                isinstance(node, ast.Attribute)
                and node.attr in _PARSERS
                and isinstance(node.value, ast.Name)
                and node.value.id in stdlib_aliases
            ):
                raise AssertionError(f"{path}:{node.lineno} parses XML with the standard library")
