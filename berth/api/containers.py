"""Routes under /containers: a thin layer over the containers service (see §6 of ENGINE-API.md)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from berth.api.app import add_route
from berth.api.hijack import hijack
from berth.api.util import filters, json_body, json_response, qbool, qint
from berth.containers.attach import AttachSession
from berth.containers.protocol import frame
from berth.errors import InvalidArgument


def _since(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for since/until: {value}") from None


def register(router: web.UrlDispatcher, svc: Any) -> None:
    async def create(request: web.Request) -> web.Response:
        body = await json_body(request)
        result = await svc.create(request.query.get("name") or None, body)
        return json_response(result, status=201)

    async def listing(request: web.Request) -> web.Response:
        limit = qint(request, "limit", -1)
        if qbool(request, "latest"):
            limit = 1
        return json_response(svc.list(all=qbool(request, "all") or (limit or 0) > 0,
                                      limit=limit, filters=filters(request)))

    async def inspect(request: web.Request) -> web.Response:
        return json_response(svc.inspect(request.match_info["id"]))

    async def start(request: web.Request) -> web.Response:
        await svc.start(request.match_info["id"])
        return web.Response(status=204)

    async def stop(request: web.Request) -> web.Response:
        await svc.stop(request.match_info["id"], qint(request, "t"))
        return web.Response(status=204)

    async def restart(request: web.Request) -> web.Response:
        await svc.restart(request.match_info["id"], qint(request, "t"))
        return web.Response(status=204)

    async def kill(request: web.Request) -> web.Response:
        await svc.kill(request.match_info["id"], request.query.get("signal") or None)
        return web.Response(status=204)

    async def remove(request: web.Request) -> web.Response:
        await svc.remove(request.match_info["id"], force=qbool(request, "force"), volumes=qbool(request, "v"))
        return web.Response(status=204)

    async def wait(request: web.Request) -> web.StreamResponse:
        c, fut = svc.wait_future(request.match_info["id"], request.query.get("condition", ""))
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)  # headers at once, body at exit, as dockerd does
        code = await fut
        await resp.write(json.dumps({"Error": None, "StatusCode": code}).encode() + b"\n")
        await resp.write_eof()
        return resp

    async def attach(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        svc.get(ref)  # 404 before the upgrade
        want_logs = qbool(request, "logs")
        resp, raw = await hijack(request)
        session = AttachSession(raw, stdin=qbool(request, "stdin"), stdout=qbool(request, "stdout"),
                                stderr=qbool(request, "stderr"))
        if want_logs:
            c = svc.get(ref)
            async for e in svc.logs(ref, follow=False):
                await raw.write(e.data if c.Config.get("Tty") else frame(e.stream, e.data))
        if not qbool(request, "stream", True) and want_logs:
            raw.close()
            return resp
        await svc.attach(ref, session)
        return resp

    async def resize(request: web.Request) -> web.Response:
        await svc.resize(request.match_info["id"], qint(request, "h", 0), qint(request, "w", 0))
        return web.Response(status=200)

    async def logs(request: web.Request) -> web.StreamResponse:
        ref = request.match_info["id"]
        c = svc.get(ref)
        want = {1: qbool(request, "stdout"), 2: qbool(request, "stderr")}
        if not any(want.values()):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        tail_s = request.query.get("tail", "all")
        tail = None if tail_s in ("", "all") else qint(request, "tail")
        since, until = _since(request.query.get("since")), _since(request.query.get("until"))
        ts, follow, tty = qbool(request, "timestamps"), qbool(request, "follow"), bool(c.Config.get("Tty"))
        resp = web.StreamResponse(status=200)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        async for e in svc.logs(ref, follow=follow, tail=tail):
            if not want.get(e.stream):
                continue
            if since and e.timestamp < since:
                continue
            if until and e.timestamp > until:
                continue
            await resp.write(_render(e, ts, tty))
        await resp.write_eof()
        return resp

    async def top(request: web.Request) -> web.Response:
        return json_response(await svc.top(request.match_info["id"], request.query.get("ps_args", "-ef")))

    async def pause(request: web.Request) -> web.Response:
        await svc.pause(request.match_info["id"])
        return web.Response(status=204)

    async def unpause(request: web.Request) -> web.Response:
        await svc.unpause(request.match_info["id"])
        return web.Response(status=204)

    async def rename(request: web.Request) -> web.Response:
        await svc.rename(request.match_info["id"], request.query.get("name", ""))
        return web.Response(status=204)

    async def prune(request: web.Request) -> web.Response:
        return json_response(await svc.prune(filters(request)))

    add_route(router, "POST", "/containers/prune", prune)
    add_route(router, "POST", "/containers/create", create)
    add_route(router, "GET", "/containers/json", listing)
    add_route(router, "GET", "/containers/{id}/json", inspect)
    add_route(router, "POST", "/containers/{id}/start", start)
    add_route(router, "POST", "/containers/{id}/stop", stop)
    add_route(router, "POST", "/containers/{id}/restart", restart)
    add_route(router, "POST", "/containers/{id}/kill", kill)
    add_route(router, "DELETE", "/containers/{id}", remove)
    add_route(router, "POST", "/containers/{id}/wait", wait)
    add_route(router, "POST", "/containers/{id}/attach", attach)
    add_route(router, "POST", "/containers/{id}/resize", resize)
    add_route(router, "GET", "/containers/{id}/logs", logs)
    add_route(router, "GET", "/containers/{id}/top", top)
    add_route(router, "POST", "/containers/{id}/pause", pause)
    add_route(router, "POST", "/containers/{id}/unpause", unpause)
    add_route(router, "POST", "/containers/{id}/rename", rename)


def _render(e: Any, timestamps: bool, tty: bool) -> bytes:
    data = e.data
    if timestamps:
        data = e.time.encode() + b" " + data
    return data if tty else frame(e.stream, data)

