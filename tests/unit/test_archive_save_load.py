"""images/save.py, images/load.py: docker save / docker load against real Docker and skopeo archives."""

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from berth.errors import InvalidArgument, NotFound
from berth.images import ImageService
from berth.images.load import load
from berth.images.save import save

FIXTURES = Path(os.environ.get("BERTH_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures"))


def expected(name):
    image_id, diff_ids = (FIXTURES / f"{name}.expected.txt").read_text().split(None, 1)
    return image_id, json.loads(diff_ids)


@pytest.fixture
def svc(tmp_path):
    return ImageService(tmp_path / "data")


def state(svc):
    """Everything a load could leave behind."""
    root = svc.root
    return (sorted(svc.store.ids()), svc.store.refs(),
            sorted(p.name for p in (root / "layers").iterdir() if p.name not in ("tmp", "l")),
            sorted(os.listdir(root / "layers" / "l")),
            sorted(d for d, _ in svc.content.walk()),
            os.listdir(root / "layers" / "tmp"), os.listdir(root / "content" / "ingest"))


def fixture(name):
    return open(FIXTURES / name, "rb")


def test_load_docker_archives(svc):
    assert load(svc, fixture("busybox.docker-save.tar")) == ["busybox:latest"]
    assert load(svc, fixture("layers.docker-save.tar")) == ["fixture/layers:1"]
    for name, ref in (("busybox", "busybox:latest"), ("layers", "fixture/layers:1")):
        image_id, diff_ids = expected(name)
        info = svc.inspect(ref)
        assert info["Id"] == image_id
        assert info["RootFS"]["Layers"] == diff_ids
    # the busybox layer is shared, stored once
    layers = [p for p in (svc.root / "layers").iterdir() if len(p.name) == 64]
    assert len(layers) == 4
    img = svc.resolve("fixture/layers:1")
    top = img.lower_dirs[-1]
    assert (top / "hard").stat().st_ino == (top / "data/keep/a").stat().st_ino
    assert (top / "data/keep/a").stat().st_mode & 0o7777 == 0o4755
    assert os.readlink(top / "link") == "/data/keep/a"
    assert os.getxattr(top / "opq", "trusted.overlay.opaque") == b"y"
    assert (top / "opq/y").stat().st_uid == 1000


def test_load_twice_is_idempotent(svc):
    load(svc, fixture("layers.docker-save.tar"))
    before = state(svc)
    assert load(svc, fixture("layers.docker-save.tar")) == ["fixture/layers:1"]
    assert state(svc) == before


def test_load_oci_archive_same_layers(svc):
    assert load(svc, fixture("layers.oci.tar")) == ["fixture/layers:1"]
    _, diff_ids = expected("layers")
    info = svc.inspect("fixture/layers:1")
    assert info["RootFS"]["Layers"] == diff_ids
    assert info["Config"]["Cmd"] == ["cat", "/data/keep/a"]
    # the gzip blobs are kept as they came
    index = json.load(tarfile.open(FIXTURES / "layers.oci.tar").extractfile("index.json"))
    assert index["manifests"]
    manifest_digest = index["manifests"][0]["digest"]
    manifest = json.load(tarfile.open(FIXTURES / "layers.oci.tar").extractfile(
        "blobs/sha256/" + manifest_digest[7:]))
    for d in manifest["layers"]:
        assert svc.content.exists(d["digest"])
    # and the docker-archive of the same image reuses every layer
    layers_before = state(svc)[2]
    load(svc, fixture("layers.docker-save.tar"))
    assert state(svc)[2] == layers_before


def test_load_gzipped_archive(svc):
    data = gzip.compress((FIXTURES / "busybox.docker-save.tar").read_bytes(), compresslevel=1)
    assert load(svc, io.BytesIO(data)) == ["busybox:latest"]
    assert svc.resolve_id("busybox") == expected("busybox")[0]


def test_save_is_byte_identical_to_docker(svc):
    for name in ("busybox", "layers"):
        load(svc, fixture(f"{name}.docker-save.tar"))
    for ref, name in (("busybox", "busybox"), ("fixture/layers:1", "layers")):
        out = io.BytesIO()
        save(svc, [ref], out)
        assert out.getvalue() == (FIXTURES / f"{name}.docker-save.tar").read_bytes()


