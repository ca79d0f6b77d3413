"""An image of many layers runs: past ~40 layers the overlay's lowerdir option no longer fits in a
page with absolute paths, and past ~95 not even with absolute short links: Berth then mounts
with relative links from the layers dir (as Docker's overlay2 does)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

LAYERS = 125


def _layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1700000000
            tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _archive(path: Path, busybox_tar: Path) -> None:
    layers = [busybox_tar.read_bytes()] + [_layer_tar({f"l{i}": f"{i}\n".encode()}) for i in range(1, LAYERS)]
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2026-11-26T00:00:00Z",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2026-11-26T00:00:00Z", "created_by": f"layer {i}"} for i in range(LAYERS)],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as tf:
        def add(name: str, data: bytes) -> None:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        names = []
        for d, t in zip(diff_ids, layers, strict=True):
            names.append(f"{d[7:]}/layer.tar")
            add(names[-1], t)
        add(config_name, config)
        add("manifest.json", json.dumps([{"Config": config_name, "RepoTags": ["bt/many:1"],
                                          "Layers": names}]).encode())


def test_image_of_125_layers_runs(berth, busybox_tar: Path, tmp_path: Path) -> None:
    archive = tmp_path / "many.tar"
    _archive(archive, busybox_tar)
    r = berth("load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    try:
        r = berth("run", "--rm", "bt/many:1", "sh", "-c", f"cat /l1 /l{LAYERS - 1}; ls / | grep -c '^l[0-9]'")
        assert r.returncode == 0, r.stderr
        assert r.stdout.split() == ["1", str(LAYERS - 1), str(LAYERS - 1)]
    finally:
        berth("rmi", "bt/many:1")
