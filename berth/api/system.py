"""/_ping, /version, /info: negotiation and facts about the daemon."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api.app import API_VERSION, MIN_API_VERSION, add_route
from berth.api.util import json_response
from berth.errors import InvalidArgument

_PING_HEADERS = {
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
    "Content-Type": "text/plain; charset=utf-8",
}


def register(router: web.UrlDispatcher, system: Any) -> None:
    async def ping(request: web.Request) -> web.Response:
        return web.Response(body=b"OK", headers=_PING_HEADERS)  # aiohttp drops it for HEAD

    async def version(request: web.Request) -> web.Response:
        return json_response(system.version(API_VERSION, MIN_API_VERSION))

    async def info(request: web.Request) -> web.Response:
        return json_response(system.info())

    async def df(request: web.Request) -> web.Response:
        return json_response(await system.disk_usage())

    async def networks_prune(request: web.Request) -> web.Response:
        return json_response({"NetworksDeleted": None})  # no user networks yet

    async def build_prune(request: web.Request) -> web.Response:
        return json_response({"CachesDeleted": None, "SpaceReclaimed": 0})  # no build cache yet

    async def events(request: web.Request) -> web.StreamResponse:
        import json

        from berth.api.util import filters

        def t(name: str) -> float | None:
            value = request.query.get(name, "")
            try:
                return float(value) if value else None
            except ValueError:
                raise InvalidArgument(f"invalid value for {name}: {value!r}") from None

        since, until = t("since"), t("until")
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        async for ev in system.events.stream(since, until, filters(request)):
            await resp.write(json.dumps(ev).encode() + b"\n")
        await resp.write_eof()
        return resp

    add_route(router, "GET", "/events", events)
    add_route(router, "GET", "/system/df", df)
    add_route(router, "POST", "/networks/prune", networks_prune)
    add_route(router, "POST", "/build/prune", build_prune)
    for method in ("GET", "HEAD"):
        add_route(router, method, "/_ping", ping)
    add_route(router, "GET", "/version", version)
    add_route(router, "GET", "/info", info)
