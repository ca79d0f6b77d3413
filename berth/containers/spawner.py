"""berthd's side of the fork server: start it, ask it for monitors, talk to monitors."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from typing import Any

from berth.errors import SystemError_


class ForkServer:
    """A running fork server. ``start()`` once at daemon start; ``close()`` at shutdown."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "berth.containers.forkserver", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        theirs.close()
        self._reader, self._writer = await asyncio.open_unix_connection(sock=ours)

    async def spawn(self, socket_path: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Fork a monitor serving ``socket_path``; returns ``{"pid", "start_time"}``."""
        assert self._reader and self._writer
        async with self._lock:
            self._writer.write(json.dumps({"socket": socket_path, "spec": spec}).encode() + b"\n")
            await self._writer.drain()
            line = await self._reader.readline()
        if not line:
            raise SystemError_("fork server exited")
        reply = json.loads(line)
        if "error" in reply:
            raise SystemError_(f"cannot start monitor: {reply['error']}")
        return reply

    async def close(self) -> None:
        if self._writer:
            self._writer.close()
        if self._proc:
            try:
                await asyncio.wait_for(asyncio.to_thread(self._proc.wait), 5)
            except TimeoutError:
                self._proc.kill()
                self._proc.wait()


async def monitor_request(path: str, request: dict[str, Any],
                          ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a connection to a monitor and send its opening line."""
    reader, writer = await asyncio.open_unix_connection(path, limit=1 << 20)
    writer.write(json.dumps(request).encode() + b"\n")
    await writer.drain()
    return reader, writer


async def monitor_call(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """One request, one JSON reply, connection closed."""
    reader, writer = await monitor_request(path, request)
    try:
        line = await reader.readline()
    finally:
        writer.close()
    return json.loads(line) if line else {}
