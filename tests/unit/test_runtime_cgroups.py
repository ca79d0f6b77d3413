"""cgroup logic against fake v1 and v2 trees (plain directories and files, no root needed).

v2 is only testable this way here: the host binds its controllers to v1.
"""

from __future__ import annotations

import os
import shutil

import pytest

from berth.runtime import cgroups

RES = {"memory": {"limit": 32 << 20, "swap": 32 << 20}, "cpu": {"quota": 50000, "period": 100000,
       "shares": 512}, "pids": {"limit": 50},
       "devices": [{"allow": False, "access": "rwm"}, {"allow": True, "type": "c", "major": 1, "minor": 3,
                                                        "access": "rwm"}]}


def read(p) -> str:
    return open(p).read()


class FakeDirs:
    """Let rmdir remove a fake cgroup directory that holds files (cgroupfs allows that)."""

    @staticmethod
    def remove(self, path):  # noqa: ARG004
        if read(os.path.join(path, "cgroup.procs")).strip():
            raise OSError(16, "busy")
        shutil.rmtree(path)


@pytest.fixture
def v1(tmp_path, monkeypatch):
    for c in cgroups.V1_CONTROLLERS:
        (tmp_path / c).mkdir()
    (tmp_path / "cpuset/cpuset.cpus").write_text("0-3\n")
    (tmp_path / "cpuset/cpuset.mems").write_text("0\n")
    monkeypatch.setattr(cgroups.Cgroup, "_remove_dir", FakeDirs.remove)
    return tmp_path


def test_v1_create_writes_limits(v1):
    cg = cgroups.open_cgroup("/berth/abc", root=str(v1), version=1)
    (v1 / "memory/berth/abc").mkdir(parents=True)
    (v1 / "memory/berth/abc/memory.memsw.limit_in_bytes").write_text("")
    cg.create(RES)
    assert read(v1 / "memory/berth/abc/memory.limit_in_bytes") == str(32 << 20)
    assert read(v1 / "memory/berth/abc/memory.memsw.limit_in_bytes") == str(32 << 20)
    assert read(v1 / "cpu/berth/abc/cpu.cfs_quota_us") == "50000"
    assert read(v1 / "cpu/berth/abc/cpu.cfs_period_us") == "100000"
    assert read(v1 / "cpu/berth/abc/cpu.shares") == "512"
    assert read(v1 / "pids/berth/abc/pids.max") == "50"
    assert read(v1 / "cpuset/berth/cpuset.cpus") == "0-3" and read(v1 / "cpuset/berth/abc/cpuset.mems") == "0"
    assert read(v1 / "devices/berth/abc/devices.allow") == "c 1:3 rwm"  # last write wins in a fake file
    assert read(v1 / "devices/berth/abc/devices.deny") == "a *:* rwm"
    for c in ("cpuacct", "freezer"):
        assert (v1 / c / "berth/abc").is_dir()
    assert set(cg.controller_dirs()) == set(cgroups.V1_CONTROLLERS)


def test_v1_procs_oom_freeze_stats_destroy(v1):
    cg = cgroups.open_cgroup("berth/abc", root=str(v1), version=1)
    cg.create({})
    cg.add_process(4242)
    assert read(v1 / "pids/berth/abc/cgroup.procs") == "4242"
    assert cg.procs() == [4242]
    (v1 / "memory/berth/abc/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    assert not cg.oom_killed()
    (v1 / "memory/berth/abc/memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cg.oom_killed()
    (v1 / "freezer/berth/abc/freezer.state").write_text("THAWED")
    cg.freeze()
    assert read(v1 / "freezer/berth/abc/freezer.state") == "FROZEN"
    cg.thaw()
    assert read(v1 / "freezer/berth/abc/freezer.state") == "THAWED"
    (v1 / "memory/berth/abc/memory.usage_in_bytes").write_text("1234\n")
    (v1 / "pids/berth/abc/pids.current").write_text("3\n")
    assert cg.stats()["memory"]["usage"] == 1234 and cg.stats()["pids"]["current"] == 3
    for c in cgroups.V1_CONTROLLERS:
        (v1 / c / "berth/abc/cgroup.procs").write_text("")
    cg.destroy()
    assert not cg.exists() and (v1 / "memory/berth").is_dir()
    cg.destroy()  # idempotent


def test_v1_destroy_gives_up_when_busy(v1, monkeypatch):
    cg = cgroups.open_cgroup("/berth/busy", root=str(v1), version=1)
    cg.create({})
    monkeypatch.setattr(cgroups.Cgroup, "_kill_all", lambda self: None)
    (v1 / "memory/berth/busy/cgroup.procs").write_text("999999")
    with pytest.raises(OSError):
        cg.destroy(timeout=0.05)


@pytest.fixture
def v2(tmp_path, monkeypatch):
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma\n")
    monkeypatch.setattr(cgroups.Cgroup, "_remove_dir", FakeDirs.remove)
    return tmp_path


def test_v2_create_and_lifecycle(v2):
    cg = cgroups.open_cgroup("/berth/abc", root=str(v2), version=2)
    (v2 / "berth/abc").mkdir(parents=True)
    (v2 / "berth/abc/memory.swap.max").write_text("max")
    cg.create(RES)
    assert read(v2 / "cgroup.subtree_control") == "+cpuset +cpu +memory +pids"
    assert read(v2 / "berth/cgroup.subtree_control") == "+cpuset +cpu +memory +pids"
    d = v2 / "berth/abc"
    assert read(d / "memory.max") == str(32 << 20) and read(d / "memory.swap.max") == "0"
    assert read(d / "cpu.max") == "50000 100000"
    assert read(d / "cpu.weight") == str(cgroups.shares_to_weight(512)) == "20"
    assert read(d / "pids.max") == "50"
    cg.add_process(77)
    assert cg.procs() == [77]
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    assert cg.oom_killed()
    cg.freeze()
    assert read(d / "cgroup.freeze") == "1"
    cg.thaw()
    assert read(d / "cgroup.freeze") == "0"
    (d / "memory.current").write_text("99\n")
    assert cg.stats()["memory"] == {"usage": 99, "limit": 32 << 20}
    (d / "cgroup.procs").write_text("")
    cg.destroy()
    assert not d.exists()
    cg.destroy()


def test_version_detection_and_helpers(tmp_path):
    assert not cgroups.is_v2(str(tmp_path))
    assert isinstance(cgroups.open_cgroup("/x", root=str(tmp_path)), cgroups.CgroupV1)
    assert cgroups.device_rule({"allow": True, "type": "c", "major": 136, "access": "rwm"}) == "c 136:* rwm"
    assert cgroups.shares_to_weight(1024) == 39 and cgroups.shares_to_weight(2) == 1
    with pytest.raises(ValueError):
        cgroups.open_cgroup("/", root=str(tmp_path), version=1)


def test_detect_version_on_this_host():
    assert cgroups.detect_version() in ("v1", "v2")
