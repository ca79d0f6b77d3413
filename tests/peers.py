"""A private peer dockerd, for interoperability tests and benchmarks (issue 3).

The process handling is bench/run_bench.py's (imported, not copied): its /proc helpers, how it
installs docker.io, waits for a socket, and stops a daemon by PID, then its containerd and shims,
waiting and checking /proc (PID 1 of these machines reaps orphans late: a zombie counts as gone).

``start_peer(base, busybox_tar)`` starts

    unshare --net --mount -- dockerd -H unix://BASE/d.sock --data-root BASE/data
        --exec-root BASE/run --pidfile BASE/d.pid --config-file BASE/daemon.json
        --bridge none --iptables=false --ip-masq=false [--default-ulimit nofile=1024:1024]

(its own network namespace: ``--bridge none`` cannot touch the host's ``docker0``; its own private
mount namespace: its overlay mounts never show on the host; its own ``daemon.json``, so the host's
/etc/docker/daemon.json is not read), imports the busybox rootfs tar as ``busybox:latest`` and
checks that ``docker run`` works. ``PeerDocker.stop()`` removes every container of the peer, stops
dockerd by PID, then its containerd and shims, checks that no process is left in its network or
mount namespace and no mount under BASE, and removes BASE. Nothing is ever signalled by name.

Registries the peer can reach (issue 4): ``start_registry(kind, root, peer)`` runs our registry
server or Debian's docker-registry on 127.0.0.1 *inside* the peer's network namespace
(``nsenter --net=/proc/<dockerd>/ns/net``, after ``PeerDocker.loopback_up()``: ``unshare --net``
leaves ``lo`` down), or in the host's without a peer; storage stays on the host's disk.
``Registry.stop()`` signals it by PID. Stop them before the peer: its ``stop()`` reports anything
left in its network namespace as a problem.

``peer_docker`` is the session-scoped pytest fixture over it. It skips (with the reason) only when
dockerd cannot be installed or started; anything failing after that is an error.
"""

from __future__ import annotations

import importlib.util
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

REPO = Path(__file__).resolve().parents[1]


def _load_run_bench():
    name = "berth_bench_run_bench"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "bench" / "run_bench.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is made
    spec.loader.exec_module(mod)
    return mod


rb = _load_run_bench()


class PeerUnavailable(Exception):
    """dockerd cannot be installed or started here (a reason to skip, not a failure)."""


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def out(self) -> str:
        return self.stdout


