"""``exec``: ENGINE-API.md §7 (inspect, create, hijacked start, resize, exit code)."""

from __future__ import annotations

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.client.api import APIError, quote_path

EXEC = Command("exec", "[OPTIONS] CONTAINER COMMAND [ARG...]", "Execute a command in a running container", 2,
               None, False)
EXEC.flag("detach", "d", "bool", help="Detached mode: run command in the background")
EXEC.flag("detach-keys", None, help="Override the key sequence for detaching a container")
EXEC.flag("env", "e", "list", help="Set environment variables")
EXEC.flag("env-file", None, "list", help="Read in a file of environment variables")
EXEC.flag("interactive", "i", "bool", help="Keep STDIN open even if not attached")
EXEC.flag("privileged", None, "bool", help="Give extended privileges to the command")
EXEC.flag("tty", "t", "bool", help="Allocate a pseudo-TTY")
EXEC.flag("user", "u", help="Username or UID (format: \"<name|uid>[:<group|gid>]\")")
EXEC.flag("workdir", "w", help="Working directory inside the container")


def exec_(ctx: Context, argv: list[str]) -> int:
    from berth.cli.runconfig import collect_env
    from berth.cli.streams import RawTerminal, attach_streams, parse_detach_keys, terminal_size

    opts, args = EXEC.parse(argv)
    ref, cmd = args[0], args[1:]
    try:
        env = collect_env(opts.env_file, opts.env)
        detach_keys = parse_detach_keys(opts.detach_keys)
    except ValueError as e:
        raise EXEC.fail(str(e)) from None
    client = ctx.client
    client.inspect_container(ref)
    tty = bool(opts.tty)
    stdin = bool(opts.interactive) and not opts.detach
    body = {"User": opts.user or "", "Privileged": bool(opts.privileged), "Tty": tty,
            "AttachStdin": stdin, "AttachStderr": not opts.detach, "AttachStdout": not opts.detach,
            "Detach": bool(opts.detach), "DetachKeys": opts.detach_keys or "", "Env": env,
            "WorkingDir": opts.workdir or "", "Cmd": cmd}
    # Like docker: with -t the exec's pty starts at the local terminal's size, so a resize
    # racing the process start cannot leave it at 0x0.
    console = {"ConsoleSize": list(terminal_size() or (0, 0))} if tty else {}
    body.update(console)
    reply = client.call("POST", f"/containers/{quote_path(ref)}/exec", json_body=body) or {}
    exec_id = reply.get("Id")
    if not exec_id:
        raise CLIError("exec ID empty", 1)
    if opts.detach:
        client.request("POST", f"/exec/{exec_id}/start",
                       json_body={"Detach": True, "Tty": tty, **console}).read()
        return 0
    hijacked = client.hijack(f"/exec/{exec_id}/start",
                             json_body={"Detach": False, "Tty": tty, **console})
    with RawTerminal(tty and stdin):
        if tty:
            from berth.cli.run import _on_winch, _resize

            _resize(client, "exec", exec_id)
            _on_winch(client, exec_id, "exec")
        detached = attach_streams(hijacked, tty, stdin, detach_keys if tty and stdin else None)
    if detached:
        ctx.err("read escape sequence\n")
        return 1
    try:
        info = client.call("GET", f"/exec/{exec_id}/json") or {}
    except APIError:
        return 0
    return int(info.get("ExitCode") or 0)
