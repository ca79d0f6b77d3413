"""The real docker CLI 28.2.2 against berthd: the commands of the first slice.

Every expectation here is what the CLI prints against a real dockerd 20.10 (API 1.41), as
recorded in /work/shared/design/ENGINE-API.md. Names are unique per test; the ``berth`` fixture
force-removes the containers a test creates, and tests remove the images they import.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")

HEX64 = re.compile(r"^[0-9a-f]{64}$")
RUN_HELP = "Run 'docker run --help' for more information"


def uniq(prefix: str = "bt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ok(r, out: str | None = None):
    assert r.returncode == 0, f"rc={r.returncode} stdout={r.stdout!r} stderr={r.stderr!r}"
    if out is not None:
        assert r.stdout == out, f"stdout={r.stdout!r} stderr={r.stderr!r}"
    return r


def inspect(berth, ref: str) -> dict:
    r = ok(berth.docker("inspect", ref))
    data = json.loads(r.stdout)
    assert isinstance(data, list) and len(data) == 1
    return data[0]


def run_d(berth, *cmd: str, name: str | None = None, opts: tuple[str, ...] = ()) -> str:
    """``docker run -d``; returns the full id printed by the CLI."""
    args = ["run", "-d", *opts]
    if name:
        args += ["--name", name]
    r = ok(berth.docker(*args, "busybox", *cmd))
    cid = r.stdout.strip()
    assert HEX64.match(cid), r.stdout
    return cid


SLEEPER = ("sleep", "300")


def wait_for(pred, what: str, timeout: float = 15.0):
    """Poll ``pred`` until it returns something truthy (not a timing assertion: a generous cap)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def wait_log(berth, ref: str, text: str) -> str:
    def check():
        r = berth.docker("logs", ref)
        return r.stdout if text in r.stdout else None
    return wait_for(check, f"{text!r} in the logs of {ref}")


# ---------------------------------------------------------------------------------------------
# run


def test_run_rm_echo(berth):
    before = berth.ids()
    r = berth.docker("run", "--rm", "busybox", "echo", "hi")
    ok(r, "hi\n")
    assert r.stderr == ""
    assert berth.ids() == before  # --rm: removed by the time the CLI returns (wait?condition=removed)


def test_run_exit_code_propagates(berth):
    assert berth.docker("run", "--rm", "busybox", "sh", "-c", "exit 3").returncode == 3
    name = uniq()
    r = berth.docker("run", "--name", name, "busybox", "sh", "-c", "echo out; echo err >&2; exit 42")
    assert r.returncode == 42
    assert r.stdout == "out\n"
    assert r.stderr == "err\n"
    assert inspect(berth, name)["State"]["ExitCode"] == 42


def test_run_missing_command_exits_127(berth):
    name = uniq()
    r = berth.docker("run", "--name", name, "busybox", "nosuchcmd-xyz")
    assert r.returncode == 127, r
    assert r.stderr.startswith("docker: Error response from daemon: "), r.stderr
    assert 'exec: "nosuchcmd-xyz": executable file not found in $PATH' in r.stderr
    assert r.stderr.rstrip("\n").endswith(RUN_HELP)
    # the container exists (created, start failed) with ExitCode 127 as with dockerd
    st = inspect(berth, name)["State"]
    assert st["Running"] is False
    assert st["ExitCode"] == 127
    assert "executable file not found" in st["Error"]


def test_run_rm_missing_command_removes_container(berth):
    before = berth.ids()
    r = berth.docker("run", "--rm", "busybox", "nosuchcmd-xyz")
    assert r.returncode == 127, r
    assert "executable file not found" in r.stderr
    assert berth.ids() == before


def test_run_stdin(berth):
    r = berth.docker("run", "-i", "--rm", "busybox", "cat", input="x\n")
    ok(r, "x\n")
    r = berth.docker("run", "-i", "--rm", "busybox", "wc", "-l", input="a\nb\nc\n")
    ok(r)
    assert r.stdout.strip() == "3"


