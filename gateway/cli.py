"""The ``bma-gateway`` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
        "--expose-restricted",
        action="store_true",
        help="serve personal and confidential fields of the synthetic data",
    )

    commands.add_parser("serve", help="run against the real systems (settings from BMA_* env)")

    args = parser.parse_args(argv)
    if args.command == "demo":
        return _demo(args)
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
            expose_restricted=args.expose_restricted,
        )
    )
    return 0


def _serve() -> int:
    import uvicorn

    from gateway.settings import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"bma-gateway: configuration error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(
        "gateway.app:create_app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="info",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
