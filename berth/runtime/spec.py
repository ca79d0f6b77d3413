"""Build OCI runtime-spec (config.json) documents from Docker Engine API container shapes,
with Docker's defaults: capabilities, mounts, masked and read-only paths, device rules.
"""

from __future__ import annotations

from berth.errors import InvalidArgument
from berth.runtime import caps

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
USER_ANNOTATION = "org.berth.user"
CPU_PERIOD = 100000
DEFAULT_SHM_SIZE = 64 * 1024 * 1024
DEFAULT_NOFILE = 1048576

MASKED_PATHS = [
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def _dev(type_: str, major: int | None, minor: int | None, access: str = "rwm") -> dict:
    d: dict = {"allow": True, "type": type_, "access": access}
    if major is not None:
        d["major"] = major
    if minor is not None:
        d["minor"] = minor
    return d


# runc's default allow list, as Docker uses it: deny all, then these.
DEFAULT_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    _dev("c", None, None, "m"), _dev("b", None, None, "m"),
    _dev("c", 1, 3), _dev("c", 1, 8), _dev("c", 1, 7), _dev("c", 5, 0), _dev("c", 1, 5),
    _dev("c", 1, 9), _dev("c", 136, None), _dev("c", 5, 2), _dev("c", 10, 200),
    _dev("c", 5, 1),
]


def default_env(env: list[str] | None, hostname: str, tty: bool) -> list[str]:
    """Docker's container environment (CreateDaemonEnvironment): default PATH, HOSTNAME, TERM=xterm
    with a tty, then the container's Env, each replacing a same-named entry in place."""
    out = [DEFAULT_PATH] + ([f"HOSTNAME={hostname}"] if hostname else []) + (["TERM=xterm"] if tty else [])
    for e in env or []:
        if not e:
            continue
        key = e.split("=", 1)[0]
        for i, cur in enumerate(out):
            if cur.split("=", 1)[0] == key:
                out[i] = e
                break
        else:
            out.append(e)
    return out


def numeric_user(user: str) -> tuple[int, int] | None:
    """(uid, gid) when the Docker user string is purely numeric ("", "1000", "1000:1000")."""
    name, _, group = (user or "").partition(":")
    if name and not name.isdigit() or group and not group.isdigit():
        return None
    return (int(name) if name else 0), (int(group) if group else 0)


def capabilities(cap_names: list[str], user: str) -> dict:
    """An OCI capabilities object. Like Docker, a non-root numeric user gets the bounding set only;
    for a named user the runtime makes that decision once the name is resolved."""
    nums = numeric_user(user)
    nonroot = nums is not None and nums[0] != 0
    return {
        "bounding": list(cap_names),
        "effective": [] if nonroot else list(cap_names),
        "permitted": [] if nonroot else list(cap_names),
        "inheritable": [],
        "ambient": [],
    }


def _mounts(hostname_path: str, hosts_path: str, resolv_path: str, shm_size: int,
            privileged: bool) -> list[dict]:
    sys_opts = ["nosuid", "noexec", "nodev"] + ([] if privileged else ["ro"])
    mounts = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": sys_opts},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["ro", "nosuid", "noexec", "nodev"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", f"size={shm_size // 1024}k"]},
    ]
    for src, dst in ((resolv_path, "/etc/resolv.conf"), (hostname_path, "/etc/hostname"),
                     (hosts_path, "/etc/hosts")):
        if src:
            mounts.append({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]})
    return mounts


def resources(host_config: dict) -> dict:
    """OCI linux.resources from a HostConfig. Raises InvalidArgument for contradictory values."""
    hc = host_config
    res: dict = {"devices": [{"allow": True, "access": "rwm"}] if hc.get("Privileged")
                 else [dict(d) for d in DEFAULT_DEVICE_RULES]}
    mem = int(hc.get("Memory") or 0)
    swap = int(hc.get("MemorySwap") or 0)
    if mem < 0:
        raise InvalidArgument("invalid memory limit")
    if mem:
        if mem < 6 * 1024 * 1024:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        if swap > 0 and swap < mem:
            raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                                  "see usage.")
        res["memory"] = {"limit": mem, "swap": swap if swap else mem}
    nano = int(hc.get("NanoCpus") or 0)
    quota = int(hc.get("CpuQuota") or 0)
    period = int(hc.get("CpuPeriod") or 0)
    if nano and (quota or period):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    cpu: dict = {}
    if nano:
        cpu["period"] = CPU_PERIOD
        cpu["quota"] = nano * CPU_PERIOD // 1_000_000_000
    else:
        if quota:
            cpu["quota"] = quota
        if period:
            cpu["period"] = period
    if hc.get("CpuShares"):
        cpu["shares"] = int(hc["CpuShares"])
    if hc.get("CpusetCpus"):
        cpu["cpus"] = hc["CpusetCpus"]
    if hc.get("CpusetMems"):
        cpu["mems"] = hc["CpusetMems"]
    if cpu:
        res["cpu"] = cpu
    pids = hc.get("PidsLimit")
    if pids is not None and int(pids) > 0:
        res["pids"] = {"limit": int(pids)}
    return res


