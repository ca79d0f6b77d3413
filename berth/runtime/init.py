"""The child side of start and exec: what runs in the forked process between fork and execve.

Nothing here returns: each entry point ends in execve or in ``os._exit`` after reporting the error
over the CLOEXEC channel (a SOCK_SEQPACKET socket) to the parent, which turns it into StartError.
Messages on the channel are JSON: {"error": text, "code": n, "bare": bool} or {"pid": n}; the pty
master travels as SCM_RIGHTS with the message b"pty".
"""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import socket
import stat
import traceback
from pathlib import Path
from typing import NoReturn

from berth.errors import StartError
from berth.runtime import caps, mounts, syscalls
from berth.runtime.cgroups import Cgroup
from berth.runtime.user import resolve, with_home

USER_ANNOTATION = "org.berth.user"
NS_FLAGS = {"pid": syscalls.CLONE_NEWPID, "mount": syscalls.CLONE_NEWNS, "uts": syscalls.CLONE_NEWUTS,
            "ipc": syscalls.CLONE_NEWIPC, "network": syscalls.CLONE_NEWNET,
            "cgroup": syscalls.CLONE_NEWCGROUP, "user": syscalls.CLONE_NEWUSER}


class ExecFailure(Exception):
    """The process could not be exec'd; ``code`` is the exit code Docker records."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def report_and_exit(chan: socket.socket, exc: BaseException) -> NoReturn:
    """Send ``exc`` to the parent as an error message and _exit(1). Never returns."""
    try:
        if isinstance(exc, StartError):
            msg = {"error": exc.message, "code": exc.exit_code, "bare": True}
        elif isinstance(exc, ExecFailure):
            msg = {"error": exc.message, "code": exc.code, "bare": False}
        elif isinstance(exc, OSError):
            text = f"{exc.strerror}: {exc.filename}" if exc.filename else (exc.strerror or str(exc))
            msg = {"error": f"error during container init: {text}", "code": 128, "bare": False}
        else:
            tb = traceback.format_exception_only(type(exc), exc)[-1].strip()
            msg = {"error": f"error during container init: {tb}", "code": 128, "bare": False}
        chan.send(json.dumps(msg).encode())
    finally:
        os._exit(1)


def dup_stdio(fds: list[int | None]) -> list[int]:
    """Copy the three stdio fds (None → /dev/null) to fresh CLOEXEC fds >= 3, so installing them on
    0..2 later cannot clobber one another."""
    out = []
    for fd in fds:
        if fd is None:
            out.append(os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC))
        else:
            out.append(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3))
    return out


def install_stdio(fds: list[int]) -> None:
    """dup2 ``fds`` onto 0, 1, 2 (inheritable)."""
    for i, fd in enumerate(fds):
        os.dup2(fd, i, inheritable=True)


def open_pty(chan: socket.socket, console_size: tuple[int, int] | None, console: bool) -> int:
    """Open a pty in the container's /dev/pts, send the master to the parent, and return the slave.

    With ``console`` the slave is also bind-mounted on /dev/console (init only).
    """
    master = os.open("/dev/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    num = syscalls.pty_unlock_and_number(master)
    slave_path = f"/dev/pts/{num}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    if console_size:
        syscalls.set_winsize(master, console_size[0], console_size[1])
    if console:
        if not os.path.exists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        syscalls.mount(slave_path, "/dev/console", None, syscalls.MS_BIND)
    socket.send_fds(chan, [b"pty"], [master])
    os.close(master)
    return slave


def make_controlling(slave: int) -> None:
    """setsid, make ``slave`` the controlling terminal and the process's stdio."""
    try:
        os.setsid()
    except PermissionError:
        pass  # already a session leader
    syscalls.set_controlling_tty(slave)
    install_stdio([slave, slave, slave])
    if slave > 2:
        os.close(slave)