def test_run_name_conflict(berth):
    name = uniq()
    cid = run_d(berth, *SLEEPER, name=name)
    r = berth.docker("run", "--name", name, "busybox", "true")
    assert r.returncode == 125
    assert r.stdout == ""
    assert r.stderr == (
        f'docker: Error response from daemon: Conflict. The container name "/{name}" is already in use '
        f'by container "{cid}". You have to remove (or rename) that container to be able to reuse '
        f"that name.\n\n{RUN_HELP}\n")
    r = berth.docker("create", "--name", name, "busybox", "true")
    assert r.returncode != 0
    assert f'The container name "/{name}" is already in use by container "{cid}"' in r.stderr


def test_run_detached_ps_logs_stop(berth):
    name = uniq()
    cid = run_d(berth, "sh", "-c", "echo started; exec sleep 300", name=name)
    wait_log(berth, name, "started")

    r = ok(berth.docker("ps"))
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES"]
    mine = [ln for ln in lines if ln.endswith(" " + name)]
    assert len(mine) == 1, r.stdout
    assert mine[0].startswith(cid[:12] + " ")
    assert " busybox " in mine[0]
    assert " Up " in mine[0]

    r = ok(berth.docker("ps", "-q", "--no-trunc"))
    assert cid in r.stdout.split()
    r = ok(berth.docker("ps", "--filter", f"name={name}", "--format", "{{.ID}} {{.Image}} {{.Names}} {{.State}}"))
    assert r.stdout == f"{cid[:12]} busybox {name} running\n"

    r = ok(berth.docker("logs", name))
    assert r.stdout == "started\n"

    ok(berth.docker("stop", "-t", "1", name), name + "\n")
    st = inspect(berth, name)["State"]
    assert st["Running"] is False
    assert st["Status"] == "exited"
    assert st["ExitCode"] == 137  # sleep ignores nothing, but PID 1 has no TERM handler: killed
    assert cid not in ok(berth.docker("ps", "-q", "--no-trunc")).stdout.split()
    r = ok(berth.docker("ps", "-a", "--filter", f"name={name}", "--format", "{{.Status}}"))
    assert r.stdout.startswith("Exited (137) "), r.stdout

    # stop of a stopped container: 304, the CLI prints the name and exits 0
    ok(berth.docker("stop", name), name + "\n")


def test_ps_all_shows_exited(berth):
    name = uniq()
    assert berth.docker("run", "--name", name, "busybox", "sh", "-c", "exit 3").returncode == 3
    r = ok(berth.docker("ps", "--format", "{{.Names}}"))
    assert name not in r.stdout.split()
    r = ok(berth.docker("ps", "-a", "--format", "{{.Names}}|{{.Status}}|{{.State}}|{{.Command}}"))
    mine = [ln for ln in r.stdout.splitlines() if ln.startswith(name + "|")]
    assert len(mine) == 1, r.stdout
    _, status, state, command = mine[0].split("|")
    assert status.startswith("Exited (3) ") and status.endswith(" ago"), status
    assert state == "exited"
    r = ok(berth.docker("ps", "-a", "--filter", "status=exited", "--filter", f"name={name}", "-q"))
    assert r.stdout.strip() != ""

    created = uniq()
    ok(berth.docker("create", "--name", created, "busybox", "true"))
    r = ok(berth.docker("ps", "-a", "--filter", f"name={created}", "--format", "{{.Status}}|{{.State}}"))
    assert r.stdout == "Created|created\n"


def test_ps_command_quotes_args_with_spaces(berth):
    # dockerd's list: Path + args joined by spaces, an arg containing a space in single quotes
    name = uniq()
    ok(berth.docker("create", "--name", name, "busybox", "sh", "-c", "exit 3"))
    r = ok(berth.docker("ps", "-a", "--no-trunc", "--filter", f"name={name}", "--format", "{{.Command}}"))
    assert r.stdout == '"sh -c \'exit 3\'"\n'


def test_images_lists_busybox(berth):
    r = ok(berth.docker("images"))
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert any(ln.split()[:2] == ["busybox", "latest"] for ln in lines[1:]), r.stdout
    r = ok(berth.docker("images", "--format", "{{.Repository}}:{{.Tag}}"))
    assert "busybox:latest" in r.stdout.splitlines()
    r = ok(berth.docker("images", "-q", "busybox"))
    assert re.match(r"^[0-9a-f]{12}$", r.stdout.strip()), r.stdout


