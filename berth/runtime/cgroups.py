"""Container cgroups, v1 (one directory per controller) and v2 (one unified directory).

The version is detected once per ``open_cgroup`` call: v2 iff ``root`` itself is a cgroup2 mount
(statfs magic 0x63677270). Every path is taken relative to ``root`` so unit tests run this logic
against a fake directory tree; that is also how the v2 code is tested on hosts whose controllers
are bound to v1 (a hybrid host's /sys/fs/cgroup/unified has no memory/cpu/pids controllers).

Lifecycle: ``create(resources)`` before the container's process runs user code, ``add_process``
for init and every exec, ``destroy()`` when the container is deleted (idempotent).
"""

from __future__ import annotations

import errno
import os
import signal
import time

from berth.runtime import syscalls

DEFAULT_ROOT = "/sys/fs/cgroup"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "freezer", "cpuset", "devices")
V2_CONTROLLERS = ("cpuset", "cpu", "memory", "pids")


def _write(path: str, value: str | int) -> None:
    try:
        with open(path, "w") as f:
            f.write(str(value))
    except OSError as e:
        raise OSError(e.errno, f"write {value!r} to {path}: {os.strerror(e.errno or 0)}") from None


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _read_or(path: str, default: str = "") -> str:
    try:
        return _read(path)
    except OSError:
        return default


