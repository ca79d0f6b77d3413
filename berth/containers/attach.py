"""An attach (or exec) session: relays between a client's byte stream and a monitor.

The client side is any object with ``async read() -> bytes`` (b"" at EOF), ``async write(data)``,
``close()`` and ``closed``: the API passes its hijacked connection. Output arrives from the
monitor as Docker frames and goes to the client framed, or raw when the process has a TTY.
A half-close from the client becomes stdin EOF; the session ends when the monitor closes
(process exit) or the client goes away (detach: the process runs on).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any, Protocol

from berth.containers.protocol import FRAME_HEADER, STDERR, STDOUT


class ClientStream(Protocol):
    async def read(self) -> bytes: ...
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...
    @property
    def closed(self) -> bool: ...


class AttachSession:
    def __init__(self, client: ClientStream, *, stdin: bool, stdout: bool, stderr: bool,
                 tty: bool = False) -> None:
        self.client = client
        self.stdin, self.stdout, self.stderr = stdin, stdout, stderr
        self.tty = tty
        self._done = asyncio.get_running_loop().create_future()
        self._tasks: list[asyncio.Task] = []
        self._writer: asyncio.StreamWriter | None = None
        self._client_reader = asyncio.ensure_future(self._watch_client_until_connected())
        self._early_input: list[bytes] = []
        self._early_eof = False

    async def _watch_client_until_connected(self) -> None:
        """Before the monitor exists, keep what the client types and notice if it leaves."""
        while True:
            data = await self.client.read()
            if not data:
                self._early_eof = True
                if self.client.closed:
                    self._finish()
                return
            self._early_input.append(data)

    async def connect(self, sock_path: str) -> None:
        """Join the monitor at ``sock_path``; returns once the monitor has registered us."""
        reader, writer = await asyncio.open_unix_connection(sock_path, limit=1 << 20)
        req = {"op": "attach", "stdin": self.stdin, "stdout": self.stdout, "stderr": self.stderr}
        writer.write(json.dumps(req).encode() + b"\n")
        await writer.drain()
        self._writer = writer
        self._client_reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._client_reader
        for chunk in self._early_input:
            writer.write(chunk)
        self._early_input = []
        self._tasks = [asyncio.ensure_future(self._to_client(reader)),
                       asyncio.ensure_future(self._from_client(writer))]

    async def _to_client(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                header = await reader.readexactly(FRAME_HEADER.size)
                stream, length = FRAME_HEADER.unpack(header)
                payload = await reader.readexactly(length)
                if (stream == STDOUT and not self.stdout) or (stream == STDERR and not self.stderr):
                    continue
                await self.client.write(payload if self.tty else header + payload)
                if self.client.closed:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        self._finish()

    async def _from_client(self, writer: asyncio.StreamWriter) -> None:
        try:
            if not self._early_eof:
                while True:
                    data = await self.client.read()
                    if not data:
                        break
                    if self.stdin:
                        writer.write(data)
                        await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()  # stdin EOF for the process
        except (ConnectionError, OSError):
            pass

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(None)

    async def wait(self) -> None:
        """Until the process has exited and its output is delivered, or the client left.
        The caller then ``close()``s the session."""
        await self._done

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._client_reader.cancel()
        if self._writer:
            self._writer.close()
        self.client.close()

    def write_error(self, message: str) -> Any:
        """Report a setup failure in-band, as a stdout frame (dockerd does this for exec)."""
        data = (message.rstrip("\n") + "\n").encode()
        if not self.tty:
            data = FRAME_HEADER.pack(STDOUT, len(data)) + data
        return self.client.write(data)
