"""Turning a create request (Docker's body) plus the image's config into a container's Config.

Clients send anything from everything (the CLI) to a minimal body (the SDK), so every field gets
Docker's default here, once.
"""

from __future__ import annotations

import copy
from typing import Any

from berth.errors import InvalidArgument

CONFIG_DEFAULTS: dict[str, Any] = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False, "AttachStdout": False,
    "AttachStderr": False, "ExposedPorts": None, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None, "WorkingDir": "",
    "Entrypoint": None, "OnBuild": None, "Labels": {},
}

HOST_CONFIG_DEFAULTS: dict[str, Any] = {
    "Binds": None, "ContainerIDFile": "", "LogConfig": {"Type": "json-file", "Config": {}},
    "NetworkMode": "default", "PortBindings": {}, "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
    "AutoRemove": False, "VolumeDriver": "", "VolumesFrom": None, "CapAdd": None, "CapDrop": None,
    "CgroupnsMode": "host", "Dns": [], "DnsOptions": [], "DnsSearch": [], "ExtraHosts": None,
    "GroupAdd": None, "IpcMode": "private", "Cgroup": "", "Links": None, "OomScoreAdj": 0,
    "PidMode": "", "Privileged": False, "PublishAllPorts": False, "ReadonlyRootfs": False,
    "SecurityOpt": None, "UTSMode": "", "UsernsMode": "", "ShmSize": 67108864, "Runtime": "runc",
    "ConsoleSize": [0, 0], "Isolation": "", "CpuShares": 0, "Memory": 0, "NanoCpus": 0,
    "CgroupParent": "", "BlkioWeight": 0, "BlkioWeightDevice": [], "BlkioDeviceReadBps": None,
    "BlkioDeviceWriteBps": None, "BlkioDeviceReadIOps": None, "BlkioDeviceWriteIOps": None,
    "CpuPeriod": 0, "CpuQuota": 0, "CpuRealtimePeriod": 0, "CpuRealtimeRuntime": 0,
    "CpusetCpus": "", "CpusetMems": "", "Devices": [], "DeviceCgroupRules": None,
    "DeviceRequests": None, "KernelMemory": 0, "KernelMemoryTCP": 0, "MemoryReservation": 0,
    "MemorySwap": 0, "MemorySwappiness": None, "OomKillDisable": False, "PidsLimit": None,
    "Ulimits": None, "CpuCount": 0, "CpuPercent": 0, "IOMaximumIOps": 0, "IOMaximumBandwidth": 0,
    "MaskedPaths": None, "ReadonlyPaths": None, "Init": None,
}


def _with_defaults(given: dict[str, Any] | None, defaults: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(defaults)
    for k, v in (given or {}).items():
        if v is None and k in out and out[k] is not None and not isinstance(out[k], bool):
            continue  # a client's null means "default" for these
        out[k] = v
    return out


def _env_map(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def merge_config(body: dict[str, Any], image_config: dict[str, Any]) -> dict[str, Any]:
    """The container's Config: the request's fields over the image's, like dockerd's merge."""
    cfg = _with_defaults({k: v for k, v in body.items() if k in CONFIG_DEFAULTS or k in (
        "StopSignal", "StopTimeout", "Healthcheck", "NetworkDisabled", "MacAddress", "ArgsEscaped")},
        CONFIG_DEFAULTS)
    img = image_config or {}
    if isinstance(cfg.get("Cmd"), str):
        cfg["Cmd"] = [cfg["Cmd"]]
    if isinstance(cfg.get("Entrypoint"), str):
        cfg["Entrypoint"] = [cfg["Entrypoint"]]
    env = _env_map(img.get("Env"))
    env.update(_env_map(cfg.get("Env")))
    cfg["Env"] = [f"{k}={v}" for k, v in env.items()] or None
    if not cfg.get("Entrypoint"):  # dockerd's rule: only a nil entrypoint takes the image's
        if not cfg.get("Cmd"):
            cfg["Cmd"] = img.get("Cmd")
        if cfg.get("Entrypoint") is None:
            cfg["Entrypoint"] = img.get("Entrypoint")
    if cfg.get("Entrypoint") == [""]:
        cfg["Entrypoint"] = None
    for key in ("WorkingDir", "User", "StopSignal"):
        if not cfg.get(key) and img.get(key):
            cfg[key] = img[key]
    labels = dict(img.get("Labels") or {})
    labels.update(cfg.get("Labels") or {})
    cfg["Labels"] = labels
    for key in ("ExposedPorts", "Volumes"):
        merged = dict(img.get(key) or {})
        merged.update(cfg.get(key) or {})
        cfg[key] = merged or None
    if not (cfg.get("Entrypoint") or cfg.get("Cmd")):
        raise InvalidArgument("No command specified")
    return cfg


def host_config(body: dict[str, Any]) -> dict[str, Any]:
    hc = _with_defaults(body.get("HostConfig"), HOST_CONFIG_DEFAULTS)
    if hc.get("Memory") and hc["Memory"] < 6 * 1024 * 1024:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if hc.get("NanoCpus") and (hc.get("CpuQuota") or hc.get("CpuPeriod")):
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if hc.get("NanoCpus", 0) < 0:
        raise InvalidArgument("Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available")
    if hc.get("NanoCpus"):
        import os

        ncpu = os.cpu_count() or 1
        if hc["NanoCpus"] > ncpu * 1_000_000_000:
            raise InvalidArgument(
                f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available")
    return hc


def command_of(cfg: dict[str, Any]) -> tuple[str, list[str]]:
    """Path and Args as inspect shows them: entrypoint + cmd, split at the first word."""
    argv = list(cfg.get("Entrypoint") or []) + list(cfg.get("Cmd") or [])
    return (argv[0], argv[1:]) if argv else ("", [])
