"""Push: layers (3 at a time: HEAD, mount, or compress and upload), config, Docker schema2 manifest.

A layer's compressed blob comes from, in order: a remembered digest the target already has
(``Layer already exists``), a cross-repository mount from a repository of the same registry
that has it (``Mounted from``), the gzip blob kept in the content store from a pull, or gzip
compression of the layer tar (ISA-L when installed, else zlib) into a temp file. Compression is
deterministic (no timestamp), so the same layer compresses to the same digest every time.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from typing import Any

from berth.errors import NotFound
from berth.images.reference import Reference
from berth.layers.store import chain_ids
from berth.registry.client import progress as P
from berth.registry.client.auth import Credentials
from berth.registry.client.memory import BlobMemory
from berth.registry.client.transport import DOCKER_MANIFEST, RegistryClient, RegistryError, Repository

try:  # ISA-L's deflate is ~10x faster than zlib's at similar ratios
    from isal import isal_zlib as _zlib

    GZIP_LEVEL = 2
except ImportError:  # pragma: no cover - isal is a dependency, zlib the fallback
    import zlib as _zlib  # type: ignore[no-redef]

    GZIP_LEVEL = 3

log = logging.getLogger("berth.registry.push")

Emit = Callable[[P.Event], None]
CONCURRENT_UPLOADS = 3
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
_CHUNK = 1 << 20


class ImageNotLocal(RegistryError):
    def __init__(self, name: str):
        super().__init__(f"An image does not exist locally with the tag: {name}", status=404)


def gzip_file(src: Any, dest_dir: str | None) -> tuple[str, str, int]:
    """Compress the open file ``src`` to a gzip temp file; returns (path, digest, size)."""
    fd, path = tempfile.mkstemp(dir=dest_dir, prefix="push-", suffix=".tar.gz")
    h = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            c = _zlib.compressobj(GZIP_LEVEL, _zlib.DEFLATED, 31)
            while chunk := src.read(_CHUNK):
                data = c.compress(chunk)
                h.update(data)
                out.write(data)
                size += len(data)
            data = c.flush()
            h.update(data)
            out.write(data)
            size += len(data)
    except BaseException:
        os.unlink(path)
        raise
    return path, "sha256:" + h.hexdigest(), size


def manifest_bytes(config_digest: str, config_size: int, layers: list[dict[str, Any]]) -> bytes:
    """A Docker schema2 manifest, laid out as dockerd (Go's MarshalIndent with 3 spaces)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": CONFIG_TYPE, "size": config_size, "digest": config_digest},
        "layers": [{"mediaType": LAYER_GZIP, "size": d["size"], "digest": d["digest"]} for d in layers],
    }
    return json.dumps(doc, indent=3).encode()


