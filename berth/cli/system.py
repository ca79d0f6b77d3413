"""``inspect`` (any object), ``version`` and ``info``."""

from __future__ import annotations

import os
import sys

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.cli.formatting import Template, TemplateError, bytes_size
from berth.client.api import MAX_API_VERSION, APIError, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def print_inspect(ctx: Context, found: list[Any], errors: list[str], fmt: str | None) -> int:
    """Print inspect results like docker (a 4-space indented JSON array, or one template line
    per object) and the errors after them; returns the exit status."""
    import json
    if fmt:
        try:
            tmpl = Template(fmt)
            ctx.out("".join(tmpl.render(obj) + "\n" for obj in found))
        except TemplateError as e:
            raise CLIError(f"template parsing error: {e}", 1) from None
    elif found or errors:
        ctx.out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if errors:
        ctx.err("\n".join(errors) + "\n")
        return 1
    return 0


INSPECT = Command("inspect", "[OPTIONS] NAME|ID [NAME|ID...]", "Return low-level information on Berth objects", 1)
INSPECT.flag("format", "f", help="Format output using a custom template")
INSPECT.flag("size", "s", "bool", help="Display total file sizes if the type is container")
INSPECT.flag("type", None, help="Return JSON for specified type")

_PROBES = {
    "container": "/containers/{}/json",
    "image": "/images/{}/json",
    "network": "/networks/{}",
    "volume": "/volumes/{}",
}


def inspect(ctx: Context, argv: list[str]) -> int:
    opts, refs = INSPECT.parse(argv)
    kinds = [opts.type] if opts.type else list(_PROBES)
    if opts.type and opts.type not in _PROBES:
        raise CLIError(f'"{opts.type}" is not a valid value for --type', 1)
    found, errors = [], []
    for ref in refs:
        for kind in kinds:
            try:
                params = {"size": "1"} if kind == "container" and opts.size else None
                found.append(ctx.client.call("GET", _PROBES[kind].format(quote_path(ref)), params))
                break
            except APIError as e:
                if e.status not in (404, 400):
                    raise
        else:
            what = f"No such {opts.type}" if opts.type else "No such object"
            errors.append(f"Error: {what}: {ref}")
    return print_inspect(ctx, found, errors, opts.format)


VERSION = Command("version", "[OPTIONS]", "Show the Berth version information", 0, 0)
VERSION.flag("format", "f", help="Format output using a custom template")


def _python_version() -> str:
    return ".".join(str(n) for n in sys.version_info[:3])


def _client_version() -> dict[str, Any]:
    from berth import __version__

    machine = os.uname().machine
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {"Version": __version__, "ApiVersion": MAX_API_VERSION, "DefaultAPIVersion": MAX_API_VERSION,
            "GoVersion": "python" + _python_version(), "GitCommit": "", "BuildTime": "",
            "Os": sys.platform, "Arch": arch, "Context": "default"}


def version(ctx: Context, argv: list[str]) -> int:
    opts, _ = VERSION.parse(argv)
    client = _client_version()
    from berth.client.http import ConnectError

    server: dict[str, Any] | None = None
    failure: str | None = None
    try:
        server = ctx.client.call("GET", "/version")
    except ConnectError:
        failure = f"Cannot connect to the Berth daemon at {ctx.host}. Is the daemon running?"
    except APIError as e:
        failure = f"Error response from daemon: {e.message}"
    if opts.format:
        try:
            ctx.out(Template(opts.format).render({"Client": client, "Server": server}) + "\n")
        except TemplateError as e:
            raise CLIError(f"template parsing error: {e}", 1) from None
    else:
        lines = ["Client:", f" Version:           {client['Version']}",
                 f" API version:       {ctx.client.version or client['ApiVersion']}",
                 f" Python version:    {_python_version()}",
                 f" OS/Arch:           {client['Os']}/{client['Arch']}", " Context:           default"]
        if server:
            s = server
            lines += ["", f"Server: {(s.get('Platform') or {}).get('Name', '')}".rstrip(), " Engine:",
                      f"  Version:          {s.get('Version', '')}",
                      f"  API version:      {s.get('ApiVersion', '')} (minimum version {s.get('MinAPIVersion', '')})",
                      f"  Go version:       {s.get('GoVersion', '')}",
                      f"  Git commit:       {s.get('GitCommit', '')}",
                      f"  Built:            {s.get('BuildTime', '')}",
                      f"  OS/Arch:          {s.get('Os', '')}/{s.get('Arch', '')}",
                      f"  Experimental:     {str(s.get('Experimental', False)).lower()}"]
            for comp in s.get("Components") or []:
                if comp.get("Name") == "Engine":
                    continue
                lines += [f" {comp.get('Name')}:", f"  Version:          {comp.get('Version', '')}"]
        ctx.out("\n".join(lines) + "\n")
    if failure:
        ctx.err(failure + "\n")
        return 1
    return 0


