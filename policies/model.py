"""The classification model: datasets, field rules, and the decision for one principal.

The policy file (``policies/policy.toml``) classifies every field of every type. This module
loads it, checks it against a schema (every field classified, nothing classified that does
not exist; a field derived from others no more restricted than they are), and decides per
field and principal: allow, mask, or deny — and why.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_non_null_type,
)

from policies.masks import MASKS
from policies.principal import Level, Principal
from policies.row_scope import DIMENSIONS

DEFAULT_POLICY = Path(__file__).with_name("policy.toml")
TAGS = frozenset({"personal", "sensitive"})


class PolicyError(ValueError):
    """The policy file is malformed or does not match the schema; lists every problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("policy problems:\n  " + "\n  ".join(problems))
        self.problems = problems


class PolicyUnreadable(PolicyError):
    """There is no policy to check: the file cannot be read, or is not TOML."""


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    scopes: frozenset[str]  # to read any non-public field of the dataset
    personal_scopes: frozenset[str]  # also, to read its personal fields unmasked
    purposes: frozenset[str]  # purposes for which its personal fields may be read


@dataclass(frozen=True)
class Purpose:
    """A purpose principals may declare, and the lawful basis it rests on (PDPA s.24/s.26)."""

    name: str
    basis: str  # a code such as "pdpa-24-4", recorded with every audited read
    description: str = ""


@dataclass(frozen=True)
class FieldRule:
    type_name: str
    field_name: str
    dataset: Dataset
    level: Level
    tags: frozenset[str] = frozenset()
    mask: str | None = None
    scopes: frozenset[str] = frozenset()  # beyond the dataset's
    # Alternative sets of fields ("Type.field") this one can be computed from exactly.
    derived_from: tuple[tuple[str, ...], ...] = ()

    @property
    def coordinate(self) -> str:
        return f"{self.type_name}.{self.field_name}"

    @property
    def personal(self) -> bool:
        return "personal" in self.tags or "sensitive" in self.tags

    @property
    def open(self) -> bool:
        """Readable by anyone: public and not personal."""
        return self.level == Level.PUBLIC and not self.personal


@dataclass(frozen=True)
class ClearAccess:
    """What reading a field, or several fields together, in clear requires."""

    level: Level = Level.PUBLIC
    scopes: frozenset[str] = frozenset()
    purposes: frozenset[str] | None = None  # one of these must be declared; None: no purpose

    @classmethod
    def of(cls, rule: FieldRule) -> ClearAccess:
        if rule.open:
            return cls()
        scopes = rule.dataset.scopes | rule.scopes
        if not rule.personal:
            return cls(rule.level, scopes)
        return cls(rule.level, scopes | rule.dataset.personal_scopes, rule.dataset.purposes)

    @classmethod
    def together(cls, accesses: Iterable[ClearAccess]) -> ClearAccess:
        """To read all of them: the highest level, every scope, a purpose they all accept."""
        level, scopes, purposes = Level.PUBLIC, frozenset[str](), None
        for a in accesses:
            level, scopes = max(level, a.level), scopes | a.scopes
            if a.purposes is not None:
                purposes = a.purposes if purposes is None else purposes & a.purposes
        return cls(level, scopes, purposes)

    def exceeds(self, other: ClearAccess) -> bool:
        """Some principal that may read ``other`` in clear may not read this."""
        purpose_needed = self.purposes is not None and (
            other.purposes is None or not other.purposes <= self.purposes
        )
        return self.level > other.level or not self.scopes <= other.scopes or purpose_needed

    def __str__(self) -> str:
        needs = [f"clearance {self.level.name.lower()}"] if self.level > Level.PUBLIC else []
        if self.scopes:
            needs.append(f"scopes {' '.join(sorted(self.scopes))}")
        if self.purposes is not None:
            needs.append(f"a purpose: one of {', '.join(sorted(self.purposes))}")
        return " and ".join(needs) or "nothing (public)"


