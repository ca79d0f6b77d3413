"""``docker commit``: a container's read-write layer as a new image on top of its image.

The upper dir is written as a layer tar (:func:`berth.layers.diff.diff_tar`) into a content
blob, unpacked through the layer store on top of the image's top layer (parent layers are shared,
never copied), and a child config recorded: the container's config with ``--change`` lines
applied (Docker's ``merge``), the parent's history plus one entry, ``container`` and
``container_config``. The image's parent is the container's image. Pausing a running container
is the caller's business (the API does it around this call).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from berth.images.config import apply_changes, canonical_json, rfc3339_nano
from berth.images.reference import parse_repo_tag
from berth.images.save import go_config
from berth.layers.diff import CONTAINER_INIT_PATHS, EMPTY_LAYER_DIFF_ID, diff_tar


def merge(user: dict[str, Any], image: dict[str, Any]) -> dict[str, Any]:
    """moby's ``daemon/commit.go merge``: fill what ``user`` leaves empty from ``image``."""
    out = copy.deepcopy(user)
    if not out.get("User"):
        out["User"] = image.get("User") or ""
    ports = dict(out.get("ExposedPorts") or {})
    for port, v in (image.get("ExposedPorts") or {}).items():
        ports.setdefault(port, v)
    out["ExposedPorts"] = ports or None
    env = list(out.get("Env") or [])
    keys = {e.split("=", 1)[0] for e in env}
    env += [e for e in image.get("Env") or [] if e.split("=", 1)[0] not in keys]
    out["Env"] = env or None
    labels = dict(out.get("Labels") or {})
    for k, v in (image.get("Labels") or {}).items():
        labels.setdefault(k, v)
    out["Labels"] = labels  # never null after a commit, as in Docker
    if not out.get("Entrypoint"):
        if not out.get("Cmd"):
            out["Cmd"] = image.get("Cmd")
            out["ArgsEscaped"] = image.get("ArgsEscaped")
        if out.get("Entrypoint") is None:
            out["Entrypoint"] = image.get("Entrypoint")
    if out.get("Healthcheck") is None and image.get("Healthcheck") is not None:
        out["Healthcheck"] = image["Healthcheck"]
    if not out.get("WorkingDir"):
        out["WorkingDir"] = image.get("WorkingDir") or ""
    volumes = dict(out.get("Volumes") or {})
    volumes.update(image.get("Volumes") or {})
    out["Volumes"] = volumes or None
    if not out.get("StopSignal"):
        out["StopSignal"] = image.get("StopSignal")
    return out


def commit_container(images: Any, *, container_id: str, image_id: str,
                     container_config: dict[str, Any], upper: Path, repo: str | None = None,
                     tag: str | None = None, author: str = "", comment: str = "",
                     changes: list[str] | None = None,
                     config: dict[str, Any] | None = None) -> str:
    """Record the changes in ``upper`` (the container's overlay upper dir) as a new image; return
    its id. ``container_config`` is the container's Config; ``config`` an optional config from
    the request body that replaces it as the base (Docker's semantics).

    Raises InvalidArgument for a bad reference or change line (before any work), NotFound if the
    container's image is gone, OSError if the upper dir cannot be read.
    """
    ref = parse_repo_tag(repo, tag) if repo else None
    base = copy.deepcopy(config) if config else copy.deepcopy(container_config)
    new_config = merge(apply_changes(base, changes or []), container_config)
    parent = images.resolve(image_id)

    writer = images.content.writer()
    try:
        diff_tar(upper, parent.lower_dirs, writer, exclude=CONTAINER_INIT_PATHS)
        diff_id = writer.digest
        empty = diff_id == EMPTY_LAYER_DIFF_ID
        if not empty:
            with writer.reopen() as f:
                images.layers.apply_tar(f, parent.chain_id, expected_diff_id=diff_id,
                                        blob_digest=diff_id)
            writer.commit()
    finally:
        writer.abort()

    pconf = parent.config
    created = rfc3339_nano()
    history: dict[str, Any] = {"created": created}
    if author:
        history["author"] = author
    history["created_by"] = " ".join(container_config.get("Cmd") or [])
    if comment:
        history["comment"] = comment
    if empty:
        history["empty_layer"] = True
    child: dict[str, Any] = {
        "architecture": pconf.get("architecture") or "amd64",
        "config": go_config(new_config),
        "container": container_id,
        "container_config": go_config(container_config),
        "created": created,
        "history": list(pconf.get("history") or []) + [history],
        "os": pconf.get("os") or "linux",
        "rootfs": {"type": "layers",
                   "diff_ids": parent.diff_ids + ([] if empty else [diff_id])},
    }
    if author:
        child["author"] = author
    if pconf.get("variant"):
        child["variant"] = pconf["variant"]
    child = dict(sorted(child.items()))
    return images.create_image(canonical_json(child), tags=[ref] if ref else [], parent=parent.id)
