"""LayerStore: unpacking real Docker layers, whiteouts, hostile tars, compression, mounts."""

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from berth.errors import InvalidArgument, NotFound
from berth.layers import LayerStore, chain_id

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"  # ../shared beside the checkout
ROOT = os.geteuid() == 0


def expected(name):
    image_id, diff_ids = (FIXTURES / name).read_text().split(None, 1)
    return image_id, json.loads(diff_ids)


def apply_save(store, archive):
    tf = tarfile.open(archive)
    manifest = json.load(tf.extractfile("manifest.json"))
    parent, layers = None, []
    for member in manifest[0]["Layers"]:
        layer = store.apply_tar(tf.extractfile(member), parent)
        layers.append(layer)
        parent = layer.chain_id
    return layers


def make_tar(entries):
    """entries: list of (TarInfo kwargs, data or None)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for kw, data in entries:
            ti = tarfile.TarInfo(kw.pop("name"))
            for k, v in kw.items():
                setattr(ti, k, v)
            if data is not None:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
            else:
                tf.addfile(ti)
    return buf.getvalue()


@pytest.fixture
def store(tmp_path):
    return LayerStore(tmp_path / "root")


def test_chain_id():
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    assert chain_id([a]) == a
    assert chain_id([a, b]) == "sha256:" + hashlib.sha256(f"{a} {b}".encode()).hexdigest()


def test_busybox_fixture_diff_id(store):
    _, diff_ids = expected("busybox.expected.txt")
    layers = apply_save(store, FIXTURES / "busybox.docker-save.tar")
    assert [layer.diff_id for layer in layers] == diff_ids
    assert (layers[0].path / "bin" / "busybox").is_file()


@pytest.mark.skipif(not ROOT, reason="needs root (device nodes, xattrs, chown)")
def test_layers_fixture(store, tmp_path):
    _, diff_ids = expected("layers.expected.txt")
    layers = apply_save(store, FIXTURES / "layers.docker-save.tar")
    assert [layer.diff_id for layer in layers] == diff_ids
    assert layers[-1].chain_id == chain_id(diff_ids)
    assert store.lower_dirs(layers[-1].chain_id) == [layer.path for layer in layers]
    # whiteouts are 0/0 char devices in layer 3; the opaque dir has the xattr in layer 4
    for p in ("data/gone", "etc/c.txt"):
        st = os.lstat(layers[2].path / p)
        assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(0, 0)
    assert os.getxattr(layers[3].path / "opq", "trusted.overlay.opaque") == b"y"
    assert not (layers[3].path / "opq" / "x").exists()
    st = os.lstat(layers[3].path / "hard")
    assert st.st_mode & 0o7777 == 0o4755 and st.st_nlink == 2
    assert os.readlink(layers[3].path / "link") == "/data/keep/a"

    mounts = store.overlay_mounts(store.lower_dirs(layers[-1].chain_id), None, None)
    assert mounts[0]["type"] == "overlay"
    lowerdir = next(o for o in mounts[0]["options"] if o.startswith("lowerdir="))
    assert lowerdir.split("=", 1)[1].split(":") == [str(x.path) for x in reversed(layers)]
    target = tmp_path / "mnt"
    target.mkdir()
    script = f"""
