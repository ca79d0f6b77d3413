"""Image metadata and the tag store.

``images/<id hex>/meta.json`` holds an image's metadata (config digest, created, parent, top
chain id, last tag time); the config itself is a content blob whose digest is the image id.
``images/repositories.json`` maps normalised references (``docker.io/library/busybox:latest``)
to image ids. All writes are atomic; callers serialise mutations with :attr:`ImageStore.lock`.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from berth.content.store import ContentStore, atomic_write
from berth.errors import NotFound


def _hex(image_id: str) -> str:
    return image_id.split(":", 1)[1] if image_id.startswith("sha256:") else image_id


class ImageStore:
    """Image records and references on disk; no policy (that is ImageService's job)."""

    def __init__(self, root: str | os.PathLike[str], content: ContentStore):
        self.root = Path(root) / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.content = content
        self.lock = threading.RLock()
        self._repos_path = self.root / "repositories.json"

    # -- images --------------------------------------------------------------------------------
    def put(self, image_id: str, meta: dict[str, Any]) -> None:
        """Record image metadata (the config blob must already be in the content store)."""
        d = self.root / _hex(image_id)
        d.mkdir(exist_ok=True)
        atomic_write(d / "meta.json", json.dumps(meta, indent=1).encode())

    def exists(self, image_id: str) -> bool:
        return (self.root / _hex(image_id) / "meta.json").is_file()

    def meta(self, image_id: str) -> dict[str, Any]:
        """Raises NotFound."""
        try:
            return json.loads((self.root / _hex(image_id) / "meta.json").read_text())
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None

    def config(self, image_id: str) -> dict[str, Any]:
        """The image config (parsed from its blob). Raises NotFound."""
        return json.loads(self.content.read_bytes(self.meta(image_id)["config_digest"]))

    def ids(self) -> list[str]:
        out = []
        for entry in os.scandir(self.root):
            if len(entry.name) == 64 and os.path.isfile(os.path.join(entry.path, "meta.json")):
                out.append("sha256:" + entry.name)
        return out

    def delete(self, image_id: str) -> None:
        """Remove the image record (meta.json first, so a crash leaves a dir recover() removes)."""
        d = self.root / _hex(image_id)
        try:
            os.unlink(d / "meta.json")
        except FileNotFoundError:
            raise NotFound(f"No such image: {image_id}") from None
        shutil.rmtree(d, ignore_errors=True)

    # -- references ----------------------------------------------------------------------------
    def refs(self) -> dict[str, str]:
        """Every normalised reference → image id."""
        try:
            data = json.loads(self._repos_path.read_text())
        except FileNotFoundError:
            return {}
        return dict(data.get("refs", {}))

    def _write_refs(self, refs: dict[str, str]) -> None:
        atomic_write(self._repos_path, json.dumps({"refs": dict(sorted(refs.items()))}, indent=1).encode())

    def set_ref(self, ref: str, image_id: str) -> str | None:
        """Point ``ref`` at ``image_id``; returns the image it pointed at before (or None)."""
        with self.lock:
            refs = self.refs()
            old = refs.get(ref)
            refs[ref] = image_id
            self._write_refs(refs)
            return old

    def remove_ref(self, ref: str) -> str:
        """Remove ``ref``; returns the image id it pointed at. Raises NotFound."""
        with self.lock:
            refs = self.refs()
            if ref not in refs:
                raise NotFound(f"No such image: {ref}")
            image_id = refs.pop(ref)
            self._write_refs(refs)
            return image_id

    def refs_for(self, image_id: str) -> list[str]:
        return sorted(r for r, i in self.refs().items() if i == image_id)

    # -- recovery ------------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Remove image dirs without meta.json or config blob, refs to missing images, temp files."""
        removed = []
        with self.lock:
            for entry in os.scandir(self.root):
                if entry.name.startswith(".tmp-"):
                    os.unlink(entry.path)
                    removed.append(entry.path)
                elif entry.is_dir() and len(entry.name) == 64:
                    meta_path = os.path.join(entry.path, "meta.json")
                    ok = os.path.isfile(meta_path)
                    if ok:
                        try:
                            digest = json.loads(Path(meta_path).read_text())["config_digest"]
                            ok = self.content.exists(digest)
                        except (ValueError, KeyError):
                            ok = False
                    if not ok:
                        shutil.rmtree(entry.path, ignore_errors=True)
                        removed.append(entry.path)
                    else:
                        for tmp in os.scandir(entry.path):
                            if tmp.name.startswith(".tmp-"):
                                os.unlink(tmp.path)
            refs = self.refs()
            live = {r: i for r, i in refs.items() if self.exists(i)}
            if live != refs:
                removed.extend(sorted(set(refs) - set(live)))
                self._write_refs(live)
        return removed
