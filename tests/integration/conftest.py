"""Integration fixtures: a real berthd on a temporary socket and data-root, with busybox imported.

The daemon is shared by the session (starting one costs ~1 s); each test gets ``berth`` whose
containers are force-removed after the test, so tests stay independent. At the end the daemon
is stopped and the suite checks that nothing of Berth is left mounted or running.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BERTH = [sys.executable, "-m", "berth.cli.main"]
BERTHD = [sys.executable, "-m", "berth.daemon.main"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


@dataclass
class Daemon:
    base: Path
    proc: subprocess.Popen

    @property
    def sock(self) -> str:
        return str(self.base / "berth.sock")

    @property
    def host(self) -> str:
        return "unix://" + self.sock

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    @property
    def exec_root(self) -> Path:
        return self.base / "run"

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("DOCKER_HOST", None)
        env["BERTH_HOST"] = self.host
        env["DOCKER_HOST"] = self.host
        return env


def _wait_for_socket(path: str, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"berthd exited with {proc.returncode}")
        if os.path.exists(path):
            return
        time.sleep(0.05)
    raise RuntimeError("berthd did not create its socket")


def start_daemon(base: Path) -> Daemon:
    base.mkdir(parents=True, exist_ok=True)
    log = open(base / "berthd.log", "ab")
    proc = subprocess.Popen(
        BERTHD + ["-H", f"unix://{base}/berth.sock", "--data-root", str(base / "data"),
                  "--exec-root", str(base / "run"), "--config-file", str(base / "daemon.json")],
        stdout=log, stderr=log, cwd=REPO,
        env=dict(os.environ, BERTH_REGISTRY_LOOPBACK_ONLY="1"))  # tests never reach past loopback
    (base / "daemon.json").touch()
    d = Daemon(base, proc)
    _wait_for_socket(d.sock, proc)
    return d


def stop_daemon(d: Daemon) -> None:
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(15)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait()


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout


@dataclass
class Berth:
    """Runs the berth CLI (or the docker CLI) against the test daemon."""

    daemon: Daemon
    created: list[str] = field(default_factory=list)

    def __call__(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
                 check: bool = False) -> Result:
        return self._run(BERTH + list(args), input, timeout, check)

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               check: bool = False) -> Result:
        return self._run(["docker", "-H", self.daemon.host, *args], input, timeout, check)

    def _run(self, argv: list[str], input: str | bytes | None, timeout: float, check: bool) -> Result:
        text = not isinstance(input, bytes)
        p = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, text=text,
                           env=self.daemon.env(), cwd=REPO,
                           stdin=subprocess.DEVNULL if input is None else None)
        out, err = (p.stdout, p.stderr) if text else (p.stdout.decode(), p.stderr.decode())
        r = Result(p.returncode, out, err)
        if check and p.returncode != 0:
            raise AssertionError(f"{argv} failed ({p.returncode}): {err}")
        return r

    def ids(self) -> set[str]:
        r = self("ps", "-aq", "--no-trunc", check=True)
        return set(r.stdout.split())

    def inspect(self, ref: str) -> dict:
        r = self("inspect", ref, check=True)
        return json.loads(r.stdout)[0]


@pytest.fixture(scope="session")
def busybox_tar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from berth.images.rootfs import make_busybox_rootfs_tar

    return make_busybox_rootfs_tar(tmp_path_factory.mktemp("rootfs") / "busybox.tar")


@pytest.fixture(scope="session")
def daemon(busybox_tar: Path):
    # A short base path: unix socket paths are limited to 108 bytes.
    base = Path(tempfile.mkdtemp(prefix="bt-", dir="/tmp"))
    d = start_daemon(base)
    b = Berth(d)
    r = b("import", str(busybox_tar), "busybox:latest")
    assert r.returncode == 0, r.stderr
    yield d
    for cid in b.ids():
        b("rm", "-f", cid, timeout=60)
    stop_daemon(d)
    leaked = [line for line in open("/proc/self/mountinfo") if str(base) in line]
    shutil.rmtree(base, ignore_errors=True)
    assert not leaked, f"mounts left behind: {leaked}"


@pytest.fixture
def berth(daemon: Daemon):
    b = Berth(daemon)
    before = b.ids()
    yield b
    for cid in b.ids() - before:
        b("rm", "-f", cid, timeout=60)
