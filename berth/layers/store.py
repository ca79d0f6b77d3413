"""Layer (snapshot) store: ``layers/<chain-id hex>/{diff/,meta.json}``.

A layer is unpacked into ``layers/tmp/<random>/diff``, its ``meta.json`` written, then the whole
directory renamed to ``layers/<chain hex>`` - so a layer directory with a ``meta.json`` is always
complete. Layers are immutable and stored once per chain id. ``layers/l/<short>`` are short
symlinks to ``diff`` dirs, used when an overlay option string would get too long (as overlay2).
:meth:`LayerStore.recover` removes what a crash leaves behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from berth.content.store import atomic_write, fsync_dir
from berth.errors import InvalidArgument, NotFound
from berth.layers.archive import unpack_layer

MAX_MOUNT_OPTIONS = 4096 - 1  # one page, including the terminating NUL


def chain_id(diff_ids: list[str]) -> str:
    """chain(1) = diff_id(1); chain(n) = sha256(chain(n-1) + " " + diff_id(n))."""
    if not diff_ids:
        raise InvalidArgument("no layers")
    cur = diff_ids[0]
    for d in diff_ids[1:]:
        cur = "sha256:" + hashlib.sha256(f"{cur} {d}".encode()).hexdigest()
    return cur


def chain_ids(diff_ids: list[str]) -> list[str]:
    """The chain id of every prefix of ``diff_ids`` (bottom first)."""
    return [chain_id(diff_ids[: i + 1]) for i in range(len(diff_ids))]


def _hex(digest: str) -> str:
    algo, _, h = digest.partition(":")
    if algo != "sha256" or len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise InvalidArgument(f"invalid layer id: {digest!r}")
    return h


@dataclass(frozen=True)
class Layer:
    """An immutable, unpacked layer. ``path`` is its diff dir (an overlayfs lower dir)."""

    chain_id: str
    diff_id: str
    parent: str | None
    size: int
    blob_digest: str | None
    path: Path


class LayerStoreProtocol(Protocol):
    def apply_tar(self, reader: BinaryIO, parent_chain_id: str | None = None, *,
                  expected_diff_id: str | None = None, blob_digest: str | None = None) -> Layer: ...
    def get(self, chain_id: str) -> Layer: ...
    def exists(self, chain_id: str) -> bool: ...
    def lower_dirs(self, chain_id: str) -> list[Path]: ...
    def size(self, chain_id: str) -> int: ...
    def delete(self, chain_id: str) -> None: ...
    def overlay_mounts(self, lower_dirs_bottom_first: list[Path], upper: Path | None,
                       work: Path | None) -> list[dict]: ...


class LayerStore:
    """Unpacked layers under ``<root>/layers``; see the module docstring for the guarantees."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root) / "layers"
        self._tmp = self.root / "tmp"
        self._links = self.root / "l"
        for d in (self.root, self._tmp, self._links):
            d.mkdir(parents=True, exist_ok=True)

    # -- queries -----------------------------------------------------------------------------
    def _dir(self, chain_id: str) -> Path:
        return self.root / _hex(chain_id)

    def exists(self, chain_id: str) -> bool:
        return (self._dir(chain_id) / "meta.json").is_file()

    def get(self, chain_id: str) -> Layer:
        """The layer ``chain_id``. Raises NotFound."""
        d = self._dir(chain_id)
        try:
            meta = json.loads((d / "meta.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"layer {chain_id}: not found") from None
        return Layer(chain_id=meta["chain_id"], diff_id=meta["diff_id"], parent=meta.get("parent"),
                     size=meta.get("size", 0), blob_digest=meta.get("blob_digest"), path=d / "diff")

    def walk(self) -> list[Layer]:
        """Every complete layer."""
        out = []
        for entry in os.scandir(self.root):
            if len(entry.name) == 64 and os.path.isfile(os.path.join(entry.path, "meta.json")):
                out.append(self.get("sha256:" + entry.name))
        return out

    def chain(self, chain_id: str) -> list[Layer]:
        """The layer and its ancestors, bottom first. Raises NotFound if any is missing."""
        layers = []
        cur: str | None = chain_id
        while cur is not None:
            layer = self.get(cur)
            layers.append(layer)
            cur = layer.parent
        return layers[::-1]

    def lower_dirs(self, chain_id: str) -> list[Path]:
        """Diff dirs of the layer and its ancestors, bottom first. Raises NotFound."""
        return [layer.path for layer in self.chain(chain_id)]

    def size(self, chain_id: str) -> int:
        """Bytes of file content in this layer alone. Raises NotFound."""
        return self.get(chain_id).size

    # -- changes -----------------------------------------------------------------------------
    def apply_tar(self, reader: BinaryIO, parent_chain_id: str | None = None, *,
                  expected_diff_id: str | None = None, blob_digest: str | None = None) -> Layer:
        """Unpack the layer tar ``reader`` (gzip/bzip2/xz/plain) on top of ``parent_chain_id``.

        If ``expected_diff_id`` is given and that layer already exists, nothing is read or
        unpacked. Otherwise the tar is unpacked into a temp dir; if its chain id already exists
        the temp dir is discarded and the existing layer returned. Raises NotFound for an unknown
        parent, InvalidArgument for a bad or hostile tar or an ``expected_diff_id`` mismatch
        (nothing is stored then).
        """
        if parent_chain_id is not None and not self.exists(parent_chain_id):
            raise NotFound(f"layer {parent_chain_id}: not found")
        if expected_diff_id is not None:
            cid = chain_id([parent_chain_id, expected_diff_id]) if parent_chain_id else expected_diff_id
            if self.exists(cid):
                return self.get(cid)
        tmp = Path(tempfile.mkdtemp(dir=self._tmp, prefix="unpack-"))
        try:
            (tmp / "diff").mkdir(mode=0o755)
            result = unpack_layer(reader, str(tmp / "diff"))
            if expected_diff_id is not None and result.diff_id != expected_diff_id:
                raise InvalidArgument(
                    f"layer diff id mismatch: expected {expected_diff_id}, got {result.diff_id}")
            cid = chain_id([parent_chain_id, result.diff_id]) if parent_chain_id else result.diff_id
            final = self._dir(cid)
            if (final / "meta.json").is_file():
                return self.get(cid)
            h = _hex(cid)
            meta = {"chain_id": cid, "diff_id": result.diff_id, "parent": parent_chain_id,
                    "size": result.size, "tar_size": result.tar_size, "blob_digest": blob_digest,
                    "short": h[:16]}
            atomic_write(tmp / "meta.json", json.dumps(meta, indent=1).encode())
            link = self._links / h[:16]
            if not link.is_symlink():
                os.symlink(f"../{h}/diff", link)
            try:
                os.rename(tmp, final)
            except OSError:
                if (final / "meta.json").is_file():  # a concurrent apply of the same layer won
                    return self.get(cid)
                shutil.rmtree(final, ignore_errors=True)  # leftover without meta.json
                os.rename(tmp, final)
            fsync_dir(self.root)
            return self.get(cid)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def delete(self, chain_id: str) -> None:
        """Remove a layer (the caller checks nothing uses it). Raises NotFound.

        meta.json goes first (renamed away) so a crash leaves a dir that recover() removes.
        """
        d = self._dir(chain_id)
        if not (d / "meta.json").is_file():
            raise NotFound(f"layer {chain_id}: not found")
        trash = Path(tempfile.mkdtemp(dir=self._tmp, prefix="delete-"))
        os.rename(d, trash / "layer")
        fsync_dir(self.root)
        try:
            os.unlink(self._links / _hex(chain_id)[:16])
        except FileNotFoundError:
            pass
        shutil.rmtree(trash, ignore_errors=True)

    def recover(self) -> list[str]:
        """Start-up cleanup: temp dirs, layer dirs without meta.json, dangling short links."""
        removed = []
        for entry in os.scandir(self._tmp):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        for entry in os.scandir(self.root):
            if entry.name in ("tmp", "l"):
                continue
            if entry.is_dir(follow_symlinks=False) and not os.path.isfile(
                    os.path.join(entry.path, "meta.json")):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
        for entry in os.scandir(self._links):
            if not os.path.exists(entry.path):
                os.unlink(entry.path)
                removed.append(entry.path)
        return removed

    # -- mounts ------------------------------------------------------------------------------
    def overlay_mounts(self, lower_dirs_bottom_first: list[Path], upper: Path | None = None,
                       work: Path | None = None) -> list[dict]:
        """The rootfs mount as data; the runtime performs it.

        With ``upper``/``work``: an overlay with ``lowerdir=<top>:...:<bottom>``. Without: a
        read-only overlay (or a read-only bind for a single lower dir, which overlayfs cannot
        mount alone). If the option string would exceed a page, lower dirs are named by their
        ``layers/l/<short>`` links; if still too long, by relative ``l/<short>`` paths and the
        mount carries ``"cwd"``: the runtime must chdir there before mounting (as overlay2 does).
        Raises InvalidArgument if there is no lower dir or it still does not fit.
        """
        if not lower_dirs_bottom_first:
            raise InvalidArgument("no lower dirs")
        if upper is None and len(lower_dirs_bottom_first) == 1:
            return [{"type": "bind", "source": str(lower_dirs_bottom_first[0]),
                     "options": ["rbind", "ro"]}]
        tail = []
        if upper is not None:
            if work is None:
                raise InvalidArgument("an overlay with an upper dir needs a work dir")
            tail = [f"upperdir={upper}", f"workdir={work}"]
        if _overlay_index_supported():
            tail.append("index=off")
        top_first = list(reversed(lower_dirs_bottom_first))
        candidates: list[tuple[list[str], str | None]] = [([str(p) for p in top_first], None)]
        shorts = [self._short_for(p) for p in top_first]
        if all(s is not None for s in shorts):
            candidates.append(([str(self._links / s) for s in shorts], None))  # type: ignore[operator]
            candidates.append(([f"l/{s}" for s in shorts], str(self.root)))
        for lowers, cwd in candidates:
            options = ["lowerdir=" + ":".join(lowers), *tail]
            if upper is None:
                options.insert(0, "ro")
            if len(",".join(options)) <= MAX_MOUNT_OPTIONS:
                mount: dict = {"type": "overlay", "source": "overlay", "options": options}
                if cwd is not None:
                    mount["cwd"] = cwd
                return [mount]
        raise InvalidArgument(f"too many layers ({len(lower_dirs_bottom_first)}) for an overlay mount")

    def _short_for(self, diff: Path) -> str | None:
        d = Path(diff)
        if d.name != "diff" or d.parent.parent != self.root:
            return None
        short = d.parent.name[:16]
        return short if (self._links / short).is_symlink() else None


def _overlay_index_supported() -> bool:
    return os.path.exists("/sys/module/overlay/parameters/index")
