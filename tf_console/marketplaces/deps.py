"""What a platform module needs to build itself, handed over by the composition root.

Each platform module (``amazon``, ``ebay``, ``etsy``) exposes
``from_deps(deps: PlatformDeps) -> Marketplace``; it reads its variables from
``deps.settings``/``deps.secret``, persists rotated tokens through ``deps.vault``,
and wires its :class:`~tf_console.marketplaces.http.ApiClient` with
``deps.transport`` (the in-process sandbox, or None for the network),
``deps.health_sink`` and ``deps.rate_scale``.  Bucket state is saved and restored by
the runtime through ``Marketplace.client.limiter`` — platforms need do nothing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from tf_console.clock import Clock

if TYPE_CHECKING:
    from tf_console.config import Settings
    from tf_console.vault import TokenVault


@dataclass
class PlatformDeps:
    settings: Settings
    secret: Callable[
        [str], SecretStr | None
    ]  # env, env files, keyring — and the vault rule for rotating ones
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)
    vault: TokenVault | None = None  # rotated tokens, encrypted; None in throwaway contexts
    transport: httpx.AsyncBaseTransport | None = None  # in-process sandbox; None = the real network
    health_sink: Callable[[dict[str, Any]], None] | None = None
    rate_scale: float = 1.0  # multiply published rates (a sped-up sandbox)
    client_overrides: dict[str, Any] = field(default_factory=dict)  # ClientSettings fields (tests: timeouts)

    def store_rotated(self, name: str, value: str, *, expires_at: Any = None) -> None:
        """Persist a token the marketplace just issued (encrypted), per the rotating-secrets rule."""
        from tf_console.config import VARIABLES

        if self.vault is not None:
            # Names that are not configuration variables (a cached access token) have no
            # environment value to compare against.
            env_value = self.settings.value(name) if name in VARIABLES else None
            self.vault.store(name, value, env_value=env_value, expires_at=expires_at)
