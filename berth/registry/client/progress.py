"""Progress messages as dockerd writes them (one JSON object per line of a pull/push stream).

``progress_string`` renders the bar the way moby's ``JSONProgress.String`` does for a daemon
(no terminal: width 200, no time left): ``[=====>     ]  1.2MB/2.1MB``.
"""

from __future__ import annotations

import time
from typing import Any

Event = dict[str, Any]


def human_size(n: float) -> str:
    """go-units ``HumanSize``: decimal units, 4 significant digits (``527B``, ``2.102MB``)."""
    units = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
    i = 0
    size = float(n)
    while size >= 1000 and i < len(units) - 1:
        size /= 1000
        i += 1
    return f"{size:.4g}{units[i]}"


def progress_string(current: int, total: int) -> str:
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current):>8}"
    pct = min(int(current / total * 100) // 2, 50)
    bar = "[" + "=" * pct + ">" + " " * max(50 - pct, 0) + "] "
    if current > total:
        return bar + f"{human_size(current):>8}"
    return bar + f"{human_size(current):>8}/{human_size(total)}"


def status(text: str, id: str | None = None) -> Event:
    ev: Event = {"status": text}
    if id is not None:
        ev["id"] = id
    return ev


def layer(text: str, id: str) -> Event:
    return {"status": text, "progressDetail": {}, "id": id}


def bar(text: str, id: str, current: int, total: int) -> Event:
    return {"status": text, "progressDetail": {"current": current, "total": total},
            "progress": progress_string(current, total), "id": id}


def error(message: str) -> Event:
    return {"errorDetail": {"message": message}, "error": message}


def short_id(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]


class Throttle:
    """Says when a progress update is worth sending: every 100 ms, and always at the end."""

    def __init__(self, interval: float = 0.1):
        self.interval = interval
        self._last = 0.0

    def __call__(self, done: bool = False) -> bool:
        now = time.monotonic()
        if done or now - self._last >= self.interval:
            self._last = now
            return True
        return False
