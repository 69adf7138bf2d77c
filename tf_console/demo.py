"""``tf-console demo``: the full console against the built-in simulated marketplaces.

Nothing of the user's is used or touched: the demo builds its own settings from
explicit values only (never the environment, ``.env`` files or the keyring), with
the simulators' demo credentials and every endpoint pointed at the in-process
sandbox, its own data key in its own data folder, and the example catalog and
printers.  Each platform gets its own sandbox, reached in-process through
:class:`~tf_console.sandbox.SandboxTransport`, all on one sped-up clock so new
orders arrive every few seconds.  Now and then the :class:`FaultDirector` makes a
marketplace misbehave — a 429 storm, expired access tokens, an eBay outage — and
the real clients live through it, so the health pane shows something true.

Platforms come in when both their simulator (``tf_console.sandbox.<platform>``)
and their client (``tf_console.marketplaces.<platform>``) exist; when none does,
the sandbox's own ``test`` marketplace stands in.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import random
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from tf_console.clock import Clock, ScaledClock
from tf_console.config import ENDPOINT_VARIABLES, VARIABLES, Settings
from tf_console.context import AppContext
from tf_console.crypto import FernetCipher
from tf_console.keyring_access import BackendInfo, KeyringAccess
from tf_console.keys import DataKeyInfo, KeyLocation
from tf_console.marketplaces.base import Marketplace
from tf_console.marketplaces.registry import PLATFORM_MODULES
from tf_console.models import MARKETPLACES, Platform
from tf_console.paths import private_mkdir, write_private
from tf_console.production.examples import install_examples
from tf_console.runtime import HEALTH_LOG, Runtime
from tf_console.sandbox import IN_PROCESS_BASE_URL, Fault, FaultKind, Sandbox, SandboxTransport, Simulator
from tf_console.sandbox.registry import load_factory
from tf_console.vault import VAULT_FILE_NAME

log = logging.getLogger(__name__)

DEFAULT_SPEED = 60.0
DEFAULT_SEED = 7
DEMO_KEY_FILE = "demo-data.key"
# Real seconds between faults, and how long an outage lasts (real seconds).
FAULT_PAUSE = (25.0, 45.0)
OUTAGE_SECONDS = 20.0

Announce = Callable[[str], None]


# ---------------------------------------------------------------------------
# An isolated context: explicit values only


class IsolatedSettings(Settings):
    """Settings from the values given and nothing else: no environment, no env files, no keyring."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


class NoKeyring(KeyringAccess):
    """A keyring that is never asked: the demo must not read or write the user's secrets."""

    def info(self) -> BackendInfo:
        return BackendInfo("none (isolated context)", False, False, "This context never uses the keyring.")


def demo_key(data_dir: Path) -> bytes:
    """The demo folder's own data key (fake data only), kept beside it so ``--data-dir`` reopens it."""
    path = data_dir / DEMO_KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    key = FernetCipher.generate_key()
    write_private(path, key)
    return key


def isolated_context(
    data_dir: Path, values: Mapping[str, str], *, clock: Clock, key: bytes | None = None
) -> AppContext:
    """An :class:`AppContext` built only from ``values`` (variable names), with its own data key."""
    private_mkdir(data_dir)
    given: dict[str, Any] = {**dict(values), "TF_DATA_DIR": str(data_dir)}
    settings = IsolatedSettings(**given)
    raw_key = key if key is not None else demo_key(data_dir)
    cipher = FernetCipher(raw_key)
    return AppContext(
        settings=settings,
        data_dir=data_dir,
        keyring=NoKeyring(),
        config_dir=data_dir,
        cwd=data_dir,
        clock=clock,
        _cipher=cipher,
        _key_info=DataKeyInfo(cipher.key_id, KeyLocation.FILE, str(data_dir / DEMO_KEY_FILE)),
    )


# ---------------------------------------------------------------------------
# Which platforms the demo can run


def platform_ready(platform: Platform) -> bool:
    """Both the simulator and the client of ``platform`` exist in this version."""
    try:
        has_client = importlib.util.find_spec(PLATFORM_MODULES[platform]) is not None
    except (ImportError, KeyError):
        has_client = False
    return has_client and load_factory(platform.value) is not None


