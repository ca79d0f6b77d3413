"""The real Docker against our registry server, and Berth's pushes against Docker's (issue 4).

The peer dockerd (tests/peers.py) lives in its own network namespace, so our registry server is
started INSIDE it (``nsenter --net=/proc/<dockerd>/ns/net -- python -m berth.registry.server
--addr 127.0.0.1:0``; dockerd treats 127.0.0.0/8 as insecure, so plain HTTP is used), with its
storage on the host's disk. What Docker does there is the reference:

* ``docker push`` / ``rmi`` / ``pull`` / ``run``, without and with htpasswd auth (``docker login``
  with a temporary DOCKER_CONFIG): the digest docker reports is the digest of the manifest our
  server stored under the tag, and the blobs it stored are those the manifest names;
* the same image pushed by Docker (to a server in its namespace) and by Berth (to a server in the
  host's, each with its own storage): the same config, the same manifest shape, and layers that
  decompress to the same bytes (the diff IDs; compressed digests may differ), checked on the
  stored blobs and on what ``skopeo copy docker://... oci:`` fetches from each server;
* each engine pulls what the other pushed: a storage root is served again by a new server in the
  other namespace once the first one has stopped (never two servers on one root at a time).

Every server is stopped by its PID before the test ends; the peer checks at the end of the
session that nothing is left in its network namespace.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import bcrypt
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import peers  # noqa: E402

peer_docker = peers.peer_docker  # the session fixture: a private dockerd

FIXTURES = Path("/work/shared/fixtures")
LAYERS_TAR = FIXTURES / "layers.docker-save.tar"
SKOPEO = shutil.which("skopeo")
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG_TYPE = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

pytestmark = [
    pytest.mark.skipif(shutil.which("docker") is None and not Path("/usr/local/bin/docker").exists(),
                       reason="needs the docker CLI"),
    pytest.mark.skipif(shutil.which("nsenter") is None, reason="needs nsenter (util-linux)"),
]


def ok(r, what: str = ""):
    assert r.returncode == 0, f"{what} failed ({r.returncode}): {r.stdout[-1500:]} {r.stderr}"
    return r


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def gunzip_sha256(path: Path) -> str:
    """The diff ID of a gzip layer blob: sha256 of its decompressed bytes."""
    h = hashlib.sha256()
    with gzip.open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def push_digest(out: str, tag: str) -> tuple[str, int]:
    """``TAG: digest: sha256:... size: N`` of docker push's output."""
    m = re.search(rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: (\d+)$", out, re.M)
    assert m, out
    return m.group(1), int(m.group(2))


class Stored:
    """What our server keeps under ``--root`` (read from its files, not through Berth's code)."""

    def __init__(self, root: Path):
        self.root = root

    def blob(self, digest: str) -> Path:
        hexpart = digest.split(":", 1)[1]
        return self.root / "blobs" / "sha256" / hexpart[:2] / hexpart

    def tag(self, repo: str, tag: str) -> str:
        return (self.root / "repositories" / repo / "_manifests" / "tags" / tag / "current").read_text().strip()

    def manifest(self, repo: str, tag: str) -> tuple[str, bytes]:
        digest = self.tag(repo, tag)
        return digest, self.blob(digest).read_bytes()

    def layer_linked(self, repo: str, digest: str) -> bool:
        algo, hexpart = digest.split(":", 1)
        return (self.root / "repositories" / repo / "_layers" / algo / hexpart).is_file()


def check_stored_push(stored: Stored, repo: str, tag: str, digest: str, size: int,
                      inspect: dict) -> dict:
    """The manifest our server keeps under the tag is the one docker reported (digest and size),
    it names the image's config, and its layers are stored blobs of the repository that
    decompress to the image's diff IDs. Returns the manifest."""
    current, body = stored.manifest(repo, tag)
    assert current == digest, f"tag {tag} points at {current}, docker push reported {digest}"
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest
    assert len(body) == size
    m = json.loads(body)
    assert m["schemaVersion"] == 2 and m["mediaType"] == DOCKER_MANIFEST, m
    assert m["config"]["mediaType"] == DOCKER_CONFIG_TYPE
    assert m["config"]["digest"] == inspect["Id"]
    assert sha256_file(stored.blob(inspect["Id"])) == inspect["Id"]
    assert [ly["mediaType"] for ly in m["layers"]] == [DOCKER_LAYER_GZIP] * len(m["layers"])
    diff_ids = []
    for ly in m["layers"]:
        path = stored.blob(ly["digest"])
        assert path.stat().st_size == ly["size"], ly
        assert sha256_file(path) == ly["digest"]
        assert stored.layer_linked(repo, ly["digest"]), ly
        diff_ids.append(gunzip_sha256(path))
    assert diff_ids == inspect["RootFS"]["Layers"]
    return m


def small_tar(path: Path, text: str) -> Path:
    """A one-file rootfs tar, so that an image of it owns its layer (rmi removes everything)."""
    import io

    with tarfile.open(path, "w") as tf:
        data = text.encode()
        ti = tarfile.TarInfo("hello.txt")
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    return path


def image_id(run, ref: str) -> str:
    return ok(run("image", "inspect", "-f", "{{.Id}}", ref), f"inspect {ref}").stdout.strip()


@pytest.fixture
def peer(peer_docker):
    """The peer, with what a test tagged there (``made``) and its containers removed afterwards."""
    before = set(peer_docker.docker("ps", "-aq", "--no-trunc").stdout.split())
    peer_docker.made = []
    yield peer_docker
    new = set(peer_docker.docker("ps", "-aq", "--no-trunc").stdout.split()) - before
    if new:
        peer_docker.docker("rm", "-f", "-v", *new)
    for ref in reversed(peer_docker.made):
        peer_docker.docker("rmi", "-f", ref)


@pytest.fixture
def registries():
    """Registries a test starts; all stopped by PID at its end, even when it fails."""
    started: list[peers.Registry] = []

    def start(*args, **kw) -> peers.Registry:
        reg = peers.start_registry(*args, **kw)
        started.append(reg)
        return reg

    yield start
    for reg in started:
        reg.stop()


# --------------------------------------------------------------------------------------------
# docker push / pull / run against our server


def test_docker_push_pull_run_our_registry(peer, registries, tmp_path: Path):
    reg = registries("berth", tmp_path / "reg", peer)
    stored = Stored(reg.root)
    host = reg.addr

    # busybox: push, the stored manifest is the one docker reports
    repo = f"{host}/bt/busybox"
    ok(peer.docker("tag", "busybox", f"{repo}:1"), "tag")
    peer.made.append(f"{repo}:1")
    r = ok(peer.docker("push", f"{repo}:1", timeout=120), "docker push")
    assert f"The push refers to repository [{repo}]" in r.stdout
    assert "Pushed" in r.stdout, r.stdout
    digest, size = push_digest(r.stdout, "1")
    inspect = json.loads(ok(peer.docker("image", "inspect", f"{repo}:1")).stdout)[0]
    check_stored_push(stored, "bt/busybox", "1", digest, size, inspect)
    assert f"{repo}@{digest}" in inspect["RepoDigests"]

    # pushed again: every blob is already there
    r = ok(peer.docker("push", f"{repo}:1", timeout=120), "docker push again")
    assert "Layer already exists" in r.stdout and "Pushed" not in r.stdout, r.stdout
    assert push_digest(r.stdout, "1") == (digest, size)

    # another repository of the same server: docker mounts the layer across repositories
    other = f"{host}/bt/other"
    ok(peer.docker("tag", "busybox", f"{other}:2"))
    peer.made.append(f"{other}:2")
    r = ok(peer.docker("push", f"{other}:2", timeout=120), "push to a second repository")
    assert "Mounted from bt/busybox" in r.stdout, r.stdout
    assert push_digest(r.stdout, "2") == (digest, size)
    check_stored_push(stored, "bt/other", "2", digest, size, inspect)

    # an image that owns its layer: rmi removes it all, pull downloads it again
    word = uuid.uuid4().hex
    own = f"{host}/bt/own"
    ok(peer.docker("import", str(small_tar(tmp_path / "own.tar", word)), f"{own}:v1"), "import")
    peer.made.append(f"{own}:v1")
    first = json.loads(ok(peer.docker("image", "inspect", f"{own}:v1")).stdout)[0]
    r = ok(peer.docker("push", f"{own}:v1", timeout=120), "push own")
    own_digest, own_size = push_digest(r.stdout, "v1")
    check_stored_push(stored, "bt/own", "v1", own_digest, own_size, first)
    ok(peer.docker("rmi", f"{own}:v1"), "rmi own")
    assert peer.docker("image", "inspect", f"{own}:v1").returncode == 1
    layerdb = peer.data_root / "image" / "overlay2" / "layerdb" / "sha256"
    assert not (layerdb / first["RootFS"]["Layers"][0].split(":")[1]).exists(), "docker kept the layer"
    r = ok(peer.docker("pull", f"{own}:v1", timeout=120), "pull own")
    assert "v1: Pulling from bt/own" in r.stdout
    assert "Pull complete" in r.stdout, r.stdout
    assert f"Digest: {own_digest}" in r.stdout
    assert f"Status: Downloaded newer image for {own}:v1" in r.stdout
    assert image_id(peer.docker, f"{own}:v1") == first["Id"]
    r = ok(peer.docker("pull", f"{own}:v1"), "pull again")
    assert f"Status: Image is up to date for {own}:v1" in r.stdout
    # by digest
    ok(peer.docker("rmi", f"{own}:v1"))
    r = ok(peer.docker("pull", f"{own}@{own_digest}", timeout=120), "pull by digest")
    assert f"Digest: {own_digest}" in r.stdout
    peer.made.append(f"{own}@{own_digest}")
    assert image_id(peer.docker, f"{own}@{own_digest}") == first["Id"]

    # busybox back from the server, and a container of it
    ok(peer.docker("rmi", f"{repo}:1", f"{other}:2"))
    r = ok(peer.docker("pull", f"{repo}:1", timeout=120), "pull busybox")
    assert f"Digest: {digest}" in r.stdout
    assert image_id(peer.docker, f"{repo}:1") == inspect["Id"]
    r = ok(peer.docker("run", "--rm", "--network", "none", f"{repo}:1", "echo", "ok"), "run")
    assert r.stdout.strip() == "ok"

    # what is not there: the errors docker prints for our server's answers
    r = peer.docker("pull", f"{host}/bt/nope:1", timeout=60)
    assert r.returncode == 1
    assert (f"Error response from daemon: manifest for {host}/bt/nope:1 not found: "
            "manifest unknown: manifest unknown") in r.stderr, r.stderr
    r = peer.docker("pull", f"{repo}:nope", timeout=60)
    assert r.returncode == 1
    assert (f"Error response from daemon: manifest for {repo}:nope not found: "
            "manifest unknown: manifest unknown") in r.stderr, r.stderr


def test_docker_login_push_pull_with_htpasswd(peer, registries, tmp_path: Path):
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("bt:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode() + "\n")
    reg = registries("berth", tmp_path / "reg", peer, htpasswd=htpasswd)
    stored = Stored(reg.root)
    host = reg.addr
    cfg = tmp_path / "docker-config"
    cfg.mkdir()
    env = {"DOCKER_CONFIG": str(cfg)}

    ref = f"{host}/bt/private:1"
    ok(peer.docker("tag", "busybox", ref))
    peer.made.append(ref)
    r = peer.docker("push", ref, env=env, timeout=60)
    assert r.returncode == 1
    assert "no basic auth credentials" in r.stderr, r.stdout + r.stderr
    r = peer.docker("login", "-u", "bt", "--password-stdin", host, input="wrong\n", env=env)
    assert r.returncode == 1
    assert f"login attempt to http://{host}/v2/ failed with status: 401 Unauthorized" in r.stderr, r.stderr
    r = ok(peer.docker("login", "-u", "bt", "--password-stdin", host, input="s3cret\n", env=env), "login")
    assert "Login Succeeded" in r.stdout
    assert host in json.loads((cfg / "config.json").read_text())["auths"]

    r = ok(peer.docker("push", ref, env=env, timeout=120), "push with credentials")
    digest, size = push_digest(r.stdout, "1")
    inspect = json.loads(ok(peer.docker("image", "inspect", ref)).stdout)[0]
    check_stored_push(stored, "bt/private", "1", digest, size, inspect)

    ok(peer.docker("rmi", ref))
    r = ok(peer.docker("pull", ref, env=env, timeout=120), "pull with credentials")
    assert f"Digest: {digest}" in r.stdout
    assert image_id(peer.docker, ref) == inspect["Id"]
    r = ok(peer.docker("run", "--rm", "--network", "none", ref, "echo", "ok"), "run")
    assert r.stdout.strip() == "ok"

    ok(peer.docker("rmi", ref))
    ok(peer.docker("logout", host, env=env), "logout")
    r = peer.docker("pull", ref, env=env, timeout=60)
    assert r.returncode == 1
    assert "no basic auth credentials" in r.stderr, r.stderr


# --------------------------------------------------------------------------------------------
# The same images pushed by Docker and by Berth


def skopeo_to_oci(src: str, dest: Path, prefix: list[str] | None = None) -> None:
    """``skopeo copy docker://SRC oci:DEST:x`` (blobs copied as the registry serves them)."""
    argv = (prefix or []) + [SKOPEO, "--insecure-policy", "copy", "--src-tls-verify=false",
                             f"docker://{src}", f"oci:{dest}:x"]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                       env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "REGISTRY_AUTH_FILE": "/nonexistent/auth.json"})
    assert p.returncode == 0, p.stderr


