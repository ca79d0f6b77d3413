"""User resolution against a fake root, and capability names/masks."""

from __future__ import annotations

import pytest

from berth.errors import InvalidArgument, StartError
from berth.runtime import caps, user


@pytest.fixture
def root(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n# comment\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        "app:x:1000:1000::/home/app:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\napp:x:1000:\naudio:x:29:app,other\n"
                                        "video:x:44:app\n")
    return str(tmp_path)


@pytest.mark.parametrize("spec,expected", [
    ("", (0, 0, [], "/root")),
    ("root", (0, 0, [], "/root")),
    ("nobody", (65534, 65534, [], "/nonexistent")),
    ("nobody:nogroup", (65534, 65534, [], "/nonexistent")),
    ("app", (1000, 1000, [29, 44], "/home/app")),
    ("1000", (1000, 1000, [29, 44], "/home/app")),
    ("1000:44", (1000, 44, [], "/home/app")),
    ("4242", (4242, 0, [], "/")),
    ("4242:4343", (4242, 4343, [], "/")),
])
def test_resolve(root, spec, expected):
    u = user.resolve(spec, root)
    assert (u.uid, u.gid, u.additional_gids, u.home) == expected


def test_missing_user_and_group(root):
    with pytest.raises(StartError) as ei:
        user.resolve("nobody2", root)
    assert ei.value.exit_code == 126
    assert ei.value.message == "unable to find user nobody2: no matching entries in passwd file"
    with pytest.raises(StartError, match="unable to find group nogroup2"):
        user.resolve("nobody:nogroup2", root)


def test_no_passwd_file(tmp_path):
    assert user.resolve("", str(tmp_path)).uid == 0
    with pytest.raises(StartError):
        user.resolve("nobody", str(tmp_path))


def test_with_home():
    assert user.with_home(["A=1"], "/root") == ["A=1", "HOME=/root"]
    assert user.with_home(["HOME=/x"], "/root") == ["HOME=/x"]


def test_cap_names_and_masks():
    assert caps.CAP_NUMBERS["CAP_CHECKPOINT_RESTORE"] == 40
    assert caps.normalize("net_admin") == "CAP_NET_ADMIN" and caps.normalize("all") == "ALL"
    with pytest.raises(InvalidArgument):
        caps.normalize("nope")
    assert caps.mask(caps.DEFAULT_CAPS) == 0xA80425FB  # docker's CapBnd
    assert caps.effective_set(["ALL"], ["CHOWN"], False)[0] == "CAP_DAC_OVERRIDE"
    assert caps.effective_set(None, ["ALL"], False) == []


def test_apply_calls_the_seam_in_order(monkeypatch):
    calls = []
    from berth.runtime import syscalls
    for name in ("prctl", "setgroups", "setresgid", "setresuid", "capset"):
        monkeypatch.setattr(syscalls, name, lambda *a, _n=name: calls.append((_n, *a)))
    monkeypatch.setattr(caps, "last_cap", lambda: 40)
    caps.apply({"bounding": caps.DEFAULT_CAPS, "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]},
               1000, 1000, [29])
    drops = [c[2] for c in calls if c[:2] == ("prctl", syscalls.PR_CAPBSET_DROP)]
    assert len(drops) == 41 - len(caps.DEFAULT_CAPS) and caps.CAP_NUMBERS["CAP_SYS_ADMIN"] in drops
    names = [c[0] for c in calls if c[0] != "prctl"]
    assert names == ["setgroups", "setresgid", "setresuid", "capset"]
    assert ("capset", 1 << 5, 1 << 5, 0) in calls
    assert ("prctl", syscalls.PR_SET_KEEPCAPS, 1) in calls
