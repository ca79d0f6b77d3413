"""Registry server: manifests (validation, exact bytes, negotiation, delete), tags, catalog, gc."""

from __future__ import annotations

import json

from test_registry_server import blob_files, errors_of, push_blob, push_image, run, sha

from berth.registry.server import collect, main

DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ALL = ", ".join([DOCKER, DOCKER_LIST, OCI, OCI_INDEX])


def test_manifest_roundtrip_exact_bytes(tmp_path):
    async def t(c):
        for mt, tag in ((DOCKER, "docker"), (OCI, "oci")):
            digest, data = await push_image(c, "img/app", tag, [b"layer-" + tag.encode()], media_type=mt)
            for ref in (tag, digest):
                r = await c.get(f"/v2/img/app/manifests/{ref}", headers={"Accept": ALL})
                assert r.status == 200
                assert await r.read() == data  # the exact pushed bytes (indent=3)
                assert r.headers["Content-Type"] == mt
                assert r.headers["Docker-Content-Digest"] == digest
                r = await c.head(f"/v2/img/app/manifests/{ref}", headers={"Accept": mt})
                assert r.status == 200
                assert r.headers["Content-Length"] == str(len(data))
                assert r.headers["Docker-Content-Digest"] == digest
        # pushed by digest: no tag
        digest, _ = await push_image(c, "img/app", None, [b"untagged"])
        r = await c.get(f"/v2/img/app/manifests/{digest}")
        assert r.status == 200
        r = await c.get("/v2/img/app/tags/list")
        assert (await r.json())["tags"] == ["docker", "oci"]
    run(tmp_path, t)


def test_manifest_put_location_and_retag(tmp_path):
    async def t(c):
        d1, data = await push_image(c, "m", "v1", [b"l1"])
        r = await c.put("/v2/m/manifests/latest", data=data, headers={"Content-Type": DOCKER})
        assert r.status == 201
        assert r.headers["Location"] == f"/v2/m/manifests/{d1}"
        d2, _ = await push_image(c, "m", "latest", [b"l2"])
        r = await c.get("/v2/m/manifests/latest")
        assert r.headers["Docker-Content-Digest"] == d2
        r = await c.get("/v2/m/manifests/v1")
        assert r.headers["Docker-Content-Digest"] == d1
    run(tmp_path, t)


