"""Attach/exec/logs streams: frame demultiplexing, stdin forwarding, raw mode, detach keys.

A hijacked connection is a :class:`~berth.client.http.Response` whose socket became a raw pipe
after ``101``. :func:`pump` copies it to the local stdout/stderr (demultiplexed unless tty) until
the daemon closes it; a thread copies local stdin the other way and half-closes on EOF.
"""

from __future__ import annotations

import _socket
import os
import sys

from berth.cli.context import write_fd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


class Demuxer:
    """Incremental parser of docker's 8-byte-header frames (type 1 stdout, 2 stderr)."""

    def __init__(self) -> None:
        self.buf = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self.buf += data
        while len(self.buf) >= 8:
            kind = self.buf[0]
            size = int.from_bytes(self.buf[4:8], "big")
            if len(self.buf) < 8 + size:
                break
            payload = self.buf[8 : 8 + size]
            self.buf = self.buf[8 + size :]
            yield kind, payload


def demux_all(data: bytes) -> list[tuple[int, bytes]]:
    """Split a complete multiplexed byte string into (stream, payload) frames."""
    return list(Demuxer().feed(data))


def copy_output(read: Callable[[], bytes], tty: bool, out_fd: int = 1, err_fd: int = 2) -> None:
    """Copy a stream to the local fds until ``read`` returns b"": raw for tty, else by frames."""
    demux = None if tty else Demuxer()
    while True:
        try:
            data = read()
        except OSError:
            return
        if not data:
            return
        if demux is None:
            write_fd(out_fd, data)
            continue
        for kind, payload in demux.feed(data):
            write_fd(err_fd if kind == 2 else out_fd, payload)


def parse_detach_keys(spec: str | None) -> bytes:
    """``ctrl-p,ctrl-q`` (docker's syntax) into bytes."""
    if not spec:
        return DETACH_KEYS
    out = bytearray()
    for key in spec.split(","):
        key = key.strip()
        if key.startswith("ctrl-") and len(key) == 6:
            c = key[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(c)
            out.append(code if code is not None else (ord(c.lower()) - ord("a") + 1))
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise ValueError(f"Unknown character: '{key}'")
    return bytes(out)


class StdinPump:
    """Copy local stdin to the hijacked socket; half-close after EOF; spot the detach keys."""

    def __init__(self, sock: _socket.socket, detach_keys: bytes | None) -> None:
        self.sock = sock
        self.detach_keys = detach_keys
        self.detached = False

    def start(self) -> None:
        import threading

        threading.Thread(target=self.run, daemon=True).start()

    def run(self) -> None:
        held = b""
        keys = self.detach_keys
        try:
            while True:
                try:
                    data = os.read(0, 32768)
                except OSError:
                    data = b""
                if not data:
                    break
                if keys:
                    data = held + data
                    held = b""
                    i = data.find(keys)
                    if i >= 0:
                        if i:
                            self.sock.sendall(data[:i])
                        self.detached = True
                        self.sock.shutdown(_socket.SHUT_RDWR)
                        return
                    # keep a possible start of the sequence for the next read
                    for n in range(len(keys) - 1, 0, -1):
                        if data.endswith(keys[:n]):
                            held, data = data[-n:], data[:-n]
                            break
                if data:
                    self.sock.sendall(data)
            if held:
                self.sock.sendall(held)
            self.sock.shutdown(_socket.SHUT_WR)
        except OSError:
            return


class RawTerminal:
    """Put the local terminal (stdin) in raw mode for ``-t``; always restored on exit."""

    def __init__(self, enable: bool) -> None:
        self.enable = enable and os.isatty(0)
        self.saved: list | None = None

    def __enter__(self) -> RawTerminal:
        if self.enable:
            import termios
            import tty

            try:
                self.saved = termios.tcgetattr(0)
                tty.setraw(0)
            except termios.error:
                self.saved = None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.saved is not None:
            import termios

            try:
                termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
            except termios.error:
                pass


def terminal_size() -> tuple[int, int] | None:
    """(rows, columns) of the local terminal (stdout, else stdin), or None."""
    for fd in (1, 0):
        try:
            size = os.get_terminal_size(fd)
            return size.lines, size.columns
        except OSError:
            continue
    return None


def attach_streams(hijacked, tty: bool, stdin: bool, detach_keys: bytes | None) -> bool:  # noqa: ANN001
    """Run a hijacked attach/exec stream to completion; returns True if the user detached."""
    conn = hijacked.conn
    sock = conn.sock
    reader = conn.reader
    pump = None
    if stdin:
        pump = StdinPump(sock, detach_keys if tty else None)
        pump.start()
    else:
        try:
            sock.shutdown(_socket.SHUT_WR)
        except OSError:
            pass
    copy_output(reader.read_some, tty)
    try:
        sys.stdout.flush()
    except OSError:
        pass
    conn.close()
    return bool(pump and pump.detached)
