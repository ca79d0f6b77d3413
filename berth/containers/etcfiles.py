"""/etc/hostname, /etc/hosts and /etc/resolv.conf for a container, written as Docker writes them."""

from __future__ import annotations

import re
from pathlib import Path

_HOSTS = """127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
fe00::0\tip6-localnet
ff00::0\tip6-mcastprefix
ff02::1\tip6-allnodes
ff02::2\tip6-allrouters
"""
_DEFAULT_DNS = ["8.8.8.8", "8.8.4.4"]
_LOCAL_NS = re.compile(r"^\s*nameserver\s+(127\.\S*|::1)\s*$")


def hosts_file(extra: list[tuple[str, str]]) -> str:
    return _HOSTS + "".join(f"{ip}\t{names}\n" for ip, names in extra)


def resolv_conf(host_resolv: str) -> str:
    """The host's resolv.conf without loopback name servers (unreachable from the container);
    Google's public servers when none is left, as dockerd does."""
    lines = [ln for ln in host_resolv.splitlines() if not _LOCAL_NS.match(ln)]
    if not any(ln.strip().startswith("nameserver") for ln in lines):
        lines += [f"nameserver {ip}" for ip in _DEFAULT_DNS]
    return "\n".join(lines).strip() + "\n"


def write_etc_files(cdir: Path, hostname: str, domainname: str = "",
                    host_resolv: Path = Path("/etc/resolv.conf")) -> dict[str, Path]:
    paths = {"hostname": cdir / "hostname", "hosts": cdir / "hosts", "resolv": cdir / "resolv.conf"}
    paths["hostname"].write_text(hostname + "\n")
    if not paths["hosts"].exists():
        paths["hosts"].write_text(hosts_file([]))
    if not paths["resolv"].exists():
        try:
            text = host_resolv.read_text()
        except OSError:
            text = ""
        paths["resolv"].write_text(resolv_conf(text))
    return paths
