"""A read-write layer back into a tar diff (commit), its change list (``docker diff``), and
a merged view of layers as one tar (``docker export``).

Overlayfs keeps a container's changes in its upper dir: new and copied-up files as themselves,
deletions as 0/0 character devices (whiteouts), replaced directories with the
``trusted.overlay.opaque=y`` xattr. :func:`diff_tar` turns that into an OCI layer tar
(``.wh.<name>`` and ``<dir>/.wh..wh..opq`` entries); :func:`changes` lists what changed as
``docker diff`` does; :func:`merged_tar` writes the union of several layers.

Tars are written by :class:`TarWriter` as Go's archive/tar does (PAX headers only when needed,
whole-second mtimes, two zero blocks at the end and no record padding), so an empty diff has
Docker's empty-layer digest. Nothing here mounts anything; read errors are raised as OSError.
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

OPAQUE_XATTR = "trusted.overlay.opaque"
WHITEOUT_PREFIX = ".wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
EMPTY_LAYER_DIFF_ID = "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

# What Docker keeps in a container's init layer (mount points and generated files): never part
# of a container's own changes, so excluded from commit and diff.
CONTAINER_INIT_PATHS = frozenset({
    ".dockerenv", "etc/hosts", "etc/hostname", "etc/resolv.conf", "etc/mtab", "dev", "proc", "sys",
})

MODIFIED, ADDED, DELETED = 0, 1, 2
_BLOCK = 512
_CHUNK = 1 << 20


class TarWriter:
    """Writes tar entries to a stream, Go-style (see the module docstring). ``close()`` ends it."""

    def __init__(self, out: BinaryIO):
        self.out = out

    def add(self, ti: tarfile.TarInfo, src: BinaryIO | None = None) -> None:
        """Write ``ti``; for a regular file exactly ``ti.size`` bytes from ``src`` (zero-padded if
        the source turns out shorter, e.g. a file truncated while being read)."""
        self.out.write(_header(ti))
        if ti.type not in (tarfile.REGTYPE, tarfile.AREGTYPE) or ti.size == 0:
            return
        left = ti.size
        while left and src is not None:
            chunk = src.read(min(left, _CHUNK))
            if not chunk:
                break
            self.out.write(chunk)
            left -= len(chunk)
        while left:
            n = min(left, _CHUNK)
            self.out.write(b"\0" * n)
            left -= n
        if ti.size % _BLOCK:
            self.out.write(b"\0" * (_BLOCK - ti.size % _BLOCK))

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644, mtime: int = 0) -> None:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime = len(data), mode, mtime
        ti.uname = ti.gname = ""
        self.out.write(_header(ti))
        self.out.write(data)
        if len(data) % _BLOCK:
            self.out.write(b"\0" * (_BLOCK - len(data) % _BLOCK))

    def close(self) -> None:
        self.out.write(b"\0" * (2 * _BLOCK))


def _header(ti: tarfile.TarInfo) -> bytes:
    """``ti`` as PAX-format header blocks, with the ustar block patched to what Go writes: the
    file type bits kept in the mode field (Python's tarfile drops them) and zero device numbers
    written as octal zeros rather than left empty."""
    buf = ti.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    hdr = bytearray(buf[-_BLOCK:])
    hdr[100:108] = b"%07o\0" % (ti.mode & 0o7777777)
    if ti.type not in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        hdr[329:345] = b"0000000\0" * 2
    hdr[148:156] = b" " * 8
    hdr[148:155] = b"%06o\0" % sum(hdr)
    return buf[:-_BLOCK] + bytes(hdr)


# -- helpers ---------------------------------------------------------------------------------
def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str | Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError as e:
        if e.errno in (errno.ENODATA, errno.ENOTSUP, errno.ENOENT):
            return False
        raise


def _xattrs(path: str) -> dict[str, str]:
    """xattrs worth keeping in a layer: not overlayfs' own, not SELinux labels."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for name in sorted(names):
        if name.startswith("trusted.overlay.") or name == "security.selinux":
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        out["SCHILY.xattr." + name] = value.decode("utf-8", "surrogateescape")
    return out


def tarinfo_for(name: str, path: str, st: os.stat_result) -> tarfile.TarInfo | None:
    """A tar header for ``path`` named ``name`` (no leading slash); None for sockets."""
    mode = st.st_mode
    ti = tarfile.TarInfo(name + "/" if stat.S_ISDIR(mode) else name)
    ti.mode = stat.S_IMODE(mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = int(st.st_mtime)
    if stat.S_ISDIR(mode):
        ti.type = tarfile.DIRTYPE
    elif stat.S_ISREG(mode):
        ti.type = tarfile.REGTYPE
        ti.size = st.st_size
    elif stat.S_ISLNK(mode):
        ti.type = tarfile.SYMTYPE
        ti.linkname = os.readlink(path)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    elif stat.S_ISFIFO(mode):
        ti.type = tarfile.FIFOTYPE
    else:
        return None  # sockets: archive/tar cannot hold them either
    ti.pax_headers = _xattrs(path)
    return ti


def _lookup(dirs: list[str], name: str) -> tuple[os.stat_result | None, str | None, list[str]]:
    """``name`` in the merged view of ``dirs`` (the same directory in several layers, top first).

    Returns (its stat in the top layer holding it, that path, the layers below in which it
    continues as a directory, top first); (None, None, []) if absent or whited out.
    """
    found: os.stat_result | None = None
    where: str | None = None
    below: list[str] = []
    for d in dirs:
        p = os.path.join(d, name)
        try:
            st = os.lstat(p)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if is_whiteout(st):
            break
        if found is None:
            found, where = st, p
        if not stat.S_ISDIR(st.st_mode) or not stat.S_ISDIR(found.st_mode):
            break
        below.append(p)
        if is_opaque(p):
            break
    return found, where, below


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


# -- the upper dir as a diff -----------------------------------------------------------------
# An entry: (kind, relative path, absolute path, stat); kind is "whiteout", "dir", "opaque-dir"
# or "other".
_Entry = tuple[str, str, str, os.stat_result]


def _upper_entries(upper: str, lowers: list[str], rel: str, exclude: Collection[str]) -> list[_Entry]:
    """The entries of the upper dir ``rel`` worth writing, parents before children.

    A directory that exists below with the same mode and owner and holds no change itself is
    left out: overlayfs copies parents up just to hold a changed child.
    """
    out: list[_Entry] = []
    here = os.path.join(upper, rel) if rel else upper
    for name in sorted(_listdir(here)):
        crel = f"{rel}/{name}" if rel else name
        if crel in exclude:
            continue
        path = os.path.join(here, name)
        st = os.lstat(path)
        if is_whiteout(st):
            out.append(("whiteout", crel, path, st))
            continue
        if not stat.S_ISDIR(st.st_mode):
            out.append(("other", crel, path, st))
            continue
        lower_st, _, below = _lookup(lowers, name)
        opaque = is_opaque(path)
        children = _upper_entries(upper, [] if opaque else below, crel, exclude)
        same = (lower_st is not None and stat.S_ISDIR(lower_st.st_mode)
                and lower_st.st_mode == st.st_mode and lower_st.st_uid == st.st_uid
                and lower_st.st_gid == st.st_gid)
        if opaque or children or not same:
            out.append(("opaque-dir" if opaque else "dir", crel, path, st))
            out.extend(children)
    return out


def _upper_and_lowers(upper: Path, lowers_bottom_first: list[Path]) -> tuple[str, list[str]]:
    return str(upper), [str(p) for p in reversed(lowers_bottom_first)]


def diff_tar(upper: Path, lowers_bottom_first: list[Path], out: BinaryIO,
             exclude: Collection[str] = ()) -> None:
    """Write the changes held in the overlay upper dir ``upper`` as a layer tar to ``out``.

    New and changed files keep mode, owner, mtime (whole seconds), xattrs; files hardlinked
    within the layer become hardlink entries; whiteouts become ``.wh.<name>`` and opaque dirs
    ``<dir>/.wh..wh..opq``. ``exclude``: relative paths to leave out (e.g.
    :data:`CONTAINER_INIT_PATHS`). Raises OSError if the upper dir cannot be read.
    """
    up, lowers = _upper_and_lowers(upper, lowers_bottom_first)
    w = TarWriter(out)
    seen: dict[tuple[int, int], str] = {}
    for kind, rel, path, st in _upper_entries(up, lowers, "", exclude):
        if kind == "whiteout":
            parent, _, base = rel.rpartition("/")
            ti = tarfile.TarInfo((parent + "/" if parent else "") + WHITEOUT_PREFIX + base)
            ti.mode, ti.uid, ti.gid, ti.mtime = 0o600, st.st_uid, st.st_gid, int(st.st_mtime)
            ti.uname = ti.gname = ""
            w.add(ti)
            continue
        ti = tarinfo_for(rel, path, st)
        if ti is None:
            continue
        _write_entry(w, ti, path, st, seen)
        if kind == "opaque-dir":
            marker = tarfile.TarInfo(f"{rel}/{WHITEOUT_OPAQUE}")
            marker.mode, marker.uid, marker.gid = ti.mode, st.st_uid, st.st_gid
            marker.mtime = int(st.st_mtime)
            marker.uname = marker.gname = ""
            w.add(marker)
    w.close()


def _write_entry(w: TarWriter, ti: tarfile.TarInfo, path: str, st: os.stat_result,
                 seen: dict[tuple[int, int], str]) -> None:
    if ti.type == tarfile.REGTYPE and st.st_nlink > 1:
        key = (st.st_dev, st.st_ino)
        if key in seen:
            ti.type, ti.linkname, ti.size = tarfile.LNKTYPE, seen[key], 0
            w.add(ti)
            return
        seen[key] = ti.name
    if ti.type == tarfile.REGTYPE and ti.size:
        with open(path, "rb") as f:
            w.add(ti, f)
    else:
        w.add(ti)


def changes(upper: Path, lowers_bottom_first: list[Path],
            exclude: Collection[str] = CONTAINER_INIT_PATHS) -> list[dict]:
    """``docker diff``: ``[{"Path": "/etc", "Kind": 0}, ...]`` (0 modified, 1 added, 2 deleted).

    A path is added if nothing below has it, modified if something does; a whited-out path is
    deleted; directories holding a change are listed as modified, as Docker does.
    """
    up, lowers = _upper_and_lowers(upper, lowers_bottom_first)
    out: list[dict] = []
    for kind, rel, _path, _st in _upper_entries(up, lowers, "", exclude):
        if kind == "whiteout":
            out.append({"Path": "/" + rel, "Kind": DELETED})
            continue
        out.append({"Path": "/" + rel, "Kind": MODIFIED if _exists_below(lowers, rel) else ADDED})
    return out


def _exists_below(lowers: list[str], rel: str) -> bool:
    dirs = lowers
    parts = rel.split("/")
    for i, name in enumerate(parts):
        st, _, below = _lookup(dirs, name)
        if st is None:
            return False
        if i == len(parts) - 1:
            return True
        dirs = below
    return False


# -- merged view -----------------------------------------------------------------------------
def merged_entries(layers_top_first: list[Path]) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, real path, stat) of every path in the union of the layer dirs, sorted,
    parents first: upper layers win, whiteouts hide, opaque dirs cut what lies below."""
    def walk(dirs: list[str], rel: str) -> Iterator[tuple[str, str, os.stat_result]]:
        names: set[str] = set()
        for d in dirs:
            names.update(_listdir(d))
        for name in sorted(names):
            st, where, below = _lookup(dirs, name)
            if st is None or where is None:
                continue
            crel = f"{rel}/{name}" if rel else name
            yield crel, where, st
            if stat.S_ISDIR(st.st_mode):
                yield from walk(below, crel)

    roots = []
    for d in layers_top_first:
        roots.append(str(d))
        if is_opaque(d):
            break
    yield from walk(roots, "")


def merged_tar(layers_top_first: list[Path], out: BinaryIO,
               extra_files: dict[str, bytes] | None = None) -> None:
    """Write the union of ``layers_top_first`` as one tar (``docker export``).

    ``extra_files``: root-level files to add when the layers lack them (e.g. ``.dockerenv``),
    written with mode 0755 like Docker's init layer. Raises OSError on read errors.
    """
    w = TarWriter(out)
    seen: dict[tuple[int, int], str] = {}
    pending = dict(sorted((extra_files or {}).items()))
    for rel, path, st in merged_entries(layers_top_first):
        if "/" not in rel:
            for name in [n for n in pending if n < rel]:
                w.add_bytes(name, pending.pop(name), mode=0o755)
            pending.pop(rel, None)
        ti = tarinfo_for(rel, path, st)
        if ti is not None:
            _write_entry(w, ti, path, st, seen)
    for name, data in pending.items():
        w.add_bytes(name, data, mode=0o755)
    w.close()
