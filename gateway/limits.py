"""Operation limits per audience: how much one request may ask, checked before anything runs.

Each audience (``Principal.kind``) has its own ``OperationLimits``. A request over one of them
is refused with HTTP 400, a stable ``extensions.code``, the ``extensions.limit`` it hit and,
where it is known, ``extensions.actual``. The checks run in order of cost, and each before
the work it protects:

1. ``scan`` — a single pass over the document's tokens, before parsing: tokens (comments
   counted apart), aliases, directives and the nesting of fields within one definition. It
   stops at the first limit exceeded, so a document of a million tokens or nested 1,000
   deep costs what its first few hundred tokens cost, and the parser never sees it.
2. ``Analysis`` and ``CostModel.bounds`` — on the parsed document, before validation
   (whose time grows faster than the document: a field repeated, fragments spread many
   times or in a ring): depth through fragments, root fields, introspection, and a lower
   bound of the cost; fragments are visited in dependency order, so cycles cannot recurse.
3. ``CostModel.cost`` — the static cost of the operation that runs, with the variables of
   the request when a ``first`` argument is a variable; before planning and execution.

The cost is in the style of the IBM GraphQL cost specification: every field costs 1; a
list multiplies the cost of what is selected in it by its size — the ``first`` argument
(literal, variable, or the argument's default) of a list that takes one, the gateway's
default page size for a connection's ``edges``, the size assumed in ``LIST_SIZES`` (or
``DEFAULT_LIST_SIZE``) for other lists — the spec's ``@listSize(assumedSize:)``. It
is an upper bound of the values the answer can hold. Introspection (``__schema``,
``__type``) answers from memory, bounded by the schema: its lists count once, and its
depth has its own allowance (``INTROSPECTION_DEPTH``, the depth of the standard
introspection query); graphql-core's ``MaxIntrospectionDepthRule`` bounds its recursion.

``BMA_OPERATION_LIMITS`` overrides the defaults per audience, as JSON:
``{"anonymous": {"max_depth": 8, "introspection": false}, "agency": {"max_cost": 500000}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)

from policies.principal import AudienceKind

ENV = "BMA_OPERATION_LIMITS"
AUDIENCES: tuple[AudienceKind, ...] = ("anonymous", "app", "partner", "agency")
# The size assumed for a list field that takes no `first`: the most it holds in practice,
# with room to grow. Lists not named here are assumed to hold DEFAULT_LIST_SIZE.
DEFAULT_LIST_SIZE = 50
LIST_SIZES: Mapping[tuple[str, str], int] = {
    ("Query", "districts"): 50,  # exactly the 50 districts
    ("District", "populationStats"): 50,  # years x 2 sexes x 6 age bands (24 in 2 years)
    ("ComplaintStats", "byState"): 6,  # the ComplaintState values
    ("ComplaintStats", "byType"): 30,  # Traffy's complaint types
    ("Parcel", "assessments"): 10,  # one per tax year
    ("Parcel", "signboards"): 10,  # its signs, one row per sign and tax year
    ("Business", "signboards"): 10,
    ("Business", "licences"): 5,  # one per licence kind, renewed
}
# The depth the standard introspection query needs (graphql-core's get_introspection_query:
# 15); introspection may always nest this deep, whatever the audience's max_depth.
INTROSPECTION_DEPTH = 15
INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
MAX_DEPTH_CEILING = 100  # graphql-core's parser refuses nesting beyond 200 anyway
COST_CAP = 10**15  # costs of fragment bombs grow exponentially: no need for bignums
VARIABLE_DEPTH = 32  # this schema's deepest input (a filter object) nests 2


@dataclass(frozen=True)
class OperationLimits:
    max_depth: int  # fields on the longest path: `{ districts { code } }` is 2
    max_aliases: int  # aliased fields in the document
    max_tokens: int  # lexical tokens in the document (and, apart, comments)
    max_directives: int  # directives used in the document
    max_root_fields: int  # fields selected at the root of an operation
    max_cost: int  # static cost of the operation (see the module docstring)
    # `...` in the document (named and inline fragments): validation grows faster than
    # linearly with spreads side by side (1,000 of them: ~350 ms), so they are capped apart.
    max_fragment_spreads: int = 100
    # None: the gateway-wide setting (BMA_MAX_BATCH, BMA_MAX_PAGE_SIZE, BMA_MAX_BODY_BYTES);
    # a value here can only lower it.
    max_batch: int | None = None
    max_page_size: int | None = None
    max_body_bytes: int | None = None
    max_variable_depth: int = VARIABLE_DEPTH  # nesting of lists and objects in the variables
    introspection: bool = True  # __schema and __type (__typename is always allowed)
    suggestions: bool = True  # "Did you mean …?" in validation and variable errors

    def batch(self, gateway_max: int) -> int:
        return min(self.max_batch or gateway_max, gateway_max)

    def page_size(self, gateway_max: int) -> int:
        return min(self.max_page_size or gateway_max, gateway_max)

    def body_bytes(self, gateway_max: int) -> int:
        return min(self.max_body_bytes or gateway_max, gateway_max)


# Anonymous callers are anyone on the internet: strictest, and no suggestions (they would
# map the schema for free). Apps, partners and agencies are known by their credentials and
# get more room in that order. Every default leaves room for the operations of the docs,
# tests and benchmarks: the costliest, 100 parcels and 100 businesses of one district with
# every field, costs 30,673; 1,000 complaints x 14 fields, 14,003; depth 8; 10 root fields;
# 319 tokens. Validation takes 10-20 µs a field, and more when one selection repeats a field
# or spreads many fragments: 1,000 tokens keep the worst anonymous document (a field repeated
# 490 times, 100 fragments spread side by side) around 30 ms of validation.
DEFAULTS: Mapping[str, OperationLimits] = {
    "anonymous": OperationLimits(
        max_depth=10,
        max_aliases=30,
        max_tokens=1_000,
        max_directives=10,
        max_root_fields=20,
        max_cost=50_000,
        max_fragment_spreads=30,
        max_body_bytes=131_072,
        suggestions=False,
    ),
    "app": OperationLimits(
        max_depth=12,
        max_aliases=50,
        max_tokens=2_000,
        max_directives=20,
        max_root_fields=30,
        max_cost=100_000,
    ),
    "partner": OperationLimits(
        max_depth=15,
        max_aliases=100,
        max_tokens=5_000,
        max_directives=30,
        max_root_fields=40,
        max_cost=200_000,
    ),
    "agency": OperationLimits(
        max_depth=20,
        max_aliases=200,
        max_tokens=10_000,
        max_directives=50,
        max_root_fields=50,
        max_cost=500_000,
    ),
}

_INT_RANGES: Mapping[str, tuple[int, int | None]] = {
    "max_depth": (1, MAX_DEPTH_CEILING),
    "max_aliases": (0, None),
    "max_tokens": (1, None),
    "max_directives": (0, None),
    "max_root_fields": (1, None),
    "max_cost": (1, None),
    "max_fragment_spreads": (0, None),
    "max_batch": (1, 1000),
    "max_page_size": (1, None),
    "max_body_bytes": (1024, None),
    "max_variable_depth": (1, MAX_DEPTH_CEILING),
}
_OPTIONAL = frozenset({"max_batch", "max_page_size", "max_body_bytes"})
_FLAGS = frozenset({"introspection", "suggestions"})
_KEYS = tuple(f.name for f in fields(OperationLimits))


def _config_error(message: str) -> Exception:
    from gateway.settings import ConfigError  # settings imports this module

    return ConfigError(message)


@dataclass(frozen=True)
class AudienceLimits:
    """The operation limits of each audience."""

    anonymous: OperationLimits = DEFAULTS["anonymous"]
    app: OperationLimits = DEFAULTS["app"]
    partner: OperationLimits = DEFAULTS["partner"]
    agency: OperationLimits = DEFAULTS["agency"]

    def of(self, kind: str) -> OperationLimits:
        # An unknown kind cannot come from authentication; the strictest is the safe answer.
        return getattr(self, kind) if kind in AUDIENCES else self.anonymous

    def overridden(self, overrides: Mapping[str, Mapping[str, Any]]) -> AudienceLimits:
        """These limits with some values replaced, checked as ``BMA_OPERATION_LIMITS`` is."""
        if not isinstance(overrides, Mapping):
            raise _config_error(f"{ENV} must be a JSON object of audiences")
        changes: dict[str, OperationLimits] = {}
        for audience, values in overrides.items():
            if audience not in AUDIENCES:
                raise _config_error(
                    f"{ENV}: unknown audience {audience!r} (one of {', '.join(AUDIENCES)})"
                )
            changes[audience] = replace(self.of(audience), **_checked(audience, values))
        return replace(self, **changes)

    @classmethod
    def parse(cls, raw: str) -> AudienceLimits:
        if not raw.strip():
            return cls()
        try:
            overrides = json.loads(raw)
        except ValueError as exc:
            raise _config_error(f"{ENV} is not valid JSON: {exc}") from None
        return cls().overridden(overrides)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> AudienceLimits:
        return cls.parse(env.get(ENV, ""))

    def to_env(self) -> str:
        """``BMA_OPERATION_LIMITS`` for these limits: the values that differ from the
        defaults ("" when none do)."""
        changed = {
            audience: {
                key: value
                for key, value in asdict(self.of(audience)).items()
                if value != getattr(DEFAULTS[audience], key)
            }
            for audience in AUDIENCES
        }
        changed = {audience: values for audience, values in changed.items() if values}
        return json.dumps(changed, sort_keys=True) if changed else ""


def _checked(audience: str, values: Any) -> dict[str, Any]:
    where = f"{ENV}.{audience}"
    if not isinstance(values, Mapping):
        raise _config_error(f"{where} must be an object of limits")
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if key not in _KEYS:
            raise _config_error(f"{where}: unknown key {key!r} (one of {', '.join(_KEYS)})")
        if key in _FLAGS:
            if not isinstance(value, bool):
                raise _config_error(f"{where}.{key} must be true or false, got {value!r}")
        elif value is None and key in _OPTIONAL:
            pass  # back to the gateway-wide setting
        else:
            low, high = _INT_RANGES[key]
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            if type(value) is not int or value < low or (high is not None and value > high):
                raise _config_error(f"{where}.{key} must be a whole number {bound}, got {value!r}")
        checked[key] = value
    return checked


# ---------------------------------------------------------------------------- rejections

QUERY_TOO_DEEP = "QUERY_TOO_DEEP"
TOO_MANY_ALIASES = "TOO_MANY_ALIASES"
TOO_MANY_TOKENS = "TOO_MANY_TOKENS"
TOO_MANY_DIRECTIVES = "TOO_MANY_DIRECTIVES"
TOO_MANY_FRAGMENT_SPREADS = "TOO_MANY_FRAGMENT_SPREADS"
TOO_MANY_ROOT_FIELDS = "TOO_MANY_ROOT_FIELDS"
QUERY_TOO_COSTLY = "QUERY_TOO_COSTLY"
INTROSPECTION_DISABLED = "INTROSPECTION_DISABLED"
VARIABLES_TOO_DEEP = "VARIABLES_TOO_DEEP"


@dataclass(frozen=True)
class LimitExceeded:
    code: str
    message: str
    limit: int | None = None
    actual: int | None = None

    def error(self) -> GraphQLError:
        extensions: dict[str, Any] = {"code": self.code}
        if self.limit is not None:
            extensions["limit"] = self.limit
        if self.actual is not None:
            extensions["actual"] = self.actual
        return GraphQLError(self.message, extensions=extensions)


def too_deep(limit: int, actual: int | None = None) -> LimitExceeded:
    found = f"{actual}" if actual is not None else f"more than {limit}"
    return LimitExceeded(
        QUERY_TOO_DEEP, f"the query nests {found} fields deep; the limit is {limit}", limit, actual
    )


def too_many_tokens(limit: int, what: str = "tokens") -> LimitExceeded:
    return LimitExceeded(
        TOO_MANY_TOKENS, f"the document holds more than {limit} {what}; the limit is {limit}", limit
    )


# ---------------------------------------------------------------------------- 1. the lexer

# GraphQL's lexical grammar as one expression: what is ignored (white space, line ends,
# commas, comments, the BOM), then one token. graphql-core's Lexer builds an object per token
# in Python; this finds a token in one step of the regex engine: ~5x faster, so a hostile
# document is refused in a fraction of the time (tests/test_limits_scan.py checks that both
# read the same tokens). Anything it cannot read is left to the parser, which reports it.
_TOKEN = re.compile(
    r"""
    (?:[\t\ \n\r,\ufeff]|\#[^\n\r]*)*+
    (?:
        (?P<punct>\.\.\.|[!$&():=@\[\]{|}])
      | (?P<name>[_A-Za-z][_0-9A-Za-z]*+)
      | (?P<value>
            -?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?(?:[eE][+-]?[0-9]++)?
          | \"\"\"(?:\\\"\"\"|[^"]|"(?!""))*+\"\"\"
          | "(?:[^"\\\n\r]|\\.)*+"
        )
      | (?P<end>\Z)
    )
    """,
    re.VERBOSE,
)
_NAME = "name"  # the kind of a name token; a punctuator's kind is its text
_INLINE_STARTS = frozenset({"@", "{"})


def tokens(text: str) -> Iterator[tuple[str, str]]:
    """The document's tokens as (kind, text): kind is the punctuator itself, ``name`` or
    ``value``. Stops early, without error, where the text is not GraphQL."""
    pos = 0
    match = _TOKEN.match
    while (found := match(text, pos)) is not None:
        kind = found.lastgroup
        if kind == "end":
            return
        token = found.group(kind)
        yield (token if kind == "punct" else kind), token
        pos = found.end()


def scan(text: str, limits: OperationLimits) -> LimitExceeded | None:
    """The first limit the document's tokens exceed, read without parsing. What cannot be
    read as tokens is left to the parser, which reports the syntax error."""
    if text.count("#") > limits.max_tokens:  # bounds the comments, at C speed
        return too_many_tokens(limits.max_tokens, "comments (or '#' characters)")
    count = aliases = directives = spreads = 0
    parens = depth = 0
    # The braces outside arguments open selection sets: True for a field's or an
    # operation's (a level of depth), False for an inline fragment's (no level).
    braces: list[bool] = []
    previous = ""
    inline_next = False
    for kind, token in tokens(text):
        count += 1
        if count > limits.max_tokens:
            return too_many_tokens(limits.max_tokens)
        if previous == "..." and parens == 0:
            # `... on T {`, `... @dir {` and `... {` open an inline fragment;
            # `...Name` spreads a named one.
            inline_next = kind in _INLINE_STARTS or (kind == _NAME and token == "on")
        if kind == "..." and parens == 0:
            spreads += 1
            if spreads > limits.max_fragment_spreads:
                return LimitExceeded(
                    TOO_MANY_FRAGMENT_SPREADS,
                    f"the document spreads fragments more than {limits.max_fragment_spreads} times",
                    limits.max_fragment_spreads,
                )
        if kind == "(":
            parens += 1
        elif kind == ")":
            parens -= 1
        elif kind == "@":
            directives += 1
            if directives > limits.max_directives:
                return LimitExceeded(
                    TOO_MANY_DIRECTIVES,
                    f"the document uses more than {limits.max_directives} directives",
                    limits.max_directives,
                )
        elif parens == 0:
            if kind == "{":
                level = not inline_next
                inline_next = False
                braces.append(level)
                depth += level
                if depth > limits.max_depth:
                    return too_deep(limits.max_depth)
            elif kind == "}":
                if braces:
                    depth -= braces.pop()
            elif kind == ":" and previous == _NAME and braces:
                aliases += 1
                if aliases > limits.max_aliases:
                    return LimitExceeded(
                        TOO_MANY_ALIASES,
                        f"the document uses more than {limits.max_aliases} aliases",
                        limits.max_aliases,
                    )
        previous = kind
    return None


def nested_deeper_than(variables: Mapping[str, Any], limit: int) -> bool:
    """Whether a variable's value nests lists and objects more than ``limit`` deep (``[1]``
    is 1 deep, ``{"a": [1]}`` 2), read without recursion."""
    stack: list[tuple[Any, int]] = [(value, 0) for value in variables.values()]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth + 1 > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def variables_too_deep(limits: OperationLimits) -> LimitExceeded:
    limit = limits.max_variable_depth
    return LimitExceeded(
        VARIABLES_TOO_DEEP, f"the variables nest more than {limit} levels deep", limit
    )


# ---------------------------------------------------------------------------- 2. the document


def _fragments(document: DocumentNode) -> dict[str, FragmentDefinitionNode]:
    return {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}


def _operations(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def _spreads(selection_set: SelectionSetNode | None) -> Iterator[str]:
    pending = [selection_set] if selection_set else []
    while pending:
        for selection in pending.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                yield selection.name.value
            elif selection.selection_set:
                pending.append(selection.selection_set)


def dependency_order(fragments: Mapping[str, FragmentDefinitionNode]) -> list[str]:
    """Fragment names, each after every fragment it spreads; a spread that closes a cycle is
    left out (validation refuses cycles: NoFragmentCyclesRule)."""
    order: list[str] = []
    state: dict[str, bool] = {}  # False: being visited, True: done
    for root in fragments:
        if root in state:
            continue
        state[root] = False
        stack = [(root, _spreads(fragments[root].selection_set))]
        while stack:
            name, spreads = stack[-1]
            following = next(spreads, None)
            if following is None:
                stack.pop()
                state[name] = True
                order.append(name)
            elif following in fragments and following not in state:
                state[following] = False
                stack.append((following, _spreads(fragments[following].selection_set)))
    return order


@dataclass(frozen=True)
class _Shape:
    depth: int = 0  # data fields on the longest path
    introspection_depth: int = 0  # fields on the longest path through __schema or __type
    root_fields: int = 0  # fields at the top level (inline fragments and spreads included)
    introspects: bool = False


def _shape(
    selection_set: SelectionSetNode, shapes: Mapping[str, _Shape], introspecting: bool
) -> _Shape:
    depth = introspection_depth = root_fields = 0
    introspects = False
    stack: list[tuple[SelectionSetNode, int, bool, bool]] = [
        (selection_set, 0, introspecting, True)
    ]
    while stack:
        current, level, inside, top = stack.pop()
        for selection in current.selections:
            if isinstance(selection, FieldNode):
                here = level + 1
                root_fields += top
                entering = selection.name.value in INTROSPECTION_ROOTS
                introspects = introspects or entering
                if inside or entering:
                    introspection_depth = max(introspection_depth, here)
                else:
                    depth = max(depth, here)
                if selection.selection_set:
                    stack.append((selection.selection_set, here, inside or entering, False))
            elif isinstance(selection, InlineFragmentNode):
                stack.append((selection.selection_set, level, inside, top))
            else:
                shape = shapes.get(selection.name.value)
                if shape is None:  # unknown, or closes a cycle: validation refuses both
                    continue
                root_fields = min(root_fields + top * shape.root_fields, COST_CAP)
                introspects = introspects or shape.introspects
                if inside:
                    deepest = max(shape.depth, shape.introspection_depth)
                    introspection_depth = max(introspection_depth, level + deepest)
                else:
                    depth = max(depth, level + shape.depth)
                    if shape.introspection_depth:
                        introspection_depth = max(
                            introspection_depth, level + shape.introspection_depth
                        )
    return _Shape(depth, introspection_depth, root_fields, introspects)


@dataclass(frozen=True)
class Analysis:
    """What the limits need to know of a parsed document, computed once per document."""

    depth: int
    introspection_depth: int
    root_fields: int  # the most of any operation
    introspects: bool
    fragments: int  # fragment definitions

    @classmethod
    def of(cls, document: DocumentNode) -> Analysis:
        fragments = _fragments(document)
        shapes: dict[str, _Shape] = {}
        for name in dependency_order(fragments):
            fragment = fragments[name]
            on_introspection = fragment.type_condition.name.value.startswith("__")
            shapes[name] = _shape(fragment.selection_set, shapes, on_introspection)
        operations = [_shape(o.selection_set, shapes, False) for o in _operations(document)]
        every = [*operations, *shapes.values()]  # an unused fragment is still validated
        return cls(
            depth=max((s.depth for s in every), default=0),
            introspection_depth=max((s.introspection_depth for s in every), default=0),
            root_fields=max((s.root_fields for s in operations), default=0),
            introspects=any(s.introspects for s in every),
            fragments=len(fragments),
        )

    def exceeds(self, limits: OperationLimits) -> LimitExceeded | None:
        if self.introspects and not limits.introspection:
            return LimitExceeded(
                INTROSPECTION_DISABLED, "introspection (__schema, __type) is disabled"
            )
        if self.depth > limits.max_depth:
            return too_deep(limits.max_depth, self.depth)
        introspection_limit = max(limits.max_depth, INTROSPECTION_DEPTH)
        if self.introspection_depth > introspection_limit:
            return too_deep(introspection_limit, self.introspection_depth)
        if self.root_fields > limits.max_root_fields:
            return LimitExceeded(
                TOO_MANY_ROOT_FIELDS,
                f"an operation selects {self.root_fields} root fields; "
                f"the limit is {limits.max_root_fields}",
                limits.max_root_fields,
                self.root_fields,
            )
        return None


# ---------------------------------------------------------------------------- 3. the cost


def too_costly(limits: OperationLimits, cost: int) -> LimitExceeded:
    return LimitExceeded(
        QUERY_TOO_COSTLY,
        f"the operation's static cost is {cost}; the limit is {limits.max_cost} "
        "(ask for fewer rows with `first`, or fewer nested lists)",
        limits.max_cost,
        cost,
    )


@dataclass(frozen=True)
class _Field:
    is_list: bool  # multiplies what it selects
    connection: bool  # multiplies what its `edges` select
    first_default: int | None  # the schema default of its `first` argument
    has_first: bool
    assumed_size: int  # without a `first`


class Unknown:
    """A variable value the cost cannot know yet: counted as 0 (a lower bound)."""


LOWER_BOUND = Unknown()


class CostModel:
    """The static cost of an operation over one schema."""

    def __init__(self, schema: GraphQLSchema, default_page_size: int, max_page_size: int) -> None:
        self.schema = schema
        self.default_page_size = default_page_size
        self.max_page_size = max_page_size
        self._fields: dict[tuple[str, str], _Field | None] = {}

    def _field(self, parent: Any, name: str) -> _Field | None:
        key = (parent.name, name)
        if key not in self._fields:
            definition = parent.fields.get(name)
            if definition is None:
                self._fields[key] = None
            else:
                type_ = definition.type
                if isinstance(type_, GraphQLNonNull):
                    type_ = type_.of_type
                named = get_named_type(type_)
                connection = (
                    isinstance(named, GraphQLObjectType)
                    and "edges" in named.fields
                    and "pageInfo" in named.fields
                )
                first = definition.args.get("first")
                default = first.default_value if first is not None else None
                self._fields[key] = _Field(
                    is_list=isinstance(type_, GraphQLList),
                    connection=connection,
                    first_default=default if type(default) is int else None,
                    has_first=first is not None,
                    assumed_size=LIST_SIZES.get(key, DEFAULT_LIST_SIZE),
                )
        return self._fields[key]

    def bounds(self, document: DocumentNode) -> tuple[dict[str | None, int], bool]:
        """The cost of each operation by the name a request gives (None: the first one), and
        whether a variable changes them; if one does, these are lower bounds (a ``first``
        given by a variable counts as 0). One walk, whatever the number of operations."""
        walk = self._walk(document, None, LOWER_BOUND)
        costs: dict[str | None, int] = {}
        for operation in _operations(document):
            cost = walk.operation(operation)
            costs.setdefault(None, cost)
            if operation.name:
                costs.setdefault(operation.name.value, cost)
        return costs, walk.dynamic

    def cost(
        self, document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any]
    ) -> int:
        """The cost of the operation that runs, with the request's variables."""
        operation = _chosen(document, operation_name)
        if operation is None:
            return 0  # execution reports the missing operation
        return self._walk(document, operation, variables).operation(operation)

    def _walk(
        self,
        document: DocumentNode,
        operation: OperationDefinitionNode | None,
        variables: Mapping[str, Any] | Unknown,
    ) -> _CostWalk:
        """A walk with the cost of every fragment known, in dependency order."""
        walk = _CostWalk(self, operation, variables)
        fragments = _fragments(document)
        for name in dependency_order(fragments):
            fragment = fragments[name]
            condition = fragment.type_condition.name.value
            parent = self.schema.get_type(condition)
            on_introspection = condition.startswith("__")
            walk.fragments[name] = walk.selections(
                fragment.selection_set, parent, on_introspection, None
            )
        return walk


