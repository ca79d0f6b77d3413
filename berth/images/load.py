"""``docker load``: image archives into the local store.

load reads three layouts: the legacy docker-archive (``manifest.json`` + files), Docker 25+
archives (an OCI layout with ``manifest.json`` beside ``index.json``) and plain OCI layouts /
oci-archives (``index.json``, ``blobs/sha256``; compressed layers). It is all or nothing: the
whole archive is checked first (members present, configs well-formed, digests of content-addressed
blobs), then layers are unpacked (verified against their diff ids, hostile paths refused by the
layer store), and only when every layer of every image is in place are images recorded and
tagged. On any failure the layers, blobs and images this load created are removed again and
InvalidArgument (bad archive) or NotFound is raised. The archive is never extracted to disk:
members are read in place from a spooled copy inside the data-root. The reverse, ``docker save``,
is save.py.
"""

from __future__ import annotations

import json
import lzma
import platform
import posixpath
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from berth.errors import InvalidArgument, NotFound
from berth.images.archive_common import CHUNK, sha256_digest, spool_dir
from berth.images.reference import Reference, parse_docker_ref
from berth.layers.archive import decompressed
from berth.layers.store import chain_ids

_MAX_JSON = 32 << 20
_BLOB_PATH = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


# -- reading archives --------------------------------------------------------------------------
def _norm(name: str) -> str | None:
    """A member name as a clean relative path; None for one that climbs out."""
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                return None
            parts.pop()
        else:
            parts.append(p)
    return "/".join(parts)


class _Archive:
    """An uncompressed tar, indexed by clean member name, read in place."""

    def __init__(self, f: BinaryIO):
        try:
            self.tf = tarfile.open(fileobj=f, mode="r:")
            members = self.tf.getmembers()
        except (tarfile.TarError, EOFError) as e:
            raise InvalidArgument(f"invalid archive: {e}") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for ti in members:
            name = _norm(ti.name)
            if name is not None and name:
                self.members[name] = ti

    def has(self, name: str) -> bool:
        return name in self.members

    def resolve(self, name: str) -> tarfile.TarInfo:
        """The regular-file member ``name`` names, following links inside the archive."""
        cur = name
        for _ in range(16):
            ti = self.members.get(cur)
            if ti is None:
                raise InvalidArgument(f"invalid archive: {name} is missing")
            if ti.isreg():
                return ti
            if ti.issym():
                target = ti.linkname if ti.linkname.startswith("/") else \
                    posixpath.join(posixpath.dirname(cur), ti.linkname)
            elif ti.islnk():
                target = ti.linkname
            else:
                raise InvalidArgument(f"invalid archive: {name} is not a file")
            nxt = _norm(target)
            if nxt is None:
                raise InvalidArgument(f"invalid archive: {name} links outside the archive")
            cur = nxt
        raise InvalidArgument(f"invalid archive: too many links resolving {name}")

    def open(self, name: str) -> BinaryIO:
        f = self.tf.extractfile(self.resolve(name))
        assert f is not None
        return f  # type: ignore[return-value]

    def read(self, name: str) -> bytes:
        ti = self.resolve(name)
        if ti.size > _MAX_JSON:
            raise InvalidArgument(f"invalid archive: {name} is too large")
        try:
            with self.open(name) as f:
                return f.read()
        except (tarfile.TarError, EOFError) as e:
            raise InvalidArgument(f"invalid archive: {name}: {e}") from None

    def json(self, name: str, data: bytes | None = None) -> Any:
        try:
            return json.loads(self.read(name) if data is None else data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"invalid archive: {name}: {e}") from None


