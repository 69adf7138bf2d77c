"""``doctor --check``: one cheap authenticated call per configured platform.

Kept apart from :mod:`tf_console.doctor` (which never touches the network) so the
offline checklist stays fast and safe to run anywhere.
"""

from __future__ import annotations

import anyio

from tf_console.doctor import Finding, Level
from tf_console.marketplaces.base import MarketplaceError
from tf_console.runtime import Runtime

SECTION = "Credential check"
CALL_TIMEOUT = 60.0


async def online_findings(runtime: Runtime) -> list[Finding]:
    findings: list[Finding] = []
    async with runtime.started() as rt:
        if not rt.marketplaces:
            findings.append(
                Finding(SECTION, Level.INFO, "No marketplace is configured, so nothing was checked.")
            )
        for platform, market in rt.marketplaces.items():
            label = platform.label
            try:
                with anyio.fail_after(CALL_TIMEOUT):
                    check = await market.check_credentials()
            except TimeoutError:
                findings.append(
                    Finding(SECTION, Level.ERROR, f"{label} did not answer within {CALL_TIMEOUT:.0f} s.")
                )
                continue
            except MarketplaceError as exc:
                findings.append(Finding(SECTION, Level.ERROR, f"{label}: {exc.sentence}"))
                continue
            level = Level.OK if check.ok else Level.ERROR
            findings.append(Finding(SECTION, level, check.sentence))
            for key, value in sorted(check.details.items()):
                findings.append(Finding(SECTION, Level.INFO, f"{label} {key.replace('_', ' ')}: {value}."))
            note = getattr(market, "pii_note", "")
            if note:
                findings.append(Finding(SECTION, Level.WARN, note))
        rt.save_buckets()
    return findings
