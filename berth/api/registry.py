"""Routes for registries: ``POST /images/{name}/push``, ``POST /auth``, ``GET /images/search``
(berth.registry.client.search); and the progress stream
that pull (``POST /images/create?fromImage=``, in images.py) shares with push.

The backend is a RegistryService (berth.registry.client). An error before the first progress
event is an HTTP error; after it, an in-band ``errorDetail`` line (see ENGINE-API.md §8).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from berth.api.app import add_route
from berth.api.util import filters, json_body, json_response
from berth.errors import InvalidArgument, SystemError_


async def stream_progress(request: web.Request, events: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
    """Send ``events`` as JSON lines; the response starts only with the first event."""
    try:
        first = await events.__anext__()
    except StopAsyncIteration:
        first = None
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    try:
        if first is not None:
            await resp.write(json.dumps(first).encode() + b"\r\n")
            async for ev in events:
                await resp.write(json.dumps(ev).encode() + b"\r\n")
    finally:
        await events.aclose()  # type: ignore[attr-defined]
    await resp.write_eof()
    return resp


def registry_auth(request: web.Request) -> Any:
    from berth.registry.client import decode_registry_auth

    return decode_registry_auth(request.headers.get("X-Registry-Auth"))


def backend(request: web.Request) -> Any:
    svc = getattr(request.app["backends"], "registry", None)
    if svc is None:
        raise SystemError_("this daemon has no registry client configured")
    return svc


def register(router: web.UrlDispatcher, svc: Any) -> None:
    async def push(request: web.Request) -> web.StreamResponse:
        events = backend(request).push(request.match_info["name"], request.query.get("tag") or None,
                                       registry_auth(request))
        return await stream_progress(request, events)

    async def auth(request: web.Request) -> web.Response:
        body = await json_body(request)
        return json_response(await backend(request).login(body))

    async def search(request: web.Request) -> web.Response:
        # dockerd's getImagesSearch: limit as strconv.Atoi (a negative one fails later, on the
        # range check), an unreadable X-Registry-Auth is ignored
        from berth.registry.client import Credentials
        from berth.registry.client.search import search as run_search

        raw = request.query.get("limit", "")
        if raw and not re.fullmatch(r"[+-]?[0-9]+", raw):
            raise InvalidArgument(f"invalid limit specified: strconv.Atoi: parsing {json.dumps(raw)}: "
                                  "invalid syntax")
        limit = int(raw) if raw else 0
        try:
            creds = registry_auth(request)
        except InvalidArgument:
            creds = Credentials()
        results = await run_search(backend(request).client, request.query.get("term", ""), limit,
                                   filters(request), creds)
        return json_response(results)

    add_route(router, "POST", "/images/{name:.+}/push", push)
    add_route(router, "POST", "/auth", auth)
    add_route(router, "GET", "/images/search", search)
