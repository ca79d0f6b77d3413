"""ImageService: import, resolve, list, inspect, history, tag, remove, recover."""

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from berth.errors import Conflict, InvalidArgument, NotFound
from berth.images import ImageService
from berth.images.config import parse_time
from berth.images.rootfs import make_busybox_rootfs_tar

HAVE_BUSYBOX = os.path.exists("/bin/busybox")


@pytest.fixture(scope="session")
def rootfs_tar(tmp_path_factory):
    if not HAVE_BUSYBOX:
        pytest.skip("no /bin/busybox")
    return make_busybox_rootfs_tar(tmp_path_factory.mktemp("rootfs") / "busybox.tar")


def small_tar(content=b"hi", name="f"):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo(name)
        ti.size = len(content)
        tf.addfile(ti, io.BytesIO(content))
    return buf.getvalue()


@pytest.fixture
def svc(tmp_path):
    return ImageService(tmp_path / "data")


def files(root: Path, sub: str):
    return sorted(p.name for p in (root / sub).iterdir())


def test_rootfs_tar_is_deterministic(tmp_path, rootfs_tar):
    again = make_busybox_rootfs_tar(tmp_path / "again.tar")
    assert again.read_bytes() == rootfs_tar.read_bytes()
    names = tarfile.open(rootfs_tar).getnames()
    assert "bin/busybox" in names and "bin/sh" in names and "etc/passwd" in names
    mode = {ti.name: ti.mode for ti in tarfile.open(rootfs_tar)}
    assert mode["tmp"] == 0o1777


def test_import_busybox(svc, rootfs_tar):
    image_id = svc.import_image(open(rootfs_tar, "rb"), "bt/imported:v1", None, [], "")
    images = svc.list_images()
    assert [i["Id"] for i in images] == [image_id]
    assert images[0]["RepoTags"] == ["bt/imported:v1"]
    config_bytes = svc.content.read_bytes(image_id)
    assert image_id == "sha256:" + hashlib.sha256(config_bytes).hexdigest()
    config = json.loads(config_bytes)
    diff_id = "sha256:" + hashlib.sha256(rootfs_tar.read_bytes()).hexdigest()
    assert config["rootfs"] == {"type": "layers", "diff_ids": [diff_id]}
    assert config["history"][0]["comment"] == "Imported from -"
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Env"] is None and config["config"]["Cmd"] is None
    img = svc.resolve("bt/imported:v1")
    assert img.id == image_id and img.chain_id == diff_id and img.repo_tags == ["bt/imported:v1"]
    assert (img.lower_dirs[0] / "bin" / "busybox").is_file()
    assert os.readlink(img.lower_dirs[0] / "bin" / "sh") == "/bin/busybox"
    # the tarball is kept as a blob
    assert svc.content.exists(svc.layers.get(diff_id).blob_digest)


def test_import_twice_stores_layer_once(svc):
    data = gzip.compress(small_tar())
    a = svc.import_image(io.BytesIO(data), "bt/a", None, [], "")
    b = svc.import_image(io.BytesIO(data), "bt/b", "t", [], "other message")
    assert a != b
    assert len(svc.layers.walk()) == 1
    assert svc.inspect("bt/b:t")["Comment"] == "other message"


def test_import_changes(svc):
    changes = ['CMD ["sh", "-c", "echo hi"]', "ENV A=1 B=\"x y\"", "ENV C 3 4", "WORKDIR /data",
               "WORKDIR sub", "ENTRYPOINT /bin/run me", "USER nobody", "EXPOSE 8080 53/udp",
               "LABEL a=b", "VOLUME /v1 /v2", "STOPSIGNAL SIGTERM", "ONBUILD RUN true"]
    image_id = svc.import_image(io.BytesIO(small_tar()), "bt/changes", None, changes, "")
    cfg = svc.resolve(image_id).config["config"]
    assert cfg["Cmd"] == ["sh", "-c", "echo hi"]
    assert cfg["Env"] == ["A=1", "B=x y", "C=3 4"]
    assert cfg["WorkingDir"] == "/data/sub"
    assert cfg["Entrypoint"] == ["/bin/sh", "-c", "/bin/run me"]
    assert cfg["User"] == "nobody"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"a": "b"}
    assert cfg["Volumes"] == {"/v1": {}, "/v2": {}}
    assert cfg["StopSignal"] == "SIGTERM"
    assert cfg["OnBuild"] == ["RUN true"]
    inspect = svc.inspect("bt/changes")
    assert inspect["Config"]["Cmd"] == ["sh", "-c", "echo hi"]
    assert list(inspect["Config"])[:3] == ["Hostname", "Domainname", "User"]


def test_bad_change_rejected(svc):
    with pytest.raises(InvalidArgument, match="^run is not a valid change command$"):
        svc.import_image(io.BytesIO(small_tar()), "bt/x", None, ["RUN true"], "")
    assert svc.list_images() == []


def test_not_a_tar_leaves_nothing(svc, tmp_path):
    with pytest.raises(InvalidArgument, match="archive/tar: invalid tar header"):
        svc.import_image(io.BytesIO(b"definitely not a tarball\n" * 50), "bt/bad", None, [], "")
    root = tmp_path / "data"
    assert files(root, "content/blobs/sha256") == []
    assert files(root, "content/ingest") == []
    assert [n for n in files(root, "layers") if n not in ("l", "tmp")] == []
    assert files(root, "layers/tmp") == []
    assert svc.store.refs() == {} and svc.list_images() == []


def test_invalid_reference(svc):
    for repo in ("Bad/Name", "bt/x:bad tag!", "UPPER"):
        with pytest.raises(InvalidArgument):
            svc.import_image(io.BytesIO(small_tar()), repo, None, [], "")
    assert svc.list_images() == []


def test_resolve_forms(svc):
    image_id = svc.import_image(io.BytesIO(small_tar()), "busybox", None, [], "")
    hexid = image_id[7:]
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", image_id, hexid,
                hexid[:12], hexid[:3], "sha256:" + hexid[:12]):
        assert svc.resolve(ref).id == image_id, ref
    with pytest.raises(NotFound, match="^No such image: nothere:latest$"):
        svc.resolve("nothere")
    with pytest.raises(NotFound, match="^No such image: busybox:other$"):
        svc.resolve("busybox:other")
    with pytest.raises(NotFound):
        svc.resolve("sha256:" + "0" * 64)


def test_ambiguous_prefix(svc):
    ids = {svc.import_image(io.BytesIO(small_tar(bytes([i]))), None, None, [], "") for i in range(40)}
    first = {i[7] for i in ids}
    common = next(c for c in first if sum(1 for i in ids if i[7] == c) > 1)
    with pytest.raises(NotFound):
        svc.resolve(common)


def test_tag_and_list(svc):
    a = svc.import_image(io.BytesIO(small_tar(b"a")), "bt/a:1", None, ["LABEL k=v"], "")
    b = svc.import_image(io.BytesIO(small_tar(b"b")), None, None, [], "")
    svc.tag("bt/a:1", "docker.io/myuser/app", "2")
    svc.tag(a[7:19], "127.0.0.1:5000/x")
    assert set(svc.resolve(a).repo_tags) == {"bt/a:1", "myuser/app:2", "127.0.0.1:5000/x:latest"}
    by_id = {i["Id"]: i for i in svc.list_images()}
    assert by_id[b]["RepoTags"] is None
    assert [i["Id"] for i in svc.list_images(filters={"dangling": ["true"]})] == [b]
    assert [i["Id"] for i in svc.list_images(filters={"dangling": {"false": True}})] == [a]
    assert [i["Id"] for i in svc.list_images(filters={"label": ["k=v"]})] == [a]
    assert svc.list_images(filters={"label": ["k=other"]}) == []
    ref = svc.list_images(filters={"reference": ["myuser/*"]})
    assert [i["RepoTags"] for i in ref] == [["myuser/app:2"]]
    assert svc.list_images(filters={"reference": ["bt/a:1"]})[0]["Id"] == a
    with pytest.raises(InvalidArgument):
        svc.list_images(filters={"bogus": ["1"]})
    with pytest.raises(NotFound):
        svc.tag("nothere", "x")
    # retagging moves the tag
    svc.tag(b, "bt/a", "1")
    assert svc.resolve("bt/a:1").id == b
    assert svc.inspect(b)["Metadata"]["LastTagTime"] != "0001-01-01T00:00:00Z"


def test_since_before_order(svc):
    ids = []
    for i in range(3):
        ids.append(svc.import_image(io.BytesIO(small_tar(bytes([i]))), f"bt/o{i}", None, [], ""))
    assert [i["Id"] for i in svc.list_images()] == ids[::-1]
    assert [i["Id"] for i in svc.list_images(filters={"since": ["bt/o0"]})] == ids[:0:-1]
    assert [i["Id"] for i in svc.list_images(filters={"before": ["bt/o2"]})] == ids[1::-1]


def test_inspect_and_history(svc):
    image_id = svc.import_image(io.BytesIO(small_tar()), "bt/h:1", None, [], "my import")
    body = svc.inspect("bt/h:1")
    for key in ("Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
                "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
                "VirtualSize", "GraphDriver", "RootFS", "Metadata"):
        assert key in body
    assert body["Id"] == image_id and body["RepoTags"] == ["bt/h:1"] and body["Comment"] == "my import"
    assert body["RootFS"]["Type"] == "layers" and len(body["RootFS"]["Layers"]) == 1
    assert body["GraphDriver"]["Name"] == "overlay2"
    assert body["Created"].endswith("Z") and "." in body["Created"]
    with pytest.raises(NotFound, match="^no such image: nope: No such image: nope:latest$"):
        svc.inspect("nope")
    hist = svc.history("bt/h:1")
    created = int(parse_time(body["Created"]))
    assert hist == [{"Comment": "my import", "Created": created, "CreatedBy": "",
                     "Id": image_id, "Size": 2, "Tags": ["bt/h:1"]}]