def sandbox_url(documented: str) -> str:
    """The documented endpoint with its host swapped for the in-process sandbox's (path kept)."""
    parts = urlsplit(documented)
    return IN_PROCESS_BASE_URL + (parts.path or "")


_PLACEHOLDER_PATH = re.compile(r"^<[^>]+>(/[\w./-]*)$")
_ANNOTATED = re.compile(r"^(\S+)\s+\(.*\)$")


def demo_values(platform: Platform, simulator: Simulator, documented: Mapping[str, str]) -> dict[str, str]:
    """The platform's variables: the simulator's demo credentials, endpoints on the sandbox.

    ``describe()`` is written for people (``tf-console sandbox serve`` prints it):
    endpoints read "<this address>/prefix", and a token may carry a note in
    parentheses.  An endpoint keeps its documented path unless the simulator names
    a path of its own; a note is dropped.
    """
    prefix = platform.value.upper() + "_"
    values = {name: sandbox_url(url) for name, url in documented.items() if name.startswith(prefix)}
    for name, value in simulator.describe().items():
        if not name.startswith(prefix) or name not in VARIABLES:
            continue
        if name in ENDPOINT_VARIABLES:
            own_path = _PLACEHOLDER_PATH.match(value.strip())
            if own_path is not None:
                values[name] = IN_PROCESS_BASE_URL + own_path.group(1)
            continue
        annotated = _ANNOTATED.match(value.strip())
        values[name] = annotated.group(1) if annotated is not None else value.strip()
    return values


@dataclass
class DemoSetup:
    runtime: Runtime
    clock: ScaledClock
    sandboxes: dict[Platform, Sandbox]
    platforms: list[Platform]
    missing: list[Platform]
    director: FaultDirector
    data_dir: Path

    @property
    def label(self) -> str:
        names = ", ".join(p.label for p in self.platforms)
        return f"DEMO: simulated {names} at {self.clock.factor:g}× speed"


def build_demo(
    data_dir: Path,
    *,
    seed: int = DEFAULT_SEED,
    speed: float = DEFAULT_SPEED,
    read_only: bool = False,
    platforms: tuple[Platform, ...] | None = None,
) -> DemoSetup:
    """Everything ``tf-console demo`` runs, not started yet."""
    if speed <= 0:
        raise ValueError("speed must be positive")
    clock = ScaledClock(speed)
    private_mkdir(data_dir)
    # Tokens a previous demo's sandbox rotated mean nothing to the fresh sandbox (and would
    # show re-auth needed): the demo folder's vault only ever holds demo tokens.
    (data_dir / VAULT_FILE_NAME).unlink(missing_ok=True)
    install_examples(data_dir)
    wanted = platforms if platforms is not None else MARKETPLACES
    ready = [p for p in wanted if p in MARKETPLACES and platform_ready(p)]
    missing = [p for p in wanted if p not in ready]
    sandboxes: dict[Platform, Sandbox] = {}
    values: dict[str, str] = {"TF_TIMEZONE": "UTC"}
    documented = IsolatedSettings().endpoint_defaults()
    for platform in ready:
        factory = load_factory(platform.value)
        assert factory is not None
        sandbox = Sandbox(clock=clock, seed=seed)
        simulator = sandbox.add(factory(sandbox, seed=seed))
        sandboxes[platform] = sandbox
        values.update(demo_values(platform, simulator, documented))
    extra: dict[Platform, Callable[[Runtime], Marketplace]] = {}
    shown = list(ready)
    if not ready:
        sandbox = Sandbox(clock=clock, seed=seed)
        sandboxes[Platform.TEST] = sandbox
        extra[Platform.TEST] = _test_marketplace_factory(sandbox, clock, seed)
        shown = [Platform.TEST]
    ctx = isolated_context(data_dir, values, clock=clock)
    runtime = Runtime(
        ctx,
        lease_kind="console",
        transports={p: SandboxTransport(s) for p, s in sandboxes.items() if p in ready},
        rng_seed=seed,
        read_only=read_only,
        platforms=tuple(ready),
        extra_marketplaces=extra,
    )
    director = FaultDirector(sandboxes, random.Random(seed))
    return DemoSetup(runtime, clock, sandboxes, shown, missing, director, data_dir)


