"""``docker save`` and ``docker load``: image archives in and out of the local store.

save writes a docker-archive exactly as dockerd 20.10 does: ``<v1 id>/{VERSION,json,layer.tar}``
(uncompressed; a layer whose diff id was already written becomes a symlink to the first copy),
``<config hex>.json``, ``manifest.json`` and ``repositories``, entries sorted as a directory walk.
The v1 ids are Docker's (``v1.CreateID``), so a save from Berth and from Docker name the same
layers alike.

load reads three layouts: the legacy docker-archive (``manifest.json`` + files), Docker 25+
archives (an OCI layout with ``manifest.json`` beside ``index.json``) and plain OCI layouts /
oci-archives (``index.json``, ``blobs/sha256``; compressed layers). It is all or nothing: the
whole archive is checked first (members present, configs well-formed, digests of content-addressed
blobs), then layers are unpacked (verified against their diff ids, hostile paths refused by the
layer store), and only when every layer of every image is in place are images recorded and
tagged. On any failure the layers, blobs and images this load created are removed again and
InvalidArgument (bad archive) or NotFound is raised. The archive is never extracted to disk:
members are read in place from a spooled copy inside the data-root.
"""

from __future__ import annotations

import hashlib
import io
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from berth.errors import InvalidArgument, NotFound
from berth.images.config import canonical_json, container_config, parse_time_ns
from berth.images.reference import Reference, parse, parse_any, parse_docker_ref
from berth.layers.archive import decompressed
from berth.layers.diff import TarWriter, diff_tar
from berth.layers.store import chain_ids

EPOCH = "1970-01-01T00:00:00Z"
ZERO_TIME = "0001-01-01T00:00:00Z"
_CHUNK = 1 << 20
_MAX_JSON = 32 << 20
_BLOB_PATH = re.compile(r"^blobs/sha256/([a-f0-9]{64})$")
_DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
# Go's container.Config fields (the order Docker marshals them in) and its map-typed fields.
_CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
                "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
                "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell")
_HEALTH_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")


