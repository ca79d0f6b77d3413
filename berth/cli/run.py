"""``create``, ``run`` and ``start``: the attach-wait-start choreography of ENGINE-API.md §6."""

from __future__ import annotations

import _signal as signal  # not `signal`: its enums cost ms at every `run`
import sys

from berth.cli.context import PROG, CLIError, Context
from berth.cli.flags import Command
from berth.client.api import APIError, Client, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run_error(verb: str, message: str, code: int = 125) -> CLIError:
    return CLIError(f"{PROG}: {message}\n\nRun '{PROG} {verb} --help' for more information", code)


def image_with_tag(image: str) -> tuple[str, str]:
    """Split ``name[:tag][@digest]`` into (name, tag-or-digest), defaulting the tag to latest."""
    if "@" in image:
        name, digest = image.split("@", 1)
        return name, digest
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        return image[:colon], image[colon + 1 :]
    return image, "latest"


def pull_image(ctx: Context, image: str) -> None:
    """The implicit pull of run/create, its progress on stderr like docker's."""
    from berth.cli.registry import pull_image as pull

    pull(ctx, image, sys.stderr)


def create_container(ctx: Context, verb: str, body: dict[str, Any], name: str | None, pull: str) -> str:
    """POST /containers/create, pulling the image once on "No such image"; returns the id."""
    client = ctx.client
    image = body["Image"]
    try:
        if pull == "always":
            pull_image(ctx, image)
        try:
            reply = client.create_container(body, name)
        except APIError as e:
            if e.status != 404 or "image" not in e.message.lower() or pull == "never":
                raise
            name_, tag = image_with_tag(image)
            sep = "@" if tag.startswith("sha256:") else ":"
            ctx.err(f"Unable to find image '{name_}{sep}{tag}' locally\n")
            pull_image(ctx, image)
            reply = client.create_container(body, name)
    except APIError as e:
        raise run_error(verb, f"Error response from daemon: {e.message}") from None
    except CLIError as e:
        raise run_error(verb, e.message) from None
    for w in reply.get("Warnings") or []:
        ctx.err(f"WARNING: {w}\n")
    return reply["Id"]


def _parse_and_build(cmd: Command, argv: list[str], detach: bool | None) -> tuple[Any, dict[str, Any]]:
    from berth.cli.runconfig import build_create_body
    from berth.cli.streams import terminal_size

    opts, args = cmd.parse(argv)
    is_detach = bool(getattr(opts, "detach", False)) if detach is None else detach
    console = (0, 0)
    if opts.tty:
        console = terminal_size() or (0, 0)
    try:
        body = build_create_body(opts, args, is_detach, console)
    except ValueError as e:
        raise cmd.fail(str(e)) from None
    return opts, body


def create(ctx: Context, argv: list[str]) -> int:
    from berth.cli.runconfig import create_command

    opts, body = _parse_and_build(create_command(), argv, False)
    cid = create_container(ctx, "create", body, opts.name, opts.pull)
    ctx.out(cid + "\n")
    return 0


def _start_error(message: str) -> CLIError:
    low = message.lower()
    code = 126 if "permission denied" in low else 127 if (
        "executable file not found" in low or "no such file or directory" in low) else 125
    return run_error("run", f"Error response from daemon: {message}", code)


def run(ctx: Context, argv: list[str]) -> int:
    from berth.cli.runconfig import run_command

    opts, body = _parse_and_build(run_command(), argv, None)
    client = ctx.client
    cid = create_container(ctx, "run", body, opts.name, opts.pull)
    if opts.cidfile:
        with open(opts.cidfile, "w", encoding="utf-8") as fh:
            fh.write(cid)
    if opts.detach:
        try:
            client.start_container(cid)
        except APIError as e:
            raise _start_error(e.message) from None
        ctx.out(cid + "\n")
        return 0
    return attach_and_run(ctx, cid, body, opts)


