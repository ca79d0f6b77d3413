"""Container verbs other than create/run/start/exec: ps, stop, restart, kill, rm, logs, wait,
top, pause, unpause, rename, container inspect."""

from __future__ import annotations

import time

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.cli.formatting import (
    ellipsis,
    go_quote,
    human_size,
    short_id,
    since,
    tabwrite,
    unix_to_local,
)
from berth.cli.listing import print_list
from berth.client.api import APIError, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def build_filters(items: list[str] | None) -> str | None:
    """``-f k=v`` flags as docker CLI's JSON: ``{"k":{"v":true}}``."""
    import json
    if not items:
        return None
    out: dict[str, dict[str, bool]] = {}
    for item in items:
        k, eq, v = item.partition("=")
        if not eq:
            raise CLIError("bad format of filter (expected name=value)", 125)
        out.setdefault(k.strip().lower(), {})[v] = True
    return json.dumps(out, separators=(",", ":"))


def format_ports(ports: list[dict[str, Any]] | None) -> str:
    """docker's DisplayablePorts: ``443/tcp, 8000-8001/tcp, 0.0.0.0:8080->80/tcp``."""
    groups: dict[str, list[int]] = {}
    order: list[str] = []
    mappings: list[str] = []
    result: list[str] = []

    def form(key: str, first: int, last: int) -> str:
        rng = str(first) if first == last else f"{first}-{last}"
        if "/" in key:
            ip, proto = key.rsplit("/", 1)
            host = f"[{ip}]" if ":" in ip else ip
            return f"{host}:{rng}->{rng}/{proto}"
        return f"{rng}/{key}"

    for p in sorted(ports or [], key=lambda p: (p.get("PrivatePort", 0), p.get("Type", ""))):
        current = int(p.get("PrivatePort", 0))
        proto = p.get("Type", "tcp")
        key = proto
        ip = p.get("IP") or ""
        if ip:
            public = int(p.get("PublicPort") or 0)
            if public != current:
                host = f"[{ip}]" if ":" in ip else ip
                mappings.append(f"{host}:{public}->{current}/{proto}")
                continue
            key = f"{ip}/{proto}"
        g = groups.get(key)
        if g is None:
            groups[key] = [current, current]
            order.append(key)
        elif current == g[1] + 1:
            g[1] = current
        else:
            result.append(form(key, *g))
            groups[key] = [current, current]
    result += [form(key, *groups[key]) for key in order]
    return ", ".join(result + mappings)


class ContainerRow:
    """The fields ``ps --format`` templates can name, computed like docker's formatter."""

    def __init__(self, c: dict[str, Any], trunc: bool) -> None:
        self.c = c
        self.trunc = trunc

    @property
    def ID(self) -> str:  # noqa: N802 - template field names are docker's
        cid = self.c.get("Id", "")
        return short_id(cid) if self.trunc else cid

    @property
    def Names(self) -> str:  # noqa: N802
        names = [n[1:] if n.startswith("/") else n for n in self.c.get("Names") or []]
        if self.trunc:
            names = [n for n in names if "/" not in n][:1] or names[:1]
        return ",".join(names)

    @property
    def Image(self) -> str:  # noqa: N802
        image = self.c.get("Image") or "<no image>"
        if self.trunc:
            if short_id(self.c.get("ImageID", "")) == short_id(image):
                return short_id(image)
            if "@sha256:" in image:
                image = image.split("@", 1)[0]
        return image

    @property
    def Command(self) -> str:  # noqa: N802
        cmd = self.c.get("Command", "")
        return go_quote(ellipsis(cmd, 20) if self.trunc else cmd)

    @property
    def CreatedAt(self) -> str:  # noqa: N802
        return unix_to_local(self.c.get("Created", 0))

    @property
    def RunningFor(self) -> str:  # noqa: N802
        return since(self.c.get("Created", 0))

    @property
    def Ports(self) -> str:  # noqa: N802
        return format_ports(self.c.get("Ports"))

    @property
    def State(self) -> str:  # noqa: N802
        return self.c.get("State", "")

    @property
    def Status(self) -> str:  # noqa: N802
        return self.c.get("Status", "")

    @property
    def Size(self) -> str:  # noqa: N802
        rw = human_size(self.c.get("SizeRw") or 0)
        root = self.c.get("SizeRootFs") or 0
        return f"{rw} (virtual {human_size(root)})" if root > 0 else rw

    @property
    def Labels(self) -> str:  # noqa: N802
        return ",".join(f"{k}={v}" for k, v in (self.c.get("Labels") or {}).items())

    @property
    def Mounts(self) -> str:  # noqa: N802
        return ",".join(m.get("Name") or m.get("Source", "") for m in self.c.get("Mounts") or [])

    @property
    def Networks(self) -> str:  # noqa: N802
        return ",".join(sorted(((self.c.get("NetworkSettings") or {}).get("Networks") or {}).keys()))

    def as_dict(self) -> dict[str, str]:
        keys = ["Command", "CreatedAt", "ID", "Image", "Labels", "Mounts", "Names", "Networks",
                "Ports", "RunningFor", "Size", "State", "Status"]
        return {k: getattr(self, k) for k in keys}