def test_image_inspect(berth):
    r = ok(berth.docker("image", "inspect", "busybox"))
    [img] = json.loads(r.stdout)
    assert img["Id"].startswith("sha256:") and len(img["Id"]) == 71
    assert "busybox:latest" in img["RepoTags"]
    assert img["Os"] == "linux"
    assert img["RootFS"]["Type"] == "layers"
    assert img["RootFS"]["Layers"]
    assert isinstance(img["Config"], dict)
    r = ok(berth.docker("image", "inspect", "-f", "{{.Id}}", "busybox:latest"))
    assert r.stdout.strip() == img["Id"]
    # the short id and the full id both name it
    ok(berth.docker("image", "inspect", img["Id"][7:19]))
    ok(berth.docker("image", "inspect", img["Id"]))
    # `docker inspect busybox` falls through to the image
    r = ok(berth.docker("inspect", "--type", "image", "busybox"))
    assert json.loads(r.stdout)[0]["Id"] == img["Id"]


def test_inspect_container(berth):
    name = uniq()
    cid = run_d(berth, *SLEEPER, name=name)
    c = inspect(berth, name)
    assert c["Id"] == cid
    assert c["Name"] == "/" + name
    assert c["Path"] == "sleep" and c["Args"] == ["300"]
    assert c["State"]["Status"] == "running"
    assert c["State"]["Running"] is True
    assert c["State"]["Pid"] > 0
    assert c["Image"].startswith("sha256:")
    assert c["Config"]["Image"] == "busybox"
    assert c["Config"]["Cmd"] == ["sleep", "300"]
    assert c["Config"]["Hostname"] == cid[:12]
    assert c["HostConfig"]["NetworkMode"] == "default"
    assert inspect(berth, cid[:12])["Id"] == cid
    r = ok(berth.docker("inspect", "-f", "{{.State.Running}} {{.Name}}", name))
    assert r.stdout == f"true /{name}\n"
    r = ok(berth.docker("container", "inspect", "--format", "{{json .Config.Cmd}}", name))
    assert r.stdout == '["sleep","300"]\n'


def test_logs_streams_and_tail(berth):
    name = uniq()
    r = berth.docker("run", "--name", name, "busybox", "sh", "-c",
                     "echo out1; echo err1 >&2; echo out2; echo out3")
    ok(r)
    r = ok(berth.docker("logs", name))
    assert r.stdout == "out1\nout2\nout3\n"
    assert r.stderr == "err1\n"
    r = ok(berth.docker("logs", "-f", name))  # follow of a stopped container ends at once
    assert r.stdout == "out1\nout2\nout3\n"
    r = ok(berth.docker("logs", "-t", name))
    first = r.stdout.splitlines()[0]
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z out1$", first), first


def test_logs_tail(berth):
    name = uniq()
    ok(berth.docker("run", "--name", name, "busybox", "sh", "-c", "echo l1; echo l2; echo l3"))
    ok(berth.docker("logs", "--tail", "1", name), "l3\n")
    ok(berth.docker("logs", "--tail", "2", name), "l2\nl3\n")
    ok(berth.docker("logs", "--tail", "0", name), "")
    ok(berth.docker("logs", "--tail", "all", name), "l1\nl2\nl3\n")


def test_logs_since(berth):
    name = uniq()
    ok(berth.docker("run", "--name", name, "busybox", "echo", "old"))
    ok(berth.docker("logs", "--since", "1h", name), "old\n")
    ok(berth.docker("logs", "--since", "2099-01-01T00:00:00Z", name), "")
    ok(berth.docker("logs", "--until", "2000-01-01T00:00:00Z", name), "")


def test_logs_follow_ends_when_container_exits(berth):
    name = uniq()
    run_d(berth, "sh", "-c", "echo a; sleep 1; echo b", name=name)
    r = ok(berth.docker("logs", "-f", name, timeout=30))
    assert r.stdout == "a\nb\n"


