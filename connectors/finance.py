"""The finance and procurement system (MIS2 budget and disbursement, e-GP procurement), over
asyncpg.

A procurement process comes back whole in one row: its buyer, budget line, bids with their
bidders, award, contract with milestones, payments and amendments, tender amendments, the
infrastructure project of a public work, and the awards its buyer made to the same supplier
around its award (for the splitting indicator). Every method takes a batch of keys or one
filter and makes one query, so a DataLoader gathers a whole level of a GraphQL query into one
upstream call.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from connectors.base import (
    InvalidCursor,
    Page,
    PageRequest,
    Record,
    decode_cursor,
    decode_position,
    encode_cursor,
)
from connectors.pg import PgConnector, keyset_page_sql, page_from_rows

# The Public Procurement and Supplies Administration Act B.E. 2560 and its ministerial
# regulation on procurement values (2560): the specific method (s.56(2)(b)) up to 500,000
# baht; e-market for goods and services in the e-catalogue up to 5,000,000 baht; e-bidding
# above that, and for works. Baht, value including VAT.
METHOD_CEILINGS: dict[str, Decimal] = {
    "specific": Decimal(500_000),
    "e_market": Decimal(5_000_000),
}
# Below 100,000 baht a written agreement may stand in for a contract (s.96 para. 2).
WRITTEN_CONTRACT_FLOOR = Decimal(100_000)
THRESHOLDS: tuple[Decimal, ...] = (WRITTEN_CONTRACT_FLOOR, *METHOD_CEILINGS.values())
# Red-flag parameters of the integrity indicators (docs/transparency.md).
JUST_UNDER_SHARE = Decimal("0.95")  # a value at or below a threshold and at least 95% of it
SPLIT_WINDOW_DAYS = 30
RECENT_REGISTRATION_DAYS = 180
OCID_PREFIX = "ocds-bq4ldt-"

_SUPPLIER_JSON = """jsonb_build_object('id', s.id, 'kind', s.kind, 'name', s.name,
    'tax_id', s.tax_id, 'registration_no', s.registration_no, 'address', s.address)"""

# One process, whole: ``p`` is a row of finance.processes.
_BUNDLE = f"""SELECT p.id, p.fiscal_year, p.title, p.buyer_code, p.budget_line_id, p.method,
       p.category, p.budget, p.reference_price, p.announced_on, p.bid_deadline, p.status,
       u.name_th AS buyer_name_th, u.name_en AS buyer_name_en, u.kind AS buyer_kind,
       u.district_code AS buyer_district, bl.economic_class, bl.plan, bl.project,
       (SELECT coalesce(jsonb_agg(jsonb_build_object(
                'supplier', {_SUPPLIER_JSON}, 'offered_price', b.offered_price,
                'submitted_on', b.submitted_on, 'status', b.status)
                ORDER BY b.offered_price, b.supplier_id), '[]')
          FROM finance.bids b JOIN finance.suppliers s ON s.id = b.supplier_id
         WHERE b.process_id = p.id)::text AS bids,
       (SELECT jsonb_build_object('id', a.id, 'value', a.value, 'awarded_on', a.awarded_on,
                'supplier', {_SUPPLIER_JSON})
          FROM finance.awards a JOIN finance.suppliers s ON s.id = a.supplier_id
         WHERE a.process_id = p.id)::text AS award,
       (SELECT jsonb_build_object(
                'id', c.id, 'contract_no', c.contract_no, 'original_value', c.original_value,
                'value', c.value, 'signed_on', c.signed_on, 'starts_on', c.starts_on,
                'original_ends_on', c.original_ends_on, 'ends_on', c.ends_on,
                'status', c.status, 'supplier', {_SUPPLIER_JSON},
                'milestones', (SELECT coalesce(jsonb_agg(to_jsonb(m) - 'contract_id'
                                   ORDER BY m.seq), '[]')
                                 FROM finance.milestones m WHERE m.contract_id = c.id),
                'payments', (SELECT coalesce(jsonb_agg(to_jsonb(y) - 'contract_id'
                                 ORDER BY y.paid_on, y.id), '[]')
                               FROM finance.payments y WHERE y.contract_id = c.id),
                'amendments', (SELECT coalesce(jsonb_agg(to_jsonb(x) - 'contract_id'
                                   - 'process_id' ORDER BY x.amended_on, x.id), '[]')
                                 FROM finance.amendments x WHERE x.contract_id = c.id))
          FROM finance.contracts c JOIN finance.suppliers s ON s.id = c.supplier_id
         WHERE c.process_id = p.id)::text AS contract,
       (SELECT coalesce(jsonb_agg(to_jsonb(x) - 'contract_id' - 'process_id'
                ORDER BY x.amended_on, x.id), '[]')
          FROM finance.amendments x
         WHERE x.process_id = p.id AND x.contract_id IS NULL)::text AS tender_amendments,
       (SELECT to_jsonb(j) FROM finance.projects j
         WHERE j.process_id = p.id)::text AS project,
       (SELECT coalesce(jsonb_agg(jsonb_build_object('awarded_on', a2.awarded_on,
                'value', a2.value) ORDER BY a2.awarded_on, a2.id), '[]')
          FROM finance.awards a
          JOIN finance.awards a2 ON a2.supplier_id = a.supplier_id
          JOIN finance.processes p2 ON p2.id = a2.process_id AND p2.buyer_code = p.buyer_code
         WHERE a.process_id = p.id
           AND a2.awarded_on BETWEEN a.awarded_on - {SPLIT_WINDOW_DAYS}
                                 AND a.awarded_on + {SPLIT_WINDOW_DAYS})::text AS nearby_awards
  FROM finance.processes p
  JOIN finance.units u ON u.code = p.buyer_code
  JOIN finance.budget_lines bl ON bl.id = p.budget_line_id"""

_JSON_COLUMNS = ("bids", "award", "contract", "tender_amendments", "project", "nearby_awards")

_BUDGET_COLUMNS = """bl.id, bl.fiscal_year, bl.unit_code, bl.plan, bl.project,
    bl.economic_class, bl.proposed, bl.approved, bl.adjusted, bl.disbursed,
    u.name_th AS unit_name_th, u.name_en AS unit_name_en, u.kind AS unit_kind,
    u.district_code AS unit_district"""

_PROJECT_COLUMNS = """j.id, j.process_id, j.title, j.purpose, j.sector, j.district_code,
    j.lat, j.lon, j.budget, j.progress_pct, j.status, p.fiscal_year"""


@dataclass(frozen=True)
class ProcessQuery:
    fiscal_years: tuple[int, ...] = ()
    buyer_codes: tuple[str, ...] = ()
    district_codes: tuple[str, ...] = ()  # of the buying district office
    methods: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    announced_from: date | None = None  # inclusive, both
    announced_until: date | None = None


@dataclass(frozen=True)
class BudgetQuery:
    fiscal_years: tuple[int, ...] = ()
    unit_codes: tuple[str, ...] = ()
    district_codes: tuple[str, ...] = ()  # of the receiving district office
    economic_classes: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProjectQuery:
    ids: tuple[str, ...] = ()
    fiscal_years: tuple[int, ...] = ()
    district_codes: tuple[str, ...] = ()  # where the work is
    statuses: tuple[str, ...] = ()


class FinanceConnector(PgConnector):
    name = "finance"

    # -- procurement

    async def processes_by_ids(self, ids: Sequence[str]) -> dict[str, Record]:
        rows = await self._db.fetch(f"{_BUNDLE} WHERE p.id = ANY($1::text[])", list(ids))
        return {r["id"]: _decoded(r) for r in rows}

    async def contracts_by_registrations(self, numbers: Sequence[str]) -> dict[str, list[Record]]:
        """Processes contracted to the suppliers with these commercial registrations."""
        rows = await self._db.fetch(
            f"""{_BUNDLE}
                JOIN finance.contracts c0 ON c0.process_id = p.id
                JOIN finance.suppliers s0 ON s0.id = c0.supplier_id
               WHERE s0.registration_no = ANY($1::text[])
               ORDER BY c0.signed_on, p.id""",
            list(numbers),
        )
        grouped: dict[str, list[Record]] = defaultdict(list)
        for r in rows:
            record = _decoded(r)
            grouped[record["contract"]["supplier"]["registration_no"]].append(record)
        return grouped

    async def search_processes(self, where: ProcessQuery, page: PageRequest) -> Page:
        rows = await self._db.fetch(
            f"""WITH f AS (
                  SELECT p.id FROM finance.processes p
                    JOIN finance.units u ON u.code = p.buyer_code
                   WHERE (cardinality($1::int[]) = 0 OR p.fiscal_year = ANY($1::int[]))
                     AND (cardinality($2::text[]) = 0 OR p.buyer_code = ANY($2::text[]))
                     AND (cardinality($3::text[]) = 0 OR u.district_code = ANY($3::text[]))
                     AND (cardinality($4::text[]) = 0 OR p.method = ANY($4::text[]))
                     AND (cardinality($5::text[]) = 0 OR p.category = ANY($5::text[]))
                     AND (cardinality($6::text[]) = 0 OR p.status = ANY($6::text[]))
                     AND ($9::date IS NULL OR p.announced_on >= $9::date)
                     AND ($10::date IS NULL OR p.announced_on <= $10::date)),
                page AS (SELECT id FROM f WHERE id > $7 ORDER BY id LIMIT $8)
                SELECT {_total(page)} AS _total, b.* FROM (SELECT 1) AS one
                LEFT JOIN LATERAL ({_BUNDLE} WHERE p.id IN (SELECT id FROM page)) AS b ON true
                ORDER BY b.id""",
            list(where.fiscal_years),
            list(where.buyer_codes),
            list(where.district_codes),
            list(where.methods),
            list(where.categories),
            list(where.statuses),
            process_position(page.after),
            page.first + 1,
            where.announced_from,
            where.announced_until,
        )
        page_rows = page_from_rows(rows, page.first, "id")
        page_rows.rows = [_decoded(r) for r in page_rows.rows]
        return page_rows

    # -- budget

    async def search_budget_lines(self, where: BudgetQuery, page: PageRequest) -> Page:
        sql = keyset_page_sql(
            _BUDGET_COLUMNS,
            "finance.budget_lines bl JOIN finance.units u ON u.code = bl.unit_code",
            """(cardinality($1::int[]) = 0 OR bl.fiscal_year = ANY($1::int[]))
               AND (cardinality($2::text[]) = 0 OR bl.unit_code = ANY($2::text[]))
               AND (cardinality($3::text[]) = 0 OR u.district_code = ANY($3::text[]))
               AND (cardinality($4::text[]) = 0 OR bl.economic_class = ANY($4::text[]))""",
            key="id",
            after="$5",
            limit="$6",
            count=page.count,
        )
        rows = await self._db.fetch(
            sql,
            list(where.fiscal_years),
            list(where.unit_codes),
            list(where.district_codes),
            list(where.economic_classes),
            decode_position("budget-line", page.after),
            page.first + 1,
        )
        return page_from_rows(rows, page.first, "id")

    async def spending(self, keys: Sequence[tuple[str, int]]) -> dict[tuple[str, int], Record]:
        """A district office's budget and contracts per (district, fiscal year)."""
        codes = sorted({c for c, _ in keys})
        years = sorted({y for _, y in keys})
        rows = await self._db.fetch(
            """WITH lines AS (
                 SELECT u.district_code, bl.fiscal_year, sum(bl.approved) AS approved,
                        sum(bl.adjusted) AS adjusted, sum(bl.disbursed) AS disbursed
                   FROM finance.budget_lines bl JOIN finance.units u ON u.code = bl.unit_code
                  WHERE u.district_code = ANY($1::text[]) AND bl.fiscal_year = ANY($2::int[])
                  GROUP BY 1, 2),
               contracted AS (
                 SELECT u.district_code, p.fiscal_year, p.method, count(*) AS contracts,
                        sum(c.value) AS value
                   FROM finance.contracts c
                   JOIN finance.processes p ON p.id = c.process_id
                   JOIN finance.units u ON u.code = p.buyer_code
                  WHERE u.district_code = ANY($1::text[]) AND p.fiscal_year = ANY($2::int[])
                  GROUP BY 1, 2, 3)
               SELECT l.*, (SELECT coalesce(jsonb_agg(jsonb_build_object('method', c.method,
                                 'contracts', c.contracts, 'value', c.value) ORDER BY c.method),
                                 '[]')
                              FROM contracted c WHERE c.district_code = l.district_code
                               AND c.fiscal_year = l.fiscal_year)::text AS by_method
                 FROM lines l""",
            codes,
            years,
        )
        found = {
            (r["district_code"], r["fiscal_year"]): {**r, "by_method": _json(r["by_method"])}
            for r in rows
        }
        return {key: found.get(key) or _no_spending(*key) for key in keys}

    # -- infrastructure

    async def search_projects(self, where: ProjectQuery, page: PageRequest) -> Page:
        rows = await self._db.fetch(
            f"""WITH f AS (
                  SELECT {_PROJECT_COLUMNS}
                    FROM finance.projects j JOIN finance.processes p ON p.id = j.process_id
                   WHERE (cardinality($1::int[]) = 0 OR p.fiscal_year = ANY($1::int[]))
                     AND (cardinality($2::text[]) = 0 OR j.district_code = ANY($2::text[]))
                     AND (cardinality($3::text[]) = 0 OR j.status = ANY($3::text[]))
                     AND (cardinality($6::text[]) = 0 OR j.id = ANY($6::text[])))
                SELECT {_total(page)} AS _total, g.* FROM (SELECT 1) AS one
                LEFT JOIN LATERAL (
                    SELECT * FROM f WHERE id > $4 ORDER BY id LIMIT $5) AS g ON true""",
            list(where.fiscal_years),
            list(where.district_codes),
            list(where.statuses),
            _text_position("project", page.after),
            page.first + 1,
            list(where.ids),
        )
        return page_from_rows(rows, page.first, "id")

    async def supplier_ids_by_tax_id(self, tax_id: str) -> list[int]:
        """Supplier records of one person or juristic person (for data-subject reports)."""
        rows = await self._db.fetch(
            "SELECT id FROM finance.suppliers WHERE tax_id = $1 ORDER BY id", tax_id
        )
        return [r["id"] for r in rows]


