"""``docker save``: images out of the local store as a docker-archive.

save writes a docker-archive exactly as dockerd 20.10 does: ``<v1 id>/{VERSION,json,layer.tar}``
(uncompressed; a layer whose diff id was already written becomes a symlink to the first copy),
``<config hex>.json``, ``manifest.json`` and ``repositories``, entries sorted as a directory walk.
The v1 ids are Docker's (``v1.CreateID``), so a save from Berth and from Docker name the same
layers alike. The reverse, ``docker load``, is load.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from berth.errors import InvalidArgument, NotFound
from berth.images.archive_common import CHUNK, sha256_digest, spool_dir
from berth.images.config import canonical_json, container_config, parse_time_ns
from berth.images.reference import Reference, parse, parse_any
from berth.layers.archive import decompressed
from berth.layers.diff import TarWriter, diff_tar
from berth.layers.store import chain_ids

EPOCH = "1970-01-01T00:00:00Z"
ZERO_TIME = "0001-01-01T00:00:00Z"
# Go's container.Config fields (the order Docker marshals them in) and its map-typed fields.
_CONFIG_KEYS = ("Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
                "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
                "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
                "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell")
_HEALTH_KEYS = ("Test", "Interval", "Timeout", "StartPeriod", "Retries")


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


def _mtime(created: str | None) -> int:
    return max(parse_time_ns(created) // 1_000_000_000, 0)


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
        v1_id = sha256_digest(canonical_json(dict(sorted(id_input.items()))))
        doc: dict[str, Any] = {"id": v1_id[7:]}
        if parent:
            doc["parent"] = parent[7:]
        doc.update(v1)
        if not top and config.get("os"):
            doc["os"] = config["os"]
        out.append((v1_id[7:], doc))
        parent = v1_id
    return out


def layer_tar(images: Any, cid: str, diff_id: str) -> tuple[BinaryIO, int]:
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
    while chunk := tmp.read(CHUNK):
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
            f, size = layer_tar(images, *payload)
            try:
                ti.mode, ti.size = 0o100644, size
                w.add(ti, f)
            finally:
                f.close()
    w.close()


def save(images: Any, names: list[str], out: BinaryIO) -> None:
    """``docker save``: :func:`plan_save` then :func:`write_save`. Raises NotFound, InvalidArgument."""
    write_save(images, plan_save(images, names), out)