PS_HEADERS = {"ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
              "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
              "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
              "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES"}

PS = Command("ps", "[OPTIONS]", "List containers", 0, 0)
PS.flag("all", "a", "bool", help="Show all containers (default shows just running)")
PS.flag("filter", "f", "list", help="Filter output based on conditions provided", metavar="filter")
PS.flag("format", None, help="Format output using a custom template")
PS.flag("last", "n", "int", -1, help="Show n last created containers (includes all states)")
PS.flag("latest", "l", "bool", help="Show the latest created container (includes all states)")
PS.flag("no-trunc", None, "bool", help="Don't truncate output")
PS.flag("quiet", "q", "bool", help="Only display container IDs")
PS.flag("size", "s", "bool", help="Display total file sizes")


def ps(ctx: Context, argv: list[str]) -> int:
    opts, _ = PS.parse(argv)
    limit = 1 if opts.latest else opts.last
    params: list[tuple[str, Any]] = []
    if opts.all or limit != -1:
        params.append(("all", "1"))
    if limit != -1:
        params.append(("limit", str(limit)))
    if opts.size:
        params.append(("size", "1"))
    filters = build_filters(opts.filter)
    if filters:
        params.append(("filters", filters))
    containers = ctx.client.call("GET", "/containers/json", params) or []
    rows = [ContainerRow(c, not opts.no_trunc) for c in containers]
    cols = ["ID", "Image", "Command", "RunningFor", "Status", "Ports", "Names"] + (["Size"] if opts.size else [])
    return print_list(ctx, rows, opts.format, opts.quiet, PS_HEADERS, cols)


def _each(ctx: Context, refs: list[str], action) -> int:  # noqa: ANN001
    """Apply ``action`` to each reference; print it on success, collect errors like docker."""
    errors = []
    for ref in refs:
        try:
            action(ref)
            ctx.out(ref + "\n")
        except APIError as e:
            errors.append(f"Error response from daemon: {e.message}")
    if errors:
        ctx.err("\n".join(errors) + "\n")
        return 1
    return 0


def _stop_command(name: str, desc: str) -> Command:
    c = Command(name, "[OPTIONS] CONTAINER [CONTAINER...]", desc, 1)
    c.flag("signal", "s", help="Signal to send to the container")
    c.flag("timeout", "t", "int", None, help="Seconds to wait before killing the container")
    c.flag("time", None, "int", None, help="Seconds to wait before killing the container (deprecated: use --timeout)")
    return c


STOP = _stop_command("stop", "Stop one or more running containers")
RESTART = _stop_command("restart", "Restart one or more containers")


def _stop_like(ctx: Context, argv: list[str], cmd: Command) -> int:
    opts, refs = cmd.parse(argv)
    t = opts.timeout if opts.timeout is not None else opts.time
    params = {"t": t, "signal": opts.signal or None}
    client = ctx.client
    return _each(ctx, refs, lambda r: client.request("POST", f"/containers/{quote_path(r)}/{cmd.name}", params).read())


def stop(ctx: Context, argv: list[str]) -> int:
    return _stop_like(ctx, argv, STOP)


def restart(ctx: Context, argv: list[str]) -> int:
    return _stop_like(ctx, argv, RESTART)


KILL = Command("kill", "[OPTIONS] CONTAINER [CONTAINER...]", "Kill one or more running containers", 1)
KILL.flag("signal", "s", help="Signal to send to the container")


def kill(ctx: Context, argv: list[str]) -> int:
    opts, refs = KILL.parse(argv)
    client = ctx.client
    return _each(ctx, refs, lambda r: client.kill(r, opts.signal or None))


def _simple(name: str, desc: str) -> Command:
    return Command(name, "CONTAINER [CONTAINER...]", desc, 1)


PAUSE = _simple("pause", "Pause all processes within one or more containers")
UNPAUSE = _simple("unpause", "Unpause all processes within one or more containers")


def pause(ctx: Context, argv: list[str]) -> int:
    _, refs = PAUSE.parse(argv)
    return _each(ctx, refs, lambda r: ctx.client.request("POST", f"/containers/{quote_path(r)}/pause").read())


def unpause(ctx: Context, argv: list[str]) -> int:
    _, refs = UNPAUSE.parse(argv)
    return _each(ctx, refs, lambda r: ctx.client.request("POST", f"/containers/{quote_path(r)}/unpause").read())


RM = Command("rm", "[OPTIONS] CONTAINER [CONTAINER...]", "Remove one or more containers", 1)
RM.flag("force", "f", "bool", help="Force the removal of a running container (uses SIGKILL)")
RM.flag("link", "l", "bool", help="Remove the specified link")
RM.flag("volumes", "v", "bool", help="Remove anonymous volumes associated with the container")


def rm(ctx: Context, argv: list[str]) -> int:
    opts, refs = RM.parse(argv)
    params = {"force": True if opts.force else None, "v": True if opts.volumes else None,
              "link": True if opts.link else None}
    return _each(ctx, refs, lambda r: ctx.client.request("DELETE", f"/containers/{quote_path(r)}", params).read())


