"""api/archive.py routes, in-process: save/load, export, changes, commit (with a fake containers
backend over a real ImageService and a synthetic read-write layer)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from berth.api import archive as routes
from berth.api.app import error_middleware, version_middleware
from berth.errors import NotFound
from berth.images import ImageService
from berth.images.load import load

FIXTURES = Path(os.environ.get("BERTH_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures"))
pytestmark = [
    pytest.mark.skipif(not (FIXTURES / "layers.docker-save.tar").exists(), reason="no fixtures"),
    pytest.mark.skipif(os.geteuid() != 0, reason="layers keep owners: needs root"),
]
CID = "c0ffee" * 10 + "abcd"


@dataclass
class FakeContainer:
    Id: str
    ImageID: str
    Config: dict
    dir: Path
    state: Any = field(default_factory=lambda: SimpleNamespace(Running=False, Paused=False))


class FakeContainers:
    def __init__(self, c: FakeContainer):
        self.c = c
        self.calls: list[str] = []

    def get(self, ref: str) -> FakeContainer:
        if ref and (self.c.Id.startswith(ref) or ref == "c1"):
            return self.c
        raise NotFound(f"No such container: {ref}")

    async def pause(self, ref: str) -> None:
        self.calls.append("pause")

    async def unpause(self, ref: str) -> None:
        self.calls.append("unpause")


@pytest.fixture
def env(tmp_path):
    images = ImageService(tmp_path / "data")
    load(images, open(FIXTURES / "busybox.docker-save.tar", "rb"))
    image_id = images.resolve_id("busybox")
    cdir = tmp_path / "data" / "containers" / CID
    upper = cdir / "rw" / "upper"
    (upper / "etc").mkdir(parents=True)
    os.chmod(upper / "etc", images.resolve(image_id).lower_dirs[0].joinpath("etc").stat().st_mode & 0o7777)
    (upper / "new").write_text("x\n")
    os.mknod(upper / "etc" / "group", 0o600 | stat.S_IFCHR, os.makedev(0, 0))
    (upper / "tmp" / "d").mkdir(parents=True)
    os.chmod(upper / "tmp", 0o1777)
    (upper / "etc" / "hosts").write_text("")  # a mount point stub: not a change
    config = {"Hostname": CID[:12], "Env": ["PATH=/bin"], "Cmd": ["sh", "-c", "echo x > /new"],
              "Image": "busybox", "Labels": {"a": "1"}}
    c = FakeContainer(CID, image_id, config, cdir)
    return images, FakeContainers(c)


def run(env, test) -> None:
    images, containers = env

    async def main():
        app = web.Application(middlewares=[error_middleware, version_middleware])
        routes.register(app.router, SimpleNamespace(images=images, containers=containers))
        async with TestClient(TestServer(app)) as client:
            await test(client)
    asyncio.run(main())


def test_changes_route(env):
    async def t(client):
        r = await client.get("/v1.41/containers/c1/changes")
        assert r.status == 200
        assert await r.json() == [{"Path": "/etc", "Kind": 0}, {"Path": "/etc/group", "Kind": 2},
                                  {"Path": "/new", "Kind": 1}, {"Path": "/tmp", "Kind": 0},
                                  {"Path": "/tmp/d", "Kind": 1}]
        r = await client.get("/containers/nosuch/changes")
        assert r.status == 404 and (await r.json())["message"] == "No such container: nosuch"
    run(env, t)


def test_export_route(env):
    async def t(client):
        r = await client.get("/containers/c1/export")
        assert r.status == 200 and r.headers["Content-Type"] == "application/octet-stream"
        data = await r.read()
        tf = tarfile.open(fileobj=io.BytesIO(data))
        names = tf.getnames()
        assert names[0] == ".dockerenv"
        assert "new" in names and "etc/passwd" in names and "bin/busybox" in names
        assert "etc/group" not in names and "tmp/d" in names
    run(env, t)


def test_commit_route(env):
    images, containers = env
    containers.c.state.Running = True

    async def t(client):
        r = await client.post("/v1.41/commit", params={
            "container": "c1", "repo": "docker.io/bt/committed", "tag": "v1", "author": "me",
            "comment": "msg", "changes": "ENV FOO=bar\nCMD [\"cat\", \"/new\"]"})
        assert r.status == 201, await r.text()
        image_id = (await r.json())["Id"]
        assert containers.calls == ["pause", "unpause"]
        info = images.inspect("bt/committed:v1")
        assert info["Id"] == image_id
        assert info["Parent"] == containers.c.ImageID
        assert info["Author"] == "me" and info["Container"] == CID
        assert info["Config"]["Cmd"] == ["cat", "/new"]
        assert info["Config"]["Env"] == ["PATH=/bin", "FOO=bar"]
        assert info["Config"]["Labels"] == {"a": "1"}
        assert info["ContainerConfig"]["Cmd"] == ["sh", "-c", "echo x > /new"]
        base = images.resolve(containers.c.ImageID)
        img = images.resolve(image_id)
        assert img.lower_dirs[:-1] == base.lower_dirs  # parent layer shared, not copied
        top = img.lower_dirs[-1]
        assert (top / "new").read_text() == "x\n"
        assert stat.S_ISCHR(os.lstat(top / "etc/group").st_mode)
        assert not (top / "etc/hosts").exists()
        hist = images.history(image_id)
        assert hist[0]["CreatedBy"] == "sh -c echo x > /new" and hist[0]["Comment"] == "msg"
        r = await client.post("/commit", params={"container": "nosuch"})
        assert r.status == 404
        r = await client.post("/commit", params={"container": "c1", "changes": "RUN x"})
        assert r.status == 400
    run(env, t)


def test_commit_without_changes_is_an_empty_layer(env, tmp_path):
    images, containers = env
    empty = tmp_path / "c2"
    (empty / "rw" / "upper").mkdir(parents=True)
    containers.c.dir = empty

    async def t(client):
        r = await client.post("/commit", params={"container": "c1", "pause": "0"})
        assert r.status == 201
        info = images.inspect((await r.json())["Id"])
        assert info["RootFS"]["Layers"] == images.inspect("busybox")["RootFS"]["Layers"]
        assert info["RepoTags"] == []
        assert containers.calls == []
    run(env, t)


def test_save_and_load_routes(env):
    images, _ = env

    async def t(client):
        r = await client.get("/images/get", params=[("names", "busybox")])
        assert r.status == 200 and r.headers["Content-Type"] == "application/x-tar"
        data = await r.read()
        assert data == (FIXTURES / "busybox.docker-save.tar").read_bytes()
        r = await client.get("/v1.41/images/busybox:latest/get")
        assert await r.read() == data
        r = await client.get("/images/get", params=[("names", "nosuch:1")])
        assert r.status == 404
        r = await client.post("/images/load", params={"quiet": "1"},
                              data=(FIXTURES / "layers.docker-save.tar").read_bytes(),
                              headers={"Content-Type": "application/x-tar"})
        assert r.status == 200
        lines = [json.loads(x) for x in (await r.text()).splitlines() if x.strip()]
        assert lines == [{"stream": "Loaded image: fixture/layers:1\n"}]
        r = await client.post("/images/load", data=b"not a tar" * 200)
        assert r.status == 400 and "invalid archive" in (await r.json())["message"]
    run(env, t)
