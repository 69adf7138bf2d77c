"""After a full run (sync, ship, export, doctor) no secret or buyer name is readable anywhere.

Every byte under the data folder is searched for the credentials the run used, the
tokens the marketplace issued, and the buyers' names; every file must be 0600 and
every folder 0700; the commands' own output carries no secret.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tests.e2e import UPS_TRACKING, rig
from tf_console.config import SECRET_VARIABLES
from tf_console.models import Platform

pytestmark = pytest.mark.slow


def _issued_tokens(simulator: object) -> set[str]:
    tokens = getattr(simulator, "tokens", None)
    found: set[str] = set()
    for attr in ("_access", "_refresh", "access_tokens", "refresh_tokens"):
        value = getattr(tokens, attr, None)
        if isinstance(value, dict):
            found.update(k for k in value if isinstance(k, str))
        elif isinstance(value, set | frozenset | list):
            found.update(v for v in value if isinstance(v, str))
    current = getattr(tokens, "current_refresh_tokens", None)
    if callable(current):
        found.update(current())
    return {t for t in found if len(t) >= 12}


@pytest.mark.parametrize("platform", [Platform.AMAZON, Platform.EBAY, Platform.ETSY])
def test_no_secret_or_buyer_name_at_rest(platform: Platform, tmp_path: Path) -> None:
    with rig(platform, tmp_path) as r:
        outputs = []
        for args in (("sync", "--once", "--days", "30"), ("doctor",)):
            done = r.cli(*args)
            outputs.append(done.stdout + done.stderr)
        orders = json.loads(r.cli("export", "--format", "json", "--include-pii").stdout)
        open_order = next(o for o in orders if o["status"] == "unshipped")
        carrier = "ups" if platform is Platform.ETSY else "UPS"
        shipped = r.cli(
            "ship", platform.value, open_order["order_id"], "--carrier", carrier, "--tracking", UPS_TRACKING
        )
        outputs.append(shipped.stdout + shipped.stderr)
        plain = r.cli("export", "--format", "csv")
        outputs.append(plain.stdout + plain.stderr)

        secrets = {v for k, v in r.env.items() if k in SECRET_VARIABLES and len(v) >= 8}
        secrets |= _issued_tokens(r.simulator)
        names = {o["buyer_name"] for o in orders if o.get("buyer_name") and len(o["buyer_name"]) >= 6}
        assert secrets, "the run used no secret: the test would prove nothing"
        assert names, "no buyer names were synced: the test would prove nothing"

        for text in outputs:
            for secret in secrets:
                assert secret not in text
        for name in names:
            assert name not in plain.stdout, "a plain export must not carry buyer names"

        files = [p for p in r.data_dir.rglob("*")]
        assert files
        for path in files:
            mode = stat.S_IMODE(path.stat().st_mode)
            if path.is_dir():
                assert mode == 0o700, f"{path} is {oct(mode)}"
                continue
            assert mode == 0o600, f"{path} is {oct(mode)}"
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"a secret is readable in {path.name}"
            for name in names:
                assert name.encode() not in data, f"a buyer name is readable in {path.name}"
