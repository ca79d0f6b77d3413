"""Entry point of ``berth``: global flags, verb dispatch, and error-to-exit-code mapping.

Verb modules are imported only when their verb runs, so ``berth run`` loads what it needs and
nothing else. Every failure ends as a message and an exit status, never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from importlib import import_module

from berth.cli.context import PROG, CLIError, Context

DEFAULT_HOST = "unix:///run/berth/berth.sock"

# verb -> (module, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"),
    "create": ("run", "create"),
    "start": ("run", "start"),
    "ps": ("containers", "ps"),
    "stop": ("containers", "stop"),
    "restart": ("containers", "restart"),
    "kill": ("containers", "kill"),
    "rm": ("containers", "rm"),
    "logs": ("containers", "logs"),
    "wait": ("containers", "wait"),
    "top": ("containers", "top"),
    "pause": ("containers", "pause"),
    "unpause": ("containers", "unpause"),
    "rename": ("containers", "rename"),
    "exec": ("exec", "exec_"),
    "images": ("images", "images"),
    "import": ("images", "import_"),
    "rmi": ("images", "rmi"),
    "tag": ("images", "tag"),
    "pull": ("images", "pull"),
    "inspect": ("system", "inspect"),
    "version": ("system", "version"),
    "info": ("system", "info"),
}

GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "container": {
        **{k: COMMANDS[k] for k in ("run", "create", "start", "stop", "restart", "kill", "rm", "logs",
                                    "wait", "top", "pause", "unpause", "rename", "exec")},
        "ls": COMMANDS["ps"],
        "list": COMMANDS["ps"],
        "ps": COMMANDS["ps"],
        "inspect": ("containers", "container_inspect"),
    },
    "image": {
        "ls": COMMANDS["images"],
        "list": COMMANDS["images"],
        "inspect": ("images", "image_inspect"),
        "import": COMMANDS["import"],
        "rm": COMMANDS["rmi"],
        "tag": COMMANDS["tag"],
        "pull": COMMANDS["pull"],
    },
    "system": {"info": COMMANDS["info"]},
}

DESCRIPTIONS = {
    "run": "Create and run a new container from an image",
    "exec": "Execute a command in a running container",
    "ps": "List containers",
    "pull": "Download an image from a registry",
    "images": "List images",
    "version": "Show the Berth version information",
    "info": "Display system-wide information",
    "create": "Create a new container",
    "import": "Import the contents from a tarball to create a filesystem image",
    "inspect": "Return low-level information on Berth objects",
    "kill": "Kill one or more running containers",
    "logs": "Fetch the logs of a container",
    "pause": "Pause all processes within one or more containers",
    "rename": "Rename a container",
    "restart": "Restart one or more containers",
    "rm": "Remove one or more containers",
    "rmi": "Remove one or more images",
    "start": "Start one or more stopped containers",
    "stop": "Stop one or more running containers",
    "tag": "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE",
    "top": "Display the running processes of a container",
    "unpause": "Unpause all processes within one or more containers",
    "wait": "Block until one or more containers stop, then print their exit codes",
}


def usage_text() -> str:
    lines = [f"Usage:  {PROG} [OPTIONS] COMMAND", "", "A Docker-compatible container engine", "",
             "Management Commands:", "  container   Manage containers", "  image       Manage images",
             "  system      Manage Berth", "", "Commands:"]
    lines += [f"  {k.ljust(10)}  {v}" for k, v in sorted(DESCRIPTIONS.items())]
    lines += ["", "Global Options:", "  -H, --host list          Daemon socket to connect to",
              "  -D, --debug              Enable debug mode",
              "  -v, --version            Print version information and quit", "",
              f"Run '{PROG} COMMAND --help' for more information on a command."]
    return "\n".join(lines) + "\n"


def _global_fail(msg: str) -> int:
    sys.stderr.write(f"{msg}\n\nUsage:  {PROG} [OPTIONS] COMMAND [ARG...]\n\nRun '{PROG} --help' for more information\n")
    return 125


def parse_globals(argv: list[str]) -> tuple[str | None, list[str]] | int:
    """Consume global flags before the verb; returns (host, rest) or an exit status."""
    host: str | None = None
    i = 0
    takes_value = {"-H", "--host", "-l", "--log-level", "--config", "-c", "--context",
                   "--tlscacert", "--tlscert", "--tlskey"}
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-") or a == "-":
            break
        if a == "--":
            i += 1
            break
        name, eq, value = a.partition("=")
        if name.startswith("-H") and not name.startswith("--") and len(name) > 2:
            name, value, eq = "-H", a[2:], "="
        if name in takes_value:
            if not eq:
                if i + 1 >= len(argv):
                    shown = f"--{name.lstrip('-')}" if name.startswith("--") else f"'{name[1]}' in {name}"
                    return _global_fail(f"flag needs an argument: {shown}")
                value = argv[i + 1]
                i += 1
            if name in ("-H", "--host"):
                host = value
        elif name in ("-v", "--version"):
            sys.stdout.write(f"Berth version {_version()}\n")
            return 0
        elif name in ("-h", "--help"):
            sys.stdout.write(usage_text())
            return 0
        elif name in ("-D", "--debug", "--tls", "--tlsverify"):
            pass
        else:
            shown = f"unknown flag: {name}" if name.startswith("--") else f"unknown shorthand flag: '{name[1]}' in {a}"
            return _global_fail(shown)
        i += 1
    return host, argv[i:]


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("berth")
    except Exception:  # noqa: BLE001 - metadata may be missing in a source checkout
        return "0.1.0"


def resolve(verb: str, rest: list[str]) -> tuple[Callable[[Context, list[str]], int], str, list[str]] | int:
    """Find the function for ``verb`` (or ``group verb``); returns it, its display name, its argv."""
    if verb in GROUPS:
        group = GROUPS[verb]
        if not rest or rest[0] in ("--help", "-h"):
            sys.stdout.write(f"Usage:  {PROG} {verb} COMMAND\n\nCommands:\n"
                             + "".join(f"  {k}\n" for k in sorted(group)))
            return 0
        sub = rest[0]
        if sub not in group:
            sys.stderr.write(f"{PROG}: unknown command: {PROG} {verb} {sub}\n\nRun '{PROG} {verb} --help' for more information\n")
            return 1
        module, func = group[sub]
        return getattr(import_module(f"berth.cli.{module}"), func), f"{verb} {sub}", rest[1:]
    if verb not in COMMANDS:
        sys.stderr.write(f"{PROG}: unknown command: {PROG} {verb}\n\nRun '{PROG} --help' for more information\n")
        return 1
    module, func = COMMANDS[verb]
    return getattr(import_module(f"berth.cli.{module}"), func), verb, rest


def main(argv: list[str] | None = None) -> int:
    """Run one ``berth`` command line and return (and, as a script, exit with) its status."""
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            _silence_stdout()
        sys.exit(code)
    return code


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass


def _main(argv: list[str]) -> int:
    parsed = parse_globals(argv)
    if isinstance(parsed, int):
        return parsed
    host, rest = parsed
    if not rest:
        sys.stdout.write(usage_text())
        return 0
    host = host or os.environ.get("BERTH_HOST") or os.environ.get("DOCKER_HOST") or DEFAULT_HOST
    ctx = Context(host)
    from berth.cli.flags import HelpRequested, UsageError
    from berth.client.http import ConnectError

    try:
        found = resolve(rest[0], rest[1:])
        if isinstance(found, int):
            return found
        func, _name, args = found
        return func(ctx, args)
    except HelpRequested as e:
        sys.stdout.write(e.text)
        return 0
    except UsageError as e:
        Context.err(e.message + "\n")
        return e.code
    except CLIError as e:
        Context.err(e.message + "\n")
        return e.code
    except ConnectError:
        Context.err(f"Cannot connect to the Berth daemon at {host}. Is the daemon running?\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 0
    except Exception as e:  # noqa: BLE001 - last line of defence: never a traceback
        from berth.client.api import APIError

        if isinstance(e, APIError):
            Context.err(f"Error response from daemon: {e.message}\n")
            return 1
        if isinstance(e, OSError):
            Context.err(f"error during connect: {e}\n")
            return 1
        if os.environ.get("BERTH_DEBUG"):
            raise
        Context.err(f"{PROG}: {type(e).__name__}: {e}\n")
        return 1
    finally:
        if ctx._client is not None:
            ctx._client.close()


if __name__ == "__main__":
    main()