def _total(page: PageRequest) -> str:
    """The total column of a page query: the filter's matches counted, or (not asked for)
    a NULL that PostgreSQL answers without reading them."""
    return "(SELECT count(*) FROM f)" if page.count else "NULL::bigint"


def ocid(process_id: str) -> str:
    """The Open Contracting id of a process: the BMA's registered prefix and its e-GP number."""
    return OCID_PREFIX + process_id


def process_cursor(process_id: str) -> str:
    return encode_cursor("process", process_id)


def budget_line_cursor(line_id: int) -> str:
    return encode_cursor("budget-line", line_id)


def project_cursor(project_id: str) -> str:
    return encode_cursor("project", project_id)


def process_position(cursor: str | None) -> str:
    value = _text_position("process", cursor)
    if value and not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise InvalidCursor("the cursor is not a process cursor")
    return value


def _text_position(kind: str, cursor: str | None) -> str:
    """The key inside a text-keyed cursor; '' (before every key) without one."""
    if cursor is None:
        return ""
    value = decode_cursor(kind, cursor)
    if len(value) > 40:
        raise InvalidCursor(f"the cursor is not a {kind} cursor")
    return value


def _json(text: str | None) -> Any:
    """JSON from PostgreSQL with exact amounts (Decimal) and dates (``*_on``) as dates."""
    if text is None:
        return None
    return _dates(json.loads(text, parse_float=Decimal))


def _dates(value: Any) -> Any:
    if isinstance(value, list):
        return [_dates(v) for v in value]
    if isinstance(value, dict):
        return {
            k: date.fromisoformat(v) if isinstance(v, str) and _is_date_key(k) else _dates(v)
            for k, v in value.items()
        }
    return value


def _is_date_key(key: str) -> bool:
    return key.endswith("_on") or key in {"ends_before", "ends_after"}


def _decoded(row: Record) -> Record:
    return {k: _json(v) if k in _JSON_COLUMNS else v for k, v in row.items()}


def _no_spending(code: str, year: int) -> Record:
    return {
        "district_code": code,
        "fiscal_year": year,
        "approved": Decimal(0),
        "adjusted": Decimal(0),
        "disbursed": Decimal(0),
        "by_method": [],
    }
