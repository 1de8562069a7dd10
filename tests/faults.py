"""Fault injection for tests: a TCP proxy in front of a real server that can be cut off, and
an HTTP front in front of a real HTTP server that can turn slow, fail or garble its answers.

Stopping the proxy is the network's view of a stopped server: new connections are refused
and open ones are cut. Starting it again on the same port is the server coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import threading
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit, urlunsplit

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.http.serving import BackgroundServer, free_port

_DEFAULT_PORTS = {"http": 80, "https": 443, "redis": 6379}


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a server given by its URL: PostgreSQL (TCP or socket),
    or any TCP server such as ``http://127.0.0.1:8000``."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._hanging = False

    def url(self, database: str) -> str:
        """A URL of ``database`` through the proxy."""
        user = urlsplit(self.server_url).username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    @property
    def base_url(self) -> str:
        """The proxy's own address with the target's scheme, e.g. ``http://127.0.0.1:<port>``."""
        return f"{urlsplit(self.server_url).scheme}://127.0.0.1:{self.port}"

    @property
    def target_url(self) -> str:
        """The target's URL (credentials, path and all) with the proxy's address, e.g.
        ``redis://127.0.0.1:<port>/0``."""
        parts = urlsplit(self.server_url)
        netloc = f"127.0.0.1:{self.port}"
        if "@" in parts.netloc:
            netloc = parts.netloc.rsplit("@", 1)[0] + "@" + netloc
        return urlunsplit(parts._replace(netloc=netloc))

    def start(self) -> TcpProxy:
        self._call(self._listen(hanging=False))
        return self

    def hang(self) -> TcpProxy:
        """Accept connections and never answer: the network's view of a stuck server."""
        self._call(self._listen(hanging=True))
        return self

    def stop(self) -> None:
        """Refuse new connections and cut the open ones."""
        self._call(self._close())

    def close(self) -> None:
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self, hanging: bool) -> None:
        if self._server is not None and self._hanging == hanging:
            return  # already so: nothing to do
        await self._close()
        self._hanging = hanging
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._hanging:
            self._links.add(writer)
            with contextlib.suppress(OSError):
                while await reader.read(65536):
                    pass  # swallowed: no answer ever comes
            return
        try:
            up_reader, up_writer = await self._upstream()
        except OSError:
            writer.transport.abort()
            return
        self._links |= {writer, up_writer}
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def _upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        parts = urlsplit(self.server_url)
        socket_dir = parse_qs(parts.query).get("host", [""])[0]
        if socket_dir.startswith("/"):
            sockets = [
                s for s in glob.glob(os.path.join(socket_dir, ".s.PGSQL.*")) if "lock" not in s
            ]
            return await asyncio.open_unix_connection(sockets[0])
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme, 5432)
        return await asyncio.open_connection(parts.hostname or "127.0.0.1", port)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


async def hold_back(request: Request, seconds: float) -> None:
    """A slow upstream: the answer waits ``seconds``, or until the caller hangs up (a caller
    that timed out closes its connection), so no handler outlives its caller's patience and a
    server stops without waiting for answers nobody will read."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while (await request.receive())["type"] != "http.disconnect":
                pass


class HttpFaults:
    """An HTTP server forwarding every GET to ``target`` (a real server) until told to fail.

    ``mode``: ``ok`` forwards; ``slow`` holds the request back ``delay`` seconds (less if the
    caller hangs up first: ``hold_back``), then forwards; ``error``
    answers 500; ``malformed`` answers truncated JSON; with ``times``, only the next ``times``
    requests get the fault and the front is ``ok`` again. ``requests`` counts the requests that
    reached it and ``max_in_flight`` the most it held at once (``reset()`` zeroes both).
    Settable from the test's thread: the server runs in its own thread and loop.
    """

    MODES = ("ok", "slow", "error", "malformed")

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.mode = "ok"
        self.delay = 0.0
        self.times: int | None = None
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self._server = BackgroundServer(self._app())

    @property
    def url(self) -> str:
        return self._server.url

    def start(self) -> HttpFaults:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def set(self, mode: str, delay: float = 0.0, times: int | None = None) -> None:
        if mode not in self.MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode, self.delay, self.times = mode, delay, times

    def reset(self) -> None:
        self.requests = 0
        self.max_in_flight = 0

    def _app(self) -> Starlette:
        client: dict[str, httpx.AsyncClient] = {}

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            async with httpx.AsyncClient(base_url=self.target, timeout=30) as forward:
                client["forward"] = forward
                yield

        async def answer(request: Request) -> Response:
            self.requests += 1
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                return await self._answer(client["forward"], request)
            finally:
                self.in_flight -= 1

        return Starlette(routes=[Route("/{path:path}", answer)], lifespan=lifespan)

    async def _answer(self, forward: httpx.AsyncClient, request: Request) -> Response:
        mode, delay = self.mode, self.delay
        if self.times is not None:
            self.times -= 1
            if self.times <= 0:
                self.mode, self.times = "ok", None
        if mode == "error":
            return Response(b"upstream exploded", status_code=500)
        if mode == "malformed":
            return Response(b'{"status": true, "results": [', media_type="application/json")
        if mode == "slow":
            await hold_back(request, delay)
        upstream = await forward.get(request.url.path, params=request.query_params.multi_items())
        return Response(
            upstream.content,
            status_code=upstream.status_code,
            media_type=upstream.headers.get("content-type"),
        )
