"""Building blocks of the demo's synthetic data, shared by every system's seed: districts,
rows and tables, Thai persons and companies with valid IDs, places, dates and amounts."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from gateway.demo import thai_data as th
from gateway.demo.tax_rules import thai_id_check_digit

Row = tuple[Any, ...]
SCATTER_M = 2_000.0  # parcels and complaints lie within this distance of a district's centre
METRES_PER_DEGREE = 111_320.0


@dataclass(frozen=True)
class DistrictRow:
    code: str
    name_th: str  # with the "เขต" prefix
    tier: str  # "inner", "middle" or "outer"
    lat: float
    lon: float

    @property
    def short_name(self) -> str:
        return self.name_th.removeprefix("เขต")


@dataclass(frozen=True)
class Table:
    schema: str
    name: str
    columns: tuple[str, ...]
    rows: list[Row]


def _log_uniform(rng: random.Random, low: float, high: float) -> float:
    return math.exp(rng.uniform(math.log(low), math.log(high)))


def _allocate(total: int, weights: Sequence[float], minimum: int) -> list[int]:
    """``total`` split by ``weights`` (largest remainder), each share at least ``minimum``."""
    floor = min(minimum, total // len(weights))
    rest = total - floor * len(weights)
    weight_sum = sum(weights) or 1.0  # all-zero weights: everyone gets the floor
    shares = [rest * w / weight_sum for w in weights]
    counts = [floor + int(s) for s in shares]
    by_remainder = sorted(range(len(weights)), key=lambda i: (int(shares[i]) - shares[i], i))
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def _scatter(rng: random.Random, district: DistrictRow) -> tuple[float, float]:
    """A point uniformly within ``SCATTER_M`` of the district's centre, 6 decimals."""
    r = SCATTER_M * math.sqrt(rng.random())
    theta = rng.uniform(0, 2 * math.pi)
    lat = district.lat + r * math.cos(theta) / METRES_PER_DEGREE
    lon = district.lon + r * math.sin(theta) / (METRES_PER_DEGREE * math.cos(math.radians(lat)))
    return round(lat, 6), round(lon, 6)


def _random_date(rng: random.Random, start: date, end: date) -> date:
    return start + timedelta(days=rng.randint(0, (end - start).days))


def _road(rng: random.Random, district: DistrictRow) -> str:
    return rng.choice(th.DISTRICT_ROADS[district.code])


def _subdistrict(rng: random.Random, district: DistrictRow) -> str:
    return rng.choice(th.DISTRICT_SUBDISTRICTS[district.code])


def _house_number(rng: random.Random) -> str:
    number = str(rng.randint(1, 999))
    return f"{number}/{rng.randint(1, 99)}" if rng.random() < 0.4 else number


def _address(rng: random.Random, district: DistrictRow) -> str:
    """A registry-style address: house, soi, road, sub-district, district, city."""
    road = _road(rng, district)
    soi = f" ซอย{road} {rng.randint(1, 60)}" if rng.random() < 0.7 else ""
    return (
        f"{_house_number(rng)}{soi} ถนน{road} แขวง{_subdistrict(rng, district)} "
        f"{district.name_th} กรุงเทพมหานคร"
    )


# ---------------------------------------------------------------------------- people


class People:
    """Thai persons and companies; every ID issued is unique and has a valid check digit."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._issued: set[str] = set()  # membership only: never iterated

    def person_name(self) -> str:
        rng = self._rng
        if rng.random() < 0.5:
            title, first = th.MALE_TITLE, rng.choice(th.MALE_FIRST_NAMES)
        else:
            title, first = rng.choice(th.FEMALE_TITLES), rng.choice(th.FEMALE_FIRST_NAMES)
        return f"{title}{first} {rng.choice(th.SURNAMES)}"

    def person_id(self) -> str:
        """Category digit 1-8, registration office, book and sequence, check digit."""
        return self._unique(self._person_id_body)

    def company(self) -> tuple[str, str]:
        """A juristic person's name and its 13-digit ID (leading 0, Bangkok registrar)."""
        rng = self._rng
        form, kind_digit = rng.choices(th.COMPANY_FORMS, weights=(62, 35, 3))[0]
        core = rng.choice(th.COMPANY_PREFIXES) + rng.choice(th.COMPANY_SUFFIXES)
        year = rng.randint(2530, 2568)

        def body() -> str:
            return f"010{kind_digit}{year % 1000:03d}{rng.randint(0, 99999):05d}"

        return form.format(core=core), self._unique(body)

    def _person_id_body(self) -> str:
        rng = self._rng
        category = rng.choices("12345678", weights=(46, 4, 38, 3, 3, 2, 2, 2))[0]
        if rng.random() < 0.6:  # born or registered in Bangkok: office 10xx
            office = f"10{rng.randint(1, 50):02d}"
        else:
            office = f"{rng.randint(11, 96)}{rng.randint(1, 20):02d}"
        return f"{category}{office}{rng.randint(0, 99999):05d}{rng.randint(0, 99):02d}"

    def _unique(self, body: Callable[[], str]) -> str:
        while True:
            first12 = body()
            national_id = first12 + str(thai_id_check_digit(first12))
            if national_id not in self._issued:
                self._issued.add(national_id)
                return national_id


@dataclass(frozen=True)
class Registration:
    no: str
    name: str
    type: str
    owner_name: str
    owner_id: str
    address: str
    registered_on: date
    status: str

    def row(self) -> Row:
        return (
            self.no,
            self.name,
            self.type,
            self.owner_name,
            self.owner_id,
            self.address,
            self.registered_on,
            self.status,
        )
