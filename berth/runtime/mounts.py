"""The container's filesystem: rootfs mounts, OCI spec mounts, /dev, pivot_root, masked and
read-only paths. Runs in the container's init, inside its new mount namespace, as root; every
syscall goes through ``berth.runtime.syscalls``. Functions raise OSError naming what failed.
"""

from __future__ import annotations

import errno
import os
import stat

from berth.runtime import syscalls as sc

_FLAGS: dict[str, tuple[bool, int]] = {
    "ro": (False, sc.MS_RDONLY), "rw": (True, sc.MS_RDONLY),
    "nosuid": (False, sc.MS_NOSUID), "suid": (True, sc.MS_NOSUID),
    "nodev": (False, sc.MS_NODEV), "dev": (True, sc.MS_NODEV),
    "noexec": (False, sc.MS_NOEXEC), "exec": (True, sc.MS_NOEXEC),
    "sync": (False, sc.MS_SYNCHRONOUS), "async": (True, sc.MS_SYNCHRONOUS),
    "dirsync": (False, sc.MS_DIRSYNC), "remount": (False, sc.MS_REMOUNT),
    "mand": (False, sc.MS_MANDLOCK), "nomand": (True, sc.MS_MANDLOCK),
    "atime": (True, sc.MS_NOATIME), "noatime": (False, sc.MS_NOATIME),
    "diratime": (True, sc.MS_NODIRATIME), "nodiratime": (False, sc.MS_NODIRATIME),
    "relatime": (False, sc.MS_RELATIME), "norelatime": (True, sc.MS_RELATIME),
    "strictatime": (False, sc.MS_STRICTATIME), "nostrictatime": (True, sc.MS_STRICTATIME),
    "bind": (False, sc.MS_BIND), "rbind": (False, sc.MS_BIND | sc.MS_REC),
    "nosymfollow": (False, sc.MS_NOSYMFOLLOW),
}
_PROPAGATION = {
    "private": sc.MS_PRIVATE, "rprivate": sc.MS_PRIVATE | sc.MS_REC,
    "shared": sc.MS_SHARED, "rshared": sc.MS_SHARED | sc.MS_REC,
    "slave": sc.MS_SLAVE, "rslave": sc.MS_SLAVE | sc.MS_REC,
    "unbindable": sc.MS_UNBINDABLE, "runbindable": sc.MS_UNBINDABLE | sc.MS_REC,
}

