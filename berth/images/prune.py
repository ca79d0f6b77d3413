"""``image prune`` and the image half of ``system df``: what is unused, what it costs on disk."""

from __future__ import annotations

import time
from typing import Any

from berth.errors import BerthError, InvalidArgument
from berth.images.config import parse_time_ns
from berth.layers.store import chain_ids


def _diff_ids(config: dict[str, Any]) -> list[str]:
    return list((config.get("rootfs") or {}).get("diff_ids") or [])


def _until(values: list[str]) -> float | None:
    if not values:
        return None
    value = values[-1]
    try:
        return float(value)
    except ValueError:
        pass
    units = {"s": 1, "m": 60, "h": 3600}
    if value[-1:] in units and value[:-1].isdigit():
        return time.time() - int(value[:-1]) * units[value[-1]]
    raise InvalidArgument(f"invalid filter 'until={value}'")


def _labels_ok(labels: dict[str, str], wanted: list[str], negated: list[str]) -> bool:
    def has(expr: str) -> bool:
        key, eq, val = expr.partition("=")
        return key in labels and (not eq or labels[key] == val)
    return all(has(w) for w in wanted) and not any(has(n) for n in negated)


def prune_images(images: Any, filters: dict[str, list[str]]) -> dict[str, Any]:
    """Delete dangling images (``dangling=false``: every image no container uses).

    Images with children are left until their children go; returns dockerd's reply body."""
    dangling_only = (filters.get("dangling") or ["true"])[-1].lower() in ("true", "1")
    until = _until(filters.get("until", []))
    store = images.store
    sizes = {layer.chain_id: layer.size for layer in images.layers.walk()}
    deleted: list[dict[str, str]] = []
    progress = True
    while progress:
        progress = False
        refs = store.refs()
        parents = {store.meta(i).get("parent") for i in store.ids()}
        for image_id in store.ids():
            if image_id in parents or (images.image_in_use and images.image_in_use(image_id)):
                continue
            tagged = any(i == image_id for i in refs.values())
            if dangling_only and tagged:
                continue
            config = store.config(image_id)
            if until is not None and parse_time_ns(config.get("created")) / 1e9 > until:
                continue
            labels = (config.get("config") or {}).get("Labels") or {}
            if not _labels_ok(labels, filters.get("label", []), filters.get("label!", [])):
                continue
            try:
                deleted.extend(images.remove(image_id, force=True))
            except BerthError:
                continue
            progress = True
    reclaimed = sum(sizes.get(d["Deleted"], 0) for d in deleted if "Deleted" in d)
    # layers left by an interrupted pull or load (kept by start-up recovery for a retry)
    for chain_id, size in images.prune_unused_layers():
        deleted.append({"Deleted": chain_id})
        reclaimed += size
    return {"ImagesDeleted": deleted or None, "SpaceReclaimed": reclaimed}


def image_disk_usage(images: Any, containers_per_image: dict[str, int]) -> tuple[int, list[dict]]:
    """(total size of all layers, image summaries with real Containers and SharedSize)."""
    store = images.store
    layer_sizes = {layer.chain_id: layer.size for layer in images.layers.walk()}
    users: dict[str, int] = {}
    chains_of: dict[str, list[str]] = {}
    for image_id in store.ids():
        diff_ids = _diff_ids(store.config(image_id))
        chains_of[image_id] = chain_ids(diff_ids) if diff_ids else []
        for cid in chains_of[image_id]:
            users[cid] = users.get(cid, 0) + 1
    out = []
    for summary in images.list_images(all=True):
        chains = chains_of.get(summary["Id"], [])
        summary["SharedSize"] = sum(layer_sizes.get(c, 0) for c in chains if users.get(c, 0) > 1)
        summary["Containers"] = containers_per_image.get(summary["Id"], 0)
        out.append(summary)
    return sum(layer_sizes.values()), out
