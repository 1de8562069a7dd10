"""The 50 district offices' registries, each its own PostgreSQL source.

A district source is a DSN and a schema. Sources with the same DSN share one pool (the demo
hosts all 50 as schemas of one database), but each fails on its own: a city-wide read fans
out to every source concurrently and a source that fails becomes a named failure beside the
other districts' rows.
"""

from __future__ import annotations

import asyncio
import heapq
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from connectors.base import (
    CallCounter,
    InvalidCursor,
    Page,
    PageRequest,
    Record,
    SourceHealth,
    UpstreamError,
    decode_cursor,
    encode_cursor,
)
from connectors.districts import all_districts
from connectors.observer import QUIET, UpstreamObserver
from connectors.pg import PgPool, PgSource, PoolSettings, keyset_page_sql, page_from_rows
from connectors.resilience import Guard, ResilienceSettings

T = TypeVar("T")

# Registration numbers start with the district code: "1039-2566-00123".
_REGISTRATION_NO = re.compile(r"^(10[0-9]{2})-[0-9]{4}-[0-9]{5}$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

_BUSINESS_COLUMNS = """registration_no, business_name, business_type, owner_name, owner_id,
    address, registered_on, status"""


@dataclass(frozen=True)
class RegistrySourceConfig:
    code: str
    dsn: str
    schema: str


@dataclass(frozen=True)
class BusinessQuery:
    district_codes: tuple[str, ...] = ()
    types: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()


class _District:
    """One district's source: where it lives and how to read it. Its breaker is its own: a
    district that is down never opens another's, even one sharing its pool."""

    def __init__(
        self,
        config: RegistrySourceConfig,
        pool: PgPool,
        counter: CallCounter,
        resilience: ResilienceSettings | None = None,
    ) -> None:
        if not _SCHEMA_NAME.match(config.schema):
            raise ValueError(f"invalid schema name for district {config.code}: {config.schema!r}")
        self.code = config.code
        self.schema = config.schema
        self.db = PgSource(f"registry:{config.code}", pool, counter, resilience)

    def table(self, name: str) -> str:
        return f"{self.schema}.{name}"


class RegistryConnector:
    name = "registry"

    def __init__(
        self,
        sources: Sequence[RegistrySourceConfig],
        settings: PoolSettings | None = None,
        resilience: ResilienceSettings | None = None,
        observer: UpstreamObserver = QUIET,
    ) -> None:
        self.counter = CallCounter(observer)
        settings = settings or PoolSettings()
        self._pools: dict[str, PgPool] = {}
        self._districts: dict[str, _District] = {}
        for config in sources:
            pool = self._pools.setdefault(config.dsn, PgPool(config.dsn, settings))
            self._districts[config.code] = _District(config, pool, self.counter, resilience)

    @classmethod
    def one_database(
        cls,
        dsn: str,
        settings: PoolSettings | None = None,
        resilience: ResilienceSettings | None = None,
        observer: UpstreamObserver = QUIET,
    ) -> RegistryConnector:
        """All 50 districts as schemas ``d1001`` … ``d1050`` of one database (the demo)."""
        return cls(
            [RegistrySourceConfig(d.code, dsn, f"d{d.code}") for d in all_districts()],
            settings,
            resilience,
            observer,
        )

    @property
    def district_codes(self) -> list[str]:
        return sorted(self._districts)

    async def start(self) -> None:
        await asyncio.gather(*(p.start() for p in self._pools.values()))

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in self._pools.values()))

    async def health(self) -> list[SourceHealth]:
        return list(await asyncio.gather(*(d.db.health() for d in self._districts.values())))

    def guards(self) -> dict[str, Guard]:
        """Each district source's guard, by source name (``registry:1039``)."""
        return {d.db.name: d.db.guard for d in self._districts.values()}

    async def summaries(self, codes: Sequence[str]) -> dict[str, Record | UpstreamError]:
        """Per district: latest population total and active business count, one call each."""

        async def one(d: _District) -> Record:
            rows = await d.db.fetch(
                f"""SELECT
                      (SELECT count(*) FROM {d.table("commercial_registrations")}
                       WHERE status = 'active') AS business_count,
                      (SELECT sum(population) FROM {d.table("population_stats")}
                       WHERE year = (SELECT max(year) FROM {d.table("population_stats")}))
                       AS population"""
            )
            return rows[0]

        return await self._each(codes, one)

    async def population(self, codes: Sequence[str]) -> dict[str, list[Record] | UpstreamError]:
        """Per district: the latest year's population by sex and age band."""

        async def one(d: _District) -> list[Record]:
            table = d.table("population_stats")
            return await d.db.fetch(
                f"""SELECT year, sex, age_band, population FROM {table}
                    WHERE year = (SELECT max(year) FROM {table}) ORDER BY age_band, sex"""
            )

        return await self._each(codes, one)

    async def businesses_by_numbers(
        self, numbers: Sequence[str]
    ) -> dict[str, Record | UpstreamError | None]:
        """Registrations by number (None: no such registration), routed to the district the
        number names."""

        async def fetch(d: _District, keys: list[str]) -> list[Record]:
            return await d.db.fetch(
                f"SELECT {_BUSINESS_COLUMNS} FROM {d.table('commercial_registrations')} "
                "WHERE registration_no = ANY($1::text[])",
                keys,
            )

        found = await self._routed(numbers, fetch)
        return {n: _first(found.get(n)) for n in numbers}

    async def licences_by_numbers(
        self, numbers: Sequence[str]
    ) -> dict[str, list[Record] | UpstreamError]:
        async def fetch(d: _District, keys: list[str]) -> list[Record]:
            return await d.db.fetch(
                f"""SELECT licence_no, registration_no, kind, issued_on, expires_on
                    FROM {d.table("licences")} WHERE registration_no = ANY($1::text[])
                    ORDER BY issued_on, licence_no""",
                keys,
            )

        found = await self._routed(numbers, fetch)
        return {n: found.get(n, []) for n in numbers}

    async def building_permits(self, code: str, page: PageRequest) -> Page:
        d = self._districts[code]
        after = decode_cursor("permit", page.after) if page.after else ""
        sql = keyset_page_sql(
            "permit_no, applicant_name, applicant_id, address, building_type, floors, area_sqm, "
            "permitted_on",
            d.table("building_permits"),
            "true",
            key="permit_no",
            after="$1",
            limit="$2",
            count=page.count,
        )
        rows = await d.db.fetch(sql, after, page.first + 1)
        return page_from_rows(rows, page.first, "permit_no", district_code=code)

    async def search_businesses(self, where: BusinessQuery, page: PageRequest) -> Page:
        """One page across the chosen districts, ordered by registration number.

        Every source answers its own first ``first`` rows after the cursor and its total for
        the filter; the pages are merged. A failed source contributes its error, not rows.
        """
        after = _business_after(page.after)
        codes = [c for c in (where.district_codes or self.district_codes) if c in self._districts]

        async def one(d: _District) -> Page:
            sql = keyset_page_sql(
                _BUSINESS_COLUMNS,
                d.table("commercial_registrations"),
                """(cardinality($1::text[]) = 0 OR business_type = ANY($1::text[]))
                   AND (cardinality($2::text[]) = 0 OR status = ANY($2::text[]))""",
                key="registration_no",
                after="$3",
                limit="$4",
                count=page.count,
            )
            rows = await d.db.fetch(
                sql, list(where.types), list(where.statuses), after, page.first + 1
            )
            return page_from_rows(rows, page.first, "registration_no", district_code=d.code)

        return _merge(await self._each(codes, one), page.first)

    async def _each(
        self, codes: Sequence[str], call: Callable[[_District], Awaitable[T]]
    ) -> dict[str, T | UpstreamError]:
        """Call every named district concurrently; a failure is returned, not raised."""
        targets = [self._districts[c] for c in codes if c in self._districts]
        outcomes = await asyncio.gather(*(call(d) for d in targets), return_exceptions=True)
        result: dict[str, T | UpstreamError] = {}
        for d, outcome in zip(targets, outcomes, strict=True):
            if isinstance(outcome, UpstreamError):
                outcome.district = d.code
                result[d.code] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                result[d.code] = outcome
        return result

    async def _routed(
        self,
        numbers: Sequence[str],
        fetch: Callable[[_District, list[str]], Awaitable[list[Record]]],
    ) -> dict[str, list[Record] | UpstreamError]:
        """Send each registration number to its district; group the answers by number."""
        by_code: dict[str, list[str]] = defaultdict(list)
        for n in numbers:
            code = district_of_registration(n)
            if code in self._districts:
                by_code[code].append(n)
        answers = await self._each(list(by_code), lambda d: fetch(d, by_code[d.code]))
        found: dict[str, list[Record] | UpstreamError] = {}
        for code, answer in answers.items():
            if isinstance(answer, UpstreamError):
                found.update({n: answer for n in by_code[code]})
                continue
            for row in answer:
                row["district_code"] = code
                found.setdefault(row["registration_no"], []).append(row)  # type: ignore[union-attr]
        return found


