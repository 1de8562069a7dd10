"""Budget and revenue as Fiscal Data Packages: ``/fiscal/<package>/datapackage.json`` and
``/fiscal/<package>/<package>.csv``.

A package is a Tabular Data Package (the profile the Fiscal Data Package schema requires)
carrying the fiscal ``model``: its measures (amounts in THB with their direction and budget
phase) and dimensions (administrative, functional and economic classifications, geography,
fiscal period). Its one table is a catalogue resource's table — the same rows the catalogue
downloads stream, read from the graph as the anonymous principal — with the fiscal period's
start and end added (the graph gives the year; the package also says when it runs), written
as plain UTF-8 CSV beside the descriptor so the package is one folder wherever it is copied.
The table schema's types and words come from the resource's data dictionary.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway import errors
from gateway.publishing.publication import Publication
from gateway.publishing.tables import Row
from policies.catalog import Dataset, Resource

# CKAN DataStore types (the data dictionary's) as Table Schema types.
FIELD_TYPES = {
    "text": "string",
    "int": "integer",
    "numeric": "number",
    "bool": "boolean",
    "timestamp": "datetime",
    "date": "date",
}
BUDDHIST_ERA = 543
CURRENCY = "THB"


@dataclass(frozen=True)
class Dimension:
    attributes: Mapping[str, str]  # attribute -> column
    primary_key: tuple[str, ...]  # attributes
    dimension_type: str  # datetime, entity, classification, activity, fact, location, other
    classification_type: str | None = None  # functional, administrative, economic
    labels: Mapping[str, str] = field(default_factory=dict)  # label attribute -> attribute

    def model(self) -> dict[str, Any]:
        attributes: dict[str, dict[str, str]] = {}
        for name, column in self.attributes.items():
            attributes[name] = {"source": column}
            if name in self.labels:
                attributes[name]["labelfor"] = self.labels[name]
        found: dict[str, Any] = {
            "attributes": attributes,
            "primaryKey": list(self.primary_key),
            "dimensionType": self.dimension_type,
        }
        if self.classification_type is not None:
            found["classificationType"] = self.classification_type
        return found


@dataclass(frozen=True)
class Period:
    """The fiscal period a row's year stands for: (start, end) from a column's year."""

    year_column: str
    bounds: Callable[[int], tuple[date, date]]
    # A further label of the year: the Buddhist-era year of a Gregorian tax year.
    label_column: str | None = None
    label: Callable[[int], int] | None = None


@dataclass(frozen=True)
class FiscalPackage:
    name: str  # the package, its table and its CSV file
    resource_id: str  # the catalogue resource whose table it is
    direction: str  # expenditure or revenue
    measures: Mapping[str, str]  # column -> budget phase
    dimensions: Mapping[str, Dimension]
    primary_key: tuple[str, ...]
    period: Period
    description: str


def fiscal_year_bounds(year_be: int) -> tuple[date, date]:
    """A BMA fiscal year runs 1 October to 30 September: 2568 is Oct 2024 – Sep 2025."""
    year = year_be - BUDDHIST_ERA
    return date(year - 1, 10, 1), date(year, 9, 30)


def tax_year_bounds(year: int) -> tuple[date, date]:
    """A tax year is the calendar year (Gregorian in BMA TAX)."""
    return date(year, 1, 1), date(year, 12, 31)


PERIOD_DIMENSION = {"start": "period_start", "end": "period_end"}

PACKAGES = {
    package.name: package
    for package in (
        FiscalPackage(
            name="budget",
            resource_id="budget-budget-lines",
            direction="expenditure",
            measures={
                "proposed": "proposed",
                "approved": "approved",
                "adjusted": "adjusted",
                "disbursed": "executed",
            },
            dimensions={
                "budget_line": Dimension({"id": "budget_line_id"}, ("id",), "fact"),
                "unit": Dimension(
                    {"code": "unit_code", "name_th": "unit_th", "name_en": "unit_en"},
                    ("code",),
                    "classification",
                    "administrative",
                    labels={"name_th": "code", "name_en": "code"},
                ),
                "activity": Dimension(
                    {"plan": "plan", "project": "project"},
                    ("plan", "project"),
                    "classification",
                    "functional",
                ),
                "economic_class": Dimension(
                    {"code": "economic_class"}, ("code",), "classification", "economic"
                ),
                "district": Dimension({"code": "district_code"}, ("code",), "location"),
                "fiscal_period": Dimension(
                    {"year": "fiscal_year", **PERIOD_DIMENSION}, ("year",), "datetime"
                ),
            },
            primary_key=("budget_line_id",),
            period=Period("fiscal_year", fiscal_year_bounds),
            description=(
                "The BMA's expenditure budget by receiving unit (administrative), plan and "
                "output or project (functional), economic class (economic) and district, per "
                "fiscal year (Buddhist era, 1 October - 30 September): proposed, approved, "
                "adjusted (transfers in and out during the year) and disbursed (executed), in "
                "baht."
            ),
        ),
        FiscalPackage(
            name="revenue",
            resource_id="district-revenue-by-year",
            direction="revenue",
            # BMA TAX holds no revenue target: the estimate district offices publish is the
            # tax assessed for the year, the amount the year's collection is approved against.
            measures={"estimate": "approved", "collected": "executed"},
            dimensions={
                "district": Dimension(
                    {"code": "district_code", "name_th": "district_th", "name_en": "district_en"},
                    ("code",),
                    "location",
                    labels={"name_th": "code", "name_en": "code"},
                ),
                "tax_type": Dimension(
                    {"code": "tax_type"}, ("code",), "classification", "economic"
                ),
                "fiscal_period": Dimension(
                    {"year": "tax_year", "year_be": "tax_year_be", **PERIOD_DIMENSION},
                    ("year",),
                    "datetime",
                ),
            },
            primary_key=("district_code", "tax_year", "tax_type"),
            period=Period(
                "tax_year", tax_year_bounds, "tax_year_be", lambda year: year + BUDDHIST_ERA
            ),
            description=(
                "Land-and-building tax and signboard tax of each district (geographic) and tax "
                "(economic classification of revenue) per tax year (the calendar year, with its "
                "Buddhist-era label): the estimate (the tax assessed, phase approved) and the "
                "tax collected (executed), in baht."
            ),
        ),
    )
}

PERIOD_FIELDS = {
    "period_start": ("วันเริ่มต้นของปี", "First day of the fiscal period."),
    "period_end": ("วันสิ้นสุดของปี", "Last day of the fiscal period."),
}


def routes(publication: Publication) -> list[BaseRoute]:
    async def descriptor(request: Request) -> Response:
        package = _package(request.path_params["package"])
        if package is None:
            return errors.NotFound("no fiscal data package of that name").response()
        body = descriptor_of(publication, package, publication.base_url(request))
        return Response(orjson.dumps(body), media_type="application/json")

    async def table(request: Request) -> Response:
        package = _package(request.path_params["package"])
        if package is None or request.path_params["file"] != package.name:
            return errors.NotFound("no fiscal data package table of that name").response()
        rows = csv_lines(publication, package, request.headers.get("x-request-id", "fiscal"))
        try:
            first = await anext(rows)  # a source down fails the request, not the stream
        except errors.DatasetUnavailable as exc:
            return exc.response()
        return StreamingResponse(_then(first, rows), media_type="text/csv; charset=utf-8")

    return [
        Route("/fiscal/{package}/datapackage.json", descriptor, methods=["GET"]),
        Route("/fiscal/{package}/{file}.csv", table, methods=["GET"]),
    ]


def _package(name: str) -> FiscalPackage | None:
    return PACKAGES.get(name)


async def _then(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for line in rest:
        yield line


def source_of(publication: Publication, package: FiscalPackage) -> tuple[Dataset, Resource]:
    found = publication.catalog.resource(package.resource_id)
    if found is None:  # the catalogue ships with these resources; a test holds it to that
        raise LookupError(f"the catalogue has no resource {package.resource_id}")
    return found


def columns_of(publication: Publication, package: FiscalPackage) -> list[str]:
    _dataset, resource = source_of(publication, package)
    label = [package.period.label_column] if package.period.label_column else []
    return [*resource.output_columns, *label, *PERIOD_FIELDS]


def descriptor_of(publication: Publication, package: FiscalPackage, base: str) -> dict[str, Any]:
    """The ``datapackage.json``: a Tabular Data Package with the fiscal model."""
    dataset, resource = source_of(publication, package)
    first, _ = package.period.bounds(_year(dataset.first_year_of_data, package))
    _, last = package.period.bounds(_year(dataset.last_year_of_data, package))
    return {
        "profile": "tabular-data-package",
        "name": f"bma-{package.name}",
        "title": f"{dataset.title_en} / {dataset.title_th}",
        "description": package.description,
        "homepage": f"{base}/catalog/{dataset.id}",
        "keywords": list(dataset.tags),
        "countryCode": "TH",
        "granularity": "aggregated",
        "fiscalPeriod": {"start": first.isoformat(), "end": last.isoformat()},
        "resources": [
            {
                "profile": "tabular-data-resource",
                "name": package.name,
                "path": f"{package.name}.csv",
                "format": "csv",
                "mediatype": "text/csv",
                "encoding": "utf-8",
                "schema": {
                    "fields": _fields(publication, package, resource),
                    "primaryKey": list(package.primary_key),
                },
            }
        ],
        "model": {
            "measures": {
                column: {
                    "source": column,
                    "resource": package.name,
                    "currency": CURRENCY,
                    "direction": package.direction,
                    "phase": phase,
                }
                for column, phase in package.measures.items()
            },
            "dimensions": {name: d.model() for name, d in package.dimensions.items()},
        },
    }


def _year(buddhist: str, package: FiscalPackage) -> int:
    """The catalogue's Buddhist-era year in the package's year column's era."""
    return int(buddhist) if package.period.label is None else int(buddhist) - BUDDHIST_ERA


