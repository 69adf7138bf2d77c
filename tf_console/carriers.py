"""Carriers per marketplace and tracking-number checks.

Each marketplace names carriers its own way: Amazon wants a code from Seller
Central's list (else ``Other`` plus a free-text name), eBay the Trading
``ShippingCarrierCodeType`` names, Etsy its ``carrier_name`` codes (the full
table ships in ``data/etsy_carriers.json``; an unknown name silently loses the
tracking, so anything else is sent as ``other``).

Tracking numbers of UPS, USPS (IMpb and S10) and FedEx have a known format and
check digit; a number that fails them is almost always a typo.  Other carriers
are only checked for being non-empty printable text.
"""

from __future__ import annotations

import enum
import itertools
import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from tf_console.models import Platform


class CarrierFamily(enum.StrEnum):
    UPS = "ups"
    USPS = "usps"
    FEDEX = "fedex"
    DHL = "dhl"
    ROYAL_MAIL = "royal-mail"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Carrier:
    code: str  # what the marketplace wants on the wire
    label: str  # what the operator sees
    family: CarrierFamily


# Seller Central's carrier list (the common ones for a small shop); anything else is
# sent as ``Other`` with ``carrierName``.
AMAZON_CARRIERS: tuple[Carrier, ...] = (
    Carrier("USPS", "USPS", CarrierFamily.USPS),
    Carrier("UPS", "UPS", CarrierFamily.UPS),
    Carrier("FedEx", "FedEx", CarrierFamily.FEDEX),
    Carrier("DHL", "DHL", CarrierFamily.DHL),
    Carrier("Royal Mail", "Royal Mail", CarrierFamily.ROYAL_MAIL),
    Carrier("Amazon Shipping", "Amazon Shipping", CarrierFamily.OTHER),
    Carrier("OnTrac", "OnTrac", CarrierFamily.OTHER),
    Carrier("Canada Post", "Canada Post", CarrierFamily.OTHER),
    Carrier("Deutsche Post", "Deutsche Post", CarrierFamily.OTHER),
    Carrier("Other", "Other (type a name)", CarrierFamily.OTHER),
)

# Trading API ShippingCarrierCodeType values.
EBAY_CARRIERS: tuple[Carrier, ...] = (
    Carrier("USPS", "USPS", CarrierFamily.USPS),
    Carrier("UPS", "UPS", CarrierFamily.UPS),
    Carrier("FedEx", "FedEx", CarrierFamily.FEDEX),
    Carrier("DHL", "DHL", CarrierFamily.DHL),
    Carrier("RoyalMail", "Royal Mail", CarrierFamily.ROYAL_MAIL),
    Carrier("CanadaPost", "Canada Post", CarrierFamily.OTHER),
    Carrier("DeutschePost", "Deutsche Post", CarrierFamily.OTHER),
    Carrier("Other", "Other", CarrierFamily.OTHER),
)

_ETSY_FAMILIES = {
    "usps": CarrierFamily.USPS,
    "ups": CarrierFamily.UPS,
    "fedex": CarrierFamily.FEDEX,
    "dhl": CarrierFamily.DHL,
    "royal-mail": CarrierFamily.ROYAL_MAIL,
}


@cache
def etsy_carriers() -> tuple[Carrier, ...]:
    raw = json.loads(resources.files("tf_console.data").joinpath("etsy_carriers.json").read_text("utf-8"))
    carriers = [
        Carrier(
            entry["carrier_name"],
            entry["carrier"],
            _ETSY_FAMILIES.get(entry["carrier_name"], CarrierFamily.OTHER),
        )
        for entry in raw
    ]
    # The common ones first, so the ship dialog opens on something useful.
    common = ["usps", "ups", "fedex", "dhl", "royal-mail", "canada-post", "australia-post"]
    carriers.sort(key=lambda c: (common.index(c.code) if c.code in common else len(common), c.label.lower()))
    if not any(c.code == "other" for c in carriers):
        carriers.append(Carrier("other", "Other", CarrierFamily.OTHER))
    return tuple(carriers)


def carriers_for(platform: Platform) -> tuple[Carrier, ...]:
    if platform is Platform.AMAZON:
        return AMAZON_CARRIERS
    if platform is Platform.EBAY:
        return EBAY_CARRIERS
    if platform is Platform.ETSY:
        return etsy_carriers()
    return EBAY_CARRIERS  # the test platform accepts any name


