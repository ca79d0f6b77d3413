"""``attach``: wait, inspect, hijack, re-inspect, resize (tty), stream, exit with the wait status."""

from __future__ import annotations

import os

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.client.api import APIError, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ATTACH = Command("attach", "[OPTIONS] CONTAINER",
                 "Attach local standard input, output, and error streams to a running container", 1, 1)
ATTACH.flag("detach-keys", None, help="Override the key sequence for detaching a container")
ATTACH.flag("no-stdin", None, "bool", help="Do not attach STDIN")
ATTACH.flag("sig-proxy", None, "bool", True, help="Proxy all received signals to the process (default true)")


def check_state(info: dict[str, Any]) -> None:
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first", 1)
    if state.get("Restarting"):
        raise CLIError("You cannot attach to a restarting container, wait until it is running", 1)


def attach(ctx: Context, argv: list[str]) -> int:
    from berth.cli.run import _on_winch, _proxy_signals
    from berth.cli.streams import RawTerminal, attach_streams, parse_detach_keys, terminal_size

    opts, (ref,) = ATTACH.parse(argv)
    client = ctx.client
    path = quote_path(ref)
    wait_conn = client.send_only("POST", f"/containers/{path}/wait")
    try:
        info = client.inspect_container(ref)
        check_state(info)
        cfg = info.get("Config") or {}
        tty = bool(cfg.get("Tty"))
        stdin = not opts.no_stdin and bool(cfg.get("OpenStdin"))
        if stdin and tty and not os.isatty(0):
            raise CLIError("the input device is not a TTY", 1)
        try:
            keys = parse_detach_keys(opts.detach_keys)
        except ValueError as e:
            raise CLIError(str(e), 1) from None
        proxied = _proxy_signals(client, info.get("Id") or ref, tty) if opts.sig_proxy and not tty else []
        params = {"detachKeys": opts.detach_keys or None, "stderr": True, "stdin": stdin or None,
                  "stdout": True, "stream": True}
        hijacked = client.hijack(f"/containers/{path}/attach", params)
        check_state(client.inspect_container(ref))
        if tty and os.isatty(1):
            size = terminal_size()
            if size:
                try:
                    client.resize("containers", ref, size[0] + 1, size[1] + 1)
                    client.resize("containers", ref, size[0], size[1])
                except (APIError, OSError):  # a failed resize is not fatal
                    pass
            _on_winch(client, ref)
        with RawTerminal(tty and stdin):
            detached = attach_streams(hijacked, tty, stdin, keys if tty and stdin else None)
        if detached:
            raise CLIError("read escape sequence", 1)
        reply = client.read_reply(wait_conn) or {}
    finally:
        wait_conn.close()
    import signal

    for s in proxied:
        signal.signal(s, signal.SIG_DFL)
    err = reply.get("Error")
    if err and err.get("Message"):
        raise CLIError(err["Message"], 1)
    return int(reply.get("StatusCode") or 0)
