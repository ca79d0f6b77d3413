"""Unpack a layer tar into a directory the OCI way, without ever writing outside it.

Every member path is resolved component by component from an open directory fd with
``O_NOFOLLOW``: a ``..`` that climbs out, an absolute name, a write through a symlink or a
hardlink to outside the layer raises :class:`InvalidArgument` before anything is touched for that
member. Whiteouts become 0/0 character devices and opaque markers the
``trusted.overlay.opaque=y`` xattr, which is what overlayfs expects in a lower dir.
"""

from __future__ import annotations

import bz2
import errno
import gzip
import hashlib
import io
import lzma
import os
import posixpath
import shutil
import stat
import tarfile
import zlib

try:  # ISA-L's gzip is ~5x faster than zlib's at decompressing layers
    from isal import igzip as _gzip
    from isal.isal_zlib import error as _IsalError
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _gzip = gzip  # type: ignore[assignment]
    _IsalError = zlib.error  # type: ignore[assignment,misc]
from dataclasses import dataclass
from typing import BinaryIO

from berth.errors import InvalidArgument

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _PrefixedReader(io.RawIOBase):
    """A reader that returns ``prefix`` first, then the rest of ``src``."""

    def __init__(self, prefix: bytes, src: BinaryIO):
        self._prefix = prefix
        self._src = src

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(b), len(self._prefix))
            b[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._src.read(len(b))
        n = len(data)
        b[:n] = data
        return n


def decompressed(src: BinaryIO) -> BinaryIO:
    """Wrap ``src`` so it reads uncompressed bytes; gzip, bzip2, xz or plain, detected by magic.

    Raises InvalidArgument for zstd (not supported yet).
    """
    head = b""
    while len(head) < 6:
        chunk = src.read(6 - len(head))
        if not chunk:
            break
        head += chunk
    raw = io.BufferedReader(_PrefixedReader(head, src), buffer_size=_CHUNK)
    if head.startswith(b"\x1f\x8b"):
        return _gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")  # type: ignore[return-value]
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        raise InvalidArgument("unsupported compression format zstd")
    return raw  # type: ignore[return-value]


class HashingReader(io.RawIOBase):
    """Counts and sha256-hashes what is read through it (the diff id of an uncompressed tar)."""

    def __init__(self, src: BinaryIO):
        self._src = src
        self._h = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:  # type: ignore[override]
        data = self._src.read(n if n is not None and n >= 0 else _CHUNK)
        self._h.update(data)
        self.size += len(data)
        return data

    def readinto(self, b) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()


@dataclass
class UnpackResult:
    diff_id: str
    size: int  # bytes of regular file content (hardlinks counted once)
    tar_size: int


def _clean(name: str, what: str) -> list[str]:
    """Split a member name into components, refusing absolute names and ``..`` breakouts."""
    if name.startswith("/"):
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} is an absolute path")
    norm = posixpath.normpath(name)
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if parts and parts[0] == "..":
        raise InvalidArgument(f"invalid layer tar: {what} {name!r} points outside the layer")
    return parts


def _read_umask() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


_UMASK = _read_umask()