def test_kill_with_signal_and_wait(berth):
    name = uniq()
    run_d(berth, "sh", "-c",
          'trap "echo got-usr1; exit 5" USR1; echo ready; while true; do sleep 0.1; done', name=name)
    wait_log(berth, name, "ready")
    ok(berth.docker("kill", "-s", "USR1", name), name + "\n")
    ok(berth.docker("wait", name), "5\n")
    assert "got-usr1" in ok(berth.docker("logs", name)).stdout
    # kill of a stopped container
    r = berth.docker("kill", name)
    cid = inspect(berth, name)["Id"]
    assert r.returncode == 1
    assert r.stderr == (f"Error response from daemon: Cannot kill container: {name}: "
                        f"Container {cid} is not running\n")


def test_kill_spellings(berth):
    name = uniq()
    run_d(berth, "sh", "-c",
          'trap "echo got-term; exit 6" TERM; echo ready; while true; do sleep 0.1; done', name=name)
    wait_log(berth, name, "ready")
    ok(berth.docker("kill", "--signal", "SIGTERM", name), name + "\n")
    ok(berth.docker("wait", name), "6\n")

    other = uniq()
    run_d(berth, *SLEEPER, name=other)
    ok(berth.docker("kill", other), other + "\n")  # default SIGKILL
    ok(berth.docker("wait", other), "137\n")
    assert inspect(berth, other)["State"]["ExitCode"] == 137


def test_wait(berth):
    cid = run_d(berth, "sh", "-c", "sleep 0.3; exit 7")
    ok(berth.docker("wait", cid), "7\n")
    ok(berth.docker("wait", cid), "7\n")  # already exited: answers at once
    name = uniq()
    assert berth.docker("run", "--name", name, "busybox", "true").returncode == 0
    ok(berth.docker("wait", name), "0\n")


def test_restart(berth):
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    before = inspect(berth, name)["State"]
    ok(berth.docker("restart", "-t", "1", name), name + "\n")
    after = inspect(berth, name)["State"]
    assert after["Running"] is True
    assert after["Pid"] != before["Pid"]
    assert after["StartedAt"] != before["StartedAt"]

    # restart of an exited container starts it
    other = uniq()
    ok(berth.docker("run", "--name", other, "busybox", "sh", "-c", "echo run"))
    ok(berth.docker("restart", other), other + "\n")
    ok(berth.docker("wait", other), "0\n")
    assert ok(berth.docker("logs", other)).stdout == "run\nrun\n"


def test_rm(berth):
    name = uniq()
    ok(berth.docker("create", "--name", name, "busybox", "true"))
    ok(berth.docker("rm", name), name + "\n")
    r = berth.docker("inspect", "--type", "container", name)
    assert r.returncode == 1

    running = uniq()
    cid = run_d(berth, *SLEEPER, name=running)
    r = berth.docker("rm", running)
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == (f"Error response from daemon: You cannot remove a running container {cid}. "
                        "Stop the container before attempting removal or force remove\n")
    assert inspect(berth, running)["State"]["Running"] is True
    ok(berth.docker("rm", "-f", running), running + "\n")
    assert cid not in berth.ids()


def test_rm_unknown(berth):
    r = berth.docker("rm", "nosuch-ctr")
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: No such container: nosuch-ctr\n"
    ok(berth.docker("rm", "-f", "nosuch-ctr"), "")  # -f ignores missing containers


def test_exec(berth):
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    ok(berth.docker("exec", name, "echo", "hi"), "hi\n")
    ok(berth.docker("exec", "-e", "FOO=bar", name, "sh", "-c", "echo $FOO"), "bar\n")
    ok(berth.docker("exec", "--env", "A=1", "-e", "B=2", name, "sh", "-c", "echo $A$B"), "12\n")
    ok(berth.docker("exec", "-u", "65534", name, "id", "-u"), "65534\n")
    ok(berth.docker("exec", "-u", "nobody", name, "id", "-un"), "nobody\n")
    ok(berth.docker("exec", "-u", "65534:65534", name, "id", "-g"), "65534\n")
    ok(berth.docker("exec", "-w", "/tmp", name, "pwd"), "/tmp\n")
    ok(berth.docker("exec", "--workdir", "/etc", name, "sh", "-c", "pwd"), "/etc\n")
    r = berth.docker("exec", name, "sh", "-c", "echo o; echo e >&2; exit 4")
    assert r.returncode == 4
    assert r.stdout == "o\n"
    assert r.stderr == "e\n"
    ok(berth.docker("exec", "-i", name, "cat", input="piped\n"), "piped\n")


