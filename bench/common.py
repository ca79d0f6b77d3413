"""What the benchmark scripts (run_bench.py, images_bench.py, registry_bench.py) share: logging,
the cleanup list, the temp dir's removal, SIGTERM handling and the end of a run (exit code, the
command failures, the cleanup verdict).

The scripts run as ``python bench/X.py`` and import it as ``common`` (bench/ put on sys.path).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def import_peers():
    """tests/peers.py (the private dockerd, registries) and run_bench's helpers (as peers.rb)."""
    sys.path.insert(0, str(REPO / "tests"))
    import peers

    return peers, peers.rb


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def mounts_under(base: str) -> list[str]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == base or mp.startswith(base.rstrip("/") + "/"):
                out.append(mp)
    return out


class Cleanup:
    """Everything to undo, run in reverse order, each step guarded."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, object]] = []

    def add(self, what: str, fn) -> None:
        self.steps.append((what, fn))

    def run(self) -> list[str]:
        problems = []
        while self.steps:
            what, fn = self.steps.pop()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - cleanup goes on regardless
                problems.append(f"{what}: {type(e).__name__}: {e}")
                log(f"cleanup step {what!r} failed: {e}")
        return problems


def add_temp_dir_removal(cleanup: Cleanup, base: Path) -> None:
    """A cleanup step that unmounts what is left under BASE (lazily), checks that no mount is
    left, and removes BASE."""

    def remove_base() -> None:
        for mp in sorted(mounts_under(str(base)), key=len, reverse=True):
            log(f"unmounting leftover {mp}")
            subprocess.run(["umount", "-l", mp], capture_output=True)
        still = mounts_under(str(base))
        if still:
            raise RuntimeError(f"mounts still under {base}: {still}")
        shutil.rmtree(base, ignore_errors=True)
    cleanup.add("remove temp dir", remove_base)


def sigterm_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt, so that a run's cleanup runs on it too."""

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, on_signal)


def is_root(script: str) -> bool:
    """Whether this runs as root; if not, says that SCRIPT needs root."""
    if os.geteuid() != 0:
        print(f"{script} needs root", file=sys.stderr)
        return False
    return True


def temp_dir(prefix: str) -> tuple[Path, Cleanup]:
    """A new temp dir under /tmp and the run's cleanup list, whose first step (so run last)
    removes it (add_temp_dir_removal); SIGTERM from now on interrupts (sigterm_as_interrupt)."""
    base = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    cleanup = Cleanup()
    add_temp_dir_removal(cleanup, base)
    sigterm_as_interrupt()
    return base, cleanup


def failed(e: KeyboardInterrupt | Exception) -> int:
    """Logs why a run stopped; the exit code: 130 on an interrupt, 1 on an error."""
    if isinstance(e, KeyboardInterrupt):
        log(f"interrupted ({e}); cleaning up")
        return 130
    log(f"FAILED: {type(e).__name__}: {e}")
    return 1


def run_cleanup(cleanup: Cleanup, base: Path, check_mounts: bool = False) -> list[str]:
    """Runs the cleanup; the problems, the temp dir left (and, with check_mounts, mounts left
    under it) included."""
    problems = cleanup.run()
    if base.exists():
        problems.append(f"{base} still exists")
    if check_mounts:
        leaked_mounts = mounts_under(str(base))
        if leaked_mounts:
            problems.append(f"mounts left: {leaked_mounts}")
    return problems


def cleanup_verdict(rc: int, problems: list[str], ok: str) -> int:
    """Prints the cleanup line ("Cleanup: " OK, or the problems); rc, made 1 by a problem."""
    print("Cleanup:", ok if not problems else "; ".join(problems))
    if problems and rc == 0:
        rc = 1
    return rc


def finish(rc: int, cleanup: Cleanup, base: Path, failures: list[str], ok: str) -> int:
    """The end of a run: cleanup, the command failures, the cleanup verdict; the exit code."""
    problems = run_cleanup(cleanup, base)
    print()
    print("Command failures:", "none" if not failures else "")
    for f in failures:
        print(f"  {f}")
    return cleanup_verdict(rc, problems, ok)


class Run:
    """The body of a run, as ``with Run(...) as run:``, and its end. On leaving the body: an
    interrupt (rc 130) or an error (rc 1) is logged and goes no further; then, whatever happened,
    finish(): cleanup, the command failures (failures() is asked then), the cleanup verdict. Any
    other exception (SystemExit) goes on after that. run.rc is the exit code."""

    def __init__(self, cleanup: Cleanup, base: Path, failures: Callable[[], list[str]], ok: str) -> None:
        self.cleanup, self.base, self.failures, self.ok = cleanup, base, failures, ok
        self.rc = 0

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        handled = isinstance(exc, (KeyboardInterrupt, Exception))
        if handled:
            self.rc = failed(exc)
        self.rc = finish(self.rc, self.cleanup, self.base, self.failures(), self.ok)
        return handled
