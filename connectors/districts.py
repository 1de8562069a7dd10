"""Reference data: the 50 districts of Bangkok, their codes and names.

Upstream systems name districts differently (codes in BMA TAX and the registries, Thai names
without "เขต" in Traffy Fondue, sometimes with stray spaces or the prefix): ``code_for_name``
maps every spelling we have met to the code.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class DistrictInfo:
    code: str
    name_th: str
    name_en: str

    @property
    def short_name_th(self) -> str:
        """The Thai name without the "เขต" prefix, as Traffy Fondue writes it."""
        return self.name_th.removeprefix("เขต")


@cache
def all_districts() -> tuple[DistrictInfo, ...]:
    text = resources.files("connectors").joinpath("data/bangkok_districts.csv").read_text("utf-8")
    rows = csv.DictReader(io.StringIO(text))
    return tuple(DistrictInfo(r["code"], r["name_th"], r["name_en"]) for r in rows)


@cache
def _by_code() -> dict[str, DistrictInfo]:
    return {d.code: d for d in all_districts()}


@cache
def _by_name() -> dict[str, str]:
    names: dict[str, str] = {}
    for d in all_districts():
        names[_normalise(d.name_th)] = d.code
        names[_normalise(d.name_en)] = d.code
    return names


_SPACES = re.compile(r"\s+")


def _normalise(name: str) -> str:
    name = _SPACES.sub("", name).lower()
    for prefix in ("เขต", "khet"):
        name = name.removeprefix(prefix)
    return name


def district(code: str) -> DistrictInfo | None:
    return _by_code().get(code)


def is_district_code(code: str) -> bool:
    return code in _by_code()


def code_for_name(name: str | None) -> str | None:
    """The district code for a Thai or English name in any spelling we know, else None."""
    if not name:
        return None
    return _by_name().get(_normalise(name))