def attach_and_run(ctx: Context, cid: str, body: dict[str, Any], opts: Any) -> int:
    """Attach, register wait, start, stream until the process exits; return its status."""
    from berth.cli.streams import RawTerminal, attach_streams, parse_detach_keys

    client = ctx.client
    tty = bool(body["Tty"])
    stdin = bool(body["AttachStdin"])
    params = {"stderr": body["AttachStderr"] or None, "stdin": stdin or None,
              "stdout": body["AttachStdout"] or None, "stream": True}
    params = {k: v for k, v in params.items() if v is not None}
    try:
        detach_keys = parse_detach_keys(getattr(opts, "detach_keys", None))
    except ValueError as e:
        raise run_error("run", str(e)) from None
    try:
        hijacked = client.hijack(f"/containers/{cid}/attach", params)
        condition = "removed" if body["HostConfig"]["AutoRemove"] else "next-exit"
        wait_conn = client.send_only("POST", f"/containers/{cid}/wait", {"condition": condition})
    except APIError as e:
        raise run_error("run", f"Error response from daemon: {e.message}") from None
    proxied: list[int] = []
    with RawTerminal(tty and stdin):
        try:
            client.start_container(cid)
        except APIError as e:
            hijacked.close()
            wait_conn.close()
            raise _start_error(e.message) from None
        if tty:
            _resize(client, "containers", cid)
            _on_winch(client, cid)
        if getattr(opts, "sig_proxy", True):
            proxied = _proxy_signals(client, cid, tty)
        detached = attach_streams(hijacked, tty, stdin, detach_keys if tty and stdin else None)
    if detached:
        wait_conn.close()
        ctx.err("read escape sequence\n")
        return 1
    try:
        reply = client.read_reply(wait_conn)
    except APIError as e:
        raise run_error("run", f"Error response from daemon: {e.message}") from None
    finally:
        for s in proxied:
            signal.signal(s, signal.SIG_DFL)
    reply = reply or {}
    err = reply.get("Error")
    if err and err.get("Message"):
        ctx.err(f"{PROG}: Error response from daemon: {err['Message']}\n")
        return 125
    return int(reply.get("StatusCode", 0))


def _resize(client: Client, kind: str, ident: str) -> None:
    from berth.cli.streams import terminal_size

    size = terminal_size()
    if size:
        try:
            client.resize(kind, ident, size[0], size[1])
        except (APIError, OSError):
            pass


def _on_winch(client: Client, cid: str, kind: str = "containers") -> None:
    def handler(signum: int, frame: object) -> None:
        _resize(client, kind, cid)

    signal.signal(signal.SIGWINCH, handler)


_NOT_PROXIED = {"SIGCHLD", "SIGPIPE", "SIGURG", "SIGWINCH", "SIGKILL", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU"}


def _signal_names() -> dict[int, str]:
    """Signal numbers → names (SIGINT...), without the enum-building `signal` module."""
    names: dict[int, str] = {}
    for name in dir(signal):
        if name.startswith("SIG") and not name.startswith(("SIG_", "SIGRT")):
            names.setdefault(getattr(signal, name), name)
    return names


def _proxy_signals(client: Client, cid: str, tty: bool) -> list[int]:
    """Forward signals the CLI receives to the container (``kill?signal=NAME``)."""
    installed = []

    names = _signal_names()

    def handler(signum: int, frame: object) -> None:
        name = names.get(signum, str(signum))
        try:
            client.kill(cid, name[3:] if name.startswith("SIG") else name)
        except (APIError, OSError):
            pass

    for sig, name in names.items():
        if name in _NOT_PROXIED:
            continue
        try:
            signal.signal(sig, handler)
            installed.append(sig)
        except (OSError, ValueError):
            continue
    return installed


START = Command("start", "[OPTIONS] CONTAINER [CONTAINER...]", "Start one or more stopped containers", 1)
START.flag("attach", "a", "bool", help="Attach STDOUT/STDERR and forward signals")
START.flag("interactive", "i", "bool", help="Attach container's STDIN")
START.flag("detach-keys", None, help="Override the key sequence for detaching a container")


def start(ctx: Context, argv: list[str]) -> int:
    opts, args = START.parse(argv)
    client = ctx.client
    if opts.attach or opts.interactive:
        if len(args) > 1:
            raise CLIError("you cannot start and attach multiple containers at once", 1)
        ref = args[0]
        info = client.inspect_container(ref)
        cid = info["Id"]
        cfg = info.get("Config") or {}
        tty = bool(cfg.get("Tty"))
        stdin = bool(opts.interactive and cfg.get("OpenStdin"))
        body = {"Tty": tty, "AttachStdin": stdin, "AttachStdout": True, "AttachStderr": True,
                "HostConfig": {"AutoRemove": False}}
        return attach_and_run(ctx, cid, body, opts)
    failed = []
    for ref in args:
        try:
            client.start_container(ref)
            ctx.out(ref + "\n")
        except APIError as e:
            failed.append(e.message)
    if failed:
        ctx.err("".join(f"Error response from daemon: {m}\n" for m in failed))
        ctx.err("Error: failed to start containers: " + ", ".join(args) + "\n")
        return 1
    return 0


__all__ = ["create", "run", "start", "quote_path"]
