"""Containers outlive berthd: a restart finds running containers again and learns of exits that
happened while it was away. Uses its own daemon, since it restarts it."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from conftest import Berth, start_daemon, stop_daemon


@pytest.fixture
def own_daemon(busybox_tar: Path):
    base = Path(tempfile.mkdtemp(prefix="btr-", dir="/tmp"))
    d = start_daemon(base)
    b = Berth(d)
    b("import", str(busybox_tar), "busybox:latest", check=True)
    state = {"daemon": d}
    yield base, state
    d = state["daemon"]
    if d.proc.poll() is not None:
        d = start_daemon(base)
    b = Berth(d)
    for cid in b.ids():
        b("rm", "-f", cid)
    stop_daemon(d)
    shutil.rmtree(base, ignore_errors=True)


def _wait_until(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_running_container_survives_daemon_restart(own_daemon):
    base, state = own_daemon
    b = Berth(state["daemon"])
    cid = b("run", "-d", "--name", "survivor", "busybox", "sh", "-c",
            "echo before; trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done", check=True).stdout.strip()
    pid = b.inspect(cid)["State"]["Pid"]
    stop_daemon(state["daemon"])
    assert Path(f"/proc/{pid}").exists(), "the container died with the daemon"
    state["daemon"] = start_daemon(base)
    b = Berth(state["daemon"])
    info = b.inspect("survivor")
    assert info["State"]["Running"] is True and info["State"]["Pid"] == pid
    assert "before" in b("logs", "survivor").stdout
    r = b("stop", "survivor")
    assert r.returncode == 0, r.stderr
    info = b.inspect("survivor")
    assert info["State"]["Status"] == "exited" and info["State"]["ExitCode"] == 7
    assert "bye" in b("logs", "survivor").stdout


def test_exit_while_daemon_away_is_recorded(own_daemon):
    base, state = own_daemon
    b = Berth(state["daemon"])
    b("run", "-d", "--name", "shortlived", "busybox", "sh", "-c", "sleep 1; echo done; exit 5", check=True)
    stop_daemon(state["daemon"])
    time.sleep(1.5)
    state["daemon"] = start_daemon(base)
    b = Berth(state["daemon"])
    assert _wait_until(lambda: b.inspect("shortlived")["State"]["Status"] == "exited")
    info = b.inspect("shortlived")
    assert info["State"]["ExitCode"] == 5
    assert b("logs", "shortlived").stdout == "done\n"
    r = b("ps", "-a", "--filter", "name=shortlived", "--format", "{{.Status}}")
    assert r.stdout.startswith("Exited (5)")
