"""The docker SDK for Python 7.1.0 against berthd: the calls of the first slice.

Expectations are dockerd 20.10's (API 1.41) as the SDK sees them; see §13 of
/work/shared/design/ENGINE-API.md for the requests each call makes. Containers made here are
force-removed by the ``berth`` fixture.
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

docker = pytest.importorskip("docker")
from docker import errors  # noqa: E402

HEX64 = re.compile(r"^[0-9a-f]{64}$")
SLEEPER = ["sleep", "300"]


def uniq(prefix: str = "bt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def client(berth):
    c = docker.DockerClient(base_url=berth.daemon.host, timeout=60)
    yield c
    c.close()


def wait_for(pred, what: str, timeout: float = 15.0):
    """Poll ``pred`` until truthy (a generous cap, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def ids(client) -> set[str]:
    return {c["Id"] for c in client.api.containers(all=True)}


# ---------------------------------------------------------------------------------------------
# system


def test_version_negotiated(client):
    v = client.version()
    assert v["ApiVersion"] == "1.41"
    assert v["MinAPIVersion"] == "1.12"
    assert v["Os"] == "linux"
    for key in ("Version", "GitCommit", "GoVersion", "Arch", "KernelVersion", "BuildTime"):
        assert key in v, key
    assert isinstance(v["Components"], list) and v["Components"][0]["Name"]
    assert v["Platform"]["Name"] is not None
    assert client.api.api_version == "1.41"  # "auto" negotiates from the unprefixed GET /version


def test_ping(client):
    assert client.ping() is True


def test_info(client):
    info = client.info()
    assert info["OSType"] == "linux"
    assert info["Images"] >= 1
    assert info["Swarm"]["LocalNodeState"] == "inactive"
    for key in ("ID", "Name", "ServerVersion", "Containers", "Driver", "NCPU", "MemTotal", "DockerRootDir"):
        assert key in info, key


# ---------------------------------------------------------------------------------------------
# containers.run


def test_run_foreground_returns_stdout(client):
    out = client.containers.run("busybox", "echo hi")
    assert out == b"hi\n"


def test_run_foreground_stdout_only_by_default(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo out; echo err >&2; echo out2"])
    assert out == b"out\nout2\n"  # logs?stderr=0 must drop stderr
    out = client.containers.run("busybox", ["sh", "-c", "echo err >&2"], stdout=False, stderr=True)
    assert out == b"err\n"


def test_run_foreground_follows_until_exit(client):
    out = client.containers.run("busybox", ["sh", "-c", "echo a; sleep 1; echo b"])
    assert out == b"a\nb\n"


def test_run_remove(client):
    before = ids(client)
    name = uniq()
    out = client.containers.run("busybox", "echo bye", name=name, remove=True)
    assert out == b"bye\n"
    assert ids(client) == before
    with pytest.raises(errors.NotFound):
        client.containers.get(name)


def test_run_nonzero_raises_container_error(client):
    with pytest.raises(errors.ContainerError) as ei:
        client.containers.run("busybox", ["sh", "-c", "echo boom >&2; exit 3"])
    assert ei.value.exit_status == 3
    assert ei.value.stderr == b"boom\n"
    assert ei.value.image == "busybox"


def test_run_remove_nonzero_still_removes(client):
    before = ids(client)
    with pytest.raises(errors.ContainerError) as ei:
        client.containers.run("busybox", ["sh", "-c", "echo bad >&2; exit 5"], remove=True)
    assert ei.value.exit_status == 5
    assert ei.value.stderr == b"bad\n"
    assert ids(client) == before


def test_run_stream(client):
    gen = client.containers.run("busybox", ["sh", "-c", "echo g1; echo g2"], stream=True)
    assert b"".join(gen) == b"g1\ng2\n"


def test_run_detach_logs_wait(client):
    name = uniq()
    c = client.containers.run("busybox", ["sh", "-c", "echo d1; echo e1 >&2; sleep 0.3; echo d2"],
                              detach=True, name=name)
    assert HEX64.match(c.id)
    assert c.name == name
    assert c.wait() == {"Error": None, "StatusCode": 0}
    assert c.logs(stderr=False) == b"d1\nd2\n"
    assert c.logs(stdout=False) == b"e1\n"
    assert sorted(c.logs().splitlines()) == [b"d1", b"d2", b"e1"]
    assert c.logs(stderr=False, tail=1) == b"d2\n"
    c.reload()
    assert c.status == "exited"
    assert c.attrs["State"]["ExitCode"] == 0


def test_wait_exit_code(client):
    c = client.containers.run("busybox", ["sh", "-c", "exit 9"], detach=True)
    assert c.wait()["StatusCode"] == 9
    assert c.wait(condition="not-running")["StatusCode"] == 9


def test_logs_stream_follow(client):
    c = client.containers.run("busybox", ["sh", "-c", "echo s1; sleep 0.5; echo s2"], detach=True)
    chunks = b"".join(c.logs(stream=True, follow=True))
    assert chunks.replace(b"\r", b"") == b"s1\ns2\n"


def test_stop(client):
    c = client.containers.run("busybox", SLEEPER, detach=True)
    c.reload()
    assert c.status == "running"
    c.stop(timeout=1)
    c.reload()
    assert c.status == "exited"
    assert c.attrs["State"]["ExitCode"] == 137
    c.stop(timeout=1)  # 304 for a stopped container: no error


def test_stop_graceful(client):
    c = client.containers.run(
        "busybox", ["sh", "-c", 'trap "exit 0" TERM; echo ready; while true; do sleep 0.1; done'], detach=True)
    wait_for(lambda: b"ready" in c.logs(), "ready")
    c.stop(timeout=10)
    c.reload()
    assert c.attrs["State"]["ExitCode"] == 0


def test_kill_restart_pause_rename(client):
    c = client.containers.run(
        "busybox", ["sh", "-c", 'trap "echo usr1" USR1; echo ready; while true; do sleep 0.1; done'], detach=True)
    wait_for(lambda: b"ready" in c.logs(), "ready")
    c.kill(signal="SIGUSR1")
    wait_for(lambda: b"usr1" in c.logs(), "the USR1 trap")
    c.kill(signal=10)  # numbers too
    wait_for(lambda: c.logs().count(b"usr1") == 2, "the second USR1 trap")

    c.pause()
    c.reload()
    assert c.status == "paused"
    assert c.attrs["State"]["Paused"] is True
    c.unpause()
    c.reload()
    assert c.status == "running"

    pid = c.attrs["State"]["Pid"]
    c.restart(timeout=1)
    c.reload()
    assert c.status == "running"
    assert c.attrs["State"]["Pid"] != pid

    new = uniq()
    c.rename(new)
    c.reload()
    assert c.name == new
    assert client.containers.get(new).id == c.id

    top = c.top()
    assert "PID" in top["Titles"] and "CMD" in top["Titles"]
    assert top["Processes"]

    c.kill()
    assert c.wait()["StatusCode"] == 137


def test_create_start_remove(client):
    name = uniq()
    c = client.containers.create("busybox", ["echo", "created"], name=name)
    assert c.status == "created"
    assert c.attrs["State"]["Status"] == "created"
    c.start()
    assert c.wait()["StatusCode"] == 0
    assert c.logs() == b"created\n"
    c.remove()
    with pytest.raises(errors.NotFound):
        client.containers.get(name)


# ---------------------------------------------------------------------------------------------
# exec


def test_exec_run(client):
    c = client.containers.run("busybox", SLEEPER, detach=True)
    r = c.exec_run("echo x")
    assert r.exit_code == 0
    assert r.output == b"x\n"
    assert tuple(r) == (0, b"x\n")
    assert c.exec_run(["sh", "-c", "exit 3"]).exit_code == 3
    assert c.exec_run(["sh", "-c", "echo $FOO"], environment={"FOO": "bar"}) == (0, b"bar\n")
    assert c.exec_run(["sh", "-c", "echo $A"], environment=["A=1"]) == (0, b"1\n")
    assert c.exec_run("id -u", user="nobody") == (0, b"65534\n")
    assert c.exec_run("pwd", workdir="/tmp") == (0, b"/tmp\n")


def test_exec_run_demux(client):
    c = client.containers.run("busybox", SLEEPER, detach=True)
    code, (out, err) = c.exec_run(["sh", "-c", "echo out; echo err >&2"], demux=True)
    assert code == 0
    assert out == b"out\n"
    assert err == b"err\n"
    code, (out, err) = c.exec_run(["sh", "-c", "echo only-out"], demux=True)
    assert (code, out, err) == (0, b"only-out\n", None)
    # without demux the frames are merged in order
    code, out = c.exec_run(["sh", "-c", "echo o1; sleep 0.1; echo e1 >&2"])
    assert (code, out) == (0, b"o1\ne1\n")


def test_exec_run_stream_and_tty(client):
    c = client.containers.run("busybox", SLEEPER, detach=True)
    r = c.exec_run(["sh", "-c", "echo a; echo b"], stream=True)
    assert r.exit_code is None
    assert b"".join(r.output) == b"a\nb\n"
    r = c.exec_run("echo tty", tty=True)
    assert r == (0, b"tty\r\n")


def test_exec_unknown_user(client):
    c = client.containers.run("busybox", SLEEPER, detach=True)
    code, out = c.exec_run("true", user="nobodyx")
    assert code == 126
    assert b"unable to find user nobodyx: no matching entries in passwd file" in out


def test_exec_on_stopped_container(client):
    c = client.containers.run("busybox", "true", detach=True)
    c.wait()
    with pytest.raises(errors.APIError) as ei:
        c.exec_run("true")
    assert ei.value.status_code == 409
    assert ei.value.explanation == f"Container {c.id} is not running"


# ---------------------------------------------------------------------------------------------
# list / get / attrs


def test_containers_list_and_get(client):
    name = uniq()
    running = client.containers.run("busybox", SLEEPER, detach=True, name=name)
    exited = client.containers.run("busybox", "true", detach=True)
    exited.wait()

    listed = {c.id: c for c in client.containers.list()}
    assert running.id in listed
    assert exited.id not in listed
    assert listed[running.id].name == name
    assert listed[running.id].status == "running"

    all_ids = {c.id for c in client.containers.list(all=True)}
    assert {running.id, exited.id} <= all_ids

    assert [c.id for c in client.containers.list(filters={"name": name})] == [running.id]
    assert exited.id in {c.id for c in client.containers.list(all=True, filters={"status": "exited"})}
    assert running.id not in {c.id for c in client.containers.list(all=True, filters={"status": "exited"})}
    assert [c.id for c in client.containers.list(all=True, filters={"id": exited.id})] == [exited.id]

    got = client.containers.get(name)
    assert got.id == running.id
    assert client.containers.get(running.id[:12]).id == running.id
    assert got.short_id == running.id[:12]
    assert got.image.id == client.images.get("busybox").id
    assert got.labels == {}


def test_container_summary_shape(client):
    name = uniq()
    c = client.containers.run("busybox", SLEEPER, detach=True, name=name)
    [s] = client.api.containers(filters={"name": name})
    assert s["Id"] == c.id
    assert s["Names"] == ["/" + name]
    assert s["Image"] == "busybox"
    assert s["ImageID"].startswith("sha256:")
    assert s["Command"] == "sleep 300"
    assert isinstance(s["Created"], int)
    assert s["State"] == "running"
    assert s["Status"].startswith("Up ")
    assert s["Ports"] == []
    assert s["HostConfig"]["NetworkMode"] == "default"
    assert isinstance(s["Mounts"], list)
    assert "Networks" in s["NetworkSettings"]


def test_container_attrs_shape(client):
    name = uniq()
    c = client.containers.run("busybox", SLEEPER, detach=True, name=name)
    a = client.containers.get(name).attrs
    assert a["Id"] == c.id
    assert a["Name"] == "/" + name
    assert a["Path"] == "sleep"
    assert a["Args"] == ["300"]
    assert a["Image"].startswith("sha256:")
    assert isinstance(a["Created"], str) and a["Created"].endswith("Z")
    st = a["State"]
    for key in ("Status", "Running", "Paused", "Restarting", "OOMKilled", "Dead", "Pid", "ExitCode",
                "Error", "StartedAt", "FinishedAt"):
        assert key in st, key
    assert st["Status"] == "running" and st["Running"] is True and st["Pid"] > 0
    assert st["FinishedAt"] == "0001-01-01T00:00:00Z"
    assert a["RestartCount"] == 0
    cfg = a["Config"]
    assert cfg["Image"] == "busybox"
    assert cfg["Cmd"] == SLEEPER
    assert cfg["Hostname"] == c.id[:12]
    assert cfg["Tty"] is False and cfg["OpenStdin"] is False
    # merged with the image config: the imported busybox has no Env, the SDK sends none
    assert cfg["Env"] == client.images.get("busybox").attrs["Config"].get("Env")
    assert isinstance(a["HostConfig"], dict)
    assert a["HostConfig"]["NetworkMode"] == "default"
    assert isinstance(a["Mounts"], list)
    assert "Ports" in a["NetworkSettings"] and "Networks" in a["NetworkSettings"]
    for key in ("LogPath", "ResolvConfPath", "HostnamePath", "HostsPath"):
        assert key in a, key


# ---------------------------------------------------------------------------------------------
# images


def test_images_list_and_get(client):
    imgs = client.images.list()
    bb = [i for i in imgs if "busybox:latest" in i.tags]
    assert len(bb) == 1
    assert bb[0].id.startswith("sha256:") and len(bb[0].id) == 71
    assert [i.id for i in client.images.list(name="busybox")] == [bb[0].id]

    img = client.images.get("busybox")
    assert img.id == bb[0].id
    assert img.tags == ["busybox:latest"]
    assert img.short_id == img.id[:19]  # "sha256:" + 12 hex
    assert client.images.get("busybox:latest").id == img.id
    assert client.images.get(img.id).id == img.id
    assert client.images.get(img.id[7:19]).id == img.id
    a = img.attrs
    assert a["Os"] == "linux"
    assert a["RootFS"]["Type"] == "layers"
    assert isinstance(a["Config"], dict)
    assert isinstance(a["Size"], int)


def test_image_summary_shape(client):
    [s] = [i for i in client.api.images() if "busybox:latest" in (i["RepoTags"] or [])]
    for key in ("Id", "ParentId", "RepoTags", "RepoDigests", "Created", "Size", "VirtualSize",
                "SharedSize", "Containers", "Labels"):
        assert key in s, key
    assert isinstance(s["Created"], int)


# ---------------------------------------------------------------------------------------------
# errors


def test_not_found_errors(client):
    with pytest.raises(errors.NotFound) as ei:
        client.containers.get("nosuch-ctr")
    assert ei.value.status_code == 404
    assert ei.value.explanation == "No such container: nosuch-ctr"

    with pytest.raises(errors.ImageNotFound) as ei:
        client.images.get("nosuch-img")
    assert ei.value.status_code == 404

    with pytest.raises(errors.NotFound):
        client.api.stop("nosuch-ctr")
    with pytest.raises(errors.NotFound):
        client.api.remove_container("nosuch-ctr")

    with pytest.raises(errors.ImageNotFound) as ei:
        client.api.create_container("nosuch-img:latest", "true")
    assert ei.value.status_code == 404
    assert ei.value.explanation == "No such image: nosuch-img:latest"


def test_conflict_errors(client):
    name = uniq()
    c = client.containers.run("busybox", SLEEPER, detach=True, name=name)

    with pytest.raises(errors.APIError) as ei:
        client.containers.create("busybox", "true", name=name)
    assert ei.value.status_code == 409
    assert ei.value.explanation == (
        f'Conflict. The container name "/{name}" is already in use by container "{c.id}". '
        "You have to remove (or rename) that container to be able to reuse that name.")

    with pytest.raises(errors.APIError) as ei:
        c.remove()
    assert ei.value.status_code == 409
    assert ei.value.explanation == (
        f"You cannot remove a running container {c.id}. "
        "Stop the container before attempting removal or force remove")

    c.kill()
    c.wait()
    with pytest.raises(errors.APIError) as ei:
        c.kill()
    assert ei.value.status_code == 409
    assert ei.value.explanation == f"Cannot kill container: {c.id}: Container {c.id} is not running"

    c.remove(force=True)
    with pytest.raises(errors.NotFound):
        c.reload()


def test_run_missing_command_api_error(client):
    with pytest.raises(errors.APIError) as ei:
        client.containers.run("busybox", "nosuchcmd-xyz", detach=True)
    assert ei.value.status_code == 400
    assert 'exec: "nosuchcmd-xyz": executable file not found in $PATH' in ei.value.explanation


def test_bad_api_version(berth):
    c = docker.DockerClient(base_url=berth.daemon.host, version="1.99")
    try:
        with pytest.raises(errors.APIError) as ei:
            c.containers.list()
        assert ei.value.status_code == 400
        assert ei.value.explanation == "client version 1.99 is too new. Maximum supported API version is 1.41"
    finally:
        c.close()