def test_round_trip_keeps_ids_tags_history(svc, tmp_path):
    load(svc, fixture("busybox.docker-save.tar"))
    load(svc, fixture("layers.docker-save.tar"))
    svc.tag("fixture/layers:1", "bt/other:v2")
    history = svc.history("fixture/layers:1")
    out = io.BytesIO()
    save(svc, ["fixture/layers:1", "bt/other", "busybox"], out)
    names = tarfile.open(fileobj=io.BytesIO(out.getvalue())).getnames()
    assert names.count("manifest.json") == 1
    manifest = json.load(tarfile.open(fileobj=io.BytesIO(out.getvalue())).extractfile("manifest.json"))
    assert [m["RepoTags"] for m in manifest] == [["fixture/layers:1", "bt/other:v2"], ["busybox:latest"]]
    # the busybox layer is written once; its second v1 id links to it, as dockerd does
    tf = tarfile.open(fileobj=io.BytesIO(out.getvalue()))
    layer_files = [m for m in tf if m.name.endswith("/layer.tar")]
    assert sum(m.isreg() for m in layer_files) == 4
    assert [m.linkname for m in layer_files if m.issym()] == \
        ["../b119f6d7ca33c7953b2ac3a36e05784831867d736925c7d3dbbe43dbd7f0d818/layer.tar"]
    other = ImageService(tmp_path / "other")
    loaded = load(other, io.BytesIO(out.getvalue()))
    assert loaded == ["fixture/layers:1", "bt/other:v2", "busybox:latest"]
    assert other.resolve_id("bt/other:v2") == expected("layers")[0]
    assert other.resolve_id("busybox") == expected("busybox")[0]
    assert [h["CreatedBy"] for h in other.history("fixture/layers:1")] == \
        [h["CreatedBy"] for h in history]


def test_save_by_id_is_untagged(svc, tmp_path):
    load(svc, fixture("busybox.docker-save.tar"))
    image_id = svc.resolve_id("busybox")
    out = io.BytesIO()
    save(svc, [image_id[7:19]], out)
    tf = tarfile.open(fileobj=io.BytesIO(out.getvalue()))
    assert json.load(tf.extractfile("manifest.json"))[0]["RepoTags"] is None
    assert "repositories" not in tf.getnames()
    other = ImageService(tmp_path / "other")
    assert load(other, io.BytesIO(out.getvalue())) == [image_id]
    assert not other.list_images()[0]["RepoTags"]


def test_save_unknown(svc):
    with pytest.raises(NotFound):
        save(svc, ["nosuch:1"], io.BytesIO())
    with pytest.raises(InvalidArgument):
        save(svc, [], io.BytesIO())


