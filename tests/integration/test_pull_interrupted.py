"""Issue 4: "A pull interrupted at any point (network error, daemon killed) leaves no half image;
a retried pull reuses completed layers."

Each test starts its own berthd (own data-root; it may be killed) and a fake registry: an aiohttp
app on 127.0.0.1 in a thread, serving one Docker schema2 image of three gzip layers (the busybox
rootfs, then two layers holding a ~5 MB random file each) and misbehaving on demand: stalling a
blob after 64 KiB, dropping the connection mid-blob, or serving other bytes than the digest says.
The docker CLI talks to berthd.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import os
import queue
import shutil
import signal
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from conftest import REPO, Berth, Daemon, start_daemon, stop_daemon

from berth.layers.store import chain_id
from berth.registry.client.pull import RETRIES, host_platform
from berth.registry.client.push import manifest_bytes

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
STALL_AFTER = 64 << 10
RANDOM_SIZE = 5 << 20


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


# -- the image ---------------------------------------------------------------------------------
@dataclass
class Image:
    tars: list[bytes]
    blobs: list[bytes]
    config: bytes
    manifest: bytes
    files: dict[str, bytes]  # the random files of layers 2 and 3

    @property
    def digests(self) -> list[str]:
        return [sha(b) for b in self.blobs]

    @property
    def chains(self) -> list[str]:
        out, parent = [], None
        for diff_id in self.diff_ids:
            parent = chain_id([parent, diff_id]) if parent else diff_id
            out.append(parent)
        return out

    @property
    def diff_ids(self) -> list[str]:
        return json.loads(self.config)["rootfs"]["diff_ids"]


@pytest.fixture(scope="module")
def busybox_gz(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    from berth.images.rootfs import make_busybox_rootfs_tar

    path = make_busybox_rootfs_tar(tmp_path_factory.mktemp("pullrootfs") / "busybox.tar")
    raw = path.read_bytes()
    return raw, gzip.compress(raw, compresslevel=1, mtime=0)


def make_image(busybox_gz: tuple[bytes, bytes], wrong_diff_id: int | None = None) -> Image:
    """Busybox rootfs + /l2.bin + /l3.bin (random, so every image is new to every daemon)."""
    files = {"l2.bin": os.urandom(RANDOM_SIZE), "l3.bin": os.urandom(RANDOM_SIZE)}
    tars = [busybox_gz[0], tar_of({"l2.bin": files["l2.bin"]}), tar_of({"l3.bin": files["l3.bin"]})]
    blobs = [busybox_gz[1]] + [gzip.compress(t, compresslevel=1, mtime=0) for t in tars[1:]]
    diff_ids = [sha(t) for t in tars]
    if wrong_diff_id is not None:
        diff_ids[wrong_diff_id] = sha(b"not this layer")
    os_, arch, variant = host_platform()
    cfg = {"architecture": arch, "os": os_, **({"variant": variant} if variant else {}),
           "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
           "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config = json.dumps(cfg).encode()
    manifest = manifest_bytes(sha(config), len(config), [{"digest": sha(b), "size": len(b)} for b in blobs])
    return Image(tars, blobs, config, manifest, files)


# -- the fake registry ---------------------------------------------------------------------------
class FakeRegistry:
    """Serves ``image`` as ``bt/<name>:1`` on 127.0.0.1 from a thread.

    Misbehaviour, per layer index: ``stall`` writes 64 KiB and then waits while the index stays
    in ``stall``; ``cuts[i]`` > 0 drops the connection halfway through what is left of the blob
    (and decrements); ``corrupt`` serves the blob with one byte flipped (same size).
    """

    def __init__(self, image: Image, name: str):
        self.image, self.name = image, name
        self.stall: set[int] = set()
        self.cuts: dict[int, int] = {}
        self.corrupt: set[int] = set()
        self.blob_gets: list[tuple[int, str]] = []  # (layer index, Range header)
        self.closing = False
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_forever, name="fake-registry", daemon=True)

    @property
    def ref(self) -> str:
        return f"127.0.0.1:{self.port}/bt/{self.name}:1"

    def gets(self, i: int) -> list[str]:
        return [rng for j, rng in self.blob_gets if j == i]

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/v2/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    def stop(self) -> None:
        self.closing = True
        if self.runner is not None:
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        tail = request.match_info["tail"]
        img = self.image
        if tail == "":
            return web.json_response({})
        if tail in (f"bt/{self.name}/manifests/1", f"bt/{self.name}/manifests/{sha(img.manifest)}"):
            headers = {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": sha(img.manifest)}
            if request.method == "HEAD":
                return web.Response(headers={**headers, "Content-Length": str(len(img.manifest))})
            return web.Response(body=img.manifest, headers=headers)
        if tail.startswith(f"bt/{self.name}/blobs/"):
            digest = tail.rsplit("/", 1)[1]
            if digest == sha(img.config):
                return web.Response(body=img.config)
            for i, blob in enumerate(img.blobs):
                if digest == sha(blob):
                    if request.method == "HEAD":
                        return web.Response(headers={"Content-Length": str(len(blob))})
                    return await self.blob(request, i, blob)
            return web.json_response({"errors": [{"code": "BLOB_UNKNOWN", "message": "blob unknown"}]},
                                     status=404)
        return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                 status=404)

    async def blob(self, request: web.Request, i: int, blob: bytes) -> web.StreamResponse:
        rng = request.headers.get("Range", "")
        self.blob_gets.append((i, rng))
        if i in self.corrupt:
            mid = len(blob) // 2
            blob = blob[:mid] + bytes([blob[mid] ^ 0xFF]) + blob[mid + 1:]
        start = int(rng[6:].split("-")[0]) if rng.startswith("bytes=") else 0
        resp = web.StreamResponse(status=206 if start else 200)
        resp.content_length = len(blob) - start
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(blob) - 1}/{len(blob)}"
        await resp.prepare(request)
        body = blob[start:]
        if self.cuts.get(i, 0) > 0:
            self.cuts[i] -= 1
            await resp.write(body[: len(body) // 2])
            await asyncio.sleep(0.05)
            request.transport.close()  # type: ignore[union-attr]
            return resp
        if i in self.stall:
            await resp.write(body[:STALL_AFTER])
            body = body[STALL_AFTER:]
            while i in self.stall and not self.closing:
                if request.transport is None or request.transport.is_closing():
                    return resp
                await asyncio.sleep(0.05)
        await resp.write(body)
        await resp.write_eof()
        return resp


# -- daemons -------------------------------------------------------------------------------------
@dataclass
class Own:
    base: Path
    daemon: Daemon
    strays: list[int] = field(default_factory=list)  # fork servers of killed daemons

    @property
    def b(self) -> Berth:
        return Berth(self.daemon)

    @property
    def data(self) -> Path:
        return self.daemon.data_root


@pytest.fixture
def own() -> Iterator[Own]:
    base = Path(tempfile.mkdtemp(prefix="btp-", dir="/tmp"))
    o = Own(base, start_daemon(base))
    yield o
    try:
        stop_daemon(o.daemon)
    finally:
        for pid in o.strays:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def registry_factory() -> Iterator:
    started: list[FakeRegistry] = []

    def make(image: Image, name: str) -> FakeRegistry:
        reg = FakeRegistry(image, name)
        reg.start()
        started.append(reg)
        return reg

    yield make
    for reg in started:
        reg.stop()


def _alive(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid:
            out.append(int(entry.name))
    return out


def _wait(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


# -- looking at the data-root --------------------------------------------------------------------
def listing(d: Path) -> list[str]:
    return sorted(os.listdir(d)) if d.is_dir() else []


def layer_dirs(data: Path) -> list[str]:
    return [n for n in listing(data / "layers") if n not in ("tmp", "l")]


def image_records(data: Path) -> list[str]:
    return [n for n in listing(data / "images") if len(n) == 64]


def refs(data: Path) -> dict[str, str]:
    p = data / "images" / "repositories.json"
    if not p.exists():
        return {}
    return dict(json.loads(p.read_text()).get("refs", {}))


def hexs(digests: list[str]) -> list[str]:
    return [d.split(":", 1)[1] for d in digests]


def images_table(b: Berth) -> str:
    r = b.docker("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert r.returncode == 0, r.stderr
    return r.stdout


def assert_no_half_image(data: Path, img: Image, ref_name: str, b: Berth) -> None:
    """No image, no tag, no temp files; every layer directory left is a complete one."""
    assert ref_name not in images_table(b)
    assert sha(img.config).split(":")[1] not in image_records(data)
    assert not [r for r in refs(data) if r.startswith(ref_name)]
    assert listing(data / "content" / "ingest") == []
    assert listing(data / "layers" / "tmp") == []
    for name in layer_dirs(data):
        assert (data / "layers" / name / "meta.json").is_file(), f"half layer {name} left"


def statuses(output: str) -> dict[str, list[str]]:
    """docker pull's non-tty output → {short id: [statuses]}."""
    out: dict[str, list[str]] = {}
    for line in output.splitlines():
        ident, sep, status = line.partition(": ")
        if sep and len(ident) == 12:
            out.setdefault(ident, []).append(status.strip())
    return out


