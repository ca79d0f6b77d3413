"""Resolve a Docker ``User`` string ("", "name", "uid", "uid:gid", "name:group") against the
/etc/passwd and /etc/group of a container's root, the way Docker and runc do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from berth.errors import StartError


@dataclass
class ExecUser:
    """The identity a container process runs as."""

    uid: int
    gid: int
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _read_db(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    rows = []
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        rows.append(line.split(":"))
    return rows


def _int(s: str) -> int | None:
    try:
        v = int(s)
    except ValueError:
        return None
    return v if v >= 0 else None


def resolve(user: str, root: str = "/") -> ExecUser:
    """Resolve ``user`` against ``root``/etc/passwd and ``root``/etc/group.

    A numeric uid or gid without an entry is used as is (gid 0, home "/"). Raises StartError
    (exit code 126) with Docker's text when a name has no entry.
    """
    passwd = _read_db(os.path.join(root, "etc/passwd"))
    groups = _read_db(os.path.join(root, "etc/group"))
    user = (user or "").strip()
    name, _, group = user.partition(":")
    uid, gid, home, username = 0, 0, "/", "root"
    matched = None
    if name:
        num = _int(name)
        for row in passwd:
            if len(row) < 4:
                continue
            if (num is None and row[0] == name) or (num is not None and _int(row[2]) == num):
                matched = row
                break
        if matched is None:
            if num is None:
                raise StartError(f"unable to find user {name}: no matching entries in passwd file", 126)
            uid, username = num, ""
        else:
            uid, gid, username = _int(matched[2]) or 0, _int(matched[3]) or 0, matched[0]
            home = matched[5] if len(matched) > 5 and matched[5] else "/"
    else:
        for row in passwd:
            if len(row) >= 4 and _int(row[2]) == 0:
                home = row[5] if len(row) > 5 and row[5] else "/"
                username = row[0]
                break
    if group:
        gnum = _int(group)
        found = None
        for row in groups:
            if len(row) >= 3 and ((gnum is None and row[0] == group) or (gnum is not None and _int(row[2]) == gnum)):
                found = row
                break
        if found is None:
            if gnum is None:
                raise StartError(f"unable to find group {group}: no matching entries in group file", 126)
            gid = gnum
        else:
            gid = _int(found[2]) or 0
    extra: list[int] = []
    if username and not group:
        for row in groups:
            if len(row) >= 4 and username in row[3].split(","):
                g = _int(row[2])
                if g is not None and g != gid and g not in extra:
                    extra.append(g)
    return ExecUser(uid=uid, gid=gid, additional_gids=extra, home=home)


def with_home(env: list[str], home: str) -> list[str]:
    """``env`` plus HOME=``home`` when it has no HOME already."""
    if any(e.startswith("HOME=") for e in env):
        return list(env)
    return [*env, f"HOME={home}"]
