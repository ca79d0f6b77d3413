"""The files dockerd's init layer puts under every container, created in its read-write layer.

Docker mounts a small "init" layer between the image and the container's layer; Berth writes the
same entries into the container's upper dir at create time instead (commit and diff leave them
out, as Docker does): /.dockerenv, /etc/{hosts,hostname,resolv.conf} (mount points, 0755 like
Docker's), /etc/mtab → /proc/mounts, /dev/{console,pts,shm}, and the image's VOLUME directories.
"""

from __future__ import annotations

import os
from pathlib import Path

_FILES = (".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "dev/console")
_DIRS = ("dev/pts", "dev/shm", "proc", "sys")


def _lower_stat(rel: str, lowers_top_first: list[Path]) -> os.stat_result | None:
    for lower in lowers_top_first:
        try:
            return os.lstat(lower / rel)
        except OSError:
            continue
    return None


def _make_parents(upper: Path, rel: str, lowers_top_first: list[Path]) -> bool:
    """Create the parents of ``rel`` in ``upper`` with the image's owner and mode (an upper dir's
    attributes win in overlayfs). False when a parent is not a directory in the image."""
    parts = rel.split("/")[:-1]
    for i in range(len(parts)):
        sub = "/".join(parts[: i + 1])
        st = _lower_stat(sub, lowers_top_first)
        if st is not None and not (st.st_mode & 0o170000 == 0o040000):
            return False  # e.g. /etc is a symlink in the image: leave it alone
        target = upper / sub
        if target.is_dir():
            continue
        target.mkdir()
        if st is not None:
            os.chown(target, st.st_uid, st.st_gid)
            os.chmod(target, st.st_mode & 0o7777)
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        else:
            os.chmod(target, 0o755)
    return True


def write_init_files(upper: Path, lowers_bottom_first: list[Path], volumes: list[str]) -> None:
    """Populate a new container's upper dir; existing image content is never replaced except by
    the run-time files Docker replaces too."""
    lowers = list(reversed(lowers_bottom_first))
    for rel in _FILES:
        if _make_parents(upper, rel, lowers):
            fd = os.open(upper / rel, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o755)
            os.fchmod(fd, 0o755)
            os.close(fd)
    for rel in _DIRS:
        st = _lower_stat(rel, lowers)
        if st is None and _make_parents(upper, rel + "/x", lowers):
            (upper / rel).mkdir(exist_ok=True)
            os.chmod(upper / rel, 0o755)
    if _make_parents(upper, "etc/mtab", lowers) and _lower_stat("etc/mtab", lowers) is None:
        os.symlink("/proc/mounts", upper / "etc/mtab")
    for vol in volumes:
        rel = os.path.normpath("/" + vol).lstrip("/")
        if rel and rel != "." and _lower_stat(rel, lowers) is None and _make_parents(upper, rel + "/x", lowers):
            (upper / rel).mkdir(exist_ok=True)
            os.chmod(upper / rel, 0o755)
