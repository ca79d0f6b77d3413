"""Content-addressable blob store: ``content/blobs/sha256/<hex>``.

Blobs are written through :meth:`ContentStore.ingest`, which hashes while it writes to a temp
file under ``content/ingest/`` and commits (fsync, rename, fsync dir) only when size and digest
match. A blob file that exists is therefore always complete; a crash leaves at most a temp file,
which :meth:`ContentStore.recover` removes.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

from berth.errors import InvalidArgument, NotFound

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")
_CHUNK = 1 << 20


def validate_digest(digest: str) -> str:
    """Return ``digest`` if it is a well-formed ``sha256:<64 hex>``; raise InvalidArgument otherwise."""
    if not isinstance(digest, str) or not _DIGEST_RE.match(digest):
        raise InvalidArgument(f"invalid digest: {digest!r}")
    return digest


def fsync_dir(path: Path) -> None:
    """fsync a directory so a rename inside it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix="-" + path.name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


class ContentStoreProtocol(Protocol):
    """What the rest of Berth needs from a blob store."""

    def ingest(self, stream: BinaryIO, expected_digest: str | None = None,
               expected_size: int | None = None) -> tuple[str, int]: ...
    def open(self, digest: str) -> BinaryIO: ...
    def path(self, digest: str) -> Path: ...
    def exists(self, digest: str) -> bool: ...
    def delete(self, digest: str) -> None: ...
    def walk(self) -> Iterator[tuple[str, int]]: ...


class BlobWriter:
    """A verified, transactional blob write: ``write()`` chunks, then ``commit()`` or ``abort()``.

    Lifecycle: created by :meth:`ContentStore.writer`; ``commit`` checks size and digest and
    renames the temp file into place (raises InvalidArgument on mismatch, after removing the
    temp file); ``abort`` (or leaving the ``with`` block with an exception) removes it.
    """

    def __init__(self, store: ContentStore, expected_digest: str | None, expected_size: int | None):
        self._store = store
        self._expected = validate_digest(expected_digest) if expected_digest else None
        self._expected_size = expected_size
        store._ingest_dir.mkdir(parents=True, exist_ok=True)
        fd, self._tmp = tempfile.mkstemp(dir=store._ingest_dir, prefix="blob-")
        self._f = os.fdopen(fd, "wb")
        self._h = hashlib.sha256()
        self.size = 0
        self._done = False

    def write(self, data: bytes) -> int:
        self._h.update(data)
        self._f.write(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        """Make what was written so far visible to readers of the temp file (see :meth:`reopen`)."""
        self._f.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._h.hexdigest()

    def reopen(self) -> BinaryIO:
        """Read back what was written so far (before commit), e.g. to unpack it."""
        self._f.flush()
        return open(self._tmp, "rb")

    def commit(self) -> tuple[str, int]:
        """Verify and move into place; return ``(digest, size)``."""
        digest = self.digest
        try:
            if self._expected_size is not None and self.size != self._expected_size:
                raise InvalidArgument(
                    f"size mismatch: expected {self._expected_size} bytes, got {self.size}")
            if self._expected is not None and digest != self._expected:
                raise InvalidArgument(f"digest mismatch: expected {self._expected}, got {digest}")
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()
            dest = self._store.path(digest)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self._tmp, dest)
            fsync_dir(dest.parent)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return digest, self.size

    def abort(self) -> None:
        if self._done:
            return
        self._done = True
        if not self._f.closed:
            self._f.close()
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None or not self._done:
            self.abort()


class ContentStore:
    """Blobs on disk under ``<root>/content``; see the module docstring for the guarantees."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root) / "content"
        self._blobs = self.root / "blobs" / "sha256"
        self._ingest_dir = self.root / "ingest"
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._ingest_dir.mkdir(parents=True, exist_ok=True)

    def writer(self, expected_digest: str | None = None, expected_size: int | None = None) -> BlobWriter:
        """Start a verified write; the caller must ``commit()`` or ``abort()`` it."""
        return BlobWriter(self, expected_digest, expected_size)

    def ingest(self, stream: BinaryIO, expected_digest: str | None = None,
               expected_size: int | None = None) -> tuple[str, int]:
        """Copy ``stream`` into the store; return ``(digest, size)``.

        Raises InvalidArgument if the content does not match ``expected_digest`` / ``expected_size``
        (nothing is stored then). Ingesting an existing blob rewrites it harmlessly.
        """
        with self.writer(expected_digest, expected_size) as w:
            while True:
                chunk = stream.read(_CHUNK)
                if not chunk:
                    break
                w.write(chunk)
            return w.commit()

    def ingest_bytes(self, data: bytes, expected_digest: str | None = None) -> tuple[str, int]:
        """Store ``data``; return ``(digest, size)``. Raises InvalidArgument on a digest mismatch."""
        with self.writer(expected_digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists). Raises InvalidArgument."""
        return self._blobs / validate_digest(digest).split(":", 1)[1]

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def open(self, digest: str) -> BinaryIO:
        """Open the blob for reading. Raises NotFound if absent."""
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def read_bytes(self, digest: str) -> bytes:
        """The blob's bytes. Raises NotFound if absent."""
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def delete(self, digest: str) -> None:
        """Remove the blob. Raises NotFound if absent."""
        try:
            os.unlink(self.path(digest))
        except FileNotFoundError:
            raise NotFound(f"content {digest}: not found") from None

    def walk(self) -> Iterator[tuple[str, int]]:
        """Yield ``(digest, size)`` for every committed blob."""
        for entry in os.scandir(self._blobs):
            if entry.is_file() and re.fullmatch(r"[a-f0-9]{64}", entry.name):
                yield "sha256:" + entry.name, entry.stat().st_size

    def recover(self) -> list[str]:
        """Remove unfinished ingests (start-up). Returns the removed paths."""
        removed = []
        for entry in os.scandir(self._ingest_dir):
            os.unlink(entry.path)
            removed.append(entry.path)
        for entry in os.scandir(self._blobs):
            if not re.fullmatch(r"[a-f0-9]{64}", entry.name):
                os.unlink(entry.path)
                removed.append(entry.path)
        return removed
