"""Registry server against a real client: skopeo pushes and pulls the OCI fixture.

The server runs as ``python -m berth.registry.server`` on 127.0.0.1 with a port the kernel
picks (it prints ``listening on ...``); each test stops it by its pid. Needs skopeo
(``apt-get install -y skopeo``); skipped only when it is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import bcrypt
import pytest

FIXTURE = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "layers.oci.tar"  # ../shared
SKOPEO = shutil.which("skopeo")

pytestmark = [
    pytest.mark.skipif(SKOPEO is None, reason="skopeo not installed (apt-get install -y skopeo)"),
]


@contextmanager
def registry(root: Path, *extra: str) -> Iterator[str]:
    """Run the server; yield ``host:port``; stop it (SIGTERM, then SIGKILL) by pid."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "berth.registry.server", "serve", "--addr", "127.0.0.1:0",
         "--root", str(root), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("listening on "):
            proc.kill()
            raise AssertionError(f"server did not start: {line!r} {proc.stderr.read()}")
        yield line.strip().rsplit("/", 1)[1]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        assert proc.returncode == 0, proc.stderr.read()


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, REGISTRY_AUTH_FILE="/nonexistent/auth.json")
    res = subprocess.run([SKOPEO, "--insecure-policy", *args], capture_output=True, text=True,
                         timeout=180, env=env)
    if check:
        assert res.returncode == 0, res.stderr
    return res


def fixture_manifest_digest() -> str:
    with tarfile.open(FIXTURE) as tf:
        index = json.load(tf.extractfile("index.json"))
    return index["manifests"][0]["digest"]


def push_pull_inspect(addr: str, tmp_path: Path, creds: str | None = None,
                      tls_args: tuple[str, str] = ("--dest-tls-verify=false", "--src-tls-verify=false"),
                      ) -> None:
    dest_creds = ("--dest-creds", creds) if creds else ()
    src_creds = ("--src-creds", creds) if creds else ()
    ref = f"docker://{addr}/fixture/layers:1"
    skopeo("copy", tls_args[0], *dest_creds, f"oci-archive:{FIXTURE}", ref)
    out = tmp_path / "pulled"
    skopeo("copy", tls_args[1], *src_creds, ref, f"oci:{out}:x")
    inspect_creds = ("--creds", creds) if creds else ()
    remote = json.loads(skopeo("inspect", "--tls-verify=false", *inspect_creds, ref).stdout)
    local = json.loads(skopeo("inspect", f"oci:{out}:x").stdout)
    want = fixture_manifest_digest()
    assert remote["Digest"] == local["Digest"] == want
    assert remote["Layers"] == local["Layers"] and len(remote["Layers"]) >= 2
    assert remote["RepoTags"] == ["1"]
    raw = skopeo("inspect", "--raw", "--tls-verify=false", *inspect_creds, ref).stdout
    assert json.loads(raw)["layers"] == json.loads(skopeo("inspect", "--raw", f"oci:{out}:x").stdout)["layers"]


def test_skopeo_push_pull(tmp_path):
    root = tmp_path / "root"
    with registry(root) as addr:
        push_pull_inspect(addr, tmp_path)
        # a second push of the same image uploads nothing new and keeps one copy of each blob
        before = sorted(p.name for p in (root / "blobs").rglob("*") if p.is_file())
        skopeo("copy", "--dest-tls-verify=false", f"oci-archive:{FIXTURE}",
               f"docker://{addr}/fixture/other:2")
        after = sorted(p.name for p in (root / "blobs").rglob("*") if p.is_file())
        assert before == after
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{addr}/fixture/layers").stdout)
        assert tags["Tags"] == ["1"]
    # offline gc keeps everything the manifests reference
    res = subprocess.run([sys.executable, "-m", "berth.registry.server", "gc", "--root", str(root)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "0 blobs" in res.stdout, res.stdout + res.stderr


def _htpasswd(path: Path, user: str, password: str) -> None:
    h = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode().replace("$2b$", "$2y$", 1)
    path.write_text(f"{user}:{h}\n")


def test_skopeo_with_htpasswd(tmp_path):
    htpasswd = tmp_path / "htpasswd"
    _htpasswd(htpasswd, "user", "pass")
    with registry(tmp_path / "root", "--htpasswd", str(htpasswd)) as addr:
        res = skopeo("copy", "--dest-tls-verify=false", f"oci-archive:{FIXTURE}",
                     f"docker://{addr}/fixture/layers:1", check=False)
        assert res.returncode != 0
        assert "unauthorized" in res.stderr.lower() or "authentication required" in res.stderr.lower()
        res = skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "user:wrong",
                     f"oci-archive:{FIXTURE}", f"docker://{addr}/fixture/layers:1", check=False)
        assert res.returncode != 0
        push_pull_inspect(addr, tmp_path, creds="user:pass")


def test_skopeo_over_tls_with_htpasswd(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    htpasswd = tmp_path / "htpasswd"
    _htpasswd(htpasswd, "user", "pass")
    with registry(tmp_path / "root", "--htpasswd", str(htpasswd), "--tls-cert", str(cert),
                  "--tls-key", str(key)) as addr:
        certs = tmp_path / "certs.d"
        certs.mkdir()
        shutil.copy(cert, certs / "ca.crt")
        push_pull_inspect(addr, tmp_path, creds="user:pass",
                          tls_args=(f"--dest-cert-dir={certs}", f"--src-cert-dir={certs}"))