# -- hostile and broken archives -----------------------------------------------------------------
def rebuild(src: Path, edit) -> bytes:
    """The archive ``src`` with its members passed through ``edit(name, data) -> data | None``."""
    out = io.BytesIO()
    with tarfile.open(src) as tin, tarfile.open(fileobj=out, mode="w") as tout:
        for ti in tin:
            data = tin.extractfile(ti).read() if ti.isreg() else None
            if data is not None:
                data = edit(ti.name, data)
                if data is None:
                    continue
                ti.size = len(data)
            tout.addfile(ti, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def layer_tar(*members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, body in members:
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    return buf.getvalue()


def assert_refused(svc, data: bytes, match: str):
    load(svc, fixture("busybox.docker-save.tar"))
    before = state(svc)
    with pytest.raises(InvalidArgument, match=match):
        load(svc, io.BytesIO(data))
    assert state(svc) == before


def top_layer_name():
    with tarfile.open(FIXTURES / "layers.docker-save.tar") as tf:
        manifest = json.load(tf.extractfile("manifest.json"))
    return manifest[0]["Layers"][-1], manifest[0]["Config"]


def test_hostile_layer_path_refused(svc, tmp_path):
    """A layer escaping with ../ (its diff id matching its config) is refused; nothing kept,
    nothing written outside the data-root."""
    evil = layer_tar(("../../../escaped", b"x"))
    top, config_name = top_layer_name()

    def edit(name, data):
        if name == top:
            return evil
        if name == config_name:
            config = json.loads(data)
            config["rootfs"]["diff_ids"][-1] = "sha256:" + hashlib.sha256(evil).hexdigest()
            return json.dumps(config).encode()
        return data

    data = rebuild(FIXTURES / "layers.docker-save.tar", edit)
    assert_refused(svc, data, "outside the layer")
    assert not list(tmp_path.rglob("escaped"))
    assert not os.path.exists("/escaped")


def test_diff_id_mismatch_refused(svc):
    top, _ = top_layer_name()
    data = rebuild(FIXTURES / "layers.docker-save.tar",
                   lambda n, d: layer_tar(("other", b"y")) if n == top else d)
    assert_refused(svc, data, "diff id mismatch")


def test_missing_layer_refused(svc):
    top, _ = top_layer_name()
    data = rebuild(FIXTURES / "layers.docker-save.tar", lambda n, d: None if n == top else d)
    assert_refused(svc, data, "missing")


def test_truncated_archive_refused(svc):
    raw = (FIXTURES / "layers.docker-save.tar").read_bytes()
    assert_refused(svc, raw[: len(raw) // 2], "invalid archive")
    assert_refused(svc, raw[:700], "invalid archive")


def test_not_an_archive(svc):
    assert_refused(svc, b"hello" * 300, "invalid archive")
    assert_refused(svc, layer_tar(("foo", b"bar")), "no manifest.json or index.json")


def test_oci_blob_digest_mismatch_refused(svc):
    """A gzip layer blob altered (still valid gzip, still the right diff id is impossible):
    refused by its blob digest before it is unpacked."""
    with tarfile.open(FIXTURES / "layers.oci.tar") as tf:
        index = json.load(tf.extractfile("index.json"))
        manifest = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
    small = manifest["layers"][-1]["digest"][7:]

    def edit(name, data):
        if name == f"blobs/sha256/{small}":
            return gzip.compress(gzip.decompress(data), mtime=1, compresslevel=1)
        return data

    assert_refused(svc, rebuild(FIXTURES / "layers.oci.tar", edit), "digest mismatch")


def test_oci_missing_blob_refused(svc):
    with tarfile.open(FIXTURES / "layers.oci.tar") as tf:
        index = json.load(tf.extractfile("index.json"))
        manifest = json.load(tf.extractfile("blobs/sha256/" + index["manifests"][0]["digest"][7:]))
    gone = "blobs/sha256/" + manifest["layers"][1]["digest"][7:]
    data = rebuild(FIXTURES / "layers.oci.tar", lambda n, d: None if n == gone else d)
    assert_refused(svc, data, "missing")


def test_failed_second_image_undoes_the_first(svc, tmp_path):
    """Two images in one archive, the second broken: the first is neither tagged nor kept."""
    ok = ImageService(tmp_path / "ok")
    load(ok, fixture("busybox.docker-save.tar"))
    load(ok, fixture("layers.docker-save.tar"))
    out = io.BytesIO()
    save(ok, ["busybox", "fixture/layers:1"], out)
    top, _ = top_layer_name()
    data = rebuild_bytes(out.getvalue(), lambda n, d: layer_tar(("z", b"z")) if n == top else d)
    before = state(svc)
    with pytest.raises(InvalidArgument):
        load(svc, io.BytesIO(data))
    assert state(svc) == before


def rebuild_bytes(raw: bytes, edit) -> bytes:
    p = Path(os.environ.get("TMPDIR", "/tmp")) / f"bt-rebuild-{os.getpid()}.tar"
    p.write_bytes(raw)
    try:
        return rebuild(p, edit)
    finally:
        p.unlink()


def docker25_archive() -> bytes:
    """The layers fixture rewritten as Docker 25+ saves: an OCI layout plus manifest.json."""
    with tarfile.open(FIXTURES / "layers.docker-save.tar") as tf:
        old = json.load(tf.extractfile("manifest.json"))[0]
        config = tf.extractfile(old["Config"]).read()
        layers = [tf.extractfile(p).read() for p in old["Layers"]]
    blobs = {"sha256:" + hashlib.sha256(b).hexdigest(): b for b in [config, *layers]}
    ids = list(blobs)
    oci_manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": ids[0],
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                    "size": len(blobs[d])} for d in ids[1:]]}).encode()
    mdigest = "sha256:" + hashlib.sha256(oci_manifest).hexdigest()
    blobs[mdigest] = oci_manifest
    files = {f"blobs/sha256/{d[7:]}": b for d, b in blobs.items()}
    files["oci-layout"] = b'{"imageLayoutVersion":"1.0.0"}'
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
        "size": len(oci_manifest), "annotations": {
            "io.containerd.image.name": "docker.io/fixture/layers:1",
            "org.opencontainers.image.ref.name": "1"}}]}).encode()
    files["manifest.json"] = json.dumps([{
        "Config": f"blobs/sha256/{ids[0][7:]}", "RepoTags": ["fixture/layers:1"],
        "Layers": [f"blobs/sha256/{d[7:]}" for d in ids[1:]]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    return out.getvalue()


def test_load_docker25_archive(svc):
    data = docker25_archive()
    assert load(svc, io.BytesIO(data)) == ["fixture/layers:1"]
    assert svc.resolve_id("fixture/layers:1") == expected("layers")[0]


def test_docker25_index_only(svc):
    """Without manifest.json the same archive loads as an OCI layout, named by containerd's
    annotation."""
    data = rebuild_bytes(docker25_archive(), lambda n, d: None if n == "manifest.json" else d)
    assert load(svc, io.BytesIO(data)) == ["fixture/layers:1"]
    assert svc.resolve_id("fixture/layers:1") == expected("layers")[0]


def test_docker25_blob_tampered(svc):
    data = docker25_archive()
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        last = json.load(tf.extractfile("manifest.json"))[0]["Layers"][-1]
    bad = rebuild_bytes(data, lambda n, d: d[:-1024] + b"\1" + d[-1023:] if n == last else d)
    assert_refused(svc, bad, "digest mismatch")


def test_symlink_out_of_archive_refused(svc):
    top, _ = top_layer_name()
    raw = (FIXTURES / "layers.docker-save.tar").read_bytes()
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tin, tarfile.open(fileobj=out, mode="w") as tout:
        for ti in tin:
            if ti.name == top:
                link = tarfile.TarInfo(top)
                link.type, link.linkname = tarfile.SYMTYPE, "../../../../etc/passwd"
                tout.addfile(link)
                continue
            tout.addfile(ti, tin.extractfile(ti) if ti.isreg() else None)
    assert_refused(svc, out.getvalue(), "outside the archive")
