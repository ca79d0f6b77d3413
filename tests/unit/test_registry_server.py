"""Registry server: base endpoint, blobs, uploads (monolithic, chunked, mount, concurrent), auth.

Each test runs the aiohttp app in-process on 127.0.0.1 with aiohttp's TestServer/TestClient
inside ``asyncio.run``. Helpers here are reused by test_registry_server_manifests.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path

import bcrypt
from aiohttp.test_utils import TestClient, TestServer

from berth.registry.server import create_app

API = "Docker-Distribution-API-Version"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def run(root: Path, test, **kw) -> None:
    """Run ``await test(client)`` against a fresh app over ``root``."""
    async def main():
        app = create_app(str(root), **kw)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            await test(client)
    asyncio.run(main())


async def errors_of(resp) -> list[str]:
    body = await resp.json()
    return [e["code"] for e in body["errors"]]


async def push_blob(client, name: str, data: bytes) -> str:
    digest = sha(data)
    r = await client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data)
    assert r.status == 201, await r.text()
    return digest


async def push_image(client, name: str, tag: str | None, layers: list[bytes], *,
                     media_type: str = "application/vnd.docker.distribution.manifest.v2+json",
                     config: bytes = b'{"architecture":"amd64","os":"linux"}') -> tuple[str, bytes]:
    """Push blobs and a manifest; return ``(manifest digest, manifest bytes)``."""
    oci = "oci" in media_type
    cfg_digest = await push_blob(client, name, config)
    layer_descs = []
    for layer in layers:
        d = await push_blob(client, name, layer)
        layer_descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip" if oci else
                            "application/vnd.docker.image.rootfs.diff.tar.gzip",
                            "digest": d, "size": len(layer)})
    doc = {"schemaVersion": 2, "mediaType": media_type,
           "config": {"mediaType": "application/vnd.oci.image.config.v1+json" if oci else
                      "application/vnd.docker.container.image.v1+json",
                      "digest": cfg_digest, "size": len(config)},
           "layers": layer_descs}
    data = json.dumps(doc, indent=3).encode()
    digest = sha(data)
    r = await client.put(f"/v2/{name}/manifests/{tag or digest}", data=data,
                         headers={"Content-Type": media_type})
    assert r.status == 201, await r.text()
    assert r.headers["Docker-Content-Digest"] == digest
    return digest, data


def blob_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / "blobs").rglob("*") if p.is_file())


# -- base ------------------------------------------------------------------------------------------
def test_base_endpoint(tmp_path):
    async def t(c):
        for path in ("/v2/", "/v2"):
            r = await c.get(path)
            assert r.status == 200
            assert await r.json() == {}
            assert r.headers[API] == "registry/2.0"
        r = await c.get("/v2/foo/bar/nothing-here")
        assert r.status == 404
        r = await c.post("/v2/foo/manifests/latest")
        assert r.status == 405 and await errors_of(r) == ["UNSUPPORTED"]
        r = await c.get("/v3/")
        assert r.status == 404
    run(tmp_path, t)


def test_name_invalid(tmp_path):
    async def t(c):
        for name in ("Upper/case", "a//b", "-a", "a/_x", "x" * 256):
            r = await c.get(f"/v2/{name}/tags/list")
            assert r.status == 400, name
            assert await errors_of(r) == ["NAME_INVALID"]
        r = await c.post("/v2/BAD/blobs/uploads/")
        assert r.status == 400 and await errors_of(r) == ["NAME_INVALID"]
    run(tmp_path, t)


# -- blobs -----------------------------------------------------------------------------------------
def test_monolithic_push_and_fetch(tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)  # several chunks
    digest = sha(data)

    async def t(c):
        r = await c.post("/v2/a/b/c/blobs/uploads/", params={"digest": digest}, data=data)
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/a/b/c/blobs/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
        r = await c.head(f"/v2/a/b/c/blobs/{digest}")
        assert r.status == 200
        assert r.headers["Content-Length"] == str(len(data))
        assert r.headers["Docker-Content-Digest"] == digest
        r = await c.get(f"/v2/a/b/c/blobs/{digest}")
        assert r.status == 200 and await r.read() == data
        # not visible from another repository
        r = await c.get(f"/v2/other/blobs/{digest}")
        assert r.status == 404 and await errors_of(r) == ["BLOB_UNKNOWN"]
    run(tmp_path, t)
    hexpart = digest.split(":")[1]
    assert blob_files(tmp_path) == [tmp_path / "blobs" / "sha256" / hexpart[:2] / hexpart]
    assert (tmp_path / "repositories/a/b/c/_layers/sha256" / hexpart).is_file()
    assert list((tmp_path / "repositories/a/b/c/_uploads").iterdir()) == []


def test_blob_errors(tmp_path):
    unknown = "sha256:" + "0" * 64

    async def t(c):
        r = await c.get(f"/v2/x/blobs/{unknown}")
        assert r.status == 404 and await errors_of(r) == ["BLOB_UNKNOWN"]
        r = await c.head(f"/v2/x/blobs/{unknown}")
        assert r.status == 404
        for bad in ("sha256:abc", "nodigest", "sha256:" + "G" * 64):
            r = await c.get(f"/v2/x/blobs/{bad}")
            assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"], bad
        r = await c.post("/v2/x/blobs/uploads/", params={"digest": unknown}, data=b"hello")
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        r = await c.post("/v2/x/blobs/uploads/", params={"digest": "sha256:zz"}, data=b"hello")
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        r = await c.post("/v2/x/blobs/uploads/", params={"digest": "sha512:" + "a" * 128}, data=b"x")
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
    run(tmp_path, t)
    assert blob_files(tmp_path) == []
    assert list((tmp_path / "repositories/x/_uploads").iterdir()) == []


def test_range_requests(tmp_path):
    data = bytes(range(256)) * 4

    async def t(c):
        d = await push_blob(c, "r", data)
        r = await c.get(f"/v2/r/blobs/{d}", headers={"Range": "bytes=10-19"})
        assert r.status == 206
        assert await r.read() == data[10:20]
        assert r.headers["Content-Range"] == f"bytes 10-19/{len(data)}"
        assert r.headers["Content-Length"] == "10"
        r = await c.get(f"/v2/r/blobs/{d}", headers={"Range": "bytes=1000-"})
        assert r.status == 206 and await r.read() == data[1000:]
        r = await c.get(f"/v2/r/blobs/{d}", headers={"Range": "bytes=-5"})
        assert r.status == 206 and await r.read() == data[-5:]
        r = await c.get(f"/v2/r/blobs/{d}", headers={"Range": "bytes=1020-5000"})
        assert r.status == 206 and await r.read() == data[1020:]
        r = await c.get(f"/v2/r/blobs/{d}", headers={"Range": "bytes=5000-6000"})
        assert r.status == 416
        assert r.headers["Content-Range"] == f"bytes */{len(data)}"
        assert await errors_of(r) == ["RANGE_INVALID"]
    run(tmp_path, t)


def test_delete_blob(tmp_path):
    async def t(c):
        d = await push_blob(c, "del", b"bye")
        r = await c.delete(f"/v2/del/blobs/{d}")
        assert r.status == 202 and r.headers["Docker-Content-Digest"] == d
        r = await c.head(f"/v2/del/blobs/{d}")
        assert r.status == 404
        r = await c.delete(f"/v2/del/blobs/{d}")
        assert r.status == 404 and await errors_of(r) == ["BLOB_UNKNOWN"]
    run(tmp_path, t)

    async def disabled(c):
        d = sha(b"bye")
        r = await c.delete(f"/v2/del/blobs/{d}")
        assert r.status == 405 and await errors_of(r) == ["UNSUPPORTED"]
    run(tmp_path, disabled, delete_enabled=False)


# -- chunked uploads --------------------------------------------------------------------------------
def test_chunked_upload(tmp_path):
    data = b"0123456789abcdefghij"
    digest = sha(data)

    async def t(c):
        r = await c.post("/v2/ch/blobs/uploads/")
        assert r.status == 202
        loc, uuid = r.headers["Location"], r.headers["Docker-Upload-UUID"]
        assert loc == f"/v2/ch/blobs/uploads/{uuid}"
        assert r.headers["Range"] == "0-0"
        r = await c.patch(loc, data=data[:10], headers={"Content-Range": "0-9",
                                                         "Content-Type": "application/octet-stream"})
        assert r.status == 202, await r.text()
        assert r.headers["Range"] == "0-9" and r.headers["Docker-Upload-UUID"] == uuid
        loc = r.headers["Location"]
        r = await c.get(loc)
        assert r.status == 204 and r.headers["Range"] == "0-9"
        # out of order: starts past the end
        r = await c.patch(loc, data=data[12:], headers={"Content-Range": "12-19"})
        assert r.status == 416
        assert r.headers["Range"] == "0-9"
        # overlapping
        r = await c.patch(loc, data=data[5:], headers={"Content-Range": "5-19"})
        assert r.status == 416
        # length disagrees with Content-Range
        r = await c.patch(loc, data=data[10:15], headers={"Content-Range": "10-19"})
        assert r.status == 400 and await errors_of(r) == ["SIZE_INVALID"]
        # streamed chunk without Content-Range
        r = await c.patch(loc, data=data[10:15])
        assert r.status == 202 and r.headers["Range"] == "0-14"
        # final chunk in the PUT
        r = await c.put(loc, params={"digest": digest}, data=data[15:])
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/ch/blobs/{digest}"
        assert r.headers["Docker-Content-Digest"] == digest
        r = await c.get(f"/v2/ch/blobs/{digest}")
        assert await r.read() == data
        r = await c.get(loc)
        assert r.status == 404 and await errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"]
    run(tmp_path, t)


def test_put_without_body_and_digest_errors(tmp_path):
    async def t(c):
        r = await c.post("/v2/p/blobs/uploads/")
        loc = r.headers["Location"]
        await c.patch(loc, data=b"abc")
        r = await c.put(loc)
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        r = await c.put(loc, params={"digest": sha(b"abc")})
        assert r.status == 201
        # mismatch: 400 and the session is gone
        r = await c.post("/v2/p/blobs/uploads/")
        loc = r.headers["Location"]
        r = await c.put(loc, params={"digest": sha(b"other")}, data=b"abc")
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        body = await (await c.get(loc)).json()
        assert body["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    run(tmp_path, t)


def test_cancel_and_unknown_uploads(tmp_path):
    async def t(c):
        r = await c.post("/v2/cx/blobs/uploads/")
        loc = r.headers["Location"]
        await c.patch(loc, data=b"partial")
        r = await c.delete(loc)
        assert r.status == 204
        for method in ("get", "patch", "put", "delete"):
            r = await getattr(c, method)(loc, params={"digest": sha(b"partial")})
            assert r.status == 404 and await errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"], method
        r = await c.get("/v2/cx/blobs/uploads/not-a-uuid")
        assert r.status == 404 and await errors_of(r) == ["BLOB_UPLOAD_UNKNOWN"]
        # a session belongs to its repository
        r = await c.post("/v2/cx/blobs/uploads/")
        uuid = r.headers["Docker-Upload-UUID"]
        r = await c.get(f"/v2/other/blobs/uploads/{uuid}")
        assert r.status == 404
    run(tmp_path, t)
    assert len(list((tmp_path / "repositories/cx/_uploads").glob("*/data"))) == 1  # the open one


def test_upload_survives_restart(tmp_path):
    state = {}

    async def first(c):
        r = await c.post("/v2/rs/blobs/uploads/")
        state["loc"] = r.headers["Location"]
        await c.patch(state["loc"], data=b"hello ")

    async def second(c):
        r = await c.get(state["loc"])
        assert r.status == 204 and r.headers["Range"] == "0-5"
        r = await c.put(state["loc"], params={"digest": sha(b"hello world")}, data=b"world")
        assert r.status == 201
    run(tmp_path, first)
    run(tmp_path, second)


def test_cross_repo_mount(tmp_path):
    async def t(c):
        d = await push_blob(c, "src/repo", b"shared layer")
        r = await c.post("/v2/dst/blobs/uploads/", params={"mount": d, "from": "src/repo"})
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/dst/blobs/{d}"
        assert r.headers["Docker-Content-Digest"] == d
        r = await c.get(f"/v2/dst/blobs/{d}")
        assert await r.read() == b"shared layer"
        # not in the source repository: an ordinary upload starts
        other = sha(b"elsewhere")
        r = await c.post("/v2/dst2/blobs/uploads/", params={"mount": other, "from": "src/repo"})
        assert r.status == 202 and "Docker-Upload-UUID" in r.headers
        r = await c.post("/v2/dst2/blobs/uploads/", params={"mount": d, "from": "nope"})
        assert r.status == 202
        r = await c.head(f"/v2/dst2/blobs/{d}")
        assert r.status == 404
    run(tmp_path, t)
    assert len(blob_files(tmp_path)) == 1


def test_concurrent_pushes_of_one_blob(tmp_path):
    data = os.urandom(2 * (1 << 20) + 5)
    digest = sha(data)

    async def chunked(c, name):
        r = await c.post(f"/v2/{name}/blobs/uploads/")
        loc = r.headers["Location"]
        half = len(data) // 2
        r = await c.patch(loc, data=data[:half], headers={"Content-Range": f"0-{half - 1}"})
        assert r.status == 202
        await asyncio.sleep(0)
        r = await c.put(loc, params={"digest": digest}, data=data[half:])
        return r.status

    async def mono(c, name):
        r = await c.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data)
        return r.status

    async def t(c):
        statuses = await asyncio.gather(*(chunked(c, "same") for _ in range(4)),
                                        *(mono(c, "same") for _ in range(4)),
                                        chunked(c, "other"), mono(c, "other"))
        assert statuses == [201] * 10
        for name in ("same", "other"):
            r = await c.get(f"/v2/{name}/blobs/{digest}")
            assert hashlib.sha256(await r.read()).hexdigest() == digest.split(":")[1]
    run(tmp_path, t)
    assert len(blob_files(tmp_path)) == 1
    assert not list(tmp_path.rglob("_uploads/*"))


# -- auth ------------------------------------------------------------------------------------------
def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_htpasswd_auth(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    h = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode().replace("$2b$", "$2y$", 1)
    htpasswd.write_text(f"# users\nalice:{h}\nbob:{{SHA}}ignoredentry=\n")

    async def t(c):
        for headers in ({}, _basic("alice", "wrong"), _basic("bob", "x"), _basic("eve", "s3cret"),
                        _basic("alice", "x" * 100), {"Authorization": "Bearer token"},
                        {"Authorization": "Basic !!!"}):
            r = await c.get("/v2/", headers=headers)
            assert r.status == 401, headers
            assert r.headers["WWW-Authenticate"] == 'Basic realm="test realm"'
            assert r.headers[API] == "registry/2.0"
            assert await errors_of(r) == ["UNAUTHORIZED"]
        ok = _basic("alice", "s3cret")
        r = await c.get("/v2/", headers=ok)
        assert r.status == 200
        r = await c.get("/v2/", headers=ok)  # cached check
        assert r.status == 200
        r = await c.post("/v2/x/blobs/uploads/", params={"digest": sha(b"a")}, data=b"a")
        assert r.status == 401
        r = await c.post("/v2/x/blobs/uploads/", params={"digest": sha(b"a")}, data=b"a", headers=ok)
        assert r.status == 201
        # the file is re-read when it changes
        h2 = bcrypt.hashpw(b"new", bcrypt.gensalt(rounds=4)).decode()
        htpasswd.write_text(f"alice:{h2}\n")
        os.utime(htpasswd, ns=(1, 1))
        r = await c.get("/v2/", headers=ok)
        assert r.status == 401
        r = await c.get("/v2/", headers=_basic("alice", "new"))
        assert r.status == 200
    run(tmp_path / "root", t, htpasswd=str(htpasswd), realm="test realm")
