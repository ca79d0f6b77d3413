"""Manifest media types, validation of pushed manifests and Accept negotiation.

Supported: Docker schema2 manifest and manifest list, OCI image manifest and index. Schema1 is
refused (MANIFEST_INVALID), as in distribution v3.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.registry.server.errors import RegistryError
from berth.registry.server.storage import check_digest

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
ALL_TYPES = IMAGE_TYPES + INDEX_TYPES
FOREIGN_LAYERS = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)
MAX_MANIFEST_SIZE = 4 << 20
# Content-Types that say nothing about the manifest: then its mediaType field (or shape) decides
_GENERIC_TYPES = ("application/json", "application/octet-stream", "text/plain")


@dataclass
class Manifest:
    """What the registry needs to know of a manifest: its type and what it references."""

    media_type: str
    blobs: list[str] = field(default_factory=list)       # config + layers (image manifests)
    children: list[dict] = field(default_factory=list)   # descriptors (indexes)


def _invalid(detail: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", detail=detail)


def _descriptor(d: object, where: str) -> dict:
    if not isinstance(d, dict):
        raise _invalid(f"{where}: descriptor must be an object")
    digest = d.get("digest")
    if not isinstance(digest, str):
        raise _invalid(f"{where}: descriptor has no digest")
    try:
        check_digest(digest)
    except RegistryError:
        raise _invalid(f"{where}: invalid digest {digest!r}") from None
    size = d.get("size")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise _invalid(f"{where}: invalid size")
    if "mediaType" in d and not isinstance(d["mediaType"], str):
        raise _invalid(f"{where}: invalid mediaType")
    return d


def detect_media_type(doc: dict) -> str:
    """The media type of a stored manifest: its ``mediaType`` or, for OCI, its shape."""
    mt = doc.get("mediaType")
    if isinstance(mt, str) and mt:
        return mt
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def parse(data: bytes, content_type: str | None) -> Manifest:
    """Validate ``data`` as pushed with ``content_type``. Raises MANIFEST_INVALID."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise _invalid(f"manifest too big (more than {MAX_MANIFEST_SIZE} bytes)")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _invalid(f"invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise _invalid("manifest must be a JSON object")
    if doc.get("schemaVersion") != 2:
        raise _invalid("unsupported schemaVersion (want 2)")
    ct = (content_type or "").split(";", 1)[0].strip()
    field_mt = doc.get("mediaType")
    if field_mt is not None and not isinstance(field_mt, str):
        raise _invalid("mediaType must be a string")
    if ct in ALL_TYPES:
        mt = ct
        if field_mt and field_mt != ct:
            raise _invalid(f"mediaType in manifest should be '{ct}' not '{field_mt}'")
    elif ct and ct not in _GENERIC_TYPES:
        raise _invalid(f"unsupported manifest media type {ct!r}")
    elif field_mt:
        mt = field_mt
    else:
        mt = detect_media_type(doc)
    if mt not in ALL_TYPES:
        raise _invalid(f"unsupported manifest media type {mt!r}")
    if mt in (DOCKER_MANIFEST, DOCKER_LIST) and field_mt != mt:
        raise _invalid(f"mediaType in manifest should be '{mt}' not '{field_mt or ''}'")
    if mt in IMAGE_TYPES:
        config = _descriptor(doc.get("config"), "config")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        blobs = [config["digest"]]
        for i, layer in enumerate(layers):
            desc = _descriptor(layer, f"layers[{i}]")
            if desc.get("mediaType") in FOREIGN_LAYERS and desc.get("urls"):
                continue  # non-distributable: served from its urls, not by us
            blobs.append(desc["digest"])
        return Manifest(mt, blobs=blobs)
    children = doc.get("manifests")
    if not isinstance(children, list):
        raise _invalid("manifests must be a list")
    return Manifest(mt, children=[_descriptor(c, f"manifests[{i}]") for i, c in enumerate(children)])


def check_references(m: Manifest, blob_exists: Callable[[str], bool],
                     manifest_exists: Callable[[str], bool]) -> None:
    """Raise MANIFEST_BLOB_UNKNOWN (one entry per missing digest) unless all references exist."""
    err: RegistryError | None = None
    missing = [d for d in m.blobs if not blob_exists(d)]
    missing += [c["digest"] for c in m.children if not manifest_exists(c["digest"])]
    for digest in dict.fromkeys(missing):
        e = RegistryError("MANIFEST_BLOB_UNKNOWN", detail={"digest": digest})
        if err is None:
            err = e
        else:
            err.add(e)
    if err is not None:
        raise err


def accepted(accept_headers: list[str]) -> set[str] | None:
    """The media types of the Accept headers; None when anything goes (none given, ``*/*``)."""
    types = set()
    for header in accept_headers:
        for part in header.split(","):
            mt = part.split(";", 1)[0].strip()
            if mt:
                types.add(mt)
    if not types or "*/*" in types:
        return None
    return types


def platform_child(data: bytes) -> str | None:
    """The linux/amd64 child of a manifest list (else the first child), as the reference picks."""
    try:
        doc = json.loads(data)
        children = doc.get("manifests") or []
    except (ValueError, AttributeError):
        return None
    for c in children:
        p = c.get("platform") or {}
        if p.get("os") == "linux" and p.get("architecture") == "amd64":
            return c.get("digest")
    return children[0].get("digest") if children else None
