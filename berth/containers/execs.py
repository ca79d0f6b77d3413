"""Exec instances: a second process in a running container, through its own monitor.

Lifecycle as in dockerd: create (stored, nothing runs) → start (a monitor joins the container's
namespaces and cgroup and runs the command) → exited (ExitCode kept for ``GET /exec/ID/json``).
Instances are forgotten with their container.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import asdict, dataclass, field
from typing import Any

from berth.containers.attach import AttachSession, ClientStream
from berth.containers.model import Container
from berth.containers.monitor import MonitorSpec
from berth.containers.spawner import ForkServer, monitor_call, monitor_request
from berth.errors import Conflict, InvalidArgument, NotFound, StartError
from berth.util import read_json


@dataclass
class ExecInstance:
    ID: str
    container: Container
    config: dict[str, Any]
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    pending_size: tuple[int, int] | None = None  # a resize that came before the process ran
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ExecService:
    def __init__(self, containers: Any, forkserver: ForkServer) -> None:
        self.containers = containers
        self.forkserver = forkserver
        self.execs: dict[str, ExecInstance] = {}

    def get(self, exec_id: str) -> ExecInstance:
        e = self.execs.get(exec_id)
        if e is None:
            raise NotFound(f"No such exec instance: {exec_id}")
        return e

    def create(self, ref: str, body: dict[str, Any]) -> dict[str, str]:
        c: Container = self.containers.get(ref)
        if c.state.Paused:
            raise Conflict(f"Container {ref} is paused, unpause the container before exec")
        if not c.state.Running:
            raise Conflict(f"Container {c.Id} is not running")
        cmd = body.get("Cmd") or []
        if isinstance(cmd, str):
            cmd = [cmd]
        if not cmd:
            raise InvalidArgument("No exec command specified")
        eid = secrets.token_hex(32)
        self.execs[eid] = ExecInstance(eid, c, dict(body, Cmd=cmd))
        c.exec_ids.add(eid)
        self.containers._event(c, "exec_create: " + " ".join(cmd) + " ")
        return {"Id": eid}

    def _process(self, e: ExecInstance) -> dict[str, Any]:
        """The OCI process for the exec: the container's, with the exec's command, env, cwd, user."""
        from berth.runtime import spec as rtspec

        bundle_cfg = read_json(e.container.dir / "bundle" / "config.json") or {}
        return rtspec.exec_process(
            bundle_cfg.get("process") or {}, args=list(e.config["Cmd"]), env=e.config.get("Env"),
            user=e.config.get("User") or "", working_dir=e.config.get("WorkingDir") or "",
            tty=bool(e.config.get("Tty")), privileged=bool(e.config.get("Privileged")))

    def check_startable(self, e: ExecInstance) -> None:
        if e.started:
            raise Conflict(f"Error: Exec command {e.ID} has already run")
        if not e.container.state.Running:
            raise Conflict(f"Container {e.container.Id} is not running")

    async def start(self, exec_id: str, detach: bool, client: ClientStream | None,
                    console_size: list[int] | None = None) -> None:
        e = self.get(exec_id)
        self.check_startable(e)
        c = e.container
        e.started = True
        tty = bool(e.config.get("Tty"))
        exec_dir = c.dir / "exec" / exec_id
        exec_dir.mkdir(parents=True, exist_ok=True)
        sock = str(self.containers.sock_dir / f"e-{exec_id[:24]}.sock")
        spec = MonitorSpec(
            kind="exec", state_dir=str(exec_dir), tty=tty,
            open_stdin=bool(e.config.get("AttachStdin")) and not detach, stdin_once=True,
            console_size=console_size or e.config.get("ConsoleSize"),
            container_pid=c.state.Pid, process=self._process(e),
            cgroups_path=f"/berth/{c.Id}",
        )
        await self.forkserver.spawn(sock, asdict(spec))
        session = None
        if client is not None and not detach:
            session = AttachSession(client, stdin=bool(e.config.get("AttachStdin")),
                                    stdout=bool(e.config.get("AttachStdout", True)),
                                    stderr=bool(e.config.get("AttachStderr", True)), tty=tty)
            await session.connect(sock)
        reader, writer = await monitor_request(sock, {"op": "start"})
        line = await reader.readline()
        reply = json.loads(line) if line else {"error": "exec monitor exited", "exit_code": 126}
        self.containers._event(c, "exec_start: " + " ".join(e.config["Cmd"]) + " ")
        if "error" in reply:
            writer.close()
            e.exit_code = 126  # dockerd 20.10 records 126 for any exec that could not start
            e.done.set()
            if session:
                await session.write_error(_short_error(reply["error"]))
                session.close()
                return
            raise StartError(reply["error"], e.exit_code)
        e.running, e.pid = True, reply["pid"]
        if e.pending_size and tty:
            await self.resize(exec_id, *e.pending_size)
        self.containers._spawn(self._watch(e, reader, writer, sock))
        if session:
            try:
                await session.wait()
                await e.done.wait()
            finally:
                session.close()

    async def _watch(self, e: ExecInstance, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter, sock: str) -> None:
        try:
            line = await reader.readline()
        except OSError:
            line = b""
        writer.close()
        info = json.loads(line) if line.strip() else {"exit_code": 126}
        e.exit_code = int(info.get("exit_code", 126))
        e.running, e.pid = False, 0
        e.done.set()
        self.containers._event(e.container, "exec_die", execID=e.ID, exitCode=str(e.exit_code))

    async def resize(self, exec_id: str, h: int, w: int) -> None:
        e = self.get(exec_id)
        if not e.running:
            if e.exit_code is None:
                e.pending_size = (h, w)  # applied once the process runs
            return
        try:
            await monitor_call(str(self.containers.sock_dir / f"e-{exec_id[:24]}.sock"),
                               {"op": "resize", "h": h, "w": w})
        except OSError:
            pass

    def inspect(self, exec_id: str) -> dict[str, Any]:
        e = self.get(exec_id)
        cmd = e.config["Cmd"]
        return {
            "ID": e.ID, "Running": e.running, "ExitCode": e.exit_code,
            "ProcessConfig": {"tty": bool(e.config.get("Tty")), "entrypoint": cmd[0],
                              "arguments": cmd[1:], "privileged": bool(e.config.get("Privileged")),
                              "user": e.config.get("User") or ""},
            "OpenStdin": bool(e.config.get("AttachStdin")),
            "OpenStderr": bool(e.config.get("AttachStderr")),
            "OpenStdout": bool(e.config.get("AttachStdout")),
            "CanRemove": False, "ContainerID": e.container.Id, "DetachKeys": "", "Pid": e.pid,
        }

    def forget_container(self, c: Container) -> None:
        for eid in list(c.exec_ids):
            self.execs.pop(eid, None)


def _short_error(message: str) -> str:
    """dockerd writes the runtime's reason itself for exec set-up failures."""
    marker = "unable to find user"
    if marker in message:
        return message[message.index(marker):].split(": unknown")[0].rstrip(".")
    return message
