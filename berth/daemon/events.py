"""The daemon's event log (``GET /events``): recent history plus live subscribers.

Events are dockerd's shape: ``Type``, ``Action``, ``Actor{ID, Attributes}``, ``scope``, ``time``,
``timeNano``, and for containers and images the legacy ``status``/``id``/``from``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

HISTORY = 1024


class Events:
    def __init__(self) -> None:
        self._history: deque[dict[str, Any]] = deque(maxlen=HISTORY)
        self._subscribers: set[asyncio.Queue] = set()

    def publish(self, type_: str, action: str, actor_id: str, attributes: dict[str, str],
                legacy: bool = False, from_: str = "") -> None:
        now = time.time_ns()
        ev: dict[str, Any] = {}
        if legacy:
            ev.update({"status": action, "id": actor_id})
            if from_:
                ev["from"] = from_
        ev.update({"Type": type_, "Action": action, "Actor": {"ID": actor_id, "Attributes": attributes},
                   "scope": "local", "time": now // 1_000_000_000, "timeNano": now})
        self._history.append(ev)
        for q in list(self._subscribers):
            q.put_nowait(ev)

    def container(self, c: Any, action: str, attrs: dict[str, str]) -> None:
        attributes = dict(c.Config.get("Labels") or {})
        attributes.update({"image": c.Image, "name": c.Name.lstrip("/")})
        attributes.update(attrs)
        self.publish("container", action, c.Id, attributes, legacy=True, from_=c.Image)

    def image(self, action: str, image_id: str, name: str = "") -> None:
        self.publish("image", action, image_id, {"name": name} if name else {}, legacy=True)

    async def stream(self, since: float | None, until: float | None,
                     filters: dict[str, list[str]]) -> AsyncIterator[dict[str, Any]]:
        """Past events from ``since``, then live ones until ``until`` (or forever)."""
        q: asyncio.Queue = asyncio.Queue()
        self._subscribers.add(q)
        try:
            for ev in list(self._history):
                if since is not None and ev["timeNano"] / 1e9 >= since and _matches(ev, filters):
                    if until is not None and ev["timeNano"] / 1e9 > until:
                        break
                    yield ev
            while True:
                if until is not None:
                    remaining = until - time.time()
                    if remaining <= 0:
                        return
                    try:
                        ev = await asyncio.wait_for(q.get(), remaining)
                    except TimeoutError:
                        return
                else:
                    ev = await q.get()
                if since is not None and ev["timeNano"] / 1e9 < since:
                    continue
                if _matches(ev, filters):
                    yield ev
        finally:
            self._subscribers.discard(q)


def _matches(ev: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    actor = ev["Actor"]
    attrs = actor["Attributes"]
    for key, values in filters.items():
        if not values:
            continue
        if key == "type":
            ok = ev["Type"] in values
        elif key == "event":
            ok = ev["Action"] in values or ev["Action"].split(":")[0] in values
        elif key in ("container", "image", "network", "volume"):
            if key != "image" and ev["Type"] != key:
                return False
            ok = any(v == actor["ID"] or actor["ID"].startswith(v) or v == attrs.get("name")
                     or (key == "image" and v == attrs.get("image")) for v in values)
        elif key == "label":
            ok = all((v.partition("=")[0] in attrs) and (not v.partition("=")[1]
                     or attrs[v.partition("=")[0]] == v.partition("=")[2]) for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True