def lookpath(name: str, env: list[str]) -> str:
    """Resolve ``name`` like Go's exec.LookPath with the process's own PATH (as runc does).

    Raises ExecFailure with Docker's text: 127 not found, 126 permission denied.
    """
    def check(path: str) -> None:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o111 or not os.access(path, os.X_OK):
            raise PermissionError

    if "/" in name:
        try:
            check(name)
        except FileNotFoundError:
            raise ExecFailure(f'exec: "{name}": stat {name}: no such file or directory', 127) from None
        except PermissionError:
            raise ExecFailure(f'exec: "{name}": permission denied', 126) from None
        except OSError as e:
            raise ExecFailure(f'exec: "{name}": {e.strerror}', 128) from None
        return name
    path = next((e[5:] for e in env if e.startswith("PATH=")), "")
    for d in path.split(":"):
        cand = os.path.join(d or ".", name)
        try:
            check(cand)
            return cand
        except OSError:
            continue
    raise ExecFailure(f'exec: "{name}": executable file not found in $PATH', 127)


def finalize_and_exec(process: dict, chan: socket.socket, user_string: str | None) -> NoReturn:
    """Become the container's process: user, rlimits, oom score, no_new_privs, capabilities, cwd,
    signal state, fds, then execve. Raises (for report_and_exit) on failure."""
    env = list(process.get("env") or [])
    args = list(process.get("args") or [])
    if not args:
        raise ExecFailure("args must not be empty", 128)
    proc_user = process.get("user") or {}
    capset = dict(process.get("capabilities") or {})
    if user_string is not None:
        u = resolve(user_string, "/")
        uid, gid, extra, home = u.uid, u.gid, u.additional_gids, u.home
        if uid != 0:  # like Docker: a non-root user keeps the bounding set only
            capset["effective"], capset["permitted"], capset["ambient"] = [], [], []
    else:
        uid, gid = int(proc_user.get("uid", 0)), int(proc_user.get("gid", 0))
        extra, home = list(proc_user.get("additionalGids") or []), "/"
        try:
            home = resolve(str(uid), "/").home
        except StartError:
            pass
    env = with_home(env, home)
    for rl in process.get("rlimits") or []:
        res = getattr(resource, rl["type"], None)
        if res is None:
            raise ExecFailure(f"unknown rlimit {rl['type']}", 128)
        syscalls.setrlimit(res, int(rl["soft"]), int(rl["hard"]))
    if "oomScoreAdj" in process:
        try:
            Path("/proc/self/oom_score_adj").write_text(str(int(process["oomScoreAdj"])))
        except OSError:
            pass
    cwd = process.get("cwd") or "/"
    os.makedirs(cwd, exist_ok=True)
    if process.get("noNewPrivileges"):
        syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
    caps.apply(capset, uid, gid, extra)
    try:
        os.chdir(cwd)
    except OSError as e:
        raise ExecFailure(f"chdir to cwd ({cwd!r}) set in config.json failed: {e.strerror}", 128) from None
    path = lookpath(args[0], env)
    for sig in signal.valid_signals():
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    keep = chan.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, 1 << 16)
    try:
        os.execve(path, args, dict(e.split("=", 1) if "=" in e else (e, "") for e in env))
    except FileNotFoundError:
        raise ExecFailure(f'exec: "{args[0]}": no such file or directory', 127) from None
    except PermissionError:
        raise ExecFailure(f'exec: "{args[0]}": permission denied', 126) from None
    except OSError as e:
        raise ExecFailure(f'exec: "{args[0]}": {e.strerror}', 128) from None


def user_string_of(spec_or_process: dict, annotations: dict | None = None) -> str | None:
    """The Docker User string to resolve inside the container, if any."""
    name = (spec_or_process.get("user") or {}).get("username")
    if name:
        return str(name)
    if annotations and annotations.get(USER_ANNOTATION):
        return str(annotations[USER_ANNOTATION])
    return None


