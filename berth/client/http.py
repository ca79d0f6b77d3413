"""A small HTTP/1.1 client over a unix or TCP socket, enough for the Engine API.

Written on the bare socket (not http.client) for two reasons: the CLI must start fast, and
attach/exec hijack the connection after a ``101`` reply, so the bytes already buffered after the
headers must stay readable. A :class:`Connection` serves one request at a time and is reused
while the server keeps it alive; a :class:`Response` owns it until its body is consumed.
Raises :class:`ConnectError` when the socket cannot be reached, ``OSError`` on later I/O errors.
"""

from __future__ import annotations

import _socket  # not `socket`: its enums and selectors cost ~15 ms at CLI start

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import BinaryIO


CHUNK = 65536


class ConnectError(Exception):
    """The daemon's socket could not be reached (no such file, refused, unreachable)."""


class ProtocolError(Exception):
    """The server sent something that is not HTTP/1.1 as we know it."""


def parse_host(host: str) -> tuple[str, str | tuple[str, int]]:
    """Split ``unix:///path``, ``tcp://h:p``, ``http://h:p`` into (family, address)."""
    if host.startswith("unix://"):
        return "unix", host[len("unix://") :]
    if host.startswith("/"):
        return "unix", host
    for scheme in ("tcp://", "http://"):
        if host.startswith(scheme):
            rest = host[len(scheme) :].rstrip("/")
            break
    else:
        rest = host
    hostname, _, port = rest.rpartition(":")
    if not hostname:
        hostname, port = rest, "2375"
    hostname = hostname.strip("[]") or "127.0.0.1"
    try:
        return "tcp", (hostname, int(port))
    except ValueError:
        raise ConnectError(f"invalid host {host}") from None


