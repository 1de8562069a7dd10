"""``bma-gateway cache clear [--connector NAME]``: empty the shared (Redis) caches."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import Any

from connectors import redis_client
from connectors.cache import CONNECTORS, DEFAULT_TTLS, CacheSettings, CacheStore

CHOICES = (*CONNECTORS, "response")


def add_commands(commands: Any) -> None:
    cache = commands.add_parser("cache", help="the caches of upstream answers and responses")
    actions = cache.add_subparsers(dest="action", required=True)
    clear = actions.add_parser("clear", help="empty the caches in Redis (REDIS_URL)")
    clear.add_argument(
        "--connector",
        choices=CHOICES,
        action="append",
        help="only this connector's caches, or the response cache (repeatable; default: all)",
    )
    clear.set_defaults(handler=_clear)


def run(args: argparse.Namespace) -> int:
    status: int = args.handler(args)
    return status


def names_for(connectors: list[str] | None) -> list[str]:
    """Cache names of the chosen connectors ("response": the whole-response cache)."""
    chosen = connectors or list(CHOICES)
    return [n for n in DEFAULT_TTLS if n.split(".")[0] in chosen]


def _clear(args: argparse.Namespace) -> int:
    redis_url = os.environ.get("REDIS_URL", "").strip()
    if not redis_url:
        print(
            "bma-gateway: REDIS_URL is not set: the caches live in each gateway process's "
            "memory and expire within their TTL; restart the processes to empty them now",
            file=sys.stderr,
        )
        return 2
    try:
        redis_client.checked_url(redis_url)
    except ValueError as exc:
        print(f"bma-gateway: REDIS_URL {exc}", file=sys.stderr)
        return 2
    names = names_for(args.connector)

    async def clear() -> None:
        store = CacheStore(CacheSettings(redis_url=redis_url))
        try:
            await store.clear(names, strict=True)
        finally:
            await store.close()

    try:
        asyncio.run(clear())
    except Exception as exc:  # Redis refused: say so, no traceback
        print(f"bma-gateway: cannot clear the caches: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"cleared: {', '.join(names)}")
    return 0
