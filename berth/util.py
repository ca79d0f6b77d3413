"""Small shared helpers: atomic metadata writes and Docker's time formats."""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ZERO_TIME = "0001-01-01T00:00:00Z"


def atomic_write_bytes(path: Path | str, data: bytes, mode: int = 0o644, durable: bool = True) -> None:
    """Write to a temp file beside ``path``, fsync, rename: readers see old or new, never half.

    ``durable=False`` skips the fsync, for run-time state that a power loss makes moot anyway
    (a container's state, its exit code, its bundle): it saves milliseconds on every start."""
    path = Path(path)
    # One temp name per file and thread: no random names to make, no clash between writers.
    tmp = str(path.with_name(f".tmp-{path.name}-{os.getpid()}-{threading.get_ident()}"))
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            _write_all(fd, data)
            if durable:
                os.fsync(fd)
            os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def atomic_write_json(path: Path | str, data: Any, durable: bool = True) -> None:
    atomic_write_bytes(path, json.dumps(data, indent=1).encode(), durable=durable)


def read_json(path: Path | str, default: Any = None) -> Any:
    try:
        with open(path, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return default


def rfc3339_nano(ns: int | None = None) -> str:
    """``2026-11-26T21:52:58.582375964Z``: Docker's fixed 9-digit RFC 3339 time."""
    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"


def rfc3339_now() -> str:
    return rfc3339_nano()


def parse_rfc3339(value: str) -> float:
    """Seconds since the epoch for a time written by ``rfc3339_nano`` (0 for the zero time)."""
    if not value or value.startswith("0001-"):
        return 0.0
    main, _, frac = value.rstrip("Z").partition(".")
    secs = datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return secs + (float("0." + frac) if frac else 0.0)
