"""The bundle Berth writes is a real OCI runtime bundle: Debian's runc runs it unchanged.

Berth mounts the rootfs inside the container's mount namespace; another runtime needs it mounted
beforehand, as containerd does. The test does that inside a private mount namespace
(`unshare -m`), so the mount goes away with the namespace and nothing is left on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from berth.containers.etcfiles import write_etc_files
from berth.layers.store import LayerStore
from berth.runtime.spec import generate_spec

RUNC = shutil.which("runc")
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(RUNC is None, reason="runc is installed by scripts/install.sh --test"),
]


def _bundle(tmp_path: Path, busybox_tar: Path, cmd: list[str]) -> tuple[Path, str]:
    layers = LayerStore(tmp_path / "data")
    with open(busybox_tar, "rb") as f:
        layer = layers.apply_tar(f)
    cid = "bt" + uuid.uuid4().hex
    cdir = tmp_path / "c"
    (cdir / "bundle" / "rootfs").mkdir(parents=True)
    (cdir / "upper").mkdir()
    (cdir / "work").mkdir()
    etc = write_etc_files(cdir, cid[:12])
    spec = generate_spec(
        container_id=cid, config={"Cmd": cmd, "Env": ["FOO=bar"], "Hostname": cid[:12]},
        host_config={"Memory": 64 << 20, "PidsLimit": 100}, hostname_path=str(etc["hostname"]),
        hosts_path=str(etc["hosts"]), resolv_path=str(etc["resolv"]), cgroups_path=f"/berth-runc/{cid}")
    (cdir / "bundle" / "config.json").write_text(json.dumps(spec))
    [mount] = layers.overlay_mounts(layers.lower_dirs(layer.chain_id), cdir / "upper", cdir / "work")
    script = (f"mount -t overlay overlay -o {','.join(mount['options'])} {cdir}/bundle/rootfs && "
              f"exec {RUNC} --root {tmp_path}/runc run --bundle {cdir}/bundle {cid}")
    return cdir, script


def test_runc_runs_berths_bundle(tmp_path: Path, busybox_tar: Path) -> None:
    cdir, script = _bundle(tmp_path, busybox_tar, ["sh", "-c", "echo $FOO; hostname; ps -o pid,comm; "
                                                   "cat /proc/self/status | grep CapEff; echo hi > /new"])
    try:
        p = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", script],
                           capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    finally:  # runc removes the container's cgroup; the parent it made for it is ours to remove
        for parent in Path("/sys/fs/cgroup").glob("*/berth-runc"):
            try:
                parent.rmdir()
            except OSError:
                pass
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "bar"
    assert lines[1] == json.loads((cdir / "bundle" / "config.json").read_text())["hostname"]
    assert lines[3].split() == ["1", "sh"]  # PID 1 in its own pid namespace
    assert lines[-1].split()[1] == "00000000a80425fb"  # Docker's default capabilities
    assert (cdir / "upper" / "new").read_text() == "hi\n"  # writes land in the upper dir
    assert str(cdir) not in open("/proc/self/mountinfo").read()
