"""Image configs: Docker's container-config shape, ``--change`` lines, canonical JSON, times."""

from __future__ import annotations

import json
import posixpath
import re
import shlex
import time
from datetime import UTC, datetime
from typing import Any

from berth.errors import InvalidArgument

# Go's container.Config field order; fields Docker always writes (others are omitempty).
_ALWAYS = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "Tty": False, "OpenStdin": False, "StdinOnce": False, "Env": None,
    "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "", "Entrypoint": None,
    "OnBuild": None, "Labels": None,
}
_ORDER = ["Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
          "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
          "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
          "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell"]

VALID_CHANGES = ("cmd", "entrypoint", "env", "expose", "label", "onbuild", "stopsignal", "user",
                 "volume", "workdir")


def container_config(values: dict[str, Any] | None = None) -> dict[str, Any]:
    """A container config in Go's field order with Docker's defaults; omitempty fields dropped."""
    values = values or {}
    out: dict[str, Any] = {}
    for key in _ORDER:
        if key in values and (key in _ALWAYS or values[key] not in (None, "", [], {}, False)):
            out[key] = values[key]
        elif key in _ALWAYS:
            out[key] = _ALWAYS[key]
    for key, v in values.items():  # unknown keys kept, at the end
        if key not in out and key not in _ALWAYS and v not in (None, "", [], {}, False):
            out[key] = v
    return out


def canonical_json(obj: Any) -> bytes:
    """JSON bytes the way Go's encoding/json writes them (compact, UTF-8, <>& escaped)."""
    s = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    s = s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    s = s.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    return s.encode("utf-8")


def rfc3339_nano(ns: int | None = None) -> str:
    """``2026-11-26T21:46:51.327831379Z`` (Go's RFC3339Nano: trailing zeros trimmed)."""
    if ns is None:
        ns = time.time_ns()
    sec, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(sec, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    f = f"{frac:09d}".rstrip("0")
    return f"{base}.{f}Z" if f else f"{base}Z"


def parse_time_ns(value: str | None) -> int:
    """Unix nanoseconds from an RFC 3339 timestamp (any fraction, ``Z`` or offset); 0 if bad."""
    if not value:
        return 0
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", value)
    if not m:
        return 0
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = int(datetime.fromisoformat(m.group(1) + tz).timestamp())
    frac = int((m.group(2) or "0")[:9].ljust(9, "0"))
    return base * 1_000_000_000 + frac


def parse_time(value: str | None) -> float:
    """Unix seconds from an RFC 3339 timestamp; 0 if missing or malformed."""
    return parse_time_ns(value) / 1e9


def _json_or_shell(rest: str) -> list[str]:
    if rest.startswith("["):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(x, str) for x in value):
            return value
    return ["/bin/sh", "-c", rest]


def _pairs(instr: str, rest: str) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` or the legacy ``K V with spaces`` form of ENV and LABEL."""
    try:
        words = shlex.split(rest, posix=True)
    except ValueError as e:
        raise InvalidArgument(f"{instr} {rest}: {e}") from None
    if not words:
        raise InvalidArgument(f"{instr} requires at least one argument")
    if "=" not in words[0]:
        parts = rest.split(None, 1)
        if len(parts) != 2:
            raise InvalidArgument(f"{instr} must have two arguments")
        return [(parts[0], parts[1].strip())]
    out = []
    for w in words:
        key, sep, value = w.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{instr} names can not be blank" if not key
                                  else f"Syntax error - can't find = in \"{w}\". Must be of the form: name=value")
        out.append((key, value))
    return out


def _ports(rest: str) -> list[str]:
    out = []
    for word in rest.split():
        port, _, proto = word.partition("/")
        proto = (proto or "tcp").lower()
        lo, sep, hi = port.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise InvalidArgument(f"Invalid containerPort: {port}")
        for p in range(int(lo), int(hi if sep else lo) + 1):
            out.append(f"{p}/{proto}")
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Apply ``docker import/commit --change`` lines (Dockerfile syntax) to a container config.

    Returns a new dict. Raises InvalidArgument (``run is not a valid change command``) for an
    instruction other than CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER,
    VOLUME, WORKDIR, or for a malformed argument.
    """
    cfg = dict(config)
    for line in changes:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instr, _, rest = line.partition(" ")
        instr = instr.lower()
        rest = rest.strip()
        if instr not in VALID_CHANGES:
            raise InvalidArgument(f"{instr} is not a valid change command")
        if instr == "cmd":
            cfg["Cmd"] = _json_or_shell(rest)
        elif instr == "entrypoint":
            cfg["Entrypoint"] = _json_or_shell(rest) if rest else None
        elif instr == "env":
            env = list(cfg.get("Env") or [])
            for key, value in _pairs("ENV", rest):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            cfg["Env"] = env
        elif instr == "label":
            labels = dict(cfg.get("Labels") or {})
            labels.update(_pairs("LABEL", rest))
            cfg["Labels"] = labels
        elif instr == "expose":
            ports = dict(cfg.get("ExposedPorts") or {})
            ports.update({p: {} for p in _ports(rest)})
            cfg["ExposedPorts"] = ports
        elif instr == "volume":
            vols = _json_or_shell(rest) if rest.startswith("[") else rest.split()
            if vols[:2] == ["/bin/sh", "-c"]:
                vols = rest.split()
            volumes = dict(cfg.get("Volumes") or {})
            volumes.update({v: {} for v in vols if v})
            cfg["Volumes"] = volumes
        elif instr == "workdir":
            if not rest:
                raise InvalidArgument("WORKDIR requires exactly one argument")
            cfg["WorkingDir"] = posixpath.normpath(posixpath.join(cfg.get("WorkingDir") or "/", rest))
        elif instr == "user":
            cfg["User"] = rest
        elif instr == "stopsignal":
            cfg["StopSignal"] = rest
        elif instr == "onbuild":
            cfg["OnBuild"] = list(cfg.get("OnBuild") or []) + [rest]
    return container_config(cfg)
