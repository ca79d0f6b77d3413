"""pull/push progress rendering, X-Registry-Auth, login/logout and the config file, attach checks."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import pty
import select
import stat
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from test_cli_fake_engine import ROOT, FakeEngine, run_cli, stream

L1, L2 = "a3ed95caeb02", "b49b96595fb4"
DIGEST = "sha256:" + "9" * 64
PULL = [
    {"status": "Pulling from library/busybox", "id": "latest"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": L1},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": L2},
    {"status": "Downloading", "progressDetail": {"current": 1000, "total": 2000}, "progress": "[==>  ] 1kB/2kB", "id": L1},
    {"status": "Download complete", "progressDetail": {}, "id": L1},
    {"status": "Pull complete", "progressDetail": {}, "id": L1},
    {"status": "Already exists", "progressDetail": {}, "id": L2},
    {"status": "Digest: " + DIGEST},
    {"status": "Status: Downloaded newer image for busybox:latest"},
]
PUSH = [
    {"status": "The push refers to repository [127.0.0.1:5000/bt/app]"},
    {"status": "Preparing", "progressDetail": {}, "id": L1},
    {"status": "Pushing", "progressDetail": {"current": 512, "total": 2000}, "id": L1},
    {"status": "Pushed", "progressDetail": {}, "id": L1},
    {"status": "v1: digest: sha256:" + "8" * 64 + " size: 527"},
    {"progressDetail": {}, "aux": {"Tag": "v1", "Digest": "sha256:" + "8" * 64, "Size": 527}},
]
NO_AUTH = {"errorDetail": {"message": "no basic auth credentials"}, "error": "no basic auth credentials"}


@pytest.fixture
def engine(tmp_path: Path):
    e = FakeEngine(str(tmp_path / "e.sock"))
    e.route("POST", r"/images/create", lambda r: (
        (404, {"message": "manifest for busybox:nope not found: manifest unknown: manifest unknown"})
        if r.query.get("tag") == "nope" else
        (200, stream(PULL[0], NO_AUTH)) if "fail" in r.query["fromImage"] else (200, stream(*PULL))))
    e.route("POST", r"/images/.+/push", lambda r: (200, stream(PUSH[0], NO_AUTH)) if "fail" in r.path
            else (200, stream(*PUSH)))
    e.route("POST", r"/auth", lambda r: (200, {"IdentityToken": "", "Status": "Login Succeeded"})
            if json.loads(r.body)["password"] == "good" else
            (500, {"message": "login attempt to http://127.0.0.1:5001/v2/ failed with status: 401 Unauthorized"}))
    yield e
    e.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    d = tmp_path / "dockercfg"
    d.mkdir()
    return d


def berth(engine: FakeEngine, *args: str, config: Path | None = None, stdin: bytes = b"") -> tuple[int, str, str]:
    p = run_cli(engine, "berth", *args, stdin=stdin, env={"DOCKER_CONFIG": str(config)} if config else None)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def auth_header(engine: FakeEngine, path: str) -> dict:
    raw = engine.calls(path)[-1].headers["x-registry-auth"]
    return json.loads(base64.urlsafe_b64decode(raw))


def test_pull_non_tty_prints_only_status_lines(engine: FakeEngine, config: Path) -> None:
    rc, out, err = berth(engine, "pull", "busybox", config=config)
    assert (rc, err) == (0, "")
    assert out == ("Using default tag: latest\nlatest: Pulling from library/busybox\n"
                   f"{L1}: Pulling fs layer\n{L2}: Pulling fs layer\n{L1}: Download complete\n{L1}: Pull complete\n"
                   f"{L2}: Already exists\nDigest: {DIGEST}\nStatus: Downloaded newer image for busybox:latest\n"
                   "docker.io/library/busybox:latest\n")
    req = engine.calls("/images/create")[-1]
    assert req.query == {"fromImage": "docker.io/library/busybox", "tag": "latest"}
    assert req.headers["x-registry-auth"] == "e30="
    assert berth(engine, "pull", "-q", "busybox:1.36", config=config) == (0, "docker.io/library/busybox:1.36\n", "")
    assert berth(engine, "pull", "-a", "127.0.0.1:5000/bt/app", config=config)[1].endswith("\n127.0.0.1:5000/bt/app\n")
    assert engine.calls("/images/create")[-1].query == {"fromImage": "127.0.0.1:5000/bt/app"}
    berth(engine, "pull", "busybox@" + DIGEST, config=config)
    assert engine.calls("/images/create")[-1].query == {"fromImage": "docker.io/library/busybox", "tag": DIGEST}


def test_pull_errors(engine: FakeEngine, config: Path) -> None:
    assert berth(engine, "pull", "busybox:nope", config=config) == (
        1, "", "Error response from daemon: manifest for busybox:nope not found: manifest unknown: manifest unknown\n")
    assert berth(engine, "pull", "127.0.0.1:5000/fail:v1", config=config) == (
        1, "latest: Pulling from library/busybox\n", "no basic auth credentials\n")
    assert berth(engine, "pull", "Busybox") == (
        1, "", "invalid reference format: repository name (library/Busybox) must be lowercase\n")


def _run_pty(engine: FakeEngine, *args: str, cols: int = 120) -> bytes:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, cols, 0, 0))
    env = dict(os.environ)
    env.pop("BERTH_HOST", None)
    env["DOCKER_HOST"] = f"unix://{engine.path}"
    p = subprocess.Popen([sys.executable, "-m", "berth.cli.main", *args], stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    os.close(slave)
    out = b""
    while select.select([master], [], [], 10)[0]:
        try:
            data = os.read(master, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
    p.wait(10)
    os.close(master)
    return out


def test_pull_tty_redraws_each_layer_line(engine: FakeEngine) -> None:
    out = _run_pty(engine, "pull", "busybox")
    # the exact bytes docker CLI 28.2.2 writes for this stream on a 120-column terminal
    assert out == (
        b"Using default tag: latest\r\nlatest: Pulling from library/busybox\r\n"
        b"\r\n\x1b[1A\x1b[2K\ra3ed95caeb02: Pulling fs layer \r\x1b[1B"
        b"\r\n\x1b[1A\x1b[2K\rb49b96595fb4: Pulling fs layer \r\x1b[1B"
        b"\x1b[2A\x1b[2K\ra3ed95caeb02: Downloading [=========================>                         ]"
        b"      1kB/2kB\r\x1b[2B"
        b"\x1b[2A\x1b[2K\ra3ed95caeb02: Download complete \r\x1b[2B"
        b"\x1b[2A\x1b[2K\ra3ed95caeb02: Pull complete \r\x1b[2B"
        b"\x1b[1A\x1b[2K\rb49b96595fb4: Already exists \r\x1b[1B"
        b"Digest: sha256:" + b"9" * 64 + b"\r\nStatus: Downloaded newer image for busybox:latest\r\n"
        b"docker.io/library/busybox:latest\r\n")
    narrow = _run_pty(engine, "pull", "busybox", cols=80)
    assert b"a3ed95caeb02: Downloading      1kB/2kB\r" in narrow  # no bar under 111 columns


def test_push_renders_and_sends_stored_credentials(engine: FakeEngine, config: Path) -> None:
    (config / "config.json").write_text(json.dumps({"auths": {
        "127.0.0.1:5000": {"auth": base64.b64encode(b"bob:pw").decode()},
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw2").decode()}}}))
    rc, out, err = berth(engine, "push", "127.0.0.1:5000/bt/app:v1", config=config)
    assert (rc, err) == (0, "")
    assert out == ("The push refers to repository [127.0.0.1:5000/bt/app]\n"
                   f"{L1}: Preparing\n{L1}: Pushed\nv1: digest: sha256:" + "8" * 64 + " size: 527\n")
    assert engine.calls(r"/images/.+/push")[-1].query == {"tag": "v1"}
    assert auth_header(engine, r"/images/.+/push") == {"username": "bob", "password": "pw",
                                                       "serveraddress": "127.0.0.1:5000"}
    rc, out, _ = berth(engine, "push", "bob/app", config=config)
    assert out.startswith("Using default tag: latest\n")
    req = engine.calls(r"/images/.+/push")[-1]
    assert (req.path, req.query) == ("/images/docker.io/bob/app/push", {"tag": "latest"})
    assert auth_header(engine, r"/images/.+/push")["serveraddress"] == "https://index.docker.io/v1/"
    berth(engine, "pull", "busybox", config=config)
    assert auth_header(engine, "/images/create") == {"username": "hub", "password": "pw2",
                                                      "serveraddress": "https://index.docker.io/v1/"}
    assert berth(engine, "push", "127.0.0.1:5000/fail:v1", config=config) == (
        1, "The push refers to repository [127.0.0.1:5000/bt/app]\n", "no basic auth credentials\n")
    assert berth(engine, "push", "-q", "127.0.0.1:5000/bt/app:v1", config=config) == (
        0, "127.0.0.1:5000/bt/app:v1\n", "")


def test_login_stores_credentials_mode_0600(engine: FakeEngine, config: Path) -> None:
    (config / "config.json").write_text(json.dumps({"currentContext": "default"}))
    rc, out, err = berth(engine, "login", "-u", "bob", "-p", "good", "127.0.0.1:5001", config=config)
    assert (rc, out) == (0, "Login Succeeded\n")
    path = config / "config.json"
    assert err == ("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n\n"
                   f"WARNING! Your credentials are stored unencrypted in '{path}'.\n"
                   "Configure a credential helper to remove this warning. See\n"
                   "https://docs.docker.com/go/credential-store/\n\n")
    assert json.loads(engine.calls("/auth")[-1].body) == {"username": "bob", "password": "good",
                                                          "serveraddress": "127.0.0.1:5001"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == ('{\n\t"currentContext": "default",\n\t"auths": {\n\t\t"127.0.0.1:5001": {\n'
                                '\t\t\t"auth": "Ym9iOmdvb2Q="\n\t\t}\n\t}\n}')
    rc, out, err = berth(engine, "login", "-u", "bob", "--password-stdin", "https://Reg.example.com/v2/",
                         config=config, stdin=b"good\n")
    assert rc == 0 and not err.startswith("WARNING! Using --password")
    assert json.loads(engine.calls("/auth")[-1].body)["serveraddress"] == "Reg.example.com"
    berth(engine, "login", "-u", "hub", "-p", "good", config=config)
    auths = json.loads(path.read_text())["auths"]
    assert sorted(auths) == ["127.0.0.1:5001", "Reg.example.com", "https://index.docker.io/v1/"]
    assert base64.b64decode(auths["https://index.docker.io/v1/"]["auth"]) == b"hub:good"


def test_login_failures(engine: FakeEngine, config: Path) -> None:
    rc, out, err = berth(engine, "login", "-u", "bob", "-p", "bad", "127.0.0.1:5001", config=config)
    assert (rc, out) == (1, "")
    assert err.endswith("Error response from daemon: login attempt to http://127.0.0.1:5001/v2/ failed with "
                        "status: 401 Unauthorized\n")
    assert not (config / "config.json").exists()
    assert berth(engine, "login", "--password-stdin", "x", config=config) == (
        1, "", "the --password-stdin option requires --username to be set\n")
    assert berth(engine, "login", "-u", "bob", "x", config=config) == (
        1, "", "Error: Cannot perform an interactive login from a non TTY device\n")


def test_logout(engine: FakeEngine, config: Path) -> None:
    cfg = {"auths": {"127.0.0.1:5000": {"auth": "Ym9iOnB3"}, "https://index.docker.io/v1/": {"auth": "aHViOnB3"}}}
    (config / "config.json").write_text(json.dumps(cfg))
    assert berth(engine, "logout", "127.0.0.1:5000", config=config) == (
        0, "Removing login credentials for 127.0.0.1:5000\n", "")
    assert berth(engine, "logout", config=config) == (
        0, "Removing login credentials for https://index.docker.io/v1/\n", "")
    assert json.loads((config / "config.json").read_text()) == {"auths": {}}
    assert not [r for r in engine.requests if r.path != "/_ping"]  # logout is client-only


def test_attach_refuses_stopped_and_paused(engine: FakeEngine) -> None:
    def inspect(state: dict) -> tuple:
        return 200, {"Id": "f" * 64, "State": state, "Config": {"Tty": False, "OpenStdin": False}}

    engine.route("GET", r"/containers/stopped/json", inspect({"Running": False}))
    engine.route("GET", r"/containers/paused/json", inspect({"Running": True, "Paused": True}))
    engine.route("POST", r"/containers/.+/wait", (200, {"StatusCode": 0}))
    assert berth(engine, "attach", "stopped") == (1, "", "You cannot attach to a stopped container, start it first\n")
    assert berth(engine, "attach", "paused") == (1, "", "You cannot attach to a paused container, unpause it first\n")
    assert {r.path for r in engine.calls()} == {"/containers/stopped/json", "/containers/stopped/wait",
                                                "/containers/paused/json", "/containers/paused/wait"}
