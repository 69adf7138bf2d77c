"""Shared set-up for the eBay tests: a simulator, a marketplace wired to it, XML shape helpers."""

from __future__ import annotations

import random
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tf_console.clock import FakeClock
from tf_console.marketplaces.auth import TokenGrant
from tf_console.marketplaces.ebay import EbayMarketplace, create_ebay_marketplace
from tf_console.marketplaces.http import ClientSettings
from tf_console.sandbox import IN_PROCESS_BASE_URL, Sandbox, SandboxTransport
from tf_console.sandbox.core import SandboxRequest, SandboxResponse
from tf_console.sandbox.ebay import (
    DEMO_APP_ID,
    DEMO_AUTHNAUTH_TOKEN,
    DEMO_CERT_ID,
    DEMO_DEV_ID,
    DEMO_REFRESH_TOKEN,
    TRADING_PATH,
    EbaySimulator,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ebay"
NS = "{urn:ebay:apis:eBLBaseComponents}"
SCOPES = "https://api.ebay.com/oauth/api_scope https://api.ebay.com/oauth/api_scope/sell.fulfillment"


@dataclass
class Recorded:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests on and keeps a copy of each."""

    inner: httpx.AsyncBaseTransport
    requests: list[Recorded] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        self.requests.append(
            Recorded(
                request.method, str(request.url), {k.lower(): v for k, v in request.headers.items()}, body
            )
        )
        return await self.inner.handle_async_request(request)

    def calls(self, name: str) -> list[Recorded]:
        return [r for r in self.requests if r.headers.get("x-ebay-api-call-name") == name]


@dataclass
class Rig:
    clock: FakeClock
    sandbox: Sandbox
    sim: EbaySimulator
    market: EbayMarketplace
    transport: RecordingTransport
    grants: list[TokenGrant]


def make_market(
    sandbox: Sandbox,
    clock: FakeClock,
    *,
    base_url: str = IN_PROCESS_BASE_URL,
    transport: httpx.AsyncBaseTransport | None = None,
    oauth: bool = False,
    user_token: str | None = None,
    refresh_token: str | None = DEMO_REFRESH_TOKEN,
    entries_per_page: int = 25,
    settings: ClientSettings | None = None,
    grants: list[TokenGrant] | None = None,
) -> EbayMarketplace:
    token = user_token if user_token is not None else (None if oauth else DEMO_AUTHNAUTH_TOKEN)
    return create_ebay_marketplace(
        trading_url=base_url + TRADING_PATH,
        api_url=base_url,
        app_id=DEMO_APP_ID,
        dev_id=DEMO_DEV_ID,
        cert_id=DEMO_CERT_ID,
        user_token=token,
        refresh_token=refresh_token if oauth else None,
        scopes=SCOPES,
        clock=clock,
        rng=random.Random(5),
        transport=transport,
        settings=settings or ClientSettings(read_timeout=5.0, max_response_bytes=8 * 1024 * 1024),
        on_new_token=grants.append if grants is not None else None,
        entries_per_page=entries_per_page,
    )


def make_rig(
    *,
    backfill: int = 60,
    backfill_days: float = 20.0,
    oauth: bool = False,
    seed: int = 11,
    short_pages: float = 0.0,
    entries_per_page: int = 25,
    settings: ClientSettings | None = None,
) -> Rig:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=seed, short_page_probability=short_pages)
    sim = EbaySimulator(sandbox, orders_per_hour=0, backfill=backfill, backfill_days=backfill_days)
    sandbox.add(sim)
    transport = RecordingTransport(SandboxTransport(sandbox, sleep=clock.sleep))
    grants: list[TokenGrant] = []
    market = make_market(
        sandbox,
        clock,
        transport=transport,
        oauth=oauth,
        entries_per_page=entries_per_page,
        settings=settings,
        grants=grants,
    )
    return Rig(clock, sandbox, sim, market, transport, grants)


def trading(
    sandbox: Sandbox,
    call: str,
    inner: str,
    *,
    token: str | None = DEMO_AUTHNAUTH_TOKEN,
    headers: dict[str, str] | None = None,
    root: str | None = None,
) -> SandboxResponse:
    """One raw Trading call straight into the sandbox (no client in between)."""
    credentials = (
        f"<RequesterCredentials><eBayAuthToken>{token}</eBayAuthToken></RequesterCredentials>"
        if token
        else ""
    )
    name = root or f"{call}Request"
    body = f'<?xml version="1.0" encoding="utf-8"?><{name} xmlns="urn:ebay:apis:eBLBaseComponents">'
    body += f"{credentials}{inner}</{name}>"
    sent = {
        "X-EBAY-API-CALL-NAME": call,
        "X-EBAY-API-SITEID": "0",
        "X-EBAY-API-COMPATIBILITY-LEVEL": "1349",
        "X-EBAY-API-APP-NAME": DEMO_APP_ID,
        "X-EBAY-API-DEV-NAME": DEMO_DEV_ID,
        "X-EBAY-API-CERT-NAME": DEMO_CERT_ID,
        "Content-Type": "text/xml",
        **(headers or {}),
    }
    return sandbox.handle(SandboxRequest.build("POST", TRADING_PATH, sent.items(), body.encode()))


def xml(body: bytes) -> ET.Element:
    return ET.fromstring(body)  # our own fixtures and our sandbox only: the code under test uses defusedxml


def local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def child_tags(element: ET.Element) -> list[str]:
    return [local(c.tag) for c in element]


_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
_DECIMAL = re.compile(r"^-?\d+\.\d+$")


def value_kind(text: str) -> str:
    text = text.strip()
    if not text:
        return "empty"
    if _TIME.match(text):
        return "time"
    if text in ("true", "false"):
        return "bool"
    if _DECIMAL.match(text):
        return "decimal"
    return "text"  # ids, codes, names: digits or not, eBay treats them as strings


def shape(element: ET.Element, prefix: str = "") -> dict[str, set[str]]:
    """Every element/attribute path under ``element`` with the kinds of values seen there."""
    found: dict[str, set[str]] = {}

    def walk(node: ET.Element, path: str) -> None:
        kinds = found.setdefault(path, set())
        if len(node):
            kinds.add("node")
        else:
            kinds.add(value_kind(node.text or ""))
        for attribute in node.attrib:
            found.setdefault(f"{path}@{attribute}", set()).add("attr")
        for child in node:
            walk(child, f"{path}/{local(child.tag)}")

    walk(element, prefix or local(element.tag))
    return found


def merge_shapes(shapes: Iterator[dict[str, set[str]]] | list[dict[str, set[str]]]) -> dict[str, set[str]]:
    merged: dict[str, set[str]] = {}
    for one in shapes:
        for path, kinds in one.items():
            merged.setdefault(path, set()).update(kinds)
    return merged


def shape_problems(ours: dict[str, set[str]], theirs: dict[str, set[str]]) -> list[str]:
    """Paths of ours the reference does not have, and values whose kind differs."""
    problems: list[str] = []
    for path, kinds in sorted(ours.items()):
        if path not in theirs:
            problems.append(f"{path}: not in the reference")
            continue
        reference = theirs[path] - {"empty"}
        mine = kinds - {"empty"}
        if reference and mine and not (mine & reference):
            problems.append(f"{path}: {sorted(mine)} where the reference has {sorted(reference)}")
    return problems
