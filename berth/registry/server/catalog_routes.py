"""``GET /v2/_catalog`` and ``GET /v2/<name>/tags/list``, paginated with ``n`` and ``last``.

Entries are sorted; a page holds the entries after ``last``, at most ``n`` of them; when more
remain, ``Link: <url?last=...&n=...>; rel="next"`` points at the next page. ``n=0`` gives an
empty page; a negative or non-numeric ``n`` is PAGINATION_NUMBER_INVALID. The catalog returns at
most :data:`CATALOG_MAX` entries per page.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from aiohttp import web

from berth.registry.server.errors import RegistryError

if TYPE_CHECKING:
    from berth.registry.server.app import Registry

CATALOG_MAX = 1000


def _page(request: web.Request, entries: list[str], default_n: int | None,
          max_n: int | None) -> tuple[list[str], dict[str, str]]:
    raw_n = request.query.get("n")
    n = default_n
    if raw_n is not None and raw_n != "":
        try:
            n = int(raw_n)
        except ValueError:
            raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw_n}) from None
        if n < 0:
            raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw_n})
    if max_n is not None and (n is None or n > max_n):
        n = max_n
    last = request.query.get("last")
    if last:
        entries = [e for e in entries if e > last]
    if n is None or len(entries) <= n:
        return entries, {}
    page = entries[:n]
    headers = {}
    if page:
        query = urlencode({"last": page[-1], "n": n})
        headers["Link"] = f'<{request.path}?{query}>; rel="next"'
    return page, headers


async def catalog(request: web.Request, reg: Registry) -> web.Response:
    repos = await asyncio.to_thread(reg.storage.repositories)
    page, headers = _page(request, repos, None, CATALOG_MAX)
    return web.json_response({"repositories": page}, headers=headers)


async def tags_list(request: web.Request, reg: Registry, name: str) -> web.Response:
    """Raises NAME_UNKNOWN for a repository without manifests."""
    tags = await asyncio.to_thread(reg.storage.tags, name)
    page, headers = _page(request, tags, None, None)
    return web.json_response({"name": name, "tags": page}, headers=headers)
