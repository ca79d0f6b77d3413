#!/usr/bin/env python3
"""Berth vs Docker: container start latency and memory, side by side (issue 2).

One run of this script:

1. starts its own berthd on a temporary socket, data-root and exec-root, and imports busybox;
2. makes sure a peer Docker is there: an already reachable dockerd is used as it is (``--own-docker``
   starts a private one regardless); otherwise ``docker.io`` is installed with apt if ``dockerd`` is
   missing, and a private dockerd is started on its own socket, data-root, exec-root and pidfile,
   with ``--bridge none --iptables=false --ip-masq=false``, under ``unshare --net --mount`` so
   that it touches neither the host's network nor its mount table (dockerd 20.10 starts its own
   containerd). The same busybox tarball is imported into it;
3. times, after warm-ups, N x ``run --rm busybox true`` on each engine (docker with
   ``--network none``), alternating engines, and reports median and p90; then N detached starts
   (``run -d busybox sleep 300``) and N ``rm -f`` of them, as total wall time per phase;
4. measures memory: the idle RSS of each engine's daemons (berthd + fork server; dockerd +
   containerd), and what each running container adds (10 detached sleepers; the delta of the
   summed VmRSS of the engine's processes, divided by 10; container processes themselves, which
   live in their own PID namespace, are not counted);
5. cleans up all it made: containers, both daemons (stopped by PID), mounts under its temp dir,
   the temp dir itself. It never signals a process by name.

Run it as root from the repository: ``.venv/bin/python bench/run_bench.py`` (``--quick`` for N=5).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (bench/common.py)
from common import Cleanup, log, mounts_under  # noqa: E402,F401  (tests/peers.py uses them as rb.*)

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = REPO / ".venv" / "bin"
TARGET_RATIO = 0.2
MEM_CONTAINERS = 10


# ---------------------------------------------------------------------------------------------
# /proc helpers


def proc_state(pid: int) -> str:
    """One letter from /proc/PID/stat ('R', 'S', 'Z', ...), or 'gone'."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return "gone"
    return data[data.rfind(b")") + 2:].split()[0].decode()


def alive(pid: int) -> bool:
    return proc_state(pid) not in ("gone", "Z", "X")


def ppid_map() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        out[int(d)] = int(data[data.rfind(b")") + 2:].split()[1])
    return out


def descendants(roots: list[int]) -> set[int]:
    """The roots and all their descendants (living ones)."""
    children: dict[int, list[int]] = {}
    for pid, ppid in ppid_map().items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [r for r in roots if os.path.exists(f"/proc/{r}")]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        todo.extend(children.get(p, []))
    return seen