def _test_marketplace_factory(sandbox: Sandbox, clock: Clock, seed: int) -> Callable[[Runtime], Marketplace]:
    from tf_console.marketplaces.testplatform import create_test_marketplace
    from tf_console.sandbox.testsim import DEMO_CLIENT_ID, DEMO_REFRESH_TOKEN, TestShopSimulator

    sandbox.add(TestShopSimulator(sandbox, seed=seed))

    def build(runtime: Runtime) -> Marketplace:
        def sink(record: dict[str, Any]) -> None:
            runtime.store.log(HEALTH_LOG).append({"platform": Platform.TEST.value, **record})

        return create_test_marketplace(
            base_url=IN_PROCESS_BASE_URL,
            client_id=DEMO_CLIENT_ID,
            refresh_token=DEMO_REFRESH_TOKEN,
            clock=clock,
            rng=random.Random(f"{seed}:test"),
            transport=SandboxTransport(sandbox),
            health_sink=sink,
        )

    return build


# ---------------------------------------------------------------------------
# Faults


@dataclass
class FaultDirector:
    """Makes the simulated marketplaces misbehave now and then, in turn."""

    sandboxes: dict[Platform, Sandbox]
    rng: random.Random
    pause: tuple[float, float] = FAULT_PAUSE
    outage_seconds: float = OUTAGE_SECONDS
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    history: list[str] = field(default_factory=list)

    def _pick(self, prefer: Platform | None = None) -> tuple[Platform, Sandbox]:
        if prefer is not None and prefer in self.sandboxes:
            return prefer, self.sandboxes[prefer]
        platform = self.rng.choice(sorted(self.sandboxes, key=lambda p: p.value))
        return platform, self.sandboxes[platform]

    def rate_limit_storm(self) -> str:
        platform, sandbox = self._pick()
        sandbox.faults.add(Fault(FaultKind.RATE_LIMIT, times=8, retry_after=2.0))
        return f"Demo: a 429 storm hits {platform.label} (8 throttled answers); watch its health and retries."

    def expire_tokens(self) -> str:
        platform, sandbox = self._pick()
        sandbox.faults.add(Fault(FaultKind.EXPIRED_TOKEN, times=1))
        return f"Demo: {platform.label}'s access tokens expire now; the client renews them on its own."

    def outage_start(self) -> tuple[str, Platform, int]:
        platform, sandbox = self._pick(prefer=Platform.EBAY)
        fault = sandbox.faults.add(Fault(FaultKind.SERVER_ERROR, status=503))
        sentence = (
            f"Demo: {platform.label} is down for {self.outage_seconds:.0f} s (every call gets 503); "
            "its health turns red and outbox items wait."
        )
        return sentence, platform, fault.fault_id

    def outage_end(self, platform: Platform, fault_id: int) -> str:
        self.sandboxes[platform].faults.remove(fault_id)
        return f"Demo: {platform.label} is back."

    async def run(self, stop: asyncio.Event, announce: Announce) -> None:
        """Until ``stop``: wait, make a fault, tell the operator what is happening."""
        if not self.sandboxes:
            return
        steps = ("storm", "token", "outage")
        turn = 0
        while not stop.is_set():
            if await self._wait(stop, self.rng.uniform(*self.pause)):
                return
            step = steps[turn % len(steps)]
            turn += 1
            if step == "storm":
                self._say(announce, self.rate_limit_storm())
            elif step == "token":
                self._say(announce, self.expire_tokens())
            else:
                sentence, platform, fault_id = self.outage_start()
                self._say(announce, sentence)
                try:
                    await self._wait(stop, self.outage_seconds)
                finally:
                    self._say(announce, self.outage_end(platform, fault_id))

    def _say(self, announce: Announce, sentence: str) -> None:
        self.history.append(sentence)
        log.info("%s", sentence)
        with contextlib.suppress(Exception):
            announce(sentence)

    async def _wait(self, stop: asyncio.Event, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when ``stop`` was set meanwhile."""
        waiter = asyncio.ensure_future(stop.wait())
        sleeper = asyncio.ensure_future(self.sleep(seconds))
        try:
            await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            sleeper.cancel()
        return stop.is_set()
