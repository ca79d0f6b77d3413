"""The monitor: one process per running container (and per exec), like containerd's shim.

It is forked by the fork server, runs without threads, owns the process's stdio (pipes or a
pty), writes the json-file log, serves attach connections on its socket (see ``protocol``),
reaps the process, records the exit code in ``exit.json`` and exits. Because it is its own
session, containers outlive a restart of berthd, which finds the monitor again by its socket.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import selectors
import signal
import socket
import struct
import sys
import termios
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.containers.logfile import LogWriter
from berth.containers.protocol import STDERR, STDOUT, frame
from berth.errors import StartError
from berth.util import atomic_write_json, rfc3339_now

READ_SIZE = 32 * 1024


@dataclass
class MonitorSpec:
    """What the daemon asks for; JSON-serialisable so it crosses the fork server's socket."""

    kind: str  # "container" or "exec"
    state_dir: str  # exit.json and monitor.log go here
    tty: bool = False
    open_stdin: bool = False
    stdin_once: bool = False
    console_size: list[int] | None = None
    log_path: str | None = None
    # kind == "container"
    bundle: str | None = None
    rootfs_mounts: list[dict] = field(default_factory=list)
    # kind == "exec"
    container_pid: int = 0
    process: dict | None = None
    cgroups_path: str = ""

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> MonitorSpec:
        return cls(**d)


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = b""
        self.outbuf = bytearray()
        self.op: str | None = None
        self.want = {STDOUT: False, STDERR: False}
        self.stdin = False
        self.read_closed = False
        self.registered = True


