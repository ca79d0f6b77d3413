"""Entry points the container monitor calls: start a container from an OCI bundle, exec into it,
signal a process safely, delete the container's cgroup.

The monitor is a single-threaded process. Everything here forks (no new interpreter, no
subprocess); each call returns only once the new process has execve'd, or raises StartError with
Docker's text after reaping the failed child.

Reaping: the pid in ``Started`` is always a child of the caller; the caller reaps it with
``os.waitpid``. ``exec_process`` double-forks (the second fork lands in the container's pid
namespace), so it marks the caller PR_SET_CHILD_SUBREAPER: the exec'd process is reparented to the
caller, and orphans of exec'd processes may be reparented to the caller too (reap with
``waitpid(-1, WNOHANG)`` on SIGCHLD).
"""

from __future__ import annotations

import json
import os
import signal
import socket
from dataclasses import dataclass
from pathlib import Path

from berth.errors import InvalidArgument, StartError
from berth.runtime import cgroups, init, syscalls

START_PREFIX = "failed to create shim task: OCI runtime create failed: runc create failed: "
EXEC_PREFIX = "OCI runtime exec failed: exec failed: "


@dataclass
class Stdio:
    """The fds a new process gets as its stdio (None → /dev/null). The caller keeps ownership."""

    stdin: int | None
    stdout: int | None
    stderr: int | None


@dataclass
class Started:
    """A started process: its host pid, its start time (field 22 of /proc/<pid>/stat) and, with a
    terminal, the pty master fd, which the caller now owns and must close."""

    pid: int
    start_time: int
    pty_master: int | None