@contextmanager
def _spooled(images: Any, src: BinaryIO) -> Iterator[BinaryIO]:
    """``src`` as a seekable, uncompressed file: itself if it is one, else a nameless temp file
    in the data-root (gone when closed, or at a crash)."""
    try:
        seekable = src.seekable()
    except (AttributeError, OSError):
        seekable = False
    if seekable:
        pos = src.tell()
        head = src.read(6)
        src.seek(pos)
        if not (head.startswith(b"\x1f\x8b") or head.startswith(b"BZh")
                or head.startswith(b"\xfd7zXZ\x00") or head.startswith(b"\x28\xb5\x2f\xfd")):
            yield src
            return
    with tempfile.TemporaryFile(dir=spool_dir(images)) as tmp:
        try:
            shutil.copyfileobj(decompressed(src), tmp, CHUNK)
        except (EOFError, lzma.LZMAError, zlib.error) as e:
            raise InvalidArgument(f"invalid archive: {e}") from None
        except OSError as e:
            if e.errno is not None:
                raise
            raise InvalidArgument(f"invalid archive: {e}") from None
        tmp.seek(0)
        yield tmp


# -- planning a load ---------------------------------------------------------------------------
@dataclass
class _LayerSrc:
    member: str
    diff_id: str
    digest: str | None = None  # expected blob digest (content-addressed members)
    size: int | None = None


@dataclass
class _LoadImage:
    config_bytes: bytes
    diff_ids: list[str]
    layers: list[_LayerSrc]
    tags: list[Reference]
    parent: str | None = None


def _check_config(config_bytes: bytes, where: str, n_layers: int) -> list[str]:
    try:
        config = json.loads(config_bytes)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid archive: config {where}: {e}") from None
    if not isinstance(config, dict):
        raise InvalidArgument(f"invalid archive: config {where} is not a JSON object")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if not isinstance(diff_ids, list) or not all(isinstance(d, str) and _DIGEST.match(d)
                                                 for d in diff_ids):
        raise InvalidArgument(f"invalid archive: config {where}: bad rootfs.diff_ids")
    if len(diff_ids) != n_layers:
        raise InvalidArgument(f"invalid manifest, layers length mismatch: expected {len(diff_ids)}, "
                              f"got {n_layers}")
    if not diff_ids:
        raise InvalidArgument(f"invalid archive: image {where} has no layers")
    return diff_ids


def _blob_digest(member: str) -> str | None:
    m = _BLOB_PATH.match(member)
    return "sha256:" + m.group(1) if m else None


def _read_verified(ar: _Archive, member: str, digest: str | None, size: int | None = None) -> bytes:
    data = ar.read(member)
    if digest is not None and sha256_digest(data) != digest:
        raise InvalidArgument(f"invalid archive: {member}: digest mismatch: expected {digest}, "
                              f"got {sha256_digest(data)}")
    if size is not None and len(data) != size:
        raise InvalidArgument(f"invalid archive: {member}: size mismatch: expected {size} bytes, "
                              f"got {len(data)}")
    return data


def _tag(value: Any, where: str) -> Reference:
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid tag {value!r} in {where}")
    try:
        ref = parse_docker_ref(value)
    except InvalidArgument as e:
        raise InvalidArgument(f"invalid tag {value!r} in {where}: {e.message}") from None
    if ref.digest is not None or ":" not in value.rsplit("/", 1)[-1]:
        raise InvalidArgument(f"invalid tag {value!r} in {where}")
    return ref


def _plan_docker(ar: _Archive) -> list[_LoadImage]:
    manifest = ar.json("manifest.json")
    if not isinstance(manifest, list):
        raise InvalidArgument("invalid archive: manifest.json is not a list")
    out = []
    for entry in manifest:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers") or [], list):
            raise InvalidArgument("invalid archive: bad entry in manifest.json")
        members = []
        for p in entry.get("Layers") or []:
            name = _norm(p) if isinstance(p, str) else None
            if not name:
                raise InvalidArgument(f"invalid archive: bad layer path {p!r} in manifest.json")
            members.append(name)
        cname = _norm(entry["Config"])
        if not cname:
            raise InvalidArgument(f"invalid archive: bad config path {entry['Config']!r}")
        config_bytes = _read_verified(ar, cname, _blob_digest(cname))
        diff_ids = _check_config(config_bytes, cname, len(members))
        layers = []
        for member, diff_id in zip(members, diff_ids, strict=True):
            ar.resolve(member)  # present and a file
            layers.append(_LayerSrc(member, diff_id, _blob_digest(member)))
        tags = [_tag(t, "manifest.json") for t in entry.get("RepoTags") or []]
        parent = entry.get("Parent") if isinstance(entry.get("Parent"), str) else None
        out.append(_LoadImage(config_bytes, diff_ids, layers, tags,
                              parent if parent and _DIGEST.match(parent) else None))
    if not out:
        raise InvalidArgument("invalid archive: manifest.json lists no images")
    return out


