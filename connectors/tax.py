"""BMA TAX: land-and-building tax and signboard tax, over asyncpg.

Every method takes a batch of keys and makes one query, so a DataLoader can gather a whole
level of a GraphQL query into one upstream call.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import (
    Page,
    PageRequest,
    Record,
    decode_position,
    encode_cursor,
)
from connectors.pg import PgConnector, keyset_page_sql, page_from_rows

_PARCEL_COLUMNS = """id, title_deed_type, title_deed_number, district_code, land_use,
    area_sqm, appraised_value, lat, lon, owner_id"""


@dataclass(frozen=True)
class ParcelQuery:
    district_codes: tuple[str, ...] = ()
    land_uses: tuple[str, ...] = ()


class TaxConnector(PgConnector):
    name = "tax"

    async def parcels_by_ids(self, ids: Sequence[int]) -> dict[int, Record]:
        rows = await self._db.fetch(
            f"SELECT {_PARCEL_COLUMNS} FROM tax.parcels WHERE id = ANY($1::bigint[])", list(ids)
        )
        return {r["id"]: r for r in rows}

    async def owners_by_ids(self, ids: Sequence[int]) -> dict[int, Record]:
        rows = await self._db.fetch(
            "SELECT id, kind, name, national_id FROM tax.owners WHERE id = ANY($1::bigint[])",
            list(ids),
        )
        return {r["id"]: r for r in rows}

    async def owner_ids_by_national_id(self, national_id: str) -> list[int]:
        """BMA TAX owner records of one person or juristic person (for data-subject reports)."""
        rows = await self._db.fetch(
            "SELECT id FROM tax.owners WHERE national_id = $1 ORDER BY id", national_id
        )
        return [r["id"] for r in rows]

    async def assessments_by_parcels(self, parcel_ids: Sequence[int]) -> dict[int, list[Record]]:
        rows = await self._db.fetch(
            """SELECT parcel_id, tax_year, base, exemption, rate, tax_due, status, paid_at
               FROM tax.assessments WHERE parcel_id = ANY($1::bigint[])
               ORDER BY parcel_id, tax_year""",
            list(parcel_ids),
        )
        return _group(rows, "parcel_id")

    async def signboards_by_parcels(self, parcel_ids: Sequence[int]) -> dict[int, list[Record]]:
        rows = await self._db.fetch(
            f"SELECT {_SIGNBOARD_COLUMNS} FROM tax.signboards "
            "WHERE parcel_id = ANY($1::bigint[]) ORDER BY id",
            list(parcel_ids),
        )
        return _group(rows, "parcel_id")

    async def signboards_by_businesses(self, numbers: Sequence[str]) -> dict[str, list[Record]]:
        rows = await self._db.fetch(
            f"SELECT {_SIGNBOARD_COLUMNS} FROM tax.signboards "
            "WHERE business_registration_no = ANY($1::text[]) ORDER BY id",
            list(numbers),
        )
        return _group(rows, "business_registration_no")

    async def revenue(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Record]:
        """Land-and-building tax per (district, year): assessed, collected, outstanding."""
        codes = sorted({c for c, _ in keys})
        years = sorted({y for _, y in keys})
        rows = await self._db.fetch(
            """SELECT p.district_code, a.tax_year AS year,
                      sum(a.tax_due) AS assessed,
                      coalesce(sum(a.tax_due) FILTER (WHERE a.status = 'paid'), 0) AS collected,
                      coalesce(sum(a.tax_due)
                               FILTER (WHERE a.status IN ('unpaid', 'overdue')), 0) AS outstanding,
                      count(*) AS parcel_count  -- one assessment per parcel and year (PK)
               FROM tax.assessments a JOIN tax.parcels p ON p.id = a.parcel_id
               WHERE p.district_code = ANY($1::text[]) AND a.tax_year = ANY($2::int[])
               GROUP BY p.district_code, a.tax_year""",
            codes,
            years,
        )
        found = {(r["district_code"], r["year"]): r for r in rows}
        return {key: found.get(key) or _empty_revenue(*key) for key in keys}

    async def revenue_by_month(
        self, keys: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], list[Record]]:
        """Both taxes per (district, year), in one query: for each tax type one row for the
        whole year (``month`` None, ``whole_year`` true: estimate, collected, outstanding,
        distinct payers) and one per month of payment, Bangkok time (``month`` its first day;
        ``month`` None without ``whole_year``: paid, but no payment date recorded).

        The figures are counted as ``revenue`` counts them (collected is what has status
        ``paid``), so the months and the undated row sum to the year's collected."""
        codes = sorted({c for c, _ in keys})
        years = sorted({y for _, y in keys})
        rows = await self._db.fetch(_REVENUE_BY_MONTH_SQL, codes, years)
        found: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for r in rows:
            found[(r["district_code"], r["year"])].append(r)
        return {key: found.get(key, []) for key in keys}

    async def search_parcels(self, where: ParcelQuery, page: PageRequest) -> Page:
        sql = keyset_page_sql(
            _PARCEL_COLUMNS,
            "tax.parcels",
            """(cardinality($1::text[]) = 0 OR district_code = ANY($1::text[]))
               AND (cardinality($2::text[]) = 0 OR land_use = ANY($2::text[]))""",
            key="id",
            after="$3",
            limit="$4",
            count=page.count,
        )
        rows = await self._db.fetch(
            sql,
            list(where.district_codes),
            list(where.land_uses),
            decode_position("parcel", page.after),
            page.first + 1,
        )
        return page_from_rows(rows, page.first, "id")


