"""What every verb gets: the daemon address, a lazily made API client, and CLI-level errors."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False

if TYPE_CHECKING:
    from berth.client.api import Client

PROG = "berth"


class CLIError(Exception):
    """A failure to report on stderr as ``message`` and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class Context:
    """Per-invocation state: host, client, and output helpers."""

    def __init__(self, host: str) -> None:
        self.host = host
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from berth.client.api import Client

            self._client = Client(self.host)
        return self._client

    @staticmethod
    def out(text: str) -> None:
        """Write ``text`` (with its own newlines) to stdout."""
        sys.stdout.write(text)

    @staticmethod
    def err(text: str) -> None:
        sys.stdout.flush()
        sys.stderr.write(text)
        sys.stderr.flush()


def write_fd(fd: int, data: bytes) -> None:
    """Write all of ``data`` to a file descriptor, unbuffered."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
