"""``create``/``run`` flags and the container-create body docker's CLI sends for them."""

from __future__ import annotations

import os

from berth.cli.flags import Command, Options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(value: str) -> int:
    """go-units ``RAMInBytes``: ``32m``, ``1g``, ``1.5GiB``, ``512`` (binary multiples)."""
    s = value.strip()
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    num, suffix = s[:i], s[i:]
    try:
        number = float(num)
    except ValueError:
        raise ValueError(f"invalid size: '{value}'") from None
    unit = suffix.lstrip(" ").lower()
    if unit.endswith("b"):
        unit = unit[:-1]
    if unit.endswith("i") and unit != "i":
        unit = unit[:-1]
    if unit not in _UNITS:
        raise ValueError(f"invalid suffix: '{suffix.strip()}'")
    return int(number * _UNITS[unit])


def mem_swap(value: str) -> int:
    return -1 if value.strip() == "-1" else ram_in_bytes(value)


def nano_cpus(value: str) -> int:
    """``--cpus 1.5`` → 1500000000 (docker's NanoCPUs)."""
    from fractions import Fraction

    try:
        r = Fraction(value.strip())
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"failed to parse {value} as a rational number") from None
    n = r * 1_000_000_000
    if n.denominator != 1:
        raise ValueError("value is too precise")
    return int(n)


