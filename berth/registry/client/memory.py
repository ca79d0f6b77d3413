"""What Berth remembers about compressed layer blobs: per diff id, the blobs (digest, size) known
to hold it and the repositories (``host/path``) that have each one.

Push uses it to skip recompressing a layer (HEAD the remembered digest: ``Layer already exists``)
and to mount a blob from another repository of the same registry; pull records what it fetched.
Kept in ``<data-root>/registry/blobs.json``, written atomically; a lost file only costs time.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from berth.content.store import atomic_write

MAX_REPOS = 16


class BlobMemory:
    def __init__(self, root: str | Path):
        self.path = Path(root) / "registry" / "blobs.json"
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[dict[str, Any]]]:
        try:
            data = json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def lookup(self, diff_id: str) -> list[dict[str, Any]]:
        """``[{"digest","size","repos":[..]}]`` for ``diff_id``, most recently used first."""
        with self._lock:
            return [dict(e) for e in self._load().get(diff_id, [])]

    def record(self, diff_id: str, digest: str, size: int, repo: str | None = None) -> None:
        with self._lock:
            data = self._load()
            entries = data.setdefault(diff_id, [])
            entry = next((e for e in entries if e.get("digest") == digest), None)
            if entry is None:
                entry = {"digest": digest, "size": size, "repos": []}
            else:
                entries.remove(entry)
            entries.insert(0, entry)
            if repo:
                repos = [r for r in entry.get("repos", []) if r != repo]
                entry["repos"] = ([repo] + repos)[:MAX_REPOS]
            del entries[4:]
            atomic_write(self.path, json.dumps(data, indent=1, sort_keys=True).encode())

    def record_pulled(self, repo: Any, descs: list[dict], diff_ids: list[str]) -> None:
        """Remember the blobs of a pulled image and the repository they came from."""
        key = f"{repo.endpoint.host}/{repo.path}" if not repo.endpoint.mirror else None
        for d, diff_id in zip(descs, diff_ids, strict=False):
            if d.get("mediaType", "").endswith(("gzip", "tar")):
                self.record(diff_id, d["digest"], int(d.get("size") or 0), key)
