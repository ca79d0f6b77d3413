"""`berth run` as a user sees it: output, exit codes, streams, config flags, --rm, -d, -i."""

from __future__ import annotations

import re
import uuid

HEX64 = re.compile(r"^[0-9a-f]{64}$")


def name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def test_run_prints_output(berth):
    r = berth("run", "--rm", "busybox", "echo", "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_run_propagates_exit_code(berth):
    r = berth("run", "--rm", "busybox", "sh", "-c", "exit 3")
    assert r.returncode == 3, r.stderr
    assert r.stdout == ""


def test_run_keeps_stdout_and_stderr_apart(berth):
    r = berth("run", "--rm", "busybox", "sh", "-c", "echo out; echo err >&2; echo out2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "out\nout2\n"
    assert r.stderr == "err\n"


def test_run_env_and_env_file(berth, tmp_path):
    env_file = tmp_path / "env.list"
    env_file.write_text("# a comment\nFROM_FILE=file value\n\nSHARED=from-file\n")
    r = berth("run", "--rm", "-e", "FOO=bar", "-e", "SHARED=from-flag", "--env-file", str(env_file),
              "busybox", "env")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert "FOO=bar" in lines
    assert "FROM_FILE=file value" in lines
    # -e wins over --env-file, as in Docker.
    assert "SHARED=from-flag" in lines
    assert "SHARED=from-file" not in lines
    assert any(line.startswith("PATH=") for line in lines)


def test_run_workdir(berth):
    # Docker creates a missing working directory.
    r = berth("run", "--rm", "-w", "/srv/app", "busybox", "pwd")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/srv/app\n"


def test_run_user(berth):
    r = berth("run", "--rm", "-u", "65534", "busybox", "id", "-u")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "65534\n"


def test_run_hostname(berth):
    r = berth("run", "--rm", "--hostname", "myhost", "busybox", "hostname")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "myhost\n"


def test_run_entrypoint(berth):
    r = berth("run", "--rm", "--entrypoint", "echo", "busybox", "from", "entrypoint")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from entrypoint\n"
    r = berth("run", "--rm", "--entrypoint", "/bin/sh", "busybox", "-c", "echo $0")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "/bin/sh\n"


def test_run_name(berth):
    n = name()
    r = berth("run", "--name", n, "busybox", "echo", "named")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "named\n"
    info = berth.inspect(n)
    assert info["Name"] == "/" + n
    ps = berth("ps", "-a", "--format", "{{.Names}}", check=True)
    assert n in ps.stdout.split()


def test_run_rm_leaves_no_container(berth):
    before = berth.ids()
    n = name()
    r = berth("run", "--rm", "--name", n, "busybox", "echo", "gone")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "gone\n"
    assert berth.ids() == before
    r = berth("inspect", n)
    assert r.returncode != 0
    # A failing command is removed too.
    r = berth("run", "--rm", "busybox", "sh", "-c", "exit 2")
    assert r.returncode == 2
    assert berth.ids() == before


def test_run_detached_prints_id_and_keeps_running(berth):
    r = berth("run", "-d", "busybox", "sleep", "300")
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert HEX64.match(cid), r.stdout
    assert r.stdout == cid + "\n"
    # The CLI has exited; the container is still up.
    info = berth.inspect(cid)
    assert info["State"]["Running"] is True
    assert info["State"]["Status"] == "running"
    ps = berth("ps", "-q", "--no-trunc", check=True)
    assert cid in ps.stdout.split()
    r = berth("exec", cid, "echo", "alive")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "alive\n"


def test_run_interactive_piped_stdin(berth):
    r = berth("run", "-i", "--rm", "busybox", "cat", input="hi\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"


def test_run_interactive_stdin_eof_and_volume(berth):
    data = "".join(f"line {i}\n" for i in range(20000))
    r = berth("run", "-i", "--rm", "busybox", "sh", "-c", "wc -l; echo done", input=data)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["20000", "done"]


def test_run_forwards_signals_to_container(berth):
    import signal
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-m", "berth.cli.main", "run", "--rm", "busybox", "sh", "-c",
                          'trap "echo got TERM; exit 3" TERM; echo ready; while true; do sleep 0.1; done'],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         env=berth.daemon.env(), text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGTERM)  # the CLI proxies it to the container (--sig-proxy default)
        out, err = p.communicate(timeout=20)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 3, err
    assert out == "got TERM\n"


def test_run_detached_rm_removes_on_exit(berth):
    import time

    before = berth.ids()
    r = berth("run", "-d", "--rm", "busybox", "sh", "-c",
              'trap "exit 0" TERM; while true; do sleep 0.1; done')
    assert r.returncode == 0, r.stderr
    cid = r.stdout.strip()
    assert HEX64.match(cid)
    assert berth.inspect(cid)["State"]["Running"] is True
    r = berth("stop", cid)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 15
    while cid in berth.ids():
        assert time.monotonic() < deadline, "auto-removed container still listed"
        time.sleep(0.05)
    assert berth.ids() == before
