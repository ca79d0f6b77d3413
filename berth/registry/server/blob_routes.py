"""Blob endpoints: ``/v2/<name>/blobs/<digest>`` and ``/v2/<name>/blobs/uploads/<uuid>``.

Pushes: ``POST`` starts a session (202), or finishes at once with ``?digest=`` (monolithic, 201),
or mounts ``?mount=<digest>&from=<repo>`` (201 if the blob is in ``from``, else a new session);
``PATCH`` appends a chunk (``Content-Range`` must start at the current size, else 416);
``PUT ?digest=`` appends an optional last chunk, verifies and commits (201); ``GET`` reports the
progress (204); ``DELETE`` cancels (204). Requests to one session are serialised by a lock.
"""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING
from urllib.parse import quote

from aiohttp import web

from berth.registry.server.errors import RegistryError
from berth.registry.server.storage import check_digest, check_name
from berth.registry.server.uploads import Upload

if TYPE_CHECKING:
    from berth.registry.server.app import Registry

_CHUNK = 1 << 20
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CONTENT_RANGE_RE = re.compile(r"^(?:bytes )?(\d+)-(\d+)(?:/\d+|/\*)?$")


def _upload_url(name: str, uuid: str) -> str:
    return f"/v2/{name}/blobs/uploads/{uuid}"


def _blob_url(name: str, digest: str) -> str:
    return f"/v2/{name}/blobs/{quote(digest, safe=':')}"


def _progress_headers(up: Upload, size: int) -> dict[str, str]:
    return {"Location": _upload_url(up.name, up.uuid), "Docker-Upload-UUID": up.uuid,
            "Range": f"0-{max(size - 1, 0)}", "Content-Length": "0"}


def _created(name: str, digest: str) -> web.Response:
    return web.Response(status=201, headers={
        "Location": _blob_url(name, digest), "Docker-Content-Digest": digest,
        "Content-Length": "0"})


# -- reading blobs ---------------------------------------------------------------------------------
def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """``(start, end)`` inclusive for a single ``bytes=`` range; None when unsatisfiable."""
    m = _RANGE_RE.match(header.strip())
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last n bytes
        n = int(m.group(2))
        return (max(size - n, 0), size - 1) if n > 0 and size > 0 else None
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    if start >= size or end < start:
        return None
    return start, min(end, size - 1)


async def get_blob(request: web.Request, reg: Registry, name: str, digest: str) -> web.StreamResponse:
    """GET/HEAD a blob of ``name``; honours a single ``Range``. Raises BLOB_UNKNOWN, DIGEST_INVALID."""
    check_digest(digest)
    if not reg.storage.layer_linked(name, digest):
        raise RegistryError("BLOB_UNKNOWN", detail=digest)
    path = reg.storage.blob_path(digest)
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, after streaming
    except FileNotFoundError:
        raise RegistryError("BLOB_UNKNOWN", detail=digest) from None
    try:
        size = path.stat().st_size
        headers = {"Docker-Content-Digest": digest, "ETag": f'"{digest}"',
                   "Accept-Ranges": "bytes", "Cache-Control": "max-age=31536000",
                   "Content-Type": "application/octet-stream"}
        start, end, status = 0, size - 1, 200
        if "Range" in request.headers:
            rng = _parse_range(request.headers["Range"], size)
            if rng is None:
                raise RegistryError("RANGE_INVALID", headers={"Content-Range": f"bytes */{size}"})
            (start, end), status = rng, 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        resp = web.StreamResponse(status=status, headers=headers)
        resp.content_length = end - start + 1
        await resp.prepare(request)
        if request.method == "HEAD":
            return resp
        f.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = await asyncio.to_thread(f.read, min(_CHUNK, left))
            if not chunk:
                break
            await resp.write(chunk)
            left -= len(chunk)
        await resp.write_eof()
        return resp
    finally:
        f.close()


async def delete_blob(request: web.Request, reg: Registry, name: str, digest: str) -> web.Response:
    """Unlink a blob from ``name`` (202); gc removes the bytes. Raises BLOB_UNKNOWN, UNSUPPORTED."""
    if not reg.delete_enabled:
        raise RegistryError("UNSUPPORTED")
    check_digest(digest)
    reg.storage.unlink_layer(name, digest)
    return web.Response(status=202, headers={"Docker-Content-Digest": digest, "Content-Length": "0"})


