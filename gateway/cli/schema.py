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
from gateway.http import preflight
from policies.model import Policy
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
    unknown = held - policy.scopes()
    if unknown:
        raise ValueError(
            f"unknown scope(s) {', '.join(sorted(unknown))}: the policy defines "
            f"{', '.join(sorted(policy.scopes()))}"
        )
    kind: AudienceKind = audience  # type: ignore[assignment]  # argparse chose from AUDIENCES
    return Principal(kind=kind, subject=f"schema-print:{audience}", clearance=level, scopes=held)


def _policy(file: Path | None, schema: GraphQLSchema) -> Policy:
    """The policy the gateway would run with, checked against ``schema`` as it would be;
    its problems on one line, each naming where the file came from."""
    problems: list[str] = []
    if file is not None:
        policy = preflight.policy_problems(file, "--file", schema, problems)
    else:
        configured = os.environ.get(preflight.POLICY_VARIABLE, "").strip()
        policy = preflight.policy_problems(configured, preflight.POLICY_VARIABLE, schema, problems)
    if policy is None:
        raise ValueError("; ".join(problems))
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
