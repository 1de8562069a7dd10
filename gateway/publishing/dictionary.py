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
    FieldNode,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    get_operation_ast,
    is_enum_type,
    is_list_type,
    parse,
)

from policies.catalog import Column, Resource

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
    """One entry per column, in the resource's order (an aggregate's count last)."""
    entries = [_entry(resource, column, schema) for column in resource.columns]
    if resource.aggregate is None:
        return entries
    kept = [e for e in entries if e.column in resource.aggregate.group_by]
    return [
        *kept,
        Entry(resource.aggregate.count, "int", "จำนวนแถวในกลุ่ม", "Rows in the group."),
    ]


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
    """The schema field a column's path reaches through the resource's operation: the rows'
    path first, then the column's (response keys: an alias names its field)."""
    document = parse(resource.query)
    operation = get_operation_ast(document)
    if operation is None or schema.query_type is None:
        return None
    parent: GraphQLObjectType = schema.query_type
    selections: SelectionSetNode | None = operation.selection_set
    field: GraphQLField | None = None
    for segment in [*resource.rows.split("."), *path.split(".")]:
        key = segment.removesuffix("[]")
        node = _selected(selections, key)
        if node is None or node.name.value not in parent.fields:
            return None
        field = parent.fields[node.name.value]
        selections = node.selection_set
        named = get_named_type(field.type)
        if isinstance(named, GraphQLObjectType):
            parent = named
    return field


def _selected(selections: SelectionSetNode | None, key: str) -> FieldNode | None:
    for selection in selections.selections if selections is not None else ():
        if isinstance(selection, FieldNode):
            if (selection.alias or selection.name).value == key:
                return selection
    return None
