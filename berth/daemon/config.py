"""berthd's configuration: command-line flags over daemon.json over defaults."""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from berth.errors import InvalidArgument

DEFAULT_HOST = "unix:///run/berth/berth.sock"
DEFAULT_DATA_ROOT = "/var/lib/berth"
DEFAULT_EXEC_ROOT = "/run/berth"
DEFAULT_CONFIG_FILE = "/etc/berth/daemon.json"


@dataclass
class DaemonConfig:
    hosts: list[str] = field(default_factory=lambda: [DEFAULT_HOST])
    data_root: Path = Path(DEFAULT_DATA_ROOT)
    exec_root: Path = Path(DEFAULT_EXEC_ROOT)
    debug: bool = False
    registry_mirrors: list[str] = field(default_factory=list)
    insecure_registries: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def socket_path(self) -> str:
        host = self.hosts[0]
        if not host.startswith("unix://"):
            raise InvalidArgument(f"only unix:// hosts are supported: {host}")
        return host[len("unix://"):]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="berthd", description="Berth daemon: serves the Docker Engine API.")
    p.add_argument("-H", "--host", action="append", help=f"socket to listen on (default {DEFAULT_HOST})")
    p.add_argument("--data-root", help=f"root of persistent state (default {DEFAULT_DATA_ROOT})")
    p.add_argument("--exec-root", help=f"root of run-time state: sockets, pid file (default {DEFAULT_EXEC_ROOT})")
    p.add_argument("--config-file", default=DEFAULT_CONFIG_FILE, help="daemon.json to read")
    p.add_argument("-D", "--debug", action="store_true", help="debug logging")
    p.add_argument("-v", "--version", action="store_true", help="print the version and exit")
    return p


def load(args: argparse.Namespace) -> DaemonConfig:
    raw: dict[str, Any] = {}
    path = Path(args.config_file)
    if path.exists():
        try:
            raw = json.loads(path.read_text() or "{}")
        except ValueError as e:
            raise InvalidArgument(f"unable to configure the Berth daemon with file {path}: {e}") from None
    elif args.config_file != DEFAULT_CONFIG_FILE:
        raise InvalidArgument(f"unable to configure the Berth daemon with file {path}: no such file")
    cfg = DaemonConfig(raw=raw)
    hosts = args.host or raw.get("hosts")
    if hosts:
        cfg.hosts = [h if "://" in h else "unix://" + h for h in hosts]
    cfg.data_root = Path(args.data_root or raw.get("data-root") or DEFAULT_DATA_ROOT)
    cfg.exec_root = Path(args.exec_root or raw.get("exec-root") or DEFAULT_EXEC_ROOT)
    cfg.debug = bool(args.debug or raw.get("debug"))
    cfg.registry_mirrors = list(raw.get("registry-mirrors") or [])
    cfg.insecure_registries = list(raw.get("insecure-registries") or [])
    return cfg
