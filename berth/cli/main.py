"""Entry point of ``berth``: global flags, verb dispatch, and error-to-exit-code mapping.

Verb modules are imported only when their verb runs, so ``berth run`` loads what it needs and
nothing else. Every failure ends as a message and an exit status, never a traceback.
"""

from __future__ import annotations

import os
import sys

from berth.cli.context import PROG, CLIError, Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_HOST = "unix:///run/berth/berth.sock"

# verb -> (module, function)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "run"),
    "create": ("run", "create"),
    "start": ("run", "start"),
    "attach": ("attach", "attach"),
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
    "export": ("archive", "export"),
    "commit": ("archive", "commit"),
    "diff": ("archive", "diff"),
    "images": ("images", "images"),
    "history": ("images", "history"),
    "import": ("images", "import_"),
    "rmi": ("images", "rmi"),
    "tag": ("images", "tag"),
    "save": ("archive", "save"),
    "load": ("archive", "load"),
    "pull": ("registry", "pull"),
    "push": ("registry", "push"),
    "login": ("registry", "login"),
    "logout": ("registry", "logout"),
    "search": ("registry", "search"),
    "events": ("events", "events"),
    "inspect": ("system", "inspect"),
    "version": ("system", "version"),
    "info": ("system", "info"),
}

GROUPS: dict[str, dict[str, tuple[str, str]]] = {
    "container": {
        **{k: COMMANDS[k] for k in ("run", "create", "start", "stop", "restart", "kill", "rm", "logs",
                                    "wait", "top", "pause", "unpause", "rename", "exec", "attach",
                                    "export", "commit", "diff")},
        "ls": COMMANDS["ps"],
        "list": COMMANDS["ps"],
        "ps": COMMANDS["ps"],
        "remove": COMMANDS["rm"],
        "inspect": ("containers", "container_inspect"),
        "prune": ("disk", "container_prune"),
    },
    "image": {
        **{k: COMMANDS[k] for k in ("history", "import", "tag", "pull", "push", "save", "load")},
        "ls": COMMANDS["images"],
        "list": COMMANDS["images"],
        "inspect": ("images", "image_inspect"),
        "rm": COMMANDS["rmi"],
        "remove": COMMANDS["rmi"],
        "prune": ("disk", "image_prune"),
    },
    "system": {
        "info": COMMANDS["info"],
        "events": COMMANDS["events"],
        "df": ("disk", "system_df"),
        "prune": ("disk", "system_prune"),
    },
}

# verbs that take over the rest of the command line themselves
HANDOFF: dict[str, tuple[str, str]] = {"registry": ("registry", "registry")}

DESCRIPTIONS = {
    "run": "Create and run a new container from an image",
    "exec": "Execute a command in a running container",
    "ps": "List containers",
    "pull": "Download an image from a registry",
    "push": "Upload an image to a registry",
    "search": "Search Docker Hub for images",
    "images": "List images",
    "login": "Authenticate to a registry",
    "logout": "Log out from a registry",
    "version": "Show the Berth version information",
    "info": "Display system-wide information",
    "attach": "Attach local standard input, output, and error streams to a running container",
    "commit": "Create a new image from a container's changes",
    "create": "Create a new container",
    "diff": "Inspect changes to files or directories on a container's filesystem",
    "events": "Get real time events from the server",
    "export": "Export a container's filesystem as a tar archive",
    "history": "Show the history of an image",
    "import": "Import the contents from a tarball to create a filesystem image",
    "inspect": "Return low-level information on Berth objects",
    "kill": "Kill one or more running containers",
    "load": "Load an image from a tar archive or STDIN",
    "logs": "Fetch the logs of a container",
    "pause": "Pause all processes within one or more containers",
    "rename": "Rename a container",
    "restart": "Restart one or more containers",
    "rm": "Remove one or more containers",
    "rmi": "Remove one or more images",
    "save": "Save one or more images to a tar archive (streamed to STDOUT by default)",
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
             "  registry    Run Berth's registry server (serve, gc)",
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
            from berth import __version__

            sys.stdout.write(f"Berth version {__version__}\n")
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


def _load(module: str, func: str) -> Callable[[Context, list[str]], int]:
    """The verb's function; its module is imported only now (``__import__``: no importlib)."""
    mod = __import__(f"berth.cli.{module}", fromlist=[func])
    return getattr(mod, func)


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
        return _load(*group[sub]), f"{verb} {sub}", rest[1:]
    if verb in HANDOFF:
        return _load(*HANDOFF[verb]), verb, rest
    if verb not in COMMANDS:
        sys.stderr.write(f"{PROG}: unknown command: {PROG} {verb}\n\nRun '{PROG} --help' for more information\n")
        return 1
    return _load(*COMMANDS[verb]), verb, rest


def main(argv: list[str] | None = None) -> int:
    """Run one ``berth`` command line and return (and, as a script, exit with) its status."""
    code = _main(sys.argv[1:] if argv is None else argv)
    if argv is None:
        try:
            sys.stdout.flush()
        except (BrokenPipeError, OSError):
            _silence_stdout()
        try:
            sys.stderr.flush()
        except OSError:
            pass
        # Skip the interpreter's teardown (module cleanup, GC: ~10 ms here): everything the
        # command had to say is written, and it holds nothing else that needs closing.
        os._exit(code)
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