# -- uploads -----------------------------------------------------------------------------------------
def _check_content_range(request: web.Request, size: int, up: Upload) -> None:
    """Refuse a chunk that does not start at ``size`` (416) or whose length disagrees (400)."""
    cr = request.headers.get("Content-Range")
    if not cr:
        return
    m = _CONTENT_RANGE_RE.match(cr.strip())
    if m is None:
        raise RegistryError("RANGE_INVALID", detail={"Content-Range": cr},
                            headers=_progress_headers(up, size))
    start, end = int(m.group(1)), int(m.group(2))
    if start != size or end < start:
        raise RegistryError("RANGE_INVALID", detail={"Content-Range": cr, "size": size},
                            headers=_progress_headers(up, size))
    cl = request.headers.get("Content-Length")
    if cl is not None and int(cl) != end - start + 1:
        raise RegistryError("SIZE_INVALID", detail={"Content-Range": cr, "Content-Length": cl})


async def _receive(request: web.Request, up: Upload) -> int:
    """Append the request body to ``up``; return how many bytes arrived. Raises SIZE_INVALID."""
    expected = request.content_length
    got, buf = 0, bytearray()
    async for chunk in request.content.iter_chunked(_CHUNK):
        buf += chunk
        got += len(chunk)
        if len(buf) >= _CHUNK:
            await asyncio.to_thread(up.append, bytes(buf))
            buf.clear()
    if buf:
        await asyncio.to_thread(up.append, bytes(buf))
    if expected is not None and got != expected:
        raise RegistryError("SIZE_INVALID", detail={"Content-Length": expected, "received": got})
    return got


async def start_upload(request: web.Request, reg: Registry, name: str, uuid: str) -> web.Response:
    """POST .../blobs/uploads/: new session, monolithic push, or cross-repository mount."""
    if uuid:
        raise RegistryError("UNSUPPORTED", detail={"method": "POST"})
    q = request.query
    mount, source = q.get("mount"), q.get("from")
    if mount and source:
        check_digest(mount)
        check_name(source)
        if reg.storage.layer_linked(source, mount):
            reg.storage.link_layer(name, mount)
            return _created(name, mount)
    digest = q.get("digest")
    if digest is not None:
        check_digest(digest)
    up = reg.uploads.start(name)
    if digest is None:
        return web.Response(status=202, headers=_progress_headers(up, 0))
    async with reg.upload_locks[up.uuid]:
        try:
            await _receive(request, up)
            digest = await asyncio.to_thread(reg.uploads.commit, up, digest)
        except BaseException:
            if up.dir.is_dir():
                reg.uploads.cancel(up)
            raise
        finally:
            reg.upload_locks.pop(up.uuid, None)
    return _created(name, digest)


async def upload_status(request: web.Request, reg: Registry, name: str, uuid: str) -> web.Response:
    up = reg.uploads.get(name, uuid)
    return web.Response(status=204, headers=_progress_headers(up, up.size))


async def patch_upload(request: web.Request, reg: Registry, name: str, uuid: str) -> web.Response:
    up = reg.uploads.get(name, uuid)
    async with reg.upload_locks[up.uuid]:
        _check_content_range(request, up.size, up)
        await _receive(request, up)
        size = up.size
    return web.Response(status=202, headers=_progress_headers(up, size))


async def put_upload(request: web.Request, reg: Registry, name: str, uuid: str) -> web.Response:
    up = reg.uploads.get(name, uuid)
    digest = request.query.get("digest")
    if not digest:
        raise RegistryError("DIGEST_INVALID", "digest missing", detail={"digest": None})
    check_digest(digest)
    async with reg.upload_locks[up.uuid]:
        _check_content_range(request, up.size, up)
        await _receive(request, up)
        digest = await asyncio.to_thread(reg.uploads.commit, up, digest)
    reg.upload_locks.pop(up.uuid, None)
    return _created(name, digest)


async def cancel_upload(request: web.Request, reg: Registry, name: str, uuid: str) -> web.Response:
    up = reg.uploads.get(name, uuid)
    async with reg.upload_locks[up.uuid]:
        reg.uploads.cancel(up)
    reg.upload_locks.pop(up.uuid, None)
    return web.Response(status=204, headers={"Content-Length": "0"})
