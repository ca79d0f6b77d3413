"""layers/diff.py: upper dir → layer tar, docker diff, merged export (synthetic layer dirs)."""

import hashlib
import io
import os
import stat
import tarfile

import pytest

from berth.layers.diff import (
    ADDED,
    CONTAINER_INIT_PATHS,
    DELETED,
    EMPTY_LAYER_DIFF_ID,
    MODIFIED,
    changes,
    diff_tar,
    merged_tar,
)

ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="whiteouts and trusted xattrs need root")


def whiteout(path):
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(0, 0))


def opaque(path):
    os.setxattr(path, "trusted.overlay.opaque", b"y")


def write(path, data=b"x", mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


@pytest.fixture
def layers(tmp_path):
    """A lower (bottom) with /etc/{group,passwd}, /data/{a,b}, /opq/x, /keep/k, and an upper with
    a new file, a changed file, a deleted file and dir, an opaque dir, a hardlink and a symlink."""
    lower = tmp_path / "lower"
    for p in ("etc/group", "etc/passwd", "data/a", "data/b/b1", "opq/x", "keep/k"):
        write(str(lower / p))
    upper = tmp_path / "upper"
    upper.mkdir()
    write(str(upper / "new"), b"new\n")
    write(str(upper / "etc/passwd"), b"root\n")
    os.chmod(upper / "etc", 0o755)
    os.chmod(lower / "etc", 0o755)
    if ROOT:
        whiteout(upper / "etc/group")
        os.makedirs(upper / "data")
        os.chmod(upper / "data", os.stat(lower / "data").st_mode & 0o7777)
        whiteout(upper / "data/b")
        os.makedirs(upper / "opq")
        opaque(upper / "opq")
        write(str(upper / "opq/y"), b"y", 0o4755)
        os.chown(upper / "opq/y", 1000, 1000)
        os.chmod(upper / "opq/y", 0o4755)
    os.link(upper / "new", upper / "hard")
    os.symlink("/new", upper / "link")
    # init-layer artefacts the runtime leaves in an upper dir
    write(str(upper / "etc/hosts"), b"")
    os.makedirs(upper / "proc")
    return upper, lower


def members(data: bytes):
    return list(tarfile.open(fileobj=io.BytesIO(data)))


@needs_root
def test_diff_tar_entries(layers):
    upper, lower = layers
    buf = io.BytesIO()
    diff_tar(upper, [lower], buf, exclude=CONTAINER_INIT_PATHS)
    ms = members(buf.getvalue())
    names = [m.name for m in ms]
    assert names == ["data", "data/.wh.b", "etc", "etc/.wh.group", "etc/passwd", "hard", "link",
                     "new", "opq", "opq/.wh..wh..opq", "opq/y"]
    by = {m.name: m for m in ms}
    assert by["etc/.wh.group"].isreg() and by["etc/.wh.group"].size == 0
    assert by["hard"].isreg() and by["new"].islnk() and by["new"].linkname == "hard"  # walk order
    assert by["link"].issym() and by["link"].linkname == "/new"
    assert by["opq/y"].mode == 0o4755 and (by["opq/y"].uid, by["opq/y"].gid) == (1000, 1000)
    assert "trusted.overlay.opaque" not in str(by["opq"].pax_headers)
    # Go-style end: two zero blocks, no padding to a 10 KiB record
    assert len(buf.getvalue()) % 512 == 0 and buf.getvalue().endswith(b"\0" * 1024)


@needs_root
def test_changes_like_docker_diff(layers):
    upper, lower = layers
    got = [(c["Path"], c["Kind"]) for c in changes(upper, [lower])]
    assert got == [("/data", MODIFIED), ("/data/b", DELETED), ("/etc", MODIFIED),
                   ("/etc/group", DELETED), ("/etc/passwd", MODIFIED), ("/hard", ADDED),
                   ("/link", ADDED), ("/new", ADDED), ("/opq", MODIFIED), ("/opq/y", ADDED)]


def test_unchanged_parent_dirs_left_out(tmp_path):
    lower, upper = tmp_path / "l", tmp_path / "u"
    write(str(lower / "etc/passwd"))
    write(str(upper / "etc/hosts"), b"")  # only a mount point stub under /etc
    os.chmod(upper / "etc", os.stat(lower / "etc").st_mode & 0o7777)
    buf = io.BytesIO()
    diff_tar(upper, [lower], buf, exclude=CONTAINER_INIT_PATHS)
    assert members(buf.getvalue()) == []
    assert changes(upper, [lower]) == []
    assert "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest() == EMPTY_LAYER_DIFF_ID


@needs_root
def test_diff_tar_applies_to_same_tree(layers, tmp_path):
    """The tar, unpacked by the layer store's unpacker, gives back the upper dir's changes."""
    from berth.layers.archive import unpack_layer

    upper, lower = layers
    buf = io.BytesIO()
    diff_tar(upper, [lower], buf, exclude=CONTAINER_INIT_PATHS)
    out = tmp_path / "unpacked"
    out.mkdir()
    res = unpack_layer(io.BytesIO(buf.getvalue()), str(out))
    assert res.diff_id == "sha256:" + hashlib.sha256(buf.getvalue()).hexdigest()
    assert stat.S_ISCHR(os.lstat(out / "etc/group").st_mode)
    assert os.getxattr(out / "opq", "trusted.overlay.opaque") == b"y"
    assert os.stat(out / "hard").st_ino == os.stat(out / "new").st_ino
    assert (out / "opq/y").stat().st_mode & 0o7777 == 0o4755


@needs_root
def test_merged_tar(layers):
    upper, lower = layers
    buf = io.BytesIO()
    merged_tar([upper, lower], buf, extra_files={".dockerenv": b""})
    ms = members(buf.getvalue())
    names = [m.name for m in ms]
    assert names[0] == ".dockerenv" and ms[0].mode == 0o755
    assert "etc/group" not in names and "data/b" not in names and "data/b/b1" not in names
    assert "opq/x" not in names and "opq/y" in names
    assert {"data/a", "etc/passwd", "keep/k", "new", "hard", "link"} <= set(names)
    by = {m.name: m for m in ms}
    f = tarfile.open(fileobj=io.BytesIO(buf.getvalue()))
    assert f.extractfile("etc/passwd").read() == b"root\n"
    assert by["hard"].islnk() or by["new"].islnk()
    assert not any(".wh." in n for n in names)
