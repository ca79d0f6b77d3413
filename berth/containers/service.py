"""The containers service: create, start, stop, kill, wait, rm, attach, logs, ... behind the API.

Containers live in ``<data-root>/containers/<id>/`` (container.json, state.json, the OCI bundle,
the read-write layer, the json-file log). Each running container has a monitor process (see
``monitor``) that the service reaches over a unix socket in ``<exec-root>/m/``; the service keeps
one connection per monitor open to learn of the exit, and finds monitors again after a restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import signal as _signal
from dataclasses import asdict
from pathlib import Path
from typing import Any

from berth.containers import createopts, names
from berth.containers.etcfiles import write_etc_files
from berth.containers.model import CREATED, EXITED, REMOVING, RUNNING, Container
from berth.containers.monitor import MonitorSpec
from berth.containers.operations import CGROUP_PARENT, ContainerOperations
from berth.containers.procs import parse_signal, proc_start_time
from berth.containers.spawner import ForkServer, monitor_request
from berth.errors import Conflict, InvalidArgument, NotFound, NotModified, StartError
from berth.util import read_json, rfc3339_now

log = logging.getLogger("berth.containers")


class ContainerService(ContainerOperations):
    """All containers of one daemon: construct it, then ``await recover()`` before serving."""

    def __init__(self, data_root: Path, exec_root: Path, images: Any, layers: Any,
                 forkserver: ForkServer, events: Any = None) -> None:
        self.root = data_root / "containers"
        self.sock_dir = exec_root / "m"
        self.images = images
        self.layers = layers
        self.forkserver = forkserver
        self.events = events
        self.containers: dict[str, Container] = {}
        self.names: dict[str, str] = {}
        self._tasks: set[asyncio.Task] = set()
        self._image_cache: dict[str, Any] = {}
        self.execs: Any = None  # set by the daemon (ExecService)

    # -- lookup ---------------------------------------------------------------------------
    def get(self, ref: str) -> Container:
        """By full id, name (with or without /) or unique id prefix, like dockerd."""
        ref = ref or ""
        if ref in self.containers:
            return self.containers[ref]
        cid = self.names.get(ref.lstrip("/"))
        if cid:
            return self.containers[cid]
        if ref:
            found = [c for cid, c in self.containers.items() if cid.startswith(ref)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise InvalidArgument(f"Multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def image_in_use(self, image_id: str) -> str | None:
        for c in self.containers.values():
            if c.ImageID == image_id:
                return c.Id
        return None

    def sock_path(self, c: Container) -> str:
        return str(self.sock_dir / f"{c.Id[:24]}.sock")

    # -- start-up -------------------------------------------------------------------------
    async def recover(self) -> None:
        """Load every container; reconnect to the monitors of running ones, note the exits of
        containers that died while the daemon was away, drop half-created leftovers."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.sock_dir.mkdir(parents=True, exist_ok=True)
        for cdir in sorted(self.root.iterdir()):
            config = None if cdir.name.startswith(".") else read_json(cdir / "container.json")
            if not config:  # unfinished creates (.tmp-), removals (.trash-), debris
                shutil.rmtree(cdir, ignore_errors=True)
                continue
            c = Container.load(cdir, config, read_json(cdir / "state.json"))
            c.monitor_gone.set()
            self.containers[c.Id] = c
            self.names[c.Name.lstrip("/")] = c.Id
            if c.state.Status == REMOVING:
                await self._remove(c)
                continue
            if not c.state.Running:
                continue
            alive = proc_start_time(c.state.monitor_pid) == c.state.monitor_start_time
            if alive:
                try:
                    reader, writer = await monitor_request(self.sock_path(c), {"op": "wait"})
                    c.monitor_gone.clear()
                    self._spawn(self._watch(c, reader, writer))
                    continue
                except OSError:
                    pass
            exit_info = read_json(cdir / "exit.json") or {"exit_code": 255, "finished_at": rfc3339_now()}
            await self._on_exit(c, exit_info)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _event(self, c: Container, action: str, **attrs: str) -> None:
        if self.events:
            self.events.container(c, action, attrs)

    # -- create ---------------------------------------------------------------------------
    async def create(self, name: str | None, body: dict[str, Any]) -> dict[str, Any]:
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidArgument("config cannot be empty in order to create a container")
        if name:
            name = names.validate_name(name)
            if name in self.names:
                raise Conflict(
                    f'Conflict. The container name "/{name}" is already in use by container '
                    f'"{self.names[name]}". You have to remove (or rename) that container to be '
                    "able to reuse that name.")
        image = await asyncio.to_thread(self.images.resolve, image_ref)
        image_config = (image.config or {}).get("config") or {}
        config = createopts.merge_config(body, image_config)
        host_config = createopts.host_config(body)
        cid = secrets.token_hex(32)
        while cid in self.containers or cid[:12].isdigit():
            cid = secrets.token_hex(32)
        if not name:
            name = names.random_name(set(self.names))
        config["Image"] = image_ref
        config["Hostname"] = config.get("Hostname") or cid[:12]
        path, args = createopts.command_of(config)
        c = Container(Id=cid, Name="/" + name, Created=rfc3339_now(), Image=image_ref,
                      ImageID=image.id, Config=config, HostConfig=host_config, Path=path, Args=args)
        c.dir = self.root / cid
        c.monitor_gone.set()
        self.names[name] = cid  # reserve before the first await below
        try:
            await asyncio.to_thread(self._make_dirs, c, image.lower_dirs)
        except BaseException:
            self.names.pop(name, None)
            shutil.rmtree(c.dir, ignore_errors=True)
            raise
        self.containers[cid] = c
        self._event(c, "create")
        return {"Id": cid, "Warnings": []}

    @staticmethod
    def _make_dirs(c: Container, lower_dirs: list[Path]) -> None:
        from berth.containers.initfiles import write_init_files

        tmp = c.dir.with_name(".tmp-" + c.Id)
        (tmp / "rw" / "upper").mkdir(parents=True)
        (tmp / "rw" / "work").mkdir()
        write_init_files(tmp / "rw" / "upper", lower_dirs, list(c.Config.get("Volumes") or {}))
        (tmp / "bundle" / "rootfs").mkdir(parents=True)
        c.dir = tmp
        c.save_state()
        c.save_config()
        final = tmp.with_name(c.Id)
        os.rename(tmp, final)  # a container exists once its directory has its final name
        c.dir = final

    # -- start ----------------------------------------------------------------------------
    async def start(self, ref: str) -> None:
        c = self.get(ref)
        async with c.lock:
            if c.state.Running:
                raise NotModified("container already started")
            if c.state.Status == REMOVING:
                raise Conflict(f"container {c.Id} is marked for removal and cannot be started")
            await self._start(c)

    async def _start(self, c: Container) -> None:
        await self._previous_monitor_done(c)
        image = self._image_cache.get(c.ImageID)
        if image is None:  # an image id names immutable content: resolve it once
            image = self._image_cache[c.ImageID] = await asyncio.to_thread(self.images.resolve, c.ImageID)
        mounts = self.layers.overlay_mounts(image.lower_dirs, c.dir / "rw" / "upper", c.dir / "rw" / "work")
        sock = self.sock_path(c)
        cfg = c.Config
        mspec = MonitorSpec(
            kind="container", state_dir=str(c.dir), tty=bool(cfg.get("Tty")),
            open_stdin=bool(cfg.get("OpenStdin")), stdin_once=bool(cfg.get("StdinOnce")),
            console_size=list(c.HostConfig.get("ConsoleSize") or [0, 0]), log_path=str(c.log_path),
            bundle=str(c.dir / "bundle"), rootfs_mounts=mounts,
        )
        # The monitor reads the bundle only when told to start: write it while the monitor forks.
        prepared, mon = await asyncio.gather(asyncio.to_thread(self._prepare_bundle, c),
                                             self.forkserver.spawn(sock, asdict(mspec)),
                                             return_exceptions=True)
        if isinstance(prepared, BaseException):
            if isinstance(mon, dict):
                os.kill(mon["pid"], _signal.SIGKILL)  # a monitor that was never told to start
            raise prepared
        if isinstance(mon, BaseException):
            raise mon
        c.monitor_gone.clear()
        pending, c.pending_attaches = c.pending_attaches, []
        for session in pending:
            await session.connect(sock)
        reader, writer = await monitor_request(sock, {"op": "start"})
        line = await reader.readline()
        reply = json.loads(line) if line else {"error": "container monitor exited", "exit_code": 128}
        if "error" in reply:
            writer.close()
            c.monitor_gone.set()
            c.state.ExitCode = int(reply.get("exit_code", 128))
            c.state.Error = reply["error"]
            if c.state.Status != CREATED:
                c.state.Status = EXITED
                c.state.FinishedAt = rfc3339_now()
            c.save_state()
            waiters, c.exit_waiters = c.exit_waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(c.state.ExitCode)
            if c.HostConfig.get("AutoRemove"):
                await self._remove(c)  # dockerd cleans up an --rm container whose start failed
            raise StartError(reply["error"], c.state.ExitCode)
        s = c.state
        s.Status, s.Running, s.Paused, s.OOMKilled, s.Dead = RUNNING, True, False, False, False
        s.Pid, s.pid_start_time = reply["pid"], reply["start_time"]
        s.monitor_pid, s.monitor_start_time = mon["pid"], mon["start_time"]
        s.ExitCode, s.Error, s.StartedAt = 0, "", rfc3339_now()
        c.save_state()
        self._event(c, "start")
        self._spawn(self._watch(c, reader, writer))

    def _prepare_bundle(self, c: Container) -> None:
        """Write the OCI bundle's config.json and the /etc files it binds; forget the last exit."""
        from berth.runtime.spec import generate_spec

        try:
            os.unlink(c.dir / "exit.json")
        except FileNotFoundError:
            pass
        for sub in ("rw/upper", "rw/work", "bundle/rootfs"):
            (c.dir / sub).mkdir(parents=True, exist_ok=True)
        etc = write_etc_files(c.dir, c.Config.get("Hostname") or c.Id[:12], c.Config.get("Domainname") or "")
        spec = generate_spec(
            container_id=c.Id, config=c.Config, host_config=c.HostConfig,
            hostname_path=str(etc["hostname"]), hosts_path=str(etc["hosts"]),
            resolv_path=str(etc["resolv"]), cgroups_path=f"{CGROUP_PARENT}/{c.Id}",
        )
        from berth.util import atomic_write_json

        atomic_write_json(c.dir / "bundle" / "config.json", spec, durable=False)

    async def _watch(self, c: Container, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Learn the exit from the monitor, then wait for it to finish cleaning up (EOF)."""
        try:
            try:
                line = await reader.readline()
            except (OSError, asyncio.IncompleteReadError):
                line = b""
            info = json.loads(line) if line.strip() else None
            if info is None:
                # The monitor died without a word; exit.json may still say what happened.
                for _ in range(50):
                    info = read_json(c.dir / "exit.json")
                    if info or proc_start_time(c.state.monitor_pid) != c.state.monitor_start_time:
                        break
                    await asyncio.sleep(0.1)
                info = info or {"exit_code": 255, "finished_at": rfc3339_now()}
            self._spawn(self._on_exit(c, info))
            try:
                await asyncio.wait_for(reader.read(), 30)
            except (OSError, TimeoutError):
                pass
        finally:
            writer.close()
            c.monitor_gone.set()

    async def _previous_monitor_done(self, c: Container) -> None:
        """A new start must not race the old monitor's cgroup removal (same cgroup path)."""
        try:
            await asyncio.wait_for(c.monitor_gone.wait(), 30)
        except TimeoutError:
            log.warning("monitor of %s did not finish its clean-up", c.short_id)

    async def _on_exit(self, c: Container, info: dict[str, Any]) -> None:
        s = c.state
        s.Status, s.Running, s.Paused, s.Pid = EXITED, False, False, 0
        s.ExitCode = int(info.get("exit_code", 255))
        s.OOMKilled = bool(info.get("oom_killed"))
        s.FinishedAt = info.get("finished_at") or rfc3339_now()
        s.pid_start_time = s.monitor_pid = s.monitor_start_time = 0
        if c.Id in self.containers and not c.HostConfig.get("AutoRemove"):
            c.save_state()  # (an --rm container is removed next; its exit.json covers a crash)
        self._event(c, "die", exitCode=str(s.ExitCode))
        waiters, c.exit_waiters = c.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(s.ExitCode)
        if c.HostConfig.get("AutoRemove") and c.Id in self.containers:
            await self._remove(c)

    # -- signals, stop, restart --------------------------------------------------------------
    def _exit_future(self, c: Container) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        c.exit_waiters.append(fut)
        return fut

    def _signal(self, c: Container, sig: int) -> None:
        from berth.runtime.process import signal_process

        if c.state.Pid:
            signal_process(c.state.Pid, c.state.pid_start_time, sig)

    async def kill(self, ref: str, signal: str | None = None) -> None:
        c = self.get(ref)
        sig = parse_signal(signal)
        if not c.state.Running:
            raise Conflict(f"Cannot kill container: {ref}: Container {c.Id} is not running")
        self._event(c, "kill", signal=str(sig))
        if sig == _signal.SIGKILL and c.state.Paused:
            await self._thaw(c)
        self._signal(c, sig)

    async def stop(self, ref: str, timeout: int | None = None) -> None:
        c = self.get(ref)
        if not c.state.Running:
            raise NotModified("container already stopped")
        await self._stop(c, timeout)
        self._event(c, "stop")

    async def _stop(self, c: Container, timeout: int | None) -> None:
        if timeout is None:
            timeout = c.Config.get("StopTimeout")
            timeout = 10 if timeout is None else int(timeout)
        fut = self._exit_future(c)
        sig = parse_signal(c.Config.get("StopSignal") or "SIGTERM")
        if c.state.Paused:
            await self._thaw(c)
        self._event(c, "kill", signal=str(sig))
        self._signal(c, sig)
        try:
            if timeout < 0:
                await asyncio.shield(fut)
            else:
                await asyncio.wait_for(asyncio.shield(fut), timeout)
            return
        except TimeoutError:
            pass
        self._event(c, "kill", signal=str(int(_signal.SIGKILL)))
        self._signal(c, _signal.SIGKILL)
        await asyncio.wait_for(asyncio.shield(fut), 30)

    async def restart(self, ref: str, timeout: int | None = None) -> None:
        c = self.get(ref)
        async with c.lock:
            if c.state.Running:
                await self._stop(c, timeout)
            await self._start(c)
        self._event(c, "restart")

    # -- remove ---------------------------------------------------------------------------
    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        c = self.get(ref)
        if c.state.Running:
            if not force:
                raise Conflict(
                    f"You cannot remove a running container {c.Id}. Stop the container before "
                    "attempting removal or force remove")
            fut = self._exit_future(c)
            self._signal(c, _signal.SIGKILL)
            if c.state.Paused:
                await self._thaw(c)
            await asyncio.wait_for(fut, 30)
        if c.Id in self.containers:
            await self._remove(c)

    async def _remove(self, c: Container) -> None:
        if c.state.Status == REMOVING and c.Id not in self.containers:
            return
        c.state.Status = REMOVING  # not saved: the directory is renamed away at once below

        monitor_busy = not c.monitor_gone.is_set()

        def cleanup() -> Path:
            if not monitor_busy:  # otherwise the monitor is removing the cgroup right now
                self._cgroup(c).destroy()
            trash = c.dir.with_name(".trash-" + c.Id)
            os.rename(c.dir, trash)  # gone at once for everyone; the bytes go in the background
            return trash

        try:
            trash = await asyncio.to_thread(cleanup)
            self._spawn(asyncio.to_thread(shutil.rmtree, trash, True))
        except FileNotFoundError:
            trash = None
        if monitor_busy and trash is not None:
            self._spawn(self._delete_after_monitor(c))
        try:
            os.unlink(self.sock_path(c))
        except FileNotFoundError:
            pass
        self.containers.pop(c.Id, None)
        if self.names.get(c.Name.lstrip("/")) == c.Id:
            del self.names[c.Name.lstrip("/")]
        if self.execs:
            self.execs.forget_container(c)
        self._event(c, "destroy")
        waiters, c.removed_waiters = c.removed_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(c.state.ExitCode)

    async def _delete_after_monitor(self, c: Container) -> None:
        """Make sure the cgroup is gone even if the monitor died mid-cleanup (idempotent)."""
        await self._previous_monitor_done(c)
        await asyncio.to_thread(self._cgroup(c).destroy)

    # -- wait -----------------------------------------------------------------------------
    def wait_future(self, ref: str, condition: str = "not-running") -> tuple[Container, asyncio.Future]:
        """A future of the exit code, registered now (so a later start cannot race it)."""
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition in ("", "not-running"):
            if not c.state.Running:
                fut = loop.create_future()
                fut.set_result(c.state.ExitCode)
                return c, fut
            return c, self._exit_future(c)
        if condition == "next-exit":
            return c, self._exit_future(c)
        if condition == "removed":
            fut = loop.create_future()
            c.removed_waiters.append(fut)
            return c, fut
        raise InvalidArgument(f"invalid condition: {condition!r}")

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
