"""``package_search``'s query language over package dicts: the part of CKAN's Solr syntax
harvesters and portals send.

``q`` and ``fq`` hold terms: ``field:value``, ``field:"a phrase"``, ``field:val*``,
``field:[A TO B]`` (``{}`` exclusive, ``*`` open), or a bare word (free text over titles,
notes, tags and the organisation, case-insensitively). ``AND`` binds tightest, then ``OR``,
then terms side by side, which must all hold: the harvester's ``a OR b c`` is ``(a OR b)
AND c``. ``NOT``, ``-`` and parentheses as in Solr. As in CKAN, where every field is
indexed, a field no dataset has matches nothing; a query that does not parse is a
``SearchQueryError``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from functools import partial
from typing import Any

Package = dict[str, Any]
Predicate = Callable[[Package], bool]

TOKEN = re.compile(
    r"""\s*(?:
      (?P<open>\()|(?P<close>\))
    | (?P<term>[+-]?(?:[\w.]+:)?(?:"(?:[^"\\]|\\.)*"|[\[{][^\]}]*[\]}]|(?:[^\s()"\\]|\\.)+))
    )""",
    re.VERBOSE,
)
RANGE = re.compile(r"^([\[{])\s*(\S+)\s+TO\s+(\S+)\s*([\]}])$")
SORTABLE = {
    "id",
    "name",
    "title",
    "title_string",
    "metadata_modified",
    "metadata_created",
    "num_resources",
    "num_tags",
    "score",
}


class SearchQueryError(ValueError):
    """The query does not parse (CKAN answers 400)."""


class SearchError(ValueError):
    """The query parses but cannot be run, such as a sort on an unknown field (CKAN: 409)."""


def compile_query(text: str) -> Predicate:
    tokens = _tokens(text)
    if not tokens:
        return lambda _p: True
    parser = _Parser(tokens)
    predicate = parser.expression()
    if parser.position != len(tokens):
        raise SearchQueryError(f"unexpected {tokens[parser.position]!r} in {text!r}")
    return predicate


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SearchQueryError(f"cannot parse {text[position:]!r}")
        tokens.append(match.group(match.lastgroup or "term"))
        position = match.end()
        while position < len(text) and text[position].isspace():
            position += 1
    return tokens


class _Parser:
    """expression := disjunction+ (side by side: all must hold);
    disjunction := conjunction (OR conjunction)*; conjunction := unary (AND unary)*;
    unary := [NOT] primary; primary := ( expression ) | [+-]term.

    Side by side binds loosest: CKAN's harvester joins its filters with spaces
    ("organization:a OR organization:b metadata_modified:[… TO *]") meaning each filter
    must hold."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.position = 0

    def peek(self) -> str | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> str:
        token = self.peek()
        if token is None:
            raise SearchQueryError("the query ends too early")
        self.position += 1
        return token

    def expression(self) -> Predicate:
        parts = [self.disjunction()]
        while self.peek() not in (None, ")"):
            parts.append(self.disjunction())
        return _all(parts)

    def disjunction(self) -> Predicate:
        alternatives = [self.conjunction()]
        while self.peek() in ("OR", "||"):
            self.take()
            alternatives.append(self.conjunction())
        if len(alternatives) == 1:
            return alternatives[0]
        return lambda p: any(a(p) for a in alternatives)

    def conjunction(self) -> Predicate:
        parts = [self.unary()]
        while self.peek() in ("AND", "&&"):
            self.take()
            parts.append(self.unary())
        return _all(parts)

    def unary(self) -> Predicate:
        token = self.peek()
        if token in ("NOT", "!"):
            self.take()
            inner = self.primary()
            return lambda p: not inner(p)
        return self.primary()

    def primary(self) -> Predicate:
        token = self.take()
        if token == "(":
            inner = self.expression()
            if self.take() != ")":
                raise SearchQueryError("a parenthesis is not closed")
            return inner
        if token in (")", "AND", "OR", "&&", "||"):
            raise SearchQueryError(f"unexpected {token!r}")
        negated = token.startswith("-")
        predicate = _term(token.lstrip("+-"))
        return (lambda p: not predicate(p)) if negated else predicate