def _host_platform() -> tuple[str, str]:
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386"}.get(machine, machine)
    return "linux", arch


def _desc(d: Any, where: str) -> tuple[str, str, int | None]:
    if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not _DIGEST.match(d["digest"]):
        raise InvalidArgument(f"invalid archive: bad descriptor in {where}")
    size = d.get("size")
    return d["digest"], str(d.get("mediaType") or ""), size if isinstance(size, int) else None


def _blob_member(digest: str) -> str:
    return "blobs/sha256/" + digest[7:]


def _oci_manifests(ar: _Archive, desc: Any, where: str, depth: int = 0) -> list[dict]:
    """The image manifests a descriptor leads to (an index: the entry for this platform)."""
    if depth > 4:
        raise InvalidArgument("invalid archive: indexes nested too deeply")
    digest, media, size = _desc(desc, where)
    doc = ar.json(_blob_member(digest), _read_verified(ar, _blob_member(digest), digest, size))
    if not isinstance(doc, dict):
        raise InvalidArgument(f"invalid archive: {digest} is not a JSON object")
    if media in INDEX_TYPES or (not media and "manifests" in doc):
        want_os, want_arch = _host_platform()
        for d in doc.get("manifests") or []:
            p = (d or {}).get("platform") or {}
            if p.get("os", want_os) == want_os and p.get("architecture", want_arch) == want_arch:
                return _oci_manifests(ar, d, digest, depth + 1)
        raise InvalidArgument(f"invalid archive: no image for {want_os}/{want_arch} in {digest}")
    return [doc]


def _oci_name(annotations: Any) -> Reference | None:
    if not isinstance(annotations, dict):
        return None
    full = annotations.get("io.containerd.image.name")
    name = annotations.get("org.opencontainers.image.ref.name")
    for value in (full, name):
        if isinstance(value, str) and (":" in value or "/" in value):
            try:
                return _tag(value, "index.json")
            except InvalidArgument:
                if value is full:
                    continue
                return None
    return None


def _plan_oci(ar: _Archive) -> list[_LoadImage]:
    index = ar.json("index.json")
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        raise InvalidArgument("invalid archive: index.json has no manifests")
    out: list[_LoadImage] = []
    for desc in index["manifests"]:
        ref = _oci_name((desc or {}).get("annotations") if isinstance(desc, dict) else None)
        for m in _oci_manifests(ar, desc, "index.json"):
            cdigest, _, csize = _desc(m.get("config"), "manifest")
            config_bytes = _read_verified(ar, _blob_member(cdigest), cdigest, csize)
            descs = m.get("layers") or []
            if not isinstance(descs, list):
                raise InvalidArgument("invalid archive: manifest layers is not a list")
            diff_ids = _check_config(config_bytes, cdigest, len(descs))
            layers = []
            for d, diff_id in zip(descs, diff_ids, strict=True):
                digest, media, size = _desc(d, "manifest")
                if "zstd" in media:
                    raise InvalidArgument(f"unsupported layer media type {media}")
                ar.resolve(_blob_member(digest))
                layers.append(_LayerSrc(_blob_member(digest), diff_id, digest, size))
            existing = next((i for i in out if i.config_bytes == config_bytes), None)
            if existing is not None:
                if ref is not None and ref not in existing.tags:
                    existing.tags.append(ref)
                continue
            out.append(_LoadImage(config_bytes, diff_ids, layers, [ref] if ref else []))
    if not out:
        raise InvalidArgument("invalid archive: index.json lists no images")
    return out


