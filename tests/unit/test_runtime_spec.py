"""generate_spec and exec_process: Docker's defaults as OCI config, no root needed."""

from __future__ import annotations

import pytest

from berth.errors import InvalidArgument
from berth.runtime import caps, spec


def gen(config: dict, host_config: dict | None = None) -> dict:
    return spec.generate_spec(container_id="abcdef0123456789", config=config, host_config=host_config or {},
                              hostname_path="/h/hostname", hosts_path="/h/hosts", resolv_path="/h/resolv.conf",
                              cgroups_path="/berth/abcdef0123456789")


def test_defaults_like_docker():
    s = gen({"Cmd": ["sh"], "Entrypoint": ["/init"], "Env": ["A=1"]})
    p = s["process"]
    assert s["ociVersion"] == "1.0.2" and s["root"] == {"path": "rootfs", "readonly": False}
    assert p["args"] == ["/init", "sh"]
    assert p["env"] == [spec.DEFAULT_PATH, "HOSTNAME=abcdef012345", "A=1"]
    assert p["cwd"] == "/" and p["terminal"] is False
    assert p["user"] == {"uid": 0, "gid": 0}
    assert p["capabilities"]["bounding"] == caps.DEFAULT_CAPS
    assert p["capabilities"]["effective"] == caps.DEFAULT_CAPS
    assert p["capabilities"]["inheritable"] == [] and p["capabilities"]["ambient"] == []
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    want = 1048576 if hard == resource.RLIM_INFINITY else min(1048576, hard)
    assert p["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": want, "soft": want}]
    assert p["noNewPrivileges"] is False
    assert s["hostname"] == "abcdef012345"
    assert [n["type"] for n in s["linux"]["namespaces"]] == ["pid", "mount", "uts", "ipc", "network"]
    assert s["linux"]["maskedPaths"] == spec.MASKED_PATHS and "/proc/kcore" in spec.MASKED_PATHS
    assert s["linux"]["readonlyPaths"] == ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
    assert s["linux"]["cgroupsPath"] == "/berth/abcdef0123456789"
    dests = {m["destination"]: m for m in s["mounts"]}
    assert dests["/sys"]["options"][-1] == "ro"
    assert dests["/dev/shm"]["options"][-1] == "size=65536k"
    assert dests["/etc/hosts"] == {"destination": "/etc/hosts", "type": "bind", "source": "/h/hosts",
                                   "options": ["rbind", "rprivate"]}
    assert "newinstance" in dests["/dev/pts"]["options"]
    assert s["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}


def test_no_command():
    with pytest.raises(InvalidArgument, match="No command specified"):
        gen({"Cmd": [], "Entrypoint": None})


def test_tty_hostname_workdir_path_kept():
    s = gen({"Cmd": ["sh"], "Tty": True, "Hostname": "web", "WorkingDir": "/app", "Env": ["PATH=/x"]})
    assert s["process"]["env"] == ["PATH=/x", "HOSTNAME=web", "TERM=xterm"]
    assert s["process"]["terminal"] is True and s["process"]["cwd"] == "/app" and s["hostname"] == "web"


@pytest.mark.parametrize("user,uid,gid,eff", [("", 0, 0, True), ("1000", 1000, 0, False),
                                             ("1000:1000", 1000, 1000, False), ("nobody", 0, 0, True),
                                             ("0:5", 0, 5, True)])
def test_user(user, uid, gid, eff):
    s = gen({"Cmd": ["sh"], "User": user})
    assert (s["process"]["user"]["uid"], s["process"]["user"]["gid"]) == (uid, gid)
    assert bool(s["process"]["capabilities"]["effective"]) is eff
    assert s["process"]["capabilities"]["bounding"] == caps.DEFAULT_CAPS
    assert s["annotations"].get("org.berth.user") == (user or None)


def test_resources():
    r = gen({"Cmd": ["sh"]}, {"Memory": 32 << 20, "NanoCpus": 1_500_000_000, "CpuShares": 512,
                              "PidsLimit": 50})["linux"]["resources"]
    assert r["memory"] == {"limit": 32 << 20, "swap": 32 << 20}
    assert r["cpu"] == {"period": 100000, "quota": 150000, "shares": 512}
    assert r["pids"] == {"limit": 50}
    for unlimited in (0, -1, None):
        assert "pids" not in gen({"Cmd": ["sh"]}, {"PidsLimit": unlimited})["linux"]["resources"]
    r = gen({"Cmd": ["sh"]}, {"Memory": 64 << 20, "MemorySwap": -1, "CpuQuota": 5000, "CpuPeriod": 10000})
    assert r["linux"]["resources"]["memory"]["swap"] == -1
    assert r["linux"]["resources"]["cpu"] == {"quota": 5000, "period": 10000}
    with pytest.raises(InvalidArgument):
        gen({"Cmd": ["sh"]}, {"NanoCpus": 1, "CpuQuota": 1})
    with pytest.raises(InvalidArgument, match="Minimum memory limit"):
        gen({"Cmd": ["sh"]}, {"Memory": 1024})


def test_caps_add_drop_privileged_readonly_shm():
    s = gen({"Cmd": ["sh"]}, {"CapAdd": ["NET_ADMIN"], "CapDrop": ["CAP_CHOWN", "mknod"]})
    b = s["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in b and "CAP_CHOWN" not in b and "CAP_MKNOD" not in b
    assert gen({"Cmd": ["sh"]}, {"CapDrop": ["ALL"], "CapAdd": ["kill"]})["process"]["capabilities"][
        "bounding"] == ["CAP_KILL"]
    p = gen({"Cmd": ["sh"]}, {"Privileged": True})
    assert len(p["process"]["capabilities"]["bounding"]) == caps.last_cap() + 1
    assert p["linux"]["maskedPaths"] == [] and p["linux"]["readonlyPaths"] == []
    s = gen({"Cmd": ["sh"]}, {"ReadonlyRootfs": True, "ShmSize": 128 << 20})
    assert s["root"]["readonly"] is True
    assert "size=131072k" in [m for m in s["mounts"] if m["destination"] == "/dev/shm"][0]["options"]
    with pytest.raises(InvalidArgument, match="invalid capability"):
        gen({"Cmd": ["sh"]}, {"CapAdd": ["BOGUS"]})


def test_exec_process_inherits_and_overrides():
    base = gen({"Cmd": ["sh"], "User": "nobody", "Env": ["A=1"]})["process"]
    p = spec.exec_process(base, args=["ls"], env=["A=2"], tty=True, working_dir="/tmp")
    assert p["args"] == ["ls"] and p["terminal"] is True and p["cwd"] == "/tmp"
    assert "A=2" in p["env"] and "A=1" not in p["env"] and "TERM=xterm" in p["env"]
    assert p["user"]["username"] == "nobody"
    p = spec.exec_process(base, args=["ls"], user="1000")
    assert p["user"] == {"uid": 1000, "gid": 0, "username": "1000"}
    assert p["capabilities"]["effective"] == []
    with pytest.raises(InvalidArgument):
        spec.exec_process(base, args=[])
