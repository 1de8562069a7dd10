"""Tax rules the synthetic BMA TAX data is computed with: pure functions, no I/O.

Land and building tax follows the permanent rates of the Land and Building Tax Act B.E. 2562,
applied progressively by bracket on the taxable value; signboard tax follows the Signboard Tax
Act rates per started 500 cm². Amounts are baht as ``Decimal``, rounded half-up to the satang.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

SATANG = Decimal("0.01")
RATE_PLACES = Decimal("0.00001")
MILLION = Decimal(1_000_000)
EXEMPTION_CAP = 50 * MILLION  # individuals' agricultural land, a person's primary residence

# (upper bound of the bracket in baht, or None for the open top; rate in percent)
Bracket = tuple[Decimal | None, Decimal]


def _brackets(*pairs: tuple[int | None, str]) -> tuple[Bracket, ...]:
    """Brackets from (upper bound in millions, percent) pairs."""
    return tuple((None if m is None else m * MILLION, Decimal(p)) for m, p in pairs)


LAND_USE_BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "agricultural": _brackets(
        (75, "0.01"), (100, "0.03"), (500, "0.05"), (1000, "0.07"), (None, "0.1")
    ),
    "residential": _brackets((50, "0.02"), (75, "0.03"), (100, "0.05"), (None, "0.1")),
    "commercial_other": _brackets(
        (50, "0.3"), (200, "0.4"), (1000, "0.5"), (5000, "0.6"), (None, "0.7")
    ),
}
# Vacant land is taxed at the commercial/other rates (the three-yearly surcharge is left out).
LAND_USE_BRACKETS["vacant"] = LAND_USE_BRACKETS["commercial_other"]

OWNER_KINDS = ("person", "juristic")

# Baht per started 500 cm², by sign type: (fixed, moving).
SIGNBOARD_RATES: dict[int, tuple[Decimal, Decimal]] = {
    1: (Decimal(5), Decimal(10)),  # Thai only
    2: (Decimal(26), Decimal(52)),  # Thai mixed with foreign script or pictures
    3: (Decimal(50), Decimal(52)),  # no Thai, or Thai below the foreign script
}
SIGNBOARD_UNIT_CM2 = 500
SIGNBOARD_MINIMUM = Decimal(200)


@dataclass(frozen=True)
class TaxResult:
    base: Decimal
    exemption: Decimal
    taxable: Decimal
    tax_due: Decimal
    rate: Decimal  # effective percent of the taxable value; 0 when nothing is taxable


def land_building_tax(
    land_use: str, base: Decimal, owner_kind: str, primary_residence: bool
) -> TaxResult:
    """The land and building tax of one parcel for one year."""
    brackets = LAND_USE_BRACKETS.get(land_use)
    if brackets is None:
        raise ValueError(f"unknown land use {land_use!r}")
    if owner_kind not in OWNER_KINDS:
        raise ValueError(f"unknown owner kind {owner_kind!r}")
    if base < 0:
        raise ValueError("the base value cannot be negative")
    exemption = min(base, _exemption_cap(land_use, owner_kind, primary_residence))
    taxable = base - exemption
    exact = _progressive(taxable, brackets)
    rate = (exact * 100 / taxable).quantize(RATE_PLACES, ROUND_HALF_UP) if taxable else Decimal(0)
    return TaxResult(
        base=base,
        exemption=exemption,
        taxable=taxable,
        tax_due=exact.quantize(SATANG, ROUND_HALF_UP),
        rate=rate,
    )


def _exemption_cap(land_use: str, owner_kind: str, primary_residence: bool) -> Decimal:
    if owner_kind != "person":
        return Decimal(0)
    if land_use == "agricultural" or (land_use == "residential" and primary_residence):
        return EXEMPTION_CAP
    return Decimal(0)


def _progressive(value: Decimal, brackets: Sequence[Bracket]) -> Decimal:
    """Each slice of ``value`` taxed at its own bracket's rate, unrounded."""
    tax = Decimal(0)
    lower = Decimal(0)
    for upper, percent in brackets:
        top = value if upper is None else min(value, upper)
        if top <= lower:
            break
        tax += (top - lower) * percent / 100
        if upper is None:
            break
        lower = upper
    return tax


def signboard_tax(sign_type: int, area_cm2: int, moving: bool) -> Decimal:
    """The yearly tax of one sign: per started 500 cm², at least 200 baht."""
    rates = SIGNBOARD_RATES.get(sign_type)
    if rates is None:
        raise ValueError(f"unknown sign type {sign_type!r}")
    if area_cm2 <= 0:
        raise ValueError("a sign's area must be positive")
    units = -(-area_cm2 // SIGNBOARD_UNIT_CM2)  # ceiling: a started unit counts whole
    tax = units * rates[1 if moving else 0]
    return max(tax, SIGNBOARD_MINIMUM).quantize(SATANG)


def thai_id_check_digit(first12: str) -> int:
    """The 13th digit of a Thai national or juristic ID from its first 12 digits."""
    if len(first12) != 12 or not (first12.isascii() and first12.isdigit()):
        raise ValueError("expected exactly 12 ASCII digits")
    total = sum(int(d) * (13 - i) for i, d in enumerate(first12))
    return (11 - total % 11) % 10


def is_valid_thai_id(s: str) -> bool:
    """13 ASCII digits whose last is the check digit of the first 12."""
    # isascii first: str.isdigit also accepts Thai digits (๐-๙), which IDs never use.
    if len(s) != 13 or not (s.isascii() and s.isdigit()):
        return False
    return thai_id_check_digit(s[:12]) == int(s[12])
