"""Shared helpers of the Amazon tests: a small Swagger 2.0 checker, JSON shapes, the sandbox rig.

The checker covers what the SP-API models use (``$ref``, ``type``, ``required``,
``properties``, ``items``, ``enum``, ``minItems``, ``minimum``, ``date-time``);
``strict`` also reports keys a model does not declare, so a payload that passes
uses only the model's own names.  Its own tests are at the bottom.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.conftest import conformance_dir
from tf_console.clock import FakeClock
from tf_console.marketplaces.amazon import AmazonMarketplace, create_amazon_marketplace
from tf_console.marketplaces.http import ClientSettings
from tf_console.sandbox import LoopbackServer, Sandbox
from tf_console.sandbox.amazon import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    DEMO_SELLER_ID,
    US_MARKETPLACE,
    AmazonShopSimulator,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "amazon"


# ---------------------------------------------------------------------------
# Swagger 2.0 subset


@dataclass(frozen=True)
class Model:
    definitions: dict[str, Any]

    @classmethod
    def load(cls, name: str) -> Model:
        spec = json.loads((conformance_dir("amazon") / "specs" / name).read_text("utf-8"))
        return cls(spec["definitions"])

    def check(self, instance: Any, definition: str, *, strict: bool = True) -> list[str]:
        return check(instance, {"$ref": f"#/definitions/{definition}"}, self.definitions, strict=strict)


_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def check(
    instance: Any, schema: dict[str, Any], definitions: dict[str, Any], *, strict: bool, at: str = "$"
) -> list[str]:
    """Every way ``instance`` breaks ``schema`` (empty when it conforms)."""
    while "$ref" in schema:
        schema = definitions[schema["$ref"].rsplit("/", 1)[-1]]
    problems: list[str] = []
    kind = schema.get("type")
    if kind is None and "properties" in schema:
        kind = "object"
    if kind is not None:
        allowed = _TYPES[kind]
        is_bool = isinstance(instance, bool)
        if not isinstance(instance, allowed) or (is_bool and kind in ("integer", "number")):
            return [f"{at}: expected {kind}, got {type(instance).__name__}"]
    if "enum" in schema and instance not in schema["enum"]:
        problems.append(f"{at}: {instance!r} is not one of {schema['enum']}")
    is_number = isinstance(instance, int | float) and not isinstance(instance, bool)
    if is_number and "minimum" in schema and instance < schema["minimum"]:
        problems.append(f"{at}: {instance} is below {schema['minimum']}")
    if isinstance(instance, str) and schema.get("format") == "date-time" and instance:
        try:
            datetime.fromisoformat(instance.replace("Z", "+00:00"))
        except ValueError:
            problems.append(f"{at}: {instance!r} is not a date-time")
    if isinstance(instance, dict):
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in instance:
                problems.append(f"{at}: missing required {name!r}")
        extra = schema.get("additionalProperties")
        for name, value in instance.items():
            if name in properties:
                problems.extend(check(value, properties[name], definitions, strict=strict, at=f"{at}.{name}"))
            elif isinstance(extra, dict):
                problems.extend(check(value, extra, definitions, strict=strict, at=f"{at}.{name}"))
            elif extra is False or (strict and properties and extra is not True):
                problems.append(f"{at}: {name!r} is not in the model")
    if isinstance(instance, list):
        if "minItems" in schema and len(instance) < schema["minItems"]:
            problems.append(f"{at}: fewer than {schema['minItems']} items")
        item_schema = schema.get("items")
        if isinstance(item_schema, dict):
            for n, value in enumerate(instance):
                problems.extend(check(value, item_schema, definitions, strict=strict, at=f"{at}[{n}]"))
    return problems


# ---------------------------------------------------------------------------
# JSON shapes: (path, type) pairs, list items under "[]"


def shapes(value: Any, at: str = "") -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    if isinstance(value, dict):
        found.add((at or "$", "object"))
        for key, inner in value.items():
            found |= shapes(inner, f"{at}.{key}")
    elif isinstance(value, list):
        found.add((at or "$", "array"))
        for inner in value:
            found |= shapes(inner, f"{at}[]")
    else:
        kind = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
        found.add((at or "$", kind[type(value)]))
    return found


def conformance_json(name: str) -> Any:
    return json.loads((conformance_dir("amazon") / name).read_text("utf-8"))


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# ---------------------------------------------------------------------------
# The rig: a seeded Amazon simulator on a loopback port, and a client pointed at it


@dataclass
class Rig:
    clock: FakeClock
    sandbox: Sandbox
    sim: AmazonShopSimulator
    server: LoopbackServer
    market: AmazonMarketplace

    def confirm_posts(self, *, applied_only: bool = False) -> int:
        return self.sandbox.log.count("amazon.shipment.confirm", applied_only=applied_only)

    def new_market(self, **kw: Any) -> AmazonMarketplace:
        return make_market(self.server.base_url, self.clock, **kw)


def make_market(base_url: str, clock: FakeClock, **kw: Any) -> AmazonMarketplace:
    options: dict[str, Any] = {
        "api_url": base_url,
        "lwa_url": f"{base_url}/auth/o2/token",
        "seller_id": DEMO_SELLER_ID,
        "marketplace_ids": [US_MARKETPLACE],
        "client_id": DEMO_CLIENT_ID,
        "client_secret": DEMO_CLIENT_SECRET,
        "refresh_token": DEMO_REFRESH_TOKEN,
        "clock": clock,
        "rng": random.Random(5),
        "settings": ClientSettings(read_timeout=2.0, connect_timeout=2.0, max_retry_seconds=3600.0),
    }
    options.update(kw)
    return create_amazon_marketplace(**options)


class RigFactory:
    """Builds rigs and stops their servers on :meth:`close` (wrap it in a fixture)."""

    def __init__(self) -> None:
        self._servers: list[LoopbackServer] = []

    def build(
        self,
        *,
        seed: int = 11,
        short_pages: float = 0.3,
        page_size: int = 10,
        sim_options: dict[str, Any] | None = None,
        market_options: dict[str, Any] | None = None,
    ) -> Rig:
        clock = FakeClock()
        sandbox = Sandbox(clock=clock, seed=seed, short_page_probability=short_pages)
        options: dict[str, Any] = {"orders_per_hour": 0.0, "backfill": 45}
        options.update(sim_options or {})
        sim = AmazonShopSimulator(sandbox, **options)
        sandbox.add(sim)
        server = LoopbackServer(sandbox).start()
        self._servers.append(server)
        market = make_market(server.base_url, clock, page_size=page_size, **(market_options or {}))
        return Rig(clock, sandbox, sim, server, market)

    def close(self) -> None:
        for server in self._servers:
            server.stop()


# ---------------------------------------------------------------------------
# The checker's own tests


def test_checker_reports_wrong_types_missing_and_undeclared_keys() -> None:
    definitions = {
        "Thing": {
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string"},
                "count": {"type": "integer", "minimum": 0},
                "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}, "minItems": 1},
            },
        }
    }
    ref = {"$ref": "#/definitions/Thing"}
    assert check({"name": "x", "count": 2, "tags": ["a"]}, ref, definitions, strict=True) == []
    problems = check({"count": -1, "tags": ["c"], "other": True}, ref, definitions, strict=True)
    assert "$: missing required 'name'" in problems
    assert "$.count: -1 is below 0" in problems
    assert any("'c' is not one of" in p for p in problems)
    assert "$: 'other' is not in the model" in problems
    assert check({"name": "x", "other": 1}, ref, definitions, strict=False) == []
    assert check({"name": 3}, ref, definitions, strict=True) == ["$.name: expected string, got int"]
    assert check({"name": "x", "tags": []}, ref, definitions, strict=True) == ["$.tags: fewer than 1 items"]


def test_shapes_name_every_path_and_type() -> None:
    assert shapes({"a": [{"b": 1}, {"b": "x"}], "c": None}) == {
        ("$", "object"),
        (".a", "array"),
        (".a[]", "object"),
        (".a[].b", "integer"),
        (".a[].b", "string"),
        (".c", "null"),
    }
