"""Interactive shells on a real pseudo-terminal: `run -it` and `exec -it`, typing, exit, resize.

The CLI runs with a pty slave as its controlling terminal (as in a terminal emulator); the test
plays the user on the master side. Setting the window size on the pty makes the kernel send
SIGWINCH to the CLI, exactly as a terminal resize does.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import uuid

BERTH = [sys.executable, "-m", "berth.cli.main"]


def name() -> str:
    return "t-" + uuid.uuid4().hex[:10]


class Terminal:
    """A CLI process on its own pty, with a scrollback of everything it printed."""

    def __init__(self, argv: list[str], env: dict[str, str], rows: int = 24, cols: int = 80) -> None:
        self.master, slave = os.openpty()
        self.set_size(rows, cols)

        def child_setup() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        self.proc = subprocess.Popen(BERTH + argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     preexec_fn=child_setup, close_fds=True)
        os.close(slave)
        self.buf = b""
        self.pos = 0  # what expect() has consumed

    def set_size(self, rows: int, cols: int) -> None:
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _read(self, timeout: float) -> bool:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            data = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        if not data:
            return False
        self.buf += data
        return True

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def expect(self, pattern: str, timeout: float = 15) -> re.Match:
        rx = re.compile(pattern.encode(), re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.buf, self.pos)
            if m:
                self.pos = m.end()
                return m
            left = deadline - time.monotonic()
            if left <= 0 or not self._read(min(left, 0.2)) and not rx.search(self.buf, self.pos):
                raise AssertionError(f"{pattern!r} not seen; screen so far: {self.buf[self.pos:]!r} "
                                     f"(exit {self.proc.poll()})")

    def run(self, command: str, marker: str) -> str:
        """Type ``command`` followed by an end marker; return the lines it printed."""
        typed = f"{marker[:3]}''{marker[3:]}"
        self.type(f"{command}; echo {typed}\r")
        self.expect(re.escape(typed) + r"\r?\n")  # the terminal's echo of the command line
        start = self.pos
        m = self.expect(rf"^{re.escape(marker)}\r?$")
        return self.buf[start:m.start()].decode().replace("\r", "")

    def wait(self, timeout: float = 20) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            assert time.monotonic() < deadline, f"CLI did not exit; screen: {self.buf[-500:]!r}"
            self._read(0.1)
        while self._read(0.05) and select.select([self.master], [], [], 0)[0]:
            pass
        return self.proc.returncode

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        os.close(self.master)


def _stty_size(term: Terminal) -> tuple[int, int]:
    marker = "END" + uuid.uuid4().hex[:6]
    term.type(f"stty size; echo {marker[:3]}''{marker[3:]}\r")
    m = term.expect(rf"^(\d+) (\d+)\r?\n(?:.*\n)*?{marker}\r?$")
    return int(m.group(1)), int(m.group(2))


def _answer(term: Terminal) -> None:
    term.type("echo $((6*7))\r")
    term.expect(r"^42\r?$")


def _resize_seen(term: Terminal) -> None:
    deadline = time.monotonic() + 15
    term.set_size(40, 132)
    while True:
        size = _stty_size(term)
        if size == (40, 132):
            return
        assert time.monotonic() < deadline, f"stty size still {size} after resize to 40x132"
        time.sleep(0.1)


def test_run_it_shell(berth):
    n = name()
    term = Terminal(["run", "-it", "--name", n, "busybox", "sh"], berth.daemon.env(), rows=31, cols=97)
    try:
        term.expect(r"# ")  # the prompt of an interactive root shell
        _answer(term)
        assert term.run("tty", "END1").strip().startswith("/dev/pts/")
        # The container's terminal starts with the size of the user's terminal ...
        assert _stty_size(term) == (31, 97)
        # ... and follows it when the window is resized.
        _resize_seen(term)
        term.type("exit\r")
        assert term.wait() == 0
    finally:
        term.close()
    info = berth.inspect(n)
    assert info["State"]["Running"] is False
    assert info["State"]["ExitCode"] == 0
    assert info["Config"]["Tty"] is True


def test_run_it_exit_code(berth):
    term = Terminal(["run", "-it", "--rm", "busybox", "sh"], berth.daemon.env())
    try:
        term.expect(r"# ")
        term.type("exit 5\r")
        assert term.wait() == 5
    finally:
        term.close()


def test_exec_it_second_shell(berth):
    n = name()
    first = Terminal(["run", "-it", "--name", n, "busybox", "sh"], berth.daemon.env())
    second = None
    try:
        first.expect(r"# ")
        first.type("export FIRST=yes; echo $((40+2))\r")
        first.expect(r"^42\r?$")
        second = Terminal(["exec", "-it", n, "sh"], berth.daemon.env(), rows=33, cols=101)
        second.expect(r"# ")
        _answer(second)
        # A new shell in the same container: same filesystem and processes, its own tty and env.
        assert second.run("echo FIRST=$FIRST", "END2").strip().endswith("FIRST=")
        first.run("touch /from-first", "END7")
        assert second.run("ls /from-first", "END3").strip().endswith("/from-first")
        assert int(second.run("ps | grep -c '[s]h$'", "END4").strip().splitlines()[-1]) >= 2
        tty_first = first.run("tty", "END5").strip().splitlines()[-1]
        tty_second = second.run("tty", "END6").strip().splitlines()[-1]
        assert tty_first.startswith("/dev/pts/") and tty_second.startswith("/dev/pts/")
        assert tty_first != tty_second
        assert _stty_size(second) == (33, 101)
        _resize_seen(second)
        second.type("exit 4\r")
        assert second.wait() == 4
        # The container and its first shell live on.
        assert berth.inspect(n)["State"]["Running"] is True
        _answer(first)
        first.type("exit\r")
        assert first.wait() == 0
    finally:
        if second is not None:
            second.close()
        first.close()
    assert berth.inspect(n)["State"]["Running"] is False


def test_run_it_ctrl_c_interrupts_inside(berth):
    n = name()
    term = Terminal(["run", "-it", "--name", n, "busybox", "sh"], berth.daemon.env())
    try:
        term.expect(r"# ")
        term.type("sleep 300\r")
        deadline = time.monotonic() + 15
        while "sleep 300" not in berth("exec", n, "ps", "-o", "args").stdout:
            assert time.monotonic() < deadline, "sleep never started"
            time.sleep(0.05)
        term.type("\x03")  # Ctrl-C goes to the container's terminal, not to the CLI
        term.expect(r"\^C")
        assert term.run("echo status=$?", "END8").strip().splitlines()[-1] == "status=130"
        assert term.proc.poll() is None
        assert berth.inspect(n)["State"]["Running"] is True
        _answer(term)
        term.type("exit\r")
        assert term.wait() == 0
    finally:
        term.close()


def test_run_it_detach_keys(berth):
    n = name()
    term = Terminal(["run", "-it", "--name", n, "busybox", "sh"], berth.daemon.env())
    try:
        term.expect(r"# ")
        term.type("\x10\x11")  # Ctrl-P Ctrl-Q
        term.expect("read escape sequence")
        assert term.wait() == 1
    finally:
        term.close()
    assert berth.inspect(n)["State"]["Running"] is True
    # The shell is still there, and answers an exec.
    r = berth("exec", n, "sh", "-c", "echo $((6*7))")
    assert r.stdout == "42\n", r.stderr