def district_of_registration(number: str) -> str | None:
    match = _REGISTRATION_NO.match(number)
    return match.group(1) if match else None


def business_cursor(registration_no: str) -> str:
    return encode_cursor("business", registration_no)


def permit_cursor(permit_no: str) -> str:
    return encode_cursor("permit", permit_no)


def _business_after(cursor: str | None) -> str:
    if cursor is None:
        return ""
    value = decode_cursor("business", cursor)
    if district_of_registration(value) is None:
        raise InvalidCursor("the cursor is not a business cursor")
    return value


def _first(found: list[Record] | UpstreamError | None) -> Record | UpstreamError | None:
    if isinstance(found, UpstreamError) or found is None:
        return found
    return found[0]


def _merge(results: dict[str, Page | UpstreamError], first: int) -> Page:
    pages = [p for p in results.values() if isinstance(p, Page)]
    failures = [e for e in results.values() if isinstance(e, UpstreamError)]
    merged = list(heapq.merge(*(p.rows for p in pages), key=lambda r: r["registration_no"]))
    has_next = len(merged) > first or any(p.has_next for p in pages)
    return Page(
        rows=merged[:first],
        total=None if any(p.total is None for p in pages) else sum(p.total or 0 for p in pages),
        has_next=has_next,
        failures=failures,
    )
