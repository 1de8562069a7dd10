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
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_leaf_type,
    is_list_type,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

from policies.model import Policy
from policies.plan import reachable_fields
from policies.principal import Level

DEFAULT_CATALOG = Path(__file__).with_name("catalog.toml")
FORMATS = frozenset({"csv", "json", "jsonl", "geojson"})
# thai-gdc's data_format choice for each format offered (GeoJSON and JSON Lines are JSON).
DATA_FORMAT = {"csv": "CSV", "json": "JSON", "jsonl": "JSON", "geojson": "JSON"}
# Column transforms: ``date`` is the Bangkok date of a time.
TRANSFORMS = frozenset({"date"})
# thai-gdc's data_classification values, by the policy's tier (ลับที่สุด has no tier here:
# the policy's highest level is secret).
CLASSIFICATION = {
    Level.PUBLIC: "เปิดเผย",
    Level.INTERNAL: "ชั้นเผยแพร่ภายในองค์กร",
    Level.CONFIDENTIAL: "ลับ",
    Level.SECRET: "ลับมาก",
}
DEFAULT_LICENSE = "Open Data Common"
# The metadata every dataset must give (thai-gdc's required fields, less the computed ones
# and license_id, which defaults to DEFAULT_LICENSE).
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
    "accessible_condition",
    "first_year_of_data",
    "last_year_of_data",
    "created_date",
    "last_updated_date",
)
# The values thai-gdc's dataset schema offers for its choice fields; GD-Catalog files a
# dataset under these words, so a value outside them is a typo, not a new category.
CHOICES: Mapping[str, frozenset[str]] = {
    "data_type": frozenset(
        {
            "ข้อมูลระเบียน",
            "ข้อมูลสถิติ",
            "ข้อมูลภูมิสารสนเทศเชิงพื้นที่",
            "ข้อมูลหลากหลายประเภท",
            "ข้อมูลประเภทอื่นๆ",
        }
    ),
    "objective": frozenset(
        {
            "ยุทธศาสตร์ชาติ",
            "แผนพัฒนาเศรษฐกิจและสังคมแห่งชาติ",
            "แผนความมั่นคงแห่งชาติ",
            "แผนแม่บทภายใต้ยุทธศาสตร์ชาติ",
            "แผนปฏิรูปประเทศ",
            "แผนระดับที่ 3 (มติครม. 4 ธ.ค. 2560)",
            "นโยบายรัฐบาล/ข้อสั่งการนายกรัฐมนตรี",
            "มติคณะรัฐมนตรี",
            "เพื่อการให้บริการประชาชน",
            "กฎหมายที่เกี่ยวข้อง",
            "พันธกิจหน่วยงาน",
            "ดัชนี/ตัวชี้วัดระดับนานาชาติ",
            "ไม่ทราบ",
            "อื่นๆ",
        }
    ),
    "update_frequency_unit": frozenset(
        {
            "ไม่ทราบ",
            "ปี",
            "ครึ่งปี",
            "ไตรมาส",
            "เดือน",
            "สัปดาห์",
            "วัน",
            "วันทำการ",
            "ชั่วโมง",
            "นาที",
            "ตามเวลาจริง",
            "ไม่มีการปรับปรุงหลังจากการจัดเก็บข้อมูล",
            "อื่นๆ",
        }
    ),
    "geo_coverage": frozenset(
        {
            "ไม่มี",
            "โลก",
            "ทวีป/กลุ่มประเทศในทวีป",
            "กลุ่มประเทศทางเศรษฐกิจ",
            "ประเทศ",
            "ภาค",
            "จังหวัด",
            "อำเภอ",
            "ตำบล",
            "หมู่บ้าน",
            "เทศบาล/อบต.",
            "พิกัด",
            "ไม่ทราบ",
            "อื่นๆ",
        }
    ),
    "data_category": frozenset(
        {"ข้อมูลสาธารณะ", "ข้อมูลส่วนบุคคล", "ข้อมูลความมั่นคง", "ข้อมูลความลับทางราชการ"}
    ),
    "license_id": frozenset(
        {
            "License not specified",
            "Creative Commons Attributions",
            "Creative Commons Attribution Share-Alike",
            "Creative Commons Non-Commercial (Any)",
            "Open Data Common",
            "GNU Free Documentation License",
            "อื่นๆ",
        }
    ),
}


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

    ``path`` is dotted, by the answer's keys (``district.code``, ``location.lat``); a segment
    ending in ``[]`` (``licences[].kind``) is a list, and each of its items makes a row of its
    own (a row whose list is empty makes none). A resource explodes one list, and lists
    within it (``revenue[].months[].collected``: a row per month of each tax).
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

    @property
    def segments(self) -> tuple[str, ...]:
        """The path's keys, without the ``[]`` marks."""
        return tuple(s.removesuffix("[]") for s in self.path.split("."))

    @property
    def lists(self) -> tuple[str, ...]:
        """The paths of the lists this column explodes, outermost first (``revenue``,
        ``revenue.months``)."""
        parts = self.path.split(".")
        return tuple(
            ".".join(p.removesuffix("[]") for p in parts[: i + 1])
            for i, part in enumerate(parts)
            if part.endswith("[]")
        )


