"""Container lifecycle through the CLI: stop/kill/restart semantics, logs, wait, inspect, ps, names."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid

HEX64 = re.compile(r"^[0-9a-f]{64}$")
BERTH = [sys.executable, "-m", "berth.cli.main"]
# A loop that reports readiness, then idles in short sleeps so traps run promptly.
LOOP = "echo ready; while true; do sleep 0.1; done"


def name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def run_d(berth, *args: str) -> str:
    r = berth("run", "-d", *args)
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert HEX64.match(cid), r.stdout
    return cid


def wait_for_logs(berth, ref: str, text: str, timeout: float = 15) -> str:
    deadline = time.monotonic() + timeout
    while True:
        r = berth("logs", ref)
        if text in r.stdout:
            return r.stdout
        assert time.monotonic() < deadline, f"{text!r} not in logs: {r.stdout!r} {r.stderr!r}"
        time.sleep(0.05)


def wait_for_state(berth, ref: str, running: bool, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        info = berth.inspect(ref)
        if info["State"]["Running"] is running:
            return info
        assert time.monotonic() < deadline, f"{ref} Running never became {running}: {info['State']}"
        time.sleep(0.05)


# --- stop / kill / restart -------------------------------------------------------------------

def test_stop_sends_term_to_a_trapping_process(berth):
    n = name()
    run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "echo TERM; exit 0" TERM; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    r = berth("stop", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == n + "\n"
    info = berth.inspect(n)
    assert info["State"]["Running"] is False
    assert info["State"]["Status"] == "exited"
    assert info["State"]["ExitCode"] == 0
    assert info["State"]["OOMKilled"] is False
    assert "TERM" in berth("logs", n).stdout.splitlines()


def test_stop_kills_a_process_ignoring_term(berth):
    n = name()
    run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "" TERM; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    r = berth("stop", "-t", "1", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == n + "\n"
    info = berth.inspect(n)
    assert info["State"]["Running"] is False
    assert info["State"]["ExitCode"] == 137


def test_kill_with_signal_reaches_trap(berth):
    n = name()
    run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "echo got USR1" USR1; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    r = berth("kill", "-s", "USR1", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == n + "\n"
    wait_for_logs(berth, n, "got USR1")
    assert berth.inspect(n)["State"]["Running"] is True
    # Numbers and SIG-prefixed names are accepted as well.
    r = berth("kill", "--signal", "SIGUSR1", n)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 15
    while berth("logs", n).stdout.count("got USR1") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    r = berth("kill", n)  # default KILL
    assert r.returncode == 0, r.stderr
    info = wait_for_state(berth, n, False)
    assert info["State"]["ExitCode"] == 137


def test_kill_of_stopped_container_fails(berth):
    n = name()
    r = berth("run", "--name", n, "busybox", "true")
    assert r.returncode == 0, r.stderr
    r = berth("kill", n)
    assert r.returncode == 1
    assert r.stderr.startswith("Error response from daemon:"), r.stderr
    assert "is not running" in r.stderr


def test_restart_detached_container(berth):
    n = name()
    run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "exit 0" TERM; echo started; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    before = berth.inspect(n)
    r = berth("restart", "-t", "5", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == n + "\n"
    after = berth.inspect(n)
    assert after["State"]["Running"] is True
    assert after["State"]["Status"] == "running"
    assert after["State"]["StartedAt"] != before["State"]["StartedAt"]
    assert after["State"]["StartedAt"] > before["State"]["StartedAt"]
    assert after["State"]["Pid"] not in (0, before["State"]["Pid"])
    assert after["Id"] == before["Id"]
    deadline = time.monotonic() + 15
    while True:
        logs = berth("logs", n).stdout.splitlines()
        if logs.count("started") == 2 and logs.count("ready") == 2:
            break
        assert time.monotonic() < deadline, logs
        time.sleep(0.05)
    assert logs == ["started", "ready", "started", "ready"]


# --- logs ------------------------------------------------------------------------------------

def test_logs_keeps_streams_apart(berth):
    n = name()
    r = berth("run", "--name", n, "busybox", "sh", "-c", "echo out1; echo err1 >&2; echo out2")
    assert r.returncode == 0, r.stderr
    r = berth("logs", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out1\nout2\n"
    assert r.stderr == "err1\n"


def test_logs_tail(berth):
    n = name()
    assert berth("run", "--name", n, "busybox", "seq", "1", "5").returncode == 0
    r = berth("logs", "--tail", "2", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "4\n5\n"
    assert berth("logs", "-n", "0", n).stdout == ""
    assert berth("logs", "--tail", "all", n).stdout == "1\n2\n3\n4\n5\n"


def test_logs_timestamps(berth):
    n = name()
    assert berth("run", "--name", n, "busybox", "seq", "1", "3").returncode == 0
    r = berth("logs", "-t", n)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3, r.stdout
    stamp = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z) (\d)$")
    for i, line in enumerate(lines, 1):
        m = stamp.match(line)
        assert m, line
        assert m.group(2) == str(i)
    assert [stamp.match(line).group(1) for line in lines] == sorted(stamp.match(line).group(1) for line in lines)


def test_logs_follow_ends_when_container_exits(berth):
    n = name()
    run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "echo bye; exit 0" USR1; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    follow = subprocess.Popen(BERTH + ["logs", "-f", n], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=berth.daemon.env(), text=True)
    try:
        first = follow.stdout.readline()
        assert first == "ready\n"
        assert follow.poll() is None  # still following a running container
        assert berth("kill", "-s", "USR1", n).returncode == 0
        out, err = follow.communicate(timeout=20)
    finally:
        if follow.poll() is None:
            follow.kill()
            follow.wait()
    assert follow.returncode == 0, err
    assert out == "bye\n"


# --- wait / inspect / ps ---------------------------------------------------------------------

def test_wait_prints_exit_code(berth):
    n = name()
    run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "exit 7" USR1; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    waiter = subprocess.Popen(BERTH + ["wait", n], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL, env=berth.daemon.env(), text=True)
    try:
        time.sleep(0.3)
        assert waiter.poll() is None  # blocks while the container runs
        assert berth("kill", "-s", "USR1", n).returncode == 0
        out, err = waiter.communicate(timeout=20)
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()
    assert waiter.returncode == 0, err
    assert out == "7\n"
    # Waiting on an exited container answers at once.
    r = berth("wait", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "7\n"


def test_inspect_shape(berth):
    n = name()
    cid = run_d(berth, "--name", n, "busybox", "sh", "-c", 'trap "exit 5" TERM; ' + LOOP)
    wait_for_logs(berth, n, "ready")
    r = berth("inspect", n)
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert isinstance(data, list) and len(data) == 1
    info = data[0]
    assert info["Id"] == cid
    assert info["Name"] == "/" + n
    assert info["Config"]["Hostname"] == cid[:12]
    assert info["Config"]["Image"] == "busybox"
    assert info["Path"] == "sh"
    st = info["State"]
    assert st["Status"] == "running"
    assert st["Running"] is True
    assert st["ExitCode"] == 0
    assert isinstance(st["Pid"], int) and st["Pid"] > 0
    assert os.path.exists(f"/proc/{st['Pid']}")
    r = berth("inspect", "-f", "{{.State.Status}} {{.State.Running}} {{.Name}}", n)
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"running true /{n}\n"

    assert berth("stop", n).returncode == 0
    st = berth.inspect(n)["State"]
    assert st["Status"] == "exited"
    assert st["Running"] is False
    assert st["ExitCode"] == 5
    assert st["Pid"] == 0


def test_ps_all_quiet_no_trunc(berth):
    up, down = name(), name()
    up_id = run_d(berth, "--name", up, "busybox", "sleep", "300")
    r = berth("run", "--name", down, "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3
    down_id = berth.inspect(down)["Id"]

    r = berth("ps")
    assert r.returncode == 0, r.stderr
    header, *rows = r.stdout.splitlines()
    assert header.split()[:2] == ["CONTAINER", "ID"]
    for col in ("IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"):
        assert col in header
    mine = [row for row in rows if row.split()[-1] == up]
    assert len(mine) == 1
    assert mine[0].startswith(up_id[:12] + " ")
    assert "Up " in mine[0]
    assert not any(row.split()[-1] == down for row in rows)

    r = berth("ps", "-a")
    rows = r.stdout.splitlines()[1:]
    exited = [row for row in rows if row.split()[-1] == down]
    assert len(exited) == 1
    assert "Exited (3)" in exited[0]

    q = berth("ps", "-q").stdout.split()
    assert up_id[:12] in q and down_id[:12] not in q
    assert all(len(x) == 12 for x in q)
    aq = berth("ps", "-a", "-q").stdout.split()
    assert up_id[:12] in aq and down_id[:12] in aq
    full = berth("ps", "-aq", "--no-trunc").stdout.split()
    assert up_id in full and down_id in full
    assert all(HEX64.match(x) for x in full)


def test_container_names_are_unique(berth):
    n = name()
    assert berth("run", "--name", n, "busybox", "true").returncode == 0
    first = berth.inspect(n)["Id"]
    before = berth.ids()
    r = berth("run", "--name", n, "busybox", "true")
    assert r.returncode == 125
    assert f'Conflict. The container name "/{n}" is already in use' in r.stderr
    assert first in r.stderr
    assert berth.ids() == before
    r = berth("create", "--name", n, "busybox", "true")
    assert r.returncode == 125
    assert "is already in use" in r.stderr


def test_ids_and_names_accepted_by_prefix(berth):
    n = name()
    cid = run_d(berth, "--name", n, "busybox", "sleep", "300")
    for ref in (cid, cid[:12], cid[:8], n):
        r = berth("inspect", "-f", "{{.Id}}", ref)
        assert r.returncode == 0, (ref, r.stderr)
        assert r.stdout == cid + "\n"
    r = berth("exec", cid[:8], "echo", "by-prefix")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "by-prefix\n"
    r = berth("stop", "-t", "0", cid[:10])
    assert r.returncode == 0, r.stderr
    assert r.stdout == cid[:10] + "\n"
    r = berth("rm", cid[:9])
    assert r.returncode == 0, r.stderr
    assert cid not in berth.ids()
