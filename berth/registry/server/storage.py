"""The registry's on-disk layout under ``--root``, content-addressed and shared by all repositories.

```
blobs/sha256/<aa>/<hex>                            every blob (layers, configs, manifests), once
repositories/<name>/_layers/sha256/<hex>           link: the blob belongs to <name>
repositories/<name>/_manifests/revisions/sha256/<hex>   link: a manifest of <name>
repositories/<name>/_manifests/tags/<tag>/current  the digest <tag> points at
repositories/<name>/_uploads/<uuid>/{data,startedat}    uploads in progress (see uploads.py)
```
A blob file that exists is complete and verified: it only ever arrives by an atomic rename of a
hashed upload. Link and tag files are written atomically too, so a crash leaves old or new state.
Repository names cannot start with ``_`` so the ``_layers``/``_manifests``/``_uploads`` dirs
never clash with a name component. Methods raise :class:`RegistryError`; all are blocking (call
the heavy ones from a thread).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from berth.content.store import atomic_write, fsync_dir
from berth.errors import InvalidArgument
from berth.images import reference
from berth.registry.server.errors import RegistryError

# distribution's repository name grammar (reference.NameRegexp without a domain), as in
# berth.images.reference: lower-case components separated by "/", at most 255 characters.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
NAME_RE = re.compile(r"^" + _COMPONENT + r"(?:/" + _COMPONENT + r")*$", re.ASCII)
NAME_MAX = 255
_HEX_RE = re.compile(r"^[a-f0-9]{64}$")


def check_name(name: str) -> str:
    """Return ``name`` or raise NAME_INVALID."""
    if len(name) > NAME_MAX or not NAME_RE.match(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    return name


def check_tag(tag: str) -> str:
    """Return ``tag`` or raise TAG_INVALID."""
    if not reference.TAG_RE.match(tag):
        raise RegistryError("TAG_INVALID", detail={"tag": tag})
    return tag


def check_digest(digest: str) -> str:
    """Return a well-formed digest or raise DIGEST_INVALID. Any go-digest algorithm is well
    formed; only sha256 is stored (see :func:`is_sha256`)."""
    try:
        reference.validate_digest(digest)
    except InvalidArgument as e:
        raise RegistryError("DIGEST_INVALID", "invalid digest", detail=str(e)) from None
    return digest


def is_sha256(digest: str) -> bool:
    algo, _, hexpart = digest.partition(":")
    return algo == "sha256" and bool(_HEX_RE.match(hexpart))


def is_digest_ref(ref: str) -> bool:
    """A manifest reference is a digest when it has a colon (tags cannot)."""
    return ":" in ref


class Storage:
    """The registry's blobs, per-repository links, manifests and tags under ``root``."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.repos_dir = self.root / "repositories"
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        self.repos_dir.mkdir(parents=True, exist_ok=True)

    # -- blobs (global) --------------------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where blob ``digest`` (sha256) lives, whether or not it exists."""
        hexpart = digest.split(":", 1)[1]
        return self.blobs_dir / hexpart[:2] / hexpart

    def blob_exists(self, digest: str) -> bool:
        return is_sha256(digest) and self.blob_path(digest).is_file()

    def blob_size(self, digest: str) -> int:
        return self.blob_path(digest).stat().st_size

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def put_blob_file(self, tmp: Path, digest: str) -> None:
        """Move the verified file ``tmp`` into place as ``digest`` (atomic; idempotent)."""
        dest = self.blob_path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)

    def put_blob_bytes(self, data: bytes, digest: str) -> None:
        """Store ``data`` whose sha256 the caller computed as ``digest``."""
        if not self.blob_exists(digest):
            atomic_write(self.blob_path(digest), data)

    def walk_blobs(self) -> Iterator[str]:
        """Every committed blob's digest."""
        for fan in sorted(os.scandir(self.blobs_dir), key=lambda e: e.name):
            if not fan.is_dir():
                continue
            for entry in os.scandir(fan.path):
                if entry.is_file() and _HEX_RE.match(entry.name):
                    yield "sha256:" + entry.name

    def delete_blob(self, digest: str) -> None:
        try:
            os.unlink(self.blob_path(digest))
        except FileNotFoundError:
            pass

    # -- repositories ----------------------------------------------------------------------------
    def repo_dir(self, name: str) -> Path:
        return self.repos_dir / check_name(name)

    def repo_exists(self, name: str) -> bool:
        return self.repo_dir(name).is_dir()

    def _link(self, name: str, kind: str, digest: str) -> Path:
        algo, hexpart = digest.split(":", 1)
        return self.repo_dir(name) / kind / algo / hexpart

    @staticmethod
    def _write_link(path: Path, digest: str) -> None:
        if path.is_file():
            return
        atomic_write(path, digest.encode())

    # layers
    def layer_linked(self, name: str, digest: str) -> bool:
        """True if ``digest`` is a blob of ``name`` (layer link, or a manifest) and exists."""
        if not self.blob_exists(digest):
            return False
        return (self._link(name, "_layers", digest).is_file()
                or self._link(name, "_manifests/revisions", digest).is_file())

    def link_layer(self, name: str, digest: str) -> None:
        self._write_link(self._link(name, "_layers", digest), digest)

    def unlink_layer(self, name: str, digest: str) -> None:
        """Remove ``digest`` from ``name`` (the blob itself stays until gc). Raises BLOB_UNKNOWN."""
        try:
            os.unlink(self._link(name, "_layers", digest))
        except FileNotFoundError:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest}) from None

    def layer_links(self, name: str) -> Iterator[str]:
        d = self.repo_dir(name) / "_layers" / "sha256"
        if d.is_dir():
            for entry in os.scandir(d):
                if _HEX_RE.match(entry.name):
                    yield "sha256:" + entry.name

    # manifests
    def manifest_linked(self, name: str, digest: str) -> bool:
        return (is_sha256(digest) and self._link(name, "_manifests/revisions", digest).is_file()
                and self.blob_exists(digest))

    def resolve(self, name: str, ref: str) -> str:
        """The manifest digest ``ref`` (tag or digest) names in ``name``.

        Raises MANIFEST_UNKNOWN (also for an unknown repository, like the reference),
        TAG_INVALID, DIGEST_INVALID.
        """
        if is_digest_ref(ref):
            digest = check_digest(ref)
        else:
            try:
                digest = (self.repo_dir(name) / "_manifests" / "tags" / check_tag(ref)
                          / "current").read_text().strip()
            except FileNotFoundError:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": ref}) from None
        if not self.manifest_linked(name, digest):
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest} if
                                is_digest_ref(ref) else {"tag": ref})
        return digest

    def get_manifest(self, name: str, ref: str) -> tuple[str, bytes]:
        """``(digest, exact bytes)`` of the manifest ``ref`` names. Raises like :meth:`resolve`."""
        digest = self.resolve(name, ref)
        return digest, self.read_blob(digest)

    def put_manifest(self, name: str, digest: str, data: bytes, tag: str | None) -> None:
        """Store ``data`` (already validated, ``digest`` = its sha256), link it and set ``tag``."""
        self.put_blob_bytes(data, digest)
        self._write_link(self._link(name, "_manifests/revisions", digest), digest)
        if tag is not None:
            atomic_write(self.repo_dir(name) / "_manifests" / "tags" / tag / "current",
                         digest.encode())

    def delete_manifest(self, name: str, digest: str) -> list[str]:
        """Unlink manifest ``digest`` from ``name`` and drop the tags pointing at it; return them.

        Raises MANIFEST_UNKNOWN. The bytes stay in blobs/ until gc.
        """
        if not self.repo_exists(name) or not is_sha256(digest):
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest})
        try:
            os.unlink(self._link(name, "_manifests/revisions", digest))
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest}) from None
        dropped = [t for t, d in self.tag_map(name).items() if d == digest]
        for tag in dropped:
            shutil.rmtree(self.repo_dir(name) / "_manifests" / "tags" / tag, ignore_errors=True)
        return dropped

    def manifest_revisions(self, name: str) -> Iterator[str]:
        d = self.repo_dir(name) / "_manifests" / "revisions" / "sha256"
        if d.is_dir():
            for entry in os.scandir(d):
                if _HEX_RE.match(entry.name):
                    yield "sha256:" + entry.name

    def has_manifests_dir(self, name: str) -> bool:
        return (self.repo_dir(name) / "_manifests").is_dir()

    def tag_map(self, name: str) -> dict[str, str]:
        """``{tag: digest}`` for ``name`` (empty if none)."""
        d = self.repo_dir(name) / "_manifests" / "tags"
        out: dict[str, str] = {}
        if d.is_dir():
            for entry in os.scandir(d):
                try:
                    out[entry.name] = (Path(entry.path) / "current").read_text().strip()
                except (FileNotFoundError, NotADirectoryError):
                    continue
        return out

    def tags(self, name: str) -> list[str]:
        """Sorted tags of ``name``. Raises NAME_UNKNOWN if it has never had a manifest."""
        if not self.repo_exists(name) or not self.has_manifests_dir(name):
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        return sorted(self.tag_map(name))

    def repositories(self) -> list[str]:
        """Sorted names of the repositories that have (had) manifests, as the catalog lists."""
        found: list[str] = []

        def walk(d: Path, prefix: str) -> None:
            try:
                entries = sorted(os.scandir(d), key=lambda e: e.name)
            except FileNotFoundError:
                return
            names = {e.name for e in entries}
            if "_manifests" in names and prefix:
                found.append(prefix)
            for e in entries:
                if e.is_dir(follow_symlinks=False) and not e.name.startswith("_"):
                    walk(Path(e.path), f"{prefix}/{e.name}" if prefix else e.name)

        walk(self.repos_dir, "")
        return sorted(found)
