"""Before parsing: the document's tokens and the variables' nesting, read in one pass each.

``scan`` reads the document's tokens once — tokens (comments counted apart), aliases,
directives, fragment spreads, the nesting of fields within one definition and of values in
arguments — and stops at the first limit exceeded, so a document of a million tokens or
nested 1,000 deep costs what its first few hundred tokens cost, and the parser never sees
it. ``nested_deeper_than`` bounds the variables' values the same way, without recursion.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from gateway.errors import (
    LimitExceeded,
    QueryTooDeep,
    TooManyAliases,
    TooManyDirectives,
    TooManyFragmentSpreads,
    TooManyTokens,
    VariablesTooDeep,
)
from gateway.limits.config import OperationLimits

# GraphQL's lexical grammar as one expression: what is ignored (white space, line ends,
# commas, comments, the BOM), then one token. graphql-core's Lexer builds an object per token
# in Python; this finds a token in one step of the regex engine: ~5x faster, so a hostile
# document is refused in a fraction of the time (tests/limits/test_scan.py checks that both
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
_VALUE_OPENS = frozenset({"[", "{"})
_VALUE_CLOSES = frozenset({"]", "}"})


def tokens(text: str) -> Iterator[tuple[str, str]]:
    """The document's tokens as (kind, text): kind is the punctuator itself, ``name`` or
    ``value``. Stops early, without error, where the text is not GraphQL."""
    pos = 0
    match = _TOKEN.match
    while (found := match(text, pos)) is not None:
        kind = found.lastgroup
        if kind is None or kind == "end":
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
    parens = depth = values = 0  # values: lists and objects open in an argument's value
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
                return TooManyFragmentSpreads(
                    f"the document spreads fragments more than {limits.max_fragment_spreads} times",
                    limits.max_fragment_spreads,
                )
        if kind == "(":
            parens += 1
        elif kind == ")":
            parens -= 1
        elif parens and kind in _VALUE_OPENS:
            # The parser recurses into a value: bounded here, so it never runs out of stack.
            values += 1
            if values > limits.max_depth:
                return QueryTooDeep(
                    f"an argument's value nests more than {limits.max_depth} levels deep; "
                    f"the limit is {limits.max_depth}",
                    limits.max_depth,
                )
        elif parens and kind in _VALUE_CLOSES:
            values -= 1
        elif kind == "@":
            directives += 1
            if directives > limits.max_directives:
                return TooManyDirectives(
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
                    return TooManyAliases(
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


def too_deep(limit: int, actual: int | None = None) -> QueryTooDeep:
    found = f"{actual}" if actual is not None else f"more than {limit}"
    return QueryTooDeep(f"the query nests {found} fields deep; the limit is {limit}", limit, actual)


def too_many_tokens(limit: int, what: str = "tokens") -> TooManyTokens:
    return TooManyTokens(
        f"the document holds more than {limit} {what}; the limit is {limit}", limit
    )


def variables_too_deep(limits: OperationLimits) -> VariablesTooDeep:
    limit = limits.max_variable_depth
    return VariablesTooDeep(f"the variables nest more than {limit} levels deep", limit)
