"""Progress streams (pull, push, load, import) rendered like docker's ``jsonmessage`` package.

On a terminal every layer id gets its own line that is redrawn in place (cursor up/down,
erase line) with a progress bar computed from ``progressDetail``; elsewhere only the lines
without a progress measure are printed. An in-band ``error`` ends the rendering with
:class:`StreamError`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable

from berth.cli.formatting import human_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO

ERASE_LINE = "\x1b[2K"


class StreamError(Exception):
    """An ``errorDetail`` in a progress stream; ``message`` is what docker prints."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def go_duration(seconds: int) -> str:
    """Go's ``time.Duration.String()`` for a whole number of seconds (``1m30s``, ``0s``)."""
    if seconds <= 0:
        return "0s"
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def progress_string(detail: dict[str, Any], width: int, now: float | None = None) -> str:
    """``JSONProgress.String()``: ``[===>   ]  1.2MB/4.3MB 3s`` (the bar only if width > 110)."""
    current = int(detail.get("current") or 0)
    total = int(detail.get("total") or 0)
    units = detail.get("units") or ""
    if current <= 0 and total <= 0:
        return ""
    if total <= 0:
        return f"{human_size(current, 4):>8}" if not units else f"{current} {units}"
    percentage = min(int(current / total * 100) // 2, 50)
    bar = ""
    if width > 110:
        bar = "[" + "=" * percentage + ">" + " " * max(50 - percentage, 0) + "] "
    numbers = ""
    if detail.get("hidecounts"):
        pass
    elif not units:
        numbers = f"{human_size(current, 4):>8}/{human_size(total, 4)}"
        if current > total:
            numbers = f"{human_size(current, 4):>8}"
    else:
        numbers = f"{current}/{total} {units}" if current <= total else f"{current} {units}"
    left = ""
    start = int(detail.get("start") or 0)
    if width > 50 and current > 0 and start > 0 and percentage < 50:
        elapsed = (time.time() if now is None else now) - start
        remaining = (total - current) * (elapsed / current)
        left = " " + go_duration(int(remaining + 0.5))
    return bar + numbers + left


def _terminal_width(fd: int) -> int:
    try:
        return os.get_terminal_size(fd).columns
    except OSError:
        return 200


def display(msg: dict[str, Any], out: TextIO, terminal: bool, width: int) -> None:
    """``JSONMessage.Display``: one message, raising StreamError for an in-band error."""
    detail = msg.get("errorDetail")
    if detail is not None or msg.get("error"):
        detail = detail or {}
        raise StreamError(detail.get("message") or msg.get("error") or "", int(detail.get("code") or 0))
    progress = msg.get("progressDetail")
    stream_text = msg.get("stream") or ""
    status = msg.get("status") or ""
    endl = ""
    if terminal and not stream_text and progress is not None:
        out.write(ERASE_LINE + "\r")
        endl = "\r"
    elif progress is not None and progress_string(progress, width):
        return
    if msg.get("timeNano"):
        out.write(rfc3339_nano(int(msg["timeNano"])) + " ")
    elif msg.get("time"):
        out.write(rfc3339_nano(int(msg["time"]) * 1_000_000_000) + " ")
    if msg.get("id"):
        out.write(f"{msg['id']}: ")
    if msg.get("from"):
        out.write(f"(from {msg['from']}) ")
    if progress is not None and terminal:
        out.write(f"{status} {progress_string(progress, width)}{endl}")
    elif msg.get("progress"):
        out.write(f"{status} {msg['progress']}{endl}")
    elif stream_text:
        out.write(f"{stream_text}{endl}")
    else:
        out.write(f"{status}{endl}\n")


def rfc3339_nano(ns: int) -> str:
    """Go's ``2006-01-02T15:04:05.000000000Z07:00`` in local time."""
    secs, frac = divmod(ns, 1_000_000_000)
    t = time.localtime(secs)
    off = t.tm_gmtoff or 0
    zone = "Z" if off == 0 else f"{'+' if off > 0 else '-'}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{frac:09d}" + zone


def display_stream(
    lines: Iterable[bytes],
    out: TextIO,
    terminal: bool | None = None,
    aux: Callable[[Any], None] | None = None,
) -> None:
    """``DisplayJSONMessagesStream``: render every message of a JSON-lines progress stream.

    Raises StreamError at the first in-band error (after printing what came before it).
    """
    if terminal is None:
        try:
            terminal = out.isatty()
        except (AttributeError, ValueError):
            terminal = False
    try:
        fd = out.fileno()
    except (AttributeError, ValueError, OSError):
        fd = 1
    ids: dict[str, int] = {}
    for raw in lines:
        try:
            msg = json.loads(raw)
        except ValueError:
            continue
        if not isinstance(msg, dict):
            continue
        if msg.get("aux") is not None:
            if aux is not None:
                aux(msg["aux"])
            continue
        diff = 0
        ident = msg.get("id") or ""
        if ident and (msg.get("progressDetail") is not None or msg.get("progress")):
            line = ids.get(ident)
            if line is None:
                line = len(ids)
                ids[ident] = line
                if terminal:
                    out.write("\n")
            diff = len(ids) - line
            if terminal and diff:
                out.write(f"\x1b[{diff}A")
        else:
            ids = {}
        width = _terminal_width(fd) if terminal else 200
        try:
            display(msg, out, terminal, width)
        finally:
            if ident and terminal and diff:
                out.write(f"\x1b[{diff}B")
            out.flush()
