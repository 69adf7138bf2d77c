"""Amazon through the composition root: configuration from the environment, the in-process
sandbox as transport, the store, the token vault and the production queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import tf_console.data
from tf_console.clock import FakeClock
from tf_console.context import AppContext
from tf_console.marketplaces.amazon import ACCESS_TOKEN_CACHE, AmazonMarketplace, from_deps
from tf_console.marketplaces.base import NotConfigured
from tf_console.marketplaces.deps import PlatformDeps
from tf_console.models import FulfilledBy, Platform, PlatformState
from tf_console.runtime import HEALTH_LOG, Runtime
from tf_console.sandbox import IN_PROCESS_BASE_URL, Sandbox, SandboxTransport
from tf_console.sandbox.amazon import (
    DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET,
    DEMO_REFRESH_TOKEN,
    DEMO_SELLER_ID,
    AmazonShopSimulator,
)

AMAZON = Platform.AMAZON
EXAMPLES = Path(tf_console.data.__file__).resolve().parent


@pytest.fixture
def configured(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AMAZON_SELLER_ID": DEMO_SELLER_ID,
        "AMAZON_REFRESH_TOKEN": DEMO_REFRESH_TOKEN,
        "AMAZON_CLIENT_ID": DEMO_CLIENT_ID,
        "AMAZON_CLIENT_SECRET": DEMO_CLIENT_SECRET,
        "AMAZON_REGION": "NA",
        "AMAZON_SP_API_URL": IN_PROCESS_BASE_URL,
        "AMAZON_LWA_URL": f"{IN_PROCESS_BASE_URL}/auth/o2/token",
    }.items():
        monkeypatch.setenv(name, value)


def context(tmp_path: Path, clock: FakeClock) -> AppContext:
    return AppContext.load(
        tmp_path / "data", cwd=tmp_path, config_dir=tmp_path / "config", clock=clock, use_keyring=False
    )


def runtime(tmp_path: Path, clock: FakeClock, sandbox: Sandbox) -> Runtime:
    return Runtime(
        context(tmp_path, clock),
        lease_kind="test",
        transports={AMAZON: SandboxTransport(sandbox, sleep=clock.sleep)},
        platforms=(AMAZON,),
        client_overrides={"read_timeout": 5.0},
        catalog_path=EXAMPLES / "catalog.example.toml",
        printers_path=EXAMPLES / "printers.example.toml",
    )


async def test_amazon_runs_through_the_runtime(configured: None, tmp_path: Path) -> None:
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=9, short_page_probability=0.2)
    sim = AmazonShopSimulator(sandbox, orders_per_hour=0.0, backfill=30, fba_share=0.3)
    sandbox.add(sim)

    first = runtime(tmp_path, clock, sandbox)
    async with first.started():
        assert first.disabled == {}
        market = first.marketplaces[AMAZON]
        assert isinstance(market, AmazonMarketplace)
        assert market.marketplace_ids == ("ATVPDKIKX0DER",)  # the NA default
        result = await first.engine.poll(AMAZON, days=30)
        assert result.ok, result.error
        stored = list(first.store.orders.iter_all())
        assert len(stored) == result.inserted > 0
        health = first.health(AMAZON)
        assert health is not None and health.snapshot().state is PlatformState.OK
        fba_orders = {o.order_id for o in stored if o.fulfilled_by is FulfilledBy.MARKETPLACE}
        jobs = first.production.jobs(include_finished=True)
        # Merchant-fulfilled print lines queue up; Amazon's own (FBA) orders never do.
        assert jobs and fba_orders and not any(job.order_id in fba_orders for job in jobs)
        records = first.store.log(HEALTH_LOG).tail(500)
        assert records and {r["platform"] for r in records} == {"amazon"}
        logged = json.dumps(records)
        assert "Atza|" not in logged and DEMO_CLIENT_SECRET not in logged and DEMO_REFRESH_TOKEN not in logged
        vault_entry = first.ctx.vault().entry(ACCESS_TOKEN_CACHE)
        assert vault_entry is not None and vault_entry.expires_at is not None
    assert sim.tokens.refreshes == 1

    # A second process (a CLI run) starts from the cached access token: no new token call.
    clock.advance(600)
    second = runtime(tmp_path, clock, sandbox)
    async with second.started():
        assert (await second.engine.poll(AMAZON)).ok
        assert second.store.orders.count() == len(stored)
    assert sim.tokens.refreshes == 1


async def test_missing_amazon_settings_disable_only_amazon(
    configured: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AMAZON_CLIENT_SECRET")
    clock = FakeClock()
    sandbox = Sandbox(clock=clock, seed=9)
    sandbox.add(AmazonShopSimulator(sandbox, orders_per_hour=0.0, backfill=3))
    broken = runtime(tmp_path, clock, sandbox)
    async with broken.started():
        assert AMAZON not in broken.marketplaces
        assert "AMAZON_CLIENT_SECRET" in broken.disabled[AMAZON]


def test_from_deps_refuses_an_incomplete_configuration(
    configured: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.delenv("AMAZON_SELLER_ID")
    ctx = context(tmp_path, clock)
    with pytest.raises(NotConfigured, match="AMAZON_SELLER_ID"):
        from_deps(PlatformDeps(settings=ctx.settings, secret=ctx.secret, clock=clock))
    monkeypatch.setenv("AMAZON_SELLER_ID", DEMO_SELLER_ID)
    monkeypatch.setenv("AMAZON_REGION", "EU")
    monkeypatch.delenv("AMAZON_SP_API_URL")
    eu = context(tmp_path, clock)
    with pytest.raises(NotConfigured, match="AMAZON_MARKETPLACE_IDS"):
        from_deps(PlatformDeps(settings=eu.settings, secret=eu.secret, clock=clock))
    monkeypatch.setenv("AMAZON_MARKETPLACE_IDS", "A1PA6795UKMFR9,A1F83G8C2ARO7P")
    market = from_deps(
        PlatformDeps(settings=context(tmp_path, clock).settings, secret=eu.secret, clock=clock)
    )
    assert market.api_url == "https://sellingpartnerapi-eu.amazon.com"
    assert market.marketplace_ids == ("A1PA6795UKMFR9", "A1F83G8C2ARO7P")
    assert market.client.settings.user_agent.startswith("TitanForgeConsole/")