def _nofile_default() -> int:
    """Docker's 1048576, or the daemon's own hard limit when that is lower: a runtime that does
    not clamp (runc) would otherwise fail to apply the spec on such a host."""
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return DEFAULT_NOFILE if hard == resource.RLIM_INFINITY else min(DEFAULT_NOFILE, hard)


def generate_spec(*, container_id: str, config: dict, host_config: dict, hostname_path: str,
                  hosts_path: str, resolv_path: str, cgroups_path: str) -> dict:
    """An OCI config.json for a container, from its merged Config and its HostConfig.

    User names are resolved inside the container at start: the Docker User string travels in the
    ``org.berth.user`` annotation and in ``process.user.username`` (a Windows-only OCI field that
    Linux runtimes ignore; Berth reads it so `exec` inherits the container's user). Raises InvalidArgument("No command specified") without a command,
    and for an unknown capability or bad resource values.
    """
    hc = host_config or {}
    args = list(config.get("Entrypoint") or []) + list(config.get("Cmd") or [])
    if not args:
        raise InvalidArgument("No command specified")
    hostname = config.get("Hostname") or container_id[:12]
    tty = bool(config.get("Tty"))
    user = config.get("User") or ""
    privileged = bool(hc.get("Privileged"))
    cap_names = caps.effective_set(hc.get("CapAdd"), hc.get("CapDrop"), privileged)
    nums = numeric_user(user)
    process: dict = {
        "terminal": tty,
        "user": {"uid": nums[0] if nums else 0, "gid": nums[1] if nums else 0},
        "args": args,
        "env": default_env(config.get("Env"), hostname, tty),
        "cwd": config.get("WorkingDir") or "/",
        "capabilities": capabilities(cap_names, user),
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": _nofile_default(), "soft": _nofile_default()}],
        "noNewPrivileges": "no-new-privileges" in (hc.get("SecurityOpt") or [])
        or "no-new-privileges:true" in (hc.get("SecurityOpt") or []),
        "oomScoreAdj": int(hc.get("OomScoreAdj") or 0),
    }
    for ul in hc.get("Ulimits") or []:
        process["rlimits"] = [r for r in process["rlimits"] if r["type"] != f"RLIMIT_{ul['Name'].upper()}"]
        process["rlimits"].append({"type": f"RLIMIT_{ul['Name'].upper()}", "soft": int(ul["Soft"]),
                                   "hard": int(ul["Hard"])})
    spec: dict = {
        "ociVersion": OCI_VERSION,
        "process": process,
        "root": {"path": "rootfs", "readonly": bool(hc.get("ReadonlyRootfs"))},
        "hostname": hostname,
        "mounts": _mounts(hostname_path, hosts_path, resolv_path,
                          int(hc.get("ShmSize") or DEFAULT_SHM_SIZE), privileged),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "mount", "uts", "ipc", "network")],
            "resources": resources(hc),
            "cgroupsPath": cgroups_path,
            "maskedPaths": [] if privileged else list(MASKED_PATHS),
            "readonlyPaths": [] if privileged else list(READONLY_PATHS),
            "sysctl": dict(hc.get("Sysctls") or {}),
        },
        "annotations": {"org.berth.container-id": container_id},
    }
    if config.get("Domainname"):
        spec["domainname"] = config["Domainname"]
    if user:
        spec["annotations"][USER_ANNOTATION] = user
        process["user"]["username"] = user
    return spec


def exec_process(base: dict, *, args: list[str], env: list[str] | None = None, user: str = "",
                 working_dir: str = "", tty: bool = False, privileged: bool = False) -> dict:
    """The OCI ``process`` for `docker exec`, derived from the container's own process ``base``.

    ``user`` ("" = the container's user) travels in ``process["user"]["username"]`` as a Docker
    User string, resolved inside the container. Raises InvalidArgument without args.
    """
    if not args:
        raise InvalidArgument("No exec command specified")
    proc = {k: v for k, v in base.items() if k not in ("args", "terminal", "consoleSize")}
    proc["args"] = list(args)
    proc["terminal"] = tty
    merged = list(base.get("env") or [])
    for e in env or []:
        key = e.split("=", 1)[0]
        merged = [m for m in merged if m.split("=", 1)[0] != key] + [e]
    if tty and not any(e.startswith("TERM=") for e in merged):
        merged.append("TERM=xterm")
    proc["env"] = merged
    if working_dir:
        proc["cwd"] = working_dir
    if user:
        nums = numeric_user(user)
        proc["user"] = {"uid": nums[0] if nums else 0, "gid": nums[1] if nums else 0, "username": user}
    else:
        user = (base.get("user") or {}).get("username", "")
    cap_names = caps.effective_set(None, None, True) if privileged else list(
        (base.get("capabilities") or {}).get("bounding") or [])
    proc["capabilities"] = capabilities(cap_names, user)
    return proc
