"""Pull: manifest → config → layers (3 downloads at a time) → image, with dockerd's progress.

Each layer blob streams from the registry into the content store (a verified BlobWriter, so the
compressed blob is kept for later pushes) and, at the same time, from that growing temp file
through decompression into ``LayerStore.apply_tar`` with the expected diff id: one network pass,
no second read of the network. Layers are applied in order (a layer needs its parent), so a
layer whose download finishes early waits, spooled, for its turn. The reader a layer is applied
from returns EOF only after the download's size and digest were verified and the blob committed;
a bad blob therefore makes ``apply_tar`` fail and nothing of that layer is stored.

Nothing is tagged until every layer is in place and the config verified. An interrupted pull
leaves completed layers (kept across a daemon restart and reused by a retry; `image prune` reclaims them)
and no image. Download errors mid-stream are retried (3 times, resuming with ``Range``).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import platform as _platform
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import aiohttp

from berth.errors import BerthError, InvalidArgument, NotFound
from berth.images.reference import Reference
from berth.layers.store import chain_id
from berth.registry.client import progress as P
from berth.registry.client.auth import AuthError, Credentials
from berth.registry.client.transport import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_INDEX,
    OCI_MANIFEST,
    Manifest,
    RegistryClient,
    RegistryError,
    Repository,
)

log = logging.getLogger("berth.registry.pull")

Emit = Callable[[P.Event], None]
CONCURRENT_DOWNLOADS = 3
RETRIES = 3

LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
}
ZSTD_TYPES = {"application/vnd.oci.image.layer.v1.tar+zstd",
              "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"}


def host_platform() -> tuple[str, str, str]:
    """(os, architecture, variant) of this machine in OCI terms."""
    m = _platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
            "armv7l": "arm", "i686": "386", "i386": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(m, m)
    return "linux", arch, "v7" if m == "armv7l" else ""


def parse_platform(value: str | None) -> tuple[str, str, str]:
    """``linux/arm64/v8`` → ("linux", "arm64", "v8"); empty → this machine. Raises InvalidArgument."""
    if not value:
        return host_platform()
    parts = value.lower().split("/")
    if len(parts) == 1 or len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'"{value}": unknown operating system or architecture: invalid argument')
    os_, arch = parts[0], parts[1]
    variant = parts[2] if len(parts) == 3 else ""
    if arch == "x86_64":
        arch = "amd64"
    if arch in ("aarch64",):
        arch, variant = "arm64", variant or ""
    return os_, arch, variant


def select_platform(index: dict[str, Any], want: tuple[str, str, str]) -> dict[str, Any]:
    """The manifest descriptor of a manifest list / OCI index for ``want``. Raises NotFound."""
    os_, arch, variant = want
    candidates = []
    for desc in index.get("manifests") or []:
        p = desc.get("platform") or {}
        if p.get("os") != os_ or p.get("architecture") != arch:
            continue
        v = p.get("variant") or ""
        if variant and v and v != variant and not (arch == "arm64" and {v, variant} <= {"v8", ""}):
            continue
        candidates.append(desc)
    if not candidates:
        shown = "/".join(x for x in want if x)
        raise NotFound(f"no matching manifest for {shown} in the manifest list entries")
    return candidates[0]


# -- the spooled blob ------------------------------------------------------------------------
class _Aborted(Exception):
    """Raised into the layer's reader when its download failed: apply_tar stores nothing."""


class Spool:
    """A blob arriving into the content store that readers may follow while it grows.

    States: receiving (``append``) → ``finish`` (size and digest verified, blob committed) or
    ``fail`` (temp file removed; readers raise). A spool for a blob already in the store is
    finished from the start.
    """

    def __init__(self, content: Any, digest: str, size: int, existing: bool = False):
        self.content = content
        self.digest = digest
        self.expected_size = size
        self.cond = threading.Condition()
        self.error: BaseException | None = None
        self.committed = existing
        self.done = existing
        self.created = False  # committed by this pull (so ours to delete on failure)
        self.size = content.size(digest) if existing else 0
        self.writer = None if existing else content.writer(digest, size or None)

    def append(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)
        self.writer.flush()
        with self.cond:
            self.size += len(data)
            self.cond.notify_all()

    def finish(self) -> None:
        """Verify and commit (blocking: fsync). Raises RegistryError on a mismatch."""
        assert self.writer is not None
        with self.cond:
            try:
                self.writer.commit()
            except InvalidArgument as e:
                err = RegistryError(f"filesystem layer verification failed for digest {self.digest}: "
                                    f"{e.message}")
                self.error = err
                self.cond.notify_all()
                raise err from None
            self.committed = self.done = self.created = True
            self.cond.notify_all()

    def fail(self, exc: BaseException) -> None:
        with self.cond:
            if self.error is None and not self.done:
                self.error = exc
            if self.writer is not None and not self.committed:
                self.writer.abort()
            self.cond.notify_all()

    def open(self) -> BinaryIO:
        """A file object at the start of the blob (temp file or committed blob); under ``cond``."""
        if self.committed:
            return self.content.open(self.digest)
        assert self.writer is not None
        return self.writer.reopen()


