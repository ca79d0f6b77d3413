"""Images as Docker keeps them (issue 3): round trips between Berth and a real dockerd.

A private peer dockerd (tests/peers.py, shared by the session) and the session's berthd both
import busybox from the same rootfs tar. Images then go both ways through the archives each engine
writes: `docker save` → `docker -H <berth> load`, and `docker -H <berth> save` → `docker load`,
and what matters is what Docker would show: the same image ID and layer diff IDs on both sides,
containers that run and see the same files (modes, owners, setuid, link counts, deleted paths),
the same history. The expectations are Docker's: where Berth differs, the test fails.
"""

from __future__ import annotations

import difflib
import json
import re
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import peers  # noqa: E402

peer_docker = peers.peer_docker  # the session fixture: a private dockerd

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"  # ../shared beside the checkout

pytestmark = pytest.mark.skipif(shutil.which("docker") is None and not Path("/usr/local/bin/docker").exists(),
                                reason="needs the docker CLI")

# What a container of the multi-layer image shows (layers.Dockerfile): the listing, then each
# path's mode, owner, link count; the symlink; deleted paths; the image's ENV and WORKDIR.
VIEW = (
    "ls -la / /opq /data /data/keep /etc; "
    "stat -c '%a %u %g %h %F %s %n' /data/keep/a /opq/y /hard /link /bin/busybox /bin/sh /etc/passwd; "
    "readlink /link; echo FOO=$FOO; pwd; "
    "for p in /data/gone /data/gone/b /etc/c.txt /opq/x; do test -e $p && echo present $p || echo absent $p; done; "
    "cat /data/keep/a /opq/y /hard"
)


def ok(r, what: str = ""):
    assert r.returncode == 0, f"{what} failed ({r.returncode}): {r.stderr}"
    return r


def inspect(run, ref: str) -> dict:
    return json.loads(ok(run("image", "inspect", ref), f"inspect {ref}").stdout)[0]


def history(run, ref: str) -> list[tuple[str, str, str, str]]:
    """`docker history` rows as Docker prints them: created (RFC 3339), created by, size, comment."""
    r = ok(run("history", "--no-trunc", "--human=false", "--format",
               "{{.CreatedAt}}|{{.CreatedBy}}|{{.Size}}|{{.Comment}}", ref), f"history {ref}")
    return [tuple(line.split("|", 3)) for line in r.stdout.splitlines()]


def same_text(berth_out: str, docker_out: str) -> None:
    """Equal, or a unified diff docker → berth in the message."""
    if berth_out != docker_out:
        diff = difflib.unified_diff(docker_out.splitlines(), berth_out.splitlines(), "docker", "berth",
                                    lineterm="")
        raise AssertionError("Berth shows what Docker does not:\n" + "\n".join(diff))


def history_no_size(run, ref: str) -> list[tuple[str, str, str]]:
    """History rows without the size (compared on its own: test_layer_sizes_are_dockers)."""
    return [(created, by, comment) for created, by, _, comment in history(run, ref)]


