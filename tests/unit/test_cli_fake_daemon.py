"""The CLI against a fake Engine API server on a unix socket (no real daemon needed)."""

from __future__ import annotations

import json
import os
import socketserver
import struct
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from test_cli_fake_engine import read_body

CID = "a" * 64


def frame(kind: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxI", kind, len(payload)) + payload


class FakeDaemon:
    """Answers a scripted subset of the Engine API and records every request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.requests: list[tuple[str, str, dict, bytes]] = []
        self.started = threading.Event()
        self.attach_done = threading.Event()
        self.exit_code = 3
        self.create_error: tuple[int, str] | None = None
        self.start_error: tuple[int, str] | None = None
        self.missing_image_once = False
        self.images: list[dict] = []
        self.containers: list[dict] = []
        self.inspect_tty = False
        daemon = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _body(self) -> bytes:
                return read_body(self)

            def _reply(self, status: int, obj: object = None, raw: bytes | None = None) -> None:
                data = raw if raw is not None else (b"" if obj is None else json.dumps(obj).encode())
                self.send_response(status)
                self.send_header("Api-Version", "1.41")
                if obj is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] if len(v) == 1 else v for k, v in parse_qs(url.query).items()}
                path = url.path
                body = self._body()
                daemon.requests.append((self.command, path, q, body))
                if path == "/_ping":
                    return self._reply(200, raw=b"OK")
                assert path.startswith("/v1.41/"), path
                path = path[len("/v1.41") :]
                if path == "/containers/create":
                    if daemon.missing_image_once:
                        daemon.missing_image_once = False
                        return self._reply(404, {"message": "No such image: busybox:latest"})
                    if daemon.create_error:
                        return self._reply(daemon.create_error[0], {"message": daemon.create_error[1]})
                    return self._reply(201, {"Id": CID, "Warnings": []})
                if path == "/images/create":
                    lines = [{"status": "Pulling from library/busybox", "id": "latest"},
                             {"status": "Downloading", "progressDetail": {"current": 1, "total": 2},
                              "progress": "[=>   ]", "id": "abc"},
                             {"status": "Pull complete", "id": "abc"},
                             {"status": "Status: Downloaded newer image for busybox:latest"}]
                    if q.get("fromSrc"):
                        lines = [{"status": "sha256:" + "b" * 64}]
                    raw = b"".join(json.dumps(x).encode() + b"\r\n" for x in lines)
                    return self._reply(200, raw=raw)
                if path == f"/containers/{CID}/attach":
                    self.send_response(101, "UPGRADED")
                    self.send_header("Content-Type", "application/vnd.docker.raw-stream")
                    self.send_header("Connection", "Upgrade")
                    self.send_header("Upgrade", "tcp")
                    self.end_headers()
                    self.wfile.flush()
                    daemon.started.wait(5)
                    if q.get("stdin") == "1":
                        echoed = self.rfile.read()  # until the client half-closes
                        self.wfile.write(frame(1, b"stdin:" + echoed))
                    self.wfile.write(frame(1, b"out1\n") + frame(2, b"err1\n") + frame(1, b"out2\n"))
                    self.wfile.flush()
                    daemon.attach_done.set()
                    self.close_connection = True
                    return None
                if path == f"/containers/{CID}/wait":
                    daemon.attach_done.wait(5)
                    return self._reply(200, {"Error": None, "StatusCode": daemon.exit_code})
                if path == f"/containers/{CID}/start":
                    if daemon.start_error:
                        return self._reply(daemon.start_error[0], {"message": daemon.start_error[1]})
                    daemon.started.set()
                    return self._reply(204)
                if path == "/images/json":
                    return self._reply(200, daemon.images)
                if path == "/containers/json":
                    return self._reply(200, daemon.containers)
                if path.startswith("/containers/") and path.endswith("/json"):
                    if "missing" in path:
                        return self._reply(404, {"message": "No such container: missing"})
                    return self._reply(200, {"Id": CID, "State": {"Status": "running", "ExitCode": 0},
                                             "Config": {"Tty": daemon.inspect_tty, "Env": ["A=1"]}})
                if path.startswith("/images/") and path.endswith("/json"):
                    return self._reply(404, {"message": "No such image: missing"})
                if path.endswith("/logs"):
                    raw = frame(1, b"log-out\n") + frame(2, b"log-err\n")
                    return self._reply(200, raw=raw)
                if path.endswith("/stop"):
                    if "bad" in path:
                        return self._reply(404, {"message": "No such container: bad"})
                    return self._reply(204)
                return self._reply(404, {"message": "page not found"})

            do_GET = do_POST = do_HEAD = do_DELETE = _handle  # noqa: N815

        class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
            daemon_threads = True

        self.server = Server(path, Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def paths(self) -> list[str]:
        return [f"{m} {p}" for m, p, _, _ in self.requests]


@pytest.fixture
def daemon(tmp_path: Path):
    d = FakeDaemon(str(tmp_path / "d.sock"))
    yield d
    d.close()


def berth(daemon: FakeDaemon, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("BERTH_HOST", None)
    env["DOCKER_HOST"] = f"unix://{daemon.path}"
    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "berth.cli.main", *args], input=stdin, capture_output=True,
                          env=env, cwd=root, timeout=20)


def test_run_prints_frames_and_exits_with_status(daemon: FakeDaemon) -> None:
    p = berth(daemon, "run", "--rm", "busybox", "sh", "-c", "echo out1")
    assert p.stdout == b"out1\nout2\n"
    assert p.stderr == b"err1\n"
    assert p.returncode == 3
    order = [x for x in daemon.paths() if "/_ping" not in x]
    # wait is written before start, on another connection, so the server may log them either way
    assert order[:2] == ["POST /v1.41/containers/create", f"POST /v1.41/containers/{CID}/attach"]
    assert sorted(order[2:]) == [f"POST /v1.41/containers/{CID}/start", f"POST /v1.41/containers/{CID}/wait"]
    create = json.loads(daemon.requests[1][3])
    assert create["Cmd"] == ["sh", "-c", "echo out1"]
    assert create["HostConfig"]["AutoRemove"] is True
    assert create["AttachStdout"] and create["AttachStderr"] and not create["AttachStdin"]
    wait_q = [q for m, p, q, _ in daemon.requests if p.endswith("/wait")][0]
    assert wait_q == {"condition": "removed"}
    attach_q = [q for m, p, q, _ in daemon.requests if p.endswith("/attach")][0]
    assert attach_q == {"stderr": "1", "stdout": "1", "stream": "1"}


def test_run_detached_prints_id(daemon: FakeDaemon) -> None:
    daemon.started.set()
    p = berth(daemon, "run", "-d", "--name", "web", "busybox", "sleep", "1")
    assert p.returncode == 0
    assert p.stdout.decode() == CID + "\n"
    create = [r for r in daemon.requests if r[1].endswith("/containers/create")][0]
    assert create[2] == {"name": "web"}
    assert not json.loads(create[3])["AttachStdout"]


def test_run_create_error(daemon: FakeDaemon) -> None:
    daemon.create_error = (409, 'Conflict. The container name "/x" is already in use')
    p = berth(daemon, "run", "--name", "x", "busybox")
    assert p.returncode == 125
    assert p.stderr.decode() == (
        'berth: Error response from daemon: Conflict. The container name "/x" is already in use\n\n'
        "Run 'berth run --help' for more information\n")


@pytest.mark.parametrize(("message", "code"), [
    ('exec: "nope": executable file not found in $PATH: unknown', 127),
    ("open /x: permission denied", 126),
])
def test_run_start_error_exit_codes(daemon: FakeDaemon, message: str, code: int) -> None:
    daemon.start_error = (400, message)
    p = berth(daemon, "run", "busybox", "nope")
    assert p.returncode == code
    assert f"Error response from daemon: {message}" in p.stderr.decode()


def test_run_pulls_missing_image(daemon: FakeDaemon) -> None:
    daemon.missing_image_once = True
    p = berth(daemon, "run", "busybox")
    assert p.returncode == 3
    err = p.stderr.decode()
    assert err.startswith("Unable to find image 'busybox:latest' locally\n")
    assert "latest: Pulling from library/busybox\n" in err
    assert "[=>" not in err
    pulls = [q for m, p, q, _ in daemon.requests if p.endswith("/images/create")]
    assert pulls == [{"fromImage": "docker.io/library/busybox", "tag": "latest"}]  # as docker 28 sends it


def test_plain_api_error(daemon: FakeDaemon) -> None:
    daemon.started.set()
    p = berth(daemon, "stop", "-t", "2", "ok", "bad")
    assert p.stdout == b"ok\n"
    assert p.stderr == b"Error response from daemon: No such container: bad\n"
    assert p.returncode == 1
    assert [q for m, p, q, _ in daemon.requests if p.endswith("/ok/stop")] == [{"t": "2"}]


def test_logs_demultiplexes(daemon: FakeDaemon) -> None:
    p = berth(daemon, "logs", "--tail", "5", "c1")
    assert (p.stdout, p.stderr, p.returncode) == (b"log-out\n", b"log-err\n", 0)
    q = [q for m, p, q, _ in daemon.requests if p.endswith("/logs")][0]
    assert q == {"stderr": "1", "stdout": "1", "tail": "5"}


def test_inspect_format_and_missing(daemon: FakeDaemon) -> None:
    p = berth(daemon, "inspect", "-f", "{{.State.Status}} {{index .Config.Env 0}}", "c1")
    assert p.stdout == b"running A=1\n"
    p = berth(daemon, "inspect", "missing")
    assert p.returncode == 1
    assert p.stderr.decode().endswith("Error: No such object: missing\n")
    assert p.stdout == b"[]\n"


def test_images_table(daemon: FakeDaemon) -> None:
    import time

    daemon.images = [{"Id": "sha256:" + "c" * 64, "RepoTags": ["busybox:latest", "bt/x:v1"], "RepoDigests": None,
                      "Created": int(time.time()) - 120, "Size": 4261574},
                     {"Id": "sha256:" + "d" * 64, "RepoTags": None, "RepoDigests": None,
                      "Created": int(time.time()) - 300, "Size": 0}]
    p = berth(daemon, "images")
    assert p.stdout.decode() == (
        "REPOSITORY   TAG       IMAGE ID       CREATED         SIZE\n"
        "busybox      latest    cccccccccccc   2 minutes ago   4.26MB\n"
        "bt/x         v1        cccccccccccc   2 minutes ago   4.26MB\n"
        "<none>       <none>    dddddddddddd   5 minutes ago   0B\n")
    p = berth(daemon, "image", "ls", "-q")
    assert p.stdout.decode().split() == ["cccccccccccc"] * 2 + ["dddddddddddd"]


def test_ps_table(daemon: FakeDaemon) -> None:
    import time

    daemon.containers = [{"Id": "e" * 64, "Names": ["/web"], "Image": "busybox", "ImageID": "sha256:" + "c" * 64,
                          "Command": "sleep 100000000000000", "Created": int(time.time()) - 150,
                          "Ports": [], "State": "running", "Status": "Up 2 seconds"}]
    p = berth(daemon, "ps")
    assert p.stdout.decode() == (
        "CONTAINER ID   IMAGE     COMMAND                  CREATED         STATUS         PORTS     NAMES\n"
        'eeeeeeeeeeee   busybox   "sleep 1000000000000…"   2 minutes ago   Up 2 seconds             web\n')
    p = berth(daemon, "ps", "-a", "--format", "{{.Names}}\t{{.Status}}", "-f", "status=running")
    assert p.stdout.decode() == "web\tUp 2 seconds\n"
    q = [q for m, p, q, _ in daemon.requests if p.endswith("/containers/json")][-1]
    assert q == {"all": "1", "filters": '{"status":{"running":true}}'}


def test_import_streams_chunked_body(daemon: FakeDaemon, tmp_path: Path) -> None:
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(b"x" * 100000)
    p = berth(daemon, "import", "-c", "CMD [\"sh\"]", "-c", "ENV A=1", "-m", "hello", str(tar), "bt/imported:v2")
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == "sha256:" + "b" * 64 + "\n"
    m, path, q, body = [r for r in daemon.requests if r[1].endswith("/images/create")][0]
    assert q == {"fromSrc": "-", "repo": "bt/imported:v2", "message": "hello", "changes": ['CMD ["sh"]', "ENV A=1"]}
    assert body == b"x" * 100000


def test_cannot_connect(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    p = subprocess.run([sys.executable, "-m", "berth.cli.main", "-H", "unix:///nonexistent/x.sock", "ps"],
                       capture_output=True, cwd=root, timeout=20)
    assert p.returncode == 1
    assert p.stderr == (b"Cannot connect to the Berth daemon at unix:///nonexistent/x.sock. "
                        b"Is the daemon running?\n")
    assert p.stdout == b""


def test_run_interactive_forwards_stdin_and_half_closes(daemon: FakeDaemon) -> None:
    p = berth(daemon, "run", "-i", "busybox", "cat", stdin=b"hello\n")
    assert p.stdout == b"stdin:hello\nout1\nout2\n"
    assert p.returncode == 3
    create = json.loads([r for r in daemon.requests if r[1].endswith("/containers/create")][0][3])
    assert (create["AttachStdin"], create["OpenStdin"], create["StdinOnce"]) == (True, True, True)
    attach_q = [q for m, p, q, _ in daemon.requests if p.endswith("/attach")][0]
    assert attach_q["stdin"] == "1"
