"""policies/catalog.py: the catalogue file, its thai-gdc metadata, and its check against the
policy and the schema — every problem it reports, and the classification it computes."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from policies.catalog import (
    CHOICES,
    CLASSIFICATION,
    DEFAULT_CATALOG,
    REQUIRED,
    CatalogError,
    load_catalog,
)
from policies.model import DEFAULT_POLICY, PolicyError, load_policy
from policies.principal import Level
from schema import graphql_schema

SCHEMA = graphql_schema()
POLICY = load_policy()

ORGANISATION = """
[organisations.unit]
title_th = "หน่วยงาน"
title_en = "A unit"
"""
DATASET = """
[datasets.d]
title_th = "ชุดข้อมูล"
title_en = "A dataset"
notes_th = "คำอธิบาย"
notes_en = "What it holds."
organisation = "unit"
maintainer = "ผู้ดูแล"
maintainer_email = "data@bangkok.go.th"
tags = ["เขต"]
data_type = "ข้อมูลสถิติ"
objective = "พันธกิจหน่วยงาน"
update_frequency_unit = "ปี"
update_frequency_interval = 1
geo_coverage = "จังหวัด"
data_source = "ทะเบียน"
data_category = "ข้อมูลสาธารณะ"
accessible_condition = "ไม่มีเงื่อนไข"
first_year_of_data = "2566"
last_year_of_data = "2568"
created_date = 2026-12-03
last_updated_date = 2026-12-03
"""
RESOURCE = '''
[datasets.d.resources.r]
title_th = "ตาราง"
title_en = "A table"
formats = ["csv"]
rows = "districts"
query = """{ districts { code nameEn } }"""
columns = [{ name = "code", path = "code" }, { name = "name", path = "nameEn" }]
'''


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text, encoding="utf-8")
    return path


def _catalog_text(
    *, dataset: str = DATASET, resource: str = RESOURCE, replace: tuple[str, str] = ("", "")
) -> str:
    text = ORGANISATION + dataset + resource
    old, new = replace
    if old:
        assert old in text, old
        text = text.replace(old, new, 1)
    return text


def load_problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        load_catalog(_write(tmp_path, text))
    return caught.value.problems


def check_problems(tmp_path: Path, text: str, policy=POLICY) -> list[str]:
    catalog = load_catalog(_write(tmp_path, text))
    with pytest.raises(CatalogError) as caught:
        catalog.check(policy, SCHEMA)
    return caught.value.problems


def with_resource(query: str, rows: str, columns: str, extra: str = "", name: str = "r") -> str:
    return _catalog_text(
        resource=f'''
[datasets.d.resources.{name}]
title_th = "ตาราง"
title_en = "A table"
formats = ["csv"]
rows = "{rows}"
query = """{query}"""
columns = [{columns}]
{extra}
'''
    )


# ------------------------------------------------------------------ the shipped catalogue


def test_the_shipped_catalogue_is_valid_and_every_dataset_is_open_data():
    catalog = load_catalog()
    catalog.check(POLICY, SCHEMA)
    assert {
        "traffy-complaints",
        "district-profiles",
        "tax-revenue",
        "commercial-registrations",
        "district-licences",
    } <= set(catalog.datasets)
    for dataset in catalog.datasets.values():
        assert catalog.classification(dataset, POLICY, SCHEMA) is Level.PUBLIC
        assert catalog.data_classification(dataset, POLICY, SCHEMA) == "เปิดเผย"
        assert dataset.gdc_fields("เปิดเผย")["data_classification"] == "เปิดเผย"
        assert dataset.organisation in catalog.organisations


def test_the_shipped_catalogue_names_its_publishers():
    catalog = load_catalog()
    owners = {d.id: d.organisation for d in catalog.datasets.values()}
    assert owners["tax-revenue"] == "bma-finance"
    assert owners["traffy-complaints"] == "traffy-fondue"
    assert owners["commercial-registrations"] == "bma-district-offices"
    assert owners["district-licences"] == "bma-district-offices"


def test_revenue_for_several_years_is_one_operation_run_with_each_year():
    _, resource = load_catalog().resource("tax-revenue-land-and-building") or (None, None)
    assert resource is not None
    assert [dict(v) for v in resource.variables] == [{"year": 2023}, {"year": 2024}, {"year": 2025}]
    assert resource.query.count("query ") == 1


# ------------------------------------------------------------------ the classification


def _policy_with(tmp_path: Path, old: str, new: str):
    text = DEFAULT_POLICY.read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "policy.toml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return load_policy(path)


def test_the_classification_is_computed_from_the_policy_not_written(tmp_path):
    """Making one field a resource reads internal raises the dataset's tier — and the check
    refuses it, naming dataset, resource and field."""
    policy = _policy_with(tmp_path, 'star = "public"', 'star = "internal"')
    catalog = load_catalog()
    dataset = catalog.datasets["traffy-complaints"]
    assert catalog.classification(dataset, policy, SCHEMA) is Level.INTERNAL
    assert catalog.data_classification(dataset, policy, SCHEMA) == "ชั้นเผยแพร่ภายในองค์กร"
    with pytest.raises(CatalogError) as caught:
        catalog.check(policy, SCHEMA)
    assert caught.value.problems == [
        "dataset traffy-complaints, resource complaints: reads Complaint.star, which is "
        "internal, not open data"
    ]
    # The datasets that do not read it stay open.
    other = catalog.datasets["tax-revenue"]
    assert catalog.data_classification(other, policy, SCHEMA) == CLASSIFICATION[Level.PUBLIC]


def test_data_classification_may_not_be_written_in_the_file(tmp_path):
    text = _catalog_text(
        replace=(
            'data_category = "ข้อมูลสาธารณะ"\n',
            'data_category = "ข้อมูลสาธารณะ"\ndata_classification = "เปิดเผย"\n',
        )
    )
    assert load_problems(tmp_path, text) == [
        "dataset d: `data_classification` is computed from the policy, not written here"
    ]


# ------------------------------------------------------------------ what reading fields allows


def test_a_restricted_field_is_refused_naming_dataset_resource_and_field(tmp_path):
    text = with_resource(
        "query P($first: Int, $after: String) { parcels(first: $first, after: $after) { "
        "pageInfo { hasNextPage endCursor } edges { node { id appraisedValue } } } }",
        "parcels.edges.node",
        '{ name = "id", path = "id" }, { name = "value", path = "appraisedValue" }',
        "paged = true",
    )
    assert check_problems(tmp_path, text) == [
        "dataset d, resource r: reads Parcel.appraisedValue, which is confidential, not open data"
    ]


def test_a_personal_field_is_refused_and_said_to_be_personal(tmp_path):
    text = with_resource(
        '{ parcel(id: "1") { owner { name } } }',
        "parcel",
        '{ name = "owner", path = "owner.name" }',
    )
    assert check_problems(tmp_path, text) == [
        "dataset d, resource r: reads Owner.name, which is confidential and personal, "
        "not open data",
        "dataset d, resource r: reads Parcel.owner, which is internal, not open data",
    ]


def test_a_field_the_policy_does_not_classify_is_refused(tmp_path):
    policy = _policy_with(tmp_path, 'nameEn = "public", ', "")
    with pytest.raises(PolicyError):
        policy.check(SCHEMA)  # the gateway would stop here first; the catalogue still says
    assert check_problems(tmp_path, _catalog_text(), policy) == [
        "dataset d, resource r: reads District.nameEn, which is unclassified, not open data"
    ]


def test_a_field_reached_through_a_fragment_is_checked(tmp_path):
    text = with_resource(
        'query Q { parcel(id: \\"1\\") { ...P } } fragment P on Parcel { id titleDeedNumber }',
        "parcel",
        '{ name = "id", path = "id" }, { name = "no", path = "titleDeedNumber" }',
    )
    assert check_problems(tmp_path, text) == [
        "dataset d, resource r: reads Parcel.titleDeedNumber, which is internal, not open data"
    ]


# ------------------------------------------------------------------ the query


@pytest.mark.parametrize(
    ("query", "problem"),
    [
        (
            "{ districts { code ",
            "the query does not parse: Syntax Error: Expected Name, found <EOF>.",
        ),
        (
            "{ districts { code nope } }",
            "the query is not valid: Cannot query field 'nope' on type 'District'. "
            "Did you mean 'code'?",
        ),
        (
            "query A { districts { code } } query B { districts { code } }",
            "the query must hold exactly one operation",
        ),
    ],
)
def test_a_query_that_is_not_one_valid_operation_is_refused(tmp_path, query, problem):
    text = with_resource(query, "districts", '{ name = "code", path = "code" }')
    assert check_problems(tmp_path, text) == [f"dataset d, resource r: {problem}"]


# ------------------------------------------------------------------ rows and columns


@pytest.mark.parametrize(
    ("rows", "columns", "problem"),
    [
        (
            "district",
            '{ name = "c", path = "code" }',
            "rows `district`: the query does not select `district`",
        ),
        (
            "districts.code",
            '{ name = "c", path = "code" }',
            "rows `districts.code` are values, not objects with columns",
        ),
        (
            "districts",
            '{ name = "c", path = "population" }',
            "column c: path `population`: districts does not select `population`",
        ),
        (
            "districts",
            '{ name = "c", path = "code[]" }',
            "column c: path `code[]`: `code[]` marks a list, but code is not one",
        ),
        (
            "districts",
            '{ name = "c", path = "populationStats.year" }',
            "column c: path `populationStats.year`: populationStats is a list; write `populationStats[]` to make a row of each of its items",
        ),
        (
            "districts",
            '{ name = "c", path = "complaintStats" }',
            "column c: path `complaintStats` ends on an object; name one of its fields",
        ),
        (
            "districts",
            '{ name = "c", path = "code", transform = "upper" }',
            "column c: unknown transform 'upper' (one of date)",
        ),
    ],
)
def test_rows_and_columns_must_be_what_the_query_selects(tmp_path, rows, columns, problem):
    query = "{ districts { code complaintStats { total } populationStats { year } } }"
    text = with_resource(query, rows, columns)
    assert check_problems(tmp_path, text) == [f"dataset d, resource r: {problem}"]


def test_a_resource_explodes_at_most_one_list(tmp_path):
    text = with_resource(
        "{ districts { populationStats { year } complaintStats { byType { key } } } }",
        "districts",
        '{ name = "year", path = "populationStats[].year" }, '
        '{ name = "type", path = "complaintStats.byType[].key" }',
    )
    assert check_problems(tmp_path, text) == [
        "dataset d, resource r: columns explode 2 lists (complaintStats.byType[], "
        "populationStats[]); a resource explodes one list, and lists within it"
    ]


def test_paths_follow_aliases_and_fragments(tmp_path):
    text = with_resource(
        "query Q { all: districts { ... on District { id: code } ...N } } "
        "fragment N on District { nameEn }",
        "all",
        '{ name = "code", path = "id" }, { name = "name", path = "nameEn" }',
    )
    load_catalog(_write(tmp_path, text)).check(POLICY, SCHEMA)  # no problem


# ------------------------------------------------------------------ paging and variables


def test_a_paged_resource_takes_first_and_after_and_selects_its_page_end(tmp_path):
    text = with_resource(
        "{ businesses { edges { node { registrationNo } } } }",
        "businesses.edges.node",
        '{ name = "no", path = "registrationNo" }',
        "paged = true",
    )
    where = "dataset d, resource r"
    assert check_problems(tmp_path, text) == [
        f"{where}: paged, but the query does not take $first",
        f"{where}: paged, but the query does not take $after",
        f"{where}: paged, but the query does not select businesses.pageInfo.hasNextPage",
        f"{where}: paged, but the query does not select businesses.pageInfo.endCursor",
    ]


def test_a_paged_resource_reads_a_connections_edges(tmp_path):
    text = with_resource(
        "query Q($first: Int, $after: String) { "
        "businesses(first: $first, after: $after) { totalCount } }",
        "businesses",
        '{ name = "n", path = "totalCount" }',
        "paged = true",
    )
    assert check_problems(tmp_path, text) == [
        "dataset d, resource r: paged, but rows `businesses` are not a connection's edges"
    ]


REVENUE = "query R($year: Int!) { districts { code taxRevenue(year: $year) { year assessed } } }"
REVENUE_COLUMNS = (
    '{ name = "code", path = "code" }, { name = "year", path = "taxRevenue.year" }, '
    '{ name = "assessed", path = "taxRevenue.assessed" }'
)


def test_each_set_of_variables_is_one_run_of_the_operation(tmp_path):
    text = with_resource(
        REVENUE, "districts", REVENUE_COLUMNS, "variables = [{ year = 2024 }, { year = 2025 }]"
    )
    catalog = load_catalog(_write(tmp_path, text))
    catalog.check(POLICY, SCHEMA)
    [resource] = catalog.datasets["d"].resources
    assert [dict(v) for v in resource.variables] == [{"year": 2024}, {"year": 2025}]


def test_one_table_of_variables_is_one_run(tmp_path):
    text = with_resource(REVENUE, "districts", REVENUE_COLUMNS, "variables = { year = 2024 }")
    [resource] = load_catalog(_write(tmp_path, text)).datasets["d"].resources
    assert [dict(v) for v in resource.variables] == [{"year": 2024}]


@pytest.mark.parametrize(
    ("variables", "problems"),
    [
        (
            "",
            [
                "variables: Variable '$year' has invalid value: "
                "Expected a value of non-null type 'Int!' to be provided."
            ],
        ),
        (
            'variables = [{ year = 2024 }, { year = "last" }]',
            [
                "variables set 2: Variable '$year' has invalid value: "
                "Int cannot represent non-integer value: 'last'"
            ],
        ),
        (
            'variables = { year = 2024, district = "1039" }',
            ["variables: the query takes no $district"],
        ),
    ],
)
def test_variables_the_operation_does_not_accept_are_refused(tmp_path, variables, problems):
    text = with_resource(REVENUE, "districts", REVENUE_COLUMNS, variables)
    assert check_problems(tmp_path, text) == [f"dataset d, resource r: {p}" for p in problems]


def test_the_pager_gives_first_and_after_not_the_file(tmp_path):
    text = with_resource(
        "query Q($first: Int, $after: String) { businesses(first: $first, after: $after) { "
        "pageInfo { hasNextPage endCursor } edges { node { registrationNo } } } }",
        "businesses.edges.node",
        '{ name = "no", path = "registrationNo" }',
        "paged = true\nvariables = { first = 10 }",
    )
    assert check_problems(tmp_path, text) == [
        "dataset d, resource r: variables: $first is given page by page, not here"
    ]


def test_variables_are_tables(tmp_path):
    text = with_resource(REVENUE, "districts", REVENUE_COLUMNS, "variables = [2024, 2025]")
    assert load_problems(tmp_path, text) == [
        "dataset d, resource r: `variables` is a table, or a list of tables (one run each)"
    ]


# ------------------------------------------------------------------ the metadata


@pytest.mark.parametrize("key", REQUIRED)
def test_a_dataset_lacking_required_metadata_is_refused_naming_it(tmp_path, key):
    lines = [line for line in DATASET.splitlines() if not line.startswith(f"{key} =")]
    assert len(lines) == len(DATASET.splitlines()) - 1
    problems = load_problems(tmp_path, _catalog_text(dataset="\n".join(lines) + "\n"))
    assert problems == [f"dataset d: `{key}` is required"]


def test_empty_metadata_is_missing_metadata(tmp_path):
    text = _catalog_text(replace=('notes_en = "What it holds."', 'notes_en = ""'))
    assert load_problems(tmp_path, text) == ["dataset d: `notes_en` is required"]


@pytest.mark.parametrize("key", sorted(CHOICES))
def test_thai_gdc_choice_fields_take_thai_gdcs_values(tmp_path, key):
    if f"{key} =" in DATASET:
        line = next(x for x in DATASET.splitlines() if x.startswith(f"{key} ="))
        text = _catalog_text(replace=(line, f'{key} = "Other"'))
    else:
        text = _catalog_text(replace=("maintainer =", f'{key} = "Other"\nmaintainer ='))
    [problem] = load_problems(tmp_path, text)
    assert problem.startswith(f"dataset d: `{key}` is 'Other', not one of thai-gdc's values: ")
    assert ", ".join(sorted(CHOICES[key])) in problem


def test_the_licence_defaults_to_open_data_common(tmp_path):
    catalog = load_catalog(_write(tmp_path, _catalog_text()))
    dataset = catalog.datasets["d"]
    assert dataset.license_id == "Open Data Common"
    assert dataset.created_date == date(2026, 12, 3)
    fields = dataset.gdc_fields("เปิดเผย")
    assert fields["license_id"] == "Open Data Common"
    assert fields["data_format"] == ["CSV"]
    assert fields["tag_string"] == "เขต"
    assert fields["allow_harvest"] == "True"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            "created_date = 2026-12-03",
            'created_date = "yesterday"',
            "`created_date` is a date (2026-12-03, unquoted), not 'yesterday'",
        ),
        (
            "update_frequency_interval = 1",
            "update_frequency_interval = 0",
            "`update_frequency_interval` is a whole number from 1, not 0",
        ),
        (
            'first_year_of_data = "2566"',
            'first_year_of_data = "2023"',
            "`first_year_of_data` is a Buddhist-era year such as \"2568\", not '2023'",
        ),
        ('tags = ["เขต"]', 'tags = "เขต"', "`tags` is a list of words"),
        (
            'organisation = "unit"',
            'organisation = "nobody"',
            "organisation 'nobody' is not defined",
        ),
        (
            "maintainer =",
            'homepage = "x"\nmaintainer =',
            "unknown key `homepage` (thai-gdc fields beyond these go in extras)",
        ),
        (
            "maintainer =",
            'extras = { data_type = "x" }\nmaintainer =',
            "extras may not set `data_type`: the catalogue gives it",
        ),
    ],
)
def test_malformed_metadata_is_refused(tmp_path, old, new, problem):
    assert load_problems(tmp_path, _catalog_text(replace=(old, new))) == [f"dataset d: {problem}"]


def test_further_thai_gdc_fields_go_in_extras(tmp_path):
    text = _catalog_text(
        replace=("maintainer =", 'extras = { disaggregate = "เพศ" }\nmaintainer =')
    )
    dataset = load_catalog(_write(tmp_path, text)).datasets["d"]
    assert dataset.gdc_fields("เปิดเผย")["disaggregate"] == "เพศ"


def test_an_organisation_needs_its_thai_and_english_titles(tmp_path):
    text = _catalog_text(replace=('title_en = "A unit"\n', ""))
    assert load_problems(tmp_path, text) == ["organisation unit: `title_en` is required"]


def test_a_dataset_needs_a_resource(tmp_path):
    assert load_problems(tmp_path, _catalog_text(resource="")) == [
        "dataset d: at least one resource is required"
    ]


def test_a_catalogue_needs_a_dataset_and_a_readable_file(tmp_path):
    assert load_problems(tmp_path, ORGANISATION) == ["the catalogue has no datasets"]
    [problem] = load_problems(tmp_path, "version = ")
    assert problem.startswith(f"cannot read {tmp_path / 'catalog.toml'}: Invalid value")
    with pytest.raises(CatalogError, match="cannot read .*missing.toml"):
        load_catalog(tmp_path / "missing.toml")


def test_resource_ids_are_unique_across_datasets(tmp_path):
    second = DATASET.replace("[datasets.d]", "[datasets.d-r]")
    text = (
        ORGANISATION
        + DATASET
        + RESOURCE.replace("resources.r]", "resources.r-x]")
        + second
        + RESOURCE.replace("datasets.d.resources.r]", "datasets.d-r.resources.x]")
    )
    assert load_problems(tmp_path, text) == ["resource id d-r-x is used twice"]


# ------------------------------------------------------------------ a resource's own keys


@pytest.mark.parametrize("key", ["title_th", "title_en", "query", "rows", "columns", "formats"])
def test_a_resource_lacking_a_key_is_refused_naming_it(tmp_path, key):
    line = next(x for x in RESOURCE.splitlines() if x.startswith(f"{key} ="))
    problems = load_problems(tmp_path, _catalog_text(replace=(line, "")))
    assert f"dataset d, resource r: `{key}` is required" in problems


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'formats = ["csv"]',
            'formats = ["csv", "xlsx"]',
            "unknown format 'xlsx' (one of csv, geojson, json, jsonl)",
        ),
        (
            'formats = ["csv"]',
            'formats = ["geojson"]',
            "geojson needs `geometry` (its latitude and longitude columns)",
        ),
        (
            'formats = ["csv"]',
            'formats = ["csv"]\ngeometry = ["code"]',
            "geometry names two columns: latitude and longitude",
        ),
        (
            '{ name = "name", path = "nameEn" }',
            '{ name = "code", path = "nameEn" }',
            "column code is named twice",
        ),
        (
            '{ name = "name", path = "nameEn" }',
            '{ name = "name" }',
            "every column has a `name` and a `path`",
        ),
    ],
)
def test_malformed_resources_are_refused(tmp_path, old, new, problem):
    assert load_problems(tmp_path, _catalog_text(replace=(old, new))) == [
        f"dataset d, resource r: {problem}"
    ]


@pytest.mark.parametrize(
    ("aggregate", "problems"),
    [
        (
            '{ group_by = [] , sum = ["code", "name"] }',
            ["aggregate needs `group_by` (the columns it groups by)"],
        ),
        (
            '{ group_by = ["code", "district"], sum = ["name"] }',
            ["aggregate groups by 'district', which is no column"],
        ),
        (
            '{ group_by = ["code"], sum = ["name", "tax"] }',
            ["aggregate sums 'tax', which is no column"],
        ),
        (
            '{ group_by = ["code", "name"], sum = ["name"] }',
            ["aggregate both groups by and sums 'name'"],
        ),
        (
            '{ group_by = ["code", "name"], count = "name" }',
            ["the aggregate's count column 'name' is also a column"],
        ),
        ('{ group_by = ["code"] }', ["aggregate neither groups by nor sums name; drop them"]),
    ],
)
def test_malformed_aggregates_are_refused(tmp_path, aggregate, problems):
    text = _catalog_text(
        replace=('formats = ["csv"]', f'formats = ["csv"]\naggregate = {aggregate}')
    )
    assert load_problems(tmp_path, text) == [f"dataset d, resource r: {p}" for p in problems]


def test_an_aggregate_publishes_its_groups_count_and_sums(tmp_path):
    text = _catalog_text(
        replace=(
            'formats = ["csv"]',
            'formats = ["csv"]\naggregate = { group_by = ["code"], count = "n", sum = ["name"] }',
        )
    )
    [resource] = load_catalog(_write(tmp_path, text)).datasets["d"].resources
    assert resource.output_columns == ("code", "n", "name")


# ------------------------------------------------------------------ at start


def _settings(catalog: Path):
    from gateway.settings import Settings

    return Settings(
        tax_database_url="postgresql://unused",
        registry_database_url="postgresql://unused",
        finance_database_url="postgresql://unused",
        traffy_base_url="http://unused",
        catalog_file=str(catalog),
    )


def _shipped_with(tmp_path: Path, old: str, new: str) -> Path:
    text = DEFAULT_CATALOG.read_text(encoding="utf-8")
    assert old in text
    return _write(tmp_path, text.replace(old, new, 1))


def test_the_gateway_refuses_to_start_when_a_resource_reads_a_restricted_field(tmp_path):
    from gateway.http.app import create_app

    path = _shipped_with(
        tmp_path,
        "{ code nameTh nameEn population businessCount complaintStats { total } }",
        "{ code nameTh nameEn population businessCount complaintStats { total } "
        "parcels(first: 1) { edges { node { appraisedValue owner { name } } } } }",
    )
    with pytest.raises(CatalogError) as caught:
        create_app(_settings(path))
    where = "dataset district-profiles, resource profiles"
    assert caught.value.problems == [
        f"{where}: reads Owner.name, which is confidential and personal, not open data",
        f"{where}: reads Parcel.appraisedValue, which is confidential, not open data",
        f"{where}: reads Parcel.owner, which is internal, not open data",
    ]
    assert f"{where}: reads Parcel.appraisedValue" in str(caught.value)


def test_the_gateway_refuses_to_start_when_a_dataset_lacks_metadata(tmp_path):
    from gateway.http.app import create_app

    path = _shipped_with(tmp_path, 'maintainer_email = "opendata.finance@bangkok.go.th"\n', "")
    with pytest.raises(CatalogError) as caught:
        create_app(_settings(path))
    assert caught.value.problems == ["dataset tax-revenue: `maintainer_email` is required"]


# ------------------------------------------------------------------ links to the standards

LINK = """
[[datasets.d.links]]
path = "/ocds/releases"
format = "OCDS JSON"
media_type = "application/json"
title_th = "OCDS release package"
title_en = "OCDS release package"
standard = "https://standard.open-contracting.org/1.1/"
"""


def test_a_dataset_lists_its_files_in_the_standards():
    catalog = load_catalog()
    procurement = {link.path: link for link in catalog.datasets["procurement"].links}
    assert set(procurement) == {
        "/ocds/releases",
        "/ocds/records",
        "/ocds/releases.jsonl",
        "/ocds/records.jsonl",
    }
    assert procurement["/ocds/releases"].standard == "https://standard.open-contracting.org/1.1/"
    assert {link.path for link in catalog.datasets["public-works"].links} == {
        "/oc4ids/projects",
        "/oc4ids/projects.jsonl",
    }
    budget = [link.path for link in catalog.datasets["budget"].links]
    assert budget == ["/fiscal/budget/datapackage.json"]
    revenue = [link.path for link in catalog.datasets["district-revenue"].links]
    assert revenue == ["/fiscal/revenue/datapackage.json"]


def test_a_link_is_read_with_its_optional_keys(tmp_path):
    text = _catalog_text(resource=LINK + 'description_en = "Releases."\n' + RESOURCE)
    (link,) = load_catalog(_write(tmp_path, text)).datasets["d"].links
    assert (link.path, link.format, link.media_type) == (
        "/ocds/releases",
        "OCDS JSON",
        "application/json",
    )
    assert (link.description_th, link.description_en) == ("", "Releases.")
    assert link.standard == "https://standard.open-contracting.org/1.1/"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'path = "/ocds/releases"',
            'path = "ocds/releases"',
            "dataset d, link ocds/releases: `path` is a path the gateway serves, starting with /",
        ),
        (
            'path = "/ocds/releases"',
            'path = "https://example.org/ocds/releases"',
            "dataset d, link https://example.org/ocds/releases: `path` is a path the gateway "
            "serves, starting with /",
        ),
        ('format = "OCDS JSON"\n', "", "dataset d, link /ocds/releases: `format` is required"),
        (
            'standard = "https://standard.open-contracting.org/1.1/"',
            'standard = "OCDS 1.1"',
            "dataset d, link /ocds/releases: `standard` is the specification's URI, not 'OCDS 1.1'",
        ),
        (
            'media_type = "application/json"',
            'mediatype = "application/json"',
            "dataset d, link /ocds/releases: `media_type` is required",
        ),
    ],
)
def test_a_bad_link_is_refused_naming_it(tmp_path, old, new, problem):
    text = _catalog_text(resource=LINK.replace(old, new) + RESOURCE)
    assert problem in load_problems(tmp_path, text)


def test_a_link_listed_twice_or_not_a_list_is_refused(tmp_path):
    twice = _catalog_text(resource=LINK + LINK + RESOURCE)
    assert load_problems(tmp_path, twice) == ["dataset d: link /ocds/releases is listed twice"]
    table = _catalog_text(
        resource=LINK.replace("[[datasets.d.links]]", "[datasets.d.links]") + RESOURCE
    )
    assert "dataset d, link 1: `path` is required" in load_problems(tmp_path, table)
