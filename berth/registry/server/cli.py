"""``berth registry serve|gc`` (also ``python -m berth.registry.server``).

``serve --addr HOST:PORT --root DIR [--htpasswd FILE] [--realm R] [--tls-cert F --tls-key F]
[--disable-delete]`` prints ``listening on <scheme>://host:port`` once bound (port 0 picks a free
port) and runs until SIGTERM/SIGINT. ``gc --root DIR [--dry-run] [--delete-untagged]`` is the
offline garbage collector. Without a sub-command, ``serve`` is assumed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import ssl
import sys

from aiohttp import web

from berth.registry.server.app import create_app
from berth.registry.server.gc import collect


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="berth registry", description="Berth's registry server")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve the Docker Registry HTTP API v2")
    s.add_argument("--addr", default="127.0.0.1:5000", help="HOST:PORT to listen on (port 0: any)")
    s.add_argument("--root", required=True, help="storage directory")
    s.add_argument("--htpasswd", help="htpasswd file with bcrypt entries: turns on Basic auth")
    s.add_argument("--realm", default="Registry Realm", help="Basic auth realm")
    s.add_argument("--tls-cert", help="TLS certificate (PEM)")
    s.add_argument("--tls-key", help="TLS private key (PEM)")
    s.add_argument("--disable-delete", action="store_true",
                   help="refuse DELETE of manifests and blobs (405 UNSUPPORTED)")
    s.add_argument("--log-level", default="warning")
    g = sub.add_parser("gc", help="offline garbage collection (stop the server first)")
    g.add_argument("--root", required=True)
    g.add_argument("--dry-run", action="store_true", help="only print what would be deleted")
    g.add_argument("--delete-untagged", action="store_true",
                   help="also delete manifests no tag reaches")
    return p


def _split_addr(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise SystemExit(f"berth registry: invalid --addr {addr!r} (want HOST:PORT)")
    return host.strip("[]") or "0.0.0.0", int(port)


async def _serve(args: argparse.Namespace) -> None:
    ssl_ctx = None
    if args.tls_cert or args.tls_key:
        if not (args.tls_cert and args.tls_key):
            raise SystemExit("berth registry: --tls-cert and --tls-key go together")
        ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_ctx.load_cert_chain(args.tls_cert, args.tls_key)
    host, port = _split_addr(args.addr)
    app = create_app(args.root, htpasswd=args.htpasswd, realm=args.realm,
                     delete_enabled=not args.disable_delete)
    runner = web.AppRunner(app, access_log=logging.getLogger("berth.registry.access"))
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_ctx)
    await site.start()
    scheme = "https" if ssl_ctx else "http"
    for addr in runner.addresses:
        h, p = addr[0], addr[1]
        print(f"listening on {scheme}://{'[' + h + ']' if ':' in h else h}:{p}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("serve", "gc", "-h", "--help"):
        argv.insert(0, "serve")
    args = _parser().parse_args(argv)
    if args.cmd == "gc":
        res = collect(args.root, dry_run=args.dry_run, delete_untagged=args.delete_untagged,
                      log=print)
        verb = "would free" if args.dry_run else "freed"
        print(f"{len(res.deleted_blobs)} blobs, {len(res.deleted_manifests)} manifests; "
              f"{verb} {res.freed_bytes} bytes")
        return 0
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args))
    return 0
