"""Masks: what a principal below a field's level sees instead of the value.

Each takes the value as serialised for the response (a string or number) and returns the
masked value; they never fail on odd input, and never return more than they were given.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any


def national_id(value: Any) -> Any:
    """A 13-digit ID as ``x-xxxx-xxxxx-12-3``: only the last three digits stay."""
    digits = "".join(c for c in str(value) if c.isdigit())
    if len(digits) != 13:
        return "x-xxxx-xxxxx-xx-x"
    return f"x-xxxx-xxxxx-{digits[10:12]}-{digits[12]}"


def initials(value: Any) -> Any:
    """A name as initials: "นายสมชาย ใจดี" -> "ส. ใ."; titles and company words dropped."""
    words = [_untitled(w) for w in str(value).split()]
    shown = [w for w in words if w and w not in _COMPANY_WORDS] or ["x"]
    return " ".join(f"{w[0]}." for w in shown)


def _untitled(word: str) -> str:
    for title in _TITLES:
        if word.startswith(title):
            return word[len(title) :]
    return word


def round_million(value: Any) -> Any:
    """A baht amount rounded to the nearest million, as a string like the Decimal scalar."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    millions = (amount / 1_000_000).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return str(millions * 1_000_000)


# Longest first: "นางสาว" before "นาง".
_TITLES = ("นางสาว", "นาง", "นาย", "ด.ช.", "ด.ญ.", "Mrs.", "Miss", "Mr.", "Ms.")
_COMPANY_WORDS = frozenset({"บริษัท", "จำกัด", "(มหาชน)", "ห้างหุ้นส่วนจำกัด", "ห้างหุ้นส่วนสามัญ"})

MASKS: dict[str, Callable[[Any], Any]] = {
    "national_id": national_id,
    "initials": initials,
    "round_million": round_million,
}
