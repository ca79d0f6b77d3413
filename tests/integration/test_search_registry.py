"""``search`` end to end: the berth CLI and docker's CLI → berthd → ``berth registry serve``'s
``/v1/search``, on 127.0.0.1 only, without and with htpasswd auth (after ``login``)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

REPO = Path(__file__).resolve().parents[2]


def serve(root: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-m", "berth.registry.server", "--addr", "127.0.0.1:0",
                             "--root", str(root), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    return proc, line.strip().rsplit("//", 1)[1]


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


@pytest.fixture
def open_registry(tmp_path: Path) -> Iterator[str]:
    proc, host = serve(tmp_path / "open")
    yield host
    stop(proc)


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[str]:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("bob:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    proc, host = serve(tmp_path / "auth", "--htpasswd", str(htpasswd))
    yield host
    stop(proc)


def table(*names: str) -> str:
    """docker's default search table for results without description, stars or [OK]."""
    width = max([len(n) + 3 for n in names] + [10])
    out = "NAME".ljust(width) + "DESCRIPTION   STARS     OFFICIAL\n"
    return out + "".join(n.ljust(width) + " " * 14 + "0".ljust(10) + "\n" for n in names)


def push_two(berth, host: str) -> list[str]:
    refs = [f"{host}/bt/searchme:1", f"{host}/bt/other:1"]
    for ref in refs:
        berth("tag", "busybox", ref, check=True)
        berth("push", ref, check=True)
    return refs


def test_search_our_registry(berth, open_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    host = open_registry
    refs = push_two(berth, host)
    try:
        for run in (berth, berth.docker):
            r = run("search", f"{host}/searchme")
            assert (r.returncode, r.stdout, r.stderr) == (0, table("bt/searchme"), "")
            r = run("search", f"{host}/bt")
            assert (r.returncode, r.stdout) == (0, table("bt/other", "bt/searchme"))
            r = run("search", "--limit", "1", "--format", "{{.Name}} {{.StarCount}} [{{.IsOfficial}}]", f"{host}/bt")
            assert (r.returncode, r.stdout) == (0, "bt/other 0 []\n")
            r = run("search", "--format", "json", "-f", "is-official=false", f"{host}/searchme")
            assert r.stdout == '{"Description":"","IsOfficial":"false","Name":"bt/searchme","StarCount":"0"}\n'
            r = run("search", "-f", "is-official=true", f"{host}/searchme")
            assert (r.returncode, r.stdout) == (0, table())
            r = run("search", f"{host}/nothing-like-it")
            assert (r.returncode, r.stdout) == (0, table())
            r = run("search", "-f", "stars=many", f"{host}/bt")
            assert (r.returncode, r.stderr) == (
                1, "Error response from daemon: invalid filter 'stars=many': strconv.Atoi: parsing \"many\": "
                   "invalid syntax\n")
            r = run("search", "--limit", "101", f"{host}/bt")
            assert (r.returncode, r.stderr) == (
                1, "Error response from daemon: limit 101 is outside the range of [1, 100]\n")
    finally:
        for ref in refs:
            berth("rmi", "-f", ref)


def test_search_errors(berth) -> None:
    for run in (berth, berth.docker):
        r = run("search", "127.0.0.1:1/x")
        assert r.returncode == 1
        assert r.stderr.startswith('Error response from daemon: invalid registry endpoint "http://127.0.0.1:1/v1/". '
                                   'HTTPS attempt: Get "https://127.0.0.1:1/v1/_ping": ')
        r = run("search", "busybox")  # Docker Hub: refused, the suite never leaves loopback
        assert r.returncode == 1 and "BERTH_REGISTRY_LOOPBACK_ONLY" in r.stderr


def test_search_index_without_search(berth, tmp_path: Path) -> None:
    # a registry that does not offer search: any /v1/ path is 404
    import http.server
    import threading

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        for run in (berth, berth.docker):
            r = run("search", f"127.0.0.1:{server.server_port}/x")
            assert (r.returncode, r.stdout, r.stderr) == (
                1, "", "Error response from daemon: Unexpected status code 404\n")
    finally:
        server.shutdown()
        server.server_close()


def test_search_with_htpasswd(berth, auth_registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    host = auth_registry
    for run in (berth, berth.docker):
        r = run("search", f"{host}/searchme")
        assert (r.returncode, r.stderr) == (1, "Error response from daemon: Unexpected status code 401\n")
    berth("login", "-u", "bob", "--password-stdin", host, input="s3cret\n", check=True)
    refs = push_two(berth, host)
    try:
        for run in (berth, berth.docker):
            r = run("search", f"{host}/searchme")
            assert (r.returncode, r.stdout, r.stderr) == (0, table("bt/searchme"), "")
        wrong = base64.b64encode(b"bob:wrong").decode()
        (tmp_path / "cfg" / "config.json").write_text(json.dumps({"auths": {host: {"auth": wrong}}}))
        r = berth("search", f"{host}/searchme")
        assert (r.returncode, r.stderr) == (1, "Error response from daemon: Unexpected status code 401\n")
    finally:
        for ref in refs:
            berth("rmi", "-f", ref)