class _Unpacker:
    """Applies tar members under one directory, never following a symlink out of it.

    Directory fds are cached by path (tar members come grouped by directory), so most members
    cost one ``openat`` of their own; any member that removes or replaces a path drops the
    cached fds at and below it, so a later member can never write through a stale one."""

    _CACHE = 256

    def __init__(self, dest: str):
        self.root_fd = os.open(dest, _DIR_FLAGS)
        self.size = 0
        self._dirs: dict[tuple[str, ...], int] = {}
        self._setgid: dict[tuple[str, ...], bool] = {}  # a setgid dir gives new files its group
        self._parent_setgid = False

    def close(self) -> None:
        for fd in self._dirs.values():
            os.close(fd)
        self._dirs.clear()
        os.close(self.root_fd)

    def _forget(self, parts: tuple[str, ...]) -> None:
        """Drop cached directory fds at or below ``parts`` (it is being removed or replaced)."""
        n = len(parts)
        for key in [k for k in self._dirs if k[:n] == parts]:
            os.close(self._dirs.pop(key))
        for key in [k for k in self._setgid if k[:n] == parts]:
            del self._setgid[key]

    def open_dir(self, parts: list[str], create: bool, member: str) -> int:
        """Open the directory ``parts`` inside the layer without following any symlink.
        Returns a new fd the caller closes."""
        key = tuple(parts)
        depth = len(key)
        while depth and key[:depth] not in self._dirs:
            depth -= 1
        fd = self._dirs[key[:depth]] if depth else self.root_fd
        for i in range(depth, len(key)):
            p = key[i]
            try:
                nfd = os.open(p, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(p, 0o755, dir_fd=fd)
                nfd = os.open(p, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise InvalidArgument(
                        f"invalid layer tar: {member!r} would be written through a symlink "
                        f"or non-directory {p!r}") from None
                raise
            if len(self._dirs) >= self._CACHE:
                os.close(self._dirs.pop(next(iter(self._dirs))))
            self._dirs[key[: i + 1]] = nfd
            fd = nfd
        return os.dup(fd)

    def _remove(self, dfd: int, name: str, keep_dir: bool, path: tuple[str, ...]) -> None:
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return
            self._forget(path)
            shutil.rmtree(name, dir_fd=dfd)
        else:
            self._forget(path)
            os.unlink(name, dir_fd=dfd)

    def apply(self, tf: tarfile.TarFile, ti: tarfile.TarInfo) -> None:
        parts = _clean(ti.name, "path")
        if not parts:  # the root itself: its metadata is applied by finish_dirs
            return
        base = parts[-1]
        dfd = self.open_dir(parts[:-1], create=True, member=ti.name)
        try:
            if base == WHITEOUT_OPAQUE:
                os.setxattr(f"/proc/self/fd/{dfd}", OPAQUE_XATTR, b"y")
                return
            if base.startswith(WHITEOUT_META_PREFIX):
                return  # aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not needed
            if base.startswith(WHITEOUT_PREFIX):
                target = base[len(WHITEOUT_PREFIX):]
                if target in ("", ".", ".."):
                    raise InvalidArgument(f"invalid layer tar: bad whiteout {ti.name!r}")
                self._remove(dfd, target, False, (*parts[:-1], target))
                os.mknod(target, 0o600 | stat.S_IFCHR, os.makedev(0, 0), dir_fd=dfd)
                os.chown(target, ti.uid, ti.gid, dir_fd=dfd, follow_symlinks=False)
                return
            parent = tuple(parts[:-1])
            setgid = self._setgid.get(parent)
            if setgid is None:
                setgid = self._setgid[parent] = bool(os.fstat(dfd).st_mode & stat.S_ISGID)
            self._parent_setgid = setgid
            self._create(tf, ti, dfd, base, tuple(parts))
            if ti.isdir():
                self._setgid.pop(tuple(parts), None)  # its mode was just set
        finally:
            os.close(dfd)

    def _create(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, dfd: int, base: str,
                path: tuple[str, ...]) -> None:
        """Create the member; an existing entry is replaced only when creation finds it there
        (members of a fresh layer rarely collide, so no stat comes first)."""
        for attempt in (0, 1):
            try:
                self._create_once(tf, ti, dfd, base)
                return
            except FileExistsError:
                if attempt:
                    raise
                self._remove(dfd, base, keep_dir=False, path=path)

    def _create_once(self, tf: tarfile.TarFile, ti: tarfile.TarInfo, dfd: int, base: str) -> None:
        if ti.isdir():
            try:
                os.mkdir(base, 0o700, dir_fd=dfd)
            except FileExistsError:
                pass
            try:
                fd = os.open(base, _DIR_FLAGS, dir_fd=dfd)
            except OSError as e:
                if e.errno in (errno.ENOTDIR, errno.ELOOP):  # a non-directory is in the way
                    raise FileExistsError(e.errno, e.strerror) from None
                raise
            try:
                self._meta_fd(fd, ti)
            finally:
                os.close(fd)
            return
        if ti.issym():
            os.symlink(ti.linkname, base, dir_fd=dfd)
            self.size += len(os.fsencode(ti.linkname))  # Docker counts a symlink's lstat size
            os.chown(base, ti.uid, ti.gid, dir_fd=dfd, follow_symlinks=False)
            self._xattrs(f"/proc/self/fd/{dfd}/{base}", ti, follow=False)
            os.utime(base, (ti.mtime, ti.mtime), dir_fd=dfd, follow_symlinks=False)
            return
        if ti.islnk():
            lparts = _clean(ti.linkname, "hardlink target")
            if not lparts:
                raise InvalidArgument(f"invalid layer tar: hardlink {ti.name!r} to the layer root")
            sfd = self.open_dir(lparts[:-1], create=False, member=ti.linkname) if len(lparts) > 1 \
                else os.dup(self.root_fd)
            try:
                try:
                    os.link(lparts[-1], base, src_dir_fd=sfd, dst_dir_fd=dfd, follow_symlinks=False)
                except FileNotFoundError:
                    raise InvalidArgument(
                        f"invalid layer tar: hardlink {ti.name!r} to missing {ti.linkname!r}") from None
            finally:
                os.close(sfd)
            return
        if ti.isreg():
            mode = ti.mode & 0o7777
            fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         mode & 0o777, dir_fd=dfd)
            try:
                if ti.issparse():
                    src = tf.extractfile(ti)
                    assert src is not None
                    while chunk := src.read(_CHUNK):
                        _write_all(fd, chunk)
                else:  # straight from the stream: tarfile's per-member file object is costly
                    remaining = ti.size
                    while remaining:
                        chunk = tf.fileobj.read(min(_CHUNK, remaining))
                        if not chunk:
                            raise EOFError(f"unexpected end of data in {ti.name!r}")
                        _write_all(fd, chunk)
                        remaining -= len(chunk)
                self.size += ti.size
                # A new file is root's, with the mode given less the umask: only what differs
                # needs a syscall (most members of a layer need neither chown nor chmod).
                if ti.uid or ti.gid or self._parent_setgid:
                    os.fchown(fd, ti.uid, ti.gid)
                    os.fchmod(fd, mode)  # after chown, which clears setuid/setgid
                elif mode != mode & 0o777 & ~_UMASK:
                    os.fchmod(fd, mode)
                if ti.pax_headers:
                    self._xattrs(fd, ti, follow=True)
                os.utime(fd, (ti.mtime, ti.mtime))
            finally:
                os.close(fd)
            return
        if ti.ischr() or ti.isblk() or ti.isfifo():
            kind = stat.S_IFCHR if ti.ischr() else stat.S_IFBLK if ti.isblk() else stat.S_IFIFO
            os.mknod(base, 0o600 | kind, os.makedev(ti.devmajor, ti.devminor), dir_fd=dfd)
            os.chown(base, ti.uid, ti.gid, dir_fd=dfd, follow_symlinks=False)
            os.chmod(base, ti.mode & 0o7777, dir_fd=dfd)
            os.utime(base, (ti.mtime, ti.mtime), dir_fd=dfd, follow_symlinks=False)
            return
        raise InvalidArgument(f"invalid layer tar: unsupported member type for {ti.name!r}")

    def _meta_fd(self, fd: int, ti: tarfile.TarInfo) -> None:
        os.fchown(fd, ti.uid, ti.gid)
        os.fchmod(fd, ti.mode & 0o7777)  # after chown, which clears setuid/setgid
        self._xattrs(fd, ti, follow=True)

    def _xattrs(self, target: int | str, ti: tarfile.TarInfo, follow: bool) -> None:
        for key, value in ti.pax_headers.items():
            if not key.startswith("SCHILY.xattr."):
                continue
            name = key[len("SCHILY.xattr."):]
            data = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            try:
                os.setxattr(target, name, data, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise

    def finish_dirs(self, dirs: list[tuple[list[str], tarfile.TarInfo]]) -> None:
        """Set directory metadata last (creating children changes a dir's mtime)."""
        for parts, ti in reversed(dirs):
            try:
                fd = self.open_dir(parts, create=False, member=ti.name)
            except (InvalidArgument, FileNotFoundError):
                continue  # replaced or removed by a later member
            try:
                if not parts:
                    os.fchown(fd, ti.uid, ti.gid)
                    os.fchmod(fd, ti.mode & 0o7777)
                os.utime(fd, (ti.mtime, ti.mtime))
            finally:
                os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def unpack_layer(src: BinaryIO, dest: str) -> UnpackResult:
    """Unpack the (possibly compressed) layer tar ``src`` into the existing empty dir ``dest``.

    Returns the diff id (sha256 of the uncompressed tar). Raises InvalidArgument for a stream
    that is not a tar (``archive/tar: invalid tar header``) or a hostile member; ``dest`` is then
    left partially filled and the caller removes it.
    """
    hr = HashingReader(decompressed(src))
    up = _Unpacker(dest)
    dirs: list[tuple[list[str], tarfile.TarInfo]] = []
    try:
        try:
            tf = tarfile.open(fileobj=hr, mode="r|", bufsize=1 << 16)  # type: ignore[call-overload]
            for ti in tf:
                up.apply(tf, ti)
                if ti.isdir():
                    dirs.append((_clean(ti.name, "path"), ti))
        except tarfile.ReadError as e:
            raise InvalidArgument(f"archive/tar: invalid tar header ({e})") from None
        except (EOFError, OSError, lzma.LZMAError, zlib.error, _IsalError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise InvalidArgument(f"invalid layer tar: {e}") from None
        up.finish_dirs(dirs)
        hr.drain()
    finally:
        up.close()
    return UnpackResult(diff_id=hr.digest, size=up.size, tar_size=hr.size)
