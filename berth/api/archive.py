"""Routes for archives and container → image: save/load, export, changes, commit (§10).

``GET /images/get``, ``GET /images/{name}/get``, ``POST /images/load``,
``GET /containers/{id}/export``, ``GET /containers/{id}/changes``, ``POST /commit``.
Tar output is produced in a thread and streamed; anything that can fail (unknown names,
a missing container) is checked before the response starts, so it is an HTTP error.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, BinaryIO

from aiohttp import web

from berth.api.app import add_route
from berth.api.util import json_body, json_response, qbool, spool_body
from berth.containers.export import container_changes, export_container
from berth.images.archive_common import spool_dir
from berth.images.commit import commit_container
from berth.images.load import load
from berth.images.save import plan_save, write_save

_FLUSH = 256 << 10


class _ThreadWriter:
    """A file-like sink for a worker thread that hands chunks to the event loop's queue."""

    def __init__(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue):
        self.loop, self.queue = loop, queue
        self.buf = bytearray()
        self.aborted = False

    def write(self, data: bytes) -> int:
        if self.aborted:
            raise BrokenPipeError("client went away")
        self.buf += data
        if len(self.buf) >= _FLUSH:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self.buf:
            chunk, self.buf = bytes(self.buf), bytearray()
            asyncio.run_coroutine_threadsafe(self.queue.put(chunk), self.loop).result()

    def finish(self) -> None:
        asyncio.run_coroutine_threadsafe(self.queue.put(None), self.loop).result()


async def stream_from_thread(request: web.Request, content_type: str,
                             produce: Callable[[BinaryIO], None]) -> web.StreamResponse:
    """Run ``produce(out)`` in a thread and stream what it writes as the response body."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=16)
    w = _ThreadWriter(loop, queue)

    def run() -> None:
        try:
            produce(w)  # type: ignore[arg-type]
            w.flush()
        finally:
            w.finish()

    resp = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    task = asyncio.ensure_future(asyncio.to_thread(run))
    try:
        while (chunk := await queue.get()) is not None:
            await resp.write(chunk)
    except BaseException:
        w.aborted = True
        while not task.done():  # unblock the producer so it can notice and stop
            try:
                queue.get_nowait()
            except asyncio.QueueEmpty:
                await asyncio.sleep(0.01)
        raise
    try:
        await task
    except Exception:
        # Too late for an HTTP error: cut the stream so the client sees a broken tar, not a
        # short one that looks complete.
        if request.transport is not None:
            request.transport.abort()
        raise ConnectionResetError from None
    await resp.write_eof()
    return resp


def register(router: web.UrlDispatcher, backends: Any) -> None:
    images = backends.images
    containers = backends.containers

    async def save_many(request: web.Request) -> web.StreamResponse:
        return await _save(request, request.query.getall("names", []))

    async def save_one(request: web.Request) -> web.StreamResponse:
        return await _save(request, [request.match_info["name"]])

    async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
        plan = await asyncio.to_thread(plan_save, images, names)
        return await stream_from_thread(request, "application/x-tar",
                                        lambda out: write_save(images, plan, out))

    async def load_images(request: web.Request) -> web.StreamResponse:
        body = await spool_body(request, await asyncio.to_thread(spool_dir, images))
        try:
            loaded = await asyncio.to_thread(load, images, body)
        finally:
            body.close()
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for item in loaded:
            text = f"Loaded image ID: {item}\n" if item.startswith("sha256:") else f"Loaded image: {item}\n"
            await resp.write(json.dumps({"stream": text}).encode() + b"\r\n")
        await resp.write_eof()
        return resp

    async def export(request: web.Request) -> web.StreamResponse:
        c = containers.get(request.match_info["id"])
        await asyncio.to_thread(images.resolve, c.ImageID)
        return await stream_from_thread(request, "application/octet-stream",
                                        lambda out: export_container(c, images, out))

    async def changes(request: web.Request) -> web.Response:
        c = containers.get(request.match_info["id"])
        return json_response(await asyncio.to_thread(container_changes, c, images))

    async def commit(request: web.Request) -> web.Response:
        q = request.query
        c = containers.get(q.get("container", ""))
        body = await json_body(request)
        pause = qbool(request, "pause", True)
        paused_here = False
        if pause and c.state.Running and not c.state.Paused:
            await containers.pause(c.Id)
            paused_here = True
        try:
            image_id = await asyncio.to_thread(
                commit_container, images, container_id=c.Id, image_id=c.ImageID,
                container_config=c.Config, upper=c.dir / "rw" / "upper",
                repo=q.get("repo") or None, tag=q.get("tag") or None,
                author=q.get("author", ""), comment=q.get("comment", ""),
                changes=_changes(q.getall("changes", [])), config=body or None)
        finally:
            if paused_here:
                await containers.unpause(c.Id)
        return json_response({"Id": image_id}, status=201)

    add_route(router, "GET", "/images/get", save_many)
    add_route(router, "GET", "/images/{name:.+}/get", save_one)
    add_route(router, "POST", "/images/load", load_images)
    add_route(router, "GET", "/containers/{id}/export", export)
    add_route(router, "GET", "/containers/{id}/changes", changes)
    add_route(router, "POST", "/commit", commit)


def _changes(values: list[str]) -> list[str]:
    """``changes`` may repeat, and the SDK sends one value with lines separated by newlines."""
    out = []
    for v in values:
        out.extend(line for line in v.splitlines() if line.strip())
    return out
