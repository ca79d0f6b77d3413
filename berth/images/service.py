"""ImageService: what the daemon calls for images (import, resolve, list, inspect, history,
tag, remove, recover). Sync methods; the daemon runs them in a thread.

It owns a ContentStore (configs, layer tarballs), a LayerStore (unpacked layers) and an
ImageStore (image records, tags). Mutations of records and tags are serialised by one lock;
unpacking happens outside it. Errors: NotFound, Conflict, InvalidArgument from berth.errors.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from berth.content.store import ContentStore
from berth.errors import Conflict, InvalidArgument, NotFound
from berth.images import views
from berth.images.config import (
    apply_changes,
    canonical_json,
    container_config,
    parse_time_ns,
    rfc3339_nano,
)
from berth.images.reference import (
    Reference,
    parse,
    parse_any,
    parse_docker_ref,
    parse_repo_tag,
)
from berth.images.store import ImageStore
from berth.layers.store import LayerStore, chain_id, chain_ids

_HEX_PREFIX = re.compile(r"^(?:sha256:)?([a-f0-9]{1,64})$")


@dataclass(frozen=True)
class Image:
    """A local image, read-only. ``lower_dirs`` are its layers' diff dirs, bottom first."""

    id: str
    config: dict[str, Any] = field(hash=False)
    chain_id: str | None
    lower_dirs: list[Path] = field(hash=False)
    repo_tags: list[str] = field(hash=False)

    @property
    def diff_ids(self) -> list[str]:
        return list((self.config.get("rootfs") or {}).get("diff_ids") or [])


def _short(image_id: str) -> str:
    return image_id.split(":", 1)[-1][:12]