def oci_layers(layout: Path) -> tuple[dict, bytes, list[str]]:
    """The manifest of a one-image OCI layout, its config bytes, and its layers' diff IDs (the
    sha256 of each layer blob decompressed)."""
    index = json.loads((layout / "index.json").read_text())
    mdigest = index["manifests"][0]["digest"]
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":", 1)[1]  # noqa: E731
    manifest = json.loads(blob(mdigest).read_bytes())
    config = blob(manifest["config"]["digest"]).read_bytes()
    diff_ids = [gunzip_sha256(blob(ly["digest"])) for ly in manifest["layers"]]
    return manifest, config, diff_ids


@pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed")
@pytest.mark.skipif(not LAYERS_TAR.exists(), reason=f"{LAYERS_TAR} missing")
def test_docker_and_berth_push_the_same_layers(peer, berth, registries, tmp_path: Path):
    """fixture/layers (4 layers: whiteouts, an opaque dir, links, setuid, owners; Docker's own
    `docker save`) loaded into both engines, and busybox imported into both from the same rootfs
    tar: each engine pushes them to a server of its own. The configs are the same bytes, the
    manifests have the same shape, and the layers decompress to the same diff IDs, on the stored
    blobs and through skopeo. Then each engine pulls what the other pushed and runs it."""
    expected_id, expected_layers = (FIXTURES / "layers.expected.txt").read_text().split(" ", 1)
    expected_layers = json.loads(expected_layers)
    ok(peer.docker("load", "-i", str(LAYERS_TAR)), "docker load")
    ok(berth.docker("load", "-i", str(LAYERS_TAR)), "berth load")
    berth_made: list[str] = ["fixture/layers:1"]
    peer.made.append("fixture/layers:1")
    try:
        dreg = registries("berth", tmp_path / "docker-root", peer)
        breg = registries("berth", tmp_path / "berth-root")
        images = {"fx/layers": "fixture/layers:1", "bt/busybox": "busybox:latest"}
        pushed: dict[tuple[str, str], tuple[str, int, dict]] = {}
        for engine, run, reg, made in (("docker", peer.docker, dreg, peer.made),
                                       ("berth", berth.docker, breg, berth_made)):
            for repo, local in images.items():
                ref = f"{reg.addr}/{repo}:1"
                ok(run("tag", local, ref), f"{engine} tag")
                made.append(ref)
                r = ok(run("push", ref, timeout=180), f"{engine} push {ref}")
                digest, size = push_digest(r.stdout, "1")
                inspect = json.loads(ok(run("image", "inspect", ref)).stdout)[0]
                if repo == "fx/layers":
                    assert inspect["Id"] == expected_id and inspect["RootFS"]["Layers"] == expected_layers
                manifest = check_stored_push(Stored(reg.root), repo, "1", digest, size, inspect)
                pushed[engine, repo] = digest, size, manifest

        for repo in images:
            dm, bm = pushed["docker", repo][2], pushed["berth", repo][2]
            # same shape: keys, media types, as many layers; for fixture/layers (the same image
            # ID on both) the same config descriptor. busybox was imported on each side, so its
            # configs differ (the import time), its layer does not.
            assert sorted(bm) == sorted(dm)
            if repo == "fx/layers":
                assert bm["config"] == dm["config"], (bm["config"], dm["config"])
            assert [sorted(ly) for ly in bm["layers"]] == [sorted(ly) for ly in dm["layers"]]
            assert len(bm["layers"]) == len(dm["layers"])

        # what a third client fetches from each server (skopeo, run in each server's namespace)
        for repo in images:
            od, ob = tmp_path / f"oci-docker-{repo.replace('/', '-')}", tmp_path / f"oci-berth-{repo.replace('/', '-')}"
            skopeo_to_oci(f"{dreg.addr}/{repo}:1", od, peer.netns_argv())
            skopeo_to_oci(f"{breg.addr}/{repo}:1", ob)
            d_manifest, d_config, d_diff = oci_layers(od)
            b_manifest, b_config, b_diff = oci_layers(ob)
            assert b_diff == d_diff, f"{repo}: layers differ: berth {b_diff} docker {d_diff}"
            assert b_diff == json.loads(b_config)["rootfs"]["diff_ids"]
            if repo == "fx/layers":
                assert b_config == d_config
                assert b_diff == expected_layers

        # each engine pulls what the other pushed: the roots are served again, swapped
        dreg.stop()
        breg.stop()
        d_in_host = registries("berth", dreg.root)
        b_in_peer = registries("berth", breg.root, peer)

        ok(berth.docker("rmi", "-f", "fixture/layers:1", f"{breg.addr}/fx/layers:1"), "berth rmi")
        berth_made.remove("fixture/layers:1")
        ref = f"{d_in_host.addr}/fx/layers:1"
        r = ok(berth.docker("pull", ref, timeout=180), "berth pull of docker's push")
        berth_made.append(ref)
        assert f"Digest: {pushed['docker', 'fx/layers'][0]}" in r.stdout
        b_inspect = json.loads(ok(berth.docker("image", "inspect", ref)).stdout)[0]
        assert b_inspect["Id"] == expected_id
        assert b_inspect["RootFS"]["Layers"] == expected_layers
        assert f"{d_in_host.addr}/fx/layers@{pushed['docker', 'fx/layers'][0]}" in b_inspect["RepoDigests"]
        r = ok(berth.docker("run", "--rm", ref), "berth run of docker's push")
        assert r.stdout == "a\n"

        ok(peer.docker("rmi", "-f", "fixture/layers:1", f"{dreg.addr}/fx/layers:1"), "docker rmi")
        ref = f"{b_in_peer.addr}/fx/layers:1"
        r = ok(peer.docker("pull", ref, timeout=180), "docker pull of berth's push")
        peer.made.append(ref)
        assert f"Digest: {pushed['berth', 'fx/layers'][0]}" in r.stdout
        d_inspect = json.loads(ok(peer.docker("image", "inspect", ref)).stdout)[0]
        assert d_inspect["Id"] == expected_id
        assert d_inspect["RootFS"]["Layers"] == expected_layers
        r = ok(peer.docker("run", "--rm", "--network", "none", ref), "docker run of berth's push")
        assert r.stdout == "a\n"
        ref = f"{b_in_peer.addr}/bt/busybox:1"
        ok(peer.docker("pull", ref, timeout=180), "docker pull of berth's busybox")
        peer.made.append(ref)
        r = ok(peer.docker("run", "--rm", "--network", "none", ref, "echo", "ok"), "docker run")
        assert r.stdout.strip() == "ok"
    finally:
        for ref in reversed(berth_made):
            berth.docker("rmi", "-f", ref)
