"""Fault injection for tests: a TCP proxy in front of a real server that can be cut off.

Stopping the proxy is the network's view of a stopped server: new connections are refused
and open ones are cut. Starting it again on the same port is the server coming back.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import threading
from urllib.parse import parse_qs, urlsplit

from gateway.serving import free_port


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a PostgreSQL server given by its URL (TCP or socket)."""

    def __init__(self, server_url: str) -> None:
        self.server_url = server_url
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.base_events.Server | None = None
        self._links: set[asyncio.StreamWriter] = set()

    def url(self, database: str) -> str:
        """A URL of ``database`` through the proxy."""
        user = urlsplit(self.server_url).username or "postgres"
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> TcpProxy:
        self._call(self._listen())
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

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._links):
            writer.transport.abort()
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
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
        return await asyncio.open_connection(parts.hostname or "127.0.0.1", parts.port or 5432)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()