def _ns(pid: int, kind: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return ""


def pids_in_namespace(kind: str, ns: str) -> list[int]:
    """Living processes whose /proc/PID/ns/KIND is NS (e.g. 'net:[4026532301]')."""
    if not ns:
        return []
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _ns(int(d), kind) == ns and rb.alive(int(d)):
            out.append(int(d))
    return out


@dataclass
class PeerDocker:
    base: Path
    cli: str
    proc: subprocess.Popen | None = None
    version: str = ""
    netns: str = ""  # dockerd's network namespace (made by unshare --net)
    mntns: str = ""  # and its mount namespace
    ulimit: bool = False
    log_lines: list[str] = field(default_factory=list)

    @property
    def sock(self) -> str:
        return str(self.base / "d.sock")

    @property
    def host(self) -> str:
        return "unix://" + self.sock

    @property
    def data_root(self) -> Path:
        return self.base / "data"

    @property
    def exec_root(self) -> Path:
        return self.base / "run"

    @property
    def containerd_sock(self) -> str:
        return str(self.exec_root / "containerd" / "containerd.sock")

    @property
    def pid(self) -> int:
        return self.proc.pid if self.proc else 0

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            env.pop(k, None)
        env.update(extra)
        return env

    def docker(self, *args: str, input: str | None = None, timeout: float = 180, check: bool = False,
               env: dict[str, str] | None = None, cwd: str | Path | None = None) -> Result:
        """The docker CLI against the peer (``-H`` its socket)."""
        argv = [self.cli, "-H", self.host, *args]
        p = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                           env=self.env(**(env or {})), cwd=cwd or "/",
                           stdin=subprocess.DEVNULL if input is None else None)
        r = Result(p.returncode, p.stdout, p.stderr)
        if check and p.returncode != 0:
            raise AssertionError(f"peer: docker {' '.join(args)} failed ({p.returncode}): {p.stderr}")
        return r

    # -- start / stop ----------------------------------------------------------------------------

    def _launch(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "daemon.json").write_text("{}\n")
        argv = ["unshare", "--net", "--mount", "--", "dockerd", "-H", self.host,
                "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                "--pidfile", str(self.base / "d.pid"), "--config-file", str(self.base / "daemon.json"),
                "--bridge", "none", "--iptables=false", "--ip-masq=false"]
        if self.ulimit:
            argv += ["--default-ulimit", "nofile=1024:1024"]
        logf = open(self.base / "dockerd.log", "ab")
        try:
            # unshare execs dockerd: proc.pid is dockerd's PID.
            self.proc = subprocess.Popen(argv, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, cwd="/")
        finally:
            logf.close()
        try:
            rb.wait_for_socket(self.sock, self.proc, "dockerd", timeout=90)
        except RuntimeError as e:
            problems = self._stop_daemon()
            raise PeerUnavailable(f"{e}; dockerd.log: {self.log_tail()}"
                                  + (f"; stopping it: {problems}" if problems else "")) from None
        self.netns, self.mntns = _ns(self.pid, "net"), _ns(self.pid, "mnt")

    def log_tail(self, n: int = 8) -> str:
        try:
            lines = (self.base / "dockerd.log").read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:])

    def start(self, busybox_tar: Path) -> None:
        try:
            rb.ensure_dockerd_installed()
        except (RuntimeError, OSError) as e:
            raise PeerUnavailable(f"dockerd cannot be installed: {e}") from None
        self.cli = self.cli or rb.docker_cli_path()
        self._launch()
        self.docker("import", str(busybox_tar), "busybox:latest", check=True)
        probe = self.docker("run", "--rm", "--network", "none", "busybox", "true")
        if probe.returncode != 0:
            if "rlimit" not in probe.stderr.lower():
                raise RuntimeError(f"docker run --rm busybox true fails on the peer dockerd: {probe.stderr}")
            # runc refuses a default nofile limit above the host's hard limit.
            rb.log("runc fails on rlimits: restarting the peer dockerd with --default-ulimit nofile=1024:1024")
            problems = self._stop_daemon()
            if problems:
                raise RuntimeError(f"restarting the peer dockerd: {problems}")
            self.ulimit = True
            self._launch()
            self.docker("run", "--rm", "--network", "none", "busybox", "true", check=True)
        self.version = self.docker("version", "--format", "{{.Server.Version}}", check=True).stdout.strip()

    # -- its network namespace (issue 4: registries the peer can reach) ---------------------------

    def netns_argv(self) -> list[str]:
        """An argv prefix that runs a command in dockerd's network namespace (and nothing else of
        it: the command sees the host's files). nsenter execs the command, so the PID of a Popen
        over it is the command's own."""
        return ["nsenter", f"--net=/proc/{self.pid}/ns/net", "--"]

    def loopback_up(self) -> None:
        """``unshare --net`` leaves ``lo`` down: bring it up so that 127.0.0.1 works in there."""
        subprocess.run(self.netns_argv() + ["ip", "link", "set", "lo", "up"], check=True,
                       capture_output=True, timeout=30)

    def remove_all_containers(self) -> list[str]:
        if not self.proc or self.proc.poll() is not None:
            return []
        r = self.docker("ps", "-aq", "--no-trunc")
        ids = r.stdout.split()
        if ids:
            rm = self.docker("rm", "-f", "-v", *ids, timeout=120)
            if rm.returncode != 0:
                return [f"docker rm -f: {rm.stderr.strip()}"]
        return []

    def _stop_daemon(self) -> list[str]:
        """run_bench's way: dockerd by PID (SIGTERM, wait, SIGKILL), then its containerd and shims
        by PID, then anything still in its network or mount namespace."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        host_pidns = rb.pidns(os.getpid())
        procs = sorted(rb.descendants([self.proc.pid]) | set(rb.shim_pids(self.containerd_sock)))
        procs = [p for p in procs if p != self.proc.pid and rb.pidns(p) == host_pidns]
        rb.stop_process(self.proc, "peer dockerd", timeout=45)
        left = rb.kill_leftovers(procs, "peer dockerd's containerd/shims")
        if left:
            problems.append(f"processes {left} survive SIGKILL")
        # Anything else still holding its namespaces (a container process whose shim died first).
        for kind, ns in (("net", self.netns), ("mnt", self.mntns)):
            stray = pids_in_namespace(kind, ns)
            if stray:
                problems.append(f"processes {stray} were left in dockerd's {kind} namespace {ns}")
                for p in stray:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                still = rb.wait_gone(stray, 5)
                if still:
                    problems.append(f"processes {still} in {ns} survive SIGKILL")
        self.proc = None
        return problems

    def stop(self) -> list[str]:
        """Everything down and gone; returns what was wrong (empty: a clean stop)."""
        problems = self.remove_all_containers()
        problems += self._stop_daemon()
        leftover = rb.mounts_under(str(self.base))
        if leftover:
            problems.append(f"mounts left under {self.base}: {leftover}")
            for mp in sorted(leftover, key=len, reverse=True):
                subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
        if self.base.exists():
            problems.append(f"{self.base} could not be removed")
        return problems


def start_peer(busybox_tar: Path, base: Path | None = None) -> PeerDocker:
    """A started peer (raises PeerUnavailable if dockerd cannot be installed or started; the
    half-started peer is cleaned up before any exception leaves)."""
    # Short: unix socket paths are limited to 108 bytes (containerd's lives under the exec-root).
    base = base or Path(tempfile.mkdtemp(prefix="pd-", dir="/tmp"))
    peer = PeerDocker(base, "")
    try:
        peer.start(busybox_tar)
    except BaseException:
        peer.stop()
        raise
    return peer


REFERENCE_REGISTRY = "/usr/bin/docker-registry"  # Debian's docker-registry (distribution 2.8)


@dataclass
class Registry:
    """A registry process: Berth's server or the reference one, on 127.0.0.1 of the host or of a
    peer's network namespace. ``stop()`` signals it by its PID (SIGTERM, wait, SIGKILL)."""

    kind: str
    proc: subprocess.Popen
    addr: str  # host:port, as seen from inside its namespace
    root: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _port_open(port: int, prefix: list[str]) -> bool:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 2).close()"
    return subprocess.run(prefix + [sys.executable, "-c", probe], capture_output=True,
                          timeout=30).returncode == 0


