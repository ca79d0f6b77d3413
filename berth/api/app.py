"""berthd's HTTP server: the Docker Engine API (1.24–1.41) on aiohttp.

Each resource has its own router module (containers, exec, images, system) that talks to one
narrow backend; this module only wires them, negotiates the API version and maps Berth's errors
to Docker's error bodies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from berth import __version__
from berth.errors import BerthError

log = logging.getLogger("berth.api")

API_VERSION = "1.41"
MIN_API_VERSION = "1.12"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Backends:
    """The services the routers call. ``daemon`` wires the concrete classes."""

    containers: Any
    images: Any
    system: Any
    registry: Any = None  # berth.registry.client.RegistryService: pull, push, login


def common_headers() -> dict[str, str]:
    return {
        "Api-Version": API_VERSION,
        "Docker-Experimental": "false",
        "Ostype": "linux",
        "Server": f"Docker/{__version__} (linux)",
    }


def error_response(status: int, message: str) -> web.Response:
    if status == 304:
        return web.Response(status=304)
    return web.Response(
        status=status,
        body=json.dumps({"message": message}).encode() + b"\n",
        content_type="application/json",
    )


def _check_version(major: int, minor: int) -> str | None:
    version = (major, minor)
    if version > (1, 41):
        return f"client version {major}.{minor} is too new. Maximum supported API version is {API_VERSION}"
    if version < (1, 12):
        return (f"client version {major}.{minor} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version")
    return None


def add_route(router: web.UrlDispatcher, method: str, path: str, handler: Handler) -> None:
    """Register ``path`` both unprefixed and under ``/vX.Y`` (checked by version_middleware)."""
    router.add_route(method, path, handler)
    router.add_route(method, r"/v{apiver:[0-9]+\.[0-9]+}" + path, handler)


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    apiver = request.match_info.get("apiver")
    if apiver:
        major, minor = (int(x) for x in apiver.split("."))
        problem = _check_version(major, minor)
        if problem:
            return error_response(400, problem)
    return await handler(request)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except BerthError as e:
        return error_response(e.status, e.message)
    except web.HTTPNotFound:
        return error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        return error_response(405, "method not allowed")
    except web.HTTPException:
        raise
    except (ConnectionResetError, BrokenPipeError):
        # The client hung up mid-stream (e.g. `run -d` drops its wait): nothing left to send.
        return web.Response(status=499)
    except Exception as e:  # the last line of defence: a 500 with the message, never a hang
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, str(e) or e.__class__.__name__)


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    for k, v in common_headers().items():
        response.headers[k] = v  # aiohttp has set its own Server header by now


def make_app(backends: Backends) -> web.Application:
    from berth.api import archive, containers, images, registry, system
    from berth.api import exec as exec_routes

    app = web.Application(
        middlewares=[error_middleware, version_middleware], client_max_size=1024**4
    )
    app["backends"] = backends
    app.on_response_prepare.append(_on_prepare)
    system.register(app.router, backends.system)
    containers.register(app.router, backends.containers)
    exec_routes.register(app.router, backends.containers)
    registry.register(app.router, backends.registry)
    images.register(app.router, backends.images)
    archive.register(app.router, backends)
    return app