# -- load --------------------------------------------------------------------------------------
class _Undo:
    """What a load created, removed again if it fails."""

    def __init__(self, images: Any):
        self.images = images
        self.layers: list[str] = []
        self.blobs: list[str] = []
        self.image_ids: list[str] = []

    def run(self) -> None:
        images = self.images
        with images.store.lock:
            for image_id in self.image_ids:
                try:
                    images.store.delete(image_id)
                except NotFound:
                    pass
            used: set[str] = set()
            for i in images.store.ids():
                d = list((images.store.config(i).get("rootfs") or {}).get("diff_ids") or [])
                used.update(chain_ids(d) if d else [])
            for cid in reversed(self.layers):
                if cid not in used and images.layers.exists(cid):
                    images.layers.delete(cid)
            in_use = {layer.blob_digest for layer in images.layers.walk()}
            for blob in self.blobs:
                if blob not in in_use and images.content.exists(blob):
                    images.content.delete(blob)


def _apply_layer(images: Any, ar: _Archive, src: _LayerSrc, parent: str | None, index: int,
                 undo: _Undo) -> None:
    writer = images.content.writer()
    try:
        try:
            with ar.open(src.member) as f:
                while chunk := f.read(CHUNK):
                    writer.write(chunk)
        except (tarfile.TarError, EOFError) as e:
            raise InvalidArgument(f"invalid archive: {src.member}: {e}") from None
        if src.digest is not None and writer.digest != src.digest:
            raise InvalidArgument(f"invalid archive: {src.member}: digest mismatch: expected "
                                  f"{src.digest}, got {writer.digest}")
        if src.size is not None and writer.size != src.size:
            raise InvalidArgument(f"invalid archive: {src.member}: size mismatch: expected "
                                  f"{src.size} bytes, got {writer.size}")
        blob_existed = images.content.exists(writer.digest)
        try:
            with writer.reopen() as f:
                layer = images.layers.apply_tar(f, parent, expected_diff_id=src.diff_id,
                                                blob_digest=writer.digest)
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid archive: layer {index} ({src.member}): {e.message}") from None
        undo.layers.append(layer.chain_id)
        writer.commit()
        if not blob_existed:
            undo.blobs.append(writer.digest)
    finally:
        writer.abort()


def load(images: Any, src: BinaryIO) -> list[str]:
    """``docker load``: every image of the archive ``src`` (any layout above, maybe compressed).

    Returns, per image, its tags (``busybox:latest``, familiar form) or, if untagged, its id.
    All or nothing; raises InvalidArgument for a bad, truncated, corrupt or hostile archive.
    """
    undo = _Undo(images)
    try:
        with _spooled(images, src) as f:
            ar = _Archive(f)
            if ar.has("manifest.json"):
                plan = _plan_docker(ar)
            elif ar.has("index.json"):
                plan = _plan_oci(ar)
            else:
                raise InvalidArgument("invalid archive: no manifest.json or index.json "
                                      "(legacy v1 archives are not supported)")
            for item in plan:
                cids = chain_ids(item.diff_ids)
                for i, (layer, cid) in enumerate(zip(item.layers, cids, strict=True)):
                    if not images.layers.exists(cid):
                        _apply_layer(images, ar, layer, cids[i - 1] if i else None, i, undo)
        ids = []
        for item in plan:
            existed = images.store.exists(sha256_digest(item.config_bytes))
            parent = item.parent if item.parent and images.store.exists(item.parent) else None
            image_id = images.create_image(item.config_bytes, tags=[], parent=parent)
            if not existed:
                undo.image_ids.append(image_id)
                undo.blobs.append(image_id)
            ids.append(image_id)
    except BaseException:
        undo.run()
        raise
    loaded: list[str] = []
    for item, image_id in zip(plan, ids, strict=True):
        for ref in item.tags:
            images.tag(image_id, str(ref))
            loaded.append(ref.familiar_string())
        if not item.tags:
            loaded.append(image_id)
    return loaded