def normalize_ls(text: str) -> str:
    """`ls -la` without times, and without the kernel's own mounts (/proc, /sys, /dev differ by
    what runs on the host); link counts, owners, modes and sizes stay."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^([-dlcbps][-rwxsStT]{9})\s+(\d+)\s+(\S+)\s+(\S+)\s+(\d+(?:,\s*\d+)?)\s+"
                     r"\w{3}\s+\d+\s+[\d:]+\s+(.*)$", line)
        if m:
            name = m.group(6)
            if name in ("proc", "sys", "dev"):
                continue
            out.append(" ".join(m.group(1, 2, 3, 4, 5)) + " " + name)
        elif line.startswith("total "):
            continue  # blocks: depends on the dirs' sizes shown anyway
        else:
            out.append(line)
    return "\n".join(out)


@pytest.fixture
def peer(peer_docker):
    """The peer, with what a test made there removed afterwards (containers, and images it tags
    through `made`)."""
    before = set(peer_docker.docker("ps", "-aq", "--no-trunc").stdout.split())
    peer_docker.made = []
    yield peer_docker
    new = set(peer_docker.docker("ps", "-aq", "--no-trunc").stdout.split()) - before
    if new:
        peer_docker.docker("rm", "-f", "-v", *new)
    for ref in reversed(peer_docker.made):
        peer_docker.docker("rmi", "-f", ref)


@pytest.fixture
def berth_images(berth):
    """Images a test loads or makes in Berth, removed afterwards."""
    made: list[str] = []
    yield made
    for ref in reversed(made):
        berth.docker("rmi", "-f", ref)


# --------------------------------------------------------------------------------------------
# The same content, the same IDs


def test_same_rootfs_tar_gives_same_diff_id_on_both(berth, peer):
    """busybox imported from the same tar: the same layer diff ID (the image IDs differ: `import`
    stamps the time into the config)."""
    b = inspect(berth.docker, "busybox:latest")
    d = inspect(peer.docker, "busybox:latest")
    assert b["RootFS"]["Layers"] == d["RootFS"]["Layers"]
    assert len(b["RootFS"]["Layers"]) == 1


def test_docker_save_berth_load_run(berth, peer, berth_images, tmp_path):
    peer.docker("tag", "busybox:latest", "peerx/busybox:1", check=True)
    peer.made.append("peerx/busybox:1")
    tar = tmp_path / "peer-busybox.tar"
    ok(peer.docker("save", "-o", str(tar), "peerx/busybox:1"), "peer save")
    d = inspect(peer.docker, "peerx/busybox:1")

    r = ok(berth.docker("load", "-i", str(tar)), "berth load")
    berth_images.append("peerx/busybox:1")
    assert "Loaded image: peerx/busybox:1" in r.stdout
    b = inspect(berth.docker, "peerx/busybox:1")
    assert b["Id"] == d["Id"]
    assert b["RootFS"] == d["RootFS"]
    assert b["Config"] == d["Config"]
    assert b["Created"] == d["Created"]

    r = ok(berth.docker("run", "--rm", "peerx/busybox:1", "sh", "-c", "echo hello; head -1 /etc/passwd"))
    assert r.stdout.splitlines()[0] == "hello"
    assert r.stdout.splitlines()[1].startswith("root:x:0:0:")
    assert history_no_size(berth.docker, "peerx/busybox:1") == history_no_size(peer.docker, "peerx/busybox:1")


def test_berth_save_docker_load_run(berth, peer, berth_images, tmp_path):
    ok(berth.docker("tag", "busybox:latest", "berthx/busybox:1"))
    berth_images.append("berthx/busybox:1")
    tar = tmp_path / "berth-busybox.tar"
    ok(berth.docker("save", "-o", str(tar), "berthx/busybox:1"), "berth save")
    b = inspect(berth.docker, "berthx/busybox:1")

    r = ok(peer.docker("load", "-i", str(tar)), "peer load")
    peer.made.append("berthx/busybox:1")
    assert "Loaded image: berthx/busybox:1" in r.stdout
    d = inspect(peer.docker, "berthx/busybox:1")
    assert d["Id"] == b["Id"]
    assert d["RootFS"] == b["RootFS"]
    assert d["Config"] == b["Config"]
    assert d["Created"] == b["Created"]

    r = ok(peer.docker("run", "--rm", "--network", "none", "berthx/busybox:1", "sh", "-c",
                       "echo hi; ls /bin/busybox; id -u"), "peer run")
    assert r.stdout == "hi\n/bin/busybox\n0\n"
    assert history_no_size(peer.docker, "berthx/busybox:1") == history_no_size(berth.docker, "berthx/busybox:1")


def test_save_of_the_same_image_is_the_same_archive(berth, peer, berth_images, tmp_path):
    """An image that exists on both (Docker's, loaded into Berth): both `save` it to the same
    members, manifest.json and repositories (and, as Berth aims for, the same bytes)."""
    import tarfile

    peer.docker("tag", "busybox:latest", "peerx/same:1", check=True)
    peer.made.append("peerx/same:1")
    pt, bt = tmp_path / "p.tar", tmp_path / "b.tar"
    ok(peer.docker("save", "-o", str(pt), "peerx/same:1"))
    ok(berth.docker("load", "-i", str(pt)))
    berth_images.append("peerx/same:1")
    ok(berth.docker("save", "-o", str(bt), "peerx/same:1"))
    with tarfile.open(pt) as p, tarfile.open(bt) as b:
        assert sorted(p.getnames()) == sorted(b.getnames())
        for name in ("manifest.json", "repositories"):
            assert json.load(b.extractfile(name)) == json.load(p.extractfile(name)), name
        for m in p.getmembers():
            if m.isfile():
                assert b.extractfile(m.name).read() == p.extractfile(m.name).read(), m.name
    assert bt.read_bytes() == pt.read_bytes()


# --------------------------------------------------------------------------------------------
# A multi-layer image built by Docker (legacy builder), loaded into Berth


@pytest.fixture(scope="module")
def peer_layers(peer_docker, daemon, tmp_path_factory):
    """fixture/layers built by the peer with the legacy builder, FROM the peer's busybox (the
    same rootfs tar as Berth's), saved; the archive and Docker's own view of it."""
    ctx = tmp_path_factory.mktemp("layers-ctx")
    shutil.copy(FIXTURES / "layers.Dockerfile", ctx / "Dockerfile")
    tag = "peerx/layers:1"
    r = peer_docker.docker("build", "--network", "none", "-t", tag, str(ctx),
                           env={"DOCKER_BUILDKIT": "0"}, timeout=300)
    assert r.returncode == 0, f"peer build: {r.stdout[-2000:]} {r.stderr}"
    tar = ctx / "layers.tar"
    peer_docker.docker("save", "-o", str(tar), tag, check=True)
    view = peer_docker.docker("run", "--rm", "--network", "none", tag, "sh", "-c", VIEW, check=True).stdout
    yield tag, tar, inspect(peer_docker.docker, tag), view
    peer_docker.docker("rmi", "-f", tag)


@pytest.fixture
def loaded_layers(peer_layers, berth):
    tag, tar, d, view = peer_layers
    ok(berth.docker("load", "-i", str(tar)), "berth load")
    yield tag, d, view
    berth.docker("rmi", "-f", tag)


def test_built_image_has_docker_ids_in_berth(loaded_layers, berth, peer):
    tag, d, _ = loaded_layers
    assert len(d["RootFS"]["Layers"]) == 4
    b = inspect(berth.docker, tag)
    assert b["Id"] == d["Id"]
    assert b["RootFS"]["Layers"] == d["RootFS"]["Layers"]
    for key in ("Env", "Cmd", "WorkingDir", "ExposedPorts", "Volumes", "Labels", "Entrypoint", "User"):
        assert b["Config"].get(key) == d["Config"].get(key), key
    assert b["Created"] == d["Created"]
    assert history_no_size(berth.docker, tag) == history_no_size(peer.docker, tag)


# What `docker run` adds to every container on top of the image (its "init" layer: /.dockerenv,
# /etc/mtab) and the image's VOLUME (an anonymous volume mounted at /vol): not the image's files.
RUNTIME_ADDITIONS = {"/": {".dockerenv", "vol"}, "/etc": {"mtab"}}


def without_runtime_additions(listing: str) -> str:
    out, section = [], ""
    for line in listing.splitlines():
        if line.endswith(":") and line.startswith("/"):
            section = line[:-1]
        name = line.rsplit(" ", 1)[-1] if " " in line else ""
        if " -> " in line:
            name = line.split(" -> ")[0].rsplit(" ", 1)[-1]
        if name in RUNTIME_ADDITIONS.get(section, ()):
            continue
        out.append(line)
    return "\n".join(out)


def test_built_image_runs_in_berth_as_in_docker(loaded_layers, berth):
    """The image's files as Docker shows them: listing (modes, owners, link counts, sizes),
    setuid, the 1000:1000 file, the hardlink, the symlink, whiteouts and the opaque dir."""
    tag, _, view = loaded_layers
    r = ok(berth.docker("run", "--rm", tag), "berth run (CMD)")
    assert r.stdout == "a\n"
    r = ok(berth.docker("run", "--rm", tag, "sh", "-c", VIEW), "berth run (view)")
    same_text(without_runtime_additions(normalize_ls(r.stdout)),
              without_runtime_additions(normalize_ls(view)))
    # And what Docker shows, spelled out (in case both were wrong the same way).
    assert "4755 0 0 2 regular file 2 /data/keep/a" in r.stdout
    assert "644 1000 1000 1 regular file 2 /opq/y" in r.stdout
    assert "4755 0 0 2 regular file 2 /hard" in r.stdout
    assert "777 0 0 1 symbolic link 12 /link" in r.stdout
    for p in ("/data/gone", "/data/gone/b", "/etc/c.txt", "/opq/x"):
        assert f"absent {p}" in r.stdout


def test_container_gets_dockers_runtime_files(loaded_layers, berth):
    """What `docker run` adds on top of the image: /.dockerenv (empty, 0755), /etc/mtab ->
    /proc/mounts, and a directory at the image's VOLUME /vol."""
    tag, _, view = loaded_layers
    check = ("stat -c '%a %s %F %n' /.dockerenv; readlink /etc/mtab; test -d /vol && echo vol-dir")
    want = "755 0 regular empty file /.dockerenv\n/proc/mounts\nvol-dir\n"
    assert normalize_ls(view).count(".dockerenv") == 1  # Docker's own view has them
    r = berth.docker("run", "--rm", tag, "sh", "-c", check)
    assert r.stdout == want, r.stderr


def test_built_image_round_trips_back_to_docker(loaded_layers, berth, peer, tmp_path):
    """Berth's save of Docker's image loads back into Docker as the same image."""
    tag, d, _ = loaded_layers
    tar = tmp_path / "back.tar"
    ok(berth.docker("tag", tag, "berthx/layers-back:1"))
    try:
        ok(berth.docker("save", "-o", str(tar), "berthx/layers-back:1"), "berth save")
    finally:
        berth.docker("rmi", "berthx/layers-back:1")
    ok(peer.docker("load", "-i", str(tar)), "peer load")
    peer.made.append("berthx/layers-back:1")
    back = inspect(peer.docker, "berthx/layers-back:1")
    assert back["Id"] == d["Id"] and back["RootFS"] == d["RootFS"]


def test_layer_sizes_are_dockers(loaded_layers, berth, peer):
    """Image Size and the SIZE column of `history`: Docker's numbers for the same layers (dockerd's
    overlay2 counts what the unpacked layer holds: every non-directory's st_size, a symlink's
    being the length of its target, each inode once)."""
    tag, d, _ = loaded_layers
    b = inspect(berth.docker, tag)
    assert history(berth.docker, tag) == history(peer.docker, tag)
    assert b["Size"] == d["Size"]
    assert inspect(berth.docker, "busybox:latest")["Size"] == inspect(peer.docker, "busybox:latest")["Size"]


# --------------------------------------------------------------------------------------------
# A container committed in Berth, into Docker; export/import vs commit


@pytest.fixture(scope="module")
def committed(daemon, tmp_path_factory):
    """A container changed in Berth and committed there (as `docker commit` does)."""
    from conftest import Berth

    b = Berth(daemon)
    cmd = "echo committed > /hello && rm /etc/group && mkdir -p /srv/d && ln /hello /srv/d/hard"
    r = b.docker("run", "--name", "peer-commit-src", "busybox", "sh", "-c", cmd)
    assert r.returncode == 0, r.stderr
    r = b.docker("commit", "-m", "from berth", "-c", 'CMD ["cat", "/hello"]', "peer-commit-src",
                 "berthx/committed:1")
    assert r.returncode == 0, r.stderr
    out = tmp_path_factory.mktemp("committed")
    yield b, "peer-commit-src", "berthx/committed:1", out
    b.docker("rm", "-f", "peer-commit-src")
    b.docker("rmi", "-f", "berthx/committed:1")


def test_berth_commit_runs_in_docker(committed, berth, peer):
    b, _, tag, out = committed
    tar = out / "committed.tar"
    ok(berth.docker("save", "-o", str(tar), tag), "berth save")
    ok(peer.docker("load", "-i", str(tar)), "peer load")
    peer.made.append(tag)
    bi, di = inspect(berth.docker, tag), inspect(peer.docker, tag)
    assert di["Id"] == bi["Id"] and di["RootFS"] == bi["RootFS"]
    assert len(di["RootFS"]["Layers"]) == 2
    assert di["Comment"] == "from berth"
    r = ok(peer.docker("run", "--rm", "--network", "none", tag), "peer run")
    assert r.stdout == "committed\n"
    r = ok(peer.docker("run", "--rm", "--network", "none", tag, "sh", "-c",
                       "test ! -e /etc/group && echo no-group; stat -c '%h %n' /hello /srv/d/hard; "
                       "cat /srv/d/hard"), "peer run")
    assert r.stdout == "no-group\n2 /hello\n2 /srv/d/hard\ncommitted\n"
    assert history_no_size(peer.docker, tag) == history_no_size(berth.docker, tag)


def test_commit_history_is_dockers(committed, berth, peer):
    """The same change committed in Docker: the same history shape (the parent's entry kept, one
    entry for the commit with the container's command and the message)."""
    _, _, tag, _ = committed
    cmd = "echo committed > /hello && rm /etc/group && mkdir -p /srv/d && ln /hello /srv/d/hard"
    ok(peer.docker("run", "--name", "peer-commit-ref", "--network", "none", "busybox", "sh", "-c", cmd))
    ok(peer.docker("commit", "-m", "from berth", "-c", 'CMD ["cat", "/hello"]', "peer-commit-ref",
                   "peerx/committed-ref:1"))
    peer.made.append("peerx/committed-ref:1")
    bh, dh = history(berth.docker, tag), history(peer.docker, "peerx/committed-ref:1")
    assert len(bh) == len(dh) == 2
    assert [(by, comment) for _, by, _, comment in bh] == [(by, comment) for _, by, _, comment in dh]
    # the parent's entry: busybox's import, as each engine recorded it
    assert bh[1][1:] == tuple(history(berth.docker, "busybox:latest")[0][1:])
    # the committed layer's size: the same files
    assert bh[0][2] == dh[0][2]


def test_export_import_is_one_layer_commit_keeps_history(committed, berth, peer):
    b, cname, tag, out = committed
    saved = out / "committed-for-export.tar"
    ok(berth.docker("save", "-o", str(saved), tag), "berth save")
    ok(peer.docker("load", "-i", str(saved)), "peer load")
    peer.made.append(tag)
    tar = out / "export.tar"
    ok(berth.docker("export", "-o", str(tar), cname), "berth export")
    ok(peer.docker("import", "-c", 'CMD ["cat", "/hello"]', str(tar), "peerx/exported:1"), "peer import")
    peer.made.append("peerx/exported:1")
    e = inspect(peer.docker, "peerx/exported:1")
    assert len(e["RootFS"]["Layers"]) == 1
    eh = history(peer.docker, "peerx/exported:1")
    assert len(eh) == 1 and eh[0][1] == "" and eh[0][3] == "Imported from -"
    r = ok(peer.docker("run", "--rm", "--network", "none", "peerx/exported:1", "sh", "-c",
                       "cat /hello; test ! -e /etc/group && echo no-group; stat -c '%h' /srv/d/hard"))
    assert r.stdout == "committed\nno-group\n2\n"
    # The committed image keeps its parent's history and layers.
    c = inspect(berth.docker, tag)
    assert len(c["RootFS"]["Layers"]) == 2 and len(history(berth.docker, tag)) == 2


def test_berth_export_has_dockers_files(committed, berth, peer):
    """Berth's export of the container lists what Docker's export of a container of the same
    image lists (Docker's includes its init layer: /.dockerenv, /etc/mtab, /dev/console, ...)."""
    b, cname, tag, out = committed
    tar = out / "export2.tar"
    ok(berth.docker("export", "-o", str(tar), cname), "berth export")
    saved = out / "committed-for-export2.tar"
    ok(berth.docker("save", "-o", str(saved), tag), "berth save")
    ok(peer.docker("load", "-i", str(saved)), "peer load")
    peer.made.append(tag)
    ok(peer.docker("create", "--name", "peer-export-src", "--network", "none", tag))
    pt = out / "peer-export.tar"
    ok(peer.docker("export", "-o", str(pt), "peer-export-src"))
    same_text(_tar_listing(tar), _tar_listing(pt))


def _tar_listing(path: Path) -> str:
    """Name, type, permission bits (Go's tar writer also stores the file type in the mode field;
    that is not compared), owner, size, link target of each member, sorted by name."""
    import tarfile

    with tarfile.open(path) as t:
        rows = sorted((m.name.rstrip("/"), m.type.decode(), oct(m.mode & 0o7777), m.uid, m.gid, m.size,
                       m.linkname) for m in t.getmembers())
    return "\n".join(" ".join(map(str, r)) for r in rows)
