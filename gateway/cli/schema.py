"""``bma-gateway schema print``: the SDL an audience may see, for client code generators.

It is the schema that audience's introspection answers (``gateway.execution.sdl``): what
its clearance and scopes may read, under the policy the gateway runs with (``--file``, else
``BMA_POLICY_FILE``, else the shipped one). A principal's purpose and district change which
rows and values it reads, never which fields exist, so they are not asked for. The SDL goes
to stdout alone; a note of whose schema it is goes to stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, get_args

from graphql import GraphQLSchema

from gateway.execution.sdl import schema_sdl
from policies.model import DEFAULT_POLICY, Policy, load_policy
from policies.principal import AudienceKind, Level, Principal
from policies.visibility import visible_schema

AUDIENCES: tuple[str, ...] = get_args(AudienceKind)
# Audiences that carry no token: they hold no scopes and read public fields only.
UNTOKENED = ("anonymous", "app")


def add_commands(commands: Any) -> None:
    schema = commands.add_parser("schema", help="the GraphQL schema each audience sees")
    actions = schema.add_subparsers(dest="action", required=True)
    printing = actions.add_parser(
        "print", help="the SDL an audience may see (what its introspection shows)"
    )
    printing.add_argument("--audience", required=True, choices=AUDIENCES)
    printing.add_argument(
        "--scopes", default="", help='a token\'s scopes, space-separated, e.g. "tax:read"'
    )
    printing.add_argument(
        "--clearance",
        choices=[level.label for level in Level],
        default="public",
        help="a token's clearance (default: public)",
    )
    printing.add_argument(
        "--file", type=Path, help="a policy file (default: BMA_POLICY_FILE, else the shipped one)"
    )
    printing.set_defaults(handler=_print)


def run(args: argparse.Namespace) -> int:
    try:
        status: int = args.handler(args)
        return status
    except (ValueError, OSError) as exc:  # PolicyError is a ValueError
        print(f"bma-gateway: {exc}", file=sys.stderr)
        return 2


def principal_for(audience: str, scopes: str, clearance: str, policy: Policy) -> Principal:
    """A principal of ``audience`` holding ``scopes`` and ``clearance``; ValueError for
    grants the audience cannot hold or scopes the policy does not define."""
    held = frozenset(scopes.split())
    level = Level.parse(clearance)
    if audience in UNTOKENED and (held or level > Level.PUBLIC):
        raise ValueError(
            f"an {audience} caller holds no scopes and reads public fields only: "
            "drop --scopes and --clearance, or choose --audience partner or agency"
        )
    unknown = held - defined_scopes(policy)
    if unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(sorted(unknown))}: the policy defines "
            f"{', '.join(sorted(defined_scopes(policy)))}"
        )
    kind: AudienceKind = audience  # type: ignore[assignment]  # argparse chose from AUDIENCES
    return Principal(kind=kind, subject=f"schema-print:{audience}", clearance=level, scopes=held)


def defined_scopes(policy: Policy) -> frozenset[str]:
    """Every scope a field of the policy asks for."""
    found: set[str] = set()
    for dataset in policy.datasets.values():
        found |= dataset.scopes | dataset.personal_scopes
    for rule in policy.rules.values():
        found |= rule.scopes
    return frozenset(found)


def _policy(file: Path | None, schema: GraphQLSchema) -> Policy:
    """The policy the gateway would run with, checked against ``schema`` as it would be."""
    from schema import check_policy

    configured = os.environ.get("BMA_POLICY_FILE", "").strip()
    path = file or (Path(configured) if configured else DEFAULT_POLICY)
    try:
        policy = load_policy(path)
    except OSError as exc:
        raise ValueError(f"cannot read the policy file {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # a PolicyError, or TOML that does not parse
        raise ValueError(f"the policy file {path} is not valid: {exc}") from None
    check_policy(policy, schema)
    return policy


def _print(args: argparse.Namespace) -> int:
    from schema import graphql_schema

    schema = graphql_schema()
    policy = _policy(args.file, schema)
    principal = principal_for(args.audience, args.scopes, args.clearance, policy)
    sys.stdout.write(schema_sdl(visible_schema(schema, policy, principal)))
    grants = f"clearance {principal.clearance.label}"
    if principal.scopes:
        grants += f", scopes {' '.join(sorted(principal.scopes))}"
    print(f"the schema the {args.audience} audience sees with {grants}", file=sys.stderr)
    return 0
