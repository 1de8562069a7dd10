"""The data dictionary comes from the schema's bilingual descriptions and types."""

from __future__ import annotations

from gateway.publishing.dictionary import data_dictionary, field_of, split_description
from policies.catalog import load_catalog
from schema import graphql_schema

SCHEMA = graphql_schema()
CATALOG = load_catalog()


def _resource(resource_id: str):
    found = CATALOG.resource(resource_id)
    assert found is not None
    return found[1]


def test_every_column_of_every_resource_reaches_a_described_field():
    for _dataset, resource in CATALOG.resources():
        for entry in data_dictionary(resource, SCHEMA):
            assert entry.description_th and entry.description_en, (resource.id, entry)


def test_types_and_words_of_the_complaints_table():
    entries = {
        e.column: e for e in data_dictionary(_resource("traffy-complaints-complaints"), SCHEMA)
    }
    assert entries["ticket_id"].type == "text"
    assert entries["lat"].type == "numeric" and entries["lat"].unit == "degrees (WGS 84)"
    assert entries["reported_at"].type == "timestamp"
    assert entries["star"].type == "int"
    assert entries["state"].type == "text"  # an enum
    assert (entries["district_code"].description_th, entries["district_code"].description_en) == (
        "รหัสเขต",
        "District code, 1001-1050.",
    )


def test_an_aggregate_lists_its_groups_and_its_count():
    entries = data_dictionary(_resource("traffy-complaints-daily-counts"), SCHEMA)
    assert [(e.column, e.type) for e in entries] == [
        ("date", "date"),
        ("district_code", "text"),
        ("type", "text"),
        ("state", "text"),
        ("complaints", "int"),
    ]
    assert entries[0].description_en == "Day reported (Bangkok time)."


def test_an_alias_names_its_field_and_an_unknown_path_none():
    resource = _resource("traffy-complaints-complaints")
    aliased = resource.__class__(
        **{**resource.__dict__, "query": "{ complaints { edges { node { id: ticketId } } } }"}
    )
    found = field_of(aliased, "id", SCHEMA)
    assert found is not None and found.description == "เลขที่เรื่อง / Ticket id."
    assert field_of(resource, "nowhere", SCHEMA) is None


def test_a_description_without_two_halves_is_used_for_both():
    assert split_description("ไทย / English.") == ("ไทย", "English.")
    assert split_description("Only one") == ("Only one", "Only one")
    assert split_description(None) == ("", "")