def find_carrier(platform: Platform, code_or_label: str) -> Carrier | None:
    wanted = code_or_label.strip().lower()
    for c in carriers_for(platform):
        if wanted in (c.code.lower(), c.label.lower()):
            return c
    return None


# --------------------------------------------------------------------------- check digits


def _ups_ok(n: str) -> bool:
    if not re.fullmatch(r"1Z[0-9A-Z]{16}", n):
        return False
    body, check = n[2:-1], n[-1]
    if not check.isdigit():
        return False
    total = 0
    for i, ch in enumerate(body):
        value = int(ch) if ch.isdigit() else (ord(ch) - 63) % 10
        total += value * 2 if i % 2 else value
    return (10 - total % 10) % 10 == int(check)


def _mod10_31(digits: str) -> bool:
    """GS1 mod 10 (weights 3,1 from the right), used by USPS IMpb and FedEx Ground."""
    body, check = digits[:-1], int(digits[-1])
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return (10 - total % 10) % 10 == check


def _usps_impb_ok(n: str) -> bool:
    if not n.isdigit():
        return False
    if len(n) in (26, 30, 34) and n.startswith("420"):  # routing prefix 420+ZIP(5 or 9)
        n = n[8:] if len(n) in (26, 30) else n[12:]
    return len(n) in (20, 22) and n[:2] in ("91", "92", "93", "94", "95") and _mod10_31(n)


def _s10_ok(n: str) -> bool:
    """UPU S10 international items (USPS, Royal Mail, most posts): AA123456785US."""
    m = re.fullmatch(r"[A-Z]{2}(\d{8})(\d)[A-Z]{2}", n)
    if not m:
        return False
    total = sum(int(d) * w for d, w in zip(m.group(1), (8, 6, 4, 2, 3, 5, 9, 7), strict=True))
    check = 11 - total % 11
    check = {10: 0, 11: 5}.get(check, check)
    return check == int(m.group(2))


def _fedex_ok(n: str) -> bool:
    if not n.isdigit():
        return False
    if len(n) == 12:  # FedEx Express
        total = sum(int(d) * w for d, w in zip(reversed(n[:-1]), itertools.cycle((1, 3, 7)), strict=False))
        return total % 11 % 10 == int(n[-1])
    if len(n) == 15:  # FedEx Ground
        return _mod10_31(n)
    if len(n) == 22 and n.startswith("96"):  # Ground 96 barcode: the last 15 digits carry the check
        return _mod10_31(n[7:])
    if len(n) == 20:  # SmartPost uses USPS-style numbers
        return _mod10_31(n)
    return False


@dataclass(frozen=True, slots=True)
class TrackingCheck:
    ok: bool
    sentence: str = ""  # why it is not ok, and what to do
    hard: bool = False  # True: never acceptable (empty, unprintable), --force cannot override


def normalise_tracking(tracking: str) -> str:
    return re.sub(r"[\s-]", "", tracking).upper()


def check_tracking(family: CarrierFamily, tracking: str) -> TrackingCheck:
    raw = tracking.strip()
    if not raw:
        return TrackingCheck(False, "A tracking number is required.", hard=True)
    if not raw.isprintable() or len(raw) > 64:
        return TrackingCheck(
            False, "The tracking number has unprintable characters or is too long; retype it.", hard=True
        )
    n = normalise_tracking(raw)
    checks = {
        CarrierFamily.UPS: (_ups_ok, "UPS numbers look like 1Z + 16 letters/digits with a check digit"),
        CarrierFamily.USPS: (
            lambda s: _usps_impb_ok(s) or _s10_ok(s),
            "USPS numbers are 20–22 digits (IMpb, starting 91–95) or like EA123456785US, with a check digit",
        ),
        CarrierFamily.FEDEX: (_fedex_ok, "FedEx numbers are 12, 15, 20 or 22 digits with a check digit"),
        CarrierFamily.ROYAL_MAIL: (
            _s10_ok,
            "Royal Mail tracked numbers look like AB123456785GB, with a check digit",
        ),
    }
    if family in checks:
        fn, hint = checks[family]
        if not fn(n):
            return TrackingCheck(
                False,
                f"{raw!r} does not look like a {family.value.upper()} tracking number ({hint}); "
                "check it, or use --force if it is right.",
            )
    return TrackingCheck(True)
