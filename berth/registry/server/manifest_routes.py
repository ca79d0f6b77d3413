"""Manifest endpoints: ``GET/HEAD/PUT/DELETE /v2/<name>/manifests/<tag|digest>``.

The exact pushed bytes are stored and served back (their sha256 is the ``Docker-Content-Digest``).
PUT validates the manifest and requires everything it references to be in the repository. GET
negotiates like the reference: with an explicit ``Accept`` that lacks the OCI types an OCI
manifest/index is MANIFEST_UNKNOWN, and a Docker manifest list asked for by tag without its type
being accepted is answered with its linux/amd64 image. No ``Accept`` (or ``*/*``) gets the
stored manifest whatever its type.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from berth.registry.server import manifests
from berth.registry.server.errors import RegistryError
from berth.registry.server.storage import check_digest, check_tag, is_digest_ref

if TYPE_CHECKING:
    from berth.registry.server.app import Registry


def _manifest_url(name: str, digest: str) -> str:
    return f"/v2/{name}/manifests/{quote(digest, safe=':')}"


def _negotiate(reg: Registry, name: str, ref: str, digest: str, data: bytes,
               accept: set[str] | None) -> tuple[str, bytes, str]:
    mt = manifests.detect_media_type(json.loads(data))
    if accept is None or mt in accept:
        return digest, data, mt
    if mt == manifests.OCI_MANIFEST:
        raise RegistryError("MANIFEST_UNKNOWN",
                            "OCI manifest found, but accept header does not support OCI manifests")
    if mt == manifests.OCI_INDEX:
        raise RegistryError("MANIFEST_UNKNOWN",
                            "OCI index found, but accept header does not support OCI indexes")
    if mt == manifests.DOCKER_LIST and not is_digest_ref(ref):
        child = manifests.platform_child(data)
        if child and reg.storage.manifest_linked(name, child):
            cdata = reg.storage.read_blob(child)
            return child, cdata, manifests.detect_media_type(json.loads(cdata))
    return digest, data, mt


async def get_manifest(request: web.Request, reg: Registry, name: str, ref: str) -> web.Response:
    """GET/HEAD. Raises MANIFEST_UNKNOWN, TAG_INVALID, DIGEST_INVALID."""
    digest, data = await asyncio.to_thread(reg.storage.get_manifest, name, ref)
    accept = manifests.accepted(request.headers.getall("Accept", []))
    digest, data, mt = _negotiate(reg, name, ref, digest, data, accept)
    headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"', "Content-Type": mt}
    return web.Response(status=200, body=data, headers=headers)


async def _read_body(request: web.Request) -> bytes:
    buf = bytearray()
    async for chunk in request.content.iter_chunked(1 << 16):
        buf += chunk
        if len(buf) > manifests.MAX_MANIFEST_SIZE:
            raise RegistryError("MANIFEST_INVALID", detail="manifest too big")
    return bytes(buf)


async def put_manifest(request: web.Request, reg: Registry, name: str, ref: str) -> web.Response:
    """PUT (201). Raises MANIFEST_INVALID, MANIFEST_BLOB_UNKNOWN, DIGEST_INVALID, TAG_INVALID."""
    tag = None
    if is_digest_ref(ref):
        check_digest(ref)
    else:
        tag = check_tag(ref)
    data = await _read_body(request)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    if tag is None and ref != digest:
        raise RegistryError("DIGEST_INVALID", detail={"expected": ref, "actual": digest})
    m = manifests.parse(data, request.headers.get("Content-Type"))
    storage = reg.storage
    manifests.check_references(m, lambda d: storage.layer_linked(name, d),
                               lambda d: storage.manifest_linked(name, d))
    await asyncio.to_thread(storage.put_manifest, name, digest, data, tag)
    return web.Response(status=201, headers={
        "Location": _manifest_url(name, digest), "Docker-Content-Digest": digest,
        "Content-Length": "0"})


async def delete_manifest(request: web.Request, reg: Registry, name: str, ref: str) -> web.Response:
    """DELETE by digest (202); the tags pointing at it go too.

    By tag: 400 DIGEST_INVALID, which is what the reference registry 2.8 answers.
    Raises MANIFEST_UNKNOWN, UNSUPPORTED (deletes disabled).
    """
    if not reg.delete_enabled:
        raise RegistryError("UNSUPPORTED")
    if not is_digest_ref(ref):
        raise RegistryError("DIGEST_INVALID", detail="manifests are deleted by digest, not by tag")
    check_digest(ref)
    await asyncio.to_thread(reg.storage.delete_manifest, name, ref)
    return web.Response(status=202, headers={"Content-Length": "0"})
