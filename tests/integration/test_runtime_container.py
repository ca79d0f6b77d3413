"""Real containers from busybox: start, exec, limits, terminal, cleanup. Needs root."""

from __future__ import annotations

import json
import os
import select
import signal
import time
import uuid
from pathlib import Path

import pytest

from berth.errors import StartError
from berth.runtime import cgroups
from berth.runtime.process import (
    Stdio,
    delete_container,
    exec_process,
    signal_process,
    start_container,
)
from berth.runtime.spec import exec_process as exec_spec
from berth.runtime.spec import generate_spec

BUSYBOX = "/bin/busybox"
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="needs busybox"),
]

APPLETS = ["sh", "echo", "cat", "ls", "ps", "hostname", "id", "sleep", "mount", "grep", "tty", "touch",
           "seq", "head", "tail", "stty", "true", "false", "wc", "env", "pwd", "readlink", "stat", "mkdir"]


@pytest.fixture(scope="session")
def lower(tmp_path_factory) -> Path:
    """An image-like lower dir: busybox, its applets, /etc/passwd and /etc/group."""
    d = tmp_path_factory.mktemp("lower")
    (d / "bin").mkdir()
    os.link(BUSYBOX, d / "bin/busybox") if os.stat(BUSYBOX).st_dev == os.stat(d).st_dev else \
        (d / "bin/busybox").write_bytes(Path(BUSYBOX).read_bytes())
    os.chmod(d / "bin/busybox", 0o755)
    for a in APPLETS:
        os.symlink("busybox", d / "bin" / a)
    (d / "etc").mkdir()
    (d / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (d / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\ntty:x:5:\n")
    for sub in ("root", "tmp", "proc", "sys", "dev"):
        (d / sub).mkdir()
    return d


class Box:
    """A bundle with an overlay rootfs, plus everything it started, so the test can clean up."""

    def __init__(self, tmp: Path, lower: Path) -> None:
        self.id = "t" + uuid.uuid4().hex[:12]
        self.bundle = tmp / "bundle"
        (self.bundle / "rootfs").mkdir(parents=True)
        self.upper, self.work = tmp / "upper", tmp / "work"
        self.upper.mkdir()
        self.work.mkdir()
        self.lower = lower
        for name, text in (("hostname", "box\n"), ("hosts", "127.0.0.1 localhost\n"),
                           ("resolv.conf", "nameserver 10.0.0.1\n")):
            (tmp / name).write_text(text)
        self.tmp = tmp
        self.pids: list[int] = []
        self.fds: list[int] = []

    @property
    def cgroups_path(self) -> str:
        return f"/berth-test/{self.id}"

    def mounts(self) -> list[dict]:
        return [{"type": "overlay", "source": "overlay",
                 "options": [f"lowerdir={self.lower}", f"upperdir={self.upper}", f"workdir={self.work}"]}]

    def spec(self, cmd: list[str], host_config: dict | None = None, **config) -> dict:
        config = {"Cmd": cmd, "Hostname": "box", **config}
        s = generate_spec(container_id=self.id, config=config, host_config=host_config or {},
                          hostname_path=str(self.tmp / "hostname"), hosts_path=str(self.tmp / "hosts"),
                          resolv_path=str(self.tmp / "resolv.conf"), cgroups_path=self.cgroups_path)
        (self.bundle / "config.json").write_text(json.dumps(s))
        return s

    def start(self, cmd: list[str], host_config: dict | None = None, **config):
        self.spec(cmd, host_config, **config)
        r, w = os.pipe()
        self.fds.append(r)
        try:
            started = start_container(self.bundle, self.mounts(), Stdio(None, w, w))
        finally:
            os.close(w)
        self.pids.append(started.pid)
        if started.pty_master is not None:
            self.fds.append(started.pty_master)
        return started, r

    def run(self, cmd: list[str], host_config: dict | None = None, **config) -> tuple[int, str]:
        """Start, read all output, reap: (exit status as waitpid gives it, output)."""
        started, r = self.start(cmd, host_config, **config)
        out = read_all(r)
        _, status = os.waitpid(started.pid, 0)
        self.pids.remove(started.pid)
        return status, out

    def cleanup(self) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        delete_container(self.bundle)


def read_all(fd: int, timeout: float = 20) -> str:
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO on a pty whose slave closed
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture
def box(tmp_path, lower):
    b = Box(tmp_path, lower)
    yield b
    b.cleanup()
    assert not cgroups.open_cgroup(b.cgroups_path).exists()
    assert str(b.bundle) not in Path("/proc/self/mountinfo").read_text()


def exit_code(status: int) -> int:
    return os.waitstatus_to_exitcode(status)


def test_echo(box):
    status, out = box.run(["echo", "hi"])
    assert (exit_code(status), out) == (0, "hi\n")


def test_exit_code_is_passed_through(box):
    status, _ = box.run(["sh", "-c", "exit 3"])
    assert exit_code(status) == 3


def test_ps_shows_only_the_container(box):
    status, out = box.run(["ps", "-o", "pid,args"])
    lines = out.strip().splitlines()[1:]
    assert exit_code(status) == 0
    assert len(lines) == 1 and lines[0].split()[0] == "1" and "ps" in lines[0]


def test_hostname_env_and_files(box):
    status, out = box.run(["sh", "-c", "hostname; echo $HOSTNAME $HOME $PATH; cat /etc/hostname /etc/resolv.conf"])
    assert exit_code(status) == 0
    assert out.splitlines() == ["box", "box /root /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                "box", "nameserver 10.0.0.1"]


def test_host_files_invisible_and_writes_go_to_upper(box, tmp_path):
    marker = Path("/tmp") / f"berth-marker-{box.id}"
    marker.write_text("host")
    try:
        status, out = box.run(["sh", "-c", f"ls {marker} 2>&1; echo data > /newfile; cat /newfile"])
    finally:
        marker.unlink()
    assert "No such file" in out and out.endswith("data\n")
    assert (box.upper / "newfile").read_text() == "data\n"
    assert not (box.lower / "newfile").exists()


def test_proc_masked_and_readonly(box):
    # /proc/kcore is masked when the kernel has one; this VM's kernel has none, so check the
    # masked paths that exist on the host too.
    script = ("for p in /proc/kcore /proc/keys /proc/timer_list; do [ -e $p ] && echo $p $(wc -c < $p); done;"
              " ls /proc/acpi | wc -l; echo 1 > /proc/sys/kernel/domainname && echo wrote;"
              " touch /sys/x 2>&1; true")
    status, out = box.run(["sh", "-c", script])
    lines = out.splitlines()
    masked = [line for line in lines if line.startswith("/proc/")]
    expected = [p for p in ("/proc/kcore", "/proc/keys", "/proc/timer_list") if os.path.exists(p)]
    assert [m.split()[0] for m in masked] == expected
    assert all(m.split()[1] == "0" for m in masked)
    assert lines[len(masked)].strip() == "0"  # /proc/acpi is an empty tmpfs
    assert "wrote" not in out
    assert "Read-only file system" in out


def test_default_capabilities_like_docker(box):
    status, out = box.run(["grep", "Cap", "/proc/self/status"])
    caps = dict(line.split(":\t") for line in out.strip().splitlines())
    assert caps["CapBnd"] == caps["CapEff"] == caps["CapPrm"] == "00000000a80425fb"
    assert caps["CapInh"] == caps["CapAmb"] == "0000000000000000"


def test_non_root_user_gets_no_effective_caps(box):
    status, out = box.run(["sh", "-c", "id; grep CapEff /proc/self/status"], User="nobody")
    assert "uid=65534(nobody) gid=65534(nogroup)" in out
    assert "CapEff:\t0000000000000000" in out


def test_missing_executable(box):
    with pytest.raises(StartError) as ei:
        box.start(["nosuchcmd"])
    assert ei.value.exit_code == 127
    assert str(ei.value) == ('failed to create shim task: OCI runtime create failed: runc create failed: unable '
                             'to start container process: exec: "nosuchcmd": executable file not found in $PATH: '
                             'unknown')


def test_missing_user(box):
    with pytest.raises(StartError) as ei:
        box.start(["true"], User="nosuchuser")
    assert ei.value.exit_code == 126
    assert str(ei.value) == "unable to find user nosuchuser: no matching entries in passwd file"


def test_workdir_is_created(box):
    status, out = box.run(["pwd"], WorkingDir="/srv/app")
    assert out == "/srv/app\n"


def test_exec_joins_namespaces(box):
    started, r = box.start(["sleep", "30"])
    er, ew = os.pipe()
    try:
        proc = exec_spec(json.loads((box.bundle / "config.json").read_text())["process"],
                         args=["sh", "-c", "hostname; ps -o pid,args | grep -c sleep; cat /proc/1/cmdline"])
        ex = exec_process(started.pid, proc, box.cgroups_path, Stdio(None, ew, ew))
    finally:
        os.close(ew)
    out = read_all(er)
    os.close(er)
    _, status = os.waitpid(ex.pid, 0)
    assert exit_code(status) == 0
    assert out.splitlines()[0] == "box"
    assert out.splitlines()[2].startswith("sleep")
    assert signal_process(started.pid, started.start_time, signal.SIGKILL)


def test_exec_errors(box):
    started, r = box.start(["sleep", "30"])
    base = json.loads((box.bundle / "config.json").read_text())["process"]
    with pytest.raises(StartError) as ei:
        exec_process(started.pid, exec_spec(base, args=["x"]), box.cgroups_path, Stdio(None, None, None))
    assert ei.value.exit_code == 127
    assert 'exec: "x": executable file not found in $PATH' in str(ei.value)
    with pytest.raises(StartError) as ei:
        exec_process(started.pid, exec_spec(base, args=["true"], user="nobody2"), box.cgroups_path,
                     Stdio(None, None, None))
    assert ei.value.exit_code == 126
    assert str(ei.value) == "unable to find user nobody2: no matching entries in passwd file"


def test_signal_process_after_exit(box):
    started, r = box.start(["true"])
    read_all(r)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and signal_process(started.pid, started.start_time, 0):
        time.sleep(0.01)
    assert not signal_process(started.pid, started.start_time, signal.SIGTERM)  # a zombie now


def test_pids_limit(box):
    started, r = box.start(["sh", "-c", "for i in $(seq 80); do sleep 5 & done; echo forked"], {"PidsLimit": 50})
    out = read_all(r)
    cg = cgroups.open_cgroup(box.cgroups_path)
    assert "can't fork" in out and "forked" not in out  # busybox sh gives up on the fork error
    assert len(cg.procs()) <= 50
    assert cg.stats()["pids"]["current"] <= 50
    pid = os.fork()  # the host still forks fine
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)


def test_memory_limit_oom(box):
    started, r = box.start(["sh", "-c", "x=aaaaaaaaaaaaaaaa; while true; do x=$x$x; done"],
                           {"Memory": 32 * 1024 * 1024})
    _, status = os.waitpid(started.pid, 0)
    box.pids.remove(started.pid)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert cgroups.open_cgroup(box.cgroups_path).oom_killed()


def test_terminal(box):
    box.spec(["sh", "-c", "tty; stty size"], Tty=True)
    started = start_container(box.bundle, box.mounts(), Stdio(None, None, None), console_size=(30, 100))
    box.pids.append(started.pid)
    assert started.pty_master is not None
    box.fds.append(started.pty_master)
    out = read_all(started.pty_master, timeout=5)
    assert out.replace("\r", "").splitlines()[:2] in (["/dev/pts/0", "30 100"], ["/dev/console", "30 100"])


def test_delete_removes_cgroup(box):
    started, r = box.start(["sleep", "30"])
    cg = cgroups.open_cgroup(box.cgroups_path)
    assert started.pid in cg.procs()
    delete_container(box.bundle)
    _, status = os.waitpid(started.pid, 0)
    box.pids.remove(started.pid)
    assert not cg.exists()
    delete_container(box.bundle)  # idempotent


@pytest.fixture(scope="session", autouse=True)
def _remove_test_cgroup_parents():
    yield
    for ctrl in cgroups.V1_CONTROLLERS:
        try:
            os.rmdir(f"/sys/fs/cgroup/{ctrl}/berth-test")
        except OSError:
            pass


def open_fds() -> set[str]:
    return {fd for fd in os.listdir("/proc/self/fd") if os.path.lexists(f"/proc/self/fd/{fd}")}


def test_caller_state_is_restored(box):
    before = open_fds()
    box.run(["true"])
    assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
    leaked = open_fds() - before - {str(fd) for fd in box.fds}
    assert leaked == set()


def test_process_state_signals_rlimits_cgroup(box):
    status, out = box.run(["sh", "-c", "grep -E 'SigIgn|SigBlk' /proc/self/status; ulimit -n; cat /proc/self/cgroup;"
                                       " ls /sys/fs/cgroup; touch /sys/fs/cgroup/memory/x 2>&1; true"])
    lines = out.splitlines()
    assert lines[0] == "SigBlk:\t0000000000000000" and lines[1] == "SigIgn:\t0000000000000000"
    hard = open("/proc/self/limits").read()
    assert lines[2] in ("1048576", hard.split("Max open files")[1].split()[1])
    assert f"memory:{box.cgroups_path}" in out
    assert "memory" in lines and "pids" in lines
    assert "Read-only file system" in out


def test_readonly_rootfs(box):
    status, out = box.run(["sh", "-c", "touch /x 2>&1; touch /dev/shm/ok && echo shm-ok"], {"ReadonlyRootfs": True})
    assert "Read-only file system" in out and "shm-ok" in out


def test_exec_with_terminal_and_cgroup(box):
    started, r = box.start(["sleep", "30"])
    base = json.loads((box.bundle / "config.json").read_text())["process"]
    ex = exec_process(started.pid, exec_spec(base, args=["sh", "-c", "tty; cat /proc/self/cgroup; id -u"],
                                             tty=True, user="nobody"),
                      box.cgroups_path, Stdio(None, None, None), console_size=(10, 20))
    assert ex.pty_master is not None
    box.fds.append(ex.pty_master)
    box.pids.append(ex.pid)
    out = read_all(ex.pty_master, timeout=5).replace("\r", "")
    _, status = os.waitpid(ex.pid, 0)
    box.pids.remove(ex.pid)
    assert exit_code(status) == 0
    assert out.splitlines()[0].startswith("/dev/pts/")
    assert f"pids:{box.cgroups_path}" in out
    assert out.splitlines()[-1] == "65534"


def test_mount_failure_is_reported(box):
    box.spec(["true"])
    bad = [{"type": "overlay", "source": "overlay",
            "options": [f"lowerdir={box.tmp}/nope", f"upperdir={box.upper}", f"workdir={box.work}"]}]
    with pytest.raises(StartError) as ei:
        start_container(box.bundle, bad, Stdio(None, None, None))
    assert ei.value.exit_code == 128
    assert "unable to start container process: error during container init: mount overlay" in str(ei.value)
    assert not cgroups.open_cgroup(box.cgroups_path).exists()


def test_domainname_and_user_with_group(box):
    status, out = box.run(["sh", "-c", "cat /proc/sys/kernel/domainname; id"], Domainname="example.org",
                          User="nobody:root")
    assert out.splitlines()[0] == "example.org"
    assert out.splitlines()[1].startswith("uid=65534(nobody) gid=0(root)")


def test_sysctl(box):
    status, out = box.run(["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start"],
                          {"Sysctls": {"net.ipv4.ip_unprivileged_port_start": "80"}})
    assert out == "80\n"


def test_freeze_thaw_and_delete_while_frozen(box):
    started, r = box.start(["sh", "-c", "while true; do echo tick; sleep 0.05; done"])
    cg = cgroups.open_cgroup(box.cgroups_path)
    os.read(r, 100)
    cg.freeze()
    state = Path(f"/sys/fs/cgroup/freezer{box.cgroups_path}/freezer.state")
    assert state.read_text().strip() == "FROZEN"
    time.sleep(0.1)
    while select.select([r], [], [], 0)[0]:  # drain what was written before the freeze
        os.read(r, 65536)
    time.sleep(0.2)
    assert not select.select([r], [], [], 0)[0]  # frozen: no more ticks
    cg.thaw()
    assert select.select([r], [], [], 2)[0]
    cg.freeze()
    delete_container(box.bundle)  # thaws, kills, removes
    os.waitpid(started.pid, 0)
    box.pids.remove(started.pid)
    assert not cg.exists()
