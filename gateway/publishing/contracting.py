"""What the two open-contracting publications (OCDS and OC4IDS) write the same way: the
selection they read from the graph, their request parameters, amounts, dates and party ids."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from gateway import errors

Json = dict[str, Any]
CURRENCY = "THB"
FIRST_FISCAL_YEAR, LAST_FISCAL_YEAR = 2500, 2700  # Buddhist era, as the graph accepts
# A supplier's public fields only: never its national id nor its address.
SUPPLIER_FIELDS = "{ id name }"
AMENDMENT_FIELDS = "{ id amendedOn rationale valueBefore valueAfter endsBefore endsAfter }"


def bad_parameter(parameter: str, reason: str) -> errors.BadRequest:
    return errors.BadRequest(f"`{parameter}` {reason}", parameter=parameter)


def fiscal_year(text: str) -> int:
    """A ``fiscalYear`` parameter: a Buddhist-era fiscal year the source holds."""
    if not (text.isascii() and text.isdigit() and len(text) == 4):
        raise bad_parameter("fiscalYear", "is a Buddhist-era fiscal year, e.g. 2568")
    year = int(text)
    if not FIRST_FISCAL_YEAR <= year <= LAST_FISCAL_YEAR:
        raise bad_parameter("fiscalYear", "is a Buddhist-era fiscal year, e.g. 2568")
    return year


def day_start(day: str) -> str:
    """An RFC 3339 date-time, Bangkok time, of a date the source records (its start)."""
    return f"{day}T00:00:00+07:00"


def amount(value: str) -> int | float:
    """A decimal of the graph (text) as a JSON number: whole baht as integers."""
    number = Decimal(value)
    return int(number) if number == number.to_integral_value() else float(number)


def money(value: str) -> Json:
    return {"amount": amount(value), "currency": CURRENCY}


def unit_id(code: str) -> str:
    return f"TH-BMA-{code}"


def supplier_id(record_id: str) -> str:
    """A supplier's party id: its record id, never a national or juristic id."""
    return f"TH-BMA-SUPPLIER-{record_id}"