def _fields(
    publication: Publication, package: FiscalPackage, resource: Resource
) -> list[dict[str, Any]]:
    fields = []
    for entry in publication.dictionary(resource):
        described: dict[str, Any] = {
            "name": entry.column,
            "type": FIELD_TYPES[entry.type],
            "title": entry.description_en,
            "description": f"{entry.description_th} / {entry.description_en}",
        }
        if entry.column in package.primary_key:
            described["constraints"] = {"required": True}
        fields.append(described)
    if package.period.label_column is not None:
        fields.append(
            {
                "name": package.period.label_column,
                "type": "integer",
                "title": "Tax year, Buddhist era.",
                "description": "ปีภาษี (พ.ศ.) / Tax year, Buddhist era.",
            }
        )
    for name, (th, en) in PERIOD_FIELDS.items():
        fields.append({"name": name, "type": "date", "title": en, "description": f"{th} / {en}"})
    return fields


async def csv_lines(
    publication: Publication, package: FiscalPackage, request_id: str
) -> AsyncIterator[bytes]:
    """The header, then a line per row of the catalogue resource's table."""
    _dataset, resource = source_of(publication, package)
    columns = columns_of(publication, package)
    yield _line(columns)
    async for row in publication.tables.rows(resource, request_id):
        yield _line([_cell(v) for v in _with_period(row, package).values()])


def _with_period(row: Row, package: FiscalPackage) -> Row:
    year = int(row[package.period.year_column])
    start, end = package.period.bounds(year)
    if package.period.label_column is not None and package.period.label is not None:
        row = {**row, package.period.label_column: package.period.label(year)}
    return {**row, "period_start": start.isoformat(), "period_end": end.isoformat()}


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _line(values: list[Any]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue().encode()