def pull(b: Berth, ref: str, timeout: float = 60):
    return b.docker("pull", ref, timeout=timeout)


# -- 1. the daemon killed mid-pull ---------------------------------------------------------------
def test_daemon_killed_mid_pull_leaves_no_half_image(own: Own, registry_factory, busybox_gz):
    img = make_image(busybox_gz)
    reg = registry_factory(img, "slow")
    reg.stall.add(2)
    data = own.data
    berthd = own.daemon.proc.pid
    lines: queue.Queue[str | None] = queue.Queue()
    cli = subprocess.Popen(["docker", "-H", own.daemon.host, "pull", reg.ref], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
                           env=own.daemon.env(), cwd=REPO)

    def read() -> None:
        assert cli.stdout is not None
        for line in cli.stdout:
            lines.put(line)
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    try:
        want = {f"{short(img.digests[0])}: Pull complete", f"{short(img.digests[1])}: Pull complete"}
        deadline = time.monotonic() + 30
        while want - {s.strip() for s in seen}:
            assert time.monotonic() < deadline, f"layers 1-2 not complete: {seen}"
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            assert line is not None, f"pull ended early: {seen}"
            seen.append(line)
        # Layer 3 is stalled after 64 KiB: its blob is in ingest, and its extraction has begun.
        assert _wait(lambda: listing(data / "content" / "ingest") != [], 5)
        assert _wait(lambda: listing(data / "layers" / "tmp") != [], 5), "layer 3 never started unpacking"
        assert all((data / "layers" / h).is_dir() for h in hexs(img.chains[:2]))
        forkservers = [p for p in _children(berthd)
                       if b"berth.containers.forkserver" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(forkservers) == 1, forkservers
        own.strays += forkservers

        os.kill(berthd, signal.SIGKILL)
        own.daemon.proc.wait(10)
        cli.wait(30)
        assert cli.returncode != 0
        # The fork server exits by itself once berthd's end of its socket is closed.
        assert _wait(lambda: not _alive(forkservers[0]), 5), "fork server outlived the killed berthd"
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()
        reader.join(5)
        if cli.stdout:
            cli.stdout.close()

    # What the killed daemon left on disk: completed layers 1-2, a temp blob, a half-unpacked layer.
    left = {"layers": layer_dirs(data), "ingest": listing(data / "content" / "ingest"),
            "layers/tmp": listing(data / "layers" / "tmp")}
    assert left["ingest"] and left["layers/tmp"], left
    assert hexs([img.chains[2]])[0] not in left["layers"]

    os.unlink(own.daemon.sock)  # stale: start_daemon waits for the socket file to appear
    own.daemon = start_daemon(own.base)
    b = own.b
    ref_name = reg.ref.rsplit(":", 1)[0]
    assert_no_half_image(data, img, ref_name, b)
    assert image_records(data) == []
    assert refs(data) == {}
    assert hexs([img.chains[2]])[0] not in layer_dirs(data)
    blobs = listing(data / "content" / "blobs" / "sha256")
    assert hexs([img.digests[2]])[0] not in blobs
    after_restart = {"layers": layer_dirs(data), "blobs": blobs}

    # A retry after the restart, from a registry that now answers at once.
    reg.stall.clear()
    gets_before = {i: len(reg.gets(i)) for i in range(3)}
    r = pull(b, reg.ref)
    assert r.returncode == 0, r.stdout + r.stderr
    st = statuses(r.stdout)
    reused = [i for i in range(2) if "Already exists" in st.get(short(img.digests[i]), [])]
    refetched = [i for i in range(3) if len(reg.gets(i)) > gets_before[i]]
    print(f"\nafter SIGKILL: {left}\nafter restart: {after_restart}\n"
          f"retry: layers reused {reused}, blobs fetched again {refetched}")
    assert f"Status: Downloaded newer image for {reg.ref}" in r.stdout
    assert reused == [0, 1] and refetched == [2]  # completed layers survive the crash and are reused
    assert len(image_records(data)) == 1
    run = b.docker("run", "--rm", reg.ref, "md5sum", "/l2.bin", "/l3.bin")
    assert run.returncode == 0, run.stderr
    sums = dict(reversed(line.split()) for line in run.stdout.splitlines())
    assert sums == {f"/{k}": hashlib.md5(v).hexdigest() for k, v in img.files.items()}


# -- 2. the network drops mid-stream -------------------------------------------------------------
def test_dropped_connections_are_resumed_with_range(own: Own, registry_factory, busybox_gz):
    img = make_image(busybox_gz)
    reg = registry_factory(img, "cut")
    reg.cuts[2] = 2  # layer 3: cut at 1/2, then at 3/4, then served in full
    r = pull(own.b, reg.ref)
    assert r.returncode == 0, r.stdout + r.stderr
    gets = reg.gets(2)
    assert len(gets) == 3, gets
    size = len(img.blobs[2])
    offsets = [int(g[6:].split("-")[0]) if g else 0 for g in gets]
    assert offsets[0] == 0 and 0 < offsets[1] < offsets[2] < size, offsets
    assert offsets[1] >= size // 4, offsets  # resumed near the cut (at 1/2), not from 0
    assert [len(reg.gets(i)) for i in (0, 1)] == [1, 1]
    assert len(image_records(own.data)) == 1
    run = own.b.docker("run", "--rm", reg.ref, "md5sum", "/l3.bin")
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[0] == hashlib.md5(img.files["l3.bin"]).hexdigest()


def test_failed_pull_keeps_completed_layers_and_a_retry_reuses_them(own: Own, registry_factory, busybox_gz,
                                                                   tmp_path: Path):
    b, data = own.b, own.data
    other = tmp_path / "other.tar"
    other.write_bytes(tar_of({"other.txt": b"other\n"}))
    b("import", str(other), "bt/other:1", check=True)
    img = make_image(busybox_gz)
    reg = registry_factory(img, "flaky")
    reg.cuts[2] = 1000  # more cuts than the client retries
    before = images_table(b)
    r = pull(b, reg.ref)
    assert r.returncode != 0, r.stdout
    assert len(reg.gets(2)) == RETRIES + 1
    ref_name = reg.ref.rsplit(":", 1)[0]
    assert images_table(b) == before
    assert_no_half_image(data, img, ref_name, b)
    assert len(image_records(data)) == 1  # bt/other only
    have = layer_dirs(data)
    assert all(h in have for h in hexs(img.chains[:2])), have  # kept for a retry
    assert hexs([img.chains[2]])[0] not in have
    assert hexs([img.digests[2]])[0] not in listing(data / "content" / "blobs" / "sha256")

    reg.cuts.clear()
    r = pull(b, reg.ref)
    assert r.returncode == 0, r.stdout + r.stderr
    st = statuses(r.stdout)
    for i in (0, 1):
        assert st.get(short(img.digests[i])) == ["Already exists"], st
    assert "Pull complete" in st[short(img.digests[2])], st
    assert [len(reg.gets(i)) for i in (0, 1)] == [1, 1]  # not downloaded again
    assert f"{ref_name}:1" in images_table(b)


# -- 3. a layer that is not what its digest says -------------------------------------------------
@pytest.mark.parametrize("wrong", ["blob", "diff_id"])
def test_wrong_layer_digest_fails_clearly_and_stores_nothing_of_it(own: Own, registry_factory,
                                                                   busybox_gz, wrong: str):
    img = make_image(busybox_gz, wrong_diff_id=1 if wrong == "diff_id" else None)
    reg = registry_factory(img, "bad")
    if wrong == "blob":
        reg.corrupt.add(1)  # the registry serves other bytes (same size) for layer 2
    b, data = own.b, own.data
    r = pull(b, reg.ref)
    assert r.returncode != 0, r.stdout
    err = r.stderr.strip()
    if wrong == "blob":
        assert f"filesystem layer verification failed for digest {img.digests[1]}" in err, err
    else:
        assert "failed to register layer" in err and img.diff_ids[1] in err, err
    ref_name = reg.ref.rsplit(":", 1)[0]
    assert_no_half_image(data, img, ref_name, b)
    assert image_records(data) == []
    have = layer_dirs(data)
    for h in hexs(img.chains[1:]):
        assert h not in have, have
    blobs = listing(data / "content" / "blobs" / "sha256")
    for h in hexs(img.digests[1:]):
        assert h not in blobs, blobs
