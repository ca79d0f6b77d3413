"""What the user sees when something goes wrong, and what is left behind when a container is removed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

HEX64 = re.compile(r"^[0-9a-f]{64}$")
BERTH = [sys.executable, "-m", "berth.cli.main"]
CGROUP_CONTROLLERS = ("memory", "pids", "cpu")


def name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


# --- errors ----------------------------------------------------------------------------------

def test_unknown_image(berth):
    before = berth.ids()
    r = berth("run", "--rm", "nosuch", "echo", "hi", timeout=120)
    assert r.returncode == 125, r.stdout + r.stderr
    assert "Unable to find image 'nosuch:latest' locally" in r.stderr
    after_notice = r.stderr.split("Unable to find image 'nosuch:latest' locally", 1)[1]
    assert "Error" in after_notice or "error" in after_notice, r.stderr
    assert r.stdout == ""
    assert berth.ids() == before


@pytest.mark.parametrize("argv", [
    ("stop",), ("kill",), ("rm",), ("logs",), ("wait",), ("restart",), ("start",), ("exec", "{}", "true"),
])
def test_unknown_container(berth, argv):
    ref = "nosuch-" + uuid.uuid4().hex[:8]
    args = [a.replace("{}", ref) for a in argv]
    if "{}" not in argv:
        args.append(ref)
    r = berth(*args)
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"Error response from daemon: No such container: {ref}" in r.stderr
    assert r.stdout == ""


def test_rm_running_container_without_force(berth):
    n = name()
    r = berth("run", "-d", "--name", n, "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    r = berth("rm", n)
    assert r.returncode == 1
    assert r.stderr.startswith("Error response from daemon:"), r.stderr
    assert f"You cannot remove a running container {cid}. Stop the container before attempting " \
           "removal or force remove" in r.stderr
    assert berth.inspect(n)["State"]["Running"] is True
    r = berth("rm", "-f", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == n + "\n"
    assert cid not in berth.ids()


@pytest.mark.parametrize("argv", [
    ("run", "--no-such-flag", "busybox", "true"),
    ("ps", "--bogus"),
    ("logs", "-Z", "x"),
])
def test_invalid_flag(berth, argv):
    before = berth.ids()
    r = berth(*argv)
    assert r.returncode == 125, r.stdout + r.stderr
    assert "unknown" in r.stderr and "flag" in r.stderr, r.stderr
    assert berth.ids() == before


def test_command_not_found(berth):
    r = berth("run", "--rm", "busybox", "nosuchcmd")
    assert r.returncode == 127, r.stdout + r.stderr
    assert "executable file not found" in r.stderr
    assert r.stdout == ""


def test_import_of_non_tar_fails(berth, tmp_path):
    junk = tmp_path / "junk.tar"
    junk.write_text("this is not a tar archive\n" * 50)
    listing = ("images", "-a", "--no-trunc", "--format", "{{.ID}} {{.Repository}}:{{.Tag}}")
    before = berth(*listing).stdout
    assert "busybox:latest" in before
    r = berth("import", str(junk), "junk:bad")
    assert r.returncode == 1, r.stdout + r.stderr
    assert r.stderr.strip(), "an error must be reported"
    assert berth(*listing).stdout == before
    assert berth("image", "inspect", "junk:bad").returncode == 1


def test_daemon_not_running():
    sock = os.path.join(tempfile.gettempdir(), "berth-nodaemon-" + uuid.uuid4().hex[:8] + ".sock")
    env = dict(os.environ, BERTH_HOST="unix://" + sock, DOCKER_HOST="unix://" + sock)
    for argv in (["ps"], ["run", "--rm", "busybox", "true"]):
        p = subprocess.run(BERTH + argv, capture_output=True, text=True, env=env, timeout=60,
                           stdin=subprocess.DEVNULL)
        assert p.returncode == 1, (argv, p.stdout, p.stderr)
        assert f"Cannot connect to the Berth daemon at unix://{sock}. Is the daemon running?" in p.stderr
        assert "Traceback" not in p.stderr


# --- cleanup ---------------------------------------------------------------------------------

def _mounted(cid: str, pid: str = "self") -> list[str]:
    with open(f"/proc/{pid}/mountinfo") as f:
        return [line for line in f if cid in line]


def _mounted_anywhere(cid: str) -> list[str]:
    """Mounts naming ``cid`` in the mount namespace of any live process (host's included)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and _alive(int(d)):
            try:
                found += [f"{d}: {line}" for line in _mounted(cid, d)]
            except OSError:
                pass
    return found


def _cgroup_dirs(cid: str) -> list[Path]:
    return [p for c in CGROUP_CONTROLLERS if (p := Path("/sys/fs/cgroup") / c / "berth" / cid).exists()]


def _procs_in_cgroup(cid: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cgroup") as f:
                if cid in f.read():
                    found.append(int(d))
        except OSError:
            pass
    return found


def _procs_naming(cid: str) -> list[str]:
    """Live processes whose command line mentions ``cid`` (a monitor, say)."""
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit() and int(d) != os.getpid() and _alive(int(d)):
            try:
                cmdline = Path(f"/proc/{d}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cid in cmdline or cid[:24] in cmdline:
                found.append(f"{d}: {cmdline}")
    return found


def _ppids() -> dict[int, int]:
    out = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                out[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    return out


def _daemon_grandchildren(berth) -> list[int]:
    """Live processes below the daemon's own helpers (monitors, container processes)."""
    ppids = _ppids()
    top = berth.daemon.proc.pid
    children = {p for p, pp in ppids.items() if pp == top}
    below, frontier = set(), children
    while frontier:
        frontier = {p for p, pp in ppids.items() if pp in frontier} - below
        below |= frontier
    return sorted(p for p in below if _alive(p))


def _exec_root_leftovers(berth, cid: str) -> list[str]:
    root = berth.daemon.exec_root
    return [os.path.join(dp, f) for dp, dirs, files in os.walk(root) for f in dirs + files
            if cid[:12] in f] if root.exists() else []


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _assert_gone(berth, cid: str, pid: int) -> None:
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"container process {pid} still alive"
    # The container's monitor goes too (this test's container is the daemon's only one).
    while _daemon_grandchildren(berth) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _daemon_grandchildren(berth) == []
    assert _mounted(cid) == []
    assert _mounted_anywhere(cid) == []
    assert _cgroup_dirs(cid) == []
    assert [p for p in _procs_in_cgroup(cid) if _alive(p)] == []
    assert _procs_naming(cid) == []
    assert not (berth.daemon.data_root / "containers" / cid).exists()
    assert _exec_root_leftovers(berth, cid) == []
    assert cid not in berth.ids()


def _running(berth, *args: str) -> tuple[str, int]:
    r = berth("run", "-d", *args, "busybox", "sh", "-c", "sleep 300 & sleep 300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert HEX64.match(cid)
    pid = berth.inspect(cid)["State"]["Pid"]
    assert _alive(pid)
    # Sanity: the checks below would see the container if it were still there.
    # (The rootfs is mounted in the container's own mount namespace.)
    assert _mounted(cid, str(pid)), "the container's rootfs mount should name its id"
    assert len(_cgroup_dirs(cid)) == len(CGROUP_CONTROLLERS)
    assert pid in _procs_in_cgroup(cid)
    assert pid in _daemon_grandchildren(berth)
    assert (berth.daemon.data_root / "containers" / cid).is_dir()
    return cid, pid


def test_rm_force_leaves_nothing(berth):
    cid, pid = _running(berth, "-m", "64m", "--pids-limit", "100", "--cpus", "1")
    r = berth("rm", "-f", cid)
    assert r.returncode == 0, r.stderr
    _assert_gone(berth, cid, pid)


def test_stop_then_rm_leaves_nothing(berth):
    cid, pid = _running(berth)
    assert berth("stop", "-t", "1", cid).returncode == 0
    assert not _alive(pid)
    r = berth("rm", cid)
    assert r.returncode == 0, r.stderr
    _assert_gone(berth, cid, pid)


def test_run_rm_leaves_nothing(berth):
    before = berth.ids()
    before_dirs = set(os.listdir(berth.daemon.data_root / "containers"))
    r = berth("run", "--rm", "busybox", "sh", "-c", "cat /proc/self/cgroup; echo $$")
    assert r.returncode == 0, r.stderr
    assert berth.ids() == before
    assert set(os.listdir(berth.daemon.data_root / "containers")) == before_dirs
    ids = set(re.findall(r"berth/([0-9a-f]{64})", r.stdout))
    assert len(ids) == 1, r.stdout
    cid = ids.pop()
    assert _mounted_anywhere(cid) == []
    assert _cgroup_dirs(cid) == []
    assert [p for p in _procs_in_cgroup(cid) if _alive(p)] == []
    assert _exec_root_leftovers(berth, cid) == []
    deadline = time.monotonic() + 10
    while _daemon_grandchildren(berth) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _daemon_grandchildren(berth) == []
