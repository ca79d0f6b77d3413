"""Wire-level compatibility: what the real clients rely on, checked with raw HTTP over the socket.

Each test pins one rule of /work/shared/design/ENGINE-API.md (§1 transport, §2 negotiation,
§3 errors, §6 attach/wait, §7 exec) that the CLI or SDK depends on but that their own output
would hide. Containers made here are force-removed by the ``berth`` fixture.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import socket
import struct
import tarfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

HEX64 = re.compile(r"^[0-9a-f]{64}$")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 30) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self._path)
        self.sock = s


class Api:
    def __init__(self, sock: str) -> None:
        self.sock = sock

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, http.client.HTTPMessage, bytes]:
        conn = UnixHTTPConnection(self.sock)
        try:
            hdrs = dict(headers or {})
            if isinstance(body, dict):
                body = json.dumps(body).encode()
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            return r.status, r.headers, r.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: dict | None = None, expect: int = 200):
        status, _, data = self.request(method, path, body)
        assert status == expect, (status, data)
        return json.loads(data) if data.strip() else None

    def create(self, body: dict, name: str | None = None) -> str:
        path = "/v1.41/containers/create" + (f"?name={name}" if name else "")
        return self.json("POST", path, body, expect=201)["Id"]

    def raw(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(30)
        s.connect(self.sock)
        return s


@pytest.fixture
def api(berth) -> Api:
    return Api(berth.daemon.sock)


def read_head(s: socket.socket) -> tuple[str, dict[str, str], bytes]:
    """Read a response head from a raw socket: (status line, headers lowercased, extra bytes)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise AssertionError(f"connection closed before the response head: {buf!r}")
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    headers = {}
    for ln in lines[1:]:
        k, v = ln.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    return lines[0], headers, rest


def read_all(s: socket.socket, initial: bytes = b"") -> bytes:
    buf = initial
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return buf
        buf += chunk


def read_chunked(s: socket.socket, initial: bytes = b"") -> bytes:
    """Read a chunked body to its last chunk (the connection stays open: keep-alive)."""
    buf = initial
    while True:
        try:
            return _dechunk_complete(buf)
        except _Incomplete:
            pass
        chunk = s.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed inside a chunked body: {buf!r}")
        buf += chunk


class _Incomplete(Exception):
    pass


def _dechunk_complete(data: bytes) -> bytes:
    out = b""
    while True:
        if b"\r\n" not in data:
            raise _Incomplete
        size_s, rest = data.split(b"\r\n", 1)
        size = int(size_s.split(b";")[0], 16)
        if size == 0:
            return out
        if len(rest) < size + 2:
            raise _Incomplete
        out += rest[:size]
        data = rest[size + 2:]


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_s, data = data.split(b"\r\n", 1)
        size = int(size_s.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2:]
    return out


def frames(data: bytes) -> list[tuple[int, bytes]]:
    out = []
    while data:
        assert len(data) >= 8, data
        kind, size = data[0], struct.unpack(">I", data[4:8])[0]
        assert data[1:4] == b"\0\0\0", data[:8]
        out.append((kind, data[8:8 + size]))
        data = data[8 + size:]
    return out


def joined(fr: list[tuple[int, bytes]], kind: int) -> bytes:
    return b"".join(p for k, p in fr if k == kind)


def hijack_request(method: str, path: str, body: bytes = b"", content_type: str = "text/plain") -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: api.moby.localhost\r\nUser-Agent: Docker-Client/28.2.2 (linux)\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: {content_type}\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n").encode() + body


def bb(cmd: list[str], **extra) -> dict:
    """A minimal create body, like the SDK's."""
    body = {"Image": "busybox", "Cmd": cmd, "AttachStdout": True, "AttachStderr": True,
            "HostConfig": {"NetworkMode": "default"}}
    body.update(extra)
    return body


# ---------------------------------------------------------------------------------------------
# §1, §2: transport and negotiation