def test_exec_unknown_user(berth):
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    r = berth.docker("exec", "-u", "nobodyx", name, "true")
    assert r.returncode == 126, r
    assert "unable to find user nobodyx: no matching entries in passwd file" in r.stdout, r


def test_exec_missing_command(berth):
    # dockerd 20.10: the start error goes into stdout after the 101, ExitCode 126
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    r = berth.docker("exec", name, "nosuchcmd-xyz")
    assert r.returncode == 126, r
    assert 'exec: "nosuchcmd-xyz": executable file not found in $PATH' in r.stdout, r


def test_exec_not_running(berth):
    name = uniq()
    ok(berth.docker("run", "--name", name, "busybox", "true"))
    cid = inspect(berth, name)["Id"]
    r = berth.docker("exec", name, "true")
    assert r.returncode == 1
    assert r.stderr == f"Error response from daemon: Container {cid} is not running\n"
    r = berth.docker("exec", "nosuch-ctr", "true")
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: No such container: nosuch-ctr\n"


def test_start_attach(berth):
    name = uniq()
    cid = ok(berth.docker("create", "--name", name, "busybox", "sh", "-c", "echo from-start; exit 2")).stdout.strip()
    assert HEX64.match(cid)
    assert inspect(berth, name)["State"]["Status"] == "created"
    r = berth.docker("start", "-a", name)
    assert r.returncode == 2
    assert r.stdout == "from-start\n"
    r = berth.docker("start", "-a", name)
    assert r.returncode == 2
    assert r.stdout == "from-start\n"  # attach without logs: only this run's output
    assert ok(berth.docker("logs", name)).stdout == "from-start\nfrom-start\n"


def test_start_detached_and_running(berth):
    name = uniq()
    ok(berth.docker("create", "--name", name, "busybox", *SLEEPER))
    ok(berth.docker("start", name), name + "\n")
    assert inspect(berth, name)["State"]["Running"] is True
    ok(berth.docker("start", name), name + "\n")  # already running: 304, name printed, exit 0


def test_version(berth):
    r = ok(berth.docker("version"))
    assert "Server:" in r.stdout
    assert re.search(r"API version:\s+1\.41 \(minimum version 1\.12\)", r.stdout), r.stdout
    assert re.search(r"API version:\s+1\.41 \(downgraded from 1\.\d+\)", r.stdout), r.stdout
    r = ok(berth.docker("version", "--format", "{{.Server.APIVersion}} {{.Client.APIVersion}} {{.Server.Os}}"))
    assert r.stdout == "1.41 1.41 linux\n"


def test_info(berth):
    r = ok(berth.docker("info"))
    assert "Server Version:" in r.stdout
    assert "errors pretty printing info" not in r.stdout + r.stderr
    assert "ERROR" not in r.stderr
    r = ok(berth.docker("info", "--format", "{{.OSType}} {{.Swarm.LocalNodeState}}"))
    assert r.stdout == "linux inactive\n"
    r = ok(berth.docker("info", "--format", "{{json .}}"))
    info = json.loads(r.stdout)
    assert info["Images"] >= 1
    assert info["ContainersRunning"] + info["ContainersPaused"] + info["ContainersStopped"] == info["Containers"]


def test_top(berth):
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    r = ok(berth.docker("top", name))
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["UID", "PID", "PPID"] and lines[0].split()[-1] == "CMD"
    assert any(ln.endswith("sleep 300") for ln in lines[1:]), r.stdout
    r = berth.docker("top", "nosuch-ctr")
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: No such container: nosuch-ctr\n"


