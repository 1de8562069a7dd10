"""A resource's data dictionary: each column's type, Thai and English description, and unit.

Taken from the schema, not written twice: a column's path leads, through the resource's
operation, to a field of the graph, whose description is bilingual ("ไทย / English.") and
whose type gives the column's. The catalogue file may override the words (an aggregate's
count column has no field to describe it). Types are CKAN DataStore's: text, int, numeric,
bool, timestamp, date.
"""

from __future__ import annotations

from dataclasses import dataclass

from graphql import (
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    get_named_type,
    get_nullable_type,
    is_enum_type,
    is_list_type,
)

from policies.catalog import Column, Resource, column_field

SCALAR_TYPES = {
    "String": "text",
    "ID": "text",
    "Int": "int",
    "Float": "numeric",
    "Decimal": "numeric",
    "Boolean": "bool",
    "DateTime": "timestamp",
    "Date": "date",
}
TRANSFORMED_TYPES = {"date": "date"}


@dataclass(frozen=True)
class Entry:
    column: str
    type: str  # a CKAN DataStore type
    description_th: str
    description_en: str
    unit: str = ""


def data_dictionary(resource: Resource, schema: GraphQLSchema) -> list[Entry]:
    """One entry per column of the published table (``Resource.output_columns``): an
    aggregate's groups, its count, then its sums."""
    entries = {c.name: _entry(resource, c, schema) for c in resource.columns}
    if resource.aggregate is not None:
        count = Entry(resource.aggregate.count, "int", "จำนวนแถวในกลุ่ม", "Rows in the group.")
        entries[count.column] = count
        for name in resource.aggregate.sum:  # a sum of integers stays whole
            summed = entries[name]
            entries[name] = Entry(
                name,
                summed.type if summed.type in ("int", "numeric") else "numeric",
                f"ผลรวม: {summed.description_th}",
                f"Sum: {summed.description_en}",
                summed.unit,
            )
    return [entries[name] for name in resource.output_columns]


def _entry(resource: Resource, column: Column, schema: GraphQLSchema) -> Entry:
    field = field_of(resource, column.path, schema)
    th, en = split_description(field.description if field is not None else None)
    return Entry(
        column=column.name,
        type=_type(column, field),
        description_th=column.description_th or th,
        description_en=column.description_en or en,
        unit=column.unit,
    )


def split_description(text: str | None) -> tuple[str, str]:
    """The schema's "ไทย / English." as its Thai and English halves."""
    if not text:
        return "", ""
    th, sep, en = text.partition(" / ")
    return (th.strip(), en.strip()) if sep else (text.strip(), text.strip())


def _type(column: Column, field: GraphQLField | None) -> str:
    if column.transform is not None:
        return TRANSFORMED_TYPES[column.transform]
    if field is None:
        return "text"
    nullable = get_nullable_type(field.type)
    if is_list_type(nullable):
        return "text"  # a list is written as its items joined (downloads) or as JSON
    named: GraphQLNamedType = get_named_type(field.type)
    if is_enum_type(named):
        return "text"
    return SCALAR_TYPES.get(named.name, "text")


def field_of(resource: Resource, path: str, schema: GraphQLSchema) -> GraphQLField | None:
    """The schema field a column's path reaches through the resource's operation."""
    found = column_field(resource, path, schema)
    if found is None:
        return None
    parent = schema.type_map[found[0]]
    assert isinstance(parent, GraphQLObjectType)  # column_field walks object types only
    field: GraphQLField = parent.fields[found[1]]
    return field
