#!/usr/bin/env python3
"""Berth vs Docker: commit, save and load (issue 3), side by side. It prints figures; it asserts
nothing.

One run:

1. starts its own berthd (temporary socket, data-root, exec-root) and a private peer dockerd
   (tests/peers.py: ``unshare --net --mount``, its own socket, data-root, exec-root, pidfile,
   ``--bridge none``), and imports the same busybox rootfs tar into both;
2. commit, N times per engine, engines taking turns: a fresh container that wrote 50 MB of new
   files (``dd if=/dev/urandom of=/data/f$i bs=1M count=5``, i = 1..10) is committed;
   wall time of ``commit``;
3. a ~100 MB image per engine (a container that wrote 20 x 5 MB of random files, committed: that
   commit is timed too), then N x ``save -o FILE`` of it and N x (``rmi``, then ``load -i FILE``
   of that archive): wall times;
4. removes all it made: containers, images, both daemons (by PID), the temp dir; checks that no
   mount is left under it. Nothing is signalled by name.

Both engines are driven by the same client, the docker CLI (``-H`` each daemon's socket), so the
figures compare the daemons. Run as root from the repository:
``.venv/bin/python bench/images_bench.py`` (``-n 3`` by default; ``--quick`` for n=1).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import common  # noqa: E402  (bench/common.py)

peers, rb = common.import_peers()  # (tests/peers.py: the private dockerd, and run_bench's helpers as peers.rb)
log = common.log

WRITE_50 = "mkdir -p /data && for i in $(seq 1 10); do dd if=/dev/urandom of=/data/f$i bs=1M count=5 2>/dev/null; done"
WRITE_100 = "mkdir -p /data && for i in $(seq 1 20); do dd if=/dev/urandom of=/data/f$i bs=1M count=5 2>/dev/null; done"


class Eng:
    """One engine, driven by the docker CLI."""

    def __init__(self, name: str, cli: str, host: str, run_extra: list[str]) -> None:
        self.name, self.cli, self.host, self.run_extra = name, cli, host, run_extra
        self.containers: set[str] = set()
        self.images: list[str] = []
        self.failures: list[str] = []

    def __call__(self, *args: str, timeout: float = 600, check: bool = True) -> tuple[float, str]:
        argv = [self.cli, "-H", self.host, *args]
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            msg = f"{self.name}: docker {' '.join(args)} -> exit {p.returncode}: {p.stderr.strip()[:500]}"
            self.failures.append(msg)
            if check:
                raise RuntimeError(msg)
        return dt, p.stdout

    def run_writer(self, name: str, script: str) -> str:
        _, out = self("run", "--name", name, *self.run_extra, "busybox", "sh", "-c", script)
        self.containers.add(name)
        return name

    def rm(self, name: str) -> None:
        self("rm", "-f", name)
        self.containers.discard(name)

    def clean(self) -> None:
        if self.containers:
            self("rm", "-f", *sorted(self.containers), check=False)
            self.containers.clear()
        for ref in reversed(self.images):
            self("rmi", "-f", ref, check=False)
        self.images.clear()


def fmt(x: float) -> str:
    return f"{x:7.2f} s"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=3, help="repetitions of each timed operation (default 3)")
    ap.add_argument("--quick", action="store_true", help="n=1")
    args = ap.parse_args()
    n = 1 if args.quick else args.n
    if not common.is_root("images_bench.py"):
        return 2

    base, cleanup = common.temp_dir("ib-")

    engines: list[Eng] = []
    with common.Run(cleanup, base, lambda: [f for e in engines for f in e.failures],
                    "ok (containers and images removed, daemons stopped, no mounts, temp dir gone)") as run:
        tar = rb.make_busybox_tar(base / "busybox.tar")
        cli = rb.docker_cli_path()
        log(f"temp dir {base}; starting berthd")
        beng, _ = rb.start_berthd(base / "b", tar, cleanup, None)  # imports busybox:latest
        b = Eng("berth", cli, f"unix://{beng.api_sock}", [])
        cleanup.add("remove berth containers and images", b.clean)
        log("starting a private peer dockerd")
        peer = peers.start_peer(tar, base / "d")  # imports busybox:latest, checks that run works

        def stop_peer() -> None:
            problems = peer.stop()
            if problems:
                raise RuntimeError("; ".join(problems))
        cleanup.add("stop the peer dockerd", stop_peer)
        d = Eng("docker", cli, peer.host, ["--network", "none"])
        cleanup.add("remove docker containers and images", d.clean)
        engines = [b, d]
        log(f"peer docker {peer.version} (pid {peer.pid})")

        def order(i: int) -> list[Eng]:
            return engines if i % 2 == 0 else engines[::-1]

        commit50: dict[str, list[float]] = {"berth": [], "docker": []}
        log(f"commit of a container with 50 MB of new files, x{n} per engine")
        for i in range(n):
            for e in order(i):
                c = e.run_writer(f"w50-{i}", WRITE_50)
                dt, _ = e("commit", c, f"bench/c50:{i}")
                e.images.append(f"bench/c50:{i}")
                commit50[e.name].append(dt)
                e.rm(c)
                e("rmi", f"bench/c50:{i}")
                e.images.remove(f"bench/c50:{i}")

        log("a 100 MB image per engine (commit of 20 x 5 MB)")
        commit100: dict[str, float] = {}
        sizes: dict[str, int] = {}
        archives: dict[str, Path] = {}
        for e in engines:
            c = e.run_writer("w100", WRITE_100)
            dt, _ = e("commit", c, "bench/img100:1")
            e.images.append("bench/img100:1")
            commit100[e.name] = dt
            e.rm(c)
            _, out = e("image", "inspect", "--format", "{{.Size}}", "bench/img100:1")
            sizes[e.name] = int(out.strip())

        save: dict[str, list[float]] = {"berth": [], "docker": []}
        log(f"save -o FILE of the 100 MB image, x{n} per engine")
        for i in range(n):
            for e in order(i):
                f = base / f"{e.name}-img100.tar"
                if f.exists():
                    f.unlink()
                dt, _ = e("save", "-o", str(f), "bench/img100:1")
                save[e.name].append(dt)
                archives[e.name] = f

        load: dict[str, list[float]] = {"berth": [], "docker": []}
        log(f"rmi, then load -i FILE of that archive, x{n} per engine")
        for i in range(n):
            for e in order(i):
                e("rmi", "bench/img100:1")
                dt, _ = e("load", "-i", str(archives[e.name]))
                load[e.name].append(dt)

        # Cross-check (not timed): each engine loads the other's archive, same image ID.
        xid = {}
        for e, other in ((b, d), (d, b)):
            e("tag", "bench/img100:1", "bench/own:1")
            e.images.append("bench/own:1")
            e("rmi", "bench/img100:1")
            e("load", "-i", str(archives[other.name]))
            _, out = e("image", "inspect", "--format", "{{.Id}}", "bench/img100:1")
            xid[e.name] = out.strip()
        _, bid = b("image", "inspect", "--format", "{{.Id}}", "bench/own:1")
        _, did = d("image", "inspect", "--format", "{{.Id}}", "bench/own:1")

        print()
        print(f"Berth vs Docker {peer.version} (private dockerd, overlay2), the docker CLI "
              f"{cli} against each daemon; wall time of the CLI command, n={n}")
        print()
        w = 44
        print(f"{'':{w}} {'berth':>10} {'docker':>10} {'berth/docker':>13}")

        def row(label: str, bv: float, dv: float) -> None:
            print(f"{label:{w}} {fmt(bv):>10} {fmt(dv):>10} {bv / dv if dv else float('nan'):13.2f}")

        row("commit, 50 MB of new files  median", statistics.median(commit50["berth"]),
            statistics.median(commit50["docker"]))
        row("commit, 50 MB of new files  min", min(commit50["berth"]), min(commit50["docker"]))
        row("commit, 100 MB of new files (once)", commit100["berth"], commit100["docker"])
        row("save -o FILE, ~100 MB image  median", statistics.median(save["berth"]),
            statistics.median(save["docker"]))
        row("save -o FILE, ~100 MB image  min", min(save["berth"]), min(save["docker"]))
        row("load -i FILE (image absent)  median", statistics.median(load["berth"]),
            statistics.median(load["docker"]))
        row("load -i FILE (image absent)  min", min(load["berth"]), min(load["docker"]))
        print()
        print(f"image Size: berth {sizes['berth']:,} B, docker {sizes['docker']:,} B; archive: "
              f"berth {archives['berth'].stat().st_size:,} B, docker {archives['docker'].stat().st_size:,} B")
        print(f"cross-loads: docker's archive in berth -> {xid['berth'][:19]} (docker's image {did.strip()[:19]}); "
              f"berth's archive in docker -> {xid['docker'][:19]} (berth's image {bid.strip()[:19]})")
        print()
        print("Raw times (s):")
        for label, series in (("commit 50 MB", commit50), ("save", save), ("load", load)):
            for name in ("berth", "docker"):
                print(f"  {label:13} {name:6} " + " ".join(f"{x:.2f}" for x in series[name]))
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
