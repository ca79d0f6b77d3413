"""A layer shared by ten images is stored once on disk; removing nine of them keeps it."""

from __future__ import annotations

import json
from pathlib import Path


def _layer_dirs(data_root: Path) -> set[str]:
    return {p.name for p in (data_root / "layers").iterdir() if len(p.name) == 64}


def _du(path: Path) -> int:
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def test_ten_images_share_one_base_layer(berth, daemon):
    base = json.loads(berth("image", "inspect", "busybox", check=True).stdout)[0]["RootFS"]["Layers"][0]
    before = _layer_dirs(daemon.data_root)
    assert base[7:] in before  # a one-layer image's chain id is its diff id
    tags = []
    try:
        for i in range(10):
            cid = berth("create", "busybox", "true", check=True).stdout.strip()
            berth("commit", "-c", f"LABEL n={i}", cid, f"bt/share:{i}", check=True)
            berth("rm", cid, check=True)
            tags.append(f"bt/share:{i}")
        infos = [json.loads(berth("image", "inspect", t, check=True).stdout)[0] for t in tags]
        assert all(info["RootFS"]["Layers"][0] == base for info in infos)
        assert len({info["Id"] for info in infos}) == 10  # ten distinct images
        after = _layer_dirs(daemon.data_root)
        # one busybox layer dir for all of them, plus at most one new layer each
        assert base[7:] in after and len(after - before) <= 10
        new_bytes = sum(_du(daemon.data_root / "layers" / d) for d in after - before)
        assert new_bytes < _du(daemon.data_root / "layers" / base[7:]) / 10  # no copy of busybox
        berth("rmi", *tags[:9], check=True)
        assert base[7:] in _layer_dirs(daemon.data_root)
    finally:
        berth("rmi", *tags)