def _chosen(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    for operation in _operations(document):
        if name is None or (operation.name and operation.name.value == name):
            return operation
    return None


class _CostWalk:
    def __init__(
        self,
        model: CostModel,
        operation: OperationDefinitionNode | None,
        variables: Mapping[str, Any] | Unknown,
    ) -> None:
        self.model = model
        self.variables = variables
        definitions = (operation.variable_definitions or ()) if operation else ()
        self.defaults = {
            v.variable.name.value: v.default_value.value
            for v in definitions
            if isinstance(v.default_value, IntValueNode)
        }
        self.fragments: dict[str, int] = {}
        self.dynamic = False  # a `first` is a variable

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.model.schema.get_root_type(operation.operation)
        return self.selections(operation.selection_set, root, False, None)

    def selections(
        self, selection_set: SelectionSetNode, parent: Any, introspecting: bool, sized: int | None
    ) -> int:
        """``sized``: the size of the connection whose selection this is (for `edges`)."""
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, introspecting, sized)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                inner = self.model.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, inner, introspecting, sized)
            else:
                total += self.fragments.get(selection.name.value, 0)
        return min(total, COST_CAP)

    def field(self, node: FieldNode, parent: Any, introspecting: bool, sized: int | None) -> int:
        name = node.name.value
        if node.selection_set is None:
            return 1
        if name in INTROSPECTION_ROOTS:
            inner = self.model.schema.get_type("__Schema" if name == "__schema" else "__Type")
            return 1 + self.selections(node.selection_set, inner, True, None)
        info = self.model._field(parent, name) if hasattr(parent, "fields") else None
        if info is None:  # unknown field or type: validation refuses it; count its fields
            inner_type = None
        else:
            inner_type = get_named_type(parent.fields[name].type)
        if introspecting or info is None:
            return 1 + self.selections(node.selection_set, inner_type, introspecting, None)
        if name == "edges" and _is_connection(parent):
            # A connection's edges reached through a fragment on the connection: its size
            # is not known there, so the largest page counts.
            size = sized if sized is not None else self.model.max_page_size
            return min(
                1 + size * self.selections(node.selection_set, inner_type, False, None), COST_CAP
            )
        if info.connection:
            size = self.size(node, info, self.model.default_page_size)
            return 1 + self.selections(node.selection_set, inner_type, False, size)
        if info.is_list:
            size = self.size(node, info, info.assumed_size) if info.has_first else info.assumed_size
            return min(
                1 + size * self.selections(node.selection_set, inner_type, False, None), COST_CAP
            )
        return 1 + self.selections(node.selection_set, inner_type, False, None)

    def size(self, node: FieldNode, info: _Field, fallback: int) -> int:
        value: Any = None
        for argument in node.arguments or ():
            if argument.name.value != "first":
                continue
            literal = argument.value
            if isinstance(literal, IntValueNode):
                value = int(literal.value)
            elif isinstance(literal, VariableNode):
                self.dynamic = True
                name = literal.name.value
                if isinstance(self.variables, Unknown):
                    return 0
                value = _whole(self.variables.get(name, self.defaults.get(name)))
        if value is None:
            value = info.first_default if info.first_default is not None else fallback
        return max(0, min(value, COST_CAP))


def _is_connection(type_: Any) -> bool:
    return (
        isinstance(type_, GraphQLObjectType)
        and "edges" in type_.fields
        and "pageInfo" in type_.fields
    )


def _whole(value: Any) -> int | None:
    """A variable's value (or the literal of its default) as a whole number, if it is one;
    anything else fails coercion later, and counts as the argument's default here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)  # an IntValueNode's text
    return None
