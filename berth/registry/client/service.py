"""RegistryService: the daemon's registry backend (pull, push, login) over one RegistryClient.

``pull`` and ``push`` are async generators of progress events (dicts, one JSON line each). An
error raised before the first event propagates (the API turns it into an HTTP error); once
events have flowed, the generator yields a final ``{"errorDetail":..,"error":..}`` event instead.
Closing the generator (client gone) cancels the work; nothing half-done is registered.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from berth.errors import BerthError, InvalidArgument
from berth.images.reference import Reference, parse_normalized
from berth.registry.client import progress as P
from berth.registry.client.auth import AuthError, Credentials, credentials_from_dict
from berth.registry.client.memory import BlobMemory
from berth.registry.client.pull import Puller, parse_platform
from berth.registry.client.push import Pusher
from berth.registry.client.transport import HUB_ORIGIN, RegistryClient, RegistryError

log = logging.getLogger("berth.registry")


async def _events(work: Callable[[Callable[[P.Event], None]], Awaitable[None]],
                  in_band: Callable[[BaseException], str]) -> AsyncIterator[P.Event]:
    """Run ``work(emit)`` and yield what it emits; see the module docstring for errors."""
    queue: asyncio.Queue[P.Event] = asyncio.Queue()
    started = False
    task = asyncio.ensure_future(work(queue.put_nowait))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter in done:
                started = True
                yield getter.result()
                continue
            getter.cancel()
            while not queue.empty():
                started = True
                yield queue.get_nowait()
            exc = task.exception()
            if exc is None:
                return
            if not started:
                raise exc
            if not isinstance(exc, BerthError):
                log.warning("registry operation failed: %r", exc)
            yield P.error(in_band(exc))
            return
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def _message(e: BaseException) -> str:
    if isinstance(e, BerthError):
        return e.message
    if isinstance(e, aiohttp.ClientError | OSError | asyncio.TimeoutError):
        return str(e) or e.__class__.__name__
    return str(e) or e.__class__.__name__


def _push_message(e: BaseException) -> str:
    msg = _message(e)
    if isinstance(e, AuthError) and msg.endswith("no basic auth credentials"):
        return "no basic auth credentials"
    return msg


class RegistryService:
    """Pull, push and login for berthd. ``session_factory`` is the transport seam for tests."""

    def __init__(self, images: Any, *, insecure: list[str] | None = None,
                 mirrors: list[str] | None = None, session_factory: Any = None,
                 hub_origin: str = HUB_ORIGIN, loopback_only: bool = False) -> None:
        self.images = images
        self.client = RegistryClient(session_factory, insecure=insecure or [], mirrors=mirrors or [],
                                     hub_origin=hub_origin, loopback_only=loopback_only)
        self.memory = BlobMemory(images.root)

    @classmethod
    def from_config(cls, cfg: Any, images: Any) -> RegistryService:
        """From daemon.json's ``insecure-registries`` and ``registry-mirrors``. The environment
        variable ``BERTH_REGISTRY_LOOPBACK_ONLY=1`` (set by the test suite) refuses every registry
        outside 127.0.0.0/8 and ::1 before any connection or name lookup."""
        loopback_only = os.environ.get("BERTH_REGISTRY_LOOPBACK_ONLY", "").lower() in ("1", "true", "yes")
        return cls(images, insecure=list(cfg.insecure_registries), mirrors=list(cfg.registry_mirrors),
                   loopback_only=loopback_only)

    async def close(self) -> None:
        await self.client.close()

    # -- pull ----------------------------------------------------------------------------------
    def pull(self, from_image: str, tag: str | None, creds: Credentials,
             platform: str | None = None) -> AsyncIterator[P.Event]:
        """``POST /images/create?fromImage=&tag=``: tag ``sha256:..`` pulls by digest; neither a
        tag in ``from_image`` nor ``tag`` pulls every tag. Raises InvalidArgument at once."""
        ref = parse_normalized(from_image)
        if tag:
            if tag.startswith("sha256:"):
                ref = Reference(ref.domain, ref.path, None, tag)
            else:
                ref = ref.with_tag(tag)
        want = parse_platform(platform)

        async def work(emit: Callable[[P.Event], None]) -> None:
            if ref.is_name_only():
                await self._pull_all(ref, creds, want, emit)
                return
            _, digest, changed = await Puller(self.client, self.images, ref, creds, want,
                                              self.memory).run(emit)
            emit(P.status(f"Digest: {digest}"))
            shown = ref.familiar_string()
            emit(P.status(f"Status: Downloaded newer image for {shown}" if changed
                          else f"Status: Image is up to date for {shown}"))

        return _events(work, _message)

    async def _pull_all(self, ref: Reference, creds: Credentials, want: tuple[str, str, str],
                        emit: Callable[[P.Event], None]) -> None:
        endpoint = self.client.endpoints(ref.domain, pull=True)[-1]
        repo = self.client.repository(endpoint, ref.path, creds)
        try:
            tags = await repo.tags()
        except RegistryError as e:
            from berth.registry.client.pull import not_found_message

            raise not_found_message(ref, e) from None
        any_changed = False
        for t in tags:
            _, digest, changed = await Puller(self.client, self.images, ref.with_tag(t), creds, want,
                                              self.memory).run(emit)
            emit(P.status(f"Digest: {digest}"))
            any_changed = any_changed or changed
        shown = ref.familiar_name()
        emit(P.status(f"Status: Downloaded newer image for {shown}" if any_changed
                      else f"Status: Image is up to date for {shown}"))

    # -- push ----------------------------------------------------------------------------------
    def push(self, name: str, tag: str | None, creds: Credentials) -> AsyncIterator[P.Event]:
        """``POST /images/{name}/push?tag=``; no tag pushes every local tag. Raises InvalidArgument."""
        ref = parse_normalized(name)
        if ref.digest is not None:
            raise InvalidArgument("cannot push a digest reference")
        if not tag and ref.tag:
            tag = ref.tag

        async def work(emit: Callable[[P.Event], None]) -> None:
            await Pusher(self.client, self.images, self.memory, ref, creds).run(tag or None, emit)

        return _events(work, _push_message)

    # -- login ---------------------------------------------------------------------------------
    async def login(self, body: dict[str, Any]) -> dict[str, str]:
        """``POST /auth``: check the registry's /v2/ with the credentials.

        Raises AuthError (401, ``login attempt to <url> failed with status: 401 Unauthorized``)
        or RegistryError (unreachable registry).
        """
        creds = credentials_from_dict(body)
        await self.client.login(creds.server_address, creds)
        return {"IdentityToken": "", "Status": "Login Succeeded"}
