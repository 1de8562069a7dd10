"""Compiled execution: graphql-core's executor with each selection set specialised once.

graphql-core executes every field the same generic way: build a path and a resolve info,
coerce the arguments, call the resolver, check for an awaitable, dispatch on the return
type, coerce the leaf. For a list of a thousand rows that is most of a request's time. The
``compiler`` turns each selection set of a planned operation into a Python function made
for it, and ``CompiledExecutor`` — graphql-core's own executor class with three methods
replaced — runs those functions in place of its generic ``execute_fields``:

- a plain field (an attribute of the object, no resolver of ours) reads the attribute and
  checks the value against what the field's type accepts; a normal value is written as is
  (strings, 32-bit ints, finite floats, booleans) or through the type's own coercion (enums,
  dates, decimals). Anything else — null for a non-null field, an odd type, an exception —
  is handed to graphql-core's ``execute_field``, which answers it (error, path, null
  propagation) exactly as the reference does. A plain field has no side effect, so reading
  it twice is harmless;
- a restricted plain field has its verdict compiled in: allowed and masked values are noted
  in the access trail and written (through the mask) in the same order as the reference;
  a refusal, or a field without a verdict, goes to the reference, which raises it;
- a row-scoped plain field of a city-wide principal is a plain field (the scope holds
  nothing); for a principal with a row scope it goes to the reference;
- every other field (our resolvers, DataLoader reads) goes through ``execute_field``, so
  batching, errors, awaitables and their scheduling are graphql-core's.

Sub-selections are collected once, at compile time, and handed back by ``collect_subfields``
so that the reference path, where it runs, reaches compiled functions again below it.
graphql-core's ``execute`` stays the reference: the differential test
(tests/execution/test_compiled_equivalence.py) checks both give byte-identical answers and
identical audit records.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLOutputType
from graphql.execution.collect_fields import CollectedFields, FieldDetails
from graphql.execution.executor import to_nodes
from graphql.execution.incremental.incremental_executor import IncrementalExecutor
from graphql.pyutils import Path, gather_with_cancel, is_awaitable

from gateway.audit.trail import AccessTrail

FieldDetailsList = list[FieldDetails]
# A compiled selection set: (executor, source, path) -> the object's fields, or an
# awaitable of them, like graphql-core's ``execute_fields``.
FieldsFunction = Callable[["CompiledExecutor", Any, Path | None], Any]

# Classes of the schema's objects found to be neither awaitable nor exceptions: the inline
# code then checks a value's class instead of asking graphql-core's is_awaitable each time.
PLAIN_TYPES: set[type] = set()


@dataclass
class CompiledOperation:
    """One operation compiled for one plan: its root fields, each selection set's fields
    (keyed by the object type and the identity of the field group they were collected
    from) and the function that executes each."""

    root: CollectedFields
    subfields: dict[tuple[str, int], CollectedFields] = field(default_factory=dict)
    functions: dict[int, FieldsFunction] = field(default_factory=dict)
    # Keeps every collected field group alive, so that no id() above is reused.
    keep: list[Any] = field(default_factory=list, repr=False)


class CompiledExecutor(IncrementalExecutor):
    """graphql-core's executor, running ``compiled``'s functions where it has them."""

    def __init__(
        self, *args: Any, compiled: CompiledOperation, trail: AccessTrail, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.compiled = compiled
        self.trail = trail

    def execute_root_grouped_field_set(
        self,
        root_type: GraphQLObjectType,
        root_value: Any,
        grouped_field_set: Any,
        serially: bool,
        position_context: Any,
    ) -> Any:
        # The root fields as compiled (the same collection, made once), so that the
        # functions keyed by them are found.
        root = self.compiled.root.grouped_field_set
        return super().execute_root_grouped_field_set(
            root_type, root_value, root, serially, position_context
        )

    def collect_subfields(
        self, return_type: GraphQLObjectType, field_details_list: FieldDetailsList
    ) -> CollectedFields:
        found = self.compiled.subfields.get((return_type.name, id(field_details_list)))
        if found is None:
            return super().collect_subfields(return_type, field_details_list)
        return found

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: Any,
        position_context: Any,
    ) -> Any:
        function = self.compiled.functions.get(id(grouped_field_set))
        if function is None:
            return super().execute_fields(
                parent_type, source_value, path, grouped_field_set, position_context
            )
        return function(self, source_value, path)

    # ------------------------------------------------------------- used by the functions

    async def gather_fields(self, results: dict[str, Any], pending: list[str]) -> Any:
        """The awaitable fields of one object, awaited as graphql-core awaits them."""
        if len(pending) == 1:
            key = pending[0]
            results[key] = await results[key]
        else:
            awaited = await gather_with_cancel(*(results[k] for k in pending))
            results.update(zip(pending, awaited, strict=True))
        return results

    async def await_completed(
        self,
        completed: Awaitable[Any],
        return_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        """A nested object completed inline whose fields turned out awaitable (as
        ``execute_field`` wraps one)."""
        try:
            return await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None

    @staticmethod
    def plain(value: Any) -> bool:
        """Whether the object ``value`` is completed as it is (not awaited, not raised);
        its class is remembered when it is one of the schema's object types."""
        if isinstance(value, Exception) or is_awaitable(value):
            return False
        kind = type(value)
        if hasattr(kind, "__strawberry_definition__") and not hasattr(kind, "__await__"):
            PLAIN_TYPES.add(kind)
        return True

    @staticmethod
    def uniform(items: list[Any]) -> bool:
        """Whether a list's items may be completed inline: all of one type, and that type
        neither null, an exception nor awaitable (those the reference completes)."""
        if not items:
            return True
        first = items[0]
        kind = type(first)
        if kind not in PLAIN_TYPES and (
            first is None or isinstance(first, Exception) or is_awaitable(first)
        ):
            return False
        return all(type(item) is kind for item in items)

    def complete_objects(
        self,
        items: list[Any],
        function: FieldsFunction,
        item_type: GraphQLOutputType,
        field_details_list: FieldDetailsList,
        path: Path,
    ) -> Any:
        """A list of objects completed with their compiled function: graphql-core's
        ``complete_iterable_value`` and ``complete_list_item_value``, less the dispatch."""
        completed: list[Any] = []
        append = completed.append
        awaitable_indices: list[int] = []
        try:
            for index, item in enumerate(items):
                item_path = Path(path, index, None)
                try:
                    value = function(self, item, item_path)
                except Exception as raw_error:
                    self.handle_field_error(raw_error, item_type, field_details_list, item_path)
                    append(None)
                    continue
                if type(value) is not dict and is_awaitable(value):
                    append(self.await_completed(value, item_type, field_details_list, item_path))
                    awaitable_indices.append(index)
                else:
                    append(value)
        except Exception:
            pending = [completed[i] for i in awaitable_indices]
            if pending:
                self.settle_in_background(pending)
            raise
        if not awaitable_indices:
            return completed
        return self._gather_items(completed, awaitable_indices)

    async def _gather_items(self, completed: list[Any], indices: list[int]) -> list[Any]:
        if len(indices) == 1:
            index = indices[0]
            completed[index] = await completed[index]
        else:
            awaited = await gather_with_cancel(*(completed[i] for i in indices))
            for index, value in zip(indices, awaited, strict=True):
                completed[index] = value
        return completed

    def complete_resolved(
        self,
        field_def: GraphQLField,
        parent_type: GraphQLObjectType,
        field_details_list: FieldDetailsList,
        path: Path,
        result: Any,
    ) -> Any:
        """A resolved value the compiled code does not write itself, completed as
        ``execute_field`` completes its resolver's result."""
        return_type = field_def.type
        info = self.build_resolve_info(field_def, to_nodes(field_details_list), parent_type, path)
        try:
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, result, None
                )
            completed = self.complete_value(
                return_type, field_details_list, info, path, result, None
            )
            if self.is_awaitable(completed):
                return self.await_completed(completed, return_type, field_details_list, path)
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed
