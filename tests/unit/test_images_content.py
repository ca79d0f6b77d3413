"""ContentStore ingest guarantees, and registering a real Docker image (the load path)."""

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from berth.content import ContentStore
from berth.errors import InvalidArgument, NotFound
from berth.images import ImageService

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"  # ../shared beside the checkout


def test_ingest_and_read(tmp_path):
    cs = ContentStore(tmp_path)
    data = b"x" * 3_000_000
    digest, size = cs.ingest(io.BytesIO(data))
    assert digest == "sha256:" + hashlib.sha256(data).hexdigest() and size == len(data)
    assert cs.exists(digest) and cs.path(digest).read_bytes() == data
    with cs.open(digest) as f:
        assert f.read(3) == b"xxx"
    assert list(cs.walk()) == [(digest, size)]
    cs.delete(digest)
    assert not cs.exists(digest)
    with pytest.raises(NotFound):
        cs.open(digest)
    with pytest.raises(NotFound):
        cs.delete(digest)


def test_ingest_verifies(tmp_path):
    cs = ContentStore(tmp_path)
    wrong = "sha256:" + "0" * 64
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        cs.ingest(io.BytesIO(b"data"), expected_digest=wrong)
    with pytest.raises(InvalidArgument, match="size mismatch"):
        cs.ingest(io.BytesIO(b"data"), expected_size=5)
    assert list(cs.walk()) == [] and os.listdir(cs.root / "ingest") == []
    with pytest.raises(InvalidArgument):
        cs.path("sha256:../../etc/passwd")
    good = "sha256:" + hashlib.sha256(b"data").hexdigest()
    assert cs.ingest(io.BytesIO(b"data"), expected_digest=good) == (good, 4)


def test_recover_removes_partial_ingest(tmp_path):
    cs = ContentStore(tmp_path)
    w = cs.writer()
    w.write(b"half")
    # simulated crash: the writer is never committed
    assert len(os.listdir(cs.root / "ingest")) == 1
    assert len(ContentStore(tmp_path).recover()) == 1
    assert list(cs.walk()) == []


@pytest.mark.parametrize("archive,expected", [("busybox.docker-save.tar", "busybox.expected.txt"),
                                              ("layers.docker-save.tar", "layers.expected.txt")])
def test_register_docker_saved_image(tmp_path, archive, expected):
    """The load path: layers through apply_tar, the config bytes as saved → Docker's image id."""
    if archive.startswith("layers") and os.geteuid() != 0:
        pytest.skip("needs root")
    image_id, diff_ids = (FIXTURES / expected).read_text().split(None, 1)
    svc = ImageService(tmp_path / "data")
    tf = tarfile.open(FIXTURES / archive)
    manifest = json.load(tf.extractfile("manifest.json"))[0]
    parent = None
    for member, diff_id in zip(manifest["Layers"], json.loads(diff_ids), strict=True):
        parent = svc.layers.apply_tar(tf.extractfile(member), parent, expected_diff_id=diff_id).chain_id
    from berth.images.reference import parse_docker_ref
    got = svc.create_image(tf.extractfile(manifest["Config"]).read(),
                           tags=[parse_docker_ref(t) for t in manifest["RepoTags"]])
    assert got == image_id
    assert svc.list_images()[0]["RepoTags"] == manifest["RepoTags"]
    assert svc.inspect(manifest["RepoTags"][0])["RootFS"]["Layers"] == json.loads(diff_ids)
    hist = svc.history(image_id)
    assert hist[0]["Id"] == image_id and hist[-1]["Comment"] == "Imported from -"
    assert all(h["Id"] == "<missing>" for h in hist[1:])