class Reader:
    """Buffered reads from a socket that can hand back whatever it has already buffered."""

    def __init__(self, sock: _socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def _fill(self) -> bool:
        data = self.sock.recv(CHUNK)
        if not data:
            return False
        self.buf += data
        return True

    def readline(self) -> bytes:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line, self.buf = self.buf[: i + 1], self.buf[i + 1 :]
                return line
            if not self._fill():
                line, self.buf = self.buf, b""
                return line

    def read_exact(self, n: int) -> bytes:
        """Read exactly ``n`` bytes, or fewer at EOF."""
        while len(self.buf) < n:
            if not self._fill():
                break
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_some(self, n: int = CHUNK) -> bytes:
        """Return buffered bytes, or one recv's worth; b"" at EOF."""
        if not self.buf and not self._fill():
            return b""
        data, self.buf = self.buf[:n], self.buf[n:]
        return data


class Response:
    """A reply's status line and headers; the body is read on demand from the connection."""

    def __init__(self, conn: Connection, method: str) -> None:
        self.conn = conn
        self.reader = conn.reader
        assert self.reader is not None
        line = self.reader.readline()
        while True:
            if not line:
                raise ProtocolError("connection closed before a response")
            parts = line.decode("latin-1").split(None, 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/"):
                raise ProtocolError(f"bad status line {line!r}")
            self.status = int(parts[1])
            self.reason = parts[2].strip() if len(parts) > 2 else ""
            self.headers: dict[str, str] = {}
            while True:
                h = self.reader.readline()
                if h in (b"\r\n", b"\n", b""):
                    break
                k, _, v = h.decode("latin-1").partition(":")
                self.headers[k.strip().lower()] = v.strip()
            if self.status != 100:
                break
            line = self.reader.readline()
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        cl = self.headers.get("content-length")
        self.remaining: int | None = int(cl) if cl is not None and not self.chunked else None
        self.close_after = self.headers.get("connection", "").lower() == "close"
        if method == "HEAD" or self.status in (101, 204, 304) or 100 <= self.status < 200:
            self.remaining = 0
            self.chunked = False
        self._chunk_left = 0
        self.done = self.remaining == 0 and not self.chunked
        if self.done and self.status != 101:
            self._release()

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)

    def _release(self) -> None:
        self.done = True
        if self.close_after or self.remaining is None and not self.chunked:
            self.conn.close()
        else:
            self.conn.busy = False

    def read_chunk(self) -> bytes:
        """Next piece of the body as it arrives; b"" at its end."""
        if self.done:
            return b""
        r = self.reader
        if self.chunked:
            if self._chunk_left == 0:
                size_line = r.readline()
                if not size_line:
                    self.conn.close()
                    self.done = True
                    return b""
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while r.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    self._release()
                    return b""
                self._chunk_left = size
            data = r.read_some(self._chunk_left)
            if not data:
                self.conn.close()
                self.done = True
                return b""
            self._chunk_left -= len(data)
            if self._chunk_left == 0:
                r.read_exact(2)
            return data
        if self.remaining is None:
            data = r.read_some()
            if not data:
                self.conn.close()
                self.done = True
            return data
        data = r.read_some(min(self.remaining, CHUNK))
        if not data:
            self.conn.close()
            self.done = True
            return b""
        self.remaining -= len(data)
        if self.remaining == 0:
            self._release()
        return data

    def read(self) -> bytes:
        parts = []
        while True:
            data = self.read_chunk()
            if not data:
                return b"".join(parts)
            parts.append(data)

    def iter_lines(self) -> Iterator[bytes]:
        """Body split on newlines (JSON-lines progress streams)."""
        pending = b""
        while True:
            data = self.read_chunk()
            if not data:
                break
            pending += data
            *lines, pending = pending.split(b"\n")
            yield from (line for line in lines if line.strip())
        if pending.strip():
            yield pending

    def close(self) -> None:
        if not self.done:
            self.conn.close()
            self.done = True


class Connection:
    """One socket to the daemon; reconnects lazily after the server closes it."""

    def __init__(self, host: str, timeout: float | None = None) -> None:
        self.host = host
        self.family, self.address = parse_host(host)
        self.timeout = timeout
        self.sock: _socket.socket | None = None
        self.reader: Reader | None = None
        self.busy = False

    def connect(self) -> None:
        try:
            if self.family == "unix":
                sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
                try:
                    sock.connect(self.address)  # type: ignore[arg-type]
                except OSError:
                    sock.close()
                    raise
            else:
                import socket

                sock = socket.create_connection(self.address)  # type: ignore[arg-type]
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as e:
            raise ConnectError(str(e)) from e
        sock.settimeout(self.timeout)
        self.sock = sock
        self.reader = Reader(sock)

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self.reader = None
        self.busy = False

    def send(
        self,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Write a request; the reply is read later with :meth:`response`."""
        if self.sock is None or self.busy:
            self.close()
            self.connect()
        assert self.sock is not None
        hdrs = {"Host": "api.moby.localhost", "User-Agent": "Berth-Client/0.1"}
        if headers:
            hdrs.update(headers)
        streamed = body is not None and not isinstance(body, bytes | bytearray)
        if streamed:
            hdrs["Transfer-Encoding"] = "chunked"
        elif method in ("POST", "PUT") or body is not None:
            hdrs["Content-Length"] = str(len(body or b""))
        head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n"
        self.busy = True
        data = head.encode("latin-1")
        if body is not None and not streamed:
            data += bytes(body)  # type: ignore[arg-type]
        self.sock.sendall(data)
        if streamed:
            if hasattr(body, "read"):
                def chunks() -> Iterator[bytes]:
                    while True:
                        piece = body.read(CHUNK)  # type: ignore[union-attr]
                        if not piece:
                            return
                        yield piece

                it: Iterable[bytes] = chunks()
            else:
                it = body  # type: ignore[assignment]
            for piece in it:
                if piece:
                    self.sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.sock.sendall(b"0\r\n\r\n")

    def response(self, method: str = "GET") -> Response:
        return Response(self, method)

    def request(
        self,
        method: str,
        target: str,
        body: bytes | Iterable[bytes] | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """Send and read the status and headers. Retries once if a kept-alive socket went stale."""
        reused = self.sock is not None and not self.busy
        try:
            self.send(method, target, body, headers)
            return self.response(method)
        except (ProtocolError, ConnectionResetError, BrokenPipeError):
            if not reused or not isinstance(body, bytes | None):
                raise
            self.close()
            self.send(method, target, body, headers)
            return self.response(method)