class SpoolReader(io.RawIOBase):
    """Reads a Spool from the start, blocking for bytes not yet downloaded; EOF only once the
    blob is verified. Raises _Aborted when the download fails."""

    def __init__(self, spool: Spool):
        self.spool = spool
        self._f: BinaryIO | None = None
        self.pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:  # type: ignore[override]
        sp = self.spool
        with sp.cond:
            while True:
                if sp.error is not None:
                    raise _Aborted(str(sp.error))
                if self._f is None:
                    self._f = sp.open()
                avail = sp.size - self.pos
                if avail > 0:
                    break
                if sp.done:
                    return 0
                sp.cond.wait(1.0)
        data = self._f.read(min(len(b), avail))
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        super().close()


# -- the pull --------------------------------------------------------------------------------
@dataclass
class _Layer:
    digest: str
    size: int
    media_type: str
    diff_id: str
    chain_id: str
    parent: str | None
    exists: bool = False
    spool: Spool | None = None
    downloaded: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return P.short_id(self.digest)


def not_found_message(ref: Reference, err: RegistryError) -> BerthError:
    """dockerd's wording for a pull the registry refuses before any output."""
    if err.code == "NAME_UNKNOWN":
        return NotFound(f"repository {ref.familiar_name()} not found: {err.message}")
    if err.code in ("DENIED", "UNAUTHORIZED") or err.http_status in (401, 403):
        return NotFound(f"pull access denied for {ref.familiar_name()}, repository does not exist or "
                        f"may require 'docker login': denied: requested access to the resource is denied")
    if err.http_status == 404:
        return NotFound(f"manifest for {ref.familiar_string()} not found: {err.message}")
    return err


