"""Routes under /images: import, pull (the registry backend, see registry.py), list, inspect,
history, tag, remove."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from berth.api import registry
from berth.api.app import add_route
from berth.api.util import filters, json_response, qbool, spool_body
from berth.errors import InvalidArgument, SystemError_


def _event(svc: Any, action: str, image_id: str, name: str = "") -> None:
    events = getattr(svc, "events", None)  # set by the daemon
    if events is not None:
        events.image(action, image_id, name)


def register(router: web.UrlDispatcher, svc: Any) -> None:
    async def create(request: web.Request) -> web.StreamResponse:
        q = request.query
        if q.get("fromSrc") is not None:
            if q["fromSrc"] != "-":
                raise SystemError_("importing from a URL is not supported: pipe the file instead")
            body = await spool_body(request, getattr(svc, "tmp_dir", None))
            try:
                image_id = await asyncio.to_thread(
                    svc.import_image, body, q.get("repo") or None, q.get("tag") or None,
                    q.getall("changes", []), q.get("message", ""))
            finally:
                body.close()
            _event(svc, "import", image_id)
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(json.dumps({"status": image_id}).encode() + b"\r\n")
            await resp.write_eof()
            return resp
        if not q.get("fromImage"):
            raise InvalidArgument("either fromImage or fromSrc is required")
        events = registry.backend(request).pull(
            q["fromImage"], q.get("tag") or None, registry.registry_auth(request),
            q.get("platform") or None)
        return await registry.stream_progress(request, events)

    async def listing(request: web.Request) -> web.Response:
        f = filters(request)
        if request.query.get("filter"):  # API < 1.28 spelling
            f.setdefault("reference", []).append(request.query["filter"])
        return json_response(await asyncio.to_thread(svc.list_images, qbool(request, "all"), f))

    async def inspect(request: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(svc.inspect, request.match_info["name"]))

    async def history(request: web.Request) -> web.Response:
        return json_response(await asyncio.to_thread(svc.history, request.match_info["name"]))

    async def tag(request: web.Request) -> web.Response:
        name, repo, tag_ = request.match_info["name"], request.query.get("repo", ""), request.query.get("tag")
        await asyncio.to_thread(svc.tag, name, repo, tag_ or None)
        ref = svc.parse_ref(f"{repo}:{tag_}" if tag_ else repo)
        _event(svc, "tag", await asyncio.to_thread(svc.resolve_id, name), ref.familiar_string())
        return web.Response(status=201)

    async def remove(request: web.Request) -> web.Response:
        image_id = await asyncio.to_thread(svc.resolve_id, request.match_info["name"])
        result = await asyncio.to_thread(svc.remove, request.match_info["name"],
                                         qbool(request, "force"), not qbool(request, "noprune"))
        for r in result:
            if "Untagged" in r:
                _event(svc, "untag", image_id, r["Untagged"])
        if any(r.get("Deleted") == image_id for r in result):
            _event(svc, "delete", image_id)
        return json_response(result)

    async def prune(request: web.Request) -> web.Response:
        from berth.images.prune import prune_images

        return json_response(await asyncio.to_thread(prune_images, svc, filters(request)))

    add_route(router, "POST", "/images/prune", prune)
    add_route(router, "POST", "/images/create", create)
    add_route(router, "GET", "/images/json", listing)
    add_route(router, "GET", "/images/{name:.+}/json", inspect)
    add_route(router, "GET", "/images/{name:.+}/history", history)
    add_route(router, "POST", "/images/{name:.+}/tag", tag)
    add_route(router, "DELETE", "/images/{name:.+}", remove)
