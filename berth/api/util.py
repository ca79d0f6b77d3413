"""Small helpers shared by the routers: Docker's query-boolean rule, filters, JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from berth.errors import InvalidArgument

_FALSE = {"", "0", "no", "false", "none"}


def qbool(request: web.Request, name: str, default: bool = False) -> bool:
    """dockerd's rule: "", 0, no, false, none (any case) are false; anything else is true."""
    if name not in request.query:
        return default
    return request.query[name].strip().lower() not in _FALSE


def qint(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name, "")
    if value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None


def filters(request: web.Request) -> dict[str, list[str]]:
    """Both filter shapes: CLI ``{"k":{"v":true}}`` and SDK ``{"k":["v"]}``."""
    raw = request.query.get("filters", "")
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid filter: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("invalid filter")
    out: dict[str, list[str]] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = [k for k, v in value.items() if v]
        elif isinstance(value, list):
            out[key] = [str(v) for v in value]
        else:
            out[key] = [str(value)]
    return out


async def json_body(request: web.Request, optional: bool = True) -> dict[str, Any]:
    """The JSON body, or {} when there is none. Wrong content type → 400 like dockerd."""
    raw = await request.read()
    if not raw.strip():
        if optional:
            return {}
        raise InvalidArgument("request body is empty")
    ctype = request.headers.get("Content-Type", "")
    if ctype and not ctype.startswith("application/json"):
        raise InvalidArgument(f"Content-Type specified ({ctype}) must be 'application/json'")
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise web.HTTPInternalServerError(
            text=json.dumps({"message": str(e)}), content_type="application/json"
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidArgument("request body must be a JSON object")
    return data


async def spool_body(request: web.Request, directory: str | None) -> Any:
    """The request body (a tar, maybe chunked) in an unnamed temp file, rewound; caller closes it."""
    import asyncio
    import tempfile

    f = tempfile.TemporaryFile(dir=directory)
    try:
        async for chunk in request.content.iter_chunked(1 << 20):
            await asyncio.to_thread(f.write, chunk)
        f.seek(0)
        return f
    except BaseException:
        f.close()
        raise


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode() + b"\n", status=status, content_type="application/json"
    )
