"""Routes for exec: create under /containers/{id}/exec, then /exec/{id}/start|resize|json (§7)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from berth.api.app import add_route
from berth.api.hijack import hijack
from berth.api.util import json_body, json_response, qint


def register(router: web.UrlDispatcher, containers: Any) -> None:
    def execs() -> Any:
        return containers.execs

    async def create(request: web.Request) -> web.Response:
        body = await json_body(request)
        return json_response(execs().create(request.match_info["id"], body), status=201)

    async def start(request: web.Request) -> web.StreamResponse:
        eid = request.match_info["id"]
        body = await json_body(request)
        e = execs().get(eid)
        execs().check_startable(e)  # errors must come before the upgrade
        if body.get("Tty") is not None:
            e.config["Tty"] = bool(body["Tty"])
        if body.get("Detach"):
            await execs().start(eid, detach=True, client=None, console_size=body.get("ConsoleSize"))
            return web.Response(status=200)
        resp, raw = await hijack(request)
        try:
            await execs().start(eid, detach=False, client=raw, console_size=body.get("ConsoleSize"))
        finally:
            raw.close()
        return resp

    async def resize(request: web.Request) -> web.Response:
        await execs().resize(request.match_info["id"], qint(request, "h", 0), qint(request, "w", 0))
        return web.Response(status=200)

    async def inspect(request: web.Request) -> web.Response:
        return json_response(execs().inspect(request.match_info["id"]))

    add_route(router, "POST", "/containers/{id}/exec", create)
    add_route(router, "POST", "/exec/{id}/start", start)
    add_route(router, "POST", "/exec/{id}/resize", resize)
    add_route(router, "GET", "/exec/{id}/json", inspect)
