"""The open-data catalogue: which datasets the gateway publishes, described for GD-Catalog.

The catalogue file (``policies/catalog.toml``, beside the policy) lists organisations and
datasets. A dataset carries the Thai GD-Catalog (thai-gdc CKAN schema) metadata and its
resources; a resource is a table the gateway produces from the graph as the anonymous
principal: a GraphQL operation over public fields, where its rows are in the answer, its
columns (each a path in a row), and the formats offered. A resource may instead count the
rows of its operation grouped by some of its columns (an aggregate).

Loading checks that every dataset has the metadata GD-Catalog requires; ``Catalog.check``
checks every resource against the policy and the schema: every field its operation reaches
must be open data. The gateway refuses to start otherwise, naming the dataset and the field.
``data_classification`` is never written in the file: it is computed from the policy.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    get_operation_ast,
    parse,
    validate,
)

from policies.model import Policy
from policies.plan import reachable_fields
from policies.principal import Level

DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")
FORMATS = frozenset({"csv", "json", "jsonl", "geojson"})
# thai-gdc's data_classification values, by the policy's tier (ลับที่สุด has no tier here:
# the policy's highest level is secret).
CLASSIFICATION = {
    Level.PUBLIC: "เปิดเผย",
    Level.INTERNAL: "ชั้นเผยแพร่ภายในองค์กร",
    Level.CONFIDENTIAL: "ลับ",
    Level.SECRET: "ลับมาก",
}
# The metadata every dataset must give (thai-gdc's required fields, less the computed ones).
REQUIRED = (
    "title_th",
    "title_en",
    "notes_th",
    "notes_en",
    "organisation",
    "maintainer",
    "maintainer_email",
    "tags",
    "data_type",
    "objective",
    "update_frequency_unit",
    "update_frequency_interval",
    "geo_coverage",
    "data_source",
    "data_category",
    "license_id",
    "accessible_condition",
    "first_year_of_data",
    "last_year_of_data",
    "created_date",
    "last_updated_date",
)


class CatalogError(ValueError):
    """The catalogue is malformed, lacks metadata, or publishes what is not open data; lists
    every problem, each naming its dataset (and resource and field)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("catalogue problems:\n  " + "\n  ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Organisation:
    id: str  # CKAN's organisation name: lowercase, digits, - and _
    title_th: str
    title_en: str
    description: str = ""
    email: str = ""


@dataclass(frozen=True)
class Column:
    """One column: its name in every format, and where its value is in a row of the answer.

    ``path`` is dotted (``district.code``, ``location.lat``); a segment ending in ``[]``
    (``licences[].kind``) is a list, and each of its items makes a row of its own.
    ``transform`` turns the value into the column's: ``date`` (the Bangkok date of a time).
    """

    name: str
    path: str
    transform: str | None = None
    # The data dictionary's words when the schema's description of the field is not what a
    # reader of this column needs (e.g. an aggregate's count).
    description_th: str = ""
    description_en: str = ""
    unit: str = ""


@dataclass(frozen=True)
class Aggregate:
    """The resource's rows are counts of the operation's rows, grouped by these columns."""

    group_by: tuple[str, ...]
    count: str = "count"  # the name of the count column


@dataclass(frozen=True)
class Resource:
    id: str  # unique in the catalogue (CKAN resource id): "<dataset>-<name>"
    name: str  # the file name in downloads: /download/<dataset>/<name>.<format>
    title_th: str
    title_en: str
    description_th: str
    description_en: str
    query: str  # one GraphQL operation, run as the anonymous principal
    rows: str  # dotted path to the rows in the answer: "complaints.edges.node"
    columns: tuple[Column, ...]
    formats: tuple[str, ...]
    # Paged: the operation takes $first and $after and selects pageInfo { hasNextPage
    # endCursor } beside the edges, and is asked page after page until the end.
    paged: bool = False
    aggregate: Aggregate | None = None
    # Columns holding a point's latitude and longitude, for GeoJSON.
    geometry: tuple[str, str] | None = None

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class Dataset:
    id: str  # CKAN's package name
    title_th: str
    title_en: str
    notes_th: str
    notes_en: str
    organisation: str  # an Organisation's id
    maintainer: str
    maintainer_email: str
    tags: tuple[str, ...]
    # thai-gdc metadata (CKAN extras), as the file gives them
    data_type: str  # ข้อมูลระเบียน, ข้อมูลสถิติ, ข้อมูลภูมิสารสนเทศเชิงพื้นที่, …
    objective: str
    update_frequency_unit: str  # วัน, สัปดาห์, เดือน, ปี, ไม่ทราบ, …
    update_frequency_interval: int
    geo_coverage: str  # จังหวัด, …
    data_source: str
    data_category: str  # ข้อมูลสาธารณะ, …
    license_id: str
    accessible_condition: str
    first_year_of_data: str  # Buddhist era, as GD-Catalog writes it: "2565"
    last_year_of_data: str
    created_date: date
    last_updated_date: date
    resources: tuple[Resource, ...]
    allow_harvest: bool = True
    extras: Mapping[str, str] = field(default_factory=dict)  # further thai-gdc fields

    @property
    def data_format(self) -> tuple[str, ...]:
        """Every format any of its resources is offered in (thai-gdc ``data_format``)."""
        return tuple(sorted({f for r in self.resources for f in r.formats}))


@dataclass(frozen=True)
class Catalog:
    organisations: Mapping[str, Organisation]
    datasets: Mapping[str, Dataset]

    def resources(self) -> Iterator[tuple[Dataset, Resource]]:
        for dataset in self.datasets.values():
            for resource in dataset.resources:
                yield dataset, resource

    def resource(self, resource_id: str) -> tuple[Dataset, Resource] | None:
        return next(((d, r) for d, r in self.resources() if r.id == resource_id), None)

    def check(self, policy: Policy, schema: GraphQLSchema) -> None:
        """Raise CatalogError unless every resource is a valid operation reaching open data
        only (public and not personal in the policy)."""
        problems: list[str] = []
        for dataset, resource in self.resources():
            problems.extend(_resource_problems(dataset, resource, policy, schema))
        if problems:
            raise CatalogError(problems)

    def classification(self, dataset: Dataset, policy: Policy, schema: GraphQLSchema) -> Level:
        """The dataset's tier: the most restricted field any of its resources reads."""
        levels = [Level.PUBLIC]
        for resource in dataset.resources:
            document = parse(resource.query)
            operation = get_operation_ast(document)
            assert operation is not None  # check() refuses a catalogue where this fails
            for coordinate in reachable_fields(schema, document, operation):
                rule = policy.rule(*coordinate)
                levels.append(rule.level if rule is not None else Level.SECRET)
        return max(levels)


def _resource_problems(
    dataset: Dataset, resource: Resource, policy: Policy, schema: GraphQLSchema
) -> list[str]:
    where = f"dataset {dataset.id}, resource {resource.name}"
    try:
        document = parse(resource.query)
    except GraphQLError as exc:
        return [f"{where}: the query does not parse: {exc.message}"]
    invalid = validate(schema, document)
    if invalid:
        return [f"{where}: the query is not valid: {e.message}" for e in invalid]
    operation = get_operation_ast(document)
    if not isinstance(operation, OperationDefinitionNode):
        return [f"{where}: the query must hold exactly one operation"]
    problems = []
    for type_name, field_name in reachable_fields(schema, document, operation):
        rule = policy.rule(type_name, field_name)
        if rule is None or not rule.open:
            level = rule.level.label if rule is not None else "unclassified"
            problems.append(
                f"{where}: reads {type_name}.{field_name}, which is {level}"
                f"{' and personal' if rule is not None and rule.personal else ''}, "
                "not open data"
            )
    return problems


def load_catalog(path: Path = DEFAULT_CATALOG) -> Catalog:
    """The catalogue file, every dataset's metadata checked; CatalogError lists what is
    missing or malformed."""
    with path.open("rb") as f:
        raw = tomllib.load(f)
    problems: list[str] = []
    organisations = {
        name: _organisation(name, spec, problems)
        for name, spec in raw.get("organisations", {}).items()
    }
    datasets = {}
    for name, spec in raw.get("datasets", {}).items():
        dataset = _dataset(name, spec, organisations, problems)
        if dataset is not None:
            datasets[name] = dataset
    ids = [r.id for d in datasets.values() for r in d.resources]
    for duplicate in sorted({i for i in ids if ids.count(i) > 1}):
        problems.append(f"resource id {duplicate} is used twice")
    if problems:
        raise CatalogError(problems)
    return Catalog(organisations, datasets)


def _organisation(name: str, spec: Mapping[str, Any], problems: list[str]) -> Organisation:
    for key in ("title_th", "title_en"):
        if not str(spec.get(key, "")).strip():
            problems.append(f"organisation {name}: `{key}` is required")
    return Organisation(
        name,
        str(spec.get("title_th", "")),
        str(spec.get("title_en", "")),
        str(spec.get("description", "")),
        str(spec.get("email", "")),
    )


def _dataset(
    name: str,
    spec: Mapping[str, Any],
    organisations: Mapping[str, Organisation],
    problems: list[str],
) -> Dataset | None:
    where = f"dataset {name}"
    missing = [key for key in REQUIRED if spec.get(key) in (None, "", [])]
    problems.extend(f"{where}: `{key}` is required" for key in missing)
    if spec.get("organisation") and spec["organisation"] not in organisations:
        problems.append(f"{where}: organisation {spec['organisation']!r} is not defined")
    if "data_classification" in spec:
        problems.append(
            f"{where}: `data_classification` is computed from the policy, not written here"
        )
    resources = tuple(
        _resource(name, rname, rspec, problems)
        for rname, rspec in spec.get("resources", {}).items()
    )
    if not resources:
        problems.append(f"{where}: at least one resource is required")
    if missing:
        return None
    known = {"resources", "allow_harvest", "extras", *REQUIRED}
    for key in sorted(set(spec) - known):
        problems.append(f"{where}: unknown key `{key}` (thai-gdc fields beyond these go in extras)")
    try:
        return Dataset(
            id=name,
            **{key: spec[key] for key in REQUIRED if key not in ("tags",)},
            tags=tuple(spec["tags"]),
            resources=resources,
            allow_harvest=bool(spec.get("allow_harvest", True)),
            extras={str(k): str(v) for k, v in spec.get("extras", {}).items()},
        )
    except TypeError as exc:
        problems.append(f"{where}: {exc}")
        return None


def _resource(dataset: str, name: str, spec: Mapping[str, Any], problems: list[str]) -> Resource:
    where = f"dataset {dataset}, resource {name}"
    for key in ("title_th", "title_en", "query", "rows", "columns", "formats"):
        if not spec.get(key):
            problems.append(f"{where}: `{key}` is required")
    formats = tuple(spec.get("formats", ()))
    for unknown in sorted(set(formats) - FORMATS):
        problems.append(
            f"{where}: unknown format {unknown!r} (one of {', '.join(sorted(FORMATS))})"
        )
    columns = tuple(
        Column(
            name=str(c.get("name", "")),
            path=str(c.get("path", "")),
            transform=c.get("transform"),
            description_th=str(c.get("description_th", "")),
            description_en=str(c.get("description_en", "")),
            unit=str(c.get("unit", "")),
        )
        for c in spec.get("columns", ())
    )
    names = [c.name for c in columns]
    aggregate = None
    if "aggregate" in spec:
        group_by = tuple(spec["aggregate"].get("group_by", ()))
        for unknown in sorted(set(group_by) - set(names)):
            problems.append(f"{where}: aggregate groups by {unknown!r}, which is no column")
        aggregate = Aggregate(group_by, str(spec["aggregate"].get("count", "count")))
    geometry = tuple(spec["geometry"]) if "geometry" in spec else None
    if geometry is not None and (len(geometry) != 2 or not set(geometry) <= set(names)):
        problems.append(f"{where}: geometry names two columns: latitude and longitude")
    if "geojson" in formats and geometry is None:
        problems.append(f"{where}: geojson needs `geometry` (its latitude and longitude columns)")
    return Resource(
        id=f"{dataset}-{name}",
        name=name,
        title_th=str(spec.get("title_th", "")),
        title_en=str(spec.get("title_en", "")),
        description_th=str(spec.get("description_th", "")),
        description_en=str(spec.get("description_en", "")),
        query=str(spec.get("query", "")),
        rows=str(spec.get("rows", "")),
        columns=columns,
        formats=formats,
        paged=bool(spec.get("paged", False)),
        aggregate=aggregate,
        geometry=(geometry[0], geometry[1])
        if geometry is not None and len(geometry) == 2
        else None,
    )
