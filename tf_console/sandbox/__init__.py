"""Simulated marketplaces for tests, demos and benchmarks (see ``docs/sandbox.md``).

The core (:mod:`.core`) routes requests to platform simulators and applies
faults, server-side rate limits and tokens; :mod:`.transport` makes it reachable
in-process or on a loopback port; :mod:`.shopgen` generates the shop's orders;
:mod:`.testsim` is the framework's own small "test" marketplace.
"""

from tf_console.sandbox.core import (
    BaseSimulator,
    Delivery,
    RouteMatch,
    Sandbox,
    SandboxRequest,
    SandboxResponse,
    ServerRate,
    Simulator,
    TokenAuthority,
    TokenStatus,
)
from tf_console.sandbox.faults import Fault, FaultKind
from tf_console.sandbox.transport import IN_PROCESS_BASE_URL, LoopbackServer, SandboxTransport

__all__ = [
    "IN_PROCESS_BASE_URL",
    "BaseSimulator",
    "Delivery",
    "Fault",
    "FaultKind",
    "LoopbackServer",
    "RouteMatch",
    "Sandbox",
    "SandboxRequest",
    "SandboxResponse",
    "SandboxTransport",
    "ServerRate",
    "Simulator",
    "TokenAuthority",
    "TokenStatus",
]
