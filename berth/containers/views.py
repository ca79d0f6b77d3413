"""Docker's JSON views of a container: ``inspect`` and the ``ps`` summary, plus ps filters."""

from __future__ import annotations

import time
from typing import Any

from berth.containers.model import Container
from berth.util import parse_rfc3339


def inspect(c: Container, exec_ids: list[str]) -> dict[str, Any]:
    cfg = dict(c.Config)
    cdir = str(c.dir)
    return {
        "Id": c.Id,
        "Created": c.Created,
        "Path": c.Path,
        "Args": c.Args,
        "State": c.state.public(),
        "Image": c.ImageID,
        "ResolvConfPath": f"{cdir}/resolv.conf",
        "HostnamePath": f"{cdir}/hostname",
        "HostsPath": f"{cdir}/hosts",
        "LogPath": str(c.log_path),
        "Name": c.Name,
        "RestartCount": c.RestartCount,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids or None,
        "HostConfig": c.HostConfig,
        "GraphDriver": {
            "Name": "overlay2",
            "Data": {"UpperDir": f"{cdir}/rw/upper", "WorkDir": f"{cdir}/rw/work",
                     "MergedDir": f"{cdir}/bundle/rootfs"},
        },
        "Mounts": [],
        "Config": cfg,
        "NetworkSettings": network_settings(c),
    }


def network_settings(c: Container) -> dict[str, Any]:
    mode = c.HostConfig.get("NetworkMode") or "default"
    return {
        "Bridge": "", "SandboxID": "", "HairpinMode": False, "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0, "Ports": {}, "SandboxKey": "",
        "SecondaryIPAddresses": None, "SecondaryIPv6Addresses": None, "EndpointID": "",
        "Gateway": "", "GlobalIPv6Address": "", "GlobalIPv6PrefixLen": 0, "IPAddress": "",
        "IPPrefixLen": 0, "IPv6Gateway": "", "MacAddress": "",
        "Networks": {} if mode == "none" else {},
    }


def summary(c: Container, now: float | None = None) -> dict[str, Any]:
    return {
        "Id": c.Id,
        "Names": [c.Name],
        "Image": c.Image,
        "ImageID": c.ImageID,
        "Command": c.command_text(),
        "Created": int(parse_rfc3339(c.Created)),
        "Ports": [],
        "Labels": c.Config.get("Labels") or {},
        "State": c.state.Status,
        "Status": c.status_text(now),
        "HostConfig": {"NetworkMode": c.HostConfig.get("NetworkMode") or "default"},
        "NetworkSettings": {"Networks": {}},
        "Mounts": [],
    }


def _label_match(labels: dict[str, str], wanted: str) -> bool:
    key, eq, value = wanted.partition("=")
    if key not in labels:
        return False
    return not eq or labels[key] == value


def matches(c: Container, filters: dict[str, list[str]]) -> bool:
    """ps filters: keys AND, values of one key OR (id, name, label, status, exited, ancestor...)."""
    for key, values in filters.items():
        if not values:
            continue
        if key == "id":
            ok = any(c.Id.startswith(v) for v in values)
        elif key == "name":
            ok = any(v.lstrip("/") in c.Name.lstrip("/") for v in values)
        elif key == "label":
            labels = c.Config.get("Labels") or {}
            ok = all(_label_match(labels, v) for v in values)
        elif key == "status":
            ok = c.state.Status in values
        elif key == "exited":
            ok = c.state.Status == "exited" and str(c.state.ExitCode) in values
        elif key == "ancestor":
            ok = any(v in (c.Image, c.ImageID) or c.ImageID.removeprefix("sha256:").startswith(v)
                     for v in values)
        else:
            ok = True
        if not ok:
            return False
    return True


def sort_newest_first(containers: list[Container]) -> list[Container]:
    return sorted(containers, key=lambda c: parse_rfc3339(c.Created), reverse=True)


def now() -> float:
    return time.time()
