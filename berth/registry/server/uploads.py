"""Blob uploads: ``repositories/<name>/_uploads/<uuid>/data`` hashed while written.

Lifecycle: :meth:`Uploads.start` creates a session; :meth:`Upload.append` adds chunks (PATCH,
or the body of a monolithic POST / final PUT); :meth:`Uploads.commit` verifies the digest and
renames ``data`` into ``blobs/`` (atomic, so two uploads of one digest both succeed and leave one
file), then links the blob into the repository; :meth:`Uploads.cancel` removes the session. A
failed verification cancels the session too, like the reference registry.

The running sha256 of each session is kept in memory; after a restart (or if the file and the
hash disagree) it is recomputed from ``data``, so sessions survive a restart. Sessions older
than a week are purged at start-up.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid as uuidlib
from dataclasses import dataclass, field
from pathlib import Path

from berth.registry.server.errors import RegistryError
from berth.registry.server.storage import Storage, is_sha256

_CHUNK = 1 << 20
STALE_AFTER = 7 * 24 * 3600


@dataclass
class Upload:
    """One upload session; not safe for concurrent appends (the app serialises them)."""

    name: str
    uuid: str
    dir: Path
    _hash: object = field(default=None, repr=False)
    _hashed: int = 0

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def size(self) -> int:
        try:
            return self.data.stat().st_size
        except FileNotFoundError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": self.uuid}) from None

    def _sync_hash(self) -> None:
        size = self.size
        if self._hash is not None and self._hashed == size:
            return
        h = hashlib.sha256()
        with open(self.data, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        self._hash, self._hashed = h, size

    def append(self, data: bytes) -> None:
        """Add ``data`` at the end (hashing it). Raises BLOB_UPLOAD_UNKNOWN if cancelled."""
        if not data:
            return
        self._sync_hash()
        with open(self.data, "ab") as f:
            f.write(data)
        self._hash.update(data)  # type: ignore[attr-defined]
        self._hashed += len(data)

    def digest(self) -> str:
        self._sync_hash()
        return "sha256:" + self._hash.hexdigest()  # type: ignore[attr-defined]


class Uploads:
    """Upload sessions of every repository in ``storage``."""

    def __init__(self, storage: Storage):
        self.storage = storage
        self._live: dict[str, Upload] = {}

    def _dir(self, name: str, uuid: str) -> Path:
        return self.storage.repo_dir(name) / "_uploads" / uuid

    def start(self, name: str) -> Upload:
        uuid = str(uuidlib.uuid4())
        d = self._dir(name, uuid)
        d.mkdir(parents=True)
        (d / "data").touch()
        (d / "startedat").write_text(str(time.time()))
        up = Upload(name, uuid, d)
        self._live[uuid] = up
        return up

    def get(self, name: str, uuid: str) -> Upload:
        """The session ``uuid`` of ``name``. Raises BLOB_UPLOAD_UNKNOWN."""
        try:
            uuidlib.UUID(uuid)
        except ValueError:
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": uuid}) from None
        up = self._live.get(uuid)
        if up is not None and up.name == name and up.data.is_file():
            return up
        d = self._dir(name, uuid)
        if not (d / "data").is_file():
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": uuid})
        up = Upload(name, uuid, d)
        self._live[uuid] = up
        return up

    def cancel(self, up: Upload) -> None:
        self._live.pop(up.uuid, None)
        if not up.dir.is_dir():
            raise RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": up.uuid})
        shutil.rmtree(up.dir, ignore_errors=True)

    def commit(self, up: Upload, expected: str) -> str:
        """Verify ``up`` against ``expected`` and move it into blobs/; return the digest.

        Raises DIGEST_INVALID (and cancels the session) on a mismatch or an unsupported algorithm.
        """
        actual = up.digest()
        if not is_sha256(expected) or actual != expected:
            self.cancel(up)
            detail = {"expected": expected, "actual": actual}
            if not is_sha256(expected):
                raise RegistryError("DIGEST_INVALID", "unsupported digest algorithm", detail)
            raise RegistryError("DIGEST_INVALID", detail=detail)
        with open(up.data, "rb+") as f:
            os.fsync(f.fileno())
        self.storage.put_blob_file(up.data, actual)
        self.storage.link_layer(up.name, actual)
        self._live.pop(up.uuid, None)
        shutil.rmtree(up.dir, ignore_errors=True)
        return actual

    def purge_stale(self, older_than: float = STALE_AFTER) -> int:
        """Remove sessions started more than ``older_than`` seconds ago; return how many."""
        now, n = time.time(), 0
        for d in self.storage.repos_dir.rglob("_uploads/*"):
            try:
                started = float((d / "startedat").read_text())
            except (FileNotFoundError, ValueError, NotADirectoryError):
                started = d.stat().st_mtime
            if now - started > older_than:
                shutil.rmtree(d, ignore_errors=True)
                n += 1
        return n
