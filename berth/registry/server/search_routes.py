"""``GET /v1/search?q=&n=&page=``: the v1 search API ``docker search`` uses, over the catalog.

A result is a repository of the catalog whose name contains ``q`` (case-insensitive; an empty
``q`` matches every repository), sorted by name. There are no descriptions, stars or official
images here: ``description`` is ``""``, ``star_count`` 0, ``is_official`` and ``is_automated``
false. The body is Docker Hub's shape::

    {"num_results": 3, "num_pages": 2, "page": 1, "page_size": 2, "query": "app",
     "results": [{"name": "bt/app", "description": "", "star_count": 0, ...}, ...]}

``n`` is the page size (default 25, at most 100), ``page`` counts from 1; a non-numeric or
non-positive value is 400 PAGINATION_NUMBER_INVALID. A page past the end is empty. The route
sits behind the application's auth middleware, so htpasswd auth applies as for ``/v2/``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiohttp import web

from berth.registry.server.errors import RegistryError

if TYPE_CHECKING:
    from berth.registry.server.app import Registry

DEFAULT_PAGE_SIZE = 25
MAX_PAGE_SIZE = 100


def _positive(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={name: raw}) from None
    if value < 1:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={name: raw})
    return value


def result(name: str) -> dict[str, Any]:
    return {"name": name, "description": "", "star_count": 0, "is_official": False,
            "is_automated": False}


def search_page(repositories: list[str], query: str, page_size: int, page: int) -> dict[str, Any]:
    """The response body for one page of the repositories matching ``query``."""
    q = query.lower()
    matches = [r for r in repositories if q in r.lower()]
    start = (page - 1) * page_size
    return {
        "num_results": len(matches),
        "num_pages": (len(matches) + page_size - 1) // page_size,
        "page": page,
        "page_size": page_size,
        "query": query,
        "results": [result(r) for r in matches[start:start + page_size]],
    }


def register(app: web.Application, reg: Registry) -> None:
    """Add ``GET /v1/search`` (and HEAD) to ``app``."""

    async def search(request: web.Request) -> web.Response:
        page_size = min(_positive(request, "n", DEFAULT_PAGE_SIZE), MAX_PAGE_SIZE)
        page = _positive(request, "page", 1)
        repos = await asyncio.to_thread(reg.storage.repositories)
        return web.json_response(search_page(repos, request.query.get("q", ""), page_size, page))

    app.router.add_get("/v1/search", search)
