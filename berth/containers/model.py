"""Container records: what was asked at create, the state machine, and Docker's JSON shapes.

States: created → running ⇄ paused; running → exited (→ running again on start/restart);
any → removing → gone. ``State`` is persisted in state.json, the create options in
container.json, both written atomically.
"""

from __future__ import annotations

import asyncio
import pathlib
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from berth.units import human_duration
from berth.util import ZERO_TIME, atomic_write_json, parse_rfc3339

CREATED, RUNNING, PAUSED, RESTARTING, REMOVING, EXITED, DEAD = (
    "created", "running", "paused", "restarting", "removing", "exited", "dead")


@dataclass
class State:
    Status: str = CREATED
    Running: bool = False
    Paused: bool = False
    Restarting: bool = False
    OOMKilled: bool = False
    Dead: bool = False
    Pid: int = 0
    ExitCode: int = 0
    Error: str = ""
    StartedAt: str = ZERO_TIME
    FinishedAt: str = ZERO_TIME
    # not shown by inspect: how to find the processes again after a daemon restart
    pid_start_time: int = 0
    monitor_pid: int = 0
    monitor_start_time: int = 0

    def public(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("pid_start_time", "monitor_pid", "monitor_start_time"):
            d.pop(k)
        return d


@dataclass
class Container:
    Id: str
    Name: str  # with the leading "/"
    Created: str
    Image: str  # as the user typed it
    ImageID: str
    Config: dict[str, Any]
    HostConfig: dict[str, Any]
    Path: str = ""
    Args: list[str] = field(default_factory=list)
    RestartCount: int = 0
    state: State = field(default_factory=State)
    # runtime-only (never persisted)
    dir: pathlib.Path = pathlib.Path("/nonexistent")
    exit_waiters: list[asyncio.Future] = field(default_factory=list, repr=False)
    removed_waiters: list[asyncio.Future] = field(default_factory=list, repr=False)
    pending_attaches: list[Any] = field(default_factory=list, repr=False)
    exec_ids: set[str] = field(default_factory=set)
    monitor_gone: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    CONFIG_KEYS = ("Id", "Name", "Created", "Image", "ImageID", "Config", "HostConfig", "Path",
                   "Args", "RestartCount")

    # -- persistence ----------------------------------------------------------------------
    def save_config(self) -> None:
        atomic_write_json(self.dir / "container.json", {k: getattr(self, k) for k in self.CONFIG_KEYS})

    def save_state(self) -> None:
        atomic_write_json(self.dir / "state.json", asdict(self.state), durable=False)

    @classmethod
    def load(cls, cdir: pathlib.Path, config: dict[str, Any], state: dict[str, Any] | None) -> Container:
        c = cls(**{k: config[k] for k in cls.CONFIG_KEYS if k in config})
        c.dir = cdir
        if state:
            c.state = State(**{k: v for k, v in state.items() if k in State.__dataclass_fields__})
        return c

    # -- views ------------------------------------------------------------------------------
    @property
    def short_id(self) -> str:
        return self.Id[:12]

    @property
    def running(self) -> bool:
        return self.state.Running

    @property
    def log_path(self) -> pathlib.Path:
        return self.dir / f"{self.Id}-json.log"

    def status_text(self, now: float | None = None) -> str:
        """What ``docker ps`` shows in STATUS, rendered by the server as dockerd does."""
        now = time.time() if now is None else now
        s = self.state
        if s.Running:
            up = f"Up {human_duration(now - parse_rfc3339(s.StartedAt))}"
            return up + " (Paused)" if s.Paused else up
        if s.Status == REMOVING:
            return "Removal In Progress"
        if s.Status == DEAD:
            return "Dead"
        if s.FinishedAt == ZERO_TIME or s.Status == CREATED:
            return "Created"
        return f"Exited ({s.ExitCode}) {human_duration(now - parse_rfc3339(s.FinishedAt))} ago"

    def command_text(self) -> str:
        """The COMMAND of ``ps`` as dockerd builds it: arguments with a space are single-quoted."""
        if not self.Args:
            return self.Path
        args = [f"'{a}'" if " " in a else a for a in self.Args]
        return f"{self.Path} {' '.join(args)}"


