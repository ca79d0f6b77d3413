"""Container logs in Docker's json-file format: one JSON object a line, ``log``, ``stream``, ``time``.

The monitor writes (``LogWriter``), the daemon reads (``read_entries``). Output is cut at newlines
like Docker's; a line longer than 16 KiB, or the last bytes before exit, make an entry of their own.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

from berth.util import parse_rfc3339, rfc3339_nano

MAX_LINE = 16 * 1024
_NAMES = {1: "stdout", 2: "stderr"}
STREAM_NUMBERS = {"stdout": 1, "stderr": 2}


class LogWriter:
    """Appends entries to a json-file log. Owned by one monitor; ``close()`` flushes partial lines."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
        self._partial: dict[int, bytes] = {1: b"", 2: b""}

    def write(self, stream: int, data: bytes) -> None:
        buf = self._partial.get(stream, b"") + data
        out = []
        while True:
            nl = buf.find(b"\n")
            if nl < 0:
                break
            out.append(buf[: nl + 1])
            buf = buf[nl + 1:]
        while len(buf) >= MAX_LINE:
            out.append(buf[:MAX_LINE])
            buf = buf[MAX_LINE:]
        self._partial[stream] = buf
        self._emit(stream, out)

    def flush(self, stream: int) -> None:
        buf = self._partial.get(stream, b"")
        if buf:
            self._partial[stream] = b""
            self._emit(stream, [buf])

    def _emit(self, stream: int, chunks: list[bytes]) -> None:
        if not chunks:
            return
        name = _NAMES.get(stream, "stdout")
        now = rfc3339_nano()
        lines = b"".join(
            json.dumps({"log": c.decode("utf-8", "surrogateescape"), "stream": name, "time": now},
                       ensure_ascii=True).encode() + b"\n"
            for c in chunks
        )
        os.write(self._fd, lines)

    def close(self) -> None:
        for stream in list(self._partial):
            self.flush(stream)
        os.close(self._fd)


@dataclass
class Entry:
    stream: int
    data: bytes
    time: str

    @property
    def timestamp(self) -> float:
        return parse_rfc3339(self.time)


def parse_line(line: bytes) -> Entry | None:
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return Entry(STREAM_NUMBERS.get(obj.get("stream"), 1),
                 obj.get("log", "").encode("utf-8", "surrogateescape"), obj.get("time", ""))


def read_entries(path: str, offset: int = 0) -> tuple[list[Entry], int]:
    """Entries of complete lines from ``offset``; returns them and the offset to read on from."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset
    end = data.rfind(b"\n") + 1
    entries = [e for e in (parse_line(raw) for raw in data[:end].splitlines()) if e]
    return entries, offset + end


def iter_tail(entries: list[Entry], tail: int | None) -> Iterator[Entry]:
    if tail is None or tail < 0:
        yield from entries
    elif tail > 0:
        yield from entries[-tail:]