class ImageService:
    """Images under a data-root. ``image_in_use(image_id) -> container id | None`` is injected
    by the daemon so removal can refuse images that containers use."""

    def __init__(self, root: str | os.PathLike[str],
                 image_in_use: Callable[[str], str | None] | None = None):
        self.root = Path(root)
        self.content = ContentStore(self.root)
        self.layers = LayerStore(self.root)
        self.store = ImageStore(self.root, self.content)
        self.image_in_use = image_in_use

    # -- creating ------------------------------------------------------------------------------
    def import_image(self, src: BinaryIO, repo: str | None = None, tag: str | None = None,
                     changes: list[str] | None = None, message: str = "") -> str:
        """``docker import``: one layer from the tarball ``src`` (any compression); returns the id.

        Raises InvalidArgument for a bad reference, a bad change line or a stream that is not a
        tar; nothing is stored then.
        """
        ref = parse_repo_tag(repo, tag) if repo else None
        cfg = apply_changes(container_config(), changes or [])
        writer = self.content.writer()
        try:
            while chunk := src.read(1 << 20):
                writer.write(chunk)
            with writer.reopen() as f:
                layer = self.layers.apply_tar(f, None, blob_digest=writer.digest)
            writer.commit()
        except BaseException:
            writer.abort()
            raise
        created = rfc3339_nano()
        history = {"created": created, "comment": message or "Imported from -"}
        config = {
            "architecture": "amd64",
            "comment": history["comment"],
            "config": cfg,
            "container_config": container_config(),
            "created": created,
            "history": [history],
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
        }
        return self.create_image(canonical_json(config), tags=[ref] if ref else [])

    def create_image(self, config_bytes: bytes, tags: list[Reference] | None = None,
                     parent: str | None = None) -> str:
        """Register an image whose layers are already in the layer store; returns its id.

        The id is the digest of ``config_bytes`` as given. Also used by load, commit and build.
        Raises NotFound if a layer is missing, InvalidArgument for a config without rootfs.
        """
        config = json.loads(config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        top = chain_id(diff_ids) if diff_ids else None
        if top is not None and not self.layers.exists(top):
            raise NotFound(f"layer {top}: not found")
        with self.store.lock:
            digest, _ = self.content.ingest_bytes(config_bytes)
            old = self.store.meta(digest) if self.store.exists(digest) else {}
            meta = {"id": digest, "config_digest": digest, "created": config.get("created", ""),
                    "parent": parent or old.get("parent") or "", "chain_id": top,
                    "last_tag_time": old.get("last_tag_time", "")}
            if tags:
                meta["last_tag_time"] = rfc3339_nano()
            self.store.put(digest, meta)
            for ref in tags or []:
                self.store.set_ref(str(ref), digest)
        return digest

    def add_repo_digest(self, image_id: str, ref: Reference | str) -> None:
        """Record ``name@sha256:<manifest digest>`` (RepoDigests) for a pulled or pushed image.

        Raises InvalidArgument for a reference without a digest, NotFound for an unknown image.
        """
        parsed = parse(str(ref)) if isinstance(ref, str) else ref
        if parsed.digest is None:
            raise InvalidArgument(f"{ref}: not a digest reference")
        with self.store.lock:
            if not self.store.exists(image_id):
                raise NotFound(f"No such image: {image_id}")
            self.store.set_ref(str(Reference(parsed.domain, parsed.path, None, parsed.digest)), image_id)

    # -- lookups -------------------------------------------------------------------------------
    def _lookup(self, ref: str) -> str | None:
        """The image id ``ref`` names, or None."""
        try:
            parsed = parse_any(ref)
        except InvalidArgument:
            parsed = None
        if isinstance(parsed, str):  # a full id / digest
            return parsed if self.store.exists(parsed) else None
        if parsed is not None:
            image_id = self.store.refs().get(str(parsed.docker_ref()))
            if image_id is not None and self.store.exists(image_id):
                return image_id
        m = _HEX_PREFIX.match(ref)
        if m:
            matches = [i for i in self.store.ids() if i[7:].startswith(m.group(1))]
            if len(matches) == 1:
                return matches[0]
        return None

    def _not_found(self, ref: str) -> NotFound:
        try:
            parsed = parse_any(ref)
        except InvalidArgument:
            return NotFound(f"No such image: {ref}")
        if isinstance(parsed, str):
            return NotFound(f"No such image: {ref}")
        return NotFound(f"No such image: {parsed.docker_ref().familiar_string()}")

    def resolve_id(self, ref: str) -> str:
        """The image id for a name[:tag], name@digest, full id or unique id prefix. Raises NotFound."""
        image_id = self._lookup(ref)
        if image_id is None:
            raise self._not_found(ref)
        return image_id

    def resolve(self, ref: str) -> Image:
        """The image ``ref`` names (see resolve_id). Raises NotFound."""
        image_id = self.resolve_id(ref)
        config = self.store.config(image_id)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        top = chain_id(diff_ids) if diff_ids else None
        lowers = self.layers.lower_dirs(top) if top else []
        return Image(id=image_id, config=config, chain_id=top, lower_dirs=lowers,
                     repo_tags=self._tags(image_id)[0])

    def _tags(self, image_id: str) -> tuple[list[str], list[str]]:
        """(familiar tags, familiar digests) of an image."""
        tags, digests = [], []
        for r in self.store.refs_for(image_id):
            ref = parse(r)
            if ref.digest is not None:
                digests.append(ref.familiar_string())
            else:
                tags.append(ref.familiar_string())
        return tags, digests

    def _size(self, config: dict[str, Any]) -> int:
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        total = 0
        for cid in chain_ids(diff_ids) if diff_ids else []:
            try:
                total += self.layers.size(cid)
            except NotFound:
                pass
        return total

    def list_images(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[dict]:
        """Engine API image summaries, newest first. Raises InvalidArgument for a bad filter."""
        f = views.normalize_filters(filters)
        refs = self.store.refs()
        before = [parse_time_ns(self.store.config(self.resolve_id(r)).get("created")) for r in f.get("before", [])]
        since = [parse_time_ns(self.store.config(self.resolve_id(r)).get("created")) for r in f.get("since", [])]
        parents = {self.store.meta(i).get("parent") for i in self.store.ids()}
        out: list[tuple[int, dict]] = []
        for image_id in self.store.ids():
            config = self.store.config(image_id)
            meta = self.store.meta(image_id)
            created = parse_time_ns(config.get("created"))
            if any(created >= b for b in before) or any(created <= s for s in since):
                continue
            my_refs = [parse(r) for r, i in refs.items() if i == image_id]
            if "dangling" in f:
                want = f["dangling"][-1].lower() in ("true", "1")
                if want == bool(my_refs):
                    continue
            if "label" in f and not views.labels_match(f["label"], (config.get("config") or {}).get("Labels")):
                continue
            if "reference" in f:
                my_refs = [r for r in my_refs if any(views.familiar_match(p, r) for p in f["reference"])]
                if not my_refs:
                    continue
            if not all and not my_refs and image_id in parents:
                continue  # an intermediate image
            tags = sorted(r.familiar_string() for r in my_refs if r.digest is None)
            digests = sorted(r.familiar_string() for r in my_refs if r.digest is not None)
            out.append((created, views.summary(image_id, config, meta, tags, digests, self._size(config))))
        out.sort(key=lambda x: (x[0], x[1]["Id"]), reverse=True)
        return [s for _, s in out]

    def inspect(self, ref: str) -> dict:
        """Engine API image inspect body. Raises NotFound with dockerd's wrapped message,
        ``no such image: X: No such image: X:latest``."""
        image_id = self._lookup(ref)
        if image_id is None:
            raise NotFound(f"no such image: {ref}: {self._not_found(ref).message}")
        config = self.store.config(image_id)
        meta = self.store.meta(image_id)
        tags, digests = self._tags(image_id)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        lowers = self.layers.lower_dirs(chain_id(diff_ids)) if diff_ids else []
        graph: dict[str, str] = {}
        if lowers:
            graph["UpperDir"] = str(lowers[-1])
            graph["MergedDir"] = str(lowers[-1].parent / "merged")
            graph["WorkDir"] = str(lowers[-1].parent / "work")
            if len(lowers) > 1:
                graph["LowerDir"] = ":".join(str(p) for p in reversed(lowers[:-1]))
        return views.inspect_body(image_id, config, meta, tags, digests, self._size(config), graph)

    def history(self, ref: str) -> list[dict]:
        """Engine API history, newest first. Raises NotFound."""
        image_id = self.resolve_id(ref)
        config = self.store.config(image_id)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        sizes = [self.layers.size(c) if self.layers.exists(c) else 0 for c in chain_ids(diff_ids)] \
            if diff_ids else []
        tops: dict[int, tuple[str, list[str]]] = {}
        cur: str | None = image_id
        while cur and self.store.exists(cur):
            n = len(self.store.config(cur).get("history") or [])
            if n:
                tops.setdefault(n - 1, (cur, self._tags(cur)[0]))
            cur = self.store.meta(cur).get("parent") or None
        return views.history_body(config, sizes, tops)

    # -- tags and removal ----------------------------------------------------------------------
    def tag(self, src_ref: str, repo: str, tag: str | None = None) -> None:
        """Point ``repo[:tag]`` (tag inside repo or separate; ``latest`` default) at ``src_ref``.

        Raises NotFound for the source, InvalidArgument for a bad target reference.
        """
        image_id = self.resolve_id(src_ref)
        ref = parse_repo_tag(repo, tag)
        with self.store.lock:
            self.store.set_ref(str(ref), image_id)
            meta = self.store.meta(image_id)
            meta["last_tag_time"] = rfc3339_nano()
            self.store.put(image_id, meta)

    def remove(self, ref: str, force: bool = False, prune: bool = True) -> list[dict]:
        """``docker rmi``: untag and/or delete; returns ``[{"Untagged":..}, {"Deleted":..}]``.

        Raises NotFound, or Conflict when the image is tagged in several repositories (by id,
        without force), used by a container (without force) or has child images. With force, an
        image a container uses loses its tags but is kept (its layers back the container).
        """
        with self.store.lock:
            image_id = self.resolve_id(ref)
            refs = [parse(r) for r in self.store.refs_for(image_id)]
            by_name = self._names_image(ref, image_id)
            user = self.image_in_use(image_id) if self.image_in_use else None
            out: list[dict] = []
            if by_name is not None:
                if len(refs) == 1 and user and not force:
                    raise Conflict(
                        f'conflict: unable to remove repository reference "{ref}" (must force) - '
                        f"container {user[:12]} is using its referenced image {_short(image_id)}")
                self.store.remove_ref(str(by_name))
                out.append({"Untagged": by_name.familiar_string()})
                refs = [r for r in refs if str(r) != str(by_name)]
                if by_name.digest is None and not any(
                        r.digest is None and r.name == by_name.name for r in refs):
                    # dockerd: the last tag of a repository takes that repository's digests along
                    for r in [r for r in refs if r.digest is not None and r.name == by_name.name]:
                        self.store.remove_ref(str(r))
                        out.append({"Untagged": r.familiar_string()})
                        refs.remove(r)
                if refs:
                    return out
            else:
                if len({r.name for r in refs}) > 1 and not force:
                    raise Conflict(f"conflict: unable to delete {_short(image_id)} (must be forced) - "
                                   "image is referenced in multiple repositories")
                if user and not force:
                    raise Conflict(f"conflict: unable to delete {_short(image_id)} (must be forced) - "
                                   f"image is being used by stopped container {user[:12]}")
                for r in refs:
                    self.store.remove_ref(str(r))
                    out.append({"Untagged": r.familiar_string()})
            children = [i for i in self.store.ids() if self.store.meta(i).get("parent") == image_id]
            if children:
                if by_name is not None:
                    return out
                raise Conflict(f"conflict: unable to delete {_short(image_id)} (cannot be forced) - "
                               "image has dependent child images")
            if user:
                return out  # forced: the tags go, the image stays while a container uses it
            out.extend(self._delete_image(image_id))
            return out

    def _names_image(self, ref: str, image_id: str) -> Reference | None:
        """The stored reference ``ref`` names, if it is a name rather than an id."""
        try:
            parsed = parse_any(ref)
        except InvalidArgument:
            return None
        if isinstance(parsed, str):
            return None
        name = parsed.docker_ref()
        return name if self.store.refs().get(str(name)) == image_id else None

    def _delete_image(self, image_id: str) -> list[dict]:
        config = self.store.config(image_id)
        meta = self.store.meta(image_id)
        self.store.delete(image_id)
        out = [{"Deleted": image_id}]
        try:
            self.content.delete(meta["config_digest"])
        except NotFound:
            pass
        out.extend({"Deleted": cid} for cid in self._release_layers(
            list((config.get("rootfs") or {}).get("diff_ids") or [])))
        return out

    def _used_chains(self) -> set[str]:
        used: set[str] = set()
        for i in self.store.ids():
            diff_ids = list((self.store.config(i).get("rootfs") or {}).get("diff_ids") or [])
            used.update(chain_ids(diff_ids) if diff_ids else [])
        return used

    def _release_layers(self, diff_ids: list[str]) -> list[str]:
        """Delete the layers of ``diff_ids`` no image uses any more, top first; their blobs too."""
        if not diff_ids:
            return []
        used = self._used_chains()
        deleted = []
        for cid in reversed(chain_ids(diff_ids)):
            if cid in used or not self.layers.exists(cid):
                continue
            self._delete_layer(cid)
            deleted.append(cid)
        return deleted

    def _delete_layer(self, cid: str) -> None:
        blob = self.layers.get(cid).blob_digest
        self.layers.delete(cid)
        if blob and not any(layer.blob_digest == blob for layer in self.layers.walk()):
            try:
                self.content.delete(blob)
            except NotFound:
                pass

    # -- start-up ------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Start-up: drop temp files, incomplete layers and images, and tags to missing images.

        Complete layers no image uses (a pull or load cut short by a crash) are kept, verified
        as they are, so that the retry reuses them; ``prune_unused_layers`` reclaims them."""
        return self.content.recover() + self.layers.recover() + self.store.recover()

    def prune_unused_layers(self) -> list[tuple[str, int]]:
        """Delete every layer (and its blob) that no image uses; returns (chain id, size) pairs."""
        removed = []
        with self.store.lock:
            used = self._used_chains()
            for layer in self.layers.walk():
                if layer.chain_id not in used:
                    self._delete_layer(layer.chain_id)
                    removed.append((layer.chain_id, layer.size))
        return removed

    def parse_ref(self, ref: str) -> Reference:
        """Normalise a user reference (``busybox`` → ``docker.io/library/busybox:latest``)."""
        return parse_docker_ref(ref)