RENAME = Command("rename", "CONTAINER NEW_NAME", "Rename a container", 2, 2)


def rename(ctx: Context, argv: list[str]) -> int:
    _, (old, new) = RENAME.parse(argv)
    if not new.strip():
        raise CLIError("Error: Neither old nor new names may be empty", 1)
    ctx.client.request("POST", f"/containers/{quote_path(old)}/rename", {"name": new}).read()
    return 0


WAIT = Command("wait", "CONTAINER [CONTAINER...]", "Block until one or more containers stop, then print their exit codes", 1)


def wait(ctx: Context, argv: list[str]) -> int:
    _, refs = WAIT.parse(argv)
    errors = []
    for ref in refs:
        try:
            reply = ctx.client.call("POST", f"/containers/{quote_path(ref)}/wait") or {}
            ctx.out(f"{reply.get('StatusCode', 0)}\n")
        except APIError as e:
            errors.append(f"Error response from daemon: {e.message}")
    if errors:
        ctx.err("\n".join(errors) + "\n")
        return 1
    return 0


TOP = Command("top", "CONTAINER [ps OPTIONS]", "Display the running processes of a container", 1, None, False)


def top(ctx: Context, argv: list[str]) -> int:
    _, args = TOP.parse(argv)
    params = {"ps_args": " ".join(args[1:]) or None}
    reply = ctx.client.call("GET", f"/containers/{quote_path(args[0])}/top", params) or {}
    rows = [reply.get("Titles") or []] + [list(p) for p in reply.get("Processes") or []]
    ctx.out(tabwrite(rows, minwidth=20))
    return 0


_DURATION = r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)"
_SCALE = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def timestamp_param(value: str, now: float | None = None) -> str:
    """docker's GetTimestamp: ``10m`` → unix seconds, ``1700000000[.5]`` as is, RFC 3339 dates →
    ``seconds.nanoseconds`` (9 digits)."""
    import math
    import re  # here, not at the top: `re` costs ~15 ms of every CLI start

    now = time.time() if now is None else now
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return value
    if re.fullmatch(r"(\d+(?:\.\d+)?(ns|us|µs|ms|s|m|h))+", value):
        secs = sum(float(n) * _SCALE[u] for n, u in re.findall(_DURATION, value))
        return str(int(now - secs) if now >= secs else math.floor(now - secs))
    from datetime import UTC, datetime

    v = value.replace("Z", "+00:00")
    for fmt in (None, "%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            dt = datetime.fromisoformat(v) if fmt is None else datetime.strptime(v, fmt)
        except ValueError:
            continue
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC) if "T" not in v and fmt else dt.astimezone()
        whole = math.floor(dt.timestamp())
        return f"{whole}.{dt.microsecond * 1000:09d}"
    raise CLIError(f'invalid value for "since": failed to parse value as time or duration: "{value}"', 1)


LOGS = Command("logs", "[OPTIONS] CONTAINER", "Fetch the logs of a container", 1, 1)
LOGS.flag("details", None, "bool", help="Show extra details provided to logs")
LOGS.flag("follow", "f", "bool", help="Follow log output")
LOGS.flag("since", None, help="Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")
LOGS.flag("tail", "n", default="all", help='Number of lines to show from the end of the logs (default "all")')
LOGS.flag("timestamps", "t", "bool", help="Show timestamps")
LOGS.flag("until", None, help="Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")


def logs(ctx: Context, argv: list[str]) -> int:
    from berth.cli.streams import copy_output

    opts, (ref,) = LOGS.parse(argv)
    client = ctx.client
    info = client.inspect_container(ref)
    tty = bool((info.get("Config") or {}).get("Tty"))
    params: list[tuple[str, Any]] = [("stderr", "1"), ("stdout", "1"), ("tail", opts.tail or "all")]
    if opts.follow:
        params.append(("follow", "1"))
    if opts.timestamps:
        params.append(("timestamps", "1"))
    if opts.details:
        params.append(("details", "1"))
    if opts.since:
        params.append(("since", timestamp_param(opts.since)))
    if opts.until:
        params.append(("until", timestamp_param(opts.until)))
    resp = client.request("GET", f"/containers/{quote_path(ref)}/logs", params)
    ctx.out("")
    copy_output(resp.read_chunk, tty)
    return 0


INSPECT = Command("container inspect", "[OPTIONS] CONTAINER [CONTAINER...]",
                  "Display detailed information on one or more containers", 1)
INSPECT.flag("format", "f", help="Format output using a custom template")
INSPECT.flag("size", "s", "bool", help="Display total file sizes")


def container_inspect(ctx: Context, argv: list[str]) -> int:
    from berth.cli.system import print_inspect

    opts, refs = INSPECT.parse(argv)
    found, errors = [], []
    for ref in refs:
        try:
            found.append(ctx.client.call("GET", f"/containers/{quote_path(ref)}/json",
                                         {"size": "1" if opts.size else None}))
        except APIError as e:
            if e.status != 404:
                raise
            errors.append(f"Error: No such container: {ref}")
    return print_inspect(ctx, found, errors, opts.format)