class Monitor:
    def __init__(self, listener: socket.socket, spec: MonitorSpec) -> None:
        self.listener = listener
        self.spec = spec
        self.sel = selectors.DefaultSelector()
        self.clients: list[_Client] = []
        self.outputs: dict[int, int] = {}  # fd → stream type
        self.stdin_fd: int | None = None
        self.pty_master: int | None = None
        self.pid = 0
        self.exit: dict[str, Any] | None = None
        self.exit_deadline = 0.0
        self.log = LogWriter(spec.log_path) if spec.log_path else None
        self._child_fds: list[int] = []
        self.stdin_buf = bytearray()
        self.stdin_eof = False
        self._wake_r, self._wake_w = os.pipe()

    # -- set-up -----------------------------------------------------------------------------
    def _make_stdio(self):
        from berth.runtime.process import Stdio

        if self.spec.tty:
            return Stdio(stdin=None, stdout=None, stderr=None)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        self.outputs = {out_r: STDOUT, err_r: STDERR}
        stdin_r = None
        if self.spec.open_stdin:
            stdin_r, stdin_w = os.pipe()
            self.stdin_fd = stdin_w
            self._child_fds.append(stdin_r)
        self._child_fds += [out_w, err_w]
        return Stdio(stdin=stdin_r, stdout=out_w, stderr=err_w)

    def _start_process(self) -> dict[str, Any]:
        from berth.runtime import process as rt

        stdio = self._make_stdio()
        size = tuple(self.spec.console_size) if self.spec.console_size else None
        if size and not all(size):
            size = None
        # The child must not inherit our ignored SIGPIPE (exec keeps ignored signals).
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        try:
            if self.spec.kind == "container":
                started = rt.start_container(
                    Path(self.spec.bundle or ""), self.spec.rootfs_mounts, stdio, console_size=size
                )
            else:
                started = rt.exec_process(
                    self.spec.container_pid, self.spec.process or {}, self.spec.cgroups_path, stdio,
                    console_size=size,
                )
        finally:
            signal.signal(signal.SIGPIPE, signal.SIG_IGN)
            for fd in self._child_fds:
                os.close(fd)
            self._child_fds = []
        self.pid = started.pid
        if started.pty_master is not None:
            self.pty_master = started.pty_master
            self.outputs = {started.pty_master: STDOUT}
            if self.spec.open_stdin:
                self.stdin_fd = started.pty_master
        for fd in self.outputs:
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ, ("output", fd))
        if self.stdin_fd is not None and self.stdin_fd != self.pty_master:
            os.set_blocking(self.stdin_fd, False)
        self._pump_stdin()
        return {"pid": started.pid, "start_time": started.start_time}

    # -- main loop ----------------------------------------------------------------------------
    def run(self) -> int:
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)
        os.set_blocking(self._wake_w, False)
        signal.set_wakeup_fd(self._wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, ("listen", None))
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        idle_deadline = time.monotonic() + 60  # nobody asked to start: give up
        while True:
            timeout = 1.0
            if self.exit is not None:
                if not self.outputs or time.monotonic() > self.exit_deadline:
                    break
                timeout = 0.05
            for key, events in self.sel.select(timeout):
                kind, arg = key.data
                if kind == "listen":
                    self._accept()
                elif kind == "wake":
                    os.read(self._wake_r, 4096)
                elif kind == "output":
                    if events & selectors.EVENT_WRITE:
                        self._pump_stdin()
                    if events & selectors.EVENT_READ:
                        self._read_output(arg)
                elif kind == "client":
                    self._client_event(arg, events)
                elif kind == "stdin":
                    self._pump_stdin()
            self._reap()
            if self.pid == 0 and self.exit is None and time.monotonic() > idle_deadline:
                return 1
        self._finish()
        return 0

    def _accept(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        client = _Client(sock)
        self.clients.append(client)
        self.sel.register(sock, selectors.EVENT_READ, ("client", client))

    def _client_event(self, client: _Client, events: int) -> None:
        if events & selectors.EVENT_WRITE:
            self._flush(client)
        if events & selectors.EVENT_READ and not client.read_closed:
            try:
                data = client.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                client.read_closed = True
                self._update_interest(client)
                if client.op == "attach" and client.stdin:
                    self._stdin_eof()
                elif client.op is None or (client.op != "attach" and not client.outbuf):
                    self._drop(client)
                return
            if client.op is None:
                client.inbuf += data
                if b"\n" not in client.inbuf:
                    return
                line, rest = client.inbuf.split(b"\n", 1)
                client.inbuf = b""
                self._handle_request(client, json.loads(line))
                if rest and client.op == "attach" and client.stdin:
                    self._write_stdin(rest)
            elif client.op == "attach" and client.stdin:
                self._write_stdin(data)

    def _handle_request(self, client: _Client, req: dict[str, Any]) -> None:
        op = client.op = req.get("op")
        if op == "attach":
            client.want = {STDOUT: bool(req.get("stdout")), STDERR: bool(req.get("stderr"))}
            client.stdin = bool(req.get("stdin")) and self.spec.open_stdin
            if self.exit is not None and not self.outputs:
                self._drop(client)
        elif op == "start":
            if self.pid:
                self._send(client, {"error": "already started", "exit_code": 128})
                return
            try:
                reply = self._start_process()
            except StartError as e:
                reply = {"error": e.message, "exit_code": e.exit_code}
                self._send(client, reply)
                self.exit = {"exit_code": e.exit_code, "oom_killed": False,
                             "finished_at": rfc3339_now(), "error": e.message}
                self.exit_deadline = 0
                atomic_write_json(Path(self.spec.state_dir) / "exit.json", self.exit, durable=False)
                return
            self._send(client, reply)
        elif op == "wait":
            if self.exit is not None:
                self._send(client, self.exit)
        elif op == "resize":
            if self.pty_master is not None:
                winsize = struct.pack("HHHH", int(req.get("h", 0)), int(req.get("w", 0)), 0, 0)
                fcntl.ioctl(self.pty_master, termios.TIOCSWINSZ, winsize)
            self._send(client, {})
        else:
            self._drop(client)

    def _send(self, client: _Client, msg: dict[str, Any]) -> None:
        self._queue(client, json.dumps(msg).encode() + b"\n")

    def _queue(self, client: _Client, data: bytes) -> None:
        client.outbuf += data
        self._flush(client)

    def _flush(self, client: _Client) -> None:
        while client.outbuf:
            try:
                n = client.sock.send(client.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(client)
                return
            del client.outbuf[:n]
        self._update_interest(client)

    def _update_interest(self, client: _Client) -> None:
        if client not in self.clients:
            return
        events = 0 if client.read_closed else selectors.EVENT_READ
        if client.outbuf:
            events |= selectors.EVENT_WRITE
        if events and client.registered:
            self.sel.modify(client.sock, events, ("client", client))
        elif events:
            self.sel.register(client.sock, events, ("client", client))
            client.registered = True
        elif client.registered:
            self.sel.unregister(client.sock)  # kept in self.clients: still owed output and a close
            client.registered = False

    def _drop(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            if client.registered:
                self.sel.unregister(client.sock)
                client.registered = False
        client.sock.close()

    # -- stdio ---------------------------------------------------------------------------------
    def _write_stdin(self, data: bytes) -> None:
        """Queue client input; it is written once the process runs (input may beat start)."""
        if not self.spec.open_stdin or self.stdin_eof:
            return
        self.stdin_buf += data
        self._pump_stdin()

    def _stdin_eof(self) -> None:
        if self.spec.stdin_once:
            self.stdin_eof = True
            self._pump_stdin()

    def _pump_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        while self.stdin_buf:
            try:
                n = os.write(fd, self.stdin_buf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the reader is gone
                self.stdin_buf.clear()
                break
            del self.stdin_buf[:n]
        if fd == self.pty_master:
            if fd in self.outputs:
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.stdin_buf else 0)
                self.sel.modify(fd, events, ("output", fd))
            return  # never closed for EOF: closing a pty master would hang up the terminal
        registered = fd in self.sel.get_map()
        if self.stdin_buf and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, ("stdin", None))
        elif not self.stdin_buf and registered:
            self.sel.unregister(fd)
        if not self.stdin_buf and self.stdin_eof:
            if fd in self.sel.get_map():
                self.sel.unregister(fd)
            os.close(fd)
            self.stdin_fd = None

    def _read_output(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:  # EIO: the pty's last holder is gone
            if e.errno != errno.EIO:
                raise
            data = b""
        stream = self.outputs.get(fd, STDOUT)
        if not data:
            self.sel.unregister(fd)
            del self.outputs[fd]
            if self.log:
                self.log.flush(stream)
            if fd != self.pty_master:
                os.close(fd)
            return
        if self.log:
            self.log.write(stream, data)
        framed = frame(stream, data)
        for client in list(self.clients):
            if client.op == "attach" and client.want.get(stream):
                self._queue(client, framed)

    # -- exit --------------------------------------------------------------------------------
    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid and self.exit is None:
                self._on_exit(status)

    def _on_exit(self, status: int) -> None:
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            code = 128 - code
        oom = False
        if self.spec.kind == "container":
            oom = _oom_killed(self.spec.bundle) and code == 137
        self.exit = {"exit_code": code, "oom_killed": oom, "finished_at": rfc3339_now()}
        # Output written just before exit is still in the pipes: give readers a moment.
        self.exit_deadline = time.monotonic() + 2.0

    def _finish(self) -> None:
        """Flush output, record the exit, tell everyone, and only then remove the cgroup.

        The daemon learns the exit code before the cgroup is gone (a few ms of rmdirs on v1);
        it knows the cleanup is over when this process closes its connection."""
        for fd in list(self.outputs):
            self._read_output(fd)
        if self.log:
            self.log.close()
        if self.exit is None:
            self.exit = {"exit_code": 128, "oom_killed": False, "finished_at": rfc3339_now()}
        atomic_write_json(Path(self.spec.state_dir) / "exit.json", self.exit, durable=False)
        line = json.dumps(self.exit).encode() + b"\n"
        control = []
        for client in list(self.clients):
            if client.op in ("start", "wait"):
                client.outbuf += line
            try:
                client.sock.setblocking(True)
                client.sock.settimeout(5)
                if client.outbuf:
                    client.sock.sendall(client.outbuf)
            except OSError:
                pass
            if client.op in ("start", "wait"):
                control.append(client)
            else:
                client.sock.close()  # attached clients see the end of output now
        self.clients = []
        if self.spec.kind == "container" and self.pid:
            from berth.runtime import process as rt

            try:
                rt.delete_container(Path(self.spec.bundle or ""))
            except Exception:
                traceback.print_exc()
        for client in control:
            client.sock.close()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _oom_killed(bundle: str | None) -> bool:
    try:
        from berth.runtime import cgroups

        config = json.loads((Path(bundle or "") / "config.json").read_text())
        return cgroups.open_cgroup(config["linux"]["cgroupsPath"]).oom_killed()
    except Exception:
        return False


def run_monitor(listener: socket.socket, spec_dict: dict[str, Any]) -> int:
    """Entry point in the forked child. Never returns to the fork server's loop."""
    spec = MonitorSpec.from_dict(spec_dict)
    logf = os.open(Path(spec.state_dir) / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(logf, 1)
    os.dup2(logf, 2)
    os.close(devnull)
    os.close(logf)
    sys.stdout = os.fdopen(1, "w", buffering=1)
    sys.stderr = os.fdopen(2, "w", buffering=1)
    try:
        return Monitor(listener, spec).run()
    except Exception:
        traceback.print_exc()
        return 1