def test_pause_unpause(berth):
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    ok(berth.docker("pause", name), name + "\n")
    st = inspect(berth, name)["State"]
    assert st["Status"] == "paused"
    assert st["Paused"] is True and st["Running"] is True
    r = ok(berth.docker("ps", "--filter", f"name={name}", "--format", "{{.Status}}"))
    assert r.stdout.rstrip().endswith("(Paused)"), r.stdout
    r = berth.docker("exec", name, "true")
    assert r.returncode == 1
    # dockerd's errExecPaused names the container as typed (not-running uses the id)
    assert r.stderr == f"Error response from daemon: Container {name} is paused, unpause the container before exec\n"
    ok(berth.docker("unpause", name), name + "\n")
    st = inspect(berth, name)["State"]
    assert st["Status"] == "running"
    assert st["Paused"] is False
    ok(berth.docker("exec", name, "echo", "back"), "back\n")


def test_rename(berth):
    old, new = uniq(), uniq()
    cid = run_d(berth, *SLEEPER, name=old)
    ok(berth.docker("rename", old, new), "")
    assert inspect(berth, new)["Id"] == cid
    assert inspect(berth, new)["Name"] == "/" + new
    r = berth.docker("inspect", "--type", "container", old)
    assert r.returncode == 1
    r = berth.docker("rename", "nosuch-ctr", uniq())
    assert r.returncode == 1
    assert r.stderr == ("Error response from daemon: No such container: nosuch-ctr\n"
                        "Error: failed to rename container named nosuch-ctr\n")
    # the old name is free again
    ok(berth.docker("create", "--name", old, "busybox", "true"))


def test_import_and_run(berth, busybox_tar: Path):
    repo = f"bt/imported-{uuid.uuid4().hex[:8]}"
    ref = repo + ":v1"
    r = ok(berth.docker("import", "-c", 'CMD ["echo","imp"]', str(busybox_tar), ref))
    assert re.match(r"^sha256:[0-9a-f]{64}$", r.stdout.strip()), r.stdout
    image_id = r.stdout.strip()
    try:
        ok(berth.docker("run", "--rm", ref), "imp\n")
        [img] = json.loads(ok(berth.docker("image", "inspect", ref)).stdout)
        assert img["Id"] == image_id
        assert img["RepoTags"] == [ref]
        assert img["Config"]["Cmd"] == ["echo", "imp"]
        r = ok(berth.docker("images", "--format", "{{.Repository}} {{.Tag}}", repo))
        assert r.stdout == f"{repo} v1\n"
        # from stdin, with a message
        ref2 = repo + ":v2"
        r = ok(berth.docker("import", "-m", "from stdin", "-c", "CMD echo imp2", "-", ref2,
                            input=busybox_tar.read_bytes()))
        ok(berth.docker("run", "--rm", ref2), "imp2\n")
        r = ok(berth.docker("image", "inspect", "-f", "{{.Comment}}", ref2))
        assert r.stdout == "from stdin\n"
    finally:
        berth.docker("rmi", "-f", ref, repo + ":v2")


def test_unknown_container_messages(berth):
    r = berth.docker("start", "nosuch-ctr")
    assert r.returncode == 1
    assert r.stderr == ("Error response from daemon: No such container: nosuch-ctr\n"
                        "Error: failed to start containers: nosuch-ctr\n")
    for cmd in (("stop", "nosuch-ctr"), ("restart", "nosuch-ctr"),
                ("kill", "nosuch-ctr"), ("pause", "nosuch-ctr"), ("unpause", "nosuch-ctr"),
                ("wait", "nosuch-ctr"), ("logs", "nosuch-ctr")):
        r = berth.docker(*cmd)
        assert r.returncode == 1, cmd
        assert r.stderr == "Error response from daemon: No such container: nosuch-ctr\n", (cmd, r.stderr)


def test_inspect_unknown_object(berth):
    r = berth.docker("inspect", "nosuch-obj")
    assert r.returncode == 1
    assert r.stdout == "[]\n"
    assert r.stderr == "Error: No such object: nosuch-obj\n"


