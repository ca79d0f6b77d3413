"""The image verbs of the berth CLI against a real berthd, checked against the docker CLI.

history, tag, rmi (Untagged/Deleted lines, the conflict naming the container), images
filters and formats, save/load round trip, commit/diff, attach, prune and system df.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path


def _json_lines(text: str) -> list[dict]:
    rows = [json.loads(line) for line in text.splitlines()]
    for r in rows:
        r.pop("CreatedSince", None)  # "N seconds ago" may tick between the two CLIs
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def test_history_matches_docker(berth) -> None:
    r = berth("history", "-H=false", "busybox", check=True)
    assert r.stdout == berth.docker("history", "-H=false", "busybox", check=True).stdout
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["IMAGE", "CREATED", "AT", "CREATED", "BY", "SIZE", "COMMENT"]
    assert lines[-1].endswith("Imported from -")
    for fmt in ("json", "{{json .}}"):
        ours = _json_lines(berth("history", "--no-trunc", "--format", fmt, "busybox", check=True).stdout)
        assert ours == _json_lines(berth.docker("history", "--no-trunc", "--format", fmt, "busybox", check=True).stdout)
    assert berth("history", "-q", "busybox").stdout == berth.docker("history", "-q", "busybox").stdout
    r = berth("history", "nosuchimage:v9")
    assert (r.returncode, r.stderr) == (1, "Error response from daemon: No such image: nosuchimage:v9\n")


def test_tag_and_rmi_untag_then_delete(berth) -> None:
    assert berth("tag", "busybox", "bt/cli-tag:v1") == berth("tag", "busybox", "bt/cli-tag:v1")  # idempotent
    r = berth("images", "--format", "{{.Repository}}:{{.Tag}}", "bt/cli-tag", check=True)
    assert r.stdout == "bt/cli-tag:v1\n"
    r = berth("rmi", "bt/cli-tag:v1", check=True)
    assert r.stdout == "Untagged: bt/cli-tag:v1\n"  # busybox still names the image
    # an image of its own: untagged and deleted
    berth("run", "--name", "bt-cli-rmi", "busybox", "sh", "-c", "echo x > /f", check=True)
    image_id = berth("commit", "bt-cli-rmi", "bt/cli-own:v1", check=True).stdout.strip()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", image_id)
    berth("rm", "bt-cli-rmi", check=True)
    r = berth("rmi", "bt/cli-own:v1", check=True)
    lines = r.stdout.splitlines()
    assert lines[:2] == ["Untagged: bt/cli-own:v1", f"Deleted: {image_id}"]
    assert all(re.fullmatch(r"Deleted: sha256:[0-9a-f]{64}", line) for line in lines[2:])  # its own layer
    r = berth("rmi", "bt/cli-own:v1")
    assert (r.returncode, r.stdout, r.stderr) == (1, "", "Error response from daemon: No such image: bt/cli-own:v1\n")


def test_rmi_of_an_image_in_use_names_the_container(berth) -> None:
    berth("run", "--name", "bt-cli-src", "busybox", "true", check=True)
    image_id = berth("commit", "bt-cli-src", "bt/cli-used:v1", check=True).stdout.strip()
    cid = berth("create", "--name", "bt-cli-user", "bt/cli-used:v1", "true", check=True).stdout.strip()
    try:
        ours = berth("rmi", "bt/cli-used:v1")
        theirs = berth.docker("rmi", "bt/cli-used:v1")
        assert ours.returncode == 1
        assert ours.stderr == (f'Error response from daemon: conflict: unable to remove repository reference '
                               f'"bt/cli-used:v1" (must force) - container {cid[:12]} is using its referenced image '
                               f'{image_id[7:19]}\n')
        assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)
    finally:
        berth("rm", "-f", "bt-cli-user", "bt-cli-src")
        berth("rmi", "-f", "bt/cli-used:v1")


def test_images_filters_and_formats_match_docker(berth) -> None:
    berth("run", "--name", "bt-cli-dangle", "busybox", "true", check=True)
    dangling = berth("commit", "bt-cli-dangle", check=True).stdout.strip()
    berth("rm", "bt-cli-dangle", check=True)
    try:
        r = berth("images", "-q", "--no-trunc", "-f", "dangling=true", check=True)
        assert dangling in r.stdout.split()
        assert r.stdout == berth.docker("images", "-q", "--no-trunc", "-f", "dangling=true").stdout
        header = berth("images", "--digests", "busybox", check=True).stdout.splitlines()[0]
        assert header.split() == ["REPOSITORY", "TAG", "DIGEST", "IMAGE", "ID", "CREATED", "SIZE"]
        for args in (["--format", "{{json .}}"], ["--format", "json"], ["-f", "dangling=true", "--format", "json"]):
            ours = _json_lines(berth("images", *args, check=True).stdout)
            assert ours == _json_lines(berth.docker("images", *args, check=True).stdout)
        assert berth("images", "--format", "table {{.Repository}}\t{{.Tag}}", "busybox").stdout == (
            "REPOSITORY   TAG\nbusybox      latest\n")
    finally:
        berth("rmi", dangling)


def test_save_load_round_trip(berth, tmp_path: Path) -> None:
    berth("tag", "busybox", "bt/cli-saved:v1", check=True)
    target = tmp_path / "saved.tar"
    assert berth("save", "-o", str(target), "bt/cli-saved:v1", check=True).stdout == ""
    assert target.stat().st_size > 10000
    berth("rmi", "bt/cli-saved:v1", check=True)
    r = berth("load", "-i", str(target), check=True)
    assert r.stdout == "Loaded image: bt/cli-saved:v1\n"
    piped = tmp_path / "piped.tar"
    with open(piped, "wb") as fh:  # save to a redirected stdout
        subprocess.run([sys.executable, "-m", "berth.cli.main", "save", "bt/cli-saved:v1"], stdout=fh,
                       env=berth.daemon.env(), check=True, timeout=60)
    assert piped.read_bytes()[:512] == target.read_bytes()[:512]
    r = berth("load", input=piped.read_bytes())
    assert (r.returncode, r.stdout) == (0, "Loaded image: bt/cli-saved:v1\n")
    berth("rmi", "bt/cli-saved:v1", check=True)


def test_diff_commit_and_attach(berth) -> None:
    berth("run", "--name", "bt-cli-diff", "busybox", "sh", "-c", "echo hi > /new; rm /etc/group", check=True)
    r = berth("diff", "bt-cli-diff", check=True)
    assert r.stdout == berth.docker("diff", "bt-cli-diff", check=True).stdout == "C /etc\nD /etc/group\nA /new\n"
    r = berth("attach", "bt-cli-diff")
    assert (r.returncode, r.stderr) == (1, "You cannot attach to a stopped container, start it first\n")
    berth("run", "-d", "--name", "bt-cli-attach", "busybox", "sh", "-c", "sleep 1; echo hi; echo err >&2; exit 3",
          check=True)
    r = berth("attach", "bt-cli-attach", timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (3, "hi\n", "err\n")


def test_prune_and_df(berth) -> None:
    berth("run", "--name", "bt-cli-prune", "busybox", "true", check=True)
    cid = berth("inspect", "-f", "{{.Id}}", "bt-cli-prune", check=True).stdout.strip()
    r = berth("container", "prune", input="n\n")
    assert (r.returncode, r.stdout) == (0, "WARNING! This will remove all stopped containers.\n"
                                           "Are you sure you want to continue? [y/N] ")
    assert cid in berth.ids()
    r = berth("container", "prune", "-f")
    assert r.stdout.startswith("Deleted Containers:\n") and f"\n{cid}\n" in r.stdout
    assert re.search(r"\n\nTotal reclaimed space: \S+\n$", r.stdout)
    r = berth("system", "df")
    assert r.stdout.splitlines()[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert r.stdout == berth.docker("system", "df").stdout
