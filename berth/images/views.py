"""Engine API shapes of images: summaries (with filters), inspect, history."""

from __future__ import annotations

import re
from typing import Any

from berth.errors import InvalidArgument
from berth.images.config import container_config, parse_time
from berth.images.reference import Reference

IMAGE_FILTERS = ("dangling", "reference", "label", "before", "since")


def normalize_filters(filters: dict[str, Any] | None) -> dict[str, list[str]]:
    """Accept both filter shapes (``{"k":["v"]}`` and ``{"k":{"v":true}}``). Raises InvalidArgument."""
    out: dict[str, list[str]] = {}
    for key, values in (filters or {}).items():
        if key not in IMAGE_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if isinstance(values, dict):
            out[key] = [k for k, v in values.items() if v]
        elif isinstance(values, str):
            out[key] = [values]
        else:
            out[key] = list(values)
    for v in out.get("dangling", []):
        if v.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"Invalid filter 'dangling={v}'")
    return out


def _glob(pattern: str, value: str) -> bool:
    """Go's path.Match: ``*`` and ``?`` do not cross ``/``; ``[...]`` classes; ``\\`` escapes."""
    rx, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            rx.append("[^/]*")
        elif c == "?":
            rx.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            rx.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                return False
            body = pattern[i + 1:j]
            neg = body.startswith("^")
            body = body[1:] if neg else body
            rx.append("[" + ("^" if neg else "") + body.replace("\\", "\\\\") + "]")
            i = j
        else:
            rx.append(re.escape(c))
        i += 1
    try:
        return re.fullmatch("".join(rx), value) is not None
    except re.error:
        return False


def familiar_match(pattern: str, ref: Reference) -> bool:
    """moby's ``reference.FamiliarMatch``: the familiar string, else the familiar name."""
    if _glob(pattern, ref.familiar_string()):
        return True
    return ":" not in pattern and "@" not in pattern and _glob(pattern, ref.familiar_name())


def labels_match(wanted: list[str], labels: dict[str, str] | None) -> bool:
    labels = labels or {}
    for w in wanted:
        key, sep, value = w.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def summary(image_id: str, config: dict[str, Any], meta: dict[str, Any], tags: list[str],
            digests: list[str], size: int) -> dict[str, Any]:
    return {
        "Containers": -1,
        "Created": int(parse_time(config.get("created"))),
        "Id": image_id,
        "Labels": (config.get("config") or {}).get("Labels"),
        "ParentId": meta.get("parent") or "",
        "RepoDigests": digests or None,
        "RepoTags": tags or None,
        "SharedSize": -1,
        "Size": size,
        "VirtualSize": size,
    }


def inspect_body(image_id: str, config: dict[str, Any], meta: dict[str, Any], tags: list[str],
                 digests: list[str], size: int, graph: dict[str, str]) -> dict[str, Any]:
    return {
        "Id": image_id,
        "RepoTags": tags,
        "RepoDigests": digests,
        "Parent": meta.get("parent") or "",
        "Comment": config.get("comment", ""),
        "Created": config.get("created", ""),
        "Container": config.get("container", ""),
        "ContainerConfig": container_config(config.get("container_config")),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": container_config(config.get("config")),
        "Architecture": config.get("architecture", ""),
        **({"Variant": config["variant"]} if config.get("variant") else {}),
        "Os": config.get("os", ""),
        "Size": size,
        "VirtualSize": size,
        "GraphDriver": {"Data": graph, "Name": "overlay2"},
        "RootFS": {"Type": (config.get("rootfs") or {}).get("type", "layers"),
                   "Layers": list((config.get("rootfs") or {}).get("diff_ids") or [])},
        "Metadata": {"LastTagTime": meta.get("last_tag_time") or "0001-01-01T00:00:00Z"},
    }


def history_body(config: dict[str, Any], layer_sizes: list[int],
                 tops: dict[int, tuple[str, list[str]]]) -> list[dict[str, Any]]:
    """``tops`` maps a history index to (image id, tags) of the image whose last step it is."""
    out = []
    layer_index = 0
    for i, h in enumerate(config.get("history") or []):
        size = 0
        if not h.get("empty_layer"):
            size = layer_sizes[layer_index] if layer_index < len(layer_sizes) else 0
            layer_index += 1
        image_id, tags = tops.get(i, ("<missing>", []))
        out.append({"Comment": h.get("comment", ""), "Created": int(parse_time(h.get("created"))),
                    "CreatedBy": h.get("created_by", ""), "Id": image_id,
                    "Size": size, "Tags": tags or None})
    return out[::-1]