def start_time_of(pid: int) -> int | None:
    """Field 22 (starttime) of /proc/<pid>/stat, or None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return int(fields[19])


def _state_of(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2:].split()[0].decode()


def process_alive(pid: int, start_time: int) -> bool:
    """True if ``pid`` is still the process that started at ``start_time`` and is not a zombie."""
    state = _state_of(pid)
    return state is not None and state not in ("Z", "X") and start_time_of(pid) == start_time


def signal_process(pid: int, start_time: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` if it is still the same, live process. False when it is gone (dead,
    a zombie, or the pid now belongs to another process)."""
    if not process_alive(pid, start_time):
        return False
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def load_spec(bundle: Path) -> dict:
    """Read bundle/config.json. Raises InvalidArgument when it is missing or not JSON."""
    try:
        return json.loads((Path(bundle) / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot read OCI spec in {bundle}: {e}") from None


def _collect(chan: socket.socket) -> tuple[dict | None, int | None, int | None]:
    """Read the child's messages until the channel closes: (error, pty master, reported pid)."""
    err, pty, pid = None, None, None
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(chan, 65536, 4)
        except ConnectionResetError:
            # The child exited leaving our b"go" unread: the error is reported once, then the
            # messages it sent before exiting are still queued.
            continue
        for fd in fds:
            if msg == b"pty" and pty is None:
                pty = fd
            else:
                os.close(fd)
        if not msg and not fds:
            return err, pty, pid
        if msg != b"pty":
            data = json.loads(msg)
            if "pid" in data:
                pid = int(data["pid"])
            elif err is None:
                err = data


def _raise(err: dict, prefix: str) -> None:
    if err.get("bare"):
        raise StartError(err["error"], int(err.get("code", 128)))
    raise StartError(f"{prefix}unable to start container process: {err['error']}: unknown",
                     int(err.get("code", 128)))


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def start_container(bundle: Path, rootfs_mounts: list[dict], stdio: Stdio,
                    console_size: tuple[int, int] | None = None) -> Started:
    """Create the cgroup, fork the container's init as PID 1 of a new pid namespace, set it up
    (mounts, /dev, pivot_root, masks, user, rlimits, capabilities) and execve its process.

    ``rootfs_mounts`` (containerd-shaped) are mounted on bundle/rootfs inside the container's mount
    namespace only. ``console_size`` is (rows, cols). Returns once execve succeeded; the caller must
    reap ``Started.pid``. Raises StartError (exit_code 127/126/128) with Docker's text, and
    InvalidArgument for an unreadable bundle.
    """
    spec = load_spec(bundle)
    linux = spec.get("linux") or {}
    size = (spec.get("process") or {}).get("consoleSize")
    if console_size is None and size:
        console_size = (int(size.get("height", 0)), int(size.get("width", 0)))
    cgroup = cgroups.open_cgroup(linux.get("cgroupsPath") or f"/berth/{Path(bundle).name}")
    try:
        cgroup.create(linux.get("resources") or {})
    except OSError as e:
        cgroup.destroy()
        raise StartError(f"{START_PREFIX}unable to apply cgroup configuration: {e}: unknown") from None
    ns_fds: dict[str, int] = {}
    new_pid = False
    for ns in linux.get("namespaces") or []:
        if ns.get("path"):
            ns_fds[ns["type"]] = os.open(ns["path"], os.O_RDONLY | os.O_CLOEXEC)
        elif ns.get("type") == "pid":
            new_pid = True
    parent_chan, child_chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    own_pid_ns = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if "pid" in ns_fds:
            syscalls.setns(ns_fds["pid"], syscalls.CLONE_NEWPID)
        elif new_pid:
            syscalls.unshare(syscalls.CLONE_NEWPID)
        pid = os.fork()
        if pid == 0:
            try:
                parent_chan.close()
                fds = init.dup_stdio([stdio.stdin, stdio.stdout, stdio.stderr])
            except BaseException as e:  # noqa: BLE001
                init.report_and_exit(child_chan, e)
            init.run_init(spec, Path(bundle), rootfs_mounts, fds, child_chan, console_size, cgroup, ns_fds)
    finally:  # only the parent gets here: the child execs or _exits
        syscalls.setns(own_pid_ns, syscalls.CLONE_NEWPID)
        os.close(own_pid_ns)
        for fd in ns_fds.values():
            os.close(fd)
    child_chan.close()
    try:
        cg_err = None
        try:
            cgroup.add_process(pid)
        except OSError as e:
            cg_err = e
            os.kill(pid, signal.SIGKILL)
        else:
            try:
                parent_chan.send(b"go")
            except OSError:
                pass  # the child failed already; its error is waiting on the channel
        err, pty, _ = _collect(parent_chan)
    finally:
        parent_chan.close()
    if err is None and cg_err is not None:
        err = {"error": f"unable to apply cgroup configuration: {cg_err}", "code": 128}
    if err is not None:
        _reap(pid)
        if pty is not None:
            os.close(pty)
        try:
            cgroup.destroy()
        except OSError:
            pass
        _raise(err, START_PREFIX)
    return Started(pid=pid, start_time=start_time_of(pid) or 0, pty_master=pty)


def exec_process(container_pid: int, process: dict, cgroups_path: str, stdio: Stdio,
                 console_size: tuple[int, int] | None = None) -> Started:
    """Run OCI ``process`` inside the running container whose init is ``container_pid``: join its
    cgroup and namespaces (ipc, uts, net, pid, mnt), then set user, capabilities, env, cwd,
    terminal, and execve.

    A user name in ``process["user"]["username"]`` (a Docker User string) is resolved inside the
    container. Marks the caller as child subreaper (see the module doc); the returned pid is the
    exec'd process itself, a child of the caller. Raises StartError with Docker's text.
    """
    syscalls.prctl(syscalls.PR_SET_CHILD_SUBREAPER, 1)
    cgroup = cgroups.open_cgroup(cgroups_path)
    parent_chan, child_chan = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    first = os.fork()
    if first == 0:
        try:
            parent_chan.close()
            fds = init.dup_stdio([stdio.stdin, stdio.stdout, stdio.stderr])
        except BaseException as e:  # noqa: BLE001
            init.report_and_exit(child_chan, e)
        init.run_exec(container_pid, process, cgroup, fds, child_chan, console_size)
    child_chan.close()
    try:
        err, pty, pid = _collect(parent_chan)
    finally:
        parent_chan.close()
    _reap(first)  # after this the exec'd process (if any) is our child
    if err is not None:
        if pid is not None:
            _reap(pid)
        if pty is not None:
            os.close(pty)
        _raise(err, EXEC_PREFIX)
    if pid is None:
        raise StartError(f"{EXEC_PREFIX}unable to start container process: exec child vanished: unknown")
    return Started(pid=pid, start_time=start_time_of(pid) or 0, pty_master=pty)


def delete_container(bundle: Path) -> None:
    """Kill whatever is left in the container's cgroup and remove it. Idempotent; a bundle without
    config.json is fine. Raises OSError if the cgroup stays busy."""
    try:
        spec = load_spec(bundle)
    except InvalidArgument:
        return
    path = (spec.get("linux") or {}).get("cgroupsPath") or f"/berth/{Path(bundle).name}"
    cgroups.open_cgroup(path).destroy()