# name, major, minor (all char devices, mode 0666), as runc creates them.
DEFAULT_DEVICES = [("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8),
                   ("urandom", 1, 9), ("tty", 5, 0)]
DEFAULT_SYMLINKS = [("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
                    ("/proc/self/fd/2", "stderr"), ("pts/ptmx", "ptmx")]


def parse_options(options: list[str] | None) -> tuple[int, int, str]:
    """OCI mount options → (mount flags, propagation flags, data string for the filesystem)."""
    flags, prop, data = 0, 0, []
    for opt in options or []:
        if opt in _FLAGS:
            clear, bit = _FLAGS[opt]
            flags = flags & ~bit if clear else flags | bit
        elif opt in _PROPAGATION:
            prop |= _PROPAGATION[opt]
        else:
            data.append(opt)
    return flags, prop, ",".join(data)


def secure_join(root: str, unsafe: str) -> str:
    """``root``/``unsafe`` with symlinks resolved as if ``root`` were "/" (no escape via ".." or
    absolute links)."""
    parts = [p for p in unsafe.split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        cand = os.path.join(root, *resolved, part)
        if os.path.islink(cand):
            links += 1
            if links > 255:
                raise OSError(errno.ELOOP, f"too many symlinks resolving {unsafe}")
            target = os.readlink(cand)
            if target.startswith("/"):
                resolved = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        resolved.append(part)
    return os.path.join(root, *resolved)


def _mkfile(path: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


def mount_rootfs(rootfs: str, rootfs_mounts: list[dict]) -> None:
    """Mount the image layers (containerd-shaped mounts) on ``rootfs``; with none, bind ``rootfs``
    on itself so it is a mount point pivot_root accepts."""
    if not rootfs_mounts:
        sc.mount(rootfs, rootfs, None, sc.MS_BIND | sc.MS_REC)
        return
    for m in rootfs_mounts:
        if m.get("cwd"):  # relative lowerdir paths (many layers): resolved from here, as overlay2 does
            os.chdir(m["cwd"])
        flags, prop, data = parse_options(m.get("options"))
        mtype = m.get("type") or None
        if mtype == "bind":
            flags |= sc.MS_BIND
        sc.mount(m.get("source") or mtype, rootfs, None if flags & sc.MS_BIND else mtype,
                 flags & ~sc.MS_RDONLY if flags & sc.MS_BIND else flags, data or None)
        if flags & sc.MS_BIND and flags & sc.MS_RDONLY:
            sc.mount(None, rootfs, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
        if prop:
            sc.mount(None, rootfs, None, prop)


def mount_spec(rootfs: str, m: dict, cgroup_dirs: dict[str, str], cgroup_v2: bool) -> None:
    """Perform one OCI ``mounts`` entry under ``rootfs``, creating its mount point.

    ``cgroup_dirs`` maps a v1 controller name (or "" on v2) to the container's host cgroup directory.
    """
    dest = secure_join(rootfs, m["destination"])
    mtype = m.get("type") or ""
    flags, prop, data = parse_options(m.get("options"))
    if mtype == "bind" or flags & sc.MS_BIND:
        src = m["source"]
        if os.path.isdir(src):
            os.makedirs(dest, exist_ok=True)
        else:
            _mkfile(dest)
        sc.mount(src, dest, None, sc.MS_BIND | (flags & sc.MS_REC))
        extra = flags & ~(sc.MS_BIND | sc.MS_REC | sc.MS_REMOUNT)
        if extra:
            sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | extra)
    elif mtype == "cgroup":
        _mount_cgroup(dest, flags, cgroup_dirs, cgroup_v2)
    else:
        os.makedirs(dest, exist_ok=True)
        sc.mount(m.get("source") or mtype, dest, mtype, flags, data or None)
    if prop:
        sc.mount(None, dest, None, prop)


def _mount_cgroup(dest: str, flags: int, cgroup_dirs: dict[str, str], cgroup_v2: bool) -> None:
    """The container's own cgroup at /sys/fs/cgroup: on v1 a tmpfs with one bind per controller
    (what runc does without a cgroup namespace), on v2 a bind of the unified directory."""
    os.makedirs(dest, exist_ok=True)
    ro = flags & sc.MS_RDONLY
    base = flags & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
    if cgroup_v2:
        src = cgroup_dirs.get("", "")
        if src and os.path.isdir(src):
            sc.mount(src, dest, None, sc.MS_BIND)
            sc.mount(None, dest, None, sc.MS_BIND | sc.MS_REMOUNT | base | ro)
        return
    sc.mount("tmpfs", dest, "tmpfs", base, "mode=755")
    for ctrl, d in cgroup_dirs.items():
        if not os.path.isdir(d):
            continue
        target = os.path.join(dest, ctrl)
        os.makedirs(target, exist_ok=True)
        sc.mount(d, target, None, sc.MS_BIND)
        sc.mount(None, target, None, sc.MS_BIND | sc.MS_REMOUNT | base | ro)
    if ro:
        sc.mount(None, dest, None, sc.MS_REMOUNT | base | sc.MS_RDONLY, "mode=755")


def create_devices(rootfs: str, devices: list[dict] | None = None) -> None:
    """The default device nodes, the OCI ``linux.devices`` and the /dev symlinks under rootfs/dev."""
    dev = secure_join(rootfs, "/dev")
    old = os.umask(0)
    try:
        for name, major, minor in DEFAULT_DEVICES:
            _mknod(os.path.join(dev, name), stat.S_IFCHR | 0o666, major, minor, 0, 0)
        for d in devices or []:
            kind = stat.S_IFBLK if d.get("type") == "b" else stat.S_IFCHR
            _mknod(secure_join(rootfs, d["path"]), kind | (d.get("fileMode") or 0o666), d["major"],
                   d["minor"], d.get("uid", 0), d.get("gid", 0))
    finally:
        os.umask(old)
    for target, name in DEFAULT_SYMLINKS:
        link = os.path.join(dev, name)
        if not os.path.lexists(link):
            os.symlink(target, link)


def _mknod(path: str, mode: int, major: int, minor: int, uid: int, gid: int) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.lexists(path):
        os.unlink(path)
    sc.mknod(path, mode, major, minor)
    os.chown(path, uid, gid)


def pivot_root(rootfs: str) -> None:
    """Make ``rootfs`` the root, the runc way: pivot_root(".", ".") then detach the old root."""
    old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    new = os.open(rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fchdir(new)
        sc.pivot_root(".", ".")
        os.fchdir(old)
        sc.mount(None, ".", None, sc.MS_SLAVE | sc.MS_REC)
        sc.umount2(".", sc.MNT_DETACH)
        os.chdir("/")
    finally:
        os.close(old)
        os.close(new)


def mask_paths(paths: list[str]) -> None:
    """Hide ``paths`` (after pivot_root): /dev/null over files, an empty read-only tmpfs over
    directories. Missing paths are skipped."""
    for p in paths:
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                sc.mount("tmpfs", p, "tmpfs", sc.MS_RDONLY, None)
            elif os.path.exists(p):
                sc.mount("/dev/null", p, None, sc.MS_BIND)
        except OSError as e:
            if not sc.is_enoent(e):
                raise


def readonly_paths(paths: list[str]) -> None:
    """Remount ``paths`` read-only (after pivot_root), keeping nosuid/nodev/noexec."""
    for p in paths:
        try:
            sc.mount(p, p, None, sc.MS_BIND | sc.MS_REC)
        except OSError as e:
            if sc.is_enoent(e):
                continue
            raise
        keep = os.statvfs(p).f_flag & (sc.MS_NOSUID | sc.MS_NODEV | sc.MS_NOEXEC)
        sc.mount(p, p, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | sc.MS_REC | keep)


def readonly_root() -> None:
    """Make the container's / read-only (HostConfig.ReadonlyRootfs)."""
    sc.mount(None, "/", None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY)
