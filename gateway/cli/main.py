"""The ``bma-gateway`` command: its parser, and the commands that run or check the gateway
(``demo``, ``serve``, ``config``, ``policy``); ``keys``/``token``, ``audit``, ``cache``,
``catalog``, ``schema`` and ``documents`` live in modules of their own."""

from __future__ import annotations

import argparse
import os
import sys
from importlib import metadata
from pathlib import Path

from gateway.cli import audit as cli_audit
from gateway.cli import cache as cli_cache
from gateway.cli import catalog as cli_catalog
from gateway.cli import credentials as cli_credentials
from gateway.cli import documents as cli_documents
from gateway.cli import schema as cli_schema
from gateway.cli.failures import FAILED, CommandError, Parser, report
from gateway.http import preflight
from gateway.http.preflight import POLICY_VARIABLE
from gateway.settings import ConfigError


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except CommandError as error:
        return report(error)
    except ConfigError as error:  # every problem found, one line each
        return report(CommandError("\n".join(f"configuration error: {p}" for p in error.problems)))
    except preflight.StartRefused as refused:
        return report(CommandError(refused.message, refused.status))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug: still one line, saying how to get the details
        if os.environ.get("BMA_TRACEBACK"):
            raise
        return report(
            CommandError(
                f"unexpected {type(exc).__name__}: {exc} (a bug: run again with "
                "BMA_TRACEBACK=1 for the traceback, and report it)",
                FAILED,
            )
        )


def parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bma-gateway", description="BMA Data Gateway")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run everything locally with synthetic data")
    demo.add_argument("--database-url", help="an existing PostgreSQL server (default: embedded)")
    demo.add_argument("--data-dir", type=Path, help="embedded PostgreSQL data directory")
    demo.add_argument("--host", help="listen address (default: BMA_HOST, else 127.0.0.1)")
    demo.add_argument("--port", type=int, help="listen port (default: BMA_PORT, else 8000)")
    demo.add_argument("--traffy-port", type=int, default=0, help="stand-in port (default: free)")
    demo.add_argument(
        "--state-dir",
        type=Path,
        help="where the issuer key and the demo API key are kept (default: ~/.local/share/bma-gateway)",
    )

    serve = commands.add_parser(
        "serve", help="run against the real systems (settings from BMA_* env)"
    )
    serve.add_argument("--host", help="listen address (default: BMA_HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (default: BMA_PORT, else 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default: BMA_WORKERS, else 1)"
    )

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
        sub.add_argument(
            "--file",
            type=Path,
            help="a policy file (default: BMA_POLICY_FILE, else the shipped one)",
        )
    cli_credentials.add_commands(commands)
    cli_audit.add_commands(commands)
    cli_cache.add_commands(commands)
    cli_catalog.add_commands(commands)
    cli_schema.add_commands(commands)
    cli_documents.add_commands(commands)
    return parser


def _version() -> str:
    try:
        return metadata.version("bma-gateway")
    except metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


def _run(args: argparse.Namespace) -> int:
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
    if args.command == "schema":
        return cli_schema.run(args)
    if args.command == "documents":
        return cli_documents.run(args)
    if args.command == "policy":
        return _policy(args)
    if args.command == "config":
        return _config_docs(args.write) if args.config_command == "docs" else _config_check()
    return _serve(args)


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
    """``policy check`` exits 1 when the policy fails the check, 2 when there is no policy
    to check (the file cannot be read or is not TOML)."""
    from policies.model import DEFAULT_POLICY, PolicyError, PolicyUnreadable, load_policy
    from policies.report import render
    from schema import check_policy, graphql_schema

    configured = os.environ.get(POLICY_VARIABLE, "").strip()
    path, where = (
        (args.file, "--file")
        if args.file
        else (Path(configured).expanduser(), POLICY_VARIABLE)
        if configured
        else (DEFAULT_POLICY, "the shipped policy")
    )
    try:
        policy = load_policy(path)
        check_policy(policy, graphql_schema())
    except PolicyUnreadable as exc:
        raise CommandError(f"{where} {path}: {'; '.join(exc.problems)}") from None
    except PolicyError as exc:  # read, and wrong: what to fix, one problem a line
        print(f"bma-gateway: {where} {path}: {len(exc.problems)} problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return FAILED
    if args.policy_command == "show":
        print(render(policy, args.format), end="")
    else:
        print(f"policy ok: {len(policy.rules)} fields classified")
    return 0


def _config_docs(write: Path | None) -> int:
    from gateway.settings_reference import reference, rewritten

    if write is None:
        print(reference(), end="")
        return 0
    try:
        write.write_text(rewritten(write.read_text(encoding="utf-8")), encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"--write {write}: {exc.strerror or exc}") from None
    print(f"rewrote the settings tables in {write}", file=sys.stderr)
    return 0


def _config_check() -> int:
    """Everything `serve` checks before it starts, without starting: settings, the policy
    against the schema, the catalogue against both, the key files; every problem at once."""
    checked = preflight.checked()
    settings = checked.settings
    audit = (
        "on"
        if settings.audit_store_url and settings.audit_key_file
        else "off (restricted data refused)"
    )
    print(
        f"configuration ok: policy {len(checked.policy.rules)} fields ({settings.policy_mode}), "
        f"catalogue {len(checked.catalog.datasets)} datasets, "
        f"audit {audit}, caches in {'Redis' if settings.redis_url else 'memory'}, "
        f"rate limits {'on' if settings.rate_limits else 'off'}, {settings.workers} worker(s)"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.http.lifecycle import DrainingServer
    from gateway.http.serving import server_options
    from gateway.observability.logs import configure_logging

    # Options win over the environment; the workers uvicorn starts read it too.
    given = {"BMA_HOST": args.host, "BMA_PORT": args.port, "BMA_WORKERS": args.workers}
    os.environ.update({name: str(value) for name, value in given.items() if value is not None})
    settings = preflight.checked().settings
    preflight.check_port(settings.host, settings.port, "BMA_PORT")
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