def start_registry(kind: str, root: Path, peer: PeerDocker | None = None,
                   htpasswd: Path | None = None, port: int = 5000) -> Registry:
    """``kind`` "berth" (``python -m berth.registry.server --addr 127.0.0.1:0 --root ROOT``) or
    "reference" (Debian's docker-registry, filesystem storage under ROOT/storage, on ``port``,
    which must be free where it runs), in ``peer``'s network namespace (its loopback brought up)
    or, without one, in the host's. Storage lives under ``root`` either way (the host's files).
    Returns once it accepts connections; stop it with ``stop()`` (or use it as a context manager)."""
    root.mkdir(parents=True, exist_ok=True)
    prefix: list[str] = []
    if peer is not None:
        peer.loopback_up()
        prefix = peer.netns_argv()
    if kind == "berth":
        argv = prefix + [sys.executable, "-m", "berth.registry.server", "--addr", "127.0.0.1:0",
                         "--root", str(root)] + (["--htpasswd", str(htpasswd)] if htpasswd else [])
        with open(root / "server.log", "ab") as logf:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=logf, stdin=subprocess.DEVNULL,
                                    cwd=REPO, text=True)
        line = proc.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("listening on http://"):
            reg = Registry(kind, proc, "", root)
            reg.stop()
            raise RuntimeError(f"our registry did not start: {line!r}; log: {(root / 'server.log').read_text()[-800:]}")
        return Registry(kind, proc, line.strip().rsplit("/", 1)[1], root)
    if kind != "reference":
        raise ValueError(kind)
    auth = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n" if htpasswd else ""
    cfg = root / "config.yml"
    cfg.write_text(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth)
    with open(root / "registry.log", "ab") as logf:
        proc = subprocess.Popen(prefix + [REFERENCE_REGISTRY, "serve", str(cfg)], stdout=subprocess.DEVNULL,
                                stderr=logf, stdin=subprocess.DEVNULL, cwd="/")
    reg = Registry(kind, proc, f"127.0.0.1:{port}", root)
    deadline = time.monotonic() + 20
    while not _port_open(port, prefix):
        if proc.poll() is not None or time.monotonic() > deadline:
            reg.stop()
            raise RuntimeError(f"docker-registry did not start: {(root / 'registry.log').read_text()[-800:]}")
        time.sleep(0.1)
    return reg


def image_summary(inspect_json: str) -> dict:
    """Id and RootFS.Layers of `docker image inspect` output (one image)."""
    d = json.loads(inspect_json)[0]
    return {"Id": d["Id"], "Layers": d["RootFS"]["Layers"]}


try:
    import pytest
except ImportError:  # bench use without pytest
    pytest = None

if pytest is not None:

    @pytest.fixture(scope="session")
    def peer_docker(busybox_tar: Path):
        """A private dockerd for the whole session, with busybox:latest imported from the same
        rootfs tar as Berth's. Stopped and cleaned at the end; a leak fails the session."""
        if os.geteuid() != 0:
            pytest.skip("a private dockerd needs root")
        t0 = time.monotonic()
        try:
            peer = start_peer(busybox_tar)
        except PeerUnavailable as e:
            pytest.skip(f"peer dockerd unavailable: {e}")
        rb.log(f"peer dockerd {peer.version} up in {time.monotonic() - t0:.1f}s (pid {peer.pid}, {peer.base})")
        yield peer
        problems = peer.stop()
        assert not problems, f"peer dockerd clean-up: {problems}"
