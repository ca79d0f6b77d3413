"""Owners and modes survive unpacking exactly, including under a setgid directory (whose group
new files would otherwise inherit) and for modes the umask would otherwise cut."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from berth.layers.archive import unpack_layer

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root (CI runs as root)")


def _tar(members: list[tuple[str, int, int, int, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, mode, uid, gid, data in members:
            ti = tarfile.TarInfo(name)
            ti.mode, ti.uid, ti.gid, ti.mtime = mode, uid, gid, 1700000000
            if data is None:
                ti.type = tarfile.DIRTYPE
                tf.addfile(ti)
            else:
                ti.size = len(data)
                tf.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def test_owners_and_modes_exact(tmp_path: Path) -> None:
    dest = tmp_path / "layer"
    dest.mkdir()
    unpack_layer(io.BytesIO(_tar([
        ("shared", 0o2775, 0, 50, None),            # setgid dir of group 50
        ("shared/root-file", 0o644, 0, 0, b"r"),     # must stay 0:0, not inherit group 50
        ("shared/user-file", 0o640, 1000, 1000, b"u"),
        ("wide", 0o666, 0, 0, b"w"),                 # the umask would cut it to 0644
        ("suid", 0o4755, 0, 0, b"s"),
        ("plain", 0o644, 0, 0, b"p"),
    ])), str(dest))

    def owner_mode(rel: str) -> tuple[int, int, int]:
        st = os.lstat(dest / rel)
        return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)

    assert owner_mode("shared") == (0, 50, 0o2775)
    assert owner_mode("shared/root-file") == (0, 0, 0o644)
    assert owner_mode("shared/user-file") == (1000, 1000, 0o640)
    assert owner_mode("wide") == (0, 0, 0o666)
    assert owner_mode("suid") == (0, 0, 0o4755)
    assert owner_mode("plain") == (0, 0, 0o644)
    assert (dest / "plain").read_bytes() == b"p" and os.stat(dest / "plain").st_mtime == 1700000000
