"""Linux capabilities: names and numbers, Docker's default set, and applying an OCI capability set
to the calling process while it switches to the container's user.
"""

from __future__ import annotations

from berth.errors import InvalidArgument
from berth.runtime import syscalls

CAP_NAMES: list[str] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
    "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
]
CAP_NUMBERS: dict[str, int] = {name: i for i, name in enumerate(CAP_NAMES)}

DEFAULT_CAPS: list[str] = [
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
]


def last_cap(path: str = "/proc/sys/kernel/cap_last_cap") -> int:
    """The highest capability number the running kernel knows (bounded by our name table)."""
    try:
        with open(path) as f:
            return min(int(f.read().strip()), len(CAP_NAMES) - 1)
    except (OSError, ValueError):
        return len(CAP_NAMES) - 1


def normalize(name: str) -> str:
    """``"net_admin"``/``"CAP_NET_ADMIN"`` → ``"CAP_NET_ADMIN"``; ``"all"`` → ``"ALL"``.

    Raises InvalidArgument for an unknown capability, with Docker's wording.
    """
    up = name.strip().upper()
    if up == "ALL":
        return "ALL"
    if not up.startswith("CAP_"):
        up = "CAP_" + up
    if up not in CAP_NUMBERS:
        raise InvalidArgument(f"invalid capability: {name}")
    return up


def all_caps() -> list[str]:
    """Every capability the kernel supports, by name."""
    return CAP_NAMES[: last_cap() + 1]


def effective_set(cap_add: list[str] | None, cap_drop: list[str] | None, privileged: bool) -> list[str]:
    """Docker's rule: default set, minus CapDrop, plus CapAdd ("ALL" allowed in both)."""
    if privileged:
        return all_caps()
    adds = [normalize(c) for c in cap_add or []]
    drops = [normalize(c) for c in cap_drop or []]
    if "ALL" in adds:
        caps = [c for c in all_caps() if c not in drops]
    elif "ALL" in drops:
        caps = list(adds)
    else:
        caps = [c for c in DEFAULT_CAPS if c not in drops] + adds
    known = set(all_caps())
    out: list[str] = []
    for c in caps:
        if c in known and c not in out:
            out.append(c)
    return out


def mask(names: list[str] | None) -> int:
    """Bit mask of capability names (unknown names and ones past the kernel's last cap ignored)."""
    top = last_cap()
    m = 0
    for n in names or []:
        num = CAP_NUMBERS.get(n)
        if num is not None and num <= top:
            m |= 1 << num
    return m


def apply(capabilities: dict, uid: int, gid: int, additional_gids: list[int]) -> None:
    """Drop the bounding set to ``capabilities["bounding"]``, switch to uid/gid/groups keeping
    capabilities, then set effective/permitted/inheritable and ambient from the OCI set.

    Must run as root in the container's process just before execve. Raises OSError.
    """
    bounding = mask(capabilities.get("bounding"))
    for num in range(last_cap() + 1):
        if not bounding & (1 << num):
            syscalls.prctl(syscalls.PR_CAPBSET_DROP, num)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 1)
    syscalls.setgroups(additional_gids)
    syscalls.setresgid(gid)
    syscalls.setresuid(uid)
    syscalls.prctl(syscalls.PR_SET_KEEPCAPS, 0)
    syscalls.capset(mask(capabilities.get("effective")), mask(capabilities.get("permitted")),
                    mask(capabilities.get("inheritable")))
    syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_CLEAR_ALL)
    for name in capabilities.get("ambient") or []:
        num = CAP_NUMBERS.get(name)
        if num is not None and num <= last_cap():
            syscalls.prctl(syscalls.PR_CAP_AMBIENT, syscalls.PR_CAP_AMBIENT_RAISE, num)