def _all(parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    return lambda p: all(part(p) for part in parts)


def _term(token: str) -> Predicate:
    field, sep, value = token.partition(":")
    if not sep or not re.fullmatch(r"[\w.]+", field):
        words = _unquote(token).casefold()
        return lambda p: words in free_text(p)
    if value.startswith(("[", "{")):
        return _range(field, value)
    wanted = _unquote(value)
    if value.startswith('"'):
        return lambda p: any(str(v).casefold() == wanted.casefold() for v in values(p, field))
    return lambda p: any(
        fnmatchcase(str(v).casefold(), wanted.casefold()) for v in values(p, field)
    )


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return re.sub(r"\\(.)", r"\1", value)


def _range(field: str, value: str) -> Predicate:
    match = RANGE.match(value)
    if match is None:
        raise SearchQueryError(f"not a range: {value!r} (write [FROM TO UNTIL])")
    low, high = _bound(match.group(2)), _bound(match.group(3))
    low_open, high_open = match.group(1) == "{", match.group(4) == "}"

    def within(p: Package) -> bool:
        for found in values(p, field):
            v = _comparable(found, low if low is not None else high)
            if v is None:
                continue
            if low is not None and (v < low or (low_open and v == low)):
                continue
            if high is not None and (v > high or (high_open and v == high)):
                continue
            return True
        return False

    return within


def _bound(text: str) -> Any:
    if text == "*":
        return None
    moment = _moment(text)
    if moment is not None:
        return moment
    try:
        return float(text)
    except ValueError:
        raise SearchQueryError(f"{text!r} is neither a time (ISO 8601), a number nor *") from None


def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _comparable(value: Any, like: Any) -> Any:
    if isinstance(like, datetime):
        return _moment(str(value))
    if isinstance(like, float):
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    return None


def values(package: Package, field: str) -> list[Any]:
    """What a field holds in the search index: one value or several (tags, formats)."""
    if field == "tags":
        return [t["name"] for t in package["tags"]]
    if field == "res_format":
        return [r["format"] for r in package["resources"]]
    if field in ("organization", "owner_org") and package.get("organization"):
        return [package["organization"]["name"] if field == "organization" else package[field]]
    if field == "groups":
        return [g["name"] for g in package.get("groups", [])]
    found = package.get(field)
    if found is None or isinstance(found, dict):
        return []
    return [v for v in found if not isinstance(v, dict)] if isinstance(found, list) else [found]


def free_text(package: Package) -> str:
    """What a bare word is looked for in, lower-cased: both languages."""
    parts = [
        package["name"],
        *package["title_translated"].values(),
        *package["notes_translated"].values(),
        *values(package, "tags"),
        package["organization"]["title"],
        *package["organization"]["title_translated"].values(),
    ]
    return "\n".join(str(p) for p in parts).casefold()


def score(package: Package, q: str) -> int:
    """How many of the query's bare words the package holds (CKAN's relevance, roughly)."""
    text = free_text(package)
    return sum(1 for word in q.split() if ":" not in word and word.casefold() in text)


def sort_packages(packages: list[Package], sort: str, q: str) -> list[Package]:
    """Sorted by CKAN's ``sort`` ("name asc, metadata_modified desc"); ties by id, so a
    page of a search is the same page on every call."""
    keys: list[tuple[str, bool]] = []
    for part in sort.split(","):
        words = part.split()
        if not words:
            continue
        field, direction = words[0], (words[1] if len(words) > 1 else "asc").lower()
        if field not in SORTABLE or direction not in ("asc", "desc") or len(words) > 2:
            raise SearchError(
                f"cannot sort on {part.strip()!r}: sort by one of "
                f"{', '.join(sorted(SORTABLE))}, then asc or desc"
            )
        keys.append((field, direction == "desc"))
    ordered = sorted(packages, key=lambda p: p["id"])
    for field, descending in reversed(keys):
        ordered.sort(key=partial(_sort_value, field=field, q=q), reverse=descending)
    return ordered


def _sort_value(package: Package, field: str, q: str) -> Any:
    if field == "score":
        return score(package, q)
    if field == "title_string":
        return str(package["title"]).casefold()
    return package[field]


def facets(
    packages: Iterable[Package], fields: list[str], limit: int, names: dict[str, dict[str, str]]
) -> tuple[dict[str, dict[str, int]], dict[str, Any]]:
    """CKAN's ``facets`` ({field: {value: count}}) and ``search_facets`` (items with their
    display names, most frequent first), over every match, not only the page."""
    counted = {field: Counter[str]() for field in fields}
    for package in packages:
        for field in fields:
            counted[field].update({str(v) for v in values(package, field)})
    plain: dict[str, dict[str, int]] = {}
    described: dict[str, Any] = {}
    for field, counts in counted.items():
        top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        top = top if limit < 0 else top[:limit]
        plain[field] = dict(top)
        described[field] = {
            "title": field,
            "items": [
                {"name": v, "display_name": names.get(field, {}).get(v, v), "count": n}
                for v, n in top
            ],
        }
    return plain, described