class Decision(Enum):
    ALLOW = "allow"
    MASK = "mask"
    DENY = "deny"
    PURPOSE_REQUIRED = "purpose_required"


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    rule: FieldRule
    grant: str = ""  # what would grant full access, for the error message


@dataclass(frozen=True)
class Policy:
    datasets: Mapping[str, Dataset]
    rules: Mapping[tuple[str, str], FieldRule]
    purposes: Mapping[str, Purpose] = field(default_factory=dict)
    # Row-scoped types and what scopes them (``row_scope`` on a type): type -> dimension.
    row_scopes: Mapping[str, str] = field(default_factory=dict)

    def lawful_basis(self, purpose: str | None) -> str | None:
        """The lawful basis of a declared purpose; None when none or unknown was declared."""
        known = self.purposes.get(purpose) if purpose else None
        return known.basis if known else None

    def rule(self, type_name: str, field_name: str) -> FieldRule | None:
        return self.rules.get((type_name, field_name))

    def scopes(self) -> frozenset[str]:
        """Every scope the policy grants something for: its datasets' and its fields' own."""
        named = [d.scopes | d.personal_scopes for d in self.datasets.values()]
        named += [r.scopes for r in self.rules.values()]
        return frozenset().union(*named)

    def check(self, schema: GraphQLSchema) -> None:
        """Raise PolicyError naming every unclassified field and every unknown one."""
        problems = []
        in_schema = set(_schema_fields(schema))
        for type_name, field_name in sorted(in_schema - set(self.rules)):
            problems.append(f"unclassified field {type_name}.{field_name}")
        for type_name, field_name in sorted(set(self.rules) - in_schema):
            problems.append(
                f"policy names {type_name}.{field_name}, which the schema does not have"
            )
        for (type_name, field_name), rule in sorted(self.rules.items()):
            if (type_name, field_name) not in in_schema or rule.open:
                continue
            type_ = schema.type_map[type_name]
            assert isinstance(type_, GraphQLObjectType)  # _schema_fields lists object types only
            schema_field = type_.fields[field_name]
            if is_non_null_type(schema_field.type):
                problems.append(
                    f"{rule.coordinate} is {rule.level.name.lower()} but non-null: a denied "
                    "field answers null, so restricted fields must be nullable"
                )
        problems += self._row_scope_problems(schema)
        if problems:
            raise PolicyError(problems)

    def _row_scope_problems(self, schema: GraphQLSchema) -> list[str]:
        """A row-scoped type is an object type that says where its rows belong in an open
        field, belongs to no union or interface, and is reached as itself or a flat list."""
        problems = []
        for type_name, dimension in sorted(self.row_scopes.items()):
            type_ = schema.type_map.get(type_name)
            if not isinstance(type_, GraphQLObjectType):
                problems.append(f"row_scope on {type_name}, which is no object type")
                continue
            place = self.rule(type_name, dimension)
            if place is None or not place.open:
                problems.append(
                    f"{type_name} is row-scoped by {dimension}: it needs an open field "
                    f"{type_name}.{dimension}"
                )
            if type_.interfaces or any(
                isinstance(u, GraphQLUnionType) and type_ in u.types
                for u in schema.type_map.values()
            ):
                problems.append(f"{type_name} is row-scoped: it may not be in a union or interface")
        for coordinate, field_ in _schema_field_defs(schema):
            if get_named_type(field_.type).name in self.row_scopes and _list_depth(field_) > 1:
                problems.append(f"{coordinate} is a nested list of a row-scoped type")
        return problems

    def row_scope(self, type_name: str) -> str | None:
        """What rows of ``type_name`` are scoped by; None for a type that is not a row."""
        return self.row_scopes.get(type_name)

    def decide(self, rule: FieldRule, principal: Principal) -> Verdict:
        """Allow, mask or deny; ``grant`` says everything full access would still need."""
        if rule.open:
            return Verdict(Decision.ALLOW, rule)
        missing = (rule.dataset.scopes | rule.scopes) - principal.scopes
        purpose_ok = not rule.personal or principal.purpose in rule.dataset.purposes
        clear_needs = self._clear_access_needs(rule, principal, missing)
        if not purpose_ok:
            allowed = ", ".join(sorted(rule.dataset.purposes))
            clear_needs.append(f"a declared purpose: one of {allowed}")
        grant = " and ".join(clear_needs)
        if missing:
            return Verdict(Decision.DENY, rule, grant)
        if not purpose_ok:
            return Verdict(Decision.PURPOSE_REQUIRED, rule, grant)
        if not clear_needs:
            return Verdict(Decision.ALLOW, rule)
        if rule.mask and principal.clearance >= Level.INTERNAL:
            return Verdict(Decision.MASK, rule, grant)
        return Verdict(Decision.DENY, rule, grant)

    def _clear_access_needs(
        self, rule: FieldRule, principal: Principal, missing: frozenset[str]
    ) -> list[str]:
        needs = []
        scopes = set(missing)
        if rule.personal:
            scopes |= rule.dataset.personal_scopes - principal.scopes
        if scopes:
            needs.append(f"scopes {' '.join(sorted(scopes))}")
        if principal.clearance < rule.level:
            needs.append(f"clearance {rule.level.name.lower()}")
        return needs

    def table(self) -> list[dict[str, str]]:
        """One row per field, for the data governance committee and the open-data catalog."""
        return [
            {
                "type": r.type_name,
                "field": r.field_name,
                "level": r.level.name.lower(),
                "tags": " ".join(sorted(r.tags)),
                "mask": r.mask or "",
                "dataset": r.dataset.name,
                "scopes": " ".join(sorted(r.dataset.scopes | r.scopes)) if not r.open else "",
                "derived_from": " | ".join(", ".join(s) for s in r.derived_from),
            }
            for r in sorted(self.rules.values(), key=lambda r: (r.type_name, r.field_name))
        ]


