"""Hijacked connections: the raw byte pipe Docker's attach and exec start switch to after a 101.

aiohttp closes a connection when the client half-closes it (its protocol's ``eof_received``
returns None), but the docker CLI shuts its write side right after the 101 when it has no stdin
and still expects output. So after the upgrade reply the transport is handed to ``RawStream``, a
protocol of our own that keeps writing after the peer's EOF.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"


class RawStream(asyncio.Protocol):
    """Both directions of a hijacked connection. Ends when ``close()`` is called or the peer goes."""

    def __init__(self, transport: asyncio.Transport, initial: bytes) -> None:
        self._transport = transport
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self._eof = False
        self._lost = asyncio.get_running_loop().create_future()
        self._drained: asyncio.Event = asyncio.Event()
        self._drained.set()
        if initial:
            self._incoming.put_nowait(initial)

    # asyncio.Protocol
    def data_received(self, data: bytes) -> None:
        self._incoming.put_nowait(data)

    def eof_received(self) -> bool:
        self._eof = True
        self._incoming.put_nowait(b"")
        return True  # keep our write side open: output goes on after the client's half-close

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._eof:
            self._eof = True
            self._incoming.put_nowait(b"")
        if not self._lost.done():
            self._lost.set_result(None)
        self._drained.set()

    def pause_writing(self) -> None:
        self._drained.clear()

    def resume_writing(self) -> None:
        self._drained.set()

    # API used by handlers
    async def read(self) -> bytes:
        """Next chunk from the client; b"" at EOF (half-close or hang-up)."""
        if self._eof and self._incoming.empty():
            return b""
        return await self._incoming.get()

    async def write(self, data: bytes) -> None:
        if self.closed:
            return
        self._transport.write(data)
        await self._drained.wait()

    @property
    def closed(self) -> bool:
        return self._transport.is_closing()

    async def wait_closed(self) -> None:
        await self._lost

    def close(self) -> None:
        if not self._transport.is_closing():
            self._transport.close()


async def hijack(request: web.Request) -> tuple[web.StreamResponse, RawStream]:
    """Answer ``101 UPGRADED`` and take over the connection.

    Every Docker client (CLI, SDK, compose) asks to upgrade; one that does not gets the same
    reply. The caller must ``close()`` the stream and then return the response."""
    resp = web.StreamResponse(status=101, reason="UPGRADED")
    resp.headers["Connection"] = "Upgrade"
    resp.headers["Upgrade"] = "tcp"
    resp.headers["Content-Type"] = RAW_STREAM
    await resp.prepare(request)
    transport = request.transport
    assert transport is not None
    protocol = request.protocol
    tail = getattr(protocol, "_message_tail", b"") or b""
    if tail:
        protocol._message_tail = b""
    stream = RawStream(transport, tail)
    transport.set_protocol(stream)
    transport.resume_reading()
    return resp, stream
