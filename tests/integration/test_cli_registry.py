"""login, push, pull and logout through the berth CLI, berthd and ``berth registry serve`` with
htpasswd auth: credentials go to config.json (0600) and come back as X-Registry-Auth."""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(tmp_path: Path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("bob:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "berth.cli.main", "registry", "serve", "--addr", "127.0.0.1:0",
                             "--root", str(tmp_path / "root"), "--htpasswd", str(htpasswd)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO)
    line = proc.stdout.readline()
    assert line.startswith("listening on http://127.0.0.1:"), line
    yield line.strip().rsplit("//", 1)[1]
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_login_push_pull_logout(berth, registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "cfg"
    monkeypatch.setenv("DOCKER_CONFIG", str(cfg))
    ref = f"{registry}/bt/cli-reg:v1"
    berth("tag", "busybox", ref, check=True)
    try:
        r = berth("push", ref)
        assert r.returncode == 1 and r.stdout.startswith(f"The push refers to repository [{registry}/bt/cli-reg]\n")
        assert r.stderr.strip()  # the registry's refusal, printed bare like docker

        r = berth("login", "-u", "bob", "-p", "wrong", registry)
        assert r.returncode == 1 and "Error response from daemon: " in r.stderr
        assert not (cfg / "config.json").exists()

        r = berth("login", "-u", "bob", "--password-stdin", registry, input="s3cret\n")
        assert (r.returncode, r.stdout) == (0, "Login Succeeded\n")
        path = cfg / "config.json"
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        saved = json.loads(path.read_text())["auths"][registry]["auth"]
        assert base64.b64decode(saved) == b"bob:s3cret"

        r = berth("push", ref, check=True)
        lines = r.stdout.splitlines()
        assert lines[0] == f"The push refers to repository [{registry}/bt/cli-reg]"
        assert any(line.endswith(": Pushed") for line in lines)
        assert lines[-1].startswith("v1: digest: sha256:") and " size: " in lines[-1]

        berth("rmi", ref, check=True)
        r = berth("pull", ref, check=True)
        assert r.stdout.startswith("v1: Pulling from bt/cli-reg\n")
        assert f"Status: Downloaded newer image for {ref}\n" in r.stdout
        assert r.stdout.endswith(f"\n{ref}\n")
        r = berth("pull", "-q", ref, check=True)
        assert r.stdout == f"{ref}\n"

        r = berth("logout", registry, check=True)
        assert r.stdout == f"Removing login credentials for {registry}\n"
        assert registry not in json.loads(path.read_text()).get("auths", {})
        berth("rmi", ref, check=True)
        r = berth("pull", ref)
        assert r.returncode == 1 and r.stderr.strip()
    finally:
        berth("rmi", "-f", ref)
