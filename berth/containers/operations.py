"""Container operations that are not lifecycle: views, attach, logs, resize, pause, rename, top,
prune and disk usage. A mixin of ContainerService (which provides ``get``, ``containers``,
``names``, ``_event``, ``_exit_future``, ``_remove``, ``sock_path`` and ``images``)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

from berth.containers import names, views
from berth.containers.attach import AttachSession
from berth.containers.logfile import Entry, read_entries
from berth.containers.model import CREATED, REMOVING, RUNNING, Container
from berth.containers.spawner import monitor_call
from berth.errors import Conflict, InvalidArgument
from berth.util import parse_rfc3339

CGROUP_PARENT = "/berth"


class ContainerOperations:
    # -- read-only views ------------------------------------------------------------------
    def list(self, all: bool = False, limit: int | None = None,
             filters: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
        out = []
        now = views.now()
        for c in views.sort_newest_first(list(self.containers.values())):
            if not all and not c.state.Running and not (filters or {}).get("status"):
                continue
            if filters and not views.matches(c, filters):
                continue
            out.append(views.summary(c, now))
        if limit is not None and limit > 0:
            out = out[:limit]
        return out

    def inspect(self, ref: str) -> dict[str, Any]:
        c = self.get(ref)
        return views.inspect(c, sorted(c.exec_ids))

    # -- attach, resize, logs -----------------------------------------------------------------
    async def attach(self, ref: str, session: AttachSession) -> None:
        """Run an attach session until the process exits or the client goes away."""
        c = self.get(ref)
        session.tty = bool(c.Config.get("Tty"))
        if c.state.Running:
            await session.connect(self.sock_path(c))
        elif c.state.Status == CREATED or c.state.FinishedAt:
            c.pending_attaches.append(session)  # connected by the next start
        self._event(c, "attach")
        try:
            await session.wait()
        finally:
            if session in c.pending_attaches:
                c.pending_attaches.remove(session)
            session.close()

    async def resize(self, ref: str, h: int, w: int) -> None:
        c = self.get(ref)
        if not c.state.Running:
            raise Conflict(f"Container {c.Id} is not running")
        try:
            await monitor_call(self.sock_path(c), {"op": "resize", "h": h, "w": w})
        except OSError:
            pass

    async def logs(self, ref: str, follow: bool = False, tail: int | None = None) -> AsyncIterator[Entry]:
        """Entries of the container's log, oldest first (the last ``tail`` of those written so
        far, if given); with ``follow``, on until the container stops."""
        c = self.get(ref)
        offset = 0
        first = True
        while True:
            running = c.state.Running
            entries, offset = await asyncio.to_thread(read_entries, str(c.log_path), offset)
            if first and tail is not None and tail >= 0:
                entries = entries[-tail:] if tail else []
            first = False
            for e in entries:
                yield e
            if not follow or not running:
                return
            fut = self._exit_future(c)
            try:
                await asyncio.wait_for(asyncio.shield(fut), 0.2)
            except TimeoutError:
                pass
            finally:
                if fut in c.exit_waiters and not fut.done():
                    c.exit_waiters.remove(fut)

    # -- pause, rename, top ------------------------------------------------------------------
    def _cgroup(self, c: Container) -> Any:
        from berth.runtime.cgroups import open_cgroup

        return open_cgroup(f"{CGROUP_PARENT}/{c.Id}")

    async def _thaw(self, c: Container) -> None:
        await asyncio.to_thread(self._cgroup(c).thaw)
        c.state.Paused = False
        c.state.Status = RUNNING if c.state.Running else c.state.Status

    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.state.Running:
            raise Conflict(f"Container {c.Id} is not running")
        if c.state.Paused:
            raise Conflict(f"Container {c.Id} is already paused")
        await asyncio.to_thread(self._cgroup(c).freeze)
        c.state.Paused, c.state.Status = True, "paused"
        c.save_state()
        self._event(c, "pause")

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c.state.Paused:
            raise Conflict(f"Container {c.Id} is not paused")
        await self._thaw(c)
        c.save_state()
        self._event(c, "unpause")

    async def rename(self, ref: str, new_name: str) -> None:
        c = self.get(ref)
        new = names.validate_name(new_name)
        old = c.Name.lstrip("/")
        if new == old:
            raise InvalidArgument("Renaming a container with the same name as its current name")
        if new in self.names:
            raise Conflict(f'Conflict. The container name "/{new}" is already in use by container '
                           f'"{self.names[new]}". You have to remove (or rename) that container to '
                           "be able to reuse that name.")
        del self.names[old]
        self.names[new] = c.Id
        c.Name = "/" + new
        c.save_config()
        self._event(c, "rename", oldName="/" + old)

    async def top(self, ref: str, ps_args: str = "-ef") -> dict[str, Any]:
        c = self.get(ref)
        if not c.state.Running:
            raise Conflict(f"Container {c.Id} is not running")
        pids = set(await asyncio.to_thread(self._cgroup(c).procs))
        proc = await asyncio.create_subprocess_exec(
            "ps", *(ps_args or "-ef").split(), stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await proc.communicate()
        if proc.returncode:
            raise InvalidArgument(f"Error running ps: {err.decode().strip()}")
        lines = out.decode().splitlines()
        titles = lines[0].split()
        if "PID" not in titles:
            raise InvalidArgument("Couldn't find PID field in ps output")
        pid_col = titles.index("PID")
        procs = []
        for line in lines[1:]:
            fields = line.split(None, len(titles) - 1)
            if len(fields) > pid_col and fields[pid_col].isdigit() and int(fields[pid_col]) in pids:
                procs.append(fields)
        return {"Titles": titles, "Processes": procs}

    # -- prune and disk usage ------------------------------------------------------------------
    def size_rw(self, c: Container) -> int:
        """Bytes written by the container: the files of its read-write layer."""
        total = 0
        for dirpath, _dirs, files in os.walk(c.dir / "rw" / "upper"):
            for name in files:
                try:
                    st = os.lstat(os.path.join(dirpath, name))
                except OSError:
                    continue
                if not (st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0):  # not a whiteout
                    total += st.st_size
        return total

    async def prune(self, filters: dict[str, list[str]]) -> dict[str, Any]:
        """Remove every stopped container matching ``filters`` (label, label!, until)."""
        from berth.images.prune import _labels_ok, _until

        until = _until(filters.get("until", []))
        deleted, reclaimed = [], 0
        for c in list(self.containers.values()):
            if c.state.Running or c.state.Status == REMOVING:
                continue
            if until is not None and parse_rfc3339(c.Created) > until:
                continue
            if not _labels_ok(c.Config.get("Labels") or {}, filters.get("label", []),
                              filters.get("label!", [])):
                continue
            reclaimed += await asyncio.to_thread(self.size_rw, c)
            await self._remove(c)
            deleted.append(c.Id)
        return {"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed}

    async def disk_usage(self, image_sizes: dict[str, int]) -> list[dict[str, Any]]:
        out = []
        for c in views.sort_newest_first(list(self.containers.values())):
            s = views.summary(c)
            s["SizeRw"] = await asyncio.to_thread(self.size_rw, c)
            s["SizeRootFs"] = s["SizeRw"] + image_sizes.get(c.ImageID, 0)
            out.append(s)
        return out
