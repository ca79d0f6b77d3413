"""``search`` end to end in-process: the registry's ``GET /v1/search``, dockerd's search over it
(berth.registry.client.search) and the Engine API route ``GET /images/search``.

Everything listens on 127.0.0.1 (aiohttp TestServer) inside ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from berth.api import registry as registry_routes
from berth.api.app import error_middleware, version_middleware
from berth.errors import InvalidArgument
from berth.registry.client import Credentials, RegistryClient, RegistryError
from berth.registry.client.search import Searcher, check_filters, split_term
from berth.registry.server import create_app
from berth.registry.server.search_routes import search_page
from berth.registry.server.storage import Storage

SEEN = web.AppKey("seen", list)
REPOS = ["bt/alpha", "bt/searchme", "library/busybox", "other/SearchMe-too", "zz/searchme"]


def make_repos(root: Path, names: list[str]) -> None:
    """Repositories as the catalog sees them: a ``_manifests`` directory each."""
    repos = Storage(root).repos_dir
    for name in names:
        (repos / name / "_manifests").mkdir(parents=True)


def htpasswd(tmp_path: Path) -> str:
    path = tmp_path / "htpasswd"
    path.write_text("bob:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode() + "\n")
    return str(path)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def run_registry(root: Path, test, **kw) -> None:
    async def main():
        async with TestClient(TestServer(create_app(str(root), **kw), host="127.0.0.1")) as client:
            await test(client)
    asyncio.run(main())


# -- the registry's /v1/search -------------------------------------------------------------
def test_search_page_matching_and_pagination():
    page = search_page(REPOS, "searchme", 2, 1)
    assert page == {"num_results": 3, "num_pages": 2, "page": 1, "page_size": 2, "query": "searchme",
                    "results": [{"name": "bt/searchme", "description": "", "star_count": 0,
                                 "is_official": False, "is_automated": False},
                                {"name": "other/SearchMe-too", "description": "", "star_count": 0,
                                 "is_official": False, "is_automated": False}]}
    assert [r["name"] for r in search_page(REPOS, "searchme", 2, 2)["results"]] == ["zz/searchme"]
    assert search_page(REPOS, "searchme", 2, 3)["results"] == []
    assert search_page(REPOS, "", 25, 1)["num_results"] == len(REPOS)
    assert search_page(REPOS, "nothing", 25, 1) == {"num_results": 0, "num_pages": 0, "page": 1,
                                                    "page_size": 25, "query": "nothing", "results": []}


def test_v1_search_route(tmp_path: Path):
    make_repos(tmp_path / "root", REPOS)

    async def test(client):
        r = await client.get("/v1/search", params={"q": "searchme"})
        assert r.status == 200 and r.content_type == "application/json"
        body = await r.json()
        assert (body["num_results"], body["page"], body["page_size"]) == (3, 1, 25)
        assert [x["name"] for x in body["results"]] == ["bt/searchme", "other/SearchMe-too", "zz/searchme"]
        r = await client.get("/v1/search", params={"q": "SEARCHME", "n": "1", "page": "2"})
        body = await r.json()
        assert (body["num_pages"], body["page"], body["page_size"]) == (3, 2, 1)
        assert [x["name"] for x in body["results"]] == ["other/SearchMe-too"]
        r = await client.get("/v1/search", params={"q": "bt", "n": "500"})
        assert (await r.json())["page_size"] == 100
        r = await client.get("/v1/search")
        assert (await r.json())["num_results"] == len(REPOS)
        for bad in ({"n": "x"}, {"n": "0"}, {"n": "-1"}, {"page": "0"}, {"page": "two"}):
            r = await client.get("/v1/search", params={"q": "bt", **bad})
            assert r.status == 400
            assert (await r.json())["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"

    run_registry(tmp_path / "root", test)


def test_v1_search_route_honours_htpasswd(tmp_path: Path):
    make_repos(tmp_path / "root", ["bt/searchme"])

    async def test(client):
        r = await client.get("/v1/search", params={"q": "searchme"})
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == 'Basic realm="Registry Realm"'
        r = await client.get("/v1/search", params={"q": "searchme"},
                             headers={"Authorization": basic("bob", "wrong")})
        assert r.status == 401
        r = await client.get("/v1/search", params={"q": "searchme"},
                             headers={"Authorization": basic("bob", "s3cret")})
        assert r.status == 200
        assert [x["name"] for x in (await r.json())["results"]] == ["bt/searchme"]

    run_registry(tmp_path / "root", test, htpasswd=htpasswd(tmp_path))


# -- dockerd's search ----------------------------------------------------------------------
def test_split_term_and_filters():
    assert split_term("busybox") == ("docker.io", "busybox")
    assert split_term("bob/app") == ("docker.io", "bob/app")
    assert split_term("127.0.0.1:5000/bt/app") == ("127.0.0.1:5000", "bt/app")
    assert split_term("localhost/app") == ("localhost", "app")
    assert split_term("index.docker.io/app") == ("docker.io", "app")
    assert check_filters({}) == (False, None, None)
    assert check_filters({"is-official": ["true"], "stars": ["3", "10"]}) == (False, True, 10)
    assert check_filters({"is-automated": ["1"], "is-official": ["0"]}) == (True, False, None)
    for bad, msg in [({"label": ["x"]}, "invalid filter 'label'"),
                     ({"is-official": ["yes"]}, "invalid filter 'is-official=yes'"),
                     ({"is-official": ["true", "false"]}, "invalid filter 'is-official=true,false'"),
                     ({"stars": ["abc"]}, "invalid filter 'stars=abc': strconv.Atoi: parsing \"abc\": "
                                          "invalid syntax")]:
        with pytest.raises(InvalidArgument) as e:
            check_filters(bad)
        assert e.value.message == msg


def searcher_run(tmp_path: Path, test, repos: list[str] = REPOS, **kw) -> None:
    make_repos(tmp_path / "root", repos)

    async def main():
        server = TestServer(create_app(str(tmp_path / "root"), **kw), host="127.0.0.1")
        await server.start_server()
        client = RegistryClient()
        try:
            await test(Searcher(client), f"127.0.0.1:{server.port}")
        finally:
            await client.close()
            await server.close()
    asyncio.run(main())


def test_searcher_against_our_registry(tmp_path: Path):
    async def test(s: Searcher, host: str):
        found = await s.search(f"{host}/searchme", 0, {}, Credentials())
        assert found == [{"star_count": 0, "is_official": False, "name": n, "is_automated": False,
                          "description": ""} for n in ["bt/searchme", "other/SearchMe-too", "zz/searchme"]]
        assert [r["name"] for r in await s.search(f"{host}/searchme", 2, {}, Credentials())] == \
            ["bt/searchme", "other/SearchMe-too"]
        assert await s.search(f"{host}/searchme", 0, {"is-official": ["true"]}, Credentials()) == []
        assert len(await s.search(f"{host}/searchme", 0, {"is-official": ["false"]}, Credentials())) == 3
        assert await s.search(f"{host}/searchme", 0, {"stars": ["1"]}, Credentials()) == []
        assert await s.search(f"{host}/nothing", 0, {}, Credentials()) == []
        for limit in (-1, 101):
            with pytest.raises(InvalidArgument) as e:
                await s.search(f"{host}/x", limit, {}, Credentials())
            assert e.value.message == f"limit {limit} is outside the range of [1, 100]"
        with pytest.raises(InvalidArgument) as e:
            await s.search(f"http://{host}/x", 0, {}, Credentials())
        assert e.value.message == (f"invalid repository name: repository name (http://{host}/x) "
                                   "should not have a scheme")

    searcher_run(tmp_path, test)


def test_searcher_is_automated_asks_nobody():
    async def main():
        client = RegistryClient(loopback_only=True)
        try:  # Hub is refused under loopback_only: an answer means no request was made
            assert await Searcher(client).search("busybox", 0, {"is-automated": ["true"]}, Credentials()) == []
            with pytest.raises(RegistryError) as e:
                await Searcher(client).search("busybox", 0, {}, Credentials())
            assert "registry access is limited to loopback addresses" in e.value.message
            assert "https://index.docker.io/v1/search?q=busybox&n=25" in e.value.message
        finally:
            await client.close()
    asyncio.run(main())


def test_searcher_with_htpasswd(tmp_path: Path):
    async def test(s: Searcher, host: str):
        with pytest.raises(RegistryError) as e:
            await s.search(f"{host}/searchme", 0, {}, Credentials())
        assert (e.value.message, e.value.status) == ("Unexpected status code 401", 500)
        with pytest.raises(RegistryError) as e:
            await s.search(f"{host}/searchme", 0, {}, Credentials("bob", "wrong", host))
        assert e.value.message == "Unexpected status code 401"
        found = await s.search(f"{host}/searchme", 0, {}, Credentials("bob", "s3cret", host))
        assert [r["name"] for r in found] == ["bt/searchme"]

    searcher_run(tmp_path, test, repos=["bt/searchme", "bt/other"], htpasswd=htpasswd(tmp_path))


def fake_index(routes: dict[str, web.Response | dict]) -> web.Application:
    app = web.Application()
    seen: list[web.Request] = []
    app[SEEN] = seen

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request)
        reply = routes.get(request.path)
        if reply is None:
            return web.Response(status=404, text="404 page not found")
        return web.json_response(reply) if isinstance(reply, dict) else reply

    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def test_searcher_hub_index_and_results(tmp_path: Path):
    hub = {"num_results": 2, "query": "busybox", "results": [
        {"name": "busybox", "description": "Busybox base image.", "star_count": 3400, "is_official": True,
         "is_automated": True},
        {"name": "someone/busybox", "description": "", "star_count": 2, "is_official": False,
         "is_automated": False}]}

    async def main():
        server = TestServer(fake_index({"/v1/search": hub}), host="127.0.0.1")
        await server.start_server()
        client = RegistryClient(hub_origin=f"http://127.0.0.1:{server.port}", loopback_only=True)
        try:
            s = Searcher(client)
            found = await s.search("library/busybox", 10, {}, Credentials())
            assert [list(r) for r in found] == [["star_count", "is_official", "name", "is_automated",
                                                 "description"]] * 2
            assert [(r["name"], r["star_count"], r["is_official"], r["is_automated"]) for r in found] == \
                [("busybox", 3400, True, False), ("someone/busybox", 2, False, False)]
            req = server.app[SEEN][-1]
            assert (req.query["q"], req.query["n"]) == ("busybox", "10")  # library/ dropped
            assert req.headers["X-Docker-Token"] == "true" and "Authorization" not in req.headers
            assert not any(r.path == "/v1/_ping" for r in server.app[SEEN])  # Hub is not pinged
            official = await s.search("busybox", 0, {"is-official": ["true"], "stars": ["10"]}, Credentials())
            assert [r["name"] for r in official] == ["busybox"]
            await s.search("busybox", 0, {}, Credentials("hub", "pw", "https://index.docker.io/v1/"))
            assert server.app[SEEN][-1].headers["Authorization"] == basic("hub", "pw")
        finally:
            await client.close()
            await server.close()
    asyncio.run(main())


def test_searcher_index_without_search(tmp_path: Path):
    async def main():
        server = TestServer(fake_index({"/v1/_ping": {}}), host="127.0.0.1")
        await server.start_server()
        client = RegistryClient()
        try:
            with pytest.raises(RegistryError) as e:
                await Searcher(client).search(f"127.0.0.1:{server.port}/x", 0, {}, Credentials())
            assert (e.value.message, e.value.status) == ("Unexpected status code 404", 500)
        finally:
            await client.close()
            await server.close()
    asyncio.run(main())


def test_searcher_unreachable_index():
    async def main():
        client = RegistryClient()
        try:
            with pytest.raises(InvalidArgument) as e:
                await Searcher(client).search("127.0.0.1:1/x", 0, {}, Credentials())
            assert e.value.message == (
                'invalid registry endpoint "http://127.0.0.1:1/v1/". '
                'HTTPS attempt: Get "https://127.0.0.1:1/v1/_ping": dial tcp 127.0.0.1:1: connect: connection '
                'refused. HTTP attempt: Get "http://127.0.0.1:1/v1/_ping": dial tcp 127.0.0.1:1: connect: '
                "connection refused")
            with pytest.raises(InvalidArgument) as e:
                await Searcher(client).search("127.0.0.1:99999/x", 0, {}, Credentials())
            assert e.value.message == 'invalid port "99999"'
        finally:
            await client.close()
    asyncio.run(main())


# -- the Engine API route ------------------------------------------------------------------
def test_images_search_route(tmp_path: Path):
    make_repos(tmp_path / "root", REPOS)

    async def main():
        reg = TestServer(create_app(str(tmp_path / "root"), htpasswd=htpasswd(tmp_path)), host="127.0.0.1")
        await reg.start_server()
        host = f"127.0.0.1:{reg.port}"
        rc = RegistryClient(loopback_only=True)
        app = web.Application(middlewares=[error_middleware, version_middleware])
        app["backends"] = SimpleNamespace(registry=SimpleNamespace(client=rc))
        registry_routes.register(app.router, app["backends"].registry)
        auth = base64.urlsafe_b64encode(json.dumps({"username": "bob", "password": "s3cret",
                                                    "serveraddress": host}).encode()).decode()
        try:
            async with TestClient(TestServer(app, host="127.0.0.1")) as api:
                r = await api.get("/v1.41/images/search", params={"term": f"{host}/searchme"},
                                  headers={"X-Registry-Auth": auth})
                assert r.status == 200, await r.text()
                assert [x["name"] for x in await r.json()] == ["bt/searchme", "other/SearchMe-too", "zz/searchme"]
                r = await api.get("/images/search", params={"term": f"{host}/searchme", "limit": "1",
                                                            "filters": '{"is-official":{"false":true}}'},
                                  headers={"X-Registry-Auth": auth})
                assert [x["name"] for x in await r.json()] == ["bt/searchme"]
                r = await api.get("/images/search", params={"term": f"{host}/searchme"},
                                  headers={"X-Registry-Auth": "not base64 json"})
                assert (r.status, (await r.json())["message"]) == (500, "Unexpected status code 401")
                r = await api.get("/images/search", params={"term": "x", "limit": "ten"})
                assert (r.status, (await r.json())["message"]) == (
                    400, 'invalid limit specified: strconv.Atoi: parsing "ten": invalid syntax')
                r = await api.get("/images/search", params={"term": f"{host}/x", "limit": "-3"})
                assert (r.status, (await r.json())["message"]) == (400, "limit -3 is outside the range of [1, 100]")
                r = await api.get("/images/search", params={"term": "x", "filters": '{"bogus":{"1":true}}'})
                assert (r.status, (await r.json())["message"]) == (400, "invalid filter 'bogus'")
        finally:
            await rc.close()
            await reg.close()
    asyncio.run(main())