set -e
mount -t overlay overlay -o {",".join(mounts[0]["options"])} {target}
stat -c '%a %u %g %h' {target}/hard {target}/opq/y
readlink {target}/link
ls -a {target}/opq
test ! -e {target}/data/gone && echo gone-absent
test ! -e {target}/etc/c.txt && echo c-absent
"""
    r = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if r.returncode != 0 and "permission denied" in r.stderr.lower():
        pytest.skip(f"cannot mount overlay here: {r.stderr}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.split("\n")
    assert lines[0] == "4755 0 0 2"
    assert lines[1] == "644 1000 1000 1"
    assert lines[2] == "/data/keep/a"
    assert lines[3:6] == [".", "..", "y"]
    assert "gone-absent" in lines and "c-absent" in lines


def test_same_tar_stored_once(store):
    data = make_tar([({"name": "a", "mode": 0o644}, b"hello")])
    one = store.apply_tar(io.BytesIO(data))
    two = store.apply_tar(io.BytesIO(data))
    assert one == two
    assert one.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert len(store.walk()) == 1
    assert os.listdir(store.root / "tmp") == []
    # with the diff id known up front nothing is read
    three = store.apply_tar(io.BytesIO(b"not read"), expected_diff_id=one.diff_id)
    assert three == one


@pytest.mark.parametrize("compress", [lambda d: d, gzip.compress, bz2.compress, lzma.compress])
def test_compressed_input(store, compress):
    data = make_tar([({"name": "dir", "type": tarfile.DIRTYPE, "mode": 0o755}, None),
                     ({"name": "dir/f", "mode": 0o600, "mtime": 1234567}, b"x" * 100000)])
    layer = store.apply_tar(io.BytesIO(compress(data)))
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert (layer.path / "dir" / "f").read_bytes() == b"x" * 100000
    assert os.stat(layer.path / "dir" / "f").st_mtime == 1234567
    assert layer.size == 100000


def test_parent_and_lower_dirs(store):
    a = store.apply_tar(io.BytesIO(make_tar([({"name": "a"}, b"1")])))
    b = store.apply_tar(io.BytesIO(make_tar([({"name": "b"}, b"2")])), a.chain_id)
    assert b.parent == a.chain_id
    assert b.chain_id == chain_id([a.diff_id, b.diff_id])
    assert store.lower_dirs(b.chain_id) == [a.path, b.path]
    with pytest.raises(NotFound):
        store.apply_tar(io.BytesIO(b""), "sha256:" + "0" * 64)


def test_not_a_tar(store):
    with pytest.raises(InvalidArgument, match="archive/tar: invalid tar header"):
        store.apply_tar(io.BytesIO(b"this is not a tar file at all" * 100))
    assert store.walk() == [] and os.listdir(store.root / "tmp") == []


HOSTILE = [
    ("dotdot", [({"name": "../x"}, b"evil")]),
    ("dotdot-deep", [({"name": "a/../../x"}, b"evil")]),
    ("absolute", [({"name": "/abs-evil"}, b"evil")]),
    ("symlink-write", [({"name": "esc", "type": tarfile.SYMTYPE, "linkname": "{outside}"}, None),
                       ({"name": "esc/x"}, b"evil")]),
    ("symlink-root-write", [({"name": "root", "type": tarfile.SYMTYPE, "linkname": "/"}, None),
                            ({"name": "root{outside}/y"}, b"evil")]),
    ("hardlink-out", [({"name": "h", "type": tarfile.LNKTYPE, "linkname": "../outside-file"}, None)]),
    ("hardlink-abs", [({"name": "h", "type": tarfile.LNKTYPE, "linkname": "{victim}"}, None)]),
    ("hardlink-via-symlink", [({"name": "s", "type": tarfile.SYMTYPE, "linkname": "{outside}"}, None),
                              ({"name": "h", "type": tarfile.LNKTYPE, "linkname": "s/victim"}, None)]),
]


@pytest.mark.parametrize("name,entries", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_tars_refused(tmp_path, name, entries):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim"
    victim.write_text("keep")
    store = LayerStore(tmp_path / "root")
    fixed = []
    for kw, data in entries:
        kw = {k: (v.format(outside=outside, victim=victim) if isinstance(v, str) else v) for k, v in kw.items()}
        fixed.append((kw, data))
    before = sorted(p.name for p in tmp_path.rglob("*") if "root" not in p.parts)
    with pytest.raises(InvalidArgument):
        store.apply_tar(io.BytesIO(make_tar(fixed)))
    assert sorted(p.name for p in tmp_path.rglob("*") if "root" not in p.parts) == before
    assert victim.read_text() == "keep" and os.stat(victim).st_nlink == 1
    assert not Path("/abs-evil").exists()
    assert store.walk() == [] and os.listdir(store.root / "tmp") == []


def test_recover_removes_leftovers(store):
    layer = store.apply_tar(io.BytesIO(make_tar([({"name": "a"}, b"1")])))
    (store.root / "tmp" / "unpack-x").mkdir()
    half = store.root / ("e" * 64)
    (half / "diff").mkdir(parents=True)
    os.symlink("../nothing/diff", store.root / "l" / "dangling")
    removed = store.recover()
    assert len(removed) == 3
    assert store.walk() == [layer]
    store.delete(layer.chain_id)
    assert store.walk() == [] and os.listdir(store.root / "l") == []
    with pytest.raises(NotFound):
        store.get(layer.chain_id)


def test_overlay_mounts_shapes(store, tmp_path):
    layers = []
    parent = None
    for i in range(120):
        layer = store.apply_tar(io.BytesIO(make_tar([({"name": f"f{i}"}, b"x")])), parent)
        layers.append(layer)
        parent = layer.chain_id
    dirs = store.lower_dirs(parent)
    single = store.overlay_mounts(dirs[:1])
    assert single == [{"type": "bind", "source": str(dirs[0]), "options": ["rbind", "ro"]}]
    rw = store.overlay_mounts(dirs[:2], tmp_path / "up", tmp_path / "work")[0]
    assert rw["options"][:3] == [f"lowerdir={dirs[1]}:{dirs[0]}", f"upperdir={tmp_path / 'up'}",
                                 f"workdir={tmp_path / 'work'}"]
    many = store.overlay_mounts(dirs, tmp_path / "up", tmp_path / "work")[0]
    assert len(",".join(many["options"])) < 4096
    lowers = next(o for o in many["options"] if o.startswith("lowerdir=")).split("=", 1)[1].split(":")
    base = Path(many.get("cwd", "/"))
    assert [os.path.realpath(base / p) for p in lowers] == [os.path.realpath(d) for d in reversed(dirs)]
