"""``tf-console demo`` wiring: isolation from the user's setup, sandboxes, faults through the real clients."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tf_console.cli import build_parser
from tf_console.demo import (
    DEMO_KEY_FILE,
    FaultDirector,
    NoKeyring,
    build_demo,
    demo_values,
    platform_ready,
)
from tf_console.models import MARKETPLACES, Platform, PlatformState
from tf_console.sandbox import IN_PROCESS_BASE_URL, FaultKind

FAST = 3600.0  # simulated seconds per real second: retries and backoffs pass at once


class DescribedSimulator:
    name = "amazon"

    def describe(self) -> dict[str, str]:
        return {
            "AMAZON_SP_API_URL": "<this address>/sp",
            "AMAZON_LWA_URL": "<this address>/sp/auth/o2/token",
            "AMAZON_REFRESH_TOKEN": "Atzr|demo-0000 (the sandbox's own)",
            "AMAZON_CLIENT_ID": "amzn1.application-oa2-client.demo",
            "EBAY_APP_ID": "not for amazon",
            "orders": "40",
        }


def test_demo_values_read_the_simulator_description() -> None:
    documented = {"AMAZON_SP_API_URL": "https://sellingpartnerapi-na.amazon.com", "ETSY_API_URL": "https://x"}
    values = demo_values(Platform.AMAZON, DescribedSimulator(), documented)  # type: ignore[arg-type]
    assert values == {
        "AMAZON_SP_API_URL": f"{IN_PROCESS_BASE_URL}/sp",
        "AMAZON_LWA_URL": f"{IN_PROCESS_BASE_URL}/sp/auth/o2/token",
        "AMAZON_REFRESH_TOKEN": "Atzr|demo-0000",
        "AMAZON_CLIENT_ID": "amzn1.application-oa2-client.demo",
    }


def test_demo_never_uses_the_users_configuration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / ".env").write_text("ETSY_SHOP_ID=111\nTF_POLL_INTERVAL=9\n")
    monkeypatch.setenv("AMAZON_REFRESH_TOKEN", "Atzr|the-real-one")
    monkeypatch.setenv("EBAY_ENVIRONMENT", "sandbox")
    monkeypatch.setenv("TF_DATA_DIR", str(tmp_path / "real-state"))
    setup = build_demo(tmp_path / "demo")
    settings = setup.runtime.settings
    assert settings.data_dir == tmp_path / "demo"
    assert settings.poll_interval == 300 and settings.ebay_environment == "production"
    assert settings.value("AMAZON_REFRESH_TOKEN") != "Atzr|the-real-one"
    assert settings.etsy_shop_id != 111
    for name in ("AMAZON_SP_API_URL", "AMAZON_LWA_URL", "EBAY_TRADING_URL", "EBAY_API_URL", "ETSY_API_URL"):
        assert str(settings.value(name)).startswith(IN_PROCESS_BASE_URL), name
    assert isinstance(setup.runtime.ctx.keyring, NoKeyring) and not setup.runtime.ctx.keyring.usable
    assert not (tmp_path / "real-state").exists()
    assert (tmp_path / "demo" / DEMO_KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "demo" / "catalog.toml").exists() and (tmp_path / "demo" / "printers.toml").exists()
    assert setup.platforms == [p for p in MARKETPLACES if platform_ready(p)]
    assert "DEMO" in setup.label


async def test_demo_polls_every_ready_platform_through_the_real_clients(tmp_path: Path) -> None:
    setup = build_demo(tmp_path / "demo", speed=FAST)
    async with setup.runtime.started() as rt:
        assert set(rt.marketplaces) == set(setup.platforms)
        assert rt.disabled == {}
        results = await rt.engine.poll_all(days=7)
        assert all(r.ok for r in results), [r.summary for r in results]
        assert rt.store.orders.count() > 0
        for platform in setup.platforms:
            recorder = rt.health(platform)
            assert recorder is not None and recorder.records()


async def test_faults_reach_health_through_the_clients(tmp_path: Path) -> None:
    setup = build_demo(tmp_path / "demo", speed=FAST, platforms=(Platform.ETSY,))
    if Platform.ETSY not in setup.platforms:
        pytest.skip("the Etsy simulator or client is not in this version")
    director = setup.director
    async with setup.runtime.started() as rt:
        assert (await rt.engine.poll(Platform.ETSY)).ok
        recorder = rt.health(Platform.ETSY)
        assert recorder is not None
        sentence = director.rate_limit_storm()
        assert "429" in sentence and "Etsy" in sentence
        await rt.engine.poll(Platform.ETSY)
        assert any(r.status == 429 for r in recorder.records())
        assert "expire" in director.expire_tokens()
        await rt.engine.poll(Platform.ETSY)
        sentence, platform, fault_id = director.outage_start()
        assert platform is Platform.ETSY and "down" in sentence
        for _ in range(3):
            result = await rt.engine.poll(Platform.ETSY, recheck=False)
        assert not result.ok
        assert recorder.snapshot().state in (PlatformState.DOWN, PlatformState.DEGRADED)
        assert "back" in director.outage_end(platform, fault_id)
        assert not [
            f for f in setup.sandboxes[Platform.ETSY].faults.active() if f.kind is FaultKind.SERVER_ERROR
        ]
        assert (await rt.engine.poll(Platform.ETSY)).ok


async def test_fault_director_takes_turns_and_stops(tmp_path: Path) -> None:
    setup = build_demo(tmp_path / "demo")

    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    director = FaultDirector(setup.sandboxes, setup.director.rng, sleep=no_wait)
    stop = asyncio.Event()
    heard: list[str] = []

    def announce(sentence: str) -> None:
        heard.append(sentence)
        if len(heard) >= 4:
            stop.set()

    await asyncio.wait_for(director.run(stop, announce), timeout=5)
    assert "429" in heard[0] and "expire" in heard[1] and "down" in heard[2] and "back" in heard[3]
    assert not [
        f for s in setup.sandboxes.values() for f in s.faults.active() if f.kind is FaultKind.SERVER_ERROR
    ]


async def test_without_platform_simulators_the_test_marketplace_stands_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("tf_console.demo.platform_ready", lambda _platform: False)
    setup = build_demo(tmp_path / "demo", speed=FAST)
    assert setup.platforms == [Platform.TEST] and setup.missing == list(MARKETPLACES)
    async with setup.runtime.started() as rt:
        assert list(rt.marketplaces) == [Platform.TEST]
        results = await rt.engine.poll_all()
        assert results[0].ok and results[0].fetched > 0


def test_cli_has_demo_and_run() -> None:
    parser = build_parser()
    args = parser.parse_args(
        ["--data-dir", "/somewhere", "demo", "--seed", "3", "--speed", "10", "--read-only"]
    )
    assert args.data_dir == "/somewhere" and args.demo_data_dir is None
    assert (args.seed, args.speed, args.read_only, args.no_mouse) == (3, 10.0, True, False)
    run = parser.parse_args(["run", "--no-mouse", "--ansi"])
    assert run.no_mouse and run.ansi and not run.read_only