def test_ping_head_and_get(api):
    status, h, body = api.request("HEAD", "/_ping")
    assert status == 200
    assert h["Api-Version"] == "1.41"
    assert h["Docker-Experimental"] == "false"
    assert h["Ostype"] == "linux"
    assert h["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert h["Pragma"] == "no-cache"
    assert h["Content-Type"] == "text/plain; charset=utf-8"
    assert "Date" in h
    assert body == b""
    status, h, body = api.request("GET", "/_ping")
    assert (status, body) == (200, b"OK")
    status, _, body = api.request("GET", "/v1.41/_ping")  # the SDK's ping()
    assert (status, body) == (200, b"OK")


def test_server_header_on_every_response(api):
    for method, path in (("HEAD", "/_ping"), ("GET", "/v1.41/version"), ("GET", "/v1.41/containers/json"),
                         ("GET", "/v1.41/containers/nosuch-ctr/json")):
        _, h, _ = api.request(method, path)
        assert re.match(r"^Docker/\S+ \(linux\)$", h["Server"]), (method, path, h["Server"])


def test_version_routes(api):
    for prefix in ("", "/v1.24", "/v1.40", "/v1.41"):
        status, h, body = api.request("GET", prefix + "/version")
        assert status == 200, prefix
        assert h["Content-Type"].startswith("application/json")
        assert h["Api-Version"] == "1.41"
        v = json.loads(body)
        assert v["ApiVersion"] == "1.41" and v["MinAPIVersion"] == "1.12"


def test_version_too_new_or_too_old(api):
    status, h, body = api.request("GET", "/v1.99/version")
    assert status == 400
    assert h["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"message": "client version 1.99 is too new. Maximum supported API version is 1.41"}
    status, _, body = api.request("GET", "/v1.11/version")
    assert status == 400
    assert "too old" in json.loads(body)["message"]


def test_unknown_route(api):
    status, h, body = api.request("GET", "/v1.41/nonexistent/route")
    assert status == 404
    assert json.loads(body) == {"message": "page not found"}
    assert h["Api-Version"] == "1.41"


def test_create_content_type_and_malformed_json(api):
    status, _, body = api.request("POST", "/v1.41/containers/create", b"x=1",
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 400
    assert json.loads(body)["message"] == (
        "Content-Type specified (application/x-www-form-urlencoded) must be 'application/json'")
    status, _, body = api.request("POST", "/v1.41/containers/create", b"{not json",
                                  {"Content-Type": "application/json"})
    assert status == 500
    assert json.loads(body)["message"]


def test_create_ignores_unknown_fields_and_replies_201(api):
    body = bb(["true"], FutureField={"x": 1},
              NetworkingConfig={"EndpointsConfig": {"default": {"GwPriority": 0, "DNSNames": None}}})
    status, h, data = api.request("POST", "/v1.41/containers/create", body)
    assert status == 201, data
    reply = json.loads(data)
    assert HEX64.match(reply["Id"])
    assert reply["Warnings"] == []


def test_query_booleans_and_filter_shapes(api):
    name = f"bt-{uuid.uuid4().hex[:10]}"
    cid = api.create(bb(["true"]), name=name)
    for true in ("1", "True", "true", "yes"):
        assert cid in {c["Id"] for c in api.json("GET", f"/v1.41/containers/json?all={true}")}, true
    for false in ("0", "False", "false", "no", "none", ""):
        assert cid not in {c["Id"] for c in api.json("GET", f"/v1.41/containers/json?all={false}")}, false
    cli_shape = quote(json.dumps({"name": {name: True}}))
    sdk_shape = quote(json.dumps({"name": [name]}))
    for f in (cli_shape, sdk_shape):
        assert [c["Id"] for c in api.json("GET", f"/v1.41/containers/json?all=1&filters={f}")] == [cid]
    # keys AND, values OR
    both = quote(json.dumps({"name": [name], "status": ["created", "running"]}))
    assert [c["Id"] for c in api.json("GET", f"/v1.41/containers/json?all=1&filters={both}")] == [cid]
    none = quote(json.dumps({"name": [name], "status": ["running"]}))
    assert api.json("GET", f"/v1.41/containers/json?all=1&filters={none}") == []


def test_fully_qualified_hub_names(api):
    plain = api.json("GET", "/v1.41/images/busybox/json")
    for ref in ("busybox:latest", "docker.io/library/busybox", "docker.io/library/busybox:latest",
                "library/busybox"):
        assert api.json("GET", f"/v1.41/images/{ref}/json")["Id"] == plain["Id"], ref
    cid = api.create({**bb(["true"]), "Image": "docker.io/library/busybox:latest"})
    assert api.json("GET", f"/v1.41/containers/{cid}/json")["Image"] == plain["Id"]


# ---------------------------------------------------------------------------------------------
# §3: errors and no-op replies


def test_error_bodies(api):
    status, h, body = api.request("GET", "/v1.41/containers/nosuch-ctr/json")
    assert status == 404
    assert h["Content-Type"].startswith("application/json")
    assert json.loads(body) == {"message": "No such container: nosuch-ctr"}
    status, _, body = api.request("POST", "/v1.41/containers/create", bb(["true"], Image="nosuch-img"))
    assert status == 404
    assert json.loads(body) == {"message": "No such image: nosuch-img:latest"}


def test_noop_start_and_stop_are_304(api):
    cid = api.create(bb(["sleep", "300"]))
    status, _, _ = api.request("POST", f"/v1.41/containers/{cid}/start")
    assert status == 204
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/start")
    assert (status, body) == (304, b"")
    status, _, _ = api.request("POST", f"/v1.41/containers/{cid}/stop?t=1")
    assert status == 204
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/stop?t=1")
    assert (status, body) == (304, b"")


def test_kill_signal_spellings(api):
    cid = api.create(bb(["sh", "-c", "trap 'echo w' WINCH; trap 'echo u' USR1; "
                                     "echo ready; while true; do sleep 0.1; done"]))
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    for sig in ("WINCH", "SIGWINCH", "28", "USR1", "SIGUSR1", "10"):
        status, _, body = api.request("POST", f"/v1.41/containers/{cid}/kill?signal={sig}")
        assert status == 204, (sig, body)
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/kill?signal=NOPE")
    assert status == 400, body
    assert api.request("POST", f"/v1.41/containers/{cid}/kill")[0] == 204
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/wait")
    assert json.loads(body) == {"Error": None, "StatusCode": 137}


# ---------------------------------------------------------------------------------------------
# §6: attach and wait registered before start


def test_attach_and_wait_before_start(api):
    cid = api.create(bb(["sh", "-c", "echo out1; echo err1 >&2; exit 3"]))
    att = api.raw()
    att.sendall(hijack_request("POST", f"/v1.41/containers/{cid}/attach?stderr=1&stdout=1&stream=1"))
    line, h, rest = read_head(att)
    assert line == "HTTP/1.1 101 UPGRADED"
    assert h["content-type"] == "application/vnd.docker.raw-stream"
    assert h["connection"].lower() == "upgrade"
    assert h["upgrade"] == "tcp"
    att.shutdown(socket.SHUT_WR)  # the CLI half-closes when it has no stdin

    wait = api.raw()
    wait.sendall(f"POST /v1.41/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 0\r\n\r\n".encode())
    wline, wh, wrest = read_head(wait)  # the headers come at once, before the container starts
    assert wline.startswith("HTTP/1.1 200")
    assert wh.get("transfer-encoding") == "chunked"

    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    fr = frames(read_all(att, rest))  # the daemon closes the stream at exit
    assert joined(fr, 1) == b"out1\n"
    assert joined(fr, 2) == b"err1\n"
    assert {k for k, _ in fr} <= {1, 2}
    body = read_chunked(wait, wrest)
    assert json.loads(body) == {"Error": None, "StatusCode": 3}
    att.close()
    wait.close()


def test_attach_stdin_half_close(api):
    cid = api.create(bb(["cat"], AttachStdin=True, OpenStdin=True, StdinOnce=True))
    att = api.raw()
    att.sendall(hijack_request("POST", f"/v1.41/containers/{cid}/attach?stderr=1&stdin=1&stdout=1&stream=1"))
    line, _, rest = read_head(att)
    assert line == "HTTP/1.1 101 UPGRADED"
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    att.sendall(b"line1\nline2\n")
    att.shutdown(socket.SHUT_WR)  # stdin EOF: StdinOnce closes cat's stdin, output still flows
    fr = frames(read_all(att, rest))
    assert joined(fr, 1) == b"line1\nline2\n"
    att.close()
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/wait")
    assert json.loads(body)["StatusCode"] == 0


def test_tty_attach_is_raw_and_resize(api):
    cid = api.create(bb(["sh", "-c", "read x; stty size; echo got $x"], Tty=True, OpenStdin=True,
                        AttachStdin=True, StdinOnce=True))
    att = api.raw()
    att.sendall(hijack_request("POST", f"/v1.41/containers/{cid}/attach?stderr=1&stdin=1&stdout=1&stream=1"))
    line, _, rest = read_head(att)
    assert line == "HTTP/1.1 101 UPGRADED"
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/resize?h=30&w=100")
    assert (status, body) == (200, b"")
    att.sendall(b"hello\n")
    out = read_all(att, rest)
    # no frame headers under a tty: the raw pty stream, echo and CRLF included
    assert b"30 100\r\n" in out, out
    assert b"got hello\r\n" in out, out
    assert not out.startswith(b"\x01\x00\x00\x00")
    att.close()


def test_wait_conditions(api):
    cid = api.create(bb(["true"]))
    # not-running (the default) of a created container answers at once with its exit code 0
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/wait")
    assert status == 200 and json.loads(body) == {"Error": None, "StatusCode": 0}

    auto = api.create(bb(["sh", "-c", "exit 4"], HostConfig={"NetworkMode": "default", "AutoRemove": True}))
    wait = api.raw()
    wait.sendall(f"POST /v1.41/containers/{auto}/wait?condition=removed HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 0\r\n\r\n".encode())
    wline, _, wrest = read_head(wait)
    assert wline.startswith("HTTP/1.1 200")
    assert api.request("POST", f"/v1.41/containers/{auto}/start")[0] == 204
    body = read_chunked(wait, wrest)
    assert json.loads(body) == {"Error": None, "StatusCode": 4}
    wait.close()
    assert api.request("GET", f"/v1.41/containers/{auto}/json")[0] == 404


def test_wait_hangup_does_not_hurt(api):
    cid = api.create(bb(["sleep", "300"]))
    wait = api.raw()
    wait.sendall(f"POST /v1.41/containers/{cid}/wait?condition=next-exit HTTP/1.1\r\nHost: x\r\n"
                 "Content-Length: 0\r\n\r\n".encode())
    read_head(wait)
    wait.close()  # `run -d` drops its wait
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    assert api.json("GET", f"/v1.41/containers/{cid}/json")["State"]["Running"] is True


def test_logs_framing_and_timestamps(api):
    cid = api.create(bb(["sh", "-c", "echo out1; echo err1 >&2"]))
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    api.request("POST", f"/v1.41/containers/{cid}/wait")
    status, _, body = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=1")
    assert status == 200
    fr = frames(body)
    assert joined(fr, 1) == b"out1\n" and joined(fr, 2) == b"err1\n"
    status, _, body = api.request("GET", f"/v1.41/containers/{cid}/logs?stdout=1&stderr=0&timestamps=1")
    [(kind, payload)] = frames(body)
    assert kind == 1
    assert re.match(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{1,9}Z out1\n$", payload), payload
    status, _, body = api.request("GET", f"/v1.41/containers/{cid}/logs")
    assert status == 400


# ---------------------------------------------------------------------------------------------
# §7: exec


def test_exec_hijack_and_inspect(api):
    cid = api.create(bb(["sleep", "300"]))
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    ex = api.json("POST", f"/v1.41/containers/{cid}/exec",
                  {"AttachStdout": True, "AttachStderr": True, "Cmd": ["sh", "-c", "echo o; echo e >&2; exit 2"],
                   "Env": ["X=1"], "Tty": False, "Privileged": False, "User": "", "WorkingDir": ""},
                  expect=201)
    eid = ex["Id"]
    s = api.raw()
    body = json.dumps({"Detach": False, "Tty": False}).encode()
    s.sendall(hijack_request("POST", f"/v1.41/exec/{eid}/start", body, "application/json"))
    line, h, rest = read_head(s)
    assert line == "HTTP/1.1 101 UPGRADED"
    assert h["api-version"] == "1.41"
    s.shutdown(socket.SHUT_WR)
    fr = frames(read_all(s, rest))
    assert joined(fr, 1) == b"o\n" and joined(fr, 2) == b"e\n"
    s.close()
    info = api.json("GET", f"/v1.41/exec/{eid}/json")
    assert info["ExitCode"] == 2
    assert info["Running"] is False
    assert info["ContainerID"] == cid
    assert info["ProcessConfig"]["entrypoint"] == "sh"
    assert info["ProcessConfig"]["arguments"] == ["-c", "echo o; echo e >&2; exit 2"]
    for key in ("ID", "OpenStdin", "OpenStdout", "OpenStderr", "CanRemove", "DetachKeys", "Pid"):
        assert key in info, key


def test_exec_detached_start(api):
    cid = api.create(bb(["sleep", "300"]))
    assert api.request("POST", f"/v1.41/containers/{cid}/start")[0] == 204
    eid = api.json("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["true"]}, expect=201)["Id"]
    status, _, body = api.request("POST", f"/v1.41/exec/{eid}/start", {"Detach": True, "Tty": False})
    assert (status, body) == (200, b"")


def test_exec_errors(api):
    cid = api.create(bb(["true"]))
    status, _, body = api.request("POST", f"/v1.41/containers/{cid}/exec", {"Cmd": ["true"]})
    assert status == 409
    assert json.loads(body) == {"message": f"Container {cid} is not running"}
    status, _, body = api.request("GET", "/v1.41/exec/nosuchexec/json")
    assert status == 404


# ---------------------------------------------------------------------------------------------
# §10: import with a chunked body, as the CLI streams it


def test_import_chunked_body(api, busybox_tar: Path):
    repo = f"bt/chunked-{uuid.uuid4().hex[:8]}"
    data = busybox_tar.read_bytes()
    s = api.raw()
    changes = quote('CMD ["echo","chunked"]')
    s.sendall((f"POST /v1.41/images/create?fromSrc=-&repo={repo}:v1&message=&changes={changes} HTTP/1.1\r\n"
               "Host: api.moby.localhost\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n").encode())
    for i in range(0, len(data), 1 << 16):
        part = data[i:i + (1 << 16)]
        s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
    s.sendall(b"0\r\n\r\n")
    line, h, rest = read_head(s)
    assert line.startswith("HTTP/1.1 200")
    assert h["content-type"].startswith("application/json")
    body = read_chunked(s, rest)
    s.close()
    msg = json.loads(body.splitlines()[0])
    assert re.match(r"^sha256:[0-9a-f]{64}$", msg["status"]), msg
    try:
        img = api.json("GET", f"/v1.41/images/{repo}:v1/json")
        assert img["Id"] == msg["status"]
        assert img["Config"]["Cmd"] == ["echo", "chunked"]
    finally:
        api.request("DELETE", f"/v1.41/images/{repo}:v1?force=1")


def test_image_remove_reply(api, busybox_tar: Path):
    repo = f"bt/rmi-{uuid.uuid4().hex[:8]}"
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as t:
        info = tarfile.TarInfo("hello.txt")
        payload = uuid.uuid4().hex.encode()  # a distinct image each run
        info.size = len(payload)
        t.addfile(info, io.BytesIO(payload))
    status, _, body = api.request("POST", f"/v1.41/images/create?fromSrc=-&repo={repo}:v1", tar.getvalue(),
                                  {"Content-Type": "text/plain"})
    assert status == 200, body
    image_id = json.loads(body.splitlines()[0])["status"]
    status, _, body = api.request("DELETE", f"/v1.41/images/{repo}:v1")
    assert status == 200, body
    reply = json.loads(body)
    # dockerd lists the untagged name, the image, then each layer it deleted
    assert reply[:2] == [{"Untagged": f"{repo}:v1"}, {"Deleted": image_id}]
    assert all(set(r) == {"Deleted"} and r["Deleted"].startswith("sha256:") for r in reply[2:])
