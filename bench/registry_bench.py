#!/usr/bin/env python3
"""Berth vs Docker: push to and pull from a registry on loopback (issue 4), side by side. It
prints figures; it asserts nothing.

One run:

1. builds a ~100 MB Debian image: ``debootstrap --variant=minbase bookworm DIR <mirror>`` (the
   mirror apt is configured with), without apt's downloaded .debs and package lists, tarred
   (``--rootfs-tar FILE`` uses a ready tar instead; if debootstrap cannot run, a rootfs of
   ~100 MB of this machine's /usr is made instead, and the report says so);
2. starts its own berthd and a private peer dockerd (tests/peers.py: ``unshare --net --mount``),
   and imports the tar into both (the same single layer, the same diff ID);
3. n times per engine, engines taking turns, each time from cold:
   * push: the image imported afresh (untimed), then ``push`` to a registry with empty storage:
     Debian's reference registry (``docker-registry``), a new instance per push, for docker
     inside the peer's network namespace (``nsenter --net``), for Berth in the host's;
   * pull: ``rmi`` of every tag of the image, a check that the engine kept no layer (and, for
     Berth, no compressed blob), then ``pull`` of what was just pushed;
   wall time of the docker CLI command against each daemon (the same client for both), and the
   CPU time the daemon used meanwhile (user + system, its reaped children included);
4. profiles Berth (py-spy attached to berthd) over one more push and pull, and prints where its
   samples fall (hottest lines, and which part of the work they are);
5. removes all it made: images, registries (by PID), both daemons (by PID), the temp dir.

MB/s = uncompressed image size (the layer tar's bytes) / wall time; ratio = berth / docker.
Run as root from the repository: ``.venv/bin/python bench/registry_bench.py`` (``-n 5`` by
default; ``--quick`` for n=1; ``--no-profile`` skips step 4).
"""

from __future__ import annotations

import argparse
import collections
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import common  # noqa: E402  (bench/common.py)

peers, rb = common.import_peers()  # (tests/peers.py: the private dockerd, registries, run_bench's helpers)
log = common.log
IMAGE = "bench/deb:1"
MB = 1e6


# ---------------------------------------------------------------------------------------------
# The image


def apt_mirror() -> str:
    """The Debian mirror apt is configured with (deb822 .sources or a one-line sources.list)."""
    texts = []
    for f in ["/etc/apt/sources.list", *sorted(glob.glob("/etc/apt/sources.list.d/*.sources")),
              *sorted(glob.glob("/etc/apt/sources.list.d/*.list"))]:
        try:
            texts.append(Path(f).read_text())
        except OSError:
            continue
    for text in texts:
        for m in re.finditer(r"^\s*(?:URIs:\s*|deb\s+(?:\[[^]]*\]\s+)?)(\S+)", text, re.M):
            uri = m.group(1)
            if re.search(r"/debian/?$", uri):
                return uri
    return "http://deb.debian.org/debian"


def debootstrap_rootfs(root: Path) -> str:
    if not shutil.which("debootstrap"):
        p = subprocess.run(["apt-get", "install", "-y", "-q", "debootstrap"], capture_output=True, text=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if p.returncode != 0:
            raise RuntimeError(f"apt-get install debootstrap: {p.stderr[-500:]}")
    mirror = apt_mirror()
    log(f"debootstrap --variant=minbase bookworm {root} {mirror}")
    p = subprocess.run(["debootstrap", "--variant=minbase", "bookworm", str(root), mirror],
                       capture_output=True, text=True, timeout=1800)
    if p.returncode != 0:
        raise RuntimeError(f"debootstrap failed ({p.returncode}): {(p.stdout + p.stderr)[-800:]}")
    # What Debian's own container images leave out too: the downloaded .debs and package lists.
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*_Packages",
                    "var/lib/apt/lists/*Release*", "var/cache/apt/*.bin"):
        for f in glob.glob(str(root / pattern)):
            os.unlink(f)
    return f"debootstrap --variant=minbase bookworm {mirror}"


def host_usr_rootfs(root: Path, budget: int = 100 << 20) -> str:
    """The fallback: regular files and symlinks of this machine's /usr (bin, sbin, lib, share),
    in sorted order, until ~100 MB."""
    total = 0
    for top in ("/usr/bin", "/usr/sbin", "/usr/lib/x86_64-linux-gnu", "/usr/share"):
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                src = os.path.join(dirpath, name)
                dest = root / src.lstrip("/")
                try:
                    st = os.lstat(src)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    if os.path.islink(src):
                        os.symlink(os.readlink(src), dest)
                    elif os.path.isfile(src):
                        shutil.copy2(src, dest)
                        total += st.st_size
                except OSError:
                    continue
                if total >= budget:
                    return "fallback: ~100 MB of this machine's /usr (debootstrap could not run)"
    return "fallback: this machine's /usr (debootstrap could not run)"