INFO = Command("info", "[OPTIONS]", "Display system-wide information", 0, 0)
INFO.flag("format", "f", help="Format output using a custom template")


def info(ctx: Context, argv: list[str]) -> int:
    import json
    opts, _ = INFO.parse(argv)
    data = ctx.client.call("GET", "/info") or {}
    if opts.format:
        if opts.format == "json":
            ctx.out(json.dumps(data, ensure_ascii=False) + "\n")
            return 0
        try:
            ctx.out(Template(opts.format).render(data) + "\n")
        except TemplateError as e:
            raise CLIError(f"template parsing error: {e}", 1) from None
        return 0
    g = data.get
    lines = ["Client:", " Version:    " + _client_version()["Version"], " Context:    default",
             " Debug Mode: false", "", "Server:",
             f" Containers: {g('Containers', 0)}", f"  Running: {g('ContainersRunning', 0)}",
             f"  Paused: {g('ContainersPaused', 0)}", f"  Stopped: {g('ContainersStopped', 0)}",
             f" Images: {g('Images', 0)}", f" Server Version: {g('ServerVersion', '')}",
             f" Storage Driver: {g('Driver', '')}"]
    for pair in g("DriverStatus") or []:
        if len(pair) == 2:
            lines.append(f"  {pair[0]}: {pair[1]}")
    lines += [f" Logging Driver: {g('LoggingDriver', '')}", f" Cgroup Driver: {g('CgroupDriver', '')}",
              f" Cgroup Version: {g('CgroupVersion', '')}"]
    runtimes = " ".join(sorted((g("Runtimes") or {}).keys()))
    if runtimes:
        lines.append(f" Runtimes: {runtimes}")
    lines += [f" Default Runtime: {g('DefaultRuntime', '')}",
              f" Swarm: {(g('Swarm') or {}).get('LocalNodeState', 'inactive')}"]
    sec = g("SecurityOptions") or []
    if sec:
        lines.append(" Security Options:")
        for opt in sec:
            parts = dict(p.split("=", 1) for p in opt.split(",") if "=" in p)
            lines.append(f"  {parts.get('name', opt)}")
    lines += [f" Kernel Version: {g('KernelVersion', '')}", f" Operating System: {g('OperatingSystem', '')}",
              f" OSType: {g('OSType', '')}", f" Architecture: {g('Architecture', '')}",
              f" CPUs: {g('NCPU', 0)}", f" Total Memory: {bytes_size(g('MemTotal', 0) or 0)}",
              f" Name: {g('Name', '')}", f" ID: {g('ID', '')}", f" Docker Root Dir: {g('DockerRootDir', '')}",
              f" Debug Mode: {str(bool(g('Debug'))).lower()}", f" Experimental: {str(bool(g('ExperimentalBuild'))).lower()}",
              f" Live Restore Enabled: {str(bool(g('LiveRestoreEnabled'))).lower()}"]
    ctx.out("\n".join(lines) + "\n")
    warnings = g("Warnings") or []
    if warnings:
        ctx.err("".join(w + "\n" for w in warnings))
    return 0
