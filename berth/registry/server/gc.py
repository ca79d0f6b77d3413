"""Offline garbage collection, like ``registry garbage-collect``: mark, then sweep.

Mark: every manifest revision of every repository (with ``delete_untagged``, only those a tag
reaches, directly or through an index; the other revisions are unlinked) and everything those
manifests reference (config, layers, child manifests). Sweep: delete every blob in ``blobs/``
nothing marked, and the repository layer links that pointed at deleted blobs.

Run it while no server writes to the root: an upload committed during the sweep whose manifest is
not pushed yet would be collected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from berth.registry.server.storage import Storage


@dataclass
class GCResult:
    marked: set[str] = field(default_factory=set)
    deleted_blobs: list[str] = field(default_factory=list)
    deleted_manifests: list[tuple[str, str]] = field(default_factory=list)
    freed_bytes: int = 0


def _references(storage: Storage, digest: str) -> tuple[list[str], list[str]]:
    """``(blobs, child manifests)`` a stored manifest references (empty if unreadable)."""
    try:
        doc = json.loads(storage.read_blob(digest))
    except (OSError, ValueError):
        return [], []
    if not isinstance(doc, dict):
        return [], []
    blobs, children = [], []
    config = doc.get("config")
    if isinstance(config, dict) and isinstance(config.get("digest"), str):
        blobs.append(config["digest"])
    for key, out in (("layers", blobs), ("manifests", children)):
        for d in doc.get(key) or []:
            if isinstance(d, dict) and isinstance(d.get("digest"), str):
                out.append(d["digest"])
    return blobs, children


def collect(root: str | os.PathLike[str], dry_run: bool = False, delete_untagged: bool = False,
            log: Callable[[str], None] = lambda s: None) -> GCResult:
    """Collect garbage under ``root``; with ``dry_run`` only report. Returns what was (or would be)
    deleted."""
    storage = Storage(root)
    res = GCResult()
    for repo in storage.repositories():
        revisions = set(storage.manifest_revisions(repo))
        keep = set(revisions)
        if delete_untagged:
            keep = set()
            todo = [d for d in storage.tag_map(repo).values() if d in revisions]
            while todo:
                d = todo.pop()
                if d in keep:
                    continue
                keep.add(d)
                todo.extend(c for c in _references(storage, d)[1] if c in revisions)
            for d in sorted(revisions - keep):
                log(f"{repo}: deleting untagged manifest {d}")
                res.deleted_manifests.append((repo, d))
                if not dry_run:
                    storage.delete_manifest(repo, d)
        for d in keep:
            res.marked.add(d)
            blobs, children = _references(storage, d)
            res.marked.update(blobs)
            res.marked.update(children)
    for digest in list(storage.walk_blobs()):
        if digest in res.marked:
            continue
        try:
            size = storage.blob_size(digest)
        except FileNotFoundError:
            continue
        log(f"deleting blob {digest} ({size} bytes)")
        res.deleted_blobs.append(digest)
        res.freed_bytes += size
        if not dry_run:
            storage.delete_blob(digest)
    if not dry_run:
        gone = set(res.deleted_blobs)
        for repo in _all_repo_dirs(storage):
            for d in list(storage.layer_links(repo)):
                if d in gone or not storage.blob_exists(d):
                    storage.unlink_layer(repo, d)
    return res


def _all_repo_dirs(storage: Storage) -> list[str]:
    """Every repository with a ``_layers`` dir (also blob-only ones the catalog does not list)."""
    out = []
    for dirpath, dirnames, _ in os.walk(storage.repos_dir):
        if "_layers" in dirnames:
            out.append(os.path.relpath(dirpath, storage.repos_dir))
        dirnames[:] = [d for d in dirnames if not d.startswith("_")]
    return out
