"""The /version and /info answers."""

from __future__ import annotations

import os
import platform
import socket
from typing import Any

from berth import __version__
from berth.daemon.config import DaemonConfig


def _os_name() -> str:
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"


def _mem_total() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class SystemService:
    def __init__(self, config: DaemonConfig, containers: Any, images: Any, cgroup_version: str) -> None:
        self.config = config
        self.containers = containers
        self.images = images
        self.cgroup_version = cgroup_version
        self.id = _daemon_id(config)

    def version(self, api_version: str, min_api_version: str) -> dict[str, Any]:
        kernel = platform.release()
        return {
            "Platform": {"Name": "Berth Engine"},
            "Components": [{"Name": "Engine", "Version": __version__,
                            "Details": {"ApiVersion": api_version, "Arch": "amd64",
                                        "KernelVersion": kernel, "MinAPIVersion": min_api_version,
                                        "Os": "linux", "GoVersion": f"python{platform.python_version()}",
                                        "GitCommit": "berth"}}],
            "Version": __version__, "ApiVersion": api_version, "MinAPIVersion": min_api_version,
            "GitCommit": "berth", "GoVersion": f"python{platform.python_version()}", "Os": "linux",
            "Arch": "amd64", "KernelVersion": kernel, "BuildTime": "",
        }

    async def disk_usage(self) -> dict[str, Any]:
        """GET /system/df: layers counted once however many images share them."""
        import asyncio

        from berth.images.prune import image_disk_usage

        per_image: dict[str, int] = {}
        for c in self.containers.containers.values():
            per_image[c.ImageID] = per_image.get(c.ImageID, 0) + 1
        layers_size, images = await asyncio.to_thread(image_disk_usage, self.images, per_image)
        sizes = {i["Id"]: i["Size"] for i in images}
        return {"LayersSize": layers_size, "Images": images,
                "Containers": await self.containers.disk_usage(sizes), "Volumes": [],
                "BuildCache": [], "BuilderSize": 0}

    def info(self) -> dict[str, Any]:
        cs = list(self.containers.containers.values())
        running = sum(1 for c in cs if c.state.Running and not c.state.Paused)
        paused = sum(1 for c in cs if c.state.Paused)
        try:
            n_images = len(self.images.list_images(all=False))
        except Exception:
            n_images = 0
        return {
            "ID": self.id, "Containers": len(cs), "ContainersRunning": running,
            "ContainersPaused": paused, "ContainersStopped": len(cs) - running - paused,
            "Images": n_images, "Driver": "overlay2",
            "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"],
                             ["Native Overlay Diff", "true"]],
            "Plugins": {"Volume": ["local"], "Network": ["null"], "Authorization": None,
                        "Log": ["json-file"]},
            "MemoryLimit": True, "SwapLimit": True, "KernelMemory": False, "CpuCfsPeriod": True,
            "CpuCfsQuota": True, "CPUShares": True, "CPUSet": True, "PidsLimit": True,
            "IPv4Forwarding": True, "BridgeNfIptables": False, "BridgeNfIp6tables": False,
            "Debug": self.config.debug, "NFd": len(os.listdir("/proc/self/fd")),
            "OomKillDisable": True, "NGoroutines": 0, "SystemTime": _now(),
            "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs",
            "CgroupVersion": "2" if self.cgroup_version == "v2" else "1",
            "NEventsListener": 0, "KernelVersion": platform.release(), "OperatingSystem": _os_name(),
            "OSVersion": "", "OSType": "linux", "Architecture": platform.machine(),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": {"AllowNondistributableArtifactsCIDRs": [],
                               "AllowNondistributableArtifactsHostnames": [],
                               "InsecureRegistryCIDRs": ["127.0.0.0/8"], "IndexConfigs": {},
                               "Mirrors": self.config.registry_mirrors},
            "NCPU": os.cpu_count() or 1, "MemTotal": _mem_total(), "GenericResources": None,
            "DockerRootDir": str(self.config.data_root), "HttpProxy": "", "HttpsProxy": "",
            "NoProxy": "", "Name": socket.gethostname(), "Labels": [], "ExperimentalBuild": False,
            "ServerVersion": __version__, "Runtimes": {"berth": {"path": "berth-runtime"}},
            "DefaultRuntime": "berth", "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                                                 "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True, "Isolation": "", "InitBinary": "",
            "ContainerdCommit": {"ID": "", "Expected": ""}, "RuncCommit": {"ID": "", "Expected": ""},
            "InitCommit": {"ID": "", "Expected": ""}, "SecurityOptions": [],
            "Warnings": None,
        }


def _now() -> str:
    from berth.util import rfc3339_now

    return rfc3339_now()


def _daemon_id(config: DaemonConfig) -> str:
    path = config.data_root / "engine-id"
    try:
        return path.read_text().strip()
    except OSError:
        import uuid

        ident = str(uuid.uuid4())
        try:
            path.write_text(ident)
        except OSError:
            pass
        return ident