def make_rootfs_tar(base: Path, out: Path) -> str:
    root = base / "rootfs"
    try:
        how = debootstrap_rootfs(root)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        log(f"debootstrap: {e}; using the fallback")
        for mp in sorted(rb.mounts_under(str(root)), key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        how = host_usr_rootfs(root)
    left = rb.mounts_under(str(root))
    if left:
        raise RuntimeError(f"mounts left in the rootfs by debootstrap: {left}")
    # GNU format, as Go's archive/tar writes layers: a PAX header only where a field needs one
    # (posix format would add atime/ctime PAX records to every member).
    subprocess.run(["tar", "--format=gnu", "--numeric-owner", "-C", str(root), "-cf", str(out), "."], check=True)
    shutil.rmtree(root)
    return how


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Engines, driven by the docker CLI


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime of PID (reaped children included), in seconds."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return 0.0
    fields = data[data.rfind(b")") + 2:].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


class Eng:
    def __init__(self, name: str, cli: str, host: str, pid: int, netns_argv: list[str]) -> None:
        self.name, self.cli, self.host, self.pid, self.netns_argv = name, cli, host, pid, netns_argv
        self.images: set[str] = set()
        self.failures: list[str] = []

    def __call__(self, *args: str, timeout: float = 1200, check: bool = True) -> tuple[float, float, str]:
        """(wall s, daemon CPU s, stdout)."""
        argv = [self.cli, "-H", self.host, *args]
        env = {k: v for k, v in os.environ.items() if k not in ("DOCKER_HOST", "DOCKER_CONTEXT")}
        env["DOCKER_CONFIG"] = str(Path(self.host[len("unix://"):]).parent / "docker-config")
        os.sync()  # writeback of earlier work (a previous pull, an import) stays out of the timing
        c0 = cpu_seconds(self.pid)
        t0 = time.perf_counter()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        dt = time.perf_counter() - t0
        cpu = cpu_seconds(self.pid) - c0
        if p.returncode != 0:
            msg = f"{self.name}: docker {' '.join(args)} -> exit {p.returncode}: {p.stderr.strip()[:500]}"
            self.failures.append(msg)
            if check:
                raise RuntimeError(msg)
        return dt, cpu, p.stdout

    def rmi(self, *refs: str) -> None:
        self("rmi", *refs)
        self.images.difference_update(refs)

    def clean(self) -> None:
        if self.images:
            self("rmi", "-f", *sorted(self.images), check=False)
            self.images.clear()


class Registries:
    """A fresh reference registry per push, one engine each (the peer's in its namespace)."""

    def __init__(self, base: Path, peer: peers.PeerDocker) -> None:
        self.base, self.peer = base, peer
        self.current: dict[str, peers.Registry] = {}
        self.count = 0

    def fresh(self, engine: str) -> peers.Registry:
        self.stop(engine)
        self.count += 1
        root = self.base / f"reg-{engine}-{self.count}"
        if engine == "docker":
            reg = peers.start_registry("reference", root, self.peer, port=5000)
        else:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            reg = peers.start_registry("reference", root, None, port=port)
        self.current[engine] = reg
        return reg

    def stop(self, engine: str) -> None:
        reg = self.current.pop(engine, None)
        if reg is not None:
            reg.stop()
            shutil.rmtree(reg.root, ignore_errors=True)

    def stop_all(self) -> None:
        for engine in list(self.current):
            self.stop(engine)


def registry_layer_digest(reg: peers.Registry, repo: str, tag: str) -> str:
    """The (one) layer digest of what the reference registry stores under repo:tag."""
    v2 = reg.root / "storage" / "docker" / "registry" / "v2"
    link = (v2 / "repositories" / repo / "_manifests" / "tags" / tag / "current" / "link").read_text().strip()
    h = link.split(":", 1)[1]
    manifest = json.loads((v2 / "blobs" / "sha256" / h[:2] / h / "data").read_bytes())
    return manifest["layers"][0]["digest"]


def leftovers(e: Eng, data_root: Path, diff_id: str, blob: str) -> list[str]:
    """What of the image the engine still keeps after rmi (a cold pull needs none of it)."""
    out = []
    h = diff_id.split(":", 1)[1]  # one layer: chain id = diff id
    if e.name == "docker":
        if (data_root / "image" / "overlay2" / "layerdb" / "sha256" / h).exists():
            out.append(f"docker layerdb/{h[:12]}")
    else:
        if (data_root / "layers" / h).exists():
            out.append(f"berth layers/{h[:12]}")
        b = blob.split(":", 1)[1]
        if (data_root / "content" / "blobs" / "sha256" / b).exists():
            out.append(f"berth content blob {b[:12]}")
    return out


# ---------------------------------------------------------------------------------------------
# Profile


CATEGORIES = [  # (label, regex on the leaf frame "function (file:line)"); the first match wins.
    # A C call (decompression, hashing, a syscall) shows as the Python line that made it.
    ("gzip decompression (ISA-L, GIL released)",
     r"GzipFile\.read \(gzip\.py|igzip|_compression\.py|HashingReader\.read \(.*archive\.py:101\)"),
    ("sha256 of the uncompressed tar (diff id)", r"HashingReader\.read \(.*archive\.py:102\)"),
    ("gzip compression (ISA-L)", r"gzip_file \(.*push\.py:61\)|compressobj"),
    ("sha256 of the compressed blob", r"gzip_file \(.*push\.py:6[24]\)|BlobWriter\.write \(.*store\.py:92\)|hashlib"),
    ("reading the layer tar", r"gzip_file \(.*push\.py:60\)|_layer_tar|layers/diff\.py"),
    ("temp/blob file writes", r"gzip_file \(.*push\.py:6[35]\)|content/store\.py|Spool\.|pull\.py:1[3-6]\d"),
    ("tar parsing (tarfile, Python)", r"tarfile\.py|unpack_layer \(.*archive\.py:321\)"),
    ("unpack: file create (open O_CREAT)", r"_create \(.*archive\.py:243\)"),
    ("unpack: file data copy + write()", r"_create \(.*archive\.py:(24[4-9]|25\d)\)|_write_all"),
    ("unpack: other syscalls (stat/mkdir/symlink/chown/chmod/utime/xattr/dir fds)",
     r"archive\.py|SpoolReader"),
    # py-spy's idle detection misses these two: blocked, not on the CPU.
    ("idle: event loop waiting in epoll", r"EpollSelector\.select"),
    ("idle: thread-pool worker waiting for work", r"_worker \(concurrent/futures/thread\.py:81\)"),
    ("HTTP (aiohttp, sockets, event loop)", r"aiohttp|asyncio|selectors|socket|transport\.py|multidict|yarl"),
    ("threads handing work over (to_thread, futures)", r"concurrent/futures|threading\.py|queue\.py"),
]


def profile_berth(e: Eng, berthd_pid: int, out: Path, args: list[str]) -> tuple[float, Path]:
    """py-spy record on berthd over one CLI command; returns (wall s, raw collapsed stacks)."""
    spy = shutil.which("py-spy") or str(REPO / ".venv" / "bin" / "py-spy")
    if not os.path.exists(spy):
        raise RuntimeError("py-spy not found (.venv/bin/pip install py-spy)")
    with open(out.with_suffix(".log"), "wb") as logf:
        proc = subprocess.Popen([spy, "record", "-p", str(berthd_pid), "-r", "200", "-f", "raw",
                                 "--threads", "-o", str(out)], stdout=logf, stderr=logf,
                                stdin=subprocess.DEVNULL)
    try:
        time.sleep(1.0)  # py-spy attaches
        dt, _, _ = e(*args)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    return dt, out


def summarize_profile(raw: Path, top: int = 12) -> list[str]:
    """Hottest leaf frames (self samples) and the samples per category, from py-spy's raw
    (collapsed) output: ``frame;frame;...;leaf count``, root first."""
    leaf: collections.Counter[str] = collections.Counter()
    cats: collections.Counter[str] = collections.Counter()
    threads: collections.Counter[str] = collections.Counter()
    total = 0
    try:
        lines = raw.read_text().splitlines()
    except OSError as e:
        return [f"(no profile: {e})"]
    for line in lines:
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        count = int(n)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        frames = [f for f in frames[1:] if f]
        if not frames:
            continue
        lf = frames[-1]
        leaf[lf] += count
        for label, rx in CATEGORIES:
            if re.search(rx, lf):
                cats[label] += count
                break
        else:
            cats["other: " + lf] += count
    out = [f"{total} samples at 200 Hz over {len(threads)} thread(s)"]
    out.append("  hottest leaf frames (self samples):")
    for f, c in leaf.most_common(top):
        out.append(f"    {100 * c / total:5.1f}%  {f}")
    out.append("  by category (leaf frame):")
    for label, c in cats.most_common(top):
        out.append(f"    {100 * c / total:5.1f}%  {label}")
    return out


# ---------------------------------------------------------------------------------------------
# The same work, piece by piece, outside the daemon (no HTTP, no event loop, no progress)


def fs_type(path: Path) -> str:
    p = subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", str(path)], capture_output=True, text=True)
    return (p.stdout.split() or ["?"])[0]


def decompose(tar: Path, work: Path) -> list[tuple[str, float]]:
    """Times Berth's own building blocks on the image, one at a time, in this process: what a
    push and a pull are made of, without the network. Page cache warm (the tar was just read)."""
    import tarfile

    sys.path.insert(0, str(REPO))
    from isal import igzip

    from berth.layers.archive import unpack_layer
    from berth.registry.client.push import GZIP_LEVEL, gzip_file

    out: list[tuple[str, float]] = []

    def timed(label: str, fn) -> object:
        os.sync()
        t0 = time.perf_counter()
        r = fn()
        out.append((label, time.perf_counter() - t0))
        return r

    def read_all(f, n: int = 1 << 20) -> None:
        while f.read(n):
            pass

    def sha(path: Path) -> None:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)

    work.mkdir(parents=True, exist_ok=True)
    timed("read the layer tar (page cache)", lambda: read_all(open(tar, "rb")))
    timed("sha256 of the layer tar", lambda: sha(tar))
    with open(tar, "rb") as f:
        blob, _, _ = timed(f"push: gzip_file (ISA-L level {GZIP_LEVEL} + sha256 + temp file)",
                           lambda: gzip_file(f, str(work)))
    blob = Path(blob)
    timed("sha256 of the compressed blob", lambda: sha(blob))
    timed("pull: gzip decompression only (isal igzip)", lambda: read_all(igzip.open(blob, "rb")))

    def tar_walk() -> None:
        with open(tar, "rb") as f, tarfile.open(fileobj=f, mode="r|") as tf:
            for ti in tf:
                if ti.isreg():
                    read_all(tf.extractfile(ti))
    timed("pull: tarfile stream walk, member data read (plain tar)", tar_walk)
    shm = Path(tempfile.mkdtemp(prefix="rgb-", dir="/dev/shm")) if os.path.isdir("/dev/shm") else None
    try:
        for top in (work, shm):
            if top is None:
                continue
            where = fs_type(top)
            if top is shm and where == fs_type(work):
                continue
            d1 = top / "gnutar"
            d1.mkdir()
            timed(f"pull: GNU tar -xpf of the plain tar into {where} (C: the filesystem's part)",
                  lambda d1=d1: subprocess.run(["tar", "--numeric-owner", "-xpf", str(tar), "-C", str(d1)],
                                                 check=True))
            shutil.rmtree(d1)
            d2 = top / "unpack"
            d2.mkdir()
            with open(blob, "rb") as f:
                timed(f"pull: berth unpack_layer(gzip blob) into {where} (all of the above)",
                      lambda f=f, d2=d2: unpack_layer(f, str(d2)))
            shutil.rmtree(d2)
    finally:
        if shm is not None:
            shutil.rmtree(shm, ignore_errors=True)
    blob.unlink()
    return out


