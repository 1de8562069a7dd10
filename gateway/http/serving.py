"""How the gateway is served by uvicorn: the options ``serve`` and the demo share, and an
ASGI app in a background thread (the demo's Traffy stand-in, the tests' servers), started
and stopped from the calling thread."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from gateway.settings import Settings

# uvicorn's event loop and HTTP/1.1 parser: uvloop (libuv) where it exists (all but Windows;
# "auto" falls back to asyncio there) and httptools (llhttp), not asyncio's loop and h11
# (pure Python). Measured on the cached 50-district query (docs/benchmarks.md, "The HTTP
# server"): 2.3x the answers a second at 8 connections, 3.1x at 32; the saved-bytes endpoint
# 3.7x. Both are dependencies (pyproject.toml).
LOOP = "auto"
HTTP = "httptools"


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for the gateway, wherever it is served (``serve``, the demo).

    No access log: it would write GET query strings (query text, a token sent as
    ``?access_token=``); the gateway's own request line replaces it. No proxy headers:
    uvicorn would trust ``X-Forwarded-For`` from loopback (``FORWARDED_ALLOW_IPS``); the app
    trusts only ``BMA_TRUSTED_PROXIES`` (``gateway.http.app``).
    """
    return {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,
        "proxy_headers": False,
        "loop": LOOP,
        "http": HTTP,
    }


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


class BackgroundServer:
    """uvicorn in a daemon thread with its own event loop; no signal handlers of its own."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        config = uvicorn.Config(
            app,
            host=self.host,
            port=self.port,
            log_level="warning",
            lifespan="auto",
            loop=LOOP,
            http=HTTP,
            proxy_headers=False,  # the client is the peer, unless the app trusts a proxy
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self.server.run, daemon=True, name="uvicorn")

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"server on {self.url} failed to start")
            if time.monotonic() > deadline:
                raise TimeoutError(f"server on {self.url} did not start in {timeout} s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
