"""Engine API client: version negotiation, JSON calls, streams and hijacked connections.

A :class:`Client` negotiates the API version once (``HEAD /_ping``, like docker's CLI) and then
prefixes every path with ``/vX.Y``. Calls raise :class:`APIError` for HTTP statuses >= 400 (with
the daemon's ``message``) and :class:`~berth.client.http.ConnectError` when the daemon cannot be
reached. Concurrent operations (attach + wait + start) each take their own connection from
:meth:`Client.connection`.
"""

from __future__ import annotations

from berth.client import fastjson as json  # not `json`: see fastjson
from berth.client.http import ConnectError, Connection, Response

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any, BinaryIO, TypeAlias

    Params: TypeAlias = Mapping[str, Any] | Sequence[tuple[str, Any]] | None

MAX_API_VERSION = "1.41"
FALLBACK_API_VERSION = "1.24"
DEFAULT_HOST = "unix:///run/berth/berth.sock"


__all__ = ["APIError", "Client", "ConnectError", "DEFAULT_HOST", "encode_query"]


class APIError(Exception):
    """The daemon answered with an error status; ``message`` is its ``{"message": ...}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def _quote(s: str) -> str:
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in s.encode("utf-8"))


def quote_path(s: str) -> str:
    """Escape a name for use inside a URL path (keeps ``/`` and ``:`` as docker does)."""
    return "".join(chr(b) if b in _SAFE or b in b"/:@" else f"%{b:02X}" for b in s.encode("utf-8"))


def encode_query(params: Params) -> str:
    """``k=v&...``; ``None`` values are skipped, booleans become 1/0, lists repeat the key."""
    if not params:
        return ""
    items = params.items() if hasattr(params, "items") else params
    out = []
    for k, v in items:
        if v is None:
            continue
        values = v if isinstance(v, list | tuple) else [v]
        for one in values:
            if isinstance(one, bool):
                one = "1" if one else "0"
            out.append(f"{_quote(k)}={_quote(str(one))}")
    return "&".join(out)


def encode_json(obj: Any) -> bytes:
    """A request body as Go's json.Encoder writes it: compact, one trailing newline."""
    return json.dumps(obj).encode() + b"\n"


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in v.split("."))
    except ValueError:
        return (0,)


class Client:
    """Engine API client for one daemon address (``unix:///...`` or ``tcp://host:port``)."""

    def __init__(self, host: str = DEFAULT_HOST, version: str | None = None) -> None:
        self.host = host
        self.version = version
        self._conn = Connection(host)

    def connection(self) -> Connection:
        """A fresh connection for a concurrent request (not yet connected)."""
        return Connection(self.host)

    def default_connection(self) -> Connection:
        """The shared keep-alive connection; replaced when a pending reply still holds it."""
        if self._conn.busy:
            self._conn = Connection(self.host)
        return self._conn

    def close(self) -> None:
        self._conn.close()

    # ---- negotiation -------------------------------------------------------------------
    def negotiate(self) -> str:
        """``HEAD /_ping`` (then ``GET`` if that fails) and pick min(1.41, server's version)."""
        if self.version is not None:
            return self.version
        conn = self.default_connection()
        resp = conn.request("HEAD", "/_ping")
        resp.read()
        if resp.status >= 300:
            resp = conn.request("GET", "/_ping")
            resp.read()
        server = resp.header("api-version")
        if not server:
            self.version = FALLBACK_API_VERSION
        elif version_tuple(server) < version_tuple(MAX_API_VERSION):
            self.version = server
        else:
            self.version = MAX_API_VERSION
        return self.version

    def url(self, path: str, params: Params = None) -> str:
        q = encode_query(params)
        return f"/v{self.negotiate()}{path}" + (f"?{q}" if q else "")

    # ---- requests ----------------------------------------------------------------------
    @staticmethod
    def _check(resp: Response) -> Response:
        if resp.status >= 400:
            raw = resp.read()
            raise APIError(resp.status, error_message(raw, resp.status))
        return resp

    def request(
        self,
        method: str,
        path: str,
        params: Params = None,
        json_body: Any = None,
        body: bytes | Iterable[bytes] | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
        conn: Connection | None = None,
    ) -> Response:
        """Send a request and return the open response (body unread); raises APIError."""
        target = self.url(path, params)
        hdrs = dict(headers or {})
        if json_body is not None:
            body = encode_json(json_body)
            hdrs.setdefault("Content-Type", "application/json")
        return self._check((conn or self.default_connection()).request(method, target, body, hdrs))

    def call(
        self,
        method: str,
        path: str,
        params: Params = None,
        json_body: Any = None,
        body: bytes | Iterable[bytes] | BinaryIO | None = None,
        headers: dict[str, str] | None = None,
        conn: Connection | None = None,
    ) -> Any:
        """Request and decode a JSON reply (``None`` for an empty body)."""
        raw = self.request(method, path, params, json_body, body, headers, conn).read()
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")

    def send_only(self, method: str, path: str, params: Params = None) -> Connection:
        """Write a body-less request now; read its reply later from the returned connection.

        This is how ``wait`` is registered before ``start``: the kept-alive connection is handed
        over to the caller and later calls use a new one.
        """
        target = self.url(path, params)
        conn = self.default_connection()
        conn.send(method, target)
        return conn

    def read_reply(self, conn: Connection, method: str = "POST") -> Any:
        """Read and decode the JSON reply of a request sent with :meth:`send_only`."""
        raw = self._check(conn.response(method)).read()
        return json.loads(raw) if raw.strip() else None

    def hijack(
        self, path: str, params: Params = None, json_body: Any = None, conn: Connection | None = None
    ) -> Response:
        """POST with ``Upgrade: tcp``; returns the 101 (or 200) response whose socket is now a pipe."""
        conn = conn or self.connection()
        headers = {"Connection": "Upgrade", "Upgrade": "tcp"}
        body = None
        if json_body is not None:
            body = encode_json(json_body)
            headers["Content-Type"] = "application/json"
        else:
            headers["Content-Type"] = "text/plain"
        return self._check(conn.request("POST", self.url(path, params), body, headers))

    # ---- convenience -------------------------------------------------------------------
    def inspect_container(self, ref: str) -> dict[str, Any]:
        return self.call("GET", f"/containers/{quote_path(ref)}/json")

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return self.call("GET", f"/images/{quote_path(ref)}/json")

    def create_container(self, config: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        return self.call("POST", "/containers/create", {"name": name}, json_body=config)

    def start_container(self, ref: str, conn: Connection | None = None) -> None:
        self.request("POST", f"/containers/{quote_path(ref)}/start", conn=conn).read()

    def resize(self, kind: str, ref: str, height: int, width: int) -> None:
        self.request("POST", f"/{kind}/{quote_path(ref)}/resize", {"h": height, "w": width}).read()

    def kill(self, ref: str, signal: str | None = None) -> None:
        self.request("POST", f"/containers/{quote_path(ref)}/kill", {"signal": signal}).read()


def error_message(raw: bytes, status: int) -> str:
    """The ``message`` of a Docker error body, or the body's text."""
    try:
        data = json.loads(raw)
        if isinstance(data, dict) and "message" in data:
            return str(data["message"])
    except ValueError:
        pass
    text = raw.decode("utf-8", "replace").strip()
    return text or f"HTTP {status}"
