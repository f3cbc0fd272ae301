"""A localhost TCP proxy between the implementation and the AWS endpoint, for transport outages.

The gate gives every instance of the main cluster ``http://127.0.0.1:<proxy port>`` as its
endpoint; the proxy forwards bytes both ways to the real endpoint (protocol-agnostic, so HTTP
keep-alive and long polls pass unchanged). :meth:`OutageProxy.cut` closes every open connection
at once and, until :meth:`OutageProxy.restore`, closes each new connection as soon as it is
accepted: to a client this looks like an endpoint that resets every request, which an SDK retries
and finally reports as a transport error. The gate's own clients never go through it.

Everything runs on one asyncio loop in a daemon thread; the public methods are thread-safe and
synchronous (they return once the loop has applied them).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

_T = TypeVar("_T")
_CHUNK = 65536


class OutageProxy:
    """Forward ``127.0.0.1:<port>`` to ``target_host:target_port`` until cut.

    ``start()`` binds an ephemeral port (see :attr:`port` / :attr:`url`); ``close()`` stops the
    loop and drops every connection. Both may be called once each.
    """

    def __init__(self, target_host: str, target_port: int, *, listen_host: str = "127.0.0.1") -> None:
        self.target_host, self.target_port, self.listen_host = target_host, target_port, listen_host
        self.port = 0
        self.is_cut = False
        self.accepted = 0  # connections accepted since start (forwarded or refused)
        self.refused = 0  # connections closed on accept because the proxy was cut
        self.severed = 0  # open connections closed by cut()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    @classmethod
    def for_url(cls, url: str) -> OutageProxy:
        """A proxy for the host and port of ``url`` (default port 80/443 by scheme)."""
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError(f"no host in endpoint URL {url!r}")
        return cls(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    @property
    def url(self) -> str:
        """The endpoint URL to hand to an implementation (plain HTTP, the scheme of LocalStack)."""
        return f"http://{self.listen_host}:{self.port}"

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = 10.0) -> _T:
        if self._loop is None:
            coro.close()
            raise RuntimeError("the proxy is not started")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def start(self) -> OutageProxy:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="gate-proxy", daemon=True)
        self._thread.start()
        self._server = self._call(self._listen())
        sock = self._server.sockets[0]
        self.port = int(sock.getsockname()[1])
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._accept, self.listen_host, 0)

    def cut(self) -> int:
        """Start an outage: close every open connection now and every new one on accept.
        Returns how many open connections were closed."""
        return self._call(self._cut())

    async def _cut(self) -> int:
        self.is_cut = True
        victims = list(self._open)
        for writer in victims:
            _reset(writer)
        self._open.clear()
        self.severed += len(victims)
        return len(victims)

    def restore(self) -> None:
        """End the outage: new connections are forwarded again."""
        self._call(self._restore())

    async def _restore(self) -> None:
        self.is_cut = False

    def close(self) -> None:
        """Stop listening, drop every connection and stop the loop thread (idempotent)."""
        if self._loop is None or self._thread is None or not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        if not self._thread.is_alive():
            self._loop.close()

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        await self._cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.is_cut:
            self.refused += 1
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            _reset(writer)
            return
        if self.is_cut:  # cut while connecting upstream
            _reset(writer)
            _reset(up_writer)
            return
        self._open.update((writer, up_writer))
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                self._open.discard(w)
                w.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF or an error on either side, then half-close the writer."""
    try:
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        _reset(writer)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) so the peer sees a reset, not an orderly end of stream."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
