"""The runtime's one syscall seam: every ctypes call and raw ioctl of ``berth.runtime`` lives here.

The logic modules call these functions through the module (``syscalls.mount(...)``), so a test can
replace any of them with a recording fake. Each wrapper raises ``OSError`` carrying the errno and a
message that names the call and its arguments.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
import platform
import resource
import socket
import struct
import termios

_libc = ctypes.CDLL(None, use_errno=True)

# Namespace flags (linux/sched.h).
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# Mount flags (linux/mount.h).
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_SYNCHRONOUS = 16
MS_REMOUNT = 32
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOSYMFOLLOW = 256
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_SILENT = 32768
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_SHARED = 1 << 20
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# prctl options (linux/prctl.h).
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# ioctls.
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1

CGROUP2_SUPER_MAGIC = 0x63677270

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "armv7l": 218, "ppc64le": 203, "s390x": 217,
                   "riscv64": 41}.get(platform.machine(), 155)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _b(s: str | bytes | None) -> bytes | None:
    if s is None:
        return None
    return s if isinstance(s, bytes) else os.fsencode(s)


def unshare(flags: int) -> None:
    """unshare(2): move the calling process into new namespaces given by CLONE_* ``flags``."""
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def setns(fd: int, nstype: int = 0) -> None:
    """setns(2): join the namespace open at ``fd`` (``nstype`` 0 accepts any kind)."""
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), f"setns({fd}, {nstype:#x})")


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    """mount(2). Raises OSError naming source, target and type on failure."""
    ret = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(ret, f"mount {source or ''} to {target} (type {fstype or ''}, flags {flags:#x}, data {data!r})")


def umount2(target: str, flags: int = 0) -> None:
    """umount2(2)."""
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    """pivot_root(2) (no glibc wrapper: a raw syscall)."""
    ret = _libc.syscall(ctypes.c_long(_SYS_PIVOT_ROOT), _b(new_root), _b(put_old))
    _check(ret, f"pivot_root {new_root} {put_old}")


def sethostname(name: str) -> None:
    """sethostname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), f"sethostname {name!r}")


def setdomainname(name: str) -> None:
    """setdomainname(2) in the current UTS namespace."""
    raw = name.encode()
    _check(_libc.setdomainname(raw, ctypes.c_size_t(len(raw))), f"setdomainname {name!r}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    """prctl(2); returns its (non-negative) result."""
    ret = _libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                      ctypes.c_ulong(arg4), ctypes.c_ulong(arg5))
    return _check(ret, f"prctl({option}, {arg2})")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capget(pid: int = 0) -> tuple[int, int, int]:
    """capget(2): (effective, permitted, inheritable) as 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    eff, prm, inh = (getattr(data[0], f) | (getattr(data[1], f) << 32)
                     for f in ("effective", "permitted", "inheritable"))
    return eff, prm, inh


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """capset(2) on the calling thread with 64-bit masks."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in (0, 1):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def setgroups(gids: list[int]) -> None:
    """setgroups(2)."""
    os.setgroups(gids)


def setresgid(gid: int) -> None:
    """Set real, effective and saved gid."""
    os.setresgid(gid, gid, gid)


def setresuid(uid: int) -> None:
    """Set real, effective and saved uid."""
    os.setresuid(uid, uid, uid)


def mknod(path: str, mode: int, major: int, minor: int) -> None:
    """mknod(2) of a device node; ``mode`` includes the S_IFCHR/S_IFBLK type bits."""
    try:
        os.mknod(path, mode, os.makedev(major, minor))
    except OSError as e:
        raise OSError(e.errno, f"mknod {path} ({major}:{minor}): {os.strerror(e.errno or 0)}") from None


def set_controlling_tty(fd: int) -> None:
    """ioctl TIOCSCTTY: make the tty open at ``fd`` the controlling terminal (after setsid)."""
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """ioctl TIOCSWINSZ on a pty."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def pty_unlock_and_number(master_fd: int) -> int:
    """unlockpt + TIOCGPTN on a freshly opened ptmx; returns the slave's number under /dev/pts."""
    fcntl.ioctl(master_fd, TIOCSPTLCK, struct.pack("i", 0))
    return struct.unpack("I", fcntl.ioctl(master_fd, TIOCGPTN, b"\0\0\0\0"))[0]


def loopback_up(name: str = "lo") -> None:
    """Bring interface ``name`` up in the current network namespace (SIOCSIFFLAGS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sH14x", name.encode(), 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", name.encode(), flags | IFF_UP))


def setrlimit(res: int, soft: int, hard: int) -> tuple[int, int]:
    """setrlimit(2), clamped: when the hard limit cannot be raised (EPERM), both values are capped
    at the current hard limit. Returns the (soft, hard) actually set."""
    try:
        resource.setrlimit(res, (soft, hard))
        return soft, hard
    except (ValueError, OSError):
        inf = resource.RLIM_INFINITY
        cur_hard = resource.getrlimit(res)[1]
        if cur_hard == inf:
            raise
        hard2 = cur_hard if hard == inf else min(hard, cur_hard)
        soft2 = hard2 if soft == inf else min(soft, hard2)
        resource.setrlimit(res, (soft2, hard2))
        return soft2, hard2


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 112)]


def fs_magic(path: str) -> int:
    """statfs(2) f_type of the filesystem holding ``path``."""
    buf = _Statfs()
    _check(_libc.statfs(_b(path), ctypes.byref(buf)), f"statfs {path}")
    return buf.f_type & 0xFFFFFFFF


def is_enoent(e: OSError) -> bool:
    """True when ``e`` means the path does not exist."""
    return e.errno in (_errno.ENOENT, _errno.ENOTDIR)