def run_init(spec: dict, bundle: Path, rootfs_mounts: list[dict], stdio: list[int],
             chan: socket.socket, console_size: tuple[int, int] | None, cgroup: Cgroup,
             ns_fds: dict[str, int]) -> NoReturn:
    """The container's init, forked as PID 1 of its new pid namespace. Never returns.

    The parent moves it into its cgroup meanwhile (a v1 cgroup.procs write costs an RCU grace
    period, ~10 ms, so it overlaps with the mounts) and sends b"go" when done; init waits for that
    before it runs anything of the user's.
    """
    try:
        install_stdio(stdio)
        linux = spec.get("linux") or {}
        flags = 0
        for ns in linux.get("namespaces") or []:
            t = ns.get("type")
            if t == "pid":
                continue
            if t in ns_fds:
                syscalls.setns(ns_fds[t], NS_FLAGS[t])
            elif t in NS_FLAGS:
                flags |= NS_FLAGS[t]
        cgroup_ns = flags & syscalls.CLONE_NEWCGROUP
        flags &= ~syscalls.CLONE_NEWCGROUP
        syscalls.unshare(flags | syscalls.CLONE_NEWNS)
        syscalls.mount(None, "/", None, syscalls.MS_REC | syscalls.MS_SLAVE)
        root = spec.get("root") or {}
        rootfs = os.path.join(str(bundle), root.get("path") or "rootfs")
        mounts.mount_rootfs(rootfs, rootfs_mounts)
        if flags & syscalls.CLONE_NEWUTS:
            if spec.get("hostname"):
                syscalls.sethostname(spec["hostname"])
            if spec.get("domainname"):
                syscalls.setdomainname(spec["domainname"])
        if flags & syscalls.CLONE_NEWNET:
            syscalls.loopback_up()
        cg_dirs = cgroup.controller_dirs()
        for m in spec.get("mounts") or []:
            mounts.mount_spec(rootfs, m, cg_dirs, cgroup.version == 2)
        mounts.create_devices(rootfs, linux.get("devices"))
        mounts.pivot_root(rootfs)
        process = spec.get("process") or {}
        slave = open_pty(chan, console_size, console=True) if process.get("terminal") else None
        for key, value in (linux.get("sysctl") or {}).items():
            Path("/proc/sys", key.replace(".", "/")).write_text(str(value))
        mounts.mask_paths(linux.get("maskedPaths") or [])
        mounts.readonly_paths(linux.get("readonlyPaths") or [])
        if root.get("readonly"):
            mounts.readonly_root()
        if slave is not None:
            make_controlling(slave)
        else:
            os.setsid()
        os.umask(0o022)
        if chan.recv(16) != b"go":
            os._exit(1)  # the parent failed and is reaping us
        if cgroup_ns:
            syscalls.unshare(syscalls.CLONE_NEWCGROUP)
        finalize_and_exec(process, chan, user_string_of(process, spec.get("annotations")))
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
        report_and_exit(chan, e)


def run_exec(container_pid: int, process: dict, cgroup: Cgroup, stdio: list[int], chan: socket.socket,
             console_size: tuple[int, int] | None) -> NoReturn:
    """The first child of exec: join the cgroup and namespaces, fork the process into the pid
    namespace, tell the parent its host pid and exit. Never returns."""
    try:
        cgroup.add_process(0)
        fds = []
        for t in ("ipc", "uts", "net", "pid", "mnt"):
            path = f"/proc/{container_pid}/ns/{t}"
            if os.readlink(path) != os.readlink(f"/proc/self/ns/{t}"):
                fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        for fd in fds:
            syscalls.setns(fd, 0)
            os.close(fd)
        pid = os.fork()
    except BaseException as e:  # noqa: BLE001
        report_and_exit(chan, e)
    if pid:
        try:
            chan.send(json.dumps({"pid": pid}).encode())
        finally:
            os._exit(0)
    try:
        install_stdio(stdio)
        slave = open_pty(chan, console_size, console=False) if process.get("terminal") else None
        if slave is not None:
            make_controlling(slave)
        finalize_and_exec(process, chan, user_string_of(process))
    except BaseException as e:  # noqa: BLE001
        report_and_exit(chan, e)
