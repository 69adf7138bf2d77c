"""Everything a command needs to start: settings, data dir, keyring, data key, vault, store.

Built once per process by the CLI (``AppContext.load(args.data_dir)``); the expensive or
side-effecting parts (the data key, the vault, the store) are made only when first asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from tf_console.clock import SYSTEM_CLOCK, Clock
from tf_console.config import (
    ROTATING_VARIABLES,
    VARIABLES,
    PlatformConfigStatus,
    Settings,
    default_config_dir,
    platform_status,
)
from tf_console.crypto import Cipher
from tf_console.keyring_access import KeyringAccess
from tf_console.keys import DataKeyInfo, load_data_key, state_exists
from tf_console.models import Platform
from tf_console.paths import private_mkdir
from tf_console.vault import VAULT_FILE_NAME, TokenVault

if TYPE_CHECKING:
    from tf_console.store import Store


@dataclass
class AppContext:
    settings: Settings  # settings.data_dir is the effective data dir (--data-dir applied)
    data_dir: Path
    keyring: KeyringAccess
    config_dir: Path
    cwd: Path
    clock: Clock = SYSTEM_CLOCK
    _cipher: Cipher | None = field(default=None, repr=False)
    _key_info: DataKeyInfo | None = field(default=None, repr=False)
    _vault: TokenVault | None = field(default=None, repr=False)

    @classmethod
    def load(
        cls,
        data_dir: str | Path | None = None,
        *,
        cwd: Path | None = None,
        config_dir: Path | None = None,
        clock: Clock = SYSTEM_CLOCK,
        keyring: KeyringAccess | None = None,
        use_keyring: bool = True,
    ) -> AppContext:
        """Read the configuration and create the data dir (0700).  ``data_dir`` (the CLI's
        ``--data-dir``) overrides TF_DATA_DIR."""
        cwd = Path.cwd() if cwd is None else cwd
        config_dir = default_config_dir() if config_dir is None else config_dir
        keyring = KeyringAccess() if keyring is None else keyring
        settings = Settings.load(cwd=cwd, config_dir=config_dir, use_keyring=use_keyring, keyring=keyring)
        if data_dir is not None:
            settings = settings.model_copy(update={"data_dir": Path(data_dir).expanduser()})
        private_mkdir(settings.data_dir)
        return cls(
            settings=settings,
            data_dir=settings.data_dir,
            keyring=keyring,
            config_dir=config_dir,
            cwd=cwd,
            clock=clock,
        )

    # --- data key and vault --------------------------------------------------
    @property
    def state_exists(self) -> bool:
        """Whether anything encrypted with the data key may already exist here."""
        return state_exists(self.data_dir)

    def cipher(self) -> Cipher:
        """The PII cipher; mints the data key on first use of an empty data dir, and refuses
        (UserError) when state exists but its key is missing."""
        if self._cipher is None:
            self._cipher, self._key_info = load_data_key(
                self.settings,
                keyring=self.keyring,
                config_dir=self.config_dir,
                state_exists=self.state_exists,
            )
        return self._cipher

    def key_info(self) -> DataKeyInfo:
        """Where the data key lives (loads or mints it like :meth:`cipher`)."""
        self.cipher()
        assert self._key_info is not None
        return self._key_info

    @property
    def vault_path(self) -> Path:
        return self.data_dir / VAULT_FILE_NAME

    def vault(self) -> TokenVault:
        if self._vault is None:
            self._vault = TokenVault(self.vault_path, self.cipher(), clock=self.clock)
        return self._vault

    def open_store(self) -> Store:
        from tf_console.store import Store

        return Store.open(
            self.data_dir,
            self.cipher(),
            clock=self.clock,
            archive_after_days=self.settings.archive_after_days,
        )

    # --- secrets -------------------------------------------------------------
    def secret(self, name: str) -> SecretStr | None:
        """The value to use for variable ``name``: environment, env files, keyring — and for
        rotating tokens the vault's newer value under the vault rule."""
        name = name.upper()
        if name not in VARIABLES:
            raise KeyError(name)
        configured = self.settings.value(name)
        # Without a vault file nothing was ever rotated: no need to touch the data key.
        if name in ROTATING_VARIABLES and self.vault_path.exists():
            resolved = self.vault().resolve(name, configured)
            return None if resolved is None else SecretStr(resolved)
        return None if configured is None else SecretStr(configured)

    def platform_status(self, platform: Platform) -> PlatformConfigStatus:
        return platform_status(self.settings, platform, has_value=self._vault_has)

    def _vault_has(self, name: str) -> bool:
        if name not in ROTATING_VARIABLES or not self.vault_path.exists():
            return False
        return self.vault().entry(name) is not None
