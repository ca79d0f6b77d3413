"""The wire between berthd and a container's monitor (a unix socket per monitor).

Every connection opens with one JSON line naming its purpose:
- ``{"op": "attach", "stdin": b, "stdout": b, "stderr": b}``: the monitor then sends the process's
  output as Docker stream frames (8-byte header: stream type, 3 zero bytes, big-endian length;
  type 1 stdout, 2 stderr) and takes raw bytes as stdin; a half-close from the daemon is stdin EOF.
  The monitor closes the connection once the process has exited and its output is flushed.
- ``{"op": "start"}``: start the process; the reply is ``{"pid", "start_time"}`` or
  ``{"error", "exit_code"}``; the connection then stays open and gets the exit line.
- ``{"op": "wait"}``: only the exit line, ``{"exit_code", "oom_killed", "finished_at"}``, at exit.
- ``{"op": "resize", "h": H, "w": W}``: resize the terminal; the reply is ``{}``.
"""

from __future__ import annotations

import struct

FRAME_HEADER = struct.Struct(">BxxxL")
STDIN, STDOUT, STDERR = 0, 1, 2


def frame(stream: int, payload: bytes) -> bytes:
    return FRAME_HEADER.pack(stream, len(payload)) + payload
