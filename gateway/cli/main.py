"""The ``bma-gateway`` command: its parser, and the commands that run or check the gateway
(``demo``, ``serve``, ``config``, ``policy``); ``keys``/``token``, ``audit``, ``cache``,
``catalog`` and ``documents`` live in modules of their own."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from gateway.cli import audit as cli_audit
from gateway.cli import cache as cli_cache
from gateway.cli import catalog as cli_catalog
from gateway.cli import credentials as cli_credentials
from gateway.cli import documents as cli_documents


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bma-gateway", description="BMA Data Gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run everything locally with synthetic data")
    demo.add_argument("--database-url", help="an existing PostgreSQL server (default: embedded)")
    demo.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--traffy-port", type=int, default=0, help="stand-in port (default: free)")
    demo.add_argument(
        "--state-dir",
        type=Path,
        help="where the issuer key and the demo API key are kept (default: ~/.local/share/bma-gateway)",
    )

    commands.add_parser("serve", help="run against the real systems (settings from BMA_* env)")

    config = commands.add_parser("config", help="the settings read from the environment")
    config_commands = config.add_subparsers(dest="config_command", required=True)
    config_commands.add_parser(
        "check", help="read and check every setting (and the policy) as `serve` would, then exit"
    )
    docs = config_commands.add_parser(
        "docs", help="the settings' reference tables, made from their declarations"
    )
    docs.add_argument(
        "--write", type=Path, metavar="FILE", help="rewrite the tables inside FILE in place"
    )

    policy = commands.add_parser("policy", help="check or print the access policy")
    policy_commands = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_commands.add_parser("check", help="fail unless every schema field is classified")
    show = policy_commands.add_parser("show", help="the policy as a table")
    show.add_argument("--format", choices=["text", "csv", "markdown"], default="text")
    for sub in (check, show):
        sub.add_argument("--file", type=Path, help="a policy file (default: the shipped one)")
    cli_credentials.add_commands(commands)
    cli_audit.add_commands(commands)
    cli_cache.add_commands(commands)
    cli_catalog.add_commands(commands)
    cli_documents.add_commands(commands)

    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
    if args.command in ("keys", "token"):
        return cli_credentials.run(args)
    if args.command == "audit":
        return cli_audit.run(args)
    if args.command == "cache":
        return cli_cache.run(args)
    if args.command == "catalog":
        return cli_catalog.run(args)
    if args.command == "documents":
        return cli_documents.run(args)
    if args.command == "policy":
        return _policy(args)
    if args.command == "config":
        return _config_docs(args.write) if args.config_command == "docs" else _config_check()
    return _serve()


def _demo(args: argparse.Namespace) -> int:
    from gateway.demo.run import DemoOptions, run_demo

    run_demo(
        DemoOptions(
            database_url=args.database_url,
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            traffy_port=args.traffy_port,
            state_dir=args.state_dir,
        )
    )
    return 0


def _policy(args: argparse.Namespace) -> int:
    from policies.model import DEFAULT_POLICY, PolicyError, load_policy
    from policies.report import render
    from schema import check_policy, graphql_schema

    try:
        policy = load_policy(args.file or DEFAULT_POLICY)
        check_policy(policy, graphql_schema())
    except PolicyError as exc:
        print(f"bma-gateway: {exc}", file=sys.stderr)
        return 1
    if args.policy_command == "show":
        print(render(policy, args.format), end="")
    else:
        print(f"policy ok: {len(policy.rules)} fields classified")
    return 0


def _settings() -> Any:
    """The settings from the environment, or None after printing every problem."""
    from gateway.settings import ConfigError, Settings

    try:
        return Settings.from_env()
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"bma-gateway: configuration error: {problem}", file=sys.stderr)
        return None


def _config_docs(write: Path | None) -> int:
    from gateway.settings_reference import reference, rewritten

    if write is None:
        print(reference(), end="")
        return 0
    write.write_text(rewritten(write.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the settings tables in {write}", file=sys.stderr)
    return 0


def _config_check() -> int:
    """Everything `serve` checks before it starts, without starting: settings, the policy
    against the schema, the catalogue against both, the key files."""
    from gateway.audit.checkpoints import load_signing_key
    from gateway.audit.store import AuditStoreError, load_key
    from policies.catalog import CatalogError, load_catalog
    from policies.model import PolicyError, load_policy
    from schema import check_policy, graphql_schema

    settings = _settings()
    if settings is None:
        return 2
    try:
        policy = load_policy(Path(settings.policy_file)) if settings.policy_file else load_policy()
        schema = graphql_schema()
        check_policy(policy, schema)
        catalog = (
            load_catalog(Path(settings.catalog_file)) if settings.catalog_file else load_catalog()
        )
        catalog.check(policy, schema)
        if settings.audit_key_file:
            load_key(settings.audit_key_file)
        if settings.audit_checkpoint_key_file:
            load_signing_key(settings.audit_checkpoint_key_file)
    except (PolicyError, CatalogError, AuditStoreError) as exc:
        print(f"bma-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    audit = (
        "on"
        if settings.audit_store_url and settings.audit_key_file
        else "off (restricted data refused)"
    )
    print(
        f"configuration ok: policy {len(policy.rules)} fields ({settings.policy_mode}), "
        f"catalogue {len(catalog.datasets)} datasets, "
        f"audit {audit}, caches in {'Redis' if settings.redis_url else 'memory'}, "
        f"rate limits {'on' if settings.rate_limits else 'off'}, {settings.workers} worker(s)"
    )
    return 0


def _serve() -> int:
    import uvicorn

    from gateway.http.lifecycle import DrainingServer
    from gateway.http.serving import server_options
    from gateway.observability.logs import configure_logging

    settings = _settings()
    if settings is None:
        return 2
    configure_logging()
    options = {
        **server_options(settings),
        "log_config": None,  # configure_logging's JSON lines, in every worker
        # SIGTERM: stop accepting, let in-flight requests finish this long, then shut down
        # (the audit writer drains and the pools close in the app's lifespan).
        "timeout_graceful_shutdown": int(settings.shutdown_grace_seconds),
    }
    if settings.workers > 1:  # uvicorn's supervisor signals the workers: no drain window
        uvicorn.run(
            "gateway.http.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **options,
        )
    else:
        config = uvicorn.Config("gateway.http.app:create_app_from_env", factory=True, **options)
        DrainingServer(config, settings.drain_seconds).run()
    return 0
