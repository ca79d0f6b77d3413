"""Mount option parsing, safe path joins, executable lookup and pid checks, without root."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from berth.runtime import init, mounts, process
from berth.runtime import syscalls as sc


def test_parse_options():
    flags, prop, data = mounts.parse_options(["nosuid", "noexec", "newinstance", "ptmxmode=0666", "gid=5",
                                              "rprivate", "ro"])
    assert flags == sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_RDONLY
    assert prop == sc.MS_PRIVATE | sc.MS_REC
    assert data == "newinstance,ptmxmode=0666,gid=5"
    assert mounts.parse_options(["rbind", "rw"])[0] == sc.MS_BIND | sc.MS_REC


def test_secure_join_stays_inside(tmp_path):
    (tmp_path / "etc").mkdir()
    os.symlink("/etc/../../../../tmp", tmp_path / "evil")
    os.symlink("../etc", tmp_path / "etc/rel")
    assert mounts.secure_join(str(tmp_path), "/evil/x") == str(tmp_path / "tmp/x")
    assert mounts.secure_join(str(tmp_path), "/../../etc/hosts") == str(tmp_path / "etc/hosts")
    assert mounts.secure_join(str(tmp_path), "/etc/rel/hosts") == str(tmp_path / "etc/hosts")


def test_mask_paths_uses_the_seam(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(sc, "mount", lambda *a: calls.append(a))
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    mounts.mask_paths([str(tmp_path / "dir"), str(tmp_path / "file"), str(tmp_path / "missing")])
    assert calls == [("tmpfs", str(tmp_path / "dir"), "tmpfs", sc.MS_RDONLY, None),
                     ("/dev/null", str(tmp_path / "file"), None, sc.MS_BIND)]


def test_lookpath(tmp_path):
    (tmp_path / "bin").mkdir()
    exe = tmp_path / "bin/tool"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    (tmp_path / "bin/data").write_text("")
    env = [f"PATH=/nonexistent:{tmp_path}/bin"]
    assert init.lookpath("tool", env) == str(exe)
    with pytest.raises(init.ExecFailure) as ei:
        init.lookpath("nosuchcmd", env)
    assert (ei.value.message, ei.value.code) == ('exec: "nosuchcmd": executable file not found in $PATH', 127)
    with pytest.raises(init.ExecFailure) as ei:
        init.lookpath("data", env)
    assert ei.value.code == 127
    with pytest.raises(init.ExecFailure) as ei:
        init.lookpath(str(tmp_path / "bin/data"), env)
    assert ei.value.code == 126 and "permission denied" in ei.value.message
    with pytest.raises(init.ExecFailure) as ei:
        init.lookpath("/nope", env)
    assert ei.value.message == 'exec: "/nope": stat /nope: no such file or directory'


def test_user_string_of():
    assert init.user_string_of({"user": {"uid": 0, "username": "app"}}) == "app"
    assert init.user_string_of({"user": {"uid": 0}}, {"org.berth.user": "nobody"}) == "nobody"
    assert init.user_string_of({"user": {"uid": 5}}) is None


def test_signal_process_checks_start_time_and_zombies():
    p = subprocess.Popen(["sleep", "30"])
    try:
        st = process.start_time_of(p.pid)
        assert st and process.process_alive(p.pid, st)
        assert not process.signal_process(p.pid, st + 1, signal.SIGTERM)  # a different process
        assert process.signal_process(p.pid, st, signal.SIGTERM)
        for _ in range(500):
            if not process.process_alive(p.pid, st):
                break
            time.sleep(0.005)
        assert not process.signal_process(p.pid, st, signal.SIGTERM)  # zombie: not reaped yet
    finally:
        p.kill()
        p.wait()
    assert process.start_time_of(p.pid) is None or not process.signal_process(p.pid, st, 0)


def test_delete_container_without_bundle_is_fine(tmp_path):
    process.delete_container(tmp_path / "missing")


def test_setrlimit_clamps_to_the_hard_limit(monkeypatch):
    import resource
    calls = []

    def fake_set(res, limits):
        calls.append(limits)
        if limits[1] > 20000:
            raise ValueError("not allowed to raise maximum limit")

    monkeypatch.setattr(resource, "setrlimit", fake_set)
    monkeypatch.setattr(resource, "getrlimit", lambda res: (1024, 20000))
    assert sc.setrlimit(resource.RLIMIT_NOFILE, 1048576, 1048576) == (20000, 20000)
    assert sc.setrlimit(resource.RLIMIT_NOFILE, 512, 1048576) == (512, 20000)
    assert calls[-1] == (512, 20000)
