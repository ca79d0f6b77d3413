"""Registry client: auth parsing, progress rendering, platform choice, and pull/push through
RegistryService against our registry server in-process and against misbehaving fakes.

Everything listens on 127.0.0.1 (aiohttp TestServer) inside ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from berth.errors import NotFound
from berth.images.service import ImageService
from berth.registry.client import Credentials, RegistryService, decode_registry_auth
from berth.registry.client.auth import AuthError, parse_challenges
from berth.registry.client.progress import human_size, progress_string
from berth.registry.client.pull import select_platform
from berth.registry.client.push import manifest_bytes
from berth.registry.client.transport import Repository
from berth.registry.server import create_app

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            ti.mode = 0o644
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def make_image(layers: list[dict[str, bytes]]) -> tuple[bytes, list[bytes], bytes]:
    """(config, compressed layers, manifest) of a Docker schema2 image."""
    tars = [layer_tar(f) for f in layers]
    blobs = [gzip.compress(t, mtime=0) for t in tars]
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(t) for t in tars]}}).encode()
    manifest = manifest_bytes(sha(config), len(config), [{"digest": sha(b), "size": len(b)} for b in blobs])
    return config, blobs, manifest


def run(coro):
    return asyncio.run(coro)


async def collect(events) -> list[dict]:
    return [ev async for ev in events]


def statuses(events: list[dict]) -> list[str]:
    return [e.get("status", "") for e in events]


def layer_dirs(images: ImageService) -> list[str]:
    return sorted(p.name for p in images.layers.root.iterdir() if p.name not in ("tmp", "l"))


def assert_clean(images: ImageService, good_layers: int = 0) -> None:
    """Nothing left of a failed pull but the ``good_layers`` below the bad one (kept for a retry,
    with their blobs): no other layer or blob, no temp files, no image, no tags."""
    assert len(layer_dirs(images)) == good_layers
    assert len(list(images.content.walk())) == good_layers
    assert images.store.ids() == []
    assert os.listdir(images.content.root / "ingest") == []
    assert os.listdir(images.layers.root / "tmp") == []
    assert images.store.refs() == {}


# -- small pieces ------------------------------------------------------------------------------
def test_decode_registry_auth():
    hdr = base64.urlsafe_b64encode(json.dumps(
        {"username": "u", "password": "p>?", "serveraddress": "127.0.0.1:5000"}).encode()).decode().rstrip("=")
    c = decode_registry_auth(hdr)
    assert (c.username, c.password, c.server_address) == ("u", "p>?", "127.0.0.1:5000")
    assert decode_registry_auth("e30=").anonymous
    assert decode_registry_auth(None).anonymous
    c = decode_registry_auth(base64.b64encode(json.dumps({"auth": base64.b64encode(b"a:b:c").decode()}).encode()).decode())
    assert (c.username, c.password) == ("a", "b:c")


def test_parse_challenges():
    chs = parse_challenges('Bearer realm="https://auth.example/token",service="registry.example",'
                           'scope="repository:bt/x:pull,push"')
    assert chs[0].scheme == "bearer"
    assert chs[0].params == {"realm": "https://auth.example/token", "service": "registry.example",
                             "scope": "repository:bt/x:pull,push"}
    chs = parse_challenges('Basic realm="Registry Realm"')
    assert chs[0].scheme == "basic" and chs[0].params["realm"] == "Registry Realm"


def test_progress_rendering():
    assert human_size(527) == "527B"
    assert human_size(2101500) == "2.102MB"
    assert progress_string(0, 0) == ""
    bar = progress_string(1048576, 2097152)
    assert bar == "[" + "=" * 25 + ">" + " " * 25 + "]  1.049MB/2.097MB"
    assert progress_string(10, 10).startswith("[" + "=" * 50 + ">]")


def test_manifest_layout_like_dockerd():
    body = manifest_bytes("sha256:" + "a" * 64, 1234, [{"digest": "sha256:" + "b" * 64, "size": 765432}])
    doc = json.loads(body)
    assert body.startswith(b'{\n   "schemaVersion": 2,\n   "mediaType": ')
    assert doc["layers"][0]["mediaType"] == GZ
    assert len(body) == 527  # dockerd's size for a one-layer image with such sizes


def test_select_platform():
    index = {"manifests": [
        {"digest": "sha256:1", "platform": {"os": "linux", "architecture": "arm", "variant": "v7"}},
        {"digest": "sha256:2", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:3", "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]}
    assert select_platform(index, ("linux", "amd64", ""))["digest"] == "sha256:2"
    assert select_platform(index, ("linux", "arm64", ""))["digest"] == "sha256:3"
    assert select_platform(index, ("linux", "arm", "v7"))["digest"] == "sha256:1"
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        select_platform(index, ("linux", "s390x", ""))


def test_scheme_choice():
    svc = RegistryService.__new__(RegistryService)
    from berth.registry.client.transport import RegistryClient

    c = RegistryClient(insecure=["reg.internal:5000", "10.0.0.0/8"], mirrors=["http://127.0.0.1:1"])
    assert c.origin("127.0.0.1:5000").base == "http://127.0.0.1:5000"
    assert c.origin("localhost:5000").base == "http://localhost:5000"
    assert c.origin("[::1]:5000").base == "http://[::1]:5000"
    assert c.origin("reg.internal:5000").base == "http://reg.internal:5000"
    assert c.origin("10.1.2.3:5000").base == "http://10.1.2.3:5000"
    assert c.origin("quay.io").base == "https://quay.io"
    assert [e.base for e in c.endpoints("docker.io")] == ["http://127.0.0.1:1", "https://registry-1.docker.io"]
    assert [e.base for e in c.endpoints("docker.io", pull=False)] == ["https://registry-1.docker.io"]
    assert c.login_endpoint("https://index.docker.io/v1/").base == "https://registry-1.docker.io"
    assert c.login_endpoint("127.0.0.1:5001").base == "http://127.0.0.1:5001"
    del svc


# -- against our registry server -----------------------------------------------------------
async def _our_registry(root: Path, **kw) -> TestServer:
    server = TestServer(create_app(str(root), **kw), host="127.0.0.1")
    await server.start_server()
    return server


def _import(images: ImageService, files: dict[str, bytes], ref: str) -> str:
    repo, _, tag = ref.rpartition(":")
    return images.import_image(io.BytesIO(layer_tar(files)), repo, tag)


def test_push_then_pull_round_trip(tmp_path: Path):
    src = ImageService(tmp_path / "src")
    dst = ImageService(tmp_path / "dst")

    async def main():
        server = await _our_registry(tmp_path / "reg")
        host = f"127.0.0.1:{server.port}"
        image_id = _import(src, {"hello.txt": b"hello\n"}, f"{host}/bt/one:1")
        push = RegistryService(src)
        pull = RegistryService(dst)
        try:
            events = await collect(push.push(f"{host}/bt/one", "1", Credentials()))
            st = statuses(events)
            assert st[0] == f"The push refers to repository [{host}/bt/one]"
            assert "Preparing" in st and "Pushed" in st
            aux = events[-1]["aux"]
            assert aux["Tag"] == "1" and aux["Digest"].startswith("sha256:")
            assert st[-2] == f"1: digest: {aux['Digest']} size: {aux['Size']}"
            assert f"{host}/bt/one@{aux['Digest']}" in src.inspect(image_id)["RepoDigests"]
            # a second push: nothing is recompressed or uploaded
            again = statuses(await collect(push.push(f"{host}/bt/one", "1", Credentials())))
            assert "Layer already exists" in again and "Pushed" not in again
            # another repository of the same registry: a cross-repository mount
            src.tag(image_id, f"{host}/bt/two", "x")
            other = statuses(await collect(push.push(f"{host}/bt/two", "x", Credentials())))
            assert "Mounted from bt/one" in other

            events = await collect(pull.pull(f"{host}/bt/one", "1", Credentials()))
            st = statuses(events)
            assert events[0] == {"status": "Pulling from bt/one", "id": "1"}
            for s in ("Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
                      "Extracting", "Pull complete"):
                assert s in st, (s, st)
            assert st[-2] == f"Digest: {aux['Digest']}"
            assert st[-1] == f"Status: Downloaded newer image for {host}/bt/one:1"
            assert dst.resolve_id(f"{host}/bt/one:1") == image_id
            insp = dst.inspect(f"{host}/bt/one:1")
            assert insp["RepoDigests"] == [f"{host}/bt/one@{aux['Digest']}"]
            assert (dst.resolve(image_id).lower_dirs[0] / "hello.txt").read_bytes() == b"hello\n"
            # pulled again: up to date, no layer lines
            st = statuses(await collect(pull.pull(f"{host}/bt/one", "1", Credentials())))
            assert st[-1] == f"Status: Image is up to date for {host}/bt/one:1"
            assert "Pulling fs layer" not in st
            # by digest
            st = statuses(await collect(pull.pull(f"{host}/bt/one", aux["Digest"], Credentials())))
            assert st[-1] == f"Status: Image is up to date for {host}/bt/one@{aux['Digest']}"
            # the pulled gzip blob is pushed as is
            dst.tag(image_id, f"{host}/bt/three", "y")
            st = statuses(await collect(pull.push(f"{host}/bt/three", "y", Credentials())))
            assert "Pushed" not in st
            # a missing tag: an HTTP 404 before any output
            with pytest.raises(NotFound) as e:
                await collect(pull.pull(f"{host}/bt/one", "nope", Credentials()))
            assert e.value.message == (f"manifest for {host}/bt/one:nope not found: "
                                       "manifest unknown: manifest unknown")
            # all tags
            src.tag(image_id, f"{host}/bt/one", "2")
            await collect(push.push(f"{host}/bt/one", "2", Credentials()))
            dst.remove(image_id, force=True)
            st = statuses(await collect(pull.pull(f"{host}/bt/one", None, Credentials())))
            assert st[-1] == f"Status: Downloaded newer image for {host}/bt/one"
            assert dst.resolve_id(f"{host}/bt/one:2") == image_id
        finally:
            await push.close()
            await pull.close()
            await server.close()

    run(main())


def test_push_of_a_missing_tag_is_in_band(tmp_path: Path):
    images = ImageService(tmp_path / "src")
    svc = RegistryService(images)
    events = run(collect(svc.push("127.0.0.1:9/bt/nope", "1", Credentials())))
    assert events[0] == {"status": "The push refers to repository [127.0.0.1:9/bt/nope]"}
    assert events[-1]["error"] == "An image does not exist locally with the tag: 127.0.0.1:9/bt/nope"


def test_basic_auth_push_pull_and_login(tmp_path: Path):
    import bcrypt

    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("bt:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    images = ImageService(tmp_path / "src")

    async def main():
        server = await _our_registry(tmp_path / "reg", htpasswd=str(htpasswd))
        host = f"127.0.0.1:{server.port}"
        _import(images, {"a": b"a"}, f"{host}/bt/auth:1")
        svc = RegistryService(images)
        try:
            events = await collect(svc.push(f"{host}/bt/auth", "1", Credentials()))
            assert events[-1]["error"] == "no basic auth credentials"
            with pytest.raises(AuthError) as e:
                await svc.login({"username": "bt", "password": "wrong", "serveraddress": host})
            assert e.value.message == f"login attempt to http://{host}/v2/ failed with status: 401 Unauthorized"
            assert e.value.status == 401
            ok = await svc.login({"username": "bt", "password": "secret", "serveraddress": host})
            assert ok == {"IdentityToken": "", "Status": "Login Succeeded"}
            creds = Credentials("bt", "secret")
            events = await collect(svc.push(f"{host}/bt/auth", "1", creds))
            assert "aux" in events[-1], events[-1]
            with pytest.raises(AuthError, match=r'^Head "http://.*/manifests/1": no basic auth credentials$'):
                await collect(RegistryService(ImageService(tmp_path / "d2")).pull(
                    f"{host}/bt/auth", "1", Credentials()))
        finally:
            await svc.close()
            await server.close()

    run(main())


# -- misbehaving fakes ---------------------------------------------------------------------
class Fake:
    """A registry serving one image at ``bt/fake:1``; ``mode`` picks how blobs misbehave.

    Modes (per layer index in ``bad``): ``wrong`` other bytes, ``truncate`` a short body with the
    right Content-Length cut by a closed connection, ``short`` a short body (short Content-Length),
    ``500`` a 500 on the first request, ``cut-once`` half the body then a dropped connection once.
    ``token`` puts the registry behind a Bearer token service at ``/token``.
    """

    def __init__(self, layers: list[dict[str, bytes]], mode: str = "", bad: int = 0, token: bool = False):
        self.config, self.blobs, self.manifest = make_image(layers)
        self.mode, self.bad, self.token = mode, bad, token
        self.requests: list[str] = []
        self.token_scopes: list[list[str]] = []
        self.seen: dict[str, int] = {}

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/token", self.issue_token)
        app.router.add_route("*", "/v2/{tail:.*}", self.handle)
        return app

    async def issue_token(self, request: web.Request) -> web.Response:
        self.token_scopes.append(request.query.getall("scope", []))
        assert request.query.get("service") == "fake-registry"
        return web.json_response({"token": "tok-" + ",".join(request.query.getall("scope", [])),
                                  "expires_in": 300})

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path}")
        if self.token:
            auth = request.headers.get("Authorization", "")
            if not auth.startswith("Bearer tok-repository:bt/fake:pull"):
                realm = f"http://{request.host}/token"
                return web.json_response(
                    {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                    status=401, headers={"WWW-Authenticate":
                                         f'Bearer realm="{realm}",service="fake-registry",'
                                         f'scope="repository:bt/fake:pull"'})
        tail = request.match_info["tail"]
        if tail == "":
            return web.json_response({})
        if tail in ("bt/fake/manifests/1", f"bt/fake/manifests/{sha(self.manifest)}"):
            headers = {"Content-Type": DOCKER_MANIFEST, "Docker-Content-Digest": sha(self.manifest)}
            if request.method == "HEAD":
                return web.Response(headers={**headers, "Content-Length": str(len(self.manifest))})
            return web.Response(body=self.manifest, headers=headers)
        if tail.startswith("bt/fake/blobs/"):
            digest = tail.rsplit("/", 1)[1]
            if digest == sha(self.config):
                return web.Response(body=self.config)
            for i, blob in enumerate(self.blobs):
                if digest == sha(blob):
                    return await self.blob(request, i, blob)
        return web.json_response({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]},
                                 status=404)

    async def blob(self, request: web.Request, i: int, blob: bytes) -> web.StreamResponse:
        n = self.seen[sha(blob)] = self.seen.get(sha(blob), 0) + 1
        start = 0
        rng = request.headers.get("Range", "")
        if i == self.bad and self.mode == "wrong":
            mid = len(blob) // 2  # same size, one bit flipped
            return web.Response(body=blob[:mid] + bytes([blob[mid] ^ 1]) + blob[mid + 1:])
        if i == self.bad and self.mode == "short":
            return web.Response(body=blob[: len(blob) // 2])
        if i == self.bad and self.mode == "500" and n == 1:
            return web.json_response({"errors": [{"code": "UNKNOWN", "message": "boom"}]}, status=500)
        if rng.startswith("bytes="):
            start = int(rng[6:].split("-")[0])
        status = 206 if start else 200
        resp = web.StreamResponse(status=status)
        resp.content_length = len(blob) - start
        if start:
            resp.headers["Content-Range"] = f"bytes {start}-{len(blob) - 1}/{len(blob)}"
        await resp.prepare(request)
        body = blob[start:]
        if i == self.bad and self.mode == "slow":
            await resp.write(body[:1000])
            await asyncio.sleep(30)
        if i == self.bad and (self.mode == "truncate" or (self.mode == "cut-once" and n == 1)):
            await resp.write(body[: len(body) // 2])
            await asyncio.sleep(0.05)
            request.transport.close()
            return resp
        await resp.write(body)
        await resp.write_eof()
        return resp


def _big_layers() -> list[dict[str, bytes]]:
    rnd = os.urandom(300_000)  # incompressible, so blobs are big enough to cut in half
    return [{"base.bin": rnd}, {"top.bin": rnd[::-1]}, {"third.txt": b"3"}]


def pull_from_fake(tmp_path: Path, fake: Fake, **kw) -> tuple[ImageService, list[dict], BaseException | None]:
    images = ImageService(tmp_path / "data")

    async def main():
        server = TestServer(fake.app(), host="127.0.0.1")
        await server.start_server()
        svc = RegistryService(images, **kw)
        try:
            events: list[dict] = []
            try:
                async for ev in svc.pull(f"127.0.0.1:{server.port}/bt/fake", "1", Credentials()):
                    events.append(ev)
            except Exception as e:  # noqa: BLE001 - returned for the test to check
                return events, e
            return events, None
        finally:
            await svc.close()
            await server.close()

    events, exc = run(main())
    return images, events, exc


@pytest.mark.parametrize("bad", [0, 1])
def test_wrong_digest_blob_stores_nothing(tmp_path: Path, bad: int):
    images, events, exc = pull_from_fake(tmp_path, Fake(_big_layers(), "wrong", bad))
    assert exc is None
    assert "filesystem layer verification failed for digest" in events[-1]["error"]
    assert_clean(images, bad)


def test_truncated_blob_fails_cleanly_after_retries(tmp_path: Path):
    fake = Fake(_big_layers(), "truncate", 1)
    images, events, exc = pull_from_fake(tmp_path, fake)
    assert exc is None and "error" in events[-1], events[-1]
    assert fake.seen[sha(fake.blobs[1])] == 4  # one try and three retries
    assert_clean(images, 1)


def test_short_blob_fails_cleanly(tmp_path: Path):
    images, events, exc = pull_from_fake(tmp_path, Fake(_big_layers(), "short", 0))
    assert "error" in events[-1]
    assert_clean(images)


def test_500_and_a_dropped_connection_are_retried(tmp_path: Path):
    for mode in ("500", "cut-once"):
        fake = Fake(_big_layers(), mode, 1)
        images, events, exc = pull_from_fake(tmp_path / mode, fake)
        assert exc is None and "error" not in events[-1], events[-1]
        assert len(images.store.ids()) == 1
        assert len(layer_dirs(images)) == 3
        if mode == "cut-once":
            assert fake.seen[sha(fake.blobs[1])] == 2


def test_bearer_token_flow_and_cache(tmp_path: Path):
    fake = Fake([{"a": b"a"}, {"b": b"b"}], token=True)
    images, events, exc = pull_from_fake(tmp_path, fake)
    assert exc is None and "error" not in events[-1], events[-1]
    assert fake.token_scopes == [["repository:bt/fake:pull"]]  # one token, reused for every request
    assert len(images.store.ids()) == 1


def test_interrupted_pull_leaves_no_image_and_retry_reuses_layers(tmp_path: Path):
    fake = Fake(_big_layers(), "truncate", 2)
    images, events, exc = pull_from_fake(tmp_path, fake)
    assert "error" in events[-1]
    assert images.store.ids() == [] and images.store.refs() == {}
    fake.mode = ""
    images2, events, exc = pull_from_fake(tmp_path, fake)
    st = statuses(events)
    assert st.count("Already exists") == 2 and st.count("Pull complete") == 1, st
    assert len(images2.store.ids()) == 1


def test_mirror_first_then_origin(tmp_path: Path):
    """docker.io pulls go to the mirror; a mirror without the image falls back to the origin
    (here a loopback fake standing in for the Hub)."""
    fake = Fake([{"m": b"m"}])
    images = ImageService(tmp_path / "data")

    async def main():
        empty = TestServer(Fake([{"x": b"x"}]).app(), host="127.0.0.1")
        await empty.start_server()
        origin = TestServer(fake.app(), host="127.0.0.1")
        await origin.start_server()
        svc = RegistryService(images, mirrors=[f"http://127.0.0.1:{empty.port}"],
                              hub_origin=f"http://127.0.0.1:{origin.port}")
        try:
            # the mirror serves a different image for bt/fake:1: it wins
            events = await collect(svc.pull("bt/fake", "1", Credentials()))
            assert events[0]["status"] == "Pulling from bt/fake"
            first = images.resolve_id("bt/fake:1")
            assert not fake.requests
            # the mirror does not have tag 2 (404): the origin is asked
            fake_manifest_tail = fake.manifest
            assert fake_manifest_tail
            with pytest.raises(NotFound):
                await collect(svc.pull("bt/fake", "2", Credentials()))
            assert fake.requests  # the origin was tried after the mirror
            assert first
        finally:
            await svc.close()
            await empty.close()
            await origin.close()

    run(main())


def test_client_going_away_mid_pull_leaves_nothing(tmp_path: Path):
    """Closing the event stream (the API client hung up) cancels the pull: no image, no temp
    files, no half layer; the extraction thread ends."""
    import threading

    fake = Fake(_big_layers(), "slow", 0)
    images = ImageService(tmp_path / "data")

    async def main():
        server = TestServer(fake.app(), host="127.0.0.1")
        await server.start_server()
        svc = RegistryService(images)
        try:
            events = svc.pull(f"127.0.0.1:{server.port}/bt/fake", "1", Credentials())
            seen = []
            async for ev in events:
                seen.append(ev)
                if ev.get("status") == "Downloading":
                    break
            await asyncio.sleep(0.2)
            await events.aclose()
        finally:
            await svc.close()
            await server.close()

    before = threading.active_count()
    run(main())
    time.sleep(0.3)
    assert threading.active_count() <= before
    assert images.store.ids() == [] and images.store.refs() == {}
    assert os.listdir(images.content.root / "ingest") == []
    assert os.listdir(images.layers.root / "tmp") == []
    assert layer_dirs(images) == []


def test_big_blob_is_uploaded_in_chunks_and_pulled_back(tmp_path: Path):
    src = ImageService(tmp_path / "src")
    dst = ImageService(tmp_path / "dst")
    big = os.urandom(17 << 20)  # incompressible: the gzip blob is above the 16 MiB threshold

    async def main():
        server = await _our_registry(tmp_path / "reg")
        host = f"127.0.0.1:{server.port}"
        image_id = _import(src, {"big.bin": big}, f"{host}/bt/big:1")
        push, pull = RegistryService(src), RegistryService(dst)
        methods: list[str] = []
        orig = Repository._req

        async def spy(self, method, url, **kw):
            methods.append(method)
            return await orig(self, method, url, **kw)

        Repository._req = spy  # type: ignore[method-assign]
        try:
            events = await collect(push.push(f"{host}/bt/big", "1", Credentials()))
            assert methods.count("PATCH") == 2, methods
            pushing = [e for e in events if e.get("status") == "Pushing"]
            assert pushing and pushing[-1]["progressDetail"]["current"] == pushing[-1]["progressDetail"]["total"]
            assert "aux" in events[-1], events[-1]
            await collect(pull.pull(f"{host}/bt/big", "1", Credentials()))
            assert dst.resolve_id(f"{host}/bt/big:1") == image_id
            assert (dst.resolve(image_id).lower_dirs[0] / "big.bin").read_bytes() == big
        finally:
            Repository._req = orig  # type: ignore[method-assign]
            await push.close()
            await pull.close()
            await server.close()

    run(main())


def test_loopback_only_refuses_other_hosts_before_connecting(tmp_path: Path):
    calls = []

    def factory():
        calls.append(1)
        raise AssertionError("no session may be created")

    svc = RegistryService(ImageService(tmp_path / "d"), session_factory=factory, loopback_only=True)
    with pytest.raises(Exception) as e:
        run(collect(svc.pull("busybox", "latest", Credentials())))
    assert "limited to loopback addresses" in str(e.value)
    assert calls == []
