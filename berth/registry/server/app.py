"""The registry's aiohttp application: routing of ``/v2/...``, auth, errors, common headers.

Repository names contain slashes, so one catch-all route dispatches on regular expressions the
way distribution's router does (``<name>/blobs/uploads/<uuid>``, ``<name>/blobs/<digest>``,
``<name>/manifests/<ref>``, ``<name>/tags/list``, ``_catalog``). Handlers live in
``blob_routes``, ``manifest_routes`` and ``catalog_routes``; they raise :class:`RegistryError`,
which the error middleware renders as the spec's JSON body.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from berth.registry.server import blob_routes, catalog_routes, manifest_routes, search_routes
from berth.registry.server.auth import HtpasswdAuth
from berth.registry.server.errors import RegistryError
from berth.registry.server.storage import Storage, check_name
from berth.registry.server.uploads import Uploads

log = logging.getLogger("berth.registry")

API_VERSION_HEADER = "Docker-Distribution-API-Version"


@dataclass
class Registry:
    """What the handlers share: storage, upload sessions, auth and settings."""

    storage: Storage
    uploads: Uploads
    auth: HtpasswdAuth | None = None
    delete_enabled: bool = True
    upload_locks: dict[str, asyncio.Lock] = field(default_factory=lambda: defaultdict(asyncio.Lock))


REGISTRY = web.AppKey("registry", Registry)
USER = web.RequestKey("user", str)

Handler = Callable[..., Awaitable[web.StreamResponse]]

# (pattern, {method: handler}); first match wins, so uploads come before blobs.
_ROUTES: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
    (re.compile(r"^(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]*)$"), {
        "POST": blob_routes.start_upload, "GET": blob_routes.upload_status,
        "PATCH": blob_routes.patch_upload, "PUT": blob_routes.put_upload,
        "DELETE": blob_routes.cancel_upload}),
    (re.compile(r"^(?P<name>.+)/blobs/(?P<digest>[^/]+)$"), {
        "GET": blob_routes.get_blob, "HEAD": blob_routes.get_blob,
        "DELETE": blob_routes.delete_blob}),
    (re.compile(r"^(?P<name>.+)/manifests/(?P<ref>[^/]+)$"), {
        "GET": manifest_routes.get_manifest, "HEAD": manifest_routes.get_manifest,
        "PUT": manifest_routes.put_manifest, "DELETE": manifest_routes.delete_manifest}),
    (re.compile(r"^(?P<name>.+)/tags/list$"), {
        "GET": catalog_routes.tags_list, "HEAD": catalog_routes.tags_list}),
]


async def _dispatch(request: web.Request) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    tail = request.match_info["tail"]
    if tail in ("", "/"):
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED")
        return web.json_response({})
    tail = tail[1:]
    if tail == "_catalog":
        if request.method not in ("GET", "HEAD"):
            raise RegistryError("UNSUPPORTED")
        return await catalog_routes.catalog(request, reg)
    for pattern, methods in _ROUTES:
        m = pattern.match(tail)
        if m is None:
            continue
        handler = methods.get(request.method)
        if handler is None:
            raise RegistryError("UNSUPPORTED", detail={"method": request.method})
        args = m.groupdict()
        check_name(args["name"])
        return await handler(request, reg, **args)
    raise web.HTTPNotFound(text="404 page not found")


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        reg = request.app[REGISTRY]
        if reg.auth is not None:
            request[USER] = await reg.auth.check(request.headers.get("Authorization"))
        return await handler(request)
    except RegistryError as e:
        if e.status >= 500:
            log.error("%s %s: %s", request.method, request.path, e)
        headers = {k: v for k, v in e.headers.items() if k.lower() != "content-length"}
        return web.Response(status=e.status, body=e.body(), headers=headers,
                            content_type="application/json")
    except web.HTTPException:
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return web.Response(status=500, body=RegistryError("UNKNOWN").body(),
                            content_type="application/json")


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[API_VERSION_HEADER] = "registry/2.0"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")


def create_app(root: str, htpasswd: str | None = None, realm: str = "Registry Realm",
               delete_enabled: bool = True) -> web.Application:
    """The registry application serving the storage under ``root``.

    ``htpasswd`` turns on Basic auth for every ``/v2/`` request. Stale upload sessions are
    purged here (start-up). Raises OSError if ``root`` or ``htpasswd`` cannot be used.
    """
    storage = Storage(root)
    uploads = Uploads(storage)
    uploads.purge_stale()
    auth = HtpasswdAuth(htpasswd, realm) if htpasswd else None
    app = web.Application(middlewares=[_errors])
    app[REGISTRY] = Registry(storage, uploads, auth, delete_enabled)
    app.router.add_route("*", r"/v2{tail:(/.*)?}", _dispatch)
    search_routes.register(app, app[REGISTRY])  # GET /v1/search
    app.on_response_prepare.append(_common_headers)
    return app