def load_policy(path: Path = DEFAULT_POLICY) -> Policy:
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except OSError as exc:
        raise PolicyUnreadable([f"cannot read {str(path)!r}: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyUnreadable([f"{str(path)!r} is not valid TOML: {exc}"]) from None
    problems: list[str] = []
    purposes = {
        name: _purpose(name, spec, problems) for name, spec in raw.get("purposes", {}).items()
    }
    datasets = {name: _dataset(name, spec) for name, spec in raw.get("datasets", {}).items()}
    for dataset in datasets.values():
        for name in sorted(dataset.purposes - set(purposes)):
            problems.append(
                f"dataset {dataset.name} names purpose {name!r}, which [purposes] does not "
                "define with its lawful basis"
            )
    rules: dict[tuple[str, str], FieldRule] = {}
    row_scopes: dict[str, str] = {}
    for type_name, spec in raw.get("types", {}).items():
        named = datasets.get(spec.get("dataset", ""))
        if named is None:
            problems.append(f"type {type_name} names no known dataset ({spec.get('dataset')!r})")
            continue
        scope = spec.get("row_scope")
        if scope is not None and scope not in DIMENSIONS:
            problems.append(
                f"type {type_name}: row_scope must be one of {', '.join(sorted(DIMENSIONS))}, "
                f"not {scope!r}"
            )
        elif scope is not None:
            row_scopes[type_name] = scope
        dataset = named
        for field_name, entry in spec.get("fields", {}).items():
            rule = _rule(type_name, field_name, dataset, entry, problems)
            if rule:
                rules[(type_name, field_name)] = rule
    problems += _derivation_problems(rules)
    if problems:
        raise PolicyError(problems)
    return Policy(datasets, rules, purposes, row_scopes)


def _purpose(name: str, spec: Any, problems: list[str]) -> Purpose:
    basis = spec.get("basis") if isinstance(spec, dict) else None
    if not isinstance(basis, str) or not basis.strip():
        problems.append(f"purpose {name}: `basis` (its lawful basis code) is required")
        basis = ""
    return Purpose(name, basis, spec.get("description", "") if isinstance(spec, dict) else "")


def _dataset(name: str, spec: Mapping[str, Any]) -> Dataset:
    return Dataset(
        name=name,
        description=spec.get("description", ""),
        scopes=frozenset(spec.get("scopes", ())),
        personal_scopes=frozenset(spec.get("personal_scopes", ())),
        purposes=frozenset(spec.get("purposes", ())),
    )


def _rule(
    type_name: str, field_name: str, dataset: Dataset, entry: Any, problems: list[str]
) -> FieldRule | None:
    spec = {"level": entry} if isinstance(entry, str) else dict(entry)
    where = f"{type_name}.{field_name}"
    try:
        level = Level[str(spec.get("level", "")).upper()]
    except KeyError:
        problems.append(f"{where}: level must be public, internal, confidential or secret")
        return None
    tags = frozenset(spec.get("tags", ()))
    if tags - TAGS:
        problems.append(f"{where}: unknown tags {sorted(tags - TAGS)}")
    mask = spec.get("mask")
    if mask is not None and mask not in MASKS:
        problems.append(f"{where}: unknown mask {mask!r} (known: {', '.join(sorted(MASKS))})")
    if level == Level.PUBLIC and tags & {"personal", "sensitive"}:
        problems.append(f"{where}: personal data cannot be public")
    return FieldRule(
        type_name,
        field_name,
        dataset,
        level,
        tags,
        mask,
        frozenset(spec.get("scopes", ())),
        _derived_from(where, spec.get("derived_from"), problems),
    )


def _derived_from(where: str, raw: Any, problems: list[str]) -> tuple[tuple[str, ...], ...]:
    """``derived_from``: field names (of the same type, or ``Type.field``), or a list of such
    lists when the field can be computed from any one of several sets of fields."""
    if raw is None:
        return ()
    sets = raw if isinstance(raw, list) and raw and all(isinstance(s, list) for s in raw) else [raw]
    if not all(
        isinstance(s, list) and s and all(isinstance(n, str) and n for n in s) for s in sets
    ):
        problems.append(f"{where}: derived_from is a list of field names, or a list of such lists")
        return ()
    type_name = where.partition(".")[0]
    return tuple(tuple(n if "." in n else f"{type_name}.{n}" for n in s) for s in sets)


def _derivation_problems(rules: Mapping[tuple[str, str], FieldRule]) -> list[str]:
    """A field computable from others may be no more restricted than the least restricted set
    of its inputs: whoever may read the inputs can compute it, whatever its own level."""
    problems = []
    by_coordinate = {r.coordinate: r for r in rules.values()}
    for rule in sorted(rules.values(), key=lambda r: r.coordinate):
        for inputs in rule.derived_from:
            unknown = [c for c in inputs if c not in by_coordinate or c == rule.coordinate]
            if unknown:
                problems.append(
                    f"{rule.coordinate}: derived_from names {', '.join(unknown)}, which is not "
                    "another classified field"
                )
                continue
            needs = ClearAccess.of(rule)
            inputs_need = ClearAccess.together(ClearAccess.of(by_coordinate[c]) for c in inputs)
            if needs.exceeds(inputs_need):
                problems.append(
                    f"{rule.coordinate} needs {needs}, but it is derived from "
                    f"{', '.join(inputs)}, which need {inputs_need}: classify it no more "
                    "restricted than its inputs"
                )
    return problems


def _schema_fields(schema: GraphQLSchema) -> Iterable[tuple[str, str]]:
    for name, type_ in schema.type_map.items():
        if isinstance(type_, GraphQLObjectType) and not name.startswith("__"):
            for field_name in type_.fields:
                yield name, field_name


def _schema_field_defs(schema: GraphQLSchema) -> Iterable[tuple[str, GraphQLField]]:
    for type_name, field_name in _schema_fields(schema):
        type_ = schema.type_map[type_name]
        assert isinstance(type_, GraphQLObjectType)
        yield f"{type_name}.{field_name}", type_.fields[field_name]


def _list_depth(field_: GraphQLField) -> int:
    depth, type_ = 0, field_.type
    while isinstance(type_, GraphQLNonNull | GraphQLList):
        depth += isinstance(type_, GraphQLList)
        type_ = type_.of_type
    return depth
