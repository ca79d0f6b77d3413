"""``berthd``: wires the stores, the runtime's fork server and the API, and serves until signalled.

Containers keep running when berthd stops: their monitors are separate processes, and the next
berthd finds them again (``ContainerService.recover``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path

from berth import __version__
from berth.daemon.config import DaemonConfig, load, parser
from berth.errors import BerthError

log = logging.getLogger("berthd")


def _detect_cgroups() -> str:
    from berth.runtime import cgroups

    detect = getattr(cgroups, "detect_version", None)
    return detect() if detect else "v1"


def _claim_pidfile(path: Path) -> None:
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        pid = 0
    if pid and pid != os.getpid() and os.path.exists(f"/proc/{pid}"):
        try:
            state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
        except OSError:
            state = "X"
        if state not in ("Z", "X"):
            raise BerthError(f"pid file found, ensure berthd is not running or delete {path}")
    path.write_text(str(os.getpid()))


async def serve(cfg: DaemonConfig, ready: asyncio.Event | None = None) -> None:
    from aiohttp import web

    from berth.api.app import Backends, make_app
    from berth.containers.execs import ExecService
    from berth.containers.service import ContainerService
    from berth.containers.spawner import ForkServer
    from berth.daemon.events import Events
    from berth.daemon.system import SystemService
    from berth.images.service import ImageService
    from berth.registry.client import RegistryService

    cfg.data_root.mkdir(parents=True, exist_ok=True, mode=0o710)
    cfg.exec_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    pidfile = cfg.exec_root / "berthd.pid"
    _claim_pidfile(pidfile)
    sock_path = cfg.socket_path
    Path(sock_path).parent.mkdir(parents=True, exist_ok=True)

    forkserver = ForkServer()
    await forkserver.start()
    images = ImageService(cfg.data_root)
    await asyncio.to_thread(images.recover)
    images.tmp_dir = str(cfg.data_root / "tmp")
    os.makedirs(images.tmp_dir, exist_ok=True)
    events = Events()
    containers = ContainerService(cfg.data_root, cfg.exec_root, images, images.layers, forkserver,
                                  events=events)
    containers.execs = ExecService(containers, forkserver)
    images.image_in_use = containers.image_in_use
    await containers.recover()
    system = SystemService(cfg, containers, images, _detect_cgroups())
    system.events = events
    images.events = events
    registry = RegistryService.from_config(cfg, images)

    app = make_app(Backends(containers=containers, images=images, system=system, registry=registry))
    runner = web.AppRunner(app, handle_signals=False, access_log=log if cfg.debug else None,
                           handler_cancellation=True, shutdown_timeout=2,
                           access_log_format='"%r" %s %Tf')
    await runner.setup()
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    site = web.UnixSite(runner, sock_path)
    await site.start()
    os.chmod(sock_path, 0o660)
    log.info("berthd %s serving the Engine API on unix://%s", __version__, sock_path)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if ready:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("berthd shutting down; containers keep running")
        await runner.cleanup()
        await registry.close()
        await containers.close()
        await forkserver.close()
        for path in (sock_path, str(pidfile)):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        _remove_cgroup_parent()


def _remove_cgroup_parent() -> None:
    """Remove the /berth cgroup parents if no container is left in them (v1: one per controller)."""
    root = Path("/sys/fs/cgroup")
    for parent in [*root.glob("*/berth"), root / "berth"]:
        try:
            parent.rmdir()
        except OSError:
            pass  # still has running containers, or not there


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    if args.version:
        print(f"Berth version {__version__}")
        return
    try:
        cfg = load(args)
    except BerthError as e:
        print(f"berthd: {e.message}", file=sys.stderr)
        sys.exit(1)
    logging.basicConfig(level=logging.DEBUG if cfg.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.geteuid() != 0:
        print("berthd: must run as root", file=sys.stderr)
        sys.exit(1)
    try:
        asyncio.run(serve(cfg))
    except BerthError as e:
        print(f"berthd: {e.message}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
