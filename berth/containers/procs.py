"""Processes by pid and start time, and signal names as the Engine API spells them."""

from __future__ import annotations

import signal as _signal

from berth.errors import InvalidArgument


def parse_signal(value: str | int | None, default: int = _signal.SIGKILL) -> int:
    """SIGKILL, KILL, kill and 9 are all the same signal (the CLI sends names without SIG)."""
    if value is None or value == "":
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.isdigit():
        return int(text)
    name = text.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    try:
        return int(getattr(_signal.Signals, name))
    except AttributeError:
        raise InvalidArgument(f"Invalid signal: {value}") from None


def proc_start_time(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None  # a zombie is gone for our purposes (PID 1 of this VM reaps late)
    return int(fields[19])