def go_config(cfg: dict[str, Any] | None) -> dict[str, Any]:
    """A container config as Go re-marshals it: known fields only, Go order, sorted maps."""
    out = container_config({k: v for k, v in (cfg or {}).items() if k in _CONFIG_KEYS})
    for key in ("ExposedPorts", "Volumes", "Labels"):
        if isinstance(out.get(key), dict):
            out[key] = dict(sorted(out[key].items()))
    hc = out.get("Healthcheck")
    if isinstance(hc, dict):
        out["Healthcheck"] = {k: hc[k] for k in _HEALTH_KEYS if hc.get(k) not in (None, 0, [])}
    return out


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _mtime(created: str | None) -> int:
    return max(parse_time_ns(created) // 1_000_000_000, 0)


# -- save --------------------------------------------------------------------------------------
@dataclass
class SaveImage:
    """One image to save and the tags to save it under."""

    id: str
    config_bytes: bytes
    tags: list[Reference] = field(default_factory=list)


def plan_save(images: Any, names: list[str]) -> list[SaveImage]:
    """Resolve ``names`` as ``docker save`` does: ``name:tag`` that tag, a bare name every tag of
    the repository, an id or digest the image untagged. Raises NotFound, InvalidArgument
    (nothing named, or an image without layers)."""
    if not names:
        raise InvalidArgument("no images specified")
    plan: dict[str, SaveImage] = {}

    def add(image_id: str, ref: Reference | None) -> None:
        item = plan.get(image_id)
        if item is None:
            item = plan[image_id] = SaveImage(image_id, images.content.read_bytes(
                images.store.meta(image_id)["config_digest"]))
        if ref is not None and ref not in item.tags:
            item.tags.append(ref)

    refs = images.store.refs()
    for name in names:
        try:
            parsed = parse_any(name)
        except InvalidArgument:
            parsed = None
        if isinstance(parsed, Reference) and parsed.digest is None:
            if parsed.tag is not None:
                image_id = refs.get(str(parsed))
                if image_id is None or not images.store.exists(image_id):
                    raise NotFound(f"No such image: {parsed.familiar_string()}")
                add(image_id, parsed)
                continue
            tagged = sorted((r, i) for r, i in refs.items()
                            if parse(r).name == parsed.name and parse(r).tag is not None)
            if tagged:
                for r, i in tagged:
                    add(i, parse(r))
                continue
        add(images.resolve_id(name), None)
    for item in plan.values():
        if not (json.loads(item.config_bytes).get("rootfs") or {}).get("diff_ids"):
            raise InvalidArgument("empty export - not implemented")
    return list(plan.values())


def _v1_image(config: dict[str, Any]) -> dict[str, Any]:
    """The image's V1Image fields in Go's order (without id/parent)."""
    out: dict[str, Any] = {}
    if config.get("comment"):
        out["comment"] = config["comment"]
    out["created"] = config.get("created") or ZERO_TIME
    if config.get("container"):
        out["container"] = config["container"]
    out["container_config"] = go_config(config.get("container_config"))
    for key in ("docker_version", "author"):
        if config.get(key):
            out[key] = config[key]
    if config.get("config") is not None:
        out["config"] = go_config(config["config"])
    for key in ("architecture", "variant", "os"):
        if config.get(key):
            out[key] = config[key]
    return out


def v1_ids(config: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Docker's v1 id of every layer of an image and the json Docker writes beside it."""
    diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
    out = []
    parent = ""
    cids = chain_ids(diff_ids)
    for i, cid in enumerate(cids):
        top = i == len(cids) - 1
        v1 = _v1_image(config) if top else {"created": EPOCH, "container_config": go_config(None)}
        id_input = dict(v1, layer_id=cid)
        if parent:
            id_input["parent"] = parent
        v1_id = _sha256(canonical_json(dict(sorted(id_input.items()))))
        doc: dict[str, Any] = {"id": v1_id[7:]}
        if parent:
            doc["parent"] = parent[7:]
        doc.update(v1)
        if not top and config.get("os"):
            doc["os"] = config["os"]
        out.append((v1_id[7:], doc))
        parent = v1_id
    return out


def _layer_tar(images: Any, cid: str, diff_id: str) -> tuple[BinaryIO, int]:
    """An open uncompressed layer tar and its size: the stored blob, or regenerated from the
    layer dir (only if that reproduces the diff id). Raises NotFound."""
    layer = images.layers.get(cid)
    meta_path = images.layers.root / cid[7:] / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    blob = layer.blob_digest
    if blob and images.content.exists(blob):
        size = images.content.size(blob)
        f = images.content.open(blob)
        if blob == diff_id:
            return f, size
        if meta.get("tar_size"):
            return decompressed(f), int(meta["tar_size"])
        f.close()
    tmp = tempfile.TemporaryFile(dir=spool_dir(images))
    diff_tar(layer.path, [], tmp)
    tmp.seek(0)
    h = hashlib.sha256()
    while chunk := tmp.read(_CHUNK):
        h.update(chunk)
    if "sha256:" + h.hexdigest() != diff_id:
        tmp.close()
        raise NotFound(f"layer {diff_id}: its original tar is not stored and cannot be reproduced")
    size = tmp.tell()
    tmp.seek(0)
    return tmp, size


def write_save(images: Any, plan: list[SaveImage], out: BinaryIO) -> None:
    """Write the docker-archive of ``plan`` (from :func:`plan_save`) to ``out``."""
    # name → (kind, mtime, payload); kind: "dir", "bytes", "layer" (cid, diff id), "symlink"
    entries: dict[str, tuple[str, int, Any]] = {}
    diff_paths: dict[str, str] = {}
    manifest = []
    repos: dict[str, dict[str, str]] = {}
    ids = {item.id for item in plan}
    for item in plan:
        config = json.loads(item.config_bytes)
        created = _mtime(config.get("created"))
        diff_ids = config["rootfs"]["diff_ids"]
        layers = []
        for (v1_id, doc), cid, diff_id in zip(v1_ids(config), chain_ids(diff_ids), diff_ids,
                                              strict=True):
            layers.append(f"{v1_id}/layer.tar")
            if v1_id + "/" in entries:
                continue
            entries[v1_id + "/"] = ("dir", created, None)
            entries[f"{v1_id}/VERSION"] = ("bytes", created, b"1.0")
            entries[f"{v1_id}/json"] = ("bytes", created, canonical_json(doc))
            if diff_id in diff_paths:
                entries[f"{v1_id}/layer.tar"] = ("symlink", created, f"../{diff_paths[diff_id]}")
            else:
                entries[f"{v1_id}/layer.tar"] = ("layer", created, (cid, diff_id))
                diff_paths[diff_id] = f"{v1_id}/layer.tar"
        entries[f"{item.id[7:]}.json"] = ("bytes", created, item.config_bytes)
        tags = [r.familiar_string() for r in item.tags]
        for r in item.tags:
            repos.setdefault(r.familiar_name(), {})[r.tag or "latest"] = layers[-1].split("/")[0]
        entry: dict[str, Any] = {"Config": f"{item.id[7:]}.json", "RepoTags": tags or None,
                                 "Layers": layers}
        parent = images.store.meta(item.id).get("parent")
        if parent and parent in ids:
            entry["Parent"] = parent
        manifest.append(entry)
    entries["manifest.json"] = ("bytes", 0, canonical_json(manifest) + b"\n")
    if repos:
        repos = {k: dict(sorted(v.items())) for k, v in sorted(repos.items())}
        entries["repositories"] = ("bytes", 0, canonical_json(repos) + b"\n")

    w = TarWriter(out)
    for name in sorted(entries, key=lambda n: n.rstrip("/").split("/")):
        kind, mtime, payload = entries[name]
        ti = tarfile.TarInfo(name)
        ti.mtime, ti.uname, ti.gname = mtime, "root", "root"
        if kind == "dir":
            ti.type, ti.mode = tarfile.DIRTYPE, 0o40755  # Go's headers carry the type bits
            w.add(ti)
        elif kind == "bytes":
            ti.mode, ti.size = 0o100644, len(payload)
            w.add(ti, io.BytesIO(payload))
        elif kind == "symlink":
            ti.type, ti.mode, ti.linkname = tarfile.SYMTYPE, 0o120777, payload
            w.add(ti)
        else:
            f, size = _layer_tar(images, *payload)
            try:
                ti.mode, ti.size = 0o100644, size
                w.add(ti, f)
            finally:
                f.close()
    w.close()


def save(images: Any, names: list[str], out: BinaryIO) -> None:
    """``docker save``: :func:`plan_save` then :func:`write_save`. Raises NotFound, InvalidArgument."""
    write_save(images, plan_save(images, names), out)


# -- reading archives --------------------------------------------------------------------------
def spool_dir(images: Any) -> Path:
    d = Path(getattr(images, "tmp_dir", None) or Path(images.root) / "tmp")
    d.mkdir(parents=True, exist_ok=True)
    return d


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
            shutil.copyfileobj(decompressed(src), tmp, _CHUNK)
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
    if digest is not None and _sha256(data) != digest:
        raise InvalidArgument(f"invalid archive: {member}: digest mismatch: expected {digest}, "
                              f"got {_sha256(data)}")
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
                while chunk := f.read(_CHUNK):
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
            existed = images.store.exists(_sha256(item.config_bytes))
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