# Land-and-building tax is owed by the parcel's owner, signboard tax by the business whose
# sign it is; a sign is counted in the district where it stands. Month-level rows of unpaid
# items fall into the (month NULL, not whole year) group with nothing collected.
_REVENUE_BY_MONTH_SQL = """
WITH items AS (
    SELECT p.district_code, a.tax_year AS year, 'land_building' AS tax_type, a.tax_due,
           a.status, a.paid_at, p.owner_id::text AS payer
    FROM tax.assessments a JOIN tax.parcels p ON p.id = a.parcel_id
    WHERE p.district_code = ANY($1::text[]) AND a.tax_year = ANY($2::int[])
    UNION ALL
    SELECT s.district_code, s.tax_year, 'signboard', s.tax_due,
           s.status, s.paid_at, s.business_registration_no
    FROM tax.signboards s
    WHERE s.district_code = ANY($1::text[]) AND s.tax_year = ANY($2::int[])
)
SELECT district_code, year, tax_type,
       date_trunc('month', paid_at AT TIME ZONE 'Asia/Bangkok')::date AS month,
       grouping(date_trunc('month', paid_at AT TIME ZONE 'Asia/Bangkok')) = 1 AS whole_year,
       sum(tax_due) AS estimate,
       coalesce(sum(tax_due) FILTER (WHERE status = 'paid'), 0) AS collected,
       coalesce(sum(tax_due) FILTER (WHERE status IN ('unpaid', 'overdue')), 0) AS outstanding,
       count(DISTINCT payer) FILTER (WHERE status = 'paid') AS taxpayers
FROM items
GROUP BY GROUPING SETS (
    (district_code, year, tax_type),
    (district_code, year, tax_type, date_trunc('month', paid_at AT TIME ZONE 'Asia/Bangkok'))
)
ORDER BY district_code, year, tax_type, whole_year DESC, month NULLS FIRST
"""

_SIGNBOARD_COLUMNS = """id, business_registration_no, parcel_id, district_code, sign_type,
    area_cm2, moving, tax_year, tax_due"""


def parcel_cursor(parcel_id: int) -> str:
    return encode_cursor("parcel", parcel_id)


def _group(rows: list[Record], key: str) -> dict[Any, list[Record]]:
    grouped: dict[Any, list[Record]] = defaultdict(list)
    for r in rows:
        grouped[r[key]].append(r)
    return grouped


def _empty_revenue(code: str, year: int) -> Record:
    return {
        "district_code": code,
        "year": year,
        "assessed": 0,
        "collected": 0,
        "outstanding": 0,
        "parcel_count": 0,
    }