def test_manifest_validation(tmp_path):
    async def t(c):
        cfg = await push_blob(c, "v", b"{}")
        layer = await push_blob(c, "v", b"layer")
        missing1, missing2 = sha(b"missing1"), sha(b"missing2")

        def doc(config, layers, mt=DOCKER):
            return json.dumps({"schemaVersion": 2, "mediaType": mt,
                               "config": {"mediaType": "x", "digest": config, "size": 2},
                               "layers": [{"mediaType": "y", "digest": d, "size": 1} for d in layers]})

        async def put(ref, body, ct=DOCKER):
            return await c.put(f"/v2/v/manifests/{ref}", data=body, headers={"Content-Type": ct})

        r = await put("t", doc(missing1, [layer, missing2]))
        assert r.status == 400
        body = await r.json()
        assert [e["code"] for e in body["errors"]] == ["MANIFEST_BLOB_UNKNOWN"] * 2
        assert [e["detail"]["digest"] for e in body["errors"]] == [missing1, missing2]
        # a blob of another repository does not count
        other = await push_blob(c, "elsewhere", b"other layer")
        r = await put("t", doc(cfg, [other]))
        assert await errors_of(r) == ["MANIFEST_BLOB_UNKNOWN"]
        for bad in (b"not json", b"[]", json.dumps({"schemaVersion": 1}).encode(),
                    json.dumps({"schemaVersion": 2, "mediaType": DOCKER}).encode(),
                    doc(cfg, [layer], mt=OCI).encode(),   # mediaType disagrees with Content-Type
                    doc("sha256:short", [layer]).encode(),
                    json.dumps({"schemaVersion": 2, "mediaType": DOCKER, "config": {"digest": cfg},
                                "layers": [{"digest": layer, "size": -1}]}).encode()):
            r = await put("t", bad)
            assert r.status == 400, bad
            assert await errors_of(r) == ["MANIFEST_INVALID"], bad
        r = await put("t", doc(cfg, [layer]), ct="application/vnd.docker.distribution.manifest.v1+json")
        assert await errors_of(r) == ["MANIFEST_INVALID"]
        good = doc(cfg, [layer]).encode()
        r = await put(sha(b"something else"), good)
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        r = await put("bad:tag", good)
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        r = await put("-badtag", good)
        assert r.status == 400 and await errors_of(r) == ["TAG_INVALID"]
        r = await put("t", good)
        assert r.status == 201
        # OCI without mediaType fields (optional there); Content-Type tells
        oci = json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": cfg, "size": 2},
                          "layers": []}).encode()
        r = await put("oci", oci, ct=OCI)
        assert r.status == 201
        r = await c.get("/v2/v/manifests/oci")
        assert r.headers["Content-Type"] == OCI
        # foreign layers with urls need not be here
        foreign = json.dumps({"schemaVersion": 2, "mediaType": DOCKER,
                              "config": {"mediaType": "x", "digest": cfg, "size": 2},
                              "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                                          "digest": missing1, "size": 1, "urls": ["https://x/y"]}]})
        r = await put("foreign", foreign)
        assert r.status == 201
    run(tmp_path, t)


def test_manifest_unknown(tmp_path):
    async def t(c):
        await push_image(c, "known", "1", [b"l"])
        for path in ("/v2/known/manifests/2", "/v2/unknown/manifests/1",
                     f"/v2/known/manifests/{sha(b'x')}", f"/v2/unknown/manifests/{sha(b'x')}"):
            r = await c.get(path)
            assert r.status == 404 and await errors_of(r) == ["MANIFEST_UNKNOWN"], path
        r = await c.get("/v2/known/manifests/sha256:123")
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
    run(tmp_path, t)


def test_index_and_negotiation(tmp_path):
    async def t(c):
        amd, amd_data = await push_image(c, "multi", None, [b"amd64"])
        arm, _ = await push_image(c, "multi", None, [b"arm64"])

        def index(mt, children):
            return json.dumps({"schemaVersion": 2, "mediaType": mt, "manifests": [
                {"mediaType": DOCKER, "digest": d, "size": 1, "platform": {"os": "linux", "architecture": a}}
                for d, a in children]}).encode()

        missing = sha(b"no such manifest")
        r = await c.put("/v2/multi/manifests/list", data=index(DOCKER_LIST, [(arm, "arm64"), (missing, "s390x")]),
                        headers={"Content-Type": DOCKER_LIST})
        assert r.status == 400 and await errors_of(r) == ["MANIFEST_BLOB_UNKNOWN"]
        # a layer blob is not a manifest
        layer = sha(b"amd64")
        r = await c.put("/v2/multi/manifests/list", data=index(DOCKER_LIST, [(layer, "amd64")]),
                        headers={"Content-Type": DOCKER_LIST})
        assert r.status == 400
        lst = index(DOCKER_LIST, [(arm, "arm64"), (amd, "amd64")])
        r = await c.put("/v2/multi/manifests/list", data=lst, headers={"Content-Type": DOCKER_LIST})
        assert r.status == 201
        oci_idx = index(OCI_INDEX, [(amd, "amd64")])
        r = await c.put("/v2/multi/manifests/oci", data=oci_idx, headers={"Content-Type": OCI_INDEX})
        assert r.status == 201
        r = await c.get("/v2/multi/manifests/list", headers={"Accept": f"{DOCKER}, {DOCKER_LIST}"})
        assert await r.read() == lst and r.headers["Content-Type"] == DOCKER_LIST
        # a client that does not know lists gets the linux/amd64 image
        r = await c.get("/v2/multi/manifests/list", headers={"Accept": DOCKER})
        assert await r.read() == amd_data
        assert r.headers["Docker-Content-Digest"] == amd
        # OCI types need to be accepted explicitly (when an Accept is given at all)
        r = await c.get("/v2/multi/manifests/oci", headers={"Accept": f"{DOCKER}, {DOCKER_LIST}"})
        assert r.status == 404 and await errors_of(r) == ["MANIFEST_UNKNOWN"]
        r = await c.get("/v2/multi/manifests/oci", headers=[("Accept", DOCKER), ("Accept", OCI_INDEX)])
        assert r.status == 200 and await r.read() == oci_idx
        r = await c.get("/v2/multi/manifests/oci", headers={"Accept": "*/*"})
        assert r.status == 200
    run(tmp_path, t)


def test_delete_manifest(tmp_path):
    async def t(c):
        d, _ = await push_image(c, "dm", "a", [b"l"])
        r = await c.put("/v2/dm/manifests/b", data=_, headers={"Content-Type": DOCKER})
        r = await c.delete("/v2/dm/manifests/a")
        assert r.status == 400 and await errors_of(r) == ["DIGEST_INVALID"]
        r = await c.delete(f"/v2/dm/manifests/{d}")
        assert r.status == 202
        for ref in ("a", "b", d):
            r = await c.get(f"/v2/dm/manifests/{ref}")
            assert r.status == 404 and await errors_of(r) == ["MANIFEST_UNKNOWN"]
        r = await c.get("/v2/dm/tags/list")
        assert (await r.json())["tags"] == []
        r = await c.delete(f"/v2/dm/manifests/{d}")
        assert r.status == 404 and await errors_of(r) == ["MANIFEST_UNKNOWN"]
        r = await c.delete(f"/v2/nope/manifests/{d}")
        assert r.status == 404 and await errors_of(r) == ["MANIFEST_UNKNOWN"]
    run(tmp_path, t)

    async def disabled(c):
        r = await c.delete(f"/v2/dm/manifests/{sha(b'x')}")
        assert r.status == 405 and await errors_of(r) == ["UNSUPPORTED"]
    run(tmp_path, disabled, delete_enabled=False)


def test_tags_list_pagination(tmp_path):
    async def t(c):
        _, data = await push_image(c, "p/q", "t0", [b"l"])
        tags = ["t0", "t1", "t2", "t3", "t4"]
        for tag in tags[1:]:
            r = await c.put(f"/v2/p/q/manifests/{tag}", data=data, headers={"Content-Type": DOCKER})
            assert r.status == 201
        r = await c.get("/v2/p/q/tags/list")
        assert await r.json() == {"name": "p/q", "tags": tags}
        assert "Link" not in r.headers
        seen, url = [], "/v2/p/q/tags/list?n=2"
        while url:
            r = await c.get(url)
            seen += (await r.json())["tags"]
            link = r.headers.get("Link")
            url = link[1:link.index(">")] if link else None
            if link:
                assert link.endswith('; rel="next"') and url.startswith("/v2/p/q/tags/list?")
        assert seen == tags
        r = await c.get("/v2/p/q/tags/list", params={"n": "2", "last": "t1"})
        assert (await r.json())["tags"] == ["t2", "t3"]
        r = await c.get("/v2/p/q/tags/list", params={"n": "0"})
        assert (await r.json())["tags"] == []
        for bad in ("-1", "x"):
            r = await c.get("/v2/p/q/tags/list", params={"n": bad})
            assert r.status == 400 and await errors_of(r) == ["PAGINATION_NUMBER_INVALID"]
        r = await c.get("/v2/nope/tags/list")
        assert r.status == 404 and await errors_of(r) == ["NAME_UNKNOWN"]
        await push_blob(c, "blobonly", b"x")  # a repository without manifests is not known
        r = await c.get("/v2/blobonly/tags/list")
        assert r.status == 404 and await errors_of(r) == ["NAME_UNKNOWN"]
    run(tmp_path, t)


def test_catalog_pagination(tmp_path):
    names = ["a", "a/b", "a/b/c", "b-x", "library/busybox", "z.z/y_y"]

    async def t(c):
        for name in reversed(names):
            await push_image(c, name, "1", [b"l"])
        await push_blob(c, "blobs/only", b"x")
        r = await c.get("/v2/_catalog")
        assert await r.json() == {"repositories": names}
        seen, url = [], "/v2/_catalog?n=4"
        pages = 0
        while url:
            r = await c.get(url)
            page = (await r.json())["repositories"]
            assert len(page) <= 4
            seen += page
            pages += 1
            link = r.headers.get("Link")
            url = link[1:link.index(">")] if link else None
        assert seen == names and pages == 2
        r = await c.get("/v2/_catalog", params={"n": "2", "last": "a/b"})
        body = await r.json()
        assert body["repositories"] == ["a/b/c", "b-x"]
        assert r.headers["Link"] == '</v2/_catalog?last=b-x&n=2>; rel="next"'
        r = await c.get("/v2/_catalog", params={"n": "abc"})
        assert r.status == 400 and await errors_of(r) == ["PAGINATION_NUMBER_INVALID"]
    run(tmp_path, t)


def test_gc(tmp_path, capsys):
    state = {}

    async def t(c):
        state["keep"], _ = await push_image(c, "g/one", "keep", [b"shared", b"only-keep"])
        state["drop"], _ = await push_image(c, "g/one", "drop", [b"shared", b"only-drop"])
        state["untagged"], _ = await push_image(c, "g/two", None, [b"only-untagged"])
        await push_blob(c, "g/two", b"dangling")
        r = await c.delete(f"/v2/g/one/manifests/{state['drop']}")
        assert r.status == 202
    run(tmp_path, t)
    before = blob_files(tmp_path)
    res = collect(tmp_path, dry_run=True)
    assert blob_files(tmp_path) == before
    assert set(res.deleted_blobs) == {state["drop"], sha(b"only-drop"), sha(b"dangling")}
    assert main(["gc", "--root", str(tmp_path)]) == 0
    assert "3 blobs" in capsys.readouterr().out
    assert len(blob_files(tmp_path)) == len(before) - 3
    assert not (tmp_path / "repositories/g/two/_layers/sha256" / sha(b"dangling")[7:]).exists()

    async def after(c):
        r = await c.get("/v2/g/one/manifests/keep")
        assert r.status == 200
        for layer in (b"shared", b"only-keep", b"only-untagged"):
            repo = "g/two" if layer == b"only-untagged" else "g/one"
            r = await c.get(f"/v2/{repo}/blobs/{sha(layer)}")
            assert r.status == 200 and await r.read() == layer
        r = await c.head(f"/v2/g/one/blobs/{sha(b'only-drop')}")
        assert r.status == 404
        r = await c.head(f"/v2/g/two/blobs/{sha(b'dangling')}")
        assert r.status == 404
    run(tmp_path, after)

    res = collect(tmp_path, delete_untagged=True)
    assert res.deleted_manifests == [("g/two", state["untagged"])]
    assert sha(b"only-untagged") in res.deleted_blobs
    assert sha(b"shared") not in res.deleted_blobs

    async def after_untagged(c):
        r = await c.get(f"/v2/g/two/manifests/{state['untagged']}")
        assert r.status == 404
        r = await c.get("/v2/g/one/manifests/keep")
        assert r.status == 200
    run(tmp_path, after_untagged)


def test_gc_keeps_index_children(tmp_path):
    async def t(c):
        child, _ = await push_image(c, "ix", None, [b"child layer"])
        idx = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                          "manifests": [{"mediaType": DOCKER, "digest": child, "size": 1}]}).encode()
        r = await c.put("/v2/ix/manifests/tagged", data=idx, headers={"Content-Type": OCI_INDEX})
        assert r.status == 201
    run(tmp_path, t)
    res = collect(tmp_path, delete_untagged=True)
    assert res.deleted_manifests == [] and res.deleted_blobs == []