class Puller:
    """One ``docker pull`` of one reference (tag or digest). ``run(emit)`` does it."""

    def __init__(self, client: RegistryClient, images: Any, ref: Reference, creds: Credentials,
                 platform: tuple[str, str, str], memory: Any = None):
        self.client = client
        self.images = images
        self.ref = ref
        self.creds = creds
        self.platform = platform
        self.memory = memory

    async def _resolve(self) -> tuple[Repository, Manifest]:
        """The top manifest, from the first endpoint that has it (mirrors first, for Hub)."""
        target = self.ref.digest or self.ref.tag or "latest"
        last: BaseException | None = None
        endpoints = self.client.endpoints(self.ref.domain, pull=True)
        for ep in endpoints:
            repo = self.client.repository(ep, self.ref.path, self.creds)
            try:
                digest = await repo.head_manifest(target) if not self.ref.digest else None
                try:
                    manifest = await repo.get_manifest(digest if digest and digest.startswith("sha256:")
                                                       else target)
                except RegistryError as e:
                    if digest and e.http_status == 404:  # a registry that cannot GET by digest
                        manifest = await repo.get_manifest(target)
                    else:
                        raise
                return repo, manifest
            except (RegistryError, AuthError) as e:
                if ep.mirror:
                    log.info("mirror %s failed for %s: %s; trying the next endpoint", ep.base, self.ref, e)
                    last = e
                    continue
                if isinstance(e, RegistryError):
                    raise not_found_message(self.ref, e) from None
                raise
        assert last is not None  # pragma: no cover - the origin is always last
        raise last

    async def run(self, emit: Emit) -> tuple[str, str, bool]:
        """Pull; returns (image id, manifest digest, whether a tag or digest reference changed).

        Raises before the first emit for a missing manifest (NotFound) or refused credentials;
        later failures too, but the caller reports those in-band.
        """
        repo, top = await self._resolve()
        tag_or_digest = self.ref.digest or self.ref.tag or "latest"
        emit(P.status(f"Pulling from {self.ref.path}", tag_or_digest))
        manifest = top
        if top.media_type in DOCKER_SCHEMA1:
            raise RegistryError("[DEPRECATION NOTICE] Docker Image Format v1 and Docker Image manifest "
                                "version 2, schema 1 support is disabled by default")
        if top.media_type in (DOCKER_LIST, OCI_INDEX) or "manifests" in top.json():
            desc = select_platform(top.json(), self.platform)
            manifest = await repo.get_manifest(desc["digest"])
        doc = manifest.json()
        if manifest.media_type not in (DOCKER_MANIFEST, OCI_MANIFEST) and "layers" not in doc:
            raise RegistryError(f"unsupported manifest media type {manifest.media_type}")
        config_desc = doc.get("config") or {}
        config_digest = config_desc.get("digest", "")
        config_bytes = await repo.read_blob(config_digest)
        config = json.loads(config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        descs = doc.get("layers") or []
        if len(diff_ids) != len(descs):
            raise RegistryError(f"layers from manifest don't match image configuration "
                                f"({len(descs)} layers, {len(diff_ids)} diff ids)")
        for d in descs:
            mt = d.get("mediaType", "")
            if mt in ZSTD_TYPES:
                raise RegistryError(f"unsupported layer media type {mt}: zstd layers are not supported")
            if mt not in LAYER_TYPES:
                raise RegistryError(f"unsupported layer media type {mt!r}")
            if d.get("urls") and "foreign" in mt or "nondistributable" in mt:
                raise RegistryError(f"foreign layer {d.get('digest')} cannot be pulled")
        image_id = config_digest
        have = await asyncio.to_thread(self._have_image, image_id, diff_ids)
        if not have:
            await self._pull_layers(repo, descs, diff_ids, emit)
        changed = await asyncio.to_thread(self._register, config_bytes, top.digest)
        if self.memory is not None:
            await asyncio.to_thread(self.memory.record_pulled, repo, descs, diff_ids)
        return image_id, top.digest, changed or not have

    def _have_image(self, image_id: str, diff_ids: list[str]) -> bool:
        if not self.images.store.exists(image_id):
            return False
        return not diff_ids or self.images.layers.exists(chain_id(diff_ids))

    def _register(self, config_bytes: bytes, manifest_digest: str) -> bool:
        """Create the image and point the tag and digest at it; True if a reference changed."""
        refs = self.images.store.refs()
        image_id = "sha256:" + hashlib.sha256(config_bytes).hexdigest()
        name = self.ref.name_only()
        tag_ref = str(name.with_tag(self.ref.tag)) if self.ref.tag and not self.ref.digest else None
        digest_ref = f"{name}@{manifest_digest}"
        changed = (tag_ref is not None and refs.get(tag_ref) != image_id) or \
            (self.ref.digest is not None and refs.get(digest_ref) != image_id)
        tags = [name.with_tag(self.ref.tag)] if tag_ref else []
        self.images.create_image(config_bytes, tags=tags)
        self.images.add_repo_digest(image_id, digest_ref)
        return changed

    async def _pull_layers(self, repo: Repository, descs: list[dict], diff_ids: list[str],
                           emit: Emit) -> None:
        layers: list[_Layer] = []
        parent: str | None = None
        for d, diff_id in zip(descs, diff_ids, strict=True):
            cid = chain_id([parent, diff_id]) if parent else diff_id
            layers.append(_Layer(d["digest"], int(d.get("size") or 0), d.get("mediaType", ""),
                                 diff_id, cid, parent))
            parent = cid
        content = self.images.content
        spools: dict[str, Spool] = {}
        to_fetch: list[_Layer] = []
        for layer in layers:
            layer.exists = await asyncio.to_thread(self.images.layers.exists, layer.chain_id)
        # A layer whose chain is present is done; its ancestors necessarily are too.
        for layer in layers:
            if layer.exists:
                emit(P.layer("Already exists", layer.id))
                continue
            emit(P.layer("Pulling fs layer", layer.id))
            if layer.digest not in spools:
                existing = await asyncio.to_thread(content.exists, layer.digest)
                spools[layer.digest] = Spool(content, layer.digest, layer.size, existing=existing)
                if not existing:
                    to_fetch.append(layer)
            layer.spool = spools[layer.digest]
        for layer in to_fetch[CONCURRENT_DOWNLOADS:]:
            emit(P.layer("Waiting", layer.id))
        sem = asyncio.Semaphore(CONCURRENT_DOWNLOADS)
        downloads = [asyncio.create_task(self._download(repo, layer, sem, emit)) for layer in to_fetch]
        try:
            extract = asyncio.create_task(self._extract_all(layers, emit))
            pending = set(downloads) | {extract}
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    if t.exception() is not None:
                        raise t.exception()  # type: ignore[misc]
        except BaseException as e:
            for t in downloads:
                t.cancel()
            for sp in spools.values():
                sp.fail(e if isinstance(e, Exception) else _Aborted("pull cancelled"))
            await asyncio.gather(*downloads, return_exceptions=True)
            if "extract" in locals():
                extract.cancel()
                await asyncio.gather(extract, return_exceptions=True)
            created = [sp.digest for sp in spools.values() if sp.created]
            if created:
                await asyncio.to_thread(self._drop_unused_blobs, created)
            raise

    def _drop_unused_blobs(self, digests: list[str]) -> None:
        used = {layer.blob_digest for layer in self.images.layers.walk()}
        for d in digests:
            if d not in used:
                try:
                    self.images.content.delete(d)
                except NotFound:
                    pass

    async def _download(self, repo: Repository, layer: _Layer, sem: asyncio.Semaphore,
                        emit: Emit) -> None:
        sp = layer.spool
        assert sp is not None
        async with sem:
            throttle = P.Throttle()
            attempt = 0
            while True:
                try:
                    await self._fetch_once(repo, layer, sp, emit, throttle)
                    break
                except (TimeoutError, RegistryError, aiohttp.ClientError, OSError) as e:
                    retriable = getattr(e, "retriable", True)
                    attempt += 1
                    if not retriable or attempt > RETRIES:
                        raise _download_error(layer, e) from None
                    log.info("download of %s failed (%s); retrying from byte %d", layer.digest, e, sp.size)
                    await asyncio.sleep(0.2 * attempt)
            emit(P.layer("Verifying Checksum", layer.id))
            await asyncio.to_thread(sp.finish)
            emit(P.layer("Download complete", layer.id))
            layer.downloaded.set()

    async def _fetch_once(self, repo: Repository, layer: _Layer, sp: Spool, emit: Emit,
                          throttle: P.Throttle) -> None:
        offset = sp.size
        resp = await repo.open_blob(layer.digest, offset)
        try:
            skip = offset
            if resp.status == 206:
                start = resp.headers.get("Content-Range", "").removeprefix("bytes ").split("-")[0]
                skip = offset - int(start) if start.isdigit() else offset
                if skip < 0:
                    raise RegistryError("registry answered a range that starts too late", retriable=False)
            async for chunk in resp.content.iter_chunked(256 << 10):
                if skip:
                    drop = min(skip, len(chunk))
                    chunk = chunk[drop:]
                    skip -= drop
                    if not chunk:
                        continue
                if layer.size and sp.size + len(chunk) > layer.size:
                    raise RegistryError(f"filesystem layer verification failed for digest {layer.digest}: "
                                        f"more than {layer.size} bytes", retriable=False)
                sp.append(chunk)
                if throttle():
                    emit(P.bar("Downloading", layer.id, sp.size, layer.size))
        finally:
            resp.release()
        if layer.size and sp.size < layer.size:
            raise RegistryError(f"unexpected EOF after {sp.size} of {layer.size} bytes", retriable=True)
        emit(P.bar("Downloading", layer.id, sp.size, layer.size or sp.size))

    async def _extract_all(self, layers: list[_Layer], emit: Emit) -> None:
        applied: set[str] = set()
        for layer in layers:
            if layer.exists or layer.chain_id in applied:
                if not layer.exists:
                    emit(P.layer("Pull complete", layer.id))
                continue
            await self._extract(layer, emit)
            applied.add(layer.chain_id)

    async def _extract(self, layer: _Layer, emit: Emit) -> None:
        sp = layer.spool
        assert sp is not None
        raw = SpoolReader(sp)
        reader = io.BufferedReader(raw, 1 << 20)

        def apply() -> Any:
            try:
                return self.images.layers.apply_tar(reader, layer.parent, expected_diff_id=layer.diff_id,
                                                    blob_digest=layer.digest)
            finally:
                reader.close()

        task = asyncio.ensure_future(asyncio.to_thread(apply))
        throttle = P.Throttle()
        total = layer.size or 0
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.1)
                if done:
                    break
                if sp.done and throttle():
                    emit(P.bar("Extracting", layer.id, raw.pos, total or raw.pos))
        except BaseException:
            sp.fail(_Aborted("pull cancelled"))
            await asyncio.gather(task, return_exceptions=True)
            raise
        try:
            task.result()
        except _Aborted:
            err = sp.error
            raise err if isinstance(err, BaseException) else RegistryError("download failed") from None
        except InvalidArgument as e:
            # A bad blob is reported as such: wait for its download to be verified first.
            while not sp.done and sp.error is None:
                await asyncio.sleep(0.05)
            if sp.error is not None:
                raise sp.error from None
            raise RegistryError(f"failed to register layer: {e.message}") from None
        emit(P.bar("Extracting", layer.id, total or raw.pos, total or raw.pos))
        emit(P.layer("Pull complete", layer.id))


def _download_error(layer: _Layer, e: BaseException) -> BaseException:
    if isinstance(e, (RegistryError, AuthError)):
        return e
    return RegistryError(f"failed to download layer {layer.digest}: {e or e.__class__.__name__}")
