"""Which platform simulators exist, for ``tf-console sandbox serve``.

Each entry names a module exposing ``create_simulator(sandbox, *, seed) -> Simulator``.
A platform whose simulator is not written yet is simply reported as missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import cast

from tf_console.sandbox.core import Sandbox, Simulator

SIMULATOR_MODULES: dict[str, str] = {
    "test": "tf_console.sandbox.testsim",
    "amazon": "tf_console.sandbox.amazon",
    "ebay": "tf_console.sandbox.ebay",
    "etsy": "tf_console.sandbox.etsy",
}

Factory = Callable[..., Simulator]


def load_factory(name: str) -> Factory | None:
    """The ``create_simulator`` of platform ``name``, or None when that simulator does not exist yet."""
    module_name = SIMULATOR_MODULES.get(name)
    if module_name is None:
        raise KeyError(name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            return None
        raise
    factory = getattr(module, "create_simulator", None)
    return cast(Factory, factory) if callable(factory) else None


def install(sandbox: Sandbox, names: list[str], *, seed: int) -> tuple[list[Simulator], list[str]]:
    """Install the named simulators; returns (installed, missing names)."""
    installed: list[Simulator] = []
    missing: list[str] = []
    for name in names:
        factory = load_factory(name)
        if factory is None:
            missing.append(name)
            continue
        installed.append(sandbox.add(factory(sandbox, seed=seed)))
    return installed, missing