def _kv(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


def is_v2(root: str = DEFAULT_ROOT) -> bool:
    """True when ``root`` is a cgroup2 (unified) mount."""
    try:
        return syscalls.fs_magic(root) == syscalls.CGROUP2_SUPER_MAGIC
    except OSError:
        return False


def detect_version(root: str = DEFAULT_ROOT) -> str:
    """"v2" on a unified host, else "v1" (hybrid hosts count as v1, as Docker reports them)."""
    return "v2" if is_v2(root) else "v1"


def open_cgroup(path: str, root: str = DEFAULT_ROOT, version: int | None = None) -> Cgroup:
    """The cgroup at OCI ``cgroupsPath`` ``path`` (e.g. "/berth/<id>"); nothing is created yet.

    ``version`` forces 1 or 2 (tests with a fake tree); by default it is detected from ``root``.
    """
    if version is None:
        version = 2 if is_v2(root) else 1
    rel = path.strip("/")
    if not rel:
        raise ValueError("cgroupsPath must not be empty")
    return CgroupV2(root, rel) if version == 2 else CgroupV1(root, rel)


class Cgroup:
    """Common behaviour of both versions; subclasses provide the directories and the files."""

    version = 0

    def __init__(self, root: str, rel: str) -> None:
        self.root = root
        self.rel = rel

    def dirs(self) -> list[str]:
        """The existing-or-to-be directories of this cgroup (one per controller on v1)."""
        raise NotImplementedError

    def controller_dirs(self) -> dict[str, str]:
        """Controller name → directory (v1); {"": directory} on v2."""
        return {os.path.relpath(d, self.root).split("/", 1)[0] if self.version == 1 else "": d
                for d in self.dirs()}

    def create(self, resources: dict) -> None:
        """Make the directories and apply OCI ``linux.resources``. Raises OSError."""
        raise NotImplementedError

    def add_process(self, pid: int) -> None:
        """Move ``pid`` (0 = the caller) into this cgroup in every controller. Raises OSError."""
        for d in self.dirs():
            if os.path.isdir(d):
                _write(os.path.join(d, "cgroup.procs"), pid)

    def procs(self) -> list[int]:
        """Pids in this cgroup (union over controllers); [] when it does not exist."""
        pids: set[int] = set()
        for d in self.dirs():
            for line in _read_or(os.path.join(d, "cgroup.procs")).split():
                if line.isdigit():
                    pids.add(int(line))
        return sorted(pids)

    def exists(self) -> bool:
        """True if any directory of this cgroup exists."""
        return any(os.path.isdir(d) for d in self.dirs())

    def _kill_all(self) -> None:
        for pid in self.procs():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _remove_dir(self, path: str) -> None:
        os.rmdir(path)

    def destroy(self, timeout: float = 5.0) -> None:
        """SIGKILL whatever is left, wait for the cgroup to empty and remove its directories.

        Idempotent: a cgroup that is already gone is fine. Raises OSError if a directory is still
        busy after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        self.thaw_if_possible()
        for d in self.dirs():
            while os.path.isdir(d):
                self._kill_all()
                try:
                    self._remove_dir(d)
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)

    def thaw_if_possible(self) -> None:
        """Thaw before killing: a frozen task cannot die."""
        try:
            self.thaw()
        except OSError:
            pass

    def freeze(self) -> None:
        """Pause every process in the cgroup (docker pause). Raises OSError."""
        raise NotImplementedError

    def thaw(self) -> None:
        """Resume a frozen cgroup (docker unpause). Raises OSError."""
        raise NotImplementedError

    def oom_killed(self) -> bool:
        """True once the kernel OOM-killed a process of this cgroup (State.OOMKilled)."""
        raise NotImplementedError

    def stats(self) -> dict:
        """Cheap figures: {"memory": {"usage", "limit"}, "pids": {"current"}} (0 when unknown)."""
        raise NotImplementedError


class CgroupV1(Cgroup):
    """cgroup v1: a directory per controller at ``root/<controller>/<path>``."""

    version = 1

    def _ctrl(self, name: str) -> str:
        return os.path.join(self.root, name, self.rel)

    def dirs(self) -> list[str]:
        out: list[str] = []
        seen: set[str] = set()
        for c in V1_CONTROLLERS:
            base = os.path.join(self.root, c)
            if not os.path.isdir(base):
                continue
            real = os.path.realpath(base)
            if real in seen:  # co-mounted controllers (cpu -> cpu,cpuacct)
                continue
            seen.add(real)
            out.append(os.path.join(base, self.rel))
        return out

    def _mkdirs(self) -> None:
        for d in self.dirs():
            os.makedirs(d, exist_ok=True)
        cpuset_base = os.path.join(self.root, "cpuset")
        if os.path.isdir(cpuset_base):
            path = cpuset_base
            for part in self.rel.split("/"):
                parent, path = path, os.path.join(path, part)
                for f in ("cpuset.cpus", "cpuset.mems"):
                    if not _read_or(os.path.join(path, f)).strip():
                        _write(os.path.join(path, f), _read_or(os.path.join(parent, f)).strip())

    def create(self, resources: dict) -> None:
        self._mkdirs()
        mem = resources.get("memory") or {}
        if mem.get("limit"):
            d = self._ctrl("memory")
            _write(os.path.join(d, "memory.limit_in_bytes"), mem["limit"])
            swap = mem.get("swap")
            if swap and os.path.exists(os.path.join(d, "memory.memsw.limit_in_bytes")):
                _write(os.path.join(d, "memory.memsw.limit_in_bytes"), swap)
        cpu = resources.get("cpu") or {}
        d = self._ctrl("cpu")
        if cpu.get("period"):
            _write(os.path.join(d, "cpu.cfs_period_us"), cpu["period"])
        if cpu.get("quota"):
            _write(os.path.join(d, "cpu.cfs_quota_us"), cpu["quota"])
        if cpu.get("shares"):
            _write(os.path.join(d, "cpu.shares"), cpu["shares"])
        for key, f in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                _write(os.path.join(self._ctrl("cpuset"), f), cpu[key])
        pids = resources.get("pids") or {}
        if pids.get("limit", 0) > 0:
            _write(os.path.join(self._ctrl("pids"), "pids.max"), pids["limit"])
        devdir = self._ctrl("devices")
        if resources.get("devices") and os.path.isdir(devdir):
            for rule in resources["devices"]:
                line = device_rule(rule)
                _write(os.path.join(devdir, "devices.allow" if rule.get("allow") else "devices.deny"), line)

    def oom_killed(self) -> bool:
        return _kv(_read_or(os.path.join(self._ctrl("memory"), "memory.oom_control"))).get("oom_kill", 0) > 0

    def freeze(self) -> None:
        self._freezer("FROZEN")

    def thaw(self) -> None:
        self._freezer("THAWED")

    def _freezer(self, state: str) -> None:
        path = os.path.join(self._ctrl("freezer"), "freezer.state")
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, f"no freezer cgroup at {path}")
        deadline = time.monotonic() + 5
        while True:
            _write(path, state)
            if _read_or(path).strip() == state or time.monotonic() > deadline:
                return
            time.sleep(0.001)

    def stats(self) -> dict:
        mem = self._ctrl("memory")
        return {
            "memory": {"usage": int(_read_or(os.path.join(mem, "memory.usage_in_bytes"), "0") or 0),
                       "limit": int(_read_or(os.path.join(mem, "memory.limit_in_bytes"), "0") or 0)},
            "pids": {"current": int(_read_or(os.path.join(self._ctrl("pids"), "pids.current"), "0") or 0)},
        }


def device_rule(rule: dict) -> str:
    """An OCI device rule as a v1 devices.allow/deny line, e.g. "c 1:3 rwm"."""
    t = rule.get("type") or "a"
    major = "*" if rule.get("major") is None or rule.get("major") == -1 else str(rule["major"])
    minor = "*" if rule.get("minor") is None or rule.get("minor") == -1 else str(rule["minor"])
    return f"{t} {major}:{minor} {rule.get('access') or 'rwm'}"


def shares_to_weight(shares: int) -> int:
    """cpu.shares (2..262144) to cgroup v2 cpu.weight (1..10000), as runc converts it."""
    if shares <= 0:
        return 0
    return 1 + ((shares - 2) * 9999) // 262142


class CgroupV2(Cgroup):
    """cgroup v2: a single directory ``root/<path>``. Device rules need eBPF and are not applied."""

    version = 2

    def dirs(self) -> list[str]:
        return [os.path.join(self.root, self.rel)]

    @property
    def path(self) -> str:
        return self.dirs()[0]

    def create(self, resources: dict) -> None:
        # Enable the controllers down the tree so the leaf gets its interface files.
        path = self.root
        available = set(_read_or(os.path.join(self.root, "cgroup.controllers")).split())
        wanted = [c for c in V2_CONTROLLERS if c in available]
        for part in self.rel.split("/"):
            if wanted:
                _write(os.path.join(path, "cgroup.subtree_control"), " ".join("+" + c for c in wanted))
            path = os.path.join(path, part)
            os.makedirs(path, exist_ok=True)
        d = self.path
        mem = resources.get("memory") or {}
        if mem.get("limit"):
            _write(os.path.join(d, "memory.max"), mem["limit"])
            swap = mem.get("swap")
            if swap and os.path.exists(os.path.join(d, "memory.swap.max")):
                _write(os.path.join(d, "memory.swap.max"), "max" if swap < 0 else max(swap - mem["limit"], 0))
        cpu = resources.get("cpu") or {}
        if cpu.get("quota") or cpu.get("period"):
            quota = cpu.get("quota") or 0
            _write(os.path.join(d, "cpu.max"), f"{quota if quota > 0 else 'max'} {cpu.get('period') or 100000}")
        if cpu.get("shares"):
            _write(os.path.join(d, "cpu.weight"), shares_to_weight(int(cpu["shares"])))
        for key, f in (("cpus", "cpuset.cpus"), ("mems", "cpuset.mems")):
            if cpu.get(key):
                _write(os.path.join(d, f), cpu[key])
        pids = resources.get("pids") or {}
        if pids.get("limit", 0) > 0:
            _write(os.path.join(d, "pids.max"), pids["limit"])

    def oom_killed(self) -> bool:
        return _kv(_read_or(os.path.join(self.path, "memory.events"))).get("oom_kill", 0) > 0

    def freeze(self) -> None:
        _write(os.path.join(self.path, "cgroup.freeze"), 1)

    def thaw(self) -> None:
        if os.path.exists(os.path.join(self.path, "cgroup.freeze")):
            _write(os.path.join(self.path, "cgroup.freeze"), 0)

    def _kill_all(self) -> None:
        kill = os.path.join(self.path, "cgroup.kill")
        if os.path.exists(kill):
            try:
                _write(kill, 1)
            except OSError:
                pass
        super()._kill_all()

    def stats(self) -> dict:
        return {
            "memory": {"usage": int(_read_or(os.path.join(self.path, "memory.current"), "0") or 0),
                       "limit": _max_value(_read_or(os.path.join(self.path, "memory.max"), "max"))},
            "pids": {"current": int(_read_or(os.path.join(self.path, "pids.current"), "0") or 0)},
        }


def _max_value(text: str) -> int:
    text = text.strip()
    return 0 if text in ("", "max") else int(text)