def test_remove_by_tag_and_id(svc, tmp_path):
    a = svc.import_image(io.BytesIO(small_tar()), "bt/r:1", None, [], "")
    svc.tag(a, "bt/r", "2")
    assert svc.remove("bt/r:1") == [{"Untagged": "bt/r:1"}]
    assert svc.resolve("bt/r:2").id == a
    res = svc.remove("bt/r:2")
    assert res[0] == {"Untagged": "bt/r:2"} and res[1] == {"Deleted": a}
    assert res[2]["Deleted"].startswith("sha256:")
    assert svc.list_images() == []
    root = tmp_path / "data"
    assert files(root, "content/blobs/sha256") == []
    assert [n for n in files(root, "layers") if n not in ("l", "tmp")] == []
    with pytest.raises(NotFound, match="No such image: bt/r:2"):
        svc.remove("bt/r:2")


def test_remove_multiple_repositories(svc):
    a = svc.import_image(io.BytesIO(small_tar()), "bt/m:1", None, [], "")
    svc.tag(a, "other/m", "1")
    with pytest.raises(Conflict, match=f"unable to delete {a[7:19]} \\(must be forced\\) - image is referenced in multiple repositories"):
        svc.remove(a[7:19])
    res = svc.remove(a[7:19], force=True)
    assert {"Untagged": "bt/m:1"} in res and {"Untagged": "other/m:1"} in res and {"Deleted": a} in res
    # tags of the same repository are removed by id without force
    b = svc.import_image(io.BytesIO(small_tar(b"b")), "bt/s:1", None, [], "")
    svc.tag(b, "bt/s", "2")
    assert {"Deleted": b} in svc.remove(b)


def test_remove_keeps_shared_layers(svc):
    data = small_tar()
    a = svc.import_image(io.BytesIO(data), "bt/a", None, [], "")
    svc.import_image(io.BytesIO(data), "bt/b", None, [], "one")
    assert svc.remove("bt/a") == [{"Untagged": "bt/a:latest"}, {"Deleted": a}]
    assert len(svc.layers.walk()) == 1
    assert svc.resolve("bt/b").lower_dirs[0].is_dir()


def test_remove_in_use(tmp_path):
    users = {}
    svc = ImageService(tmp_path / "data", image_in_use=lambda image_id: users.get(image_id))
    a = svc.import_image(io.BytesIO(small_tar()), "bt/u:1", None, [], "")
    users[a] = "c" * 64
    with pytest.raises(Conflict) as e:
        svc.remove("bt/u:1")
    assert e.value.message == (f'conflict: unable to remove repository reference "bt/u:1" (must force) - '
                               f"container {'c' * 12} is using its referenced image {a[7:19]}")
    with pytest.raises(Conflict):
        svc.remove(a)
    assert svc.remove("bt/u:1", force=True) == [{"Untagged": "bt/u:1"}]
    assert svc.resolve(a).id == a  # kept while the container uses it
    users.clear()
    assert svc.remove(a)[0] == {"Deleted": a}


def test_recover(svc, tmp_path):
    a = svc.import_image(io.BytesIO(small_tar()), "bt/keep", None, [], "")
    root = tmp_path / "data"
    (root / "content" / "ingest" / "blob-crashed").write_bytes(b"partial")
    (root / "layers" / "tmp" / "unpack-crashed").mkdir()
    (root / "images" / ("d" * 64)).mkdir()
    # an orphan layer from an import that died before its image was recorded
    orphan = svc.layers.apply_tar(io.BytesIO(small_tar(b"orphan")))
    refs = svc.store.refs()
    refs["docker.io/bt/dangling:latest"] = "sha256:" + "9" * 64
    svc.store._write_refs(refs)
    svc2 = ImageService(root)
    svc2.recover()
    assert files(root, "content/ingest") == [] and files(root, "layers/tmp") == []
    assert not (root / "images" / ("d" * 64)).exists()
    assert svc2.layers.exists(orphan.chain_id)  # complete: kept for a retried pull or import
    assert list(svc2.store.refs()) == ["docker.io/bt/keep:latest"]
    assert svc2.resolve("bt/keep").id == a
    assert [cid for cid, _ in svc2.prune_unused_layers()] == [orphan.chain_id]
    assert not svc2.layers.exists(orphan.chain_id) and svc2.layers.exists(svc2.resolve(a).chain_id)