class Pusher:
    """One ``docker push`` of one repository (one tag, or all its local tags)."""

    def __init__(self, client: RegistryClient, images: Any, memory: BlobMemory, name: Reference,
                 creds: Credentials):
        self.client = client
        self.images = images
        self.memory = memory
        self.name = name.name_only()
        self.creds = creds

    def local_tags(self) -> list[str]:
        prefix = str(self.name) + ":"
        return sorted(r[len(prefix):] for r in self.images.store.refs() if r.startswith(prefix))

    async def run(self, tag: str | None, emit: Emit) -> list[tuple[str, str, int]]:
        """Push; returns ``[(tag, manifest digest, size)]``. Raises RegistryError, AuthError."""
        emit(P.status(f"The push refers to repository [{self.name}]"))
        tags = [tag] if tag else await asyncio.to_thread(self.local_tags)
        if not tags:
            raise ImageNotLocal(self.name.familiar_name())
        out = []
        for t in tags:
            out.append(await self._push_tag(t, emit))
        return out

    async def _push_tag(self, tag: str, emit: Emit) -> tuple[str, str, int]:
        ref = self.name.with_tag(tag)
        try:
            image_id = await asyncio.to_thread(self.images.resolve_id, str(ref))
        except NotFound:
            raise ImageNotLocal(ref.familiar_name()) from None  # dockerd names the repository
        meta = await asyncio.to_thread(self.images.store.meta, image_id)
        config_bytes = await asyncio.to_thread(self.images.content.read_bytes, meta["config_digest"])
        config = json.loads(config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        cids = chain_ids(diff_ids) if diff_ids else []
        endpoint = self.client.origin(self.name.domain)
        known = {d: await asyncio.to_thread(self.memory.lookup, d) for d in diff_ids}
        sources = sorted({r.split("/", 1)[1] for entries in known.values() for e in entries
                          for r in e.get("repos", []) if r.split("/", 1)[0] == endpoint.host})
        repo = self.client.repository(endpoint, self.name.path, self.creds, push=True,
                                      mount_from=sources[:8])
        order = list(range(len(diff_ids)))[::-1]  # dockerd lists the top layer first
        for i in order:
            emit(P.layer("Preparing", P.short_id(diff_ids[i])))
        for i in order[CONCURRENT_UPLOADS:]:
            emit(P.layer("Waiting", P.short_id(diff_ids[i])))
        sem = asyncio.Semaphore(CONCURRENT_UPLOADS)
        tasks = {i: asyncio.create_task(self._push_layer(repo, cids[i], diff_ids[i], known[diff_ids[i]],
                                                         sem, emit)) for i in order}
        try:
            await asyncio.gather(*tasks.values())
        except BaseException:
            for t in tasks.values():
                t.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)
            raise
        descs = [tasks[i].result() for i in range(len(diff_ids))]
        config_digest = meta["config_digest"]
        if await repo.blob_size(config_digest) is None:
            async def read_config(off: int, n: int) -> bytes:
                return config_bytes[off:off + n]
            await repo.upload(config_digest, len(config_bytes), read_config)
        body = manifest_bytes(config_digest, len(config_bytes), descs)
        digest = await repo.put_manifest(tag, body, DOCKER_MANIFEST)
        emit(P.status(f"{tag}: digest: {digest} size: {len(body)}"))
        emit({"progressDetail": {}, "aux": {"Tag": tag, "Digest": digest, "Size": len(body)}})
        await asyncio.to_thread(self.images.add_repo_digest, image_id, f"{self.name}@{digest}")
        return tag, digest, len(body)

    def _local_gzip_blob(self, cid: str) -> dict[str, Any] | None:
        """The gzip blob kept from a pull (or a gzip import) of layer ``cid``, if any."""
        try:
            blob = self.images.layers.get(cid).blob_digest
        except NotFound:
            return None
        content = self.images.content
        if not blob or not content.exists(blob):
            return None
        with content.open(blob) as f:
            if f.read(2) != b"\x1f\x8b":
                return None
        return {"digest": blob, "size": content.size(blob), "repos": [], "path": str(content.path(blob))}

    async def _push_layer(self, repo: Repository, cid: str, diff_id: str, known: list[dict[str, Any]],
                          sem: asyncio.Semaphore, emit: Emit) -> dict[str, Any]:
        lid = P.short_id(diff_id)
        here = f"{repo.endpoint.host}/{repo.path}"
        async with sem:
            local = await asyncio.to_thread(self._local_gzip_blob, cid)
            candidates = list(known)
            if local and all(c["digest"] != local["digest"] for c in candidates):
                candidates.append(local)
            for c in candidates:
                size = await repo.blob_size(c["digest"])
                if size is not None:
                    await asyncio.to_thread(self.memory.record, diff_id, c["digest"], size, here)
                    emit(P.layer("Layer already exists", lid))
                    return {"digest": c["digest"], "size": size}
            for c in candidates:
                for r in c.get("repos", []):
                    host, _, path = r.partition("/")
                    if host != repo.endpoint.host or path == repo.path:
                        continue
                    if await repo.mount(c["digest"], path):
                        await asyncio.to_thread(self.memory.record, diff_id, c["digest"], c["size"], here)
                        emit(P.layer(f"Mounted from {path}", lid))
                        return {"digest": c["digest"], "size": c["size"]}
            tmp_path = None
            if local is not None:
                path, digest, size = local["path"], local["digest"], local["size"]
            else:
                path, digest, size = await asyncio.to_thread(self._compress, cid, diff_id)
                tmp_path = path
            try:
                await asyncio.to_thread(self.memory.record, diff_id, digest, size, None)
                if all(c["digest"] != digest for c in candidates) and \
                        await repo.blob_size(digest) is not None:
                    emit(P.layer("Layer already exists", lid))
                else:
                    await self._upload(repo, path, digest, size, lid, emit)
                    emit(P.layer("Pushed", lid))
                await asyncio.to_thread(self.memory.record, diff_id, digest, size, here)
            finally:
                if tmp_path:
                    os.unlink(tmp_path)
            return {"digest": digest, "size": size}

    def _compress(self, cid: str, diff_id: str) -> tuple[str, str, int]:
        from berth.images.save import layer_tar  # the layer's uncompressed tar

        f, _ = layer_tar(self.images, cid, diff_id)
        try:
            return gzip_file(f, getattr(self.images, "tmp_dir", None))
        finally:
            f.close()

    async def _upload(self, repo: Repository, path: str, digest: str, size: int, lid: str,
                      emit: Emit) -> None:
        f = await asyncio.to_thread(open, path, "rb")
        throttle = P.Throttle()
        try:
            async def read(off: int, n: int) -> bytes:
                def pread() -> bytes:
                    return os.pread(f.fileno(), n, off)
                return await asyncio.to_thread(pread)

            def progress(sent: int) -> None:
                if throttle(sent >= size):
                    emit(P.bar("Pushing", lid, sent, size))

            await repo.upload(digest, size, read, progress)
        finally:
            f.close()
