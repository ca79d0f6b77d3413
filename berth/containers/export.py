"""``docker export`` and ``docker diff`` of a container, read from its layer dirs (no mount).

The rootfs is the union of the container's overlay upper dir over its image's layers, computed
in Python (upper wins, whiteouts hide, opaque dirs cut what lies below), with ``/.dockerenv``
added as Docker's init layer does. Raises OSError if a layer dir cannot be read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, BinaryIO

from berth.layers.diff import changes, merged_tar


def container_layers(c: Any, images: Any) -> tuple[Path, list[Path]]:
    """(upper dir, image lower dirs bottom first) of a container record. Raises NotFound."""
    lowers = images.resolve(c.ImageID).lower_dirs
    return Path(c.dir) / "rw" / "upper", list(lowers)


def export_container(c: Any, images: Any, out: BinaryIO) -> None:
    """Write the container's merged rootfs as a tar to ``out``."""
    upper, lowers = container_layers(c, images)
    layers = ([upper] if upper.is_dir() else []) + list(reversed(lowers))
    merged_tar(layers, out, extra_files={".dockerenv": b""})


def container_changes(c: Any, images: Any) -> list[dict]:
    """``docker diff``: ``[{"Path": .., "Kind": 0|1|2}]`` (modified, added, deleted)."""
    upper, lowers = container_layers(c, images)
    if not upper.is_dir():
        return []
    return changes(upper, lowers)
