"""A minimal busybox rootfs tarball, for tests and the quick start.

``make_busybox_rootfs_tar(dest)`` writes ``bin/busybox`` plus a symlink per applet, a tiny
/etc/passwd and /etc/group, and the usual empty dirs; every mtime and owner is fixed, so two
builds from the same busybox give the same bytes (the same diff id).
Run as ``python -m berth.images.rootfs OUT.tar``.
"""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

MTIME = 1_700_000_000
PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
GROUP = b"root:x:0:\nnogroup:x:65534:\n"
DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "proc": 0o555, "root": 0o700, "sys": 0o555,
        "tmp": 0o1777, "usr": 0o755, "usr/bin": 0o755, "var": 0o755}


def _info(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.size = size
    ti.linkname = link
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


def applets(busybox: str = "/bin/busybox") -> list[str]:
    """Full paths of busybox's applets (``busybox --list-full``, else ``--list`` under bin/)."""
    try:
        out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True).stdout
        return sorted({p.strip().lstrip("/") for p in out.split() if p.strip()})
    except subprocess.CalledProcessError:
        out = subprocess.run([busybox, "--list"], check=True, capture_output=True, text=True).stdout
        return sorted({"bin/" + p.strip() for p in out.split() if p.strip()})


def make_busybox_rootfs_tar(dest: Path, busybox: str = "/bin/busybox") -> Path:
    """Write the rootfs tar to ``dest`` and return it. Raises OSError/CalledProcessError if
    ``busybox`` is missing or does not run."""
    dest = Path(dest)
    data = Path(busybox).read_bytes()
    names = [a for a in applets(busybox) if a != "bin/busybox" and "/" in a]
    dirs = dict(DIRS)
    for a in names:
        parent = a.rsplit("/", 1)[0] if "/" in a else ""
        while parent and parent not in dirs:
            dirs[parent] = 0o755
            parent = parent.rsplit("/", 1)[0] if "/" in parent else ""
    with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tf:
        for d in sorted(dirs):
            tf.addfile(_info(d + "/", tarfile.DIRTYPE, dirs[d]))
        tf.addfile(_info("bin/busybox", tarfile.REGTYPE, 0o755, len(data)), io.BytesIO(data))
        for name in ("etc/passwd", "etc/group"):
            body = PASSWD if name == "etc/passwd" else GROUP
            tf.addfile(_info(name, tarfile.REGTYPE, 0o644, len(body)), io.BytesIO(body))
        for a in names:
            tf.addfile(_info(a, tarfile.SYMTYPE, 0o777, link="/bin/busybox"))
    return dest


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) not in (1, 2):
        print("usage: python -m berth.images.rootfs OUT.tar [BUSYBOX]", file=sys.stderr)
        return 2
    out = make_busybox_rootfs_tar(Path(argv[0]), *(argv[1:]))
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
