"""The fork server: a single-threaded process, started with berthd, that forks monitors.

Forking from berthd itself is unsafe (asyncio plus thread pools), and starting a fresh Python
for every container is slow; this process has the runtime already imported and forks in about a
millisecond. It reads one JSON request a line on the socket berthd gave it:
``{"socket": PATH, "spec": {...}}`` → binds PATH, forks a monitor (its own session) that serves
it, answers ``{"pid": N, "start_time": T}`` or ``{"error": "..."}``. It exits when berthd's end
of the socket closes; running monitors carry on.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
import traceback

import berth.containers.monitor as monitor  # imported here so a fork needs no import
import berth.runtime.process  # noqa: F401


def _reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def proc_start_time(pid: int) -> int:
    """Field 22 of /proc/PID/stat: with the pid, it names one process for good."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return int(data[data.rfind(b")") + 2:].split()[19])


def _spawn(req: dict, conn: socket.socket) -> dict:
    path = req["socket"]
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(16)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            conn.close()
            os.setsid()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            code = monitor.run_monitor(listener, req["spec"])
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    listener.close()
    return {"pid": pid, "start_time": proc_start_time(pid)}


def serve(conn: socket.socket) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGCHLD, lambda *_: _reap())
    f = conn.makefile("rb")
    while True:
        try:
            line = f.readline()
        except InterruptedError:
            continue
        if not line:
            return
        try:
            reply = _spawn(json.loads(line), conn)
        except Exception as e:  # answer every request, whatever happened
            reply = {"error": f"{type(e).__name__}: {e}"}
        conn.sendall(json.dumps(reply).encode() + b"\n")
        _reap()


def main() -> None:
    conn = socket.socket(fileno=int(sys.argv[1]))
    serve(conn)


if __name__ == "__main__":
    main()
