"""JSON for the CLI's hot path, straight on the C accelerators in ``_json``.

``import json`` pulls in ``re``, ``enum`` and ``functools`` (≈10 ms on these machines) before the
CLI has sent a byte; the C scanner and encoder it wraps need none of that. Same results as
``json.loads`` and ``json.dumps(obj, separators=(",", ":"))`` for the Engine API's documents.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_CONSTANTS.__getitem__)
    memo: dict = {}


_scan = _json.make_scanner(_Context())
_WS = " \t\n\r"


def loads(text: str | bytes) -> Any:
    """Decode one JSON document; ValueError if it is not one."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    start = len(text) - len(text.lstrip(_WS))
    try:
        obj, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"Expecting value: char {e.value}") from None
    if text[end:].strip(_WS):
        raise ValueError(f"Extra data: char {end}")
    return obj


def _default(obj: Any) -> Any:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


_encode = _json.make_encoder(None, _default, _json.encode_basestring_ascii, None, ":", ",",
                             False, False, True)


def dumps(obj: Any) -> str:
    """Compact JSON (``separators=(",", ":")``), ASCII-only like json.dumps."""
    return "".join(_encode(obj, 0))
