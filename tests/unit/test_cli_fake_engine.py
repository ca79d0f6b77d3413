"""A scriptable fake Engine API on a unix socket, shared by the CLI verb tests.

``FakeEngine.route(method, path, reply)`` answers ``/v1.41<path>`` (``path`` is a regex);
``reply`` is ``(status, obj)``, ``(status, obj, headers)``, or a callable taking the
:class:`Req` and returning one of those. ``obj`` may be a dict/list (JSON), bytes, or a list of
JSON objects sent as a chunked JSON-lines stream (``stream(...)``). Every request is recorded.
``run_cli(engine, "berth"|"docker", *args)`` runs a CLI against it, so the same scenario can be
compared with the real docker CLI when it is installed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socketserver
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parents[2]
DOCKER = shutil.which("docker")


@dataclass
class Req:
    method: str
    path: str
    query: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    handler: Any = None


@dataclass
class Stream:
    """A chunked JSON-lines reply: one chunk per object."""

    items: list[Any]
    status: int = 200


def stream(*items: Any) -> Stream:
    return Stream(list(items))


def read_body(handler: BaseHTTPRequestHandler) -> bytes:
    """A request body as the CLI sends it: with Content-Length, or chunked (tar uploads)."""
    if handler.headers.get("Transfer-Encoding", "").lower() == "chunked":
        out = b""
        while True:
            size = int(handler.rfile.readline().strip(), 16)
            if size == 0:
                handler.rfile.readline()
                return out
            out += handler.rfile.read(size)
            handler.rfile.readline()
    n = int(handler.headers.get("Content-Length") or 0)
    return handler.rfile.read(n) if n else b""


@dataclass
class FakeEngine:
    path: str
    requests: list[Req] = field(default_factory=list)
    routes: list[tuple[str, re.Pattern[str], Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        engine = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                return read_body(self)

            def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Api-Version", "1.41")
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                if isinstance(obj, Stream):
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    for item in obj.items:
                        data = item if isinstance(item, bytes) else json.dumps(item).encode() + b"\r\n"
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    return
                if obj is None:
                    data = b""
                elif isinstance(obj, bytes):
                    data = obj
                else:
                    data = json.dumps(obj).encode()
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query).items()}
                path = url.path
                req = Req(self.command, path, q, {k.lower(): v for k, v in self.headers.items()},
                          self._body(), self)
                engine.requests.append(req)
                if path == "/_ping":
                    return self._send(200, b"OK")
                path = re.sub(r"^/v1\.\d+", "", path)
                req.path = path
                for method, pattern, reply in engine.routes:
                    if method == self.command and pattern.fullmatch(path):
                        if callable(reply):
                            reply = reply(req)
                        if reply is None:  # the callable wrote the reply itself
                            self.close_connection = True
                            return None
                        return self._send(*reply)
                return self._send(404, {"message": "page not found"})

            do_GET = do_POST = do_HEAD = do_DELETE = do_PUT = _handle  # noqa: N815

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(self.path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def route(self, method: str, path: str, reply: Any) -> FakeEngine:
        self.routes.insert(0, (method, re.compile(path), reply))
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def calls(self, path_re: str = ".*") -> list[Req]:
        return [r for r in self.requests if r.path != "/_ping" and re.fullmatch(path_re, r.path)]


def run_cli(engine: FakeEngine, which: str, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
            timeout: float = 20) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("BERTH_HOST", None)
    e["DOCKER_HOST"] = f"unix://{engine.path}"
    e.update(env or {})
    if which == "docker":
        argv = [DOCKER or "docker", *args]
    else:
        argv = [sys.executable, "-m", "berth.cli.main", *args]
    return subprocess.run(argv, input=stdin, capture_output=True, env=e, cwd=ROOT, timeout=timeout)


Handler = Callable[[Req], Any]
