"""What a container can see and use: namespaces, filesystem isolation, and resource limits."""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

HOST_TMP = Path("/tmp")


def name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


# --- isolation -------------------------------------------------------------------------------

def test_ps_inside_sees_only_the_container(berth):
    r = berth("run", "--rm", "busybox", "ps", "-o", "pid,comm")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split() == ["PID", "COMMAND"]
    assert [row.split() for row in rows] == [["1", "ps"]]

    # (Applets re-executed by busybox show comm "exe": compare the command lines.)
    r = berth("run", "--rm", "busybox", "sh", "-c", "sleep 30 & ps -o pid,args; kill $!")
    assert r.returncode == 0, r.stderr
    procs = [row.split(None, 1) for row in r.stdout.splitlines()[1:]]
    assert procs[0][0] == "1" and procs[0][1].startswith("sh -c"), procs
    # sh (PID 1), its background sleep, and the subshell running ps: nothing of the host.
    # (The sleep may not have exec'd yet, so only the pids are compared.)
    assert [pid for pid, _ in procs] == ["1", "2", "3"], procs


def test_default_hostname_is_short_id(berth):
    n = name()
    r = berth("run", "--name", n, "busybox", "hostname")
    assert r.returncode == 0, r.stderr
    cid = berth.inspect(n)["Id"]
    assert r.stdout == cid[:12] + "\n"
    r = berth("run", "--rm", "busybox", "cat", "/etc/hostname")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) == 12


def test_host_tmp_file_not_visible(berth):
    marker = HOST_TMP / ("berth-host-" + uuid.uuid4().hex)
    marker.write_text("host secret\n")
    try:
        r = berth("run", "--rm", "busybox", "sh", "-c",
                  f"if test -e {marker}; then echo present; else echo absent; fi; ls /tmp")
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "absent"
        assert marker.name not in r.stdout
    finally:
        marker.unlink()


def test_writes_stay_in_their_container(berth):
    n = name()
    r = berth("run", "--name", n, "busybox", "sh", "-c",
              "echo mine > /marker && rm /bin/cat && echo changed >> /etc/passwd && echo done")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "done\n"
    # The writer still sees its own changes when restarted.
    r = berth("start", "-a", n)
    assert r.returncode != 0  # /marker exists, rm /bin/cat fails the second time
    # A second container from the same image sees the pristine image.
    r = berth("run", "--rm", "busybox", "sh", "-c",
              "test -e /marker && echo marker; test -e /bin/cat && echo cat; grep -c changed /etc/passwd")
    assert r.stdout.splitlines() == ["cat", "0"], r.stdout + r.stderr
    # And so does the image itself after the writer is gone.
    assert berth("rm", n).returncode == 0
    r = berth("run", "--rm", "busybox", "cat", "/etc/passwd")
    assert r.returncode == 0, r.stderr
    assert "changed" not in r.stdout


# --- limits ----------------------------------------------------------------------------------

def test_pids_limit_stops_a_fork_loop(berth):
    r = berth("run", "--rm", "--pids-limit", "50", "busybox", "sh", "-c",
              "for i in $(seq 100); do sleep 5 & done; wait", timeout=60)
    assert r.returncode != 0, r.stdout + r.stderr
    assert "can't fork" in r.stderr, r.stderr
    # The host is unaffected.
    assert subprocess.run(["true"]).returncode == 0
    r = berth("run", "--rm", "busybox", "echo", "fine")
    assert r.stdout == "fine\n"


def test_pids_limit_shown_in_inspect(berth):
    n = name()
    assert berth("create", "--name", n, "--pids-limit", "50", "busybox", "true").returncode == 0
    assert berth.inspect(n)["HostConfig"]["PidsLimit"] == 50


def test_memory_limit_oom_kills(berth):
    n = name()
    r = berth("run", "--name", n, "-m", "32m", "busybox", "sh", "-c", "x=a; while true; do x=$x$x; done",
              timeout=120)
    assert r.returncode == 137, r.stdout + r.stderr
    r = berth("inspect", "-f", "{{.State.OOMKilled}}", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "true\n"
    info = berth.inspect(n)
    assert info["State"]["ExitCode"] == 137
    assert info["HostConfig"]["Memory"] == 32 * 1024 * 1024


def test_cpus_sets_nano_cpus(berth):
    n = name()
    r = berth("run", "-d", "--name", n, "--cpus", "0.5", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    r = berth("inspect", "-f", "{{.HostConfig.NanoCpus}}", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "500000000\n"
    cpu = Path("/sys/fs/cgroup/cpu/berth") / cid
    quota = int((cpu / "cpu.cfs_quota_us").read_text())
    period = int((cpu / "cpu.cfs_period_us").read_text())
    assert quota * 2 == period
