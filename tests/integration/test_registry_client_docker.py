"""docker push / pull / login through berthd against real registries on 127.0.0.1: our own
registry server and Debian's reference registry (docker-registry 2.8), with and without
htpasswd auth. Each registry is started by the test and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.integration.conftest import REPO

REFERENCE = "/usr/bin/docker-registry"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"registry exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError("registry did not start")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


def _htpasswd(path: Path, user: str, password: str) -> Path:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode()
    path.write_text(f"{user}:{hashed}\n")
    return path


@contextlib.contextmanager
def our_registry(root: Path, htpasswd: Path | None = None) -> Iterator[str]:
    argv = [sys.executable, "-m", "berth.registry.server", "--addr", "127.0.0.1:0", "--root", str(root)]
    if htpasswd:
        argv += ["--htpasswd", str(htpasswd)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=REPO, text=True)
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        m = re.search(r"listening on http://(127\.0\.0\.1:\d+)", line)
        assert m, line
        yield m.group(1)
    finally:
        _stop(proc)


@contextlib.contextmanager
def reference_registry(base: Path, htpasswd: Path | None = None) -> Iterator[str]:
    port = _free_port()
    cfg = base / "config.yml"
    auth = (f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n" if htpasswd else "")
    cfg.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {base / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth)
    proc = subprocess.Popen([REFERENCE, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                            stderr=open(base / "registry.log", "wb"))
    try:
        _wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


needs_reference = pytest.mark.skipif(not os.path.exists(REFERENCE), reason="docker-registry not installed")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


def image_id(berth, ref: str) -> str:
    r = berth.docker("image", "inspect", "-f", "{{.Id}}", ref, check=True)
    return r.stdout.strip()


def _small_tar(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "small.tar"
    with tarfile.open(p, "w") as tf:
        data = text.encode()
        ti = tarfile.TarInfo("hello.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return p


def round_trip(berth, host: str, tmp_path: Path) -> None:
    """busybox and an imported image: push, rmi, pull, run; ids equal after the round trip."""
    repo = f"{host}/bt/busybox"
    berth.docker("tag", "busybox", f"{repo}:1", check=True)
    r = berth.docker("push", f"{repo}:1", timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"The push refers to repository [{repo}]" in r.stdout
    assert re.search(r"1: digest: sha256:[0-9a-f]{64} size: \d+", r.stdout), r.stdout
    assert "Pushed" in r.stdout or "Layer already exists" in r.stdout
    digest = re.search(r"digest: (sha256:[0-9a-f]{64})", r.stdout).group(1)
    before = image_id(berth, f"{repo}:1")
    r = berth.docker("rmi", f"{repo}:1", check=True)
    assert f"Untagged: {repo}:1" in r.stdout
    r = berth.docker("pull", f"{repo}:1", timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1: Pulling from bt/busybox" in r.stdout
    assert f"Digest: {digest}" in r.stdout
    assert f"Status: Downloaded newer image for {repo}:1" in r.stdout
    assert image_id(berth, f"{repo}:1") == before
    r = berth.docker("run", "--rm", f"{repo}:1", "echo", "ok", timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    r = berth.docker("pull", f"{repo}:1", check=True)
    assert f"Status: Image is up to date for {repo}:1" in r.stdout
    berth.docker("rmi", f"{repo}:1", check=True)
    r = berth.docker("run", "--rm", f"{repo}:1", "echo", "ok", timeout=60)  # create 404 → pull → create
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert f"Unable to find image '{repo}:1' locally" in r.stderr
    inspect = json.loads(berth.docker("image", "inspect", f"{repo}:1", check=True).stdout)[0]
    assert f"{repo}@{digest}" in inspect["RepoDigests"]

    # an image of its own: every layer is downloaded again
    word = uuid.uuid4().hex
    imported = f"{host}/bt/imported:v1"
    berth.docker("import", str(_small_tar(tmp_path, word)), imported, check=True)
    first = image_id(berth, imported)
    r = berth.docker("push", imported, timeout=120)
    assert r.returncode == 0 and "Pushed" in r.stdout, r.stdout + r.stderr
    berth.docker("rmi", imported, check=True)
    r = berth.docker("pull", imported, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "Pull complete" in r.stdout or "Download complete" in r.stdout, r.stdout
    assert image_id(berth, imported) == first
    # by digest
    digest = re.search(r"Digest: (sha256:[0-9a-f]{64})", r.stdout).group(1)
    berth.docker("rmi", imported, check=True)
    r = berth.docker("pull", f"{host}/bt/imported@{digest}", timeout=120)
    assert r.returncode == 0, r.stderr
    assert image_id(berth, f"{host}/bt/imported@{digest}") == first
    r = berth.docker("image", "ls", "--digests", "--format", "{{.Repository}} {{.Digest}}", check=True)
    assert f"{host}/bt/imported {digest}" in r.stdout
    berth.docker("rmi", f"{host}/bt/imported@{digest}", check=True)
    berth.docker("rmi", f"{repo}:1")


def test_push_pull_our_registry(berth, tmp_path: Path):
    with our_registry(tmp_path / "reg") as host:
        round_trip(berth, host, tmp_path)
        r = berth.docker("pull", f"{host}/bt/nope:1")
        assert r.returncode == 1
        assert (f"Error response from daemon: manifest for {host}/bt/nope:1 not found: "
                "manifest unknown: manifest unknown") in r.stderr


@needs_reference
def test_push_pull_reference_registry(berth, tmp_path: Path):
    with reference_registry(tmp_path) as host:
        round_trip(berth, host, tmp_path)
        # a second repository of the same registry: the blobs are mounted, not uploaded
        berth.docker("tag", "busybox", f"{host}/bt/other:1", check=True)
        r = berth.docker("push", f"{host}/bt/other:1", check=True, timeout=120)
        assert "Mounted from bt/busybox" in r.stdout or "Layer already exists" in r.stdout, r.stdout
        berth.docker("rmi", f"{host}/bt/other:1")


@pytest.mark.parametrize("server", ["ours", "reference"])
def test_login_and_push_with_auth(berth, tmp_path: Path, docker_config: Path, server: str):
    if server == "reference" and not os.path.exists(REFERENCE):
        pytest.skip("docker-registry not installed")
    htpasswd = _htpasswd(tmp_path / "htpasswd", "bt", "s3cret")
    start = our_registry(tmp_path / "reg", htpasswd) if server == "ours" else \
        reference_registry(tmp_path, htpasswd)
    with start as host:
        ref = f"{host}/bt/private:1"
        berth.docker("tag", "busybox", ref, check=True)
        r = berth.docker("push", ref, timeout=60)
        assert r.returncode == 1
        assert "no basic auth credentials" in r.stderr, r.stdout + r.stderr
        r = berth.docker("login", "-u", "bt", "--password-stdin", host, input="wrong\n")
        assert r.returncode == 1
        assert f"login attempt to http://{host}/v2/ failed with status: 401 Unauthorized" in r.stderr
        r = berth.docker("login", "-u", "bt", "--password-stdin", host, input="s3cret\n")
        assert r.returncode == 0, r.stderr
        assert "Login Succeeded" in r.stdout
        assert host in json.loads((docker_config / "config.json").read_text())["auths"]
        r = berth.docker("push", ref, timeout=120)
        assert r.returncode == 0, r.stderr
        before = image_id(berth, ref)
        berth.docker("rmi", ref, check=True)
        r = berth.docker("pull", ref, timeout=120)
        assert r.returncode == 0, r.stderr
        assert image_id(berth, ref) == before
        berth.docker("rmi", ref, check=True)
        berth.docker("logout", host, check=True)
        r = berth.docker("pull", ref, timeout=60)
        assert r.returncode == 1
        assert "no basic auth credentials" in r.stderr


def test_raw_api_pull_stream_and_auth(berth, tmp_path: Path):
    """The raw Engine API: progress lines as dockerd writes them, /auth answers."""
    import http.client

    class UnixHTTP(http.client.HTTPConnection):
        def __init__(self, path: str):
            super().__init__("localhost")
            self.path = path

        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.connect(self.path)

    def call(method: str, url: str, body: bytes | None = None, headers: dict | None = None):
        c = UnixHTTP(berth.daemon.sock)
        c.request(method, url, body=body, headers=headers or {})
        resp = c.getresponse()
        data = resp.read()
        c.close()
        return resp.status, data

    with our_registry(tmp_path / "reg") as host:
        berth.docker("import", str(_small_tar(tmp_path, "raw")), f"{host}/bt/raw:1", check=True)
        status, data = call("POST", f"/v1.41/images/{host}/bt/raw/push?tag=1",
                            headers={"X-Registry-Auth": "e30="})
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        assert status == 200
        assert lines[0] == {"status": f"The push refers to repository [{host}/bt/raw]"}
        assert lines[-1]["aux"]["Tag"] == "1" and lines[-1]["progressDetail"] == {}
        berth.docker("rmi", f"{host}/bt/raw:1", check=True)
        status, data = call("POST", f"/v1.41/images/create?fromImage={host}/bt/raw&tag=1",
                            headers={"X-Registry-Auth": "e30="})
        lines = [json.loads(line) for line in data.splitlines() if line.strip()]
        assert status == 200
        assert lines[0] == {"status": "Pulling from bt/raw", "id": "1"}
        by_status = {ev["status"]: ev for ev in lines if "id" in ev and ev["id"] != "1"}
        for s in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
                  "Extracting", "Pull complete"):
            assert s in by_status, lines
        dl = by_status["Downloading"]
        assert set(dl["progressDetail"]) == {"current", "total"} and dl["progress"].startswith("[")
        assert re.fullmatch(r"[0-9a-f]{12}", dl["id"])
        assert lines[-1] == {"status": f"Status: Downloaded newer image for {host}/bt/raw:1"}
        status, data = call("POST", f"/images/create?fromImage={host}/bt/raw&tag=missing")
        assert status == 404
        assert json.loads(data)["message"] == (f"manifest for {host}/bt/raw:missing not found: "
                                               "manifest unknown: manifest unknown")
        status, data = call("POST", "/v1.41/auth", json.dumps(
            {"username": "", "password": "", "serveraddress": host}).encode(),
            {"Content-Type": "application/json"})
        assert status == 200 and json.loads(data) == {"IdentityToken": "", "Status": "Login Succeeded"}
        berth.docker("rmi", f"{host}/bt/raw:1", check=True)
    shutil.rmtree(tmp_path / "reg", ignore_errors=True)