def _add_container_flags(c: Command) -> Command:
    f = c.flag
    f("attach", "a", "list", help="Attach to STDIN, STDOUT or STDERR")
    f("add-host", None, "list", help="Add a custom host-to-IP mapping (host:ip)")
    f("cap-add", None, "list", help="Add Linux capabilities")
    f("cap-drop", None, "list", help="Drop Linux capabilities")
    f("cidfile", None, help="Write the container ID to the file")
    f("cpu-shares", "c", "int", 0, help="CPU shares (relative weight)")
    f("cpus", None, nano_cpus, 0, help="Number of CPUs", metavar="decimal")
    f("cpuset-cpus", None, help="CPUs in which to allow execution (0-3, 0,1)")
    f("dns", None, "list", help="Set custom DNS servers")
    f("entrypoint", None, help="Overwrite the default ENTRYPOINT of the image")
    f("env", "e", "list", help="Set environment variables")
    f("env-file", None, "list", help="Read in a file of environment variables")
    f("expose", None, "list", help="Expose a port or a range of ports")
    f("group-add", None, "list", help="Add additional groups to join")
    f("hostname", "h", help="Container host name")
    f("init", None, "bool", help="Run an init inside the container that forwards signals and reaps processes")
    f("interactive", "i", "bool", help="Keep STDIN open even if not attached")
    f("ipc", None, help="IPC mode to use")
    f("label", "l", "list", help="Set meta data on a container")
    f("log-driver", None, help="Logging driver for the container")
    f("log-opt", None, "list", help="Log driver options")
    f("memory", "m", ram_in_bytes, 0, help="Memory limit", metavar="bytes")
    f("memory-reservation", None, ram_in_bytes, 0, help="Memory soft limit", metavar="bytes")
    f("memory-swap", None, mem_swap, 0, help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap", metavar="bytes")
    f("name", None, help="Assign a name to the container")
    f("network", None, help="Connect a container to a network")
    f("net", None, help="Connect a container to a network")
    f("network-alias", None, "list", help="Add network-scoped alias for the container")
    f("oom-kill-disable", None, "bool", help="Disable OOM Killer")
    f("pid", None, help="PID namespace to use")
    f("pids-limit", None, "int", 0, help="Tune container pids limit (set -1 for unlimited)")
    f("platform", None, help="Set platform if server is multi-platform capable")
    f("privileged", None, "bool", help="Give extended privileges to this container")
    f("publish", "p", "list", help="Publish a container's port(s) to the host")
    f("publish-all", "P", "bool", help="Publish all exposed ports to random ports")
    f("pull", None, default="missing", help='Pull image before running ("always", "missing", "never")')
    f("quiet", "q", "bool", help="Suppress the pull output")
    f("read-only", None, "bool", help="Mount the container's root filesystem as read only")
    f("restart", None, default="no", help="Restart policy to apply when a container exits")
    f("rm", None, "bool", help="Automatically remove the container and its associated anonymous volumes when it exits")
    f("runtime", None, help="Runtime to use for this container")
    f("security-opt", None, "list", help="Security Options")
    f("shm-size", None, ram_in_bytes, 0, help="Size of /dev/shm", metavar="bytes")
    f("stop-signal", None, help="Signal to stop the container")
    f("stop-timeout", None, "int", None, help="Timeout (in seconds) to stop a container")
    f("tmpfs", None, "list", help="Mount a tmpfs directory")
    f("tty", "t", "bool", help="Allocate a pseudo-TTY")
    f("ulimit", None, "list", help="Ulimit options")
    f("user", "u", help="Username or UID (format: <name|uid>[:<group|gid>])")
    f("userns", None, help="User namespace to use")
    f("uts", None, help="UTS namespace to use")
    f("volume", "v", "list", help="Bind mount a volume")
    f("workdir", "w", help="Working directory inside the container")
    return c


def create_command() -> Command:
    return _add_container_flags(
        Command("create", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create a new container", 1, None, False)
    )


def run_command() -> Command:
    c = Command("run", "[OPTIONS] IMAGE [COMMAND] [ARG...]", "Create and run a new container from an image",
                1, None, False)
    c.flag("detach", "d", "bool", help="Run container in background and print container ID")
    c.flag("detach-keys", None, help="Override the key sequence for detaching a container")
    c.flag("sig-proxy", None, "bool", True, help="Proxy received signals to the process")
    return _add_container_flags(c)


def env_value(item: str) -> str | None:
    """``K=V`` as is; ``K`` takes the CLI's environment (None if unset)."""
    if "=" in item:
        return item
    v = os.environ.get(item)
    return None if v is None else f"{item}={v}"


def read_env_file(path: str) -> list[str]:
    """docker's env-file grammar: ``K=V`` lines, ``K`` from the environment, ``#`` comments."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as e:
        raise ValueError(f"open {path}: {e.strerror.lower() if e.strerror else e}") from None
    out = []
    for raw in lines:
        line = raw.lstrip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            v = env_value(line.strip())
            if v is not None:
                out.append(v)
        else:
            k, _, v = line.partition("=")
            if not k.strip() or " " in k.strip():
                raise ValueError(f"variable '{k}' contains whitespaces")
            out.append(line)
    return out


def collect_env(env_files: list[str] | None, envs: list[str] | None) -> list[str]:
    out: list[str] = []
    for path in env_files or []:
        out += read_env_file(path)
    for item in envs or []:
        if item.startswith("="):
            raise ValueError(f"invalid environment variable: {item}")
        v = env_value(item)
        if v is not None:
            out.append(v)
    return out


def _cap(name: str) -> str:
    name = name.strip().upper()
    return name if name == "ALL" or name.startswith("CAP_") else "CAP_" + name


def parse_ports(specs: list[str], expose: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``-p [ip:][hostPort:]containerPort[/proto]`` → (ExposedPorts, PortBindings)."""
    exposed: dict[str, Any] = {}
    bindings: dict[str, list[dict[str, str]]] = {}
    for spec in specs:
        proto = "tcp"
        if "/" in spec:
            spec, proto = spec.rsplit("/", 1)
        parts = spec.rsplit(":", 2) if spec.count(":") <= 2 else [spec]
        if len(parts) == 3:
            ip, host_port, cport = parts
        elif len(parts) == 2:
            ip, host_port, cport = "", parts[0], parts[1]
        else:
            ip, host_port, cport = "", "", parts[0]
        if not cport or not cport.replace("-", "").isdigit():
            raise ValueError(f"invalid containerPort: {cport}")
        key = f"{cport}/{proto}"
        exposed[key] = {}
        bindings.setdefault(key, []).append({"HostIp": ip.strip("[]"), "HostPort": host_port})
    for e in expose:
        key = e if "/" in e else f"{e}/tcp"
        exposed[key] = {}
    return exposed, bindings


def build_create_body(opts: Options, args: list[str], detach: bool, console: tuple[int, int]) -> dict[str, Any]:
    """The JSON body of ``POST /containers/create`` for these flags (Docker's full shape)."""
    image, cmd = args[0], args[1:]
    attach = [a.lower() for a in (opts.attach or [])]
    for a in attach:
        if a not in ("stdin", "stdout", "stderr"):
            raise ValueError("valid streams are STDIN, STDOUT and STDERR")
    if detach:
        a_in = a_out = a_err = False
    elif attach:
        a_in = "stdin" in attach or bool(opts.interactive)
        a_out, a_err = "stdout" in attach, "stderr" in attach
    else:
        a_in, a_out, a_err = bool(opts.interactive), True, True
    env = collect_env(opts.env_file, opts.env)
    labels: dict[str, str] = {}
    for item in opts.label or []:
        k, _, v = item.partition("=")
        labels[k] = v
    exposed, bindings = parse_ports(opts.publish or [], opts.expose or [])
    binds, volumes = [], {}
    for v in opts.volume or []:
        if ":" in v:
            binds.append(v)
        else:
            volumes[v] = {}
    tmpfs = {}
    for t in opts.tmpfs or []:
        path, _, o = t.partition(":")
        tmpfs[path] = o
    restart_name, _, retries = (opts.restart or "no").partition(":")
    log_opts = dict(item.partition("=")[::2] for item in (opts.log_opt or []))
    entrypoint = None
    if "entrypoint" in opts.given:
        entrypoint = [opts.entrypoint] if opts.entrypoint else [""]
    network = opts.network or opts.net or "default"
    config: dict[str, Any] = {
        "Hostname": opts.hostname or "",
        "Domainname": "",
        "User": opts.user or "",
        "AttachStdin": a_in,
        "AttachStdout": a_out,
        "AttachStderr": a_err,
        **({"ExposedPorts": exposed} if exposed else {}),
        "Tty": bool(opts.tty),
        "OpenStdin": bool(opts.interactive),
        "StdinOnce": bool(opts.interactive) and a_in,
        "Env": env or None,
        "Cmd": cmd or None,
        "Image": image,
        "Volumes": volumes,
        "WorkingDir": opts.workdir or "",
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": labels,
    }
    if opts.stop_signal:
        config["StopSignal"] = opts.stop_signal
    if opts.stop_timeout is not None:
        config["StopTimeout"] = opts.stop_timeout
    host_config: dict[str, Any] = {
        "Binds": binds or None,
        "ContainerIDFile": opts.cidfile or "",
        "LogConfig": {"Type": opts.log_driver or "", "Config": log_opts},
        "NetworkMode": network,
        "PortBindings": bindings,
        "RestartPolicy": {"Name": restart_name, "MaximumRetryCount": int(retries or 0)},
        "AutoRemove": bool(opts.rm),
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": list(console),
        "CapAdd": [_cap(c) for c in opts.cap_add] if opts.cap_add else None,
        "CapDrop": [_cap(c) for c in opts.cap_drop] if opts.cap_drop else None,
        "CgroupnsMode": "",
        "Dns": opts.dns or [],
        "DnsOptions": [],
        "DnsSearch": [],
        "ExtraHosts": opts.add_host or None,
        "GroupAdd": opts.group_add or None,
        "IpcMode": opts.ipc or "",
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": 0,
        "PidMode": opts.pid or "",
        "Privileged": bool(opts.privileged),
        "PublishAllPorts": bool(opts.publish_all),
        "ReadonlyRootfs": bool(opts.read_only),
        "SecurityOpt": opts.security_opt or None,
        **({"Tmpfs": tmpfs} if tmpfs else {}),
        "UTSMode": opts.uts or "",
        "UsernsMode": opts.userns or "",
        "ShmSize": opts.shm_size or 0,
        **({"Runtime": opts.runtime} if opts.runtime else {}),
        "Isolation": "",
        "CpuShares": opts.cpu_shares or 0,
        "Memory": opts.memory or 0,
        "NanoCpus": opts.cpus or 0,
        "CgroupParent": "",
        "CpusetCpus": opts.cpuset_cpus or "",
        "CpusetMems": "",
        "Devices": [],
        "MemoryReservation": opts.memory_reservation or 0,
        "MemorySwap": opts.memory_swap or 0,
        "OomKillDisable": bool(opts.oom_kill_disable),
        "MemorySwappiness": -1,
        "PidsLimit": opts.pids_limit or 0,
        "Ulimits": _ulimits(opts.ulimit or []),
    }
    if opts.init:
        host_config["Init"] = True
    config["HostConfig"] = host_config
    endpoint: dict[str, Any] = {"IPAMConfig": None, "Links": None, "Aliases": opts.network_alias or None}
    skip = network in ("host", "none") or network.startswith("container:")
    config["NetworkingConfig"] = {"EndpointsConfig": {} if skip else {network: endpoint}}
    return config


def _ulimits(items: list[str]) -> list[dict[str, Any]]:
    out = []
    for item in items:
        name, _, limits = item.partition("=")
        soft, _, hard = limits.partition(":")
        out.append({"Name": name, "Soft": int(soft), "Hard": int(hard or soft)})
    return out