def pidns(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return ""


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _kib_field(path: str, key: str) -> int:
    """The KiB figure of the line "KEY ..." in a /proc file, 0 if the file or line is missing."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def vm_rss_kib(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid: int) -> int:
    return _kib_field(f"/proc/{pid}/smaps_rollup", "Pss:")


def socket_owner_pids(path: str, netns_of: int = 0) -> set[int]:
    """PIDs that hold a unix socket bound to PATH (via the inodes of /proc/PID/net/unix, which
    lists the sockets of that process's network namespace)."""
    inodes = set()
    try:
        with open(f"/proc/{netns_of or 'self'}/net/unix") as f:
            next(f)
            for line in f:
                parts = line.split()
                if len(parts) >= 8 and parts[7] == path:
                    inodes.add(parts[6])
    except OSError:
        return set()
    pids = set()
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{d}/fd"):
                try:
                    link = os.readlink(f"/proc/{d}/fd/{fd}")
                except OSError:
                    continue
                if link.startswith("socket:[") and link[8:-1] in inodes:
                    pids.add(int(d))
                    break
        except OSError:
            continue
    return pids


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Waits until each pid is gone or a zombie (PID 1 here reaps late); returns those still alive."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = [p for p in left if alive(p)]
    return left


# ---------------------------------------------------------------------------------------------
# Running commands


@dataclass
class Failure:
    engine: str
    argv: list[str]
    returncode: int
    stderr: str


@dataclass
class Engine:
    name: str
    cli: list[str]  # argv prefix
    env: dict[str, str]
    run_extra: list[str]  # flags after `run`
    daemon_pid: int = 0
    image: str = "busybox"
    api_sock: str = ""
    failures: list[Failure] = field(default_factory=list)
    created: set[str] = field(default_factory=set)

    def cmd(self, *args: str, timeout: float = 120, record: bool = True) -> tuple[float, subprocess.CompletedProcess]:
        argv = self.cli + list(args)
        t0 = time.perf_counter()
        try:
            p = subprocess.run(argv, env=self.env, capture_output=True, text=True, timeout=timeout,
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            dt = time.perf_counter() - t0
            p = subprocess.CompletedProcess(argv, -1, e.stdout or "", f"timed out after {timeout}s")
            if isinstance(p.stdout, bytes):
                p.stdout = p.stdout.decode(errors="replace")
            self.failures.append(Failure(self.name, list(args), -1, p.stderr))
            return dt, p
        dt = time.perf_counter() - t0
        if p.returncode != 0 and record:
            self.failures.append(Failure(self.name, list(args), p.returncode, p.stderr.strip()))
        return dt, p

    def rm_f(self, *cids: str) -> float:
        dt, p = self.cmd("rm", "-f", *cids)
        if p.returncode == 0:
            self.created.difference_update(cids)
        return dt

    def remove_all_created(self) -> None:
        if self.created:
            self.cmd("rm", "-f", *sorted(self.created), record=False)
            self.created.clear()


# ---------------------------------------------------------------------------------------------
# The Engine API, without a CLI


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(sock: str, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    c = UnixHTTPConnection(sock)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def api_run_rm(eng: Engine) -> float:
    """What `run --rm IMAGE true` asks of the daemon, straight over the socket: create, start,
    wait, delete (one connection per request, as a CLI does). Returns the wall time."""
    sock = eng.api_sock
    t0 = time.perf_counter()
    st, out = api(sock, "POST", "/containers/create",
                  {"Image": eng.image, "Cmd": ["true"], "HostConfig": {"NetworkMode": "none"}})
    if st != 201:
        eng.failures.append(Failure(eng.name, ["API POST /containers/create"], st, out.decode(errors="replace")))
        return time.perf_counter() - t0
    cid = json.loads(out)["Id"]
    eng.created.add(cid)
    for method, path, ok in (("POST", f"/containers/{cid}/start", (204,)),
                             ("POST", f"/containers/{cid}/wait", (200,)),
                             ("DELETE", f"/containers/{cid}", (204,))):
        st, out = api(sock, method, path)
        if st not in ok:
            eng.failures.append(Failure(eng.name, [f"API {method} {path}"], st, out.decode(errors="replace")))
            break
    else:
        eng.created.discard(cid)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# Daemons


def wait_for_socket(path: str, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before creating {path}")
        if os.path.exists(path):
            try:
                s = socket.socket(socket.AF_UNIX)
                s.connect(path)
                s.close()
                return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not create {path} within {timeout}s")


def stop_process(proc: subprocess.Popen, what: str, timeout: float = 30) -> None:
    """SIGTERM by PID, wait (we are its parent, so this reaps it), SIGKILL on timeout."""
    if proc.poll() is None:
        log(f"stopping {what} (pid {proc.pid})")
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{what} (pid {proc.pid}) did not stop in {timeout}s: SIGKILL")
            proc.kill()
            proc.wait(10)


def kill_leftovers(pids: list[int], what: str) -> list[int]:
    left = wait_gone(pids, 15)
    for p in left:
        log(f"{what}: pid {p} ({' '.join(cmdline(p))[:80]}) still alive: SIGKILL")
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return wait_gone(left, 5)


def berth_cli() -> list[str]:
    exe = VENV_BIN / "berth"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "berth.cli.main"]


def berthd_cmd() -> list[str]:
    exe = VENV_BIN / "berthd"
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "berth.daemon.main"]


def make_busybox_tar(out: Path) -> Path:
    py = VENV_BIN / "python"
    subprocess.run([str(py if py.exists() else sys.executable), "-m", "berth.images.rootfs", str(out)],
                   check=True, cwd=REPO, capture_output=True)
    return out


def python_env(pyc_dir: Path | None) -> dict[str, str]:
    env = dict(os.environ)
    if pyc_dir is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pyc_dir)
    return env


def start_berthd(base: Path, tar: Path, cleanup: Cleanup, pyc_dir: Path | None) -> tuple[Engine, subprocess.Popen]:
    base.mkdir(parents=True)
    sock = base / "b.sock"
    (base / "daemon.json").write_text("{}\n")
    logf = open(base / "berthd.log", "ab")
    proc = subprocess.Popen(
        berthd_cmd() + ["-H", f"unix://{sock}", "--data-root", str(base / "data"),
                        "--exec-root", str(base / "run"), "--config-file", str(base / "daemon.json")],
        stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, cwd=REPO, env=python_env(pyc_dir))
    logf.close()

    def stop() -> None:
        fork_children = sorted(descendants([proc.pid]) - {proc.pid})
        stop_process(proc, "berthd")
        left = kill_leftovers(fork_children, "berthd children")
        if left:
            raise RuntimeError(f"berthd children {left} survive SIGKILL")
    cleanup.add("stop berthd", stop)
    wait_for_socket(str(sock), proc, "berthd")
    env = python_env(pyc_dir)
    env.pop("DOCKER_HOST", None)
    env["BERTH_HOST"] = f"unix://{sock}"
    eng = Engine("berth", berth_cli(), env, [], daemon_pid=proc.pid, api_sock=str(sock))
    cleanup.add("remove berth containers", eng.remove_all_created)
    _, p = eng.cmd("import", str(tar), "busybox:latest")
    if p.returncode != 0:
        raise RuntimeError(f"berth import failed: {p.stderr}")
    return eng, proc


def docker_cli_path() -> str:
    if os.access("/usr/local/bin/docker", os.X_OK):
        return "/usr/local/bin/docker"
    found = shutil.which("docker")
    if not found:
        raise RuntimeError("no docker CLI found")
    return found


def docker_reachable(cli: str, host: str) -> bool:
    try:
        p = subprocess.run([cli, "-H", host, "version", "--format", "{{.Server.Version}}"],
                           capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return p.returncode == 0 and bool(p.stdout.strip())


def ensure_dockerd_installed() -> None:
    if shutil.which("dockerd"):
        return
    log("dockerd missing: apt-get install -y docker.io")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # Keep the package's init script from starting a system-wide dockerd (docker0, iptables).
    policy = Path("/usr/sbin/policy-rc.d")
    made_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\nexit 101\n")
        policy.chmod(0o755)
        made_policy = True
    try:
        p = subprocess.run(["apt-get", "install", "-y", "-q", "docker.io"], env=env,
                           capture_output=True, text=True)
        if p.returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
            p = subprocess.run(["apt-get", "install", "-y", "-q", "docker.io"], env=env,
                               capture_output=True, text=True)
        if p.returncode != 0:
            raise RuntimeError(f"apt-get install docker.io failed: {p.stderr[-2000:]}")
    finally:
        if made_policy:
            policy.unlink()
    if not shutil.which("dockerd"):
        raise RuntimeError("docker.io installed but no dockerd on PATH")


@dataclass
class PeerDocker:
    engine: Engine
    own: bool
    dockerd_pid: int
    containerd_sock: str  # shims carry it as `-address`; "" if unknown
    proc: subprocess.Popen | None = None
    version: str = ""


def start_own_dockerd(base: Path, cli: str, tar: Path, cleanup: Cleanup, ulimit: bool) -> PeerDocker:
    ensure_dockerd_installed()
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "d.sock"
    data, run = base / "data", base / "run"
    argv = ["unshare", "--net", "--mount", "--", "dockerd", "-H", f"unix://{sock}",
            "--data-root", str(data), "--exec-root", str(run), "--pidfile", str(base / "d.pid"),
            "--bridge", "none", "--iptables=false", "--ip-masq=false"]
    if ulimit:
        argv += ["--default-ulimit", "nofile=1024:1024"]
    logf = open(base / "dockerd.log", "ab")
    # unshare execs dockerd: proc.pid is dockerd's PID.
    proc = subprocess.Popen(argv, stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, cwd="/")
    logf.close()
    containerd_sock = str(run / "containerd" / "containerd.sock")

    def stop() -> None:
        procs = sorted(descendants([proc.pid]) | set(shim_pids(containerd_sock)))
        procs = [p for p in procs if p != proc.pid and pidns(p) == pidns(os.getpid())]
        stop_process(proc, "dockerd", timeout=45)
        left = kill_leftovers(procs, "dockerd's containerd/shims")
        if left:
            raise RuntimeError(f"docker processes {left} survive SIGKILL")
    cleanup.add("stop dockerd", stop)
    wait_for_socket(str(sock), proc, "dockerd", timeout=90)
    env = dict(os.environ)
    env.pop("DOCKER_HOST", None)
    env.pop("DOCKER_CONTEXT", None)
    eng = Engine("docker", [cli, "-H", f"unix://{sock}"], env, ["--network", "none"], daemon_pid=proc.pid,
                 api_sock=str(sock))
    cleanup.add("remove docker containers", eng.remove_all_created)
    _, p = eng.cmd("import", str(tar), "busybox:latest")
    if p.returncode != 0:
        raise RuntimeError(f"docker import failed: {p.stderr}")
    _, v = eng.cmd("version", "--format", "{{.Server.Version}}")
    return PeerDocker(eng, True, proc.pid, containerd_sock, proc, v.stdout.strip())


def existing_containerd_sock(dockerd_pid: int) -> str:
    """The containerd socket an already running dockerd uses: its managed containerd's
    (``--config`` file, ``address`` in [grpc]) or the system one."""
    for p in descendants([dockerd_pid]) if dockerd_pid else ():
        a = cmdline(p)
        if a and os.path.basename(a[0]) == "containerd" and "--config" in a:
            try:
                conf = Path(a[a.index("--config") + 1]).read_text()
            except (OSError, IndexError):
                continue
            m = re.search(r'^\s*address\s*=\s*"([^"]+)"', conf, re.M)
            if m:
                return m.group(1)
    return "/run/containerd/containerd.sock"


def shim_pids(containerd_sock: str) -> list[int]:
    """containerd-shim processes of one containerd: they carry `-address SOCK` (and are
    reparented to PID 1, outside dockerd's process tree)."""
    if not containerd_sock:
        return []
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        args = cmdline(int(d))
        if args and "containerd-shim" in os.path.basename(args[0]) and containerd_sock in args:
            out.append(int(d))
    return out


def ensure_peer_docker(base: Path, tar: Path, cleanup: Cleanup, force_own: bool) -> PeerDocker:
    cli = docker_cli_path()
    if not force_own:
        host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if host.startswith("unix://") and docker_reachable(cli, host):
            log(f"using the reachable dockerd at {host}")
            env = dict(os.environ)
            eng = Engine("docker", [cli, "-H", host], env, ["--network", "none"], api_sock=host[len("unix://"):])
            cleanup.add("remove docker containers", eng.remove_all_created)
            # Do not overwrite the user's busybox:latest: use a tag of our own.
            tag = "berth-bench-busybox:latest"
            _, p = eng.cmd("import", str(tar), tag)
            if p.returncode != 0:
                raise RuntimeError(f"docker import failed: {p.stderr}")
            cleanup.add("remove bench image", lambda: eng.cmd("rmi", tag, record=False))
            eng.image = tag
            owners = socket_owner_pids(host[len("unix://"):])
            eng.daemon_pid = min(owners) if owners else 0
            csock = existing_containerd_sock(eng.daemon_pid)
            _, v = eng.cmd("version", "--format", "{{.Server.Version}}")
            return PeerDocker(eng, False, eng.daemon_pid, csock, None, v.stdout.strip())
    log("starting a private dockerd (unshare --net --mount)")
    peer = start_own_dockerd(base, cli, tar, cleanup, ulimit=False)
    # Probe: runc refuses to start when the default nofile limit exceeds the host's hard limit.
    _, p = peer.engine.cmd("run", "--rm", "--network", "none", "busybox", "true", record=False)
    if p.returncode != 0:
        if re.search(r"rlimit|ulimit|RLIMIT", p.stderr):
            log("runc fails on rlimits: restarting dockerd with --default-ulimit nofile=1024:1024")
            cleanup.steps.pop()  # remove-containers step of the first engine
            what, stop = cleanup.steps.pop()
            stop()
            peer = start_own_dockerd(base, cli, tar, cleanup, ulimit=True)
        else:
            raise RuntimeError(f"docker run --rm busybox true fails on the peer dockerd: {p.stderr}")
    return peer


# ---------------------------------------------------------------------------------------------
# Measurements


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    if not s:
        return float("nan")
    k = max(0, min(len(s) - 1, int(-(-q * len(s) // 1)) - 1))
    return s[k]


def engine_pids(eng: Engine, peer: PeerDocker | None) -> set[int]:
    """The engine's own processes: the daemon's tree (plus, for docker, the shims, which are
    reparented outside it), without the container processes (those live in other PID namespaces)."""
    roots = [eng.daemon_pid] if eng.daemon_pid else []
    if peer is not None:
        roots += shim_pids(peer.containerd_sock)
        if not peer.own and peer.containerd_sock:  # a system containerd, outside dockerd's tree
            roots += socket_owner_pids(peer.containerd_sock, netns_of=peer.dockerd_pid)
    host_ns = pidns(os.getpid())
    return {p for p in descendants(roots) if pidns(p) == host_ns}


def proc_name(pid: int) -> str:
    a = cmdline(pid) or ["?"]
    name = os.path.basename(a[0])
    if name.startswith("python"):
        rest = a[1:]
        if "-m" in rest and rest.index("-m") + 1 < len(rest):
            return rest[rest.index("-m") + 1].rsplit(".", 1)[-1]
        return os.path.basename(rest[0]) if rest else name
    return name


def mem_kib(pids: set[int]) -> tuple[int, int]:
    return sum(vm_rss_kib(p) for p in pids), sum(pss_kib(p) for p in pids)


def image_of(eng: Engine) -> str:
    return eng.image


def fmt_s(x: float) -> str:
    return f"{x * 1000:8.1f} ms" if x < 10 else f"{x:8.2f} s "


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="N=5 instead of 20")
    ap.add_argument("-n", type=int, default=None, help="iterations per measurement (default 20)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--own-docker", action="store_true",
                    help="start a private dockerd even if one is reachable")
    ap.add_argument("--pyc", action="store_true",
                    help="let berth's Python cache bytecode (in the temp dir, via PYTHONPYCACHEPREFIX), "
                         "as an installed package would; by default the environment is left as it is")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON to FILE")
    args = ap.parse_args()
    n = args.n or (5 if args.quick else 20)
    if not common.is_root("run_bench.py"):
        return 2

    base, cleanup = common.temp_dir("bb-")

    results: dict = {"n": n, "warmup": args.warmup, "pyc": bool(args.pyc),
                     "dont_write_bytecode": bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))}
    started: list[Engine] = []
    rc = 0
    try:
        tar = make_busybox_tar(base / "busybox.tar")
        log(f"temp dir {base}; starting berthd")
        b, bproc = start_berthd(base / "b", tar, cleanup, base / "pyc" if args.pyc else None)
        started.append(b)
        peer = ensure_peer_docker(base / "d", tar, cleanup, args.own_docker)
        d = peer.engine
        started.append(d)
        engines = (b, d)
        log(f"peer docker {peer.version} ({'private' if peer.own else 'existing'}, dockerd pid {peer.dockerd_pid})")

        # Memory, fresh: both daemons idle, image imported, nothing run yet.
        time.sleep(1)
        fresh = {"berth": mem_kib(engine_pids(b, None)), "docker": mem_kib(engine_pids(d, peer))}

        # 1. run --rm busybox true
        log(f"warm-up x{args.warmup}, then run --rm busybox true x{n} per engine (alternating)")
        for _ in range(args.warmup):
            for e in engines:
                e.cmd("run", "--rm", *e.run_extra, image_of(e), "true")
        times: dict[str, list[float]] = {"berth": [], "docker": []}
        for i in range(n):
            for e in (engines if i % 2 == 0 else engines[::-1]):
                dt, _ = e.cmd("run", "--rm", *e.run_extra, image_of(e), "true")
                times[e.name].append(dt)

        # CLI + API round trip without a container: `version`
        for e in engines:
            e.cmd("version")
        ver: dict[str, list[float]] = {"berth": [], "docker": []}
        for i in range(n):
            for e in (engines if i % 2 == 0 else engines[::-1]):
                dt, _ = e.cmd("version")
                ver[e.name].append(dt)

        # The same as run --rm, straight over the API (no CLI start-up)
        log(f"the same over the API (create, start, wait, delete) x{n}, then version x{n}")
        api_t: dict[str, list[float]] = {"berth": [], "docker": []}
        for e in engines:
            api_run_rm(e)
        for i in range(n):
            for e in (engines if i % 2 == 0 else engines[::-1]):
                api_t[e.name].append(api_run_rm(e))

        # 2. detached starts and rm -f
        log(f"run -d busybox sleep 300 x{n}, then rm -f x{n}, per engine")
        for e in engines:  # warm-up of the detached path
            ids = []
            for _ in range(args.warmup):
                _, p = e.cmd("run", "-d", *e.run_extra, image_of(e), "sleep", "300")
                if p.returncode == 0:
                    ids.append(p.stdout.strip())
                    e.created.add(ids[-1])
            for cid in ids:
                e.rm_f(cid)
        phase: dict[str, dict[str, float]] = {}
        start_lat: dict[str, list[float]] = {}
        for e in engines:
            ids, lat = [], []
            t0 = time.perf_counter()
            for _ in range(n):
                dt, p = e.cmd("run", "-d", *e.run_extra, image_of(e), "sleep", "300")
                lat.append(dt)
                if p.returncode == 0 and p.stdout.strip():
                    ids.append(p.stdout.strip().splitlines()[-1])
                    e.created.add(ids[-1])
            t_start = time.perf_counter() - t0
            t0 = time.perf_counter()
            for cid in ids:
                e.rm_f(cid)
            t_rm = time.perf_counter() - t0
            phase[e.name] = {"start": t_start, "rm": t_rm, "started": len(ids)}
            start_lat[e.name] = lat

        # 3. memory: idle after the timing phases, then with MEM_CONTAINERS sleepers
        log(f"memory: idle, then with {MEM_CONTAINERS} detached sleepers")
        time.sleep(1)
        mem: dict[str, dict] = {}
        for e in engines:
            pr = peer if e is d else None
            idle_pids = engine_pids(e, pr)
            idle = mem_kib(idle_pids)
            ids = []
            for _ in range(MEM_CONTAINERS):
                _, p = e.cmd("run", "-d", *e.run_extra, image_of(e), "sleep", "300")
                if p.returncode == 0 and p.stdout.strip():
                    ids.append(p.stdout.strip().splitlines()[-1])
                    e.created.add(ids[-1])
            time.sleep(1.5)
            busy_pids = engine_pids(e, pr)
            busy = mem_kib(busy_pids)
            new = busy_pids - idle_pids
            per_proc = [vm_rss_kib(p) for p in new]
            t0 = time.perf_counter()
            if ids:
                e.rm_f(*ids)
            t_rm_bulk = time.perf_counter() - t0
            mem[e.name] = {
                "idle_pids": len(idle_pids), "idle_rss": idle[0], "idle_pss": idle[1],
                "busy_pids": len(busy_pids), "busy_rss": busy[0], "busy_pss": busy[1],
                "containers": len(ids),
                "per_ctr_rss": (busy[0] - idle[0]) / max(1, len(ids)),
                "per_ctr_pss": (busy[1] - idle[1]) / max(1, len(ids)),
                "new_procs": len(new),
                "new_proc_rss_avg": statistics.mean(per_proc) if per_proc else 0,
                "rm_bulk": t_rm_bulk,
                "names": sorted(proc_name(p) for p in idle_pids),
            }

        # Report
        results.update({"api": api_t, "version": ver, "times": times, "phase": phase, "start_latency": start_lat, "mem": mem,
                        "fresh": fresh, "docker_version": peer.version})
        report(results, n, args.warmup)
        if args.json:
            Path(args.json).write_text(json.dumps(results, indent=1))
    except (KeyboardInterrupt, Exception) as e:  # noqa: BLE001
        rc = common.failed(e)
    finally:
        all_failures = [f for e in started for f in e.failures]
        problems = common.run_cleanup(cleanup, base, check_mounts=True)
        print()
        print("Command failures during the benchmark:")
        if not all_failures:
            print("  none")
        for f in all_failures:
            print(f"  `{f.engine} {' '.join(f.argv)}` -> exit {f.returncode}: {f.stderr[:500]}")
        rc = common.cleanup_verdict(rc, problems, "ok (containers removed, daemons stopped, no mounts, temp dir gone)")
    return rc


def report(r: dict, n: int, warmup: int) -> None:
    t, ph, mem = r["times"], r["phase"], r["mem"]
    print()
    print(f"Berth vs Docker {r['docker_version']} (peer dockerd: --network none for docker), "
          f"N={n} after {warmup} warm-ups, wall time of the CLI command")
    if r["pyc"]:
        print("berth's bytecode cached (--pyc: PYTHONPYCACHEPREFIX in the temp dir)")
    elif r["dont_write_bytecode"]:
        print("PYTHONDONTWRITEBYTECODE is set and --pyc not given: each berth CLI call compiles "
              "berth's modules from source (unless .pyc files exist already)")
    print()
    w = 38
    print(f"{'':{w}} {'berth':>12} {'docker':>12} {'berth/docker':>13}")

    def row(label: str, bv: float, dv: float, target: bool = False) -> None:
        ratio = bv / dv if dv else float("nan")
        mark = ("  ok" if ratio <= TARGET_RATIO else f"  > {TARGET_RATIO}") if target else ""
        print(f"{label:{w}} {fmt_s(bv):>12} {fmt_s(dv):>12} {ratio:13.3f}{mark}")

    row("run --rm busybox true  median", statistics.median(t["berth"]), statistics.median(t["docker"]), True)
    row("run --rm busybox true  p90", pct(t["berth"], 0.9), pct(t["docker"], 0.9), True)
    row("run --rm busybox true  min", min(t["berth"]), min(t["docker"]))
    a = r["api"]
    row("API create/start/wait/delete median", statistics.median(a["berth"]), statistics.median(a["docker"]))
    row("API create/start/wait/delete p90", pct(a["berth"], 0.9), pct(a["docker"], 0.9))
    v = r["version"]
    row("version (CLI+API, no container) median", statistics.median(v["berth"]), statistics.median(v["docker"]))
    row(f"run -d sleep 300  x{n} total", ph["berth"]["start"], ph["docker"]["start"], True)
    sl = r["start_latency"]
    row("run -d sleep 300  median", statistics.median(sl["berth"]), statistics.median(sl["docker"]))
    row(f"rm -f (one per call) x{n} total", ph["berth"]["rm"], ph["docker"]["rm"], True)
    mb, md = mem["berth"], mem["docker"]
    row(f"rm -f of {MEM_CONTAINERS} in one call", mb["rm_bulk"], md["rm_bulk"])
    print()
    print("Memory (sum of VmRSS over the engine's processes; PSS in brackets)")
    mw = 44

    def mrow(label: str, bk: float, dk: float, bp: float | None = None, dp: float | None = None) -> None:
        ratio = bk / dk if dk else float("nan")
        bs = f"{bk / 1024:6.1f} MiB" + (f" [{bp / 1024:5.1f}]" if bp is not None else "")
        ds = f"{dk / 1024:6.1f} MiB" + (f" [{dp / 1024:5.1f}]" if dp is not None else "")
        print(f"{label:{mw}} {bs:>20} {ds:>20} {ratio:8.3f}")

    print(f"{'':{mw}} {'berth':>20} {'docker':>20} {'ratio':>8}")
    fb, fd = r["fresh"]["berth"], r["fresh"]["docker"]
    mrow("daemons idle, fresh (after import)", fb[0], fd[0], fb[1], fd[1])
    mrow("daemons idle, after the timing runs", mb["idle_rss"], md["idle_rss"], mb["idle_pss"], md["idle_pss"])
    mrow(f"added per running container ({MEM_CONTAINERS} sleepers)", mb["per_ctr_rss"], md["per_ctr_rss"],
         mb["per_ctr_pss"], md["per_ctr_pss"])
    mrow("  avg VmRSS of one monitor / shim process", mb["new_proc_rss_avg"], md["new_proc_rss_avg"])
    print(f"  idle processes: berth {mb['idle_pids']} ({', '.join(mb['names'])}); "
          f"docker {md['idle_pids']} ({', '.join(md['names'])})")
    print(f"  with {MEM_CONTAINERS} containers: berth +{mb['new_procs']} processes, "
          f"docker +{md['new_procs']} processes (container processes themselves not counted)")
    print()
    print("Raw run --rm times (ms):")
    for name in ("berth", "docker"):
        print(f"  {name:6} " + " ".join(f"{x * 1000:.0f}" for x in t[name]))


if __name__ == "__main__":
    sys.exit(main())
