"""Compiling a planned operation into the functions ``compiled.CompiledExecutor`` runs.

For each selection set of the operation (collected once, with graphql-core's own
``collect_fields`` / ``collect_subfields``) the compiler writes the source of one Python
function — straight-line code, one block per response key, in the order graphql-core
executes them — and builds it with ``exec``. What each block does is decided here, once,
from the field's definition, its resolver and the plan's verdict (``compiled`` explains
the kinds). An operation the compiler does not cover raises ``Uncompiled`` with the reason,
and runs on graphql-core's executor (counted in ``bma_executions_total``).
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import EnumMeta
from types import CodeType
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLField,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLString,
    OperationDefinitionNode,
    OperationType,
    Undefined,
    VariableNode,
    is_leaf_type,
)
from graphql.execution.collect_fields import (
    CollectedFields,
    FragmentDetails,
    collect_fields,
    collect_subfields,
)
from graphql.execution.values import VariableValues
from graphql.language import Visitor, visit
from graphql.pyutils import Path, is_awaitable

from gateway.execution.compiled import (
    PLAIN_TYPES,
    CompiledOperation,
    FieldDetailsList,
    FieldsFunction,
)
from gateway.execution.enforcement import layers
from policies.masks import MASKS
from policies.model import Decision, Verdict

STRAWBERRY_DEFINITION = "strawberry-definition"
MISSING = object()  # "not a value the fast path writes": the reference answers it
INT_MIN, INT_MAX = -(2**31), 2**31 - 1

# Built-in scalars whose valid values graphql-core writes unchanged: the check, in code.
_PLAIN_CHECKS = {
    GraphQLString.name: "type(v) is str",
    GraphQLID.name: "type(v) is str",
    GraphQLInt.name: "type(v) is int and INT_MIN <= v <= INT_MAX",
    GraphQLFloat.name: "type(v) is float and isfinite(v)",
    GraphQLBoolean.name: "type(v) is bool",
}


class Uncompiled(Exception):
    """The operation uses something the compiler does not cover; the reason is its label."""


def compile_operation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: OperationDefinitionNode,
    verdicts: Mapping[tuple[str, str], Verdict],
    city_wide: bool,
) -> CompiledOperation:
    """``operation`` compiled for a plan's ``verdicts`` and its principal's row scope."""
    if operation.operation is not OperationType.QUERY:
        raise Uncompiled("not a query")
    fragments = _fragments(document)
    if _depends_on_variables(document):
        raise Uncompiled("directive with a variable")
    root_type = schema.query_type
    assert root_type is not None
    no_variables = VariableValues({}, {})
    root = collect_fields(schema, fragments, no_variables, root_type, operation)
    compiler = _Compiler(schema, fragments, no_variables, operation, verdicts, city_wide)
    compiled = CompiledOperation(root=root)
    compiler.compile_set(compiled, root_type, root)
    return compiled


def _fragments(document: DocumentNode) -> dict[str, FragmentDetails]:
    found: dict[str, FragmentDetails] = {}
    for definition in document.definitions:
        if isinstance(definition, FragmentDefinitionNode):
            if definition.variable_definitions:
                raise Uncompiled("fragment variables")
            found[definition.name.value] = FragmentDetails(definition, None)
    return found


class _DirectiveVariables(Visitor):
    found = False

    def enter_directive(self, node: Any, *_: Any) -> Any:
        if node.name.value not in ("skip", "include"):
            self.found = True  # @defer, @stream, unknown: not ours to compile
        for argument in node.arguments or ():
            if isinstance(argument.value, VariableNode):
                self.found = True
        return self.SKIP


def _depends_on_variables(document: DocumentNode) -> bool:
    """Whether the fields collected depend on the request (a @skip/@include with a
    variable), or on a directive other than those."""
    finder = _DirectiveVariables()
    operation_directives = [
        d for d in document.definitions if isinstance(d, OperationDefinitionNode) and d.directives
    ]
    if operation_directives:
        return True  # e.g. @experimental_disableErrorPropagation
    visit(document, finder)
    return finder.found


class _Compiler:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDetails],
        variables: VariableValues,
        operation: OperationDefinitionNode,
        verdicts: Mapping[tuple[str, str], Verdict],
        city_wide: bool,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.operation = operation
        self.verdicts = verdicts
        self.city_wide = city_wide

    def compile_set(
        self, compiled: CompiledOperation, parent: GraphQLObjectType, collected: CollectedFields
    ) -> FieldsFunction:
        """The function of one selection set (its sub-selections compiled first)."""
        if parent.is_type_of is not None:
            raise Uncompiled("is_type_of")
        code = _Code(parent)
        for key, group in collected.grouped_field_set.items():
            compiled.keep.append(group)
            self._field(compiled, code, parent, key, group)
        function = code.build()
        compiled.functions[id(collected.grouped_field_set)] = function
        compiled.keep.append(collected)
        return function

    def _field(
        self,
        compiled: CompiledOperation,
        code: _Code,
        parent: GraphQLObjectType,
        key: str,
        group: FieldDetailsList,
    ) -> None:
        node: FieldNode = group[0].node
        name = node.name.value
        if name == "__typename":
            code.constant(key, parent.name)
            return
        definition = self.schema.get_field(parent, name)
        if definition is None:
            return  # graphql-core leaves it out (validation keeps it from happening)
        object_type = _object_type(definition.type)
        sub = None
        if object_type is not None:
            # Every object field's selection is compiled: the reference reaches it through
            # collect_subfields, the inline completions below call it directly.
            sub = collect_subfields(
                self.schema, self.fragments, self.variables, self.operation, object_type, group
            )
            compiled.subfields[(object_type.name, id(group))] = sub
            function = self.compile_set(compiled, object_type, sub)
        resolver = self._resolver(parent, name, definition, node)
        if resolver is None:
            code.reference(key, group)
            return
        code.resolved(
            key, group, definition, resolver, self._completion(definition, sub and function)
        )

    def _resolver(
        self, parent: GraphQLObjectType, name: str, definition: GraphQLField, node: FieldNode
    ) -> _Resolver | None:
        """How the field's value is read without graphql-core's dispatch; None when only
        the reference executor may resolve it."""
        if node.arguments or definition.args:
            return None
        inner, restricted, row_scoped = layers(definition.resolve)
        if row_scoped and not self.city_wide:
            return None  # the row scope filters what the resolver answers
        verdict = None
        if restricted:
            verdict = self.verdicts.get((parent.name, name))
            if verdict is None or verdict.decision not in (Decision.ALLOW, Decision.MASK):
                # Deny by default: every other decision (a refusal, a purpose required,
                # one added later) is the reference's to answer, with its rule.
                return None
            if verdict.decision is Decision.MASK and (verdict.rule.mask or "") not in MASKS:
                return None
        field = (definition.extensions or {}).get(STRAWBERRY_DEFINITION)
        if field is None or field.extensions:
            return None
        if getattr(inner, "_is_default", False) and field.default_resolver is getattr:
            return _Resolver(f"source.{field.python_name}", None, verdict, False)
        resolver = field.base_resolver
        if (
            resolver is not None
            and not field.is_async
            and (resolver.self_parameter is None) != (resolver.root_parameter is None)
            and resolver.info_parameter is None
            and resolver.parent_parameter is None
            and not resolver.arguments
            and inspect.isfunction(resolver.wrapped_func)
            and len(inspect.signature(resolver.wrapped_func).parameters) == 1
        ):
            # A method of the object with nothing but ``self``, or a function of nothing but
            # ``root``: called as strawberry would call it, less the info and arguments it
            # does not take.
            return _Resolver("METHOD(source)", resolver.wrapped_func, verdict, True)
        return None

    def _completion(self, definition: GraphQLField, function: FieldsFunction | None) -> _Completion:
        type_ = definition.type
        nullable = not isinstance(type_, GraphQLNonNull)
        inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
        if is_leaf_type(inner):
            return _Completion("leaf", nullable, inner)
        if isinstance(inner, GraphQLObjectType) and function is not None:
            return _Completion("object", nullable, inner, function)
        if isinstance(inner, GraphQLList):
            item = inner.of_type
            item_inner = item.of_type if isinstance(item, GraphQLNonNull) else item
            if isinstance(item_inner, GraphQLObjectType) and function is not None:
                return _Completion("objects", nullable, item, function)
            if isinstance(item, GraphQLNonNull) and item_inner in (GraphQLString, GraphQLID):
                return _Completion("strings", nullable, item)
        return _Completion("reference", nullable, type_)


def _object_type(type_: GraphQLOutputType) -> GraphQLObjectType | None:
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        type_ = type_.of_type
    return type_ if isinstance(type_, GraphQLObjectType) else None


@dataclass(frozen=True)
class _Resolver:
    """How a field's value is read: ``expression`` in the generated code (``METHOD``
    names ``method``), and the verdict it is noted and masked with when restricted."""

    expression: str
    method: Any
    verdict: Verdict | None
    is_method: bool


@dataclass(frozen=True)
class _Completion:
    """How a resolved value becomes its answer: ``kind`` (leaf, object, objects, strings,
    or reference: graphql-core's completion), whether null is an answer, the type (the
    leaf type, the object type or the list's item type) and the object's function."""

    kind: str
    nullable: bool
    type: Any
    function: FieldsFunction | None = None


class _Code:
    """The source of one selection set's function, and the constants it names."""

    def __init__(self, parent: GraphQLObjectType) -> None:
        self.parent = parent
        self.lines: list[str] = []
        self.names: dict[str, Any] = {
            "T": parent,
            "TN": parent.name,
            "Path": Path,
            "UNDEF": Undefined,
            "MISSING": MISSING,
            "is_awaitable": is_awaitable,
            "isfinite": math.isfinite,
            "INT_MIN": INT_MIN,
            "INT_MAX": INT_MAX,
            "PLAIN": PLAIN_TYPES,
        }
        self.restricted = False

    def name(self, prefix: str, value: Any) -> str:
        label = f"{prefix}{len(self.names)}"
        self.names[label] = value
        return label

    def emit(self, block: str, indent: int) -> None:
        pad = "    " * indent
        self.lines.extend(pad + line for line in block.strip("\n").split("\n"))

    def constant(self, key: str, value: str) -> None:
        self.emit(f"results[{key!r}] = {value!r}", 2)

    def reference(self, key: str, group: FieldDetailsList) -> None:
        """graphql-core's execute_field, as its execute_fields calls it."""
        fdl = self.name("FDL", group)
        self.emit(
            f"""
r = ex.execute_field(T, source, {fdl}, Path(path, {key!r}, TN), None)
if r is not UNDEF:
    results[{key!r}] = r
    if is_awaitable(r):
        pending.append({key!r})
""",
            2,
        )

    def resolved(
        self,
        key: str,
        group: FieldDetailsList,
        definition: GraphQLField,
        resolver: _Resolver,
        completion: _Completion,
    ) -> None:
        """Read (and note, and mask) the value as the field's resolver would, then
        complete it; a resolver's error is the field's, as in execute_field."""
        fdl = self.name("FDL", group)
        return_type = self.name("RT", definition.type)
        slow = self._slow(key, fdl, self.name("FD", definition))
        expression = resolver.expression
        if resolver.is_method:
            expression = expression.replace("METHOD", self.name("METHOD", resolver.method))
        verdict = resolver.verdict
        if verdict is not None:  # the gate's order: noted, read, masked
            self.restricted = True
            label = self.name("VERDICT", verdict)
            self.emit(f"saw(TN, {group[0].node.name.value!r}, {label}, source)", 2)
        masked = ""
        if verdict is not None and verdict.decision is Decision.MASK:
            mask = self.name("MASK", MASKS[verdict.rule.mask or ""])
            masked = f"\n    if v is not None:\n        v = {mask}(v)"
        self.emit(
            f"""
try:
    v = {expression}{masked}
except Exception as error:
    ex.handle_field_error(error, {return_type}, {fdl}, Path(path, {key!r}, TN))
    results[{key!r}] = None
else:""",
            2,
        )
        body = self._completed(key, fdl, return_type, completion, resolver.is_method, slow)
        self.emit(body, 3)

    def _slow(self, key: str, fdl: str, definition: str) -> str:
        """graphql-core's completion of a value the inline code does not write."""
        return f"""
r = ex.complete_resolved({definition}, T, {fdl}, Path(path, {key!r}, TN), v)
results[{key!r}] = r
if is_awaitable(r):
    pending.append({key!r})"""

    def _completed(
        self,
        key: str,
        fdl: str,
        return_type: str,
        completion: _Completion,
        method: bool,
        slow: str,
    ) -> str:
        null = f"if v is None:\n    results[{key!r}] = None\nel" if completion.nullable else ""
        slow = _indented(slow)
        if completion.kind == "leaf":
            check = _PLAIN_CHECKS.get(completion.type.name) if _builtin(completion.type) else None
            if check is not None:
                return f"{null}if {check}:\n    results[{key!r}] = v\nelse:{slow}"
            coerce = self.name("COERCE", completion.type.coerce_output_value)
            odd = "isinstance(v, Exception)" + (" or is_awaitable(v)" if method else "")
            known = self._known_values(completion.type)
            if known is not None:  # the common values' answers, as the type writes them
                null = f"{null}if {known[0]}:\n    results[{key!r}] = {known[1]}\nel"
            return f"""
{null}if v is not None:
    try:
        o = MISSING if {odd} else {coerce}(v)
    except Exception:
        o = MISSING
    if o is None or o is UNDEF or o is MISSING:{_indented(slow)}
    else:
        results[{key!r}] = o
else:{slow}"""
        if completion.kind == "strings":
            return (
                f"{null}if type(v) is list and all(type(x) is str for x in v):\n"
                f"    results[{key!r}] = v\nelse:{slow}"
            )
        if completion.kind in ("object", "objects"):
            function = self.name("FN", completion.function)
            if completion.kind == "object":
                condition = "v is not UNDEF"
                call = f"{function}(ex, v, p)"
            else:
                item = self.name("IT", completion.type)
                condition = "type(v) is list and ex.uniform(v)"  # items: checked by uniform
                call = f"ex.complete_objects(v, {function}, {item}, {fdl}, p)"
            return f"""
{null}if v is not None and {condition} and (type(v) in PLAIN or ex.plain(v)):
    p = Path(path, {key!r}, TN)
    try:
        r = {call}
    except Exception as error:
        ex.handle_field_error(error, {return_type}, {fdl}, p)
        r = None
    else:
        if type(r) is not dict and is_awaitable(r):
            r = ex.await_completed(r, {return_type}, {fdl}, p)
            pending.append({key!r})
    results[{key!r}] = r
else:{slow}"""
        return slow.replace("\n    ", "\n")

    def _known_values(self, leaf_type: Any) -> tuple[str, str] | None:
        """A check and an expression writing a leaf's usual values without calling its
        coercion: an enum member's name (computed here, by the type's own coercion, for
        every member) and a Decimal's text (the Decimal scalar's coercion is ``str``)."""
        if leaf_type.coerce_output_value is str:
            return f"type(v) is {self.name('DECIMAL', Decimal)}", "str(v)"
        members = getattr(leaf_type, "wrapped_cls", None)
        if isinstance(leaf_type, GraphQLEnumType) and isinstance(members, EnumMeta):
            every: list[Any] = list(members)
            names = {id(m): leaf_type.coerce_output_value(m) for m in every}
            cls = self.name("ENUM", members)
            return f"type(v) is {cls}", f"{self.name('NAMES', names)}[id(v)]"
        return None

    def build(self) -> FieldsFunction:
        head = ["def fields(ex, source, path):", "    results = {}", "    pending = []"]
        if self.restricted:
            head.append("    saw = ex.trail.saw")
        body = [
            "    try:",
            *self.lines,
            "        pass",
            "    except Exception:",
            "        if pending:",
            "            ex.settle_in_background([results[k] for k in pending])",
            "        raise",
            "    if not pending:",
            "        return results",
            "    return ex.gather_fields(results, pending)",
        ]
        source = "\n".join(head + body) + "\n"
        namespace = dict(self.names)
        exec(_code_of(source, self.parent.name), namespace)  # noqa: S102
        function: FieldsFunction = namespace["fields"]
        function.__doc__ = source  # what it runs, for whoever debugs it
        return function


@functools.lru_cache(maxsize=4096)
def _code_of(source: str, type_name: str) -> CodeType:
    """Python's compilation of a function's source, kept: selection sets of the same shape
    (the constants they name are numbered, not named) share it across documents."""
    return compile(source, f"<compiled {type_name}>", "exec")


def _indented(block: str) -> str:
    return block.replace("\n", "\n    ")


def _builtin(leaf_type: Any) -> bool:
    return leaf_type in (GraphQLString, GraphQLID, GraphQLInt, GraphQLFloat, GraphQLBoolean)