@dataclass(frozen=True)
class Aggregate:
    """The resource's rows are the operation's rows grouped by these columns: each group's
    count of rows, and the sum of each ``sum`` column."""

    group_by: tuple[str, ...]
    count: str = "count"  # the name of the count column
    sum: tuple[str, ...] = ()  # numeric columns summed within each group


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
    # The operation's variables. Several sets run the same operation once each, their rows
    # one after the other: revenue of every district for each of several years is one
    # operation over `districts` with `$year`, run for each year.
    variables: tuple[Mapping[str, Any], ...] = ({},)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def rows_segments(self) -> tuple[str, ...]:
        return tuple(self.rows.split("."))

    @property
    def output_columns(self) -> tuple[str, ...]:
        """The columns of the published table: an aggregate's groups, count and sums."""
        if self.aggregate is None:
            return tuple(c.name for c in self.columns)
        return (*self.aggregate.group_by, self.aggregate.count, *self.aggregate.sum)


@dataclass(frozen=True)
class Link:
    """A file the gateway serves for the dataset outside its tables: the dataset in a
    transparency standard (OCDS, OC4IDS, a Fiscal Data Package). ``path`` is the gateway's
    (``/ocds/releases.jsonl``); ``standard`` the URI of the specification it conforms to."""

    path: str
    format: str  # a label: "OCDS JSON", "JSON Lines", "Fiscal Data Package"
    media_type: str  # IANA: application/json, application/x-ndjson, …
    title_th: str
    title_en: str
    description_th: str = ""
    description_en: str = ""
    standard: str = ""


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
    objective: str  # เพื่อการให้บริการประชาชน, พันธกิจหน่วยงาน, …
    update_frequency_unit: str  # วัน, สัปดาห์, เดือน, ปี, ไม่ทราบ, …
    update_frequency_interval: int
    geo_coverage: str  # จังหวัด, …
    data_source: str
    data_category: str  # ข้อมูลสาธารณะ, …
    accessible_condition: str
    first_year_of_data: str  # Buddhist era, as GD-Catalog writes it: "2565"
    last_year_of_data: str
    created_date: date
    last_updated_date: date
    resources: tuple[Resource, ...]
    license_id: str = DEFAULT_LICENSE
    allow_harvest: bool = True
    extras: Mapping[str, str] = field(default_factory=dict)  # further thai-gdc fields
    links: tuple[Link, ...] = ()  # the dataset in the transparency standards

    @property
    def data_format(self) -> tuple[str, ...]:
        """thai-gdc ``data_format``: how its resources are offered (CSV, JSON)."""
        return tuple(sorted({DATA_FORMAT[f] for r in self.resources for f in r.formats}))

    def gdc_fields(self, data_classification: str) -> dict[str, Any]:
        """The dataset as thai-gdc's CKAN schema names its fields (title and notes in Thai;
        ``data_classification`` is the one the policy computes, see Catalog)."""
        return {
            "name": self.id,
            "title": self.title_th,
            "notes": self.notes_th,
            "owner_org": self.organisation,
            "maintainer": self.maintainer,
            "maintainer_email": self.maintainer_email,
            "tag_string": ",".join(self.tags),
            "data_type": self.data_type,
            "objective": self.objective,
            "update_frequency_unit": self.update_frequency_unit,
            "update_frequency_interval": self.update_frequency_interval,
            "geo_coverage": self.geo_coverage,
            "data_source": self.data_source,
            "data_format": list(self.data_format),
            "data_category": self.data_category,
            "data_classification": data_classification,
            "license_id": self.license_id,
            "accessible_condition": self.accessible_condition,
            "allow_harvest": str(self.allow_harvest),
            "first_year_of_data": self.first_year_of_data,
            "last_year_of_data": self.last_year_of_data,
            "created_date": self.created_date.isoformat(),
            "last_updated_date": self.last_updated_date.isoformat(),
            **self.extras,
        }


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
        only (public and not personal in the policy), and its rows and columns are there."""
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

    def data_classification(self, dataset: Dataset, policy: Policy, schema: GraphQLSchema) -> str:
        """thai-gdc ``data_classification``: the dataset's tier in GD-Catalog's words."""
        return CLASSIFICATION[self.classification(dataset, policy, schema)]


@dataclass(frozen=True)
class _Reached:
    """The schema field a path in the answer reaches."""

    type_name: str  # the object type holding the field
    field_name: str
    type: GraphQLOutputType  # the field's type, lists and non-null included


# ------------------------------------------------------------------ checking a resource


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
    fragments = _fragments(document.definitions)
    problems.extend(
        f"{where}: {p}" for p in _shape_problems(resource, schema, operation, fragments)
    )
    problems.extend(f"{where}: {p}" for p in _variable_problems(resource, schema, operation))
    return problems


def _shape_problems(
    resource: Resource,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> list[str]:
    """The rows are objects the query selects, and every column a value in them."""
    rows = _walk(schema, operation, fragments, resource.rows_segments)
    if isinstance(rows, str):
        return [f"rows `{resource.rows}`: {rows}"]
    if is_leaf_type(get_named_type(rows.type)):
        return [f"rows `{resource.rows}` are values, not objects with columns"]
    problems: list[str] = []
    for column in resource.columns:
        problems.extend(
            f"column {column.name}: {p}"
            for p in _column_problems(column, resource, schema, operation, fragments)
        )
    lists = {x for c in resource.columns for x in c.lists}
    # The lists must nest (revenue[], revenue[].months[]): each row is one item of the
    # innermost; two lists side by side would multiply rows that have nothing to do together.
    branches = sorted(x for x in lists if not any(y.startswith(x + ".") for y in lists))
    if len(branches) > 1:
        problems.append(
            f"columns explode {len(branches)} lists ({', '.join(f'{x}[]' for x in branches)}); "
            "a resource explodes one list, and lists within it"
        )
    if resource.paged:
        problems.extend(_paging_problems(resource, schema, operation, fragments))
    return problems


def _column_problems(
    column: Column,
    resource: Resource,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> list[str]:
    if column.transform is not None and column.transform not in TRANSFORMS:
        return [f"unknown transform {column.transform!r} (one of {', '.join(sorted(TRANSFORMS))})"]
    parts = column.path.split(".")
    for i, part in enumerate(parts):
        segments = (*resource.rows_segments, *(p.removesuffix("[]") for p in parts[: i + 1]))
        found = _walk(schema, operation, fragments, segments)
        if isinstance(found, str):
            return [f"path `{column.path}`: {found}"]
        is_list = is_list_type(get_nullable_type(found.type))
        if part.endswith("[]") and not is_list:
            return [f"path `{column.path}`: `{part}` marks a list, but {part[:-2]} is not one"]
        if is_list and not part.endswith("[]"):
            return [
                f"path `{column.path}`: {part} is a list; write `{part}[]` to make a row of "
                "each of its items"
            ]
        if i == len(parts) - 1 and not is_leaf_type(get_named_type(found.type)):
            return [f"path `{column.path}` ends on an object; name one of its fields"]
    return []


def _paging_problems(
    resource: Resource,
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
) -> list[str]:
    """A paged resource's operation takes $first and $after and selects the page's end."""
    declared = {v.variable.name.value for v in operation.variable_definitions or ()}
    problems = [
        f"paged, but the query does not take ${name}"
        for name in ("first", "after")
        if name not in declared
    ]
    if "edges" not in resource.rows_segments:
        return [*problems, f"paged, but rows `{resource.rows}` are not a connection's edges"]
    connection = resource.rows_segments[: resource.rows_segments.index("edges")]
    for name in ("hasNextPage", "endCursor"):
        if isinstance(_walk(schema, operation, fragments, (*connection, "pageInfo", name)), str):
            problems.append(
                f"paged, but the query does not select {'.'.join(connection)}.pageInfo.{name}"
            )
    return problems


def _variable_problems(
    resource: Resource, schema: GraphQLSchema, operation: OperationDefinitionNode
) -> list[str]:
    """Each set of variables is one the operation accepts (the pager gives first and after)."""
    definitions = operation.variable_definitions or ()
    declared = {v.variable.name.value for v in definitions}
    paging = {"first", "after"} if resource.paged else set()
    problems = []
    for i, values in enumerate(resource.variables, start=1):
        which = f"variables set {i}" if len(resource.variables) > 1 else "variables"
        for name in sorted(set(values) - declared):
            problems.append(f"{which}: the query takes no ${name}")
        for name in sorted(set(values) & paging):
            problems.append(f"{which}: ${name} is given page by page, not here")
        coerced = get_variable_values(schema, definitions, dict(values))
        if isinstance(coerced, list):
            problems.extend(f"{which}: {error.message}" for error in coerced)
    return problems


# ------------------------------------------------------------------ walking the selection


def column_field(resource: Resource, path: str, schema: GraphQLSchema) -> tuple[str, str] | None:
    """(object type, field) of the schema field a column's ``path`` reaches through the
    resource's operation (after its rows' path; aliases and fragments followed)."""
    document = parse(resource.query)
    operation = get_operation_ast(document)
    if operation is None:
        return None
    segments = (*resource.rows_segments, *(p.removesuffix("[]") for p in path.split(".")))
    found = _walk(schema, operation, _fragments(document.definitions), segments)
    return None if isinstance(found, str) else (found.type_name, found.field_name)


def _fragments(definitions: Any) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in definitions if isinstance(d, FragmentDefinitionNode)}


def _walk(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: Mapping[str, FragmentDefinitionNode],
    segments: tuple[str, ...],
) -> _Reached | str:
    """The field at ``segments`` (answer keys; lists are stepped through) of a valid
    operation, or why there is none."""
    parent: GraphQLObjectType | None = schema.query_type
    selection: SelectionSetNode | None = operation.selection_set
    found: _Reached | str = "empty path"
    for depth, key in enumerate(segments):
        node = _selected(selection, fragments, key) if selection is not None else None
        if parent is None or node is None:
            at = ".".join(segments[:depth]) or "the query"
            return f"{at} does not select `{key}`"
        definition = parent.fields[node.name.value]
        found = _Reached(parent.name, node.name.value, definition.type)
        named = get_named_type(definition.type)
        parent = named if isinstance(named, GraphQLObjectType) else None
        selection = node.selection_set
    return found


def _selected(
    selection: SelectionSetNode, fragments: Mapping[str, FragmentDefinitionNode], key: str
) -> FieldNode | None:
    """The field selected under answer key ``key``, looking into fragments."""
    for node in selection.selections:
        if isinstance(node, FieldNode) and (node.alias or node.name).value == key:
            return node
        inner: SelectionSetNode | None = None
        if isinstance(node, InlineFragmentNode):
            inner = node.selection_set
        elif isinstance(node, FragmentSpreadNode) and node.name.value in fragments:
            inner = fragments[node.name.value].selection_set
        found = _selected(inner, fragments, key) if inner is not None else None
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------ reading the file


def load_catalog(path: Path = DEFAULT_CATALOG) -> Catalog:
    """The catalogue file, every dataset's metadata checked; CatalogError lists what is
    missing or malformed."""
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError([f"cannot read {path}: {exc}"]) from exc
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
    if not raw.get("datasets"):
        problems.append("the catalogue has no datasets")
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
    for key, choices in CHOICES.items():
        if spec.get(key) not in (None, "") and spec[key] not in choices:
            problems.append(
                f"{where}: `{key}` is {spec[key]!r}, not one of thai-gdc's values: "
                + ", ".join(sorted(choices))
            )
    problems.extend(f"{where}: {p}" for p in _type_problems(spec))
    for key in sorted(set(spec.get("extras", {})) & _RESERVED):
        problems.append(f"{where}: extras may not set `{key}`: the catalogue gives it")
    resources = tuple(
        _resource(name, rname, rspec, problems)
        for rname, rspec in spec.get("resources", {}).items()
    )
    if not resources:
        problems.append(f"{where}: at least one resource is required")
    links = tuple(_link(where, i, lspec, problems) for i, lspec in enumerate(_links(spec), 1))
    paths = [link.path for link in links]
    for duplicate in sorted({p for p in paths if paths.count(p) > 1}):
        problems.append(f"{where}: link {duplicate} is listed twice")
    known = {"resources", "license_id", "allow_harvest", "extras", "links", *REQUIRED}
    for key in sorted(set(spec) - known - {"data_classification"}):
        problems.append(f"{where}: unknown key `{key}` (thai-gdc fields beyond these go in extras)")
    if missing:
        return None
    return Dataset(
        id=name,
        **{key: spec[key] for key in REQUIRED if key not in ("tags",)},
        tags=tuple(spec["tags"]),
        resources=resources,
        license_id=str(spec.get("license_id", DEFAULT_LICENSE)),
        allow_harvest=bool(spec.get("allow_harvest", True)),
        extras={str(k): str(v) for k, v in spec.get("extras", {}).items()},
        links=links,
    )


def _links(spec: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    links = spec.get("links", [])
    if not isinstance(links, list):
        return [{}]  # a lone table, not [[…links]]: reported as missing every key
    return [link if isinstance(link, Mapping) else {} for link in links]


def _link(where: str, position: int, spec: Mapping[str, Any], problems: list[str]) -> Link:
    where = f"{where}, link {spec.get('path') or position}"
    for key in ("path", "format", "media_type", "title_th", "title_en"):
        if not str(spec.get(key, "")).strip():
            problems.append(f"{where}: `{key}` is required")
    path = str(spec.get("path", ""))
    if path and not path.startswith("/"):
        problems.append(f"{where}: `path` is a path the gateway serves, starting with /")
    standard = str(spec.get("standard", ""))
    if standard and not standard.startswith(("https://", "http://")):
        problems.append(f"{where}: `standard` is the specification's URI, not {standard!r}")
    for unknown in sorted(set(spec) - {f.name for f in fields(Link)}):
        problems.append(f"{where}: unknown key `{unknown}`")
    return Link(**{f.name: str(spec.get(f.name, "")) for f in fields(Link)})


# thai-gdc fields the catalogue fills from its own keys (or computes): not extras.
_RESERVED = frozenset(
    {
        *REQUIRED,
        "name",
        "title",
        "notes",
        "owner_org",
        "tag_string",
        "data_format",
        "data_classification",
        "license_id",
        "allow_harvest",
    }
)


def _type_problems(spec: Mapping[str, Any]) -> list[str]:
    """Values of the wrong kind: TOML dates for dates, a number for the interval, …"""
    problems = []
    for key in ("created_date", "last_updated_date"):
        if key in spec and not isinstance(spec[key], date):
            problems.append(f"`{key}` is a date (2026-12-03, unquoted), not {spec[key]!r}")
    interval = spec.get("update_frequency_interval")
    if interval is not None and (not isinstance(interval, int) or interval < 1):
        problems.append(f"`update_frequency_interval` is a whole number from 1, not {interval!r}")
    for key in ("first_year_of_data", "last_year_of_data"):
        value = str(spec.get(key, ""))
        if value and not (value.isdigit() and len(value) == 4 and value.startswith("25")):
            problems.append(f'`{key}` is a Buddhist-era year such as "2568", not {value!r}')
    if "tags" in spec and not (
        isinstance(spec["tags"], list) and all(isinstance(t, str) for t in spec["tags"])
    ):
        problems.append("`tags` is a list of words")
    return problems


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
    for column in columns:
        if not column.name or not column.path:
            problems.append(f"{where}: every column has a `name` and a `path`")
    for duplicate in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"{where}: column {duplicate} is named twice")
    aggregate = _aggregate(where, spec, names, problems) if "aggregate" in spec else None
    geometry = tuple(spec["geometry"]) if "geometry" in spec else None
    if geometry is not None and (len(geometry) != 2 or not set(geometry) <= set(names)):
        problems.append(f"{where}: geometry names two columns: latitude and longitude")
    if "geojson" in formats and geometry is None:
        problems.append(f"{where}: geojson needs `geometry` (its latitude and longitude columns)")
    variables = spec.get("variables", [{}])
    if isinstance(variables, dict):
        variables = [variables]
    if not variables or not all(isinstance(v, dict) for v in variables):
        problems.append(f"{where}: `variables` is a table, or a list of tables (one run each)")
        variables = [{}]
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
        variables=tuple(variables),
    )


def _aggregate(
    where: str, spec: Mapping[str, Any], names: list[str], problems: list[str]
) -> Aggregate:
    group_by = tuple(spec["aggregate"].get("group_by", ()))
    sums = tuple(spec["aggregate"].get("sum", ()))
    count = str(spec["aggregate"].get("count", "count"))
    if not group_by:
        problems.append(f"{where}: aggregate needs `group_by` (the columns it groups by)")
    for unknown in sorted(set(group_by) - set(names)):
        problems.append(f"{where}: aggregate groups by {unknown!r}, which is no column")
    for unknown in sorted(set(sums) - set(names)):
        problems.append(f"{where}: aggregate sums {unknown!r}, which is no column")
    for both in sorted(set(sums) & set(group_by)):
        problems.append(f"{where}: aggregate both groups by and sums {both!r}")
    if count in names:
        problems.append(f"{where}: the aggregate's count column {count!r} is also a column")
    unused = sorted(set(names) - set(group_by) - set(sums))
    if unused:
        problems.append(
            f"{where}: aggregate neither groups by nor sums {', '.join(unused)}; drop them"
        )
    return Aggregate(group_by, count, sums)