def test_image_inspect_unknown_message(berth):
    # dockerd 20.10 LookupImage wraps ErrImageDoesNotExist: "no such image: %s: " + err
    r = berth.docker("image", "inspect", "nosuch-img")
    assert r.returncode == 1
    assert r.stdout == "[]\n"
    assert r.stderr == "Error response from daemon: no such image: nosuch-img: No such image: nosuch-img:latest\n"


def test_rmi_unknown_image_message(berth):
    r = berth.docker("rmi", "nosuch-img")
    assert r.returncode == 1
    assert r.stderr == "Error response from daemon: No such image: nosuch-img:latest\n"


def test_run_options_env_user_workdir_entrypoint(berth):
    ok(berth.docker("run", "--rm", "-e", "FOO=bar", "busybox", "sh", "-c", "echo $FOO"), "bar\n")
    ok(berth.docker("run", "--rm", "-u", "65534", "busybox", "id", "-u"), "65534\n")
    ok(berth.docker("run", "--rm", "-w", "/tmp", "busybox", "pwd"), "/tmp\n")
    ok(berth.docker("run", "--rm", "-w", "/new/dir", "busybox", "pwd"), "/new/dir\n")  # created
    ok(berth.docker("run", "--rm", "--entrypoint", "echo", "busybox", "via", "entrypoint"),
       "via entrypoint\n")
    ok(berth.docker("run", "--rm", "--hostname", "bthost", "busybox", "hostname"), "bthost\n")


def test_run_tty(berth):
    # -t without -i works with a non-terminal stdin; the pty turns \n into \r\n
    # (bytes input: text mode would translate the \r\n away)
    ok(berth.docker("run", "--rm", "-t", "busybox", "echo", "hi", input=b""), "hi\r\n")
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    ok(berth.docker("exec", "-t", name, "echo", "x", input=b""), "x\r\n")


def test_run_detached_rm_removes_after_exit(berth):
    cid = run_d(berth, "sh", "-c", "exit 0", opts=("--rm",))
    wait_for(lambda: cid not in berth.ids(), "the --rm container to go")


def test_run_default_hostname_is_short_id(berth):
    name = uniq()
    r = ok(berth.docker("run", "--name", name, "busybox", "hostname"))
    assert r.stdout.strip() == inspect(berth, name)["Id"][:12]


def test_exec_detached(berth):
    name = uniq()
    run_d(berth, *SLEEPER, name=name)
    ok(berth.docker("exec", "-d", name, "sh", "-c", "echo done > /tmp/flag"), "")
    wait_for(lambda: berth.docker("exec", name, "cat", "/tmp/flag").stdout == "done\n", "the -d exec")


def test_multiple_containers_per_command(berth):
    a, b = uniq(), uniq()
    run_d(berth, *SLEEPER, name=a)
    run_d(berth, *SLEEPER, name=b)
    ok(berth.docker("stop", "-t", "1", a, b), f"{a}\n{b}\n")
    ok(berth.docker("start", a, b), f"{a}\n{b}\n")
    ok(berth.docker("rm", "-f", a, b), f"{a}\n{b}\n")
    r = berth.docker("rm", "-f", a, "nosuch-ctr")
    assert r.returncode == 0


def test_inspect_container_and_image_together(berth):
    name = uniq()
    ok(berth.docker("create", "--name", name, "busybox", "true"))
    r = ok(berth.docker("inspect", "-f", "{{.Id}}", name, "busybox"))
    first, second = r.stdout.split()
    assert HEX64.match(first)
    assert second.startswith("sha256:")


def test_ps_no_trunc_and_quiet(berth):
    name = uniq()
    cid = run_d(berth, *SLEEPER, name=name)
    r = ok(berth.docker("ps", "-q"))
    assert cid[:12] in r.stdout.split()
    r = ok(berth.docker("ps", "--no-trunc", "--filter", f"id={cid}", "--format", "{{.ID}} {{.Command}}"))
    assert r.stdout == f'{cid} "sleep 300"\n'
    r = ok(berth.docker("container", "ls", "-a", "--filter", f"name={name}", "-q"))
    assert r.stdout == cid[:12] + "\n"
