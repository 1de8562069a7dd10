"""The limits' token scan reads a document as graphql-core's lexer does."""

from __future__ import annotations

import random

import pytest
from graphql import GraphQLSyntaxError, Source, get_introspection_query
from graphql.language import Lexer, TokenKind

from gateway.errors import QUERY_TOO_DEEP, TOO_MANY_ALIASES, TOO_MANY_TOKENS
from gateway.limits.config import DEFAULTS
from gateway.limits.scan import scan, tokens

DOCUMENTS = [
    "{ districts { code nameTh } }",
    'query Q($id: ID! = "1", $n: [Int!]! = [1, -2, 0, 3.5e-2]) { parcel(id: $id) { id } }',
    "fragment F on District { code ...G ... on District { nameTh } ... @include(if: true) { x } }",
    '{ a(s: "esc \\" \\\\ \\u00e9 \\n", b: """block " "" \\""" still \n line""") }',
    "# a comment, with commas\n{ a , b ,, c # trailing\r\n d }",
    "\ufeff{ __typename }",
    "mutation { a(x: {k: [1 2 3], n: null, e: ENUM, t: true}) @skip(if: false) }",
    "{ a: b c: d(e: 1) { f: g } }",
    "subscription S { s }",
    get_introspection_query(descriptions=True),
    '{ x(v: """""") y(v: "") z(v: 0) w(v: -0.0) }',
]


def graphql_core_tokens(text: str) -> list[str]:
    lexer, found = Lexer(Source(text)), []
    token = lexer.advance()
    while token.kind is not TokenKind.EOF:
        found.append(text[token.start : token.end])
        token = lexer.advance()
    return found


@pytest.mark.parametrize("text", DOCUMENTS)
def test_the_same_tokens_as_graphql_core(text: str):
    assert [token for _, token in tokens(text)] == graphql_core_tokens(text)


def test_token_kinds():
    assert list(tokens('...on T @d(x: "s") { n: 1 }')) == [
        ("...", "..."),
        ("name", "on"),
        ("name", "T"),
        ("@", "@"),
        ("name", "d"),
        ("(", "("),
        ("name", "x"),
        (":", ":"),
        ("value", '"s"'),
        (")", ")"),
        ("{", "{"),
        ("name", "n"),
        (":", ":"),
        ("value", "1"),
        ("}", "}"),
    ]


@pytest.mark.parametrize("text", ['{ a(s: "unterminated) }', "{ a ~ b }", '{ a(s: """open) }'])
def test_what_is_not_graphql_is_left_to_the_parser(text: str):
    with pytest.raises(GraphQLSyntaxError):
        graphql_core_tokens(text)
    assert scan(text, DEFAULTS["anonymous"]) is None


def test_the_limits_it_reports():
    limits = DEFAULTS["anonymous"]
    deep = "{ a " * (limits.max_depth + 1) + "}" * (limits.max_depth + 1)
    assert scan(deep, limits).error == QUERY_TOO_DEEP
    # Inline fragments and arguments' braces are not levels.
    shallow = "{ a { ... on T { ... { b(x: {y: {z: 1}}) } } } }"
    assert scan(shallow, limits) is None
    aliases = "{ " + " ".join(f"a{i}: b" for i in range(limits.max_aliases + 1)) + " }"
    assert scan(aliases, limits).error == TOO_MANY_ALIASES
    many = "{ " + "a " * limits.max_tokens + "}"
    assert scan(many, limits).error == TOO_MANY_TOKENS
    # Strings and comments are one token each, whatever they hold.
    assert scan('{ a(s: "' + "{ " * 1000 + '") }', limits) is None


def test_random_documents_read_the_same_as_graphql_core():
    """Seeded random token soups: wherever graphql-core reads one, the scan reads the same."""
    pieces = ["{", "}", "(", ")", ":", "...", '"x"', '"""b\\""" q"""', " ", "\n", ",", "@"]
    pieces += ["$", "!", "=", "|", "&", "name", "on", "0", "-1.5e3", "12", "#c\n", '"\\u00e9"']
    rnd, compared = random.Random(2), 0
    for _ in range(3000):
        text = "".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
        try:
            expected = graphql_core_tokens(text)
        except GraphQLSyntaxError:
            continue
        assert [token for _, token in tokens(text)] == expected, text
        compared += 1
    assert compared > 1000
