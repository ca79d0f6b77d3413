"""What ``docker save`` (save.py) and ``docker load`` (load.py) share: the spool directory for
temporary tars inside the data-root, the copy chunk size, and the digest of a byte string."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def spool_dir(images: Any) -> Path:
    """The directory for temporary tars (``<data-root>/tmp`` unless the service names one),
    created if missing."""
    d = Path(getattr(images, "tmp_dir", None) or Path(images.root) / "tmp")
    d.mkdir(parents=True, exist_ok=True)
    return d