# ---------------------------------------------------------------------------------------------


def mbps(size: int, t: float) -> float:
    return size / MB / t if t else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=5, help="cold pushes and pulls per engine (default 5)")
    ap.add_argument("--quick", action="store_true", help="n=1")
    ap.add_argument("--rootfs-tar", type=Path, help="a ready rootfs tar instead of debootstrap")
    ap.add_argument("--keep-rootfs-tar", type=Path, help="copy the tar made by debootstrap here")
    ap.add_argument("--no-profile", action="store_true", help="skip the py-spy profile of Berth")
    ap.add_argument("--profile-dir", type=Path, help="keep py-spy's raw output here")
    ap.add_argument("--tmpfs", action="store_true",
                    help="mount a tmpfs on the temp dir: both data-roots and the registries in RAM, "
                         "the engines' own costs without the disk's")
    args = ap.parse_args()
    n = 1 if args.quick else args.n
    if not common.is_root("registry_bench.py"):
        return 2

    base, cleanup = common.temp_dir("rgb-")
    if args.tmpfs:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0755,size=8g", "rgb-bench", str(base)], check=True)

    engines: list[Eng] = []
    with common.Run(cleanup, base, lambda: [f for e in engines for f in e.failures],
                    "ok (images removed, registries and daemons stopped, no mounts, temp dir gone)") as run:
        tar = base / "rootfs.tar"
        if args.rootfs_tar:
            shutil.copy(args.rootfs_tar, tar)
            how = f"given: {args.rootfs_tar}"
        else:
            t0 = time.monotonic()
            how = make_rootfs_tar(base, tar)
            log(f"rootfs tar made in {time.monotonic() - t0:.0f}s ({how})")
            if args.keep_rootfs_tar:
                shutil.copy(tar, args.keep_rootfs_tar)
        size = tar.stat().st_size
        diff_id = sha256_file(tar)
        log(f"image: {size / MB:.1f} MB uncompressed, diff id {diff_id[:19]}")

        busybox = rb.make_busybox_tar(base / "busybox.tar")
        cli = rb.docker_cli_path()
        log(f"temp dir {base}; starting berthd")
        beng, bproc = rb.start_berthd(base / "b", busybox, cleanup, None)
        (base / "b" / "docker-config").mkdir()
        b = Eng("berth", cli, f"unix://{beng.api_sock}", bproc.pid, [])
        cleanup.add("remove berth images", b.clean)
        log("starting a private peer dockerd")
        peer = peers.start_peer(busybox, base / "d")

        def stop_peer() -> None:
            problems = peer.stop()
            if problems:
                raise RuntimeError("; ".join(problems))
        cleanup.add("stop the peer dockerd", stop_peer)
        (base / "d" / "docker-config").mkdir()
        d = Eng("docker", cli, peer.host, peer.pid, peer.netns_argv())
        cleanup.add("remove docker images", d.clean)
        engines = [b, d]
        data_roots = {"berth": base / "b" / "data", "docker": peer.data_root}
        regs = Registries(base / "regs", peer)
        cleanup.add("stop the registries", regs.stop_all)
        log(f"peer docker {peer.version} (pid {peer.pid}); berthd pid {bproc.pid}")

        push: dict[str, list[tuple[float, float]]] = {"berth": [], "docker": []}
        pull: dict[str, list[tuple[float, float]]] = {"berth": [], "docker": []}
        imp: dict[str, list[float]] = {"berth": [], "docker": []}
        compressed: dict[str, int] = {}
        not_cold: list[str] = []
        for i in range(n):
            for e in (engines if i % 2 == 0 else engines[::-1]):
                dt, _, _ = e("import", str(tar), IMAGE)
                e.images.add(IMAGE)
                imp[e.name].append(dt)
                _, _, out = e("image", "inspect", "-f", "{{json .RootFS.Layers}}", IMAGE)
                if json.loads(out) != [diff_id]:
                    raise RuntimeError(f"{e.name}: imported layers {out.strip()} != [{diff_id}]")
                reg = regs.fresh(e.name)
                ref = f"{reg.addr}/bench/deb:{i}"
                e("tag", IMAGE, ref)
                e.images.add(ref)
                log(f"[{i + 1}/{n}] {e.name}: push {ref} (cold)")
                push[e.name].append(e("push", ref)[:2])
                blob = registry_layer_digest(reg, "bench/deb", str(i))
                compressed[e.name] = (reg.root / "storage" / "docker" / "registry" / "v2" / "blobs" / "sha256"
                                      / blob[7:9] / blob[7:] / "data").stat().st_size
                e.rmi(IMAGE, ref)
                left = leftovers(e, data_roots[e.name], diff_id, blob)
                if left:
                    not_cold.append(f"{e.name} pull {i + 1}: {', '.join(left)} kept after rmi")
                log(f"[{i + 1}/{n}] {e.name}: pull {ref} (cold)")
                pull[e.name].append(e("pull", ref)[:2])
                e.images.add(ref)
                e.rmi(ref)

        profile_lines: dict[str, list[str]] = {}
        profile_walls: dict[str, float] = {}
        if not args.no_profile:
            pdir = args.profile_dir or base / "profile"
            pdir.mkdir(parents=True, exist_ok=True)
            log("profiling berthd (py-spy) over one more push and pull")
            b("import", str(tar), IMAGE)
            b.images.add(IMAGE)
            reg = regs.fresh("berth")
            ref = f"{reg.addr}/bench/deb:prof"
            b("tag", IMAGE, ref)
            b.images.add(ref)
            profile_walls["push"], raw = profile_berth(b, bproc.pid, pdir / "push.txt", ["push", ref])
            profile_lines["push"] = summarize_profile(raw)
            b.rmi(IMAGE, ref)
            profile_walls["pull"], raw = profile_berth(b, bproc.pid, pdir / "pull.txt", ["pull", ref])
            b.images.add(ref)
            profile_lines["pull"] = summarize_profile(raw)
            b.rmi(ref)
        regs.stop_all()
        log("the same work piece by piece, outside the daemon")
        pieces = decompose(tar, base / "decompose")

        print()
        print(f"Berth vs Docker {peer.version} (private dockerd, overlay2): push to / pull from Debian's "
              f"reference registry on 127.0.0.1 (a fresh one per push; docker's in its network namespace)")
        print(f"storage: the temp dir {base} is on {fs_type(base)} (data-roots, registries, unpacks)")
        print(f"image: one layer, {size:,} B uncompressed ({size / MB:.1f} MB; {how})")
        print(f"compressed layer as pushed: berth {compressed['berth']:,} B, docker {compressed['docker']:,} B")
        print(f"client: the docker CLI {cli} against each daemon; wall time of the command, n={n}; "
              f"MB/s = {size / MB:.1f} MB / wall time; CPU = the daemon's user+sys (children included)")
        print()
        w = 30
        print(f"{'':{w}} {'berth':>16} {'docker':>16} {'berth/docker':>13}")

        def row(label: str, series: dict[str, list[tuple[float, float]]], pick) -> None:
            bv = pick([x[0] for x in series["berth"]])
            dv = pick([x[0] for x in series["docker"]])
            print(f"{label:{w}} {bv:7.2f} s {mbps(size, bv):5.1f} MB/s {dv:7.2f} s {mbps(size, dv):5.1f} MB/s "
                  f"{mbps(size, bv) / mbps(size, dv):9.2f}x speed")

        row("push, cold  median", push, statistics.median)
        row("push, cold  best", push, min)
        row("pull, cold  median", pull, statistics.median)
        row("pull, cold  best", pull, min)
        print()
        print("targets of issue 4: pull >= 2x docker's MB/s, push >= 3x")
        for label, series, target in (("push", push, 3.0), ("pull", pull, 2.0)):
            ratio = statistics.median([x[0] for x in series["docker"]]) / statistics.median(
                [x[0] for x in series["berth"]])
            print(f"  {label}: berth at {ratio:.2f}x docker's MB/s (median) -> "
                  f"{'met' if ratio >= target else 'NOT met'} (target {target:.0f}x)")
        print()
        print("Daemon CPU per operation (s, median) and CPU/wall:")
        for label, series in (("push", push), ("pull", pull)):
            for name in ("berth", "docker"):
                wall = statistics.median([x[0] for x in series[name]])
                cpu = statistics.median([x[1] for x in series[name]])
                print(f"  {label} {name:6} {cpu:6.2f} s CPU  ({cpu / wall:.2f} cores busy on average)")
        print()
        print("Raw times (s, wall/cpu):")
        for label, series in (("push", push), ("pull", pull)):
            for name in ("berth", "docker"):
                print(f"  {label} {name:6} " + "  ".join(f"{w_:.2f}/{c:.2f}" for w_, c in series[name]))
        print(f"  import (untimed setup) berth {' '.join(f'{x:.2f}' for x in imp['berth'])}, "
              f"docker {' '.join(f'{x:.2f}' for x in imp['docker'])}")
        print("Cold pulls:", "yes, no layer or blob left after rmi on either engine" if not not_cold
              else "NOT all: " + "; ".join(not_cold))
        print()
        print("Berth's building blocks on this image, one at a time in one process (no HTTP):")
        for label, t in pieces:
            print(f"  {label:74} {t:6.2f} s  {mbps(size, t):7.1f} MB/s")
        for label in ("push", "pull"):
            if label in profile_lines:
                print()
                print(f"Profile of berthd, {label} (py-spy, one more run: {profile_walls[label]:.2f} s "
                      f"wall with the sampler attached):")
                for line in profile_lines[label]:
                    print("  " + line)
    return run.rc


if __name__ == "__main__":
    sys.exit(main())
