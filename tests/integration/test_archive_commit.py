"""Commit, diff and export of a real container's read-write layer, and loaded images run.

The container runs in the session's berthd; commit/diff/export are called directly on its
record and layer dirs (the routes are tested in-process in tests/unit/test_archive_api.py), and
the results are run through the same daemon, which reads the images from the shared data-root.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from berth.containers.export import container_changes, export_container
from berth.images import ImageService
from berth.images.commit import commit_container
from berth.images.load import load

FIXTURES = Path(os.environ.get("BERTH_FIXTURES", Path(__file__).resolve().parents[3] / "shared" / "fixtures"))


def record(daemon, cid: str) -> SimpleNamespace:
    cdir = daemon.data_root / "containers" / cid
    data = json.loads((cdir / "container.json").read_text())
    return SimpleNamespace(dir=cdir, **data)


@pytest.fixture
def c1(berth, daemon):
    r = berth("run", "--name", "arc-c1", "busybox", "sh", "-c",
              "echo x > /new; rm /etc/group; mkdir -p /tmp/d; ln /new /tmp/d/hard")
    assert r.returncode == 0, r.stderr
    cid = berth.inspect("arc-c1")["Id"]
    return record(daemon, cid)


def test_diff_of_a_real_container(c1, daemon):
    images = ImageService(daemon.data_root)
    got = {(c["Path"], c["Kind"]) for c in container_changes(c1, images)}
    assert got == {("/new", 1), ("/etc", 0), ("/etc/group", 2), ("/tmp", 0), ("/tmp/d", 1),
                   ("/tmp/d/hard", 1)}


def test_commit_then_run(c1, daemon, berth):
    images = ImageService(daemon.data_root)
    image_id = commit_container(
        images, container_id=c1.Id, image_id=c1.ImageID, container_config=c1.Config,
        upper=c1.dir / "rw" / "upper", repo="bt/committed", tag="v1", comment="from a test",
        changes=["CMD [\"cat\", \"/new\"]"])
    try:
        r = berth("run", "--rm", "bt/committed:v1")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "x\n"
        r = berth("run", "--rm", "bt/committed:v1", "sh", "-c",
                  "test ! -e /etc/group && test -d /tmp/d && stat -c %h /new && cat /etc/passwd")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith("2\nroot:")
        info = berth.inspect("bt/committed:v1")
        assert info["Id"] == image_id and info["Parent"] == c1.ImageID
        hist = images.history("bt/committed:v1")[0]
        assert hist["Comment"] == "from a test" and hist["CreatedBy"].startswith("sh -c echo x")
    finally:
        berth("rmi", "bt/committed:v1")


def test_export_of_a_real_container(c1, daemon):
    images = ImageService(daemon.data_root)
    buf = io.BytesIO()
    export_container(c1, images, buf)
    tf = tarfile.open(fileobj=io.BytesIO(buf.getvalue()))
    names = tf.getnames()
    assert names[0] == ".dockerenv"
    assert tf.extractfile("new").read() == b"x\n"
    assert "etc/group" not in names and "etc/passwd" in names and "bin/busybox" in names
    hard = tf.getmember("tmp/d/hard")
    assert hard.islnk() and hard.linkname == "new"


def test_loaded_docker_image_runs_like_docker(daemon, berth):
    """The fixture image made by real Docker, loaded, shows what layers.view.txt shows."""
    images = ImageService(daemon.data_root)
    assert load(images, open(FIXTURES / "layers.docker-save.tar", "rb")) == ["fixture/layers:1"]
    try:
        r = berth("run", "--rm", "fixture/layers:1")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "a\n"
        r = berth("run", "--rm", "fixture/layers:1", "sh", "-c",
                  "stat -c '%a %u %g %h %n' /data/keep/a /opq/y /hard; readlink /link; "
                  "echo $FOO; pwd; ls /data; ls /opq; test ! -e /data/gone && test ! -e /etc/c.txt "
                  "&& test ! -e /opq/x && echo gone")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split("\n") == [
            "4755 0 0 2 /data/keep/a", "644 1000 1000 1 /opq/y", "4755 0 0 2 /hard",
            "/data/keep/a", "bar", "/data", "keep", "y", "gone", ""]
    finally:
        berth("rmi", "fixture/layers:1")
