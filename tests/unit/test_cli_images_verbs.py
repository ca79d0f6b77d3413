"""Image, archive, prune, df and events verbs against a fake Engine API (exact docker output)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_cli_fake_engine import FakeEngine, run_cli, stream

NOW = int(time.time())
IMG = "sha256:" + "c" * 64
HISTORY = [
    {"Id": "sha256:" + "a" * 64, "Created": NOW - 3600 * 30, "CreatedBy": '/bin/sh -c #(nop)  CMD ["sh"]\tx',
     "Tags": ["busybox:latest"], "Size": 0, "Comment": ""},
    {"Id": "<missing>", "Created": NOW - 3600 * 31,
     "CreatedBy": "/bin/sh -c #(nop) ADD file:abcdef0123456789abcdef0123456789 in / ", "Tags": None,
     "Size": 4261574, "Comment": "Imported from -"},
]
DF = {
    "LayersSize": 4262574,
    "Images": [
        {"Id": IMG, "RepoTags": ["busybox:latest"], "RepoDigests": None, "Created": NOW - 7200, "Size": 4261574,
         "SharedSize": 0, "VirtualSize": 4261574, "Containers": 1},
        {"Id": "sha256:" + "d" * 64, "RepoTags": None, "RepoDigests": None, "Created": NOW - 70, "Size": 1000,
         "SharedSize": -1, "VirtualSize": 1000, "Containers": 0},
    ],
    "Containers": [
        {"Id": "e" * 64, "Names": ["/web"], "Image": "busybox", "ImageID": IMG, "Command": "sleep 100",
         "Created": NOW - 30, "Ports": [], "SizeRw": 12, "State": "exited", "Status": "Exited (0) 2 seconds ago",
         "Mounts": []},
        {"Id": "f" * 64, "Names": ["/run1"], "Image": "busybox", "ImageID": IMG, "Command": "top",
         "Created": NOW - 300, "Ports": [], "SizeRw": 0, "State": "running", "Status": "Up 5 minutes", "Mounts": []},
    ],
    "Volumes": [
        {"Name": "vol1", "Driver": "local", "Mountpoint": "/x", "Scope": "local", "UsageData": {"RefCount": 1, "Size": 2048}},
        {"Name": "vol2", "Driver": "local", "Mountpoint": "/y", "Scope": "local", "UsageData": {"RefCount": 0, "Size": 100}},
    ],
    "BuildCache": None, "BuilderSize": 0,
}
EVENTS = [
    {"status": "die", "id": "a" * 64, "from": "busybox", "Type": "container", "Action": "die",
     "Actor": {"ID": "a" * 64, "Attributes": {"name": "bt-ev", "exitCode": "0", "image": "busybox"}},
     "scope": "local", "time": 1795730222, "timeNano": 1795730222468148855},
    {"Type": "volume", "Action": "create", "Actor": {"ID": "v1", "Attributes": {"driver": "local"}},
     "scope": "local", "time": 1795730223, "timeNano": 1795730223000000001},
]


def _now_relative(obj: object) -> object:
    """The fixture data with "Created" times moved to now: ages such as "About a minute ago"
    must not depend on how long the suite ran before this test."""
    shift = int(time.time()) - NOW
    if isinstance(obj, dict):
        return {k: (v + shift if k == "Created" and isinstance(v, int) else _now_relative(v))
                for k, v in obj.items()}
    if isinstance(obj, list):
        return [_now_relative(v) for v in obj]
    return obj


@pytest.fixture
def engine(tmp_path: Path):
    e = FakeEngine(str(tmp_path / "e.sock"))
    e.route("GET", r"/images/.+/history", lambda r: (200, _now_relative(HISTORY)))
    e.route("POST", r"/images/.+/tag", (201, None))
    e.route("DELETE", r"/images/.+", lambda r: (
        (409, {"message": "conflict: unable to delete cccccccccccc (must be forced) - image is referenced in "
                          "multiple repositories"}) if "conf" in r.path
        else (200, [{"Untagged": "bt/x:v1"}, {"Deleted": "sha256:" + "d" * 64}])))
    e.route("POST", r"/images/prune", (200, {"ImagesDeleted": [{"Untagged": "bt/x:v1"}, {"Deleted": "sha256:" + "d" * 64}],
                                             "SpaceReclaimed": 1234567}))
    e.route("POST", r"/containers/prune", (200, {"ContainersDeleted": ["e" * 64], "SpaceReclaimed": 1200}))
    e.route("POST", r"/networks/prune", (200, {"NetworksDeleted": None}))
    e.route("POST", r"/volumes/prune", (200, {"VolumesDeleted": ["v1"], "SpaceReclaimed": 100}))
    e.route("POST", r"/build/prune", (200, {"CachesDeleted": None, "SpaceReclaimed": 0}))
    e.route("GET", r"/system/df", lambda r: (200, _now_relative(DF)))
    e.route("GET", r"/events", (200, stream(*EVENTS)))
    e.route("POST", r"/images/load", (200, stream({"stream": "Loaded image: bt/imported:v2\n"})))
    e.route("GET", r"/images/get", (200, b"TARDATA"))
    e.route("GET", r"/containers/.+/export", (200, b"EXPORTTAR"))
    e.route("POST", r"/commit", (201, {"Id": IMG}))
    e.route("GET", r"/containers/.+/changes", (200, [{"Path": "/etc", "Kind": 0}, {"Path": "/etc/group", "Kind": 2},
                                                     {"Path": "/new", "Kind": 1}]))
    yield e
    e.close()


def berth(engine: FakeEngine, *args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    p = run_cli(engine, "berth", *args, stdin=stdin)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_history_table_and_flags(engine: FakeEngine) -> None:
    rc, out, _ = berth(engine, "history", "busybox")
    assert rc == 0
    assert out == (
        "IMAGE          CREATED        CREATED BY                                      SIZE      COMMENT\n"
        'aaaaaaaaaaaa   30 hours ago   /bin/sh -c #(nop)  CMD ["sh"] x                 0B        \n'
        "<missing>      31 hours ago   /bin/sh -c #(nop) ADD file:abcdef0123456789a…   4.26MB    Imported from -\n")
    assert berth(engine, "history", "-q", "busybox")[1] == "aaaaaaaaaaaa\n<missing>\n"
    out = berth(engine, "history", "-H=false", "busybox")[1]
    assert out.splitlines()[0].split() == ["IMAGE", "CREATED", "AT", "CREATED", "BY", "SIZE", "COMMENT"]
    assert "   4261574   Imported from -" in out
    line = json.loads(berth(engine, "history", "--format", "{{json .}}", "busybox")[1].splitlines()[1])
    assert line["ID"] == "<missing>" and line["Size"] == "4.26MB" and list(line) == sorted(line)
    assert berth(engine, "image", "history", "--format", "{{.ID}}|{{.Comment}}", "busybox")[1] == (
        "aaaaaaaaaaaa|\n<missing>|Imported from -\n")


def test_tag_rmi_requests_and_output(engine: FakeEngine) -> None:
    assert berth(engine, "tag", "busybox", "bt/x:v1") == (0, "", "")
    assert engine.calls(r"/images/.+/tag")[-1].query == {"repo": "docker.io/bt/x", "tag": "v1"}
    rc, out, err = berth(engine, "rmi", "-f", "bt/x:v1", "conf")
    assert out == "Untagged: bt/x:v1\nDeleted: sha256:" + "d" * 64 + "\n"
    assert err.startswith("Error response from daemon: conflict: unable to delete cccccccccccc (must be forced)")
    assert rc == 1
    assert engine.calls(r"/images/bt/x:v1")[-1].query == {"force": "1"}


def test_prune_prompts(engine: FakeEngine) -> None:
    prompt = "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    assert berth(engine, "image", "prune", stdin=b"n\n") == (0, prompt, "")
    assert not engine.calls("/images/prune")
    rc, out, _ = berth(engine, "image", "prune", stdin=b"y\n")
    assert out == prompt + ("Deleted Images:\nuntagged: bt/x:v1\ndeleted: sha256:" + "d" * 64 +
                            "\n\nTotal reclaimed space: 1.235MB\n")
    assert engine.calls("/images/prune")[-1].query == {"filters": '{"dangling":{"true":true}}'}
    berth(engine, "image", "prune", "-a", "-f", "--filter", "until=24h")
    assert engine.calls("/images/prune")[-1].query == {"filters": '{"dangling":{"false":true},"until":{"24h":true}}'}
    assert berth(engine, "container", "prune", "-f")[1] == (
        "Deleted Containers:\n" + "e" * 64 + "\n\nTotal reclaimed space: 1.2kB\n")
    rc, out, _ = berth(engine, "system", "prune", "-a", "--volumes", stdin=b"y\n")
    assert out.startswith("WARNING! This will remove:\n  - all stopped containers\n"
                          "  - all networks not used by at least one container\n"
                          "  - all anonymous volumes not used by at least one container\n"
                          "  - all images without at least one container associated to them\n  - all build cache\n\n"
                          "Are you sure you want to continue? [y/N] Deleted Containers:\n")
    assert out.endswith("Deleted Volumes:\nv1\n\nDeleted Images:\nuntagged: bt/x:v1\ndeleted: sha256:" + "d" * 64 +
                        "\n\nTotal reclaimed space: 1.236MB\n")
    assert rc == 0
    # berthd has no build cache: a 404 from /build/prune is nothing to prune, not a failure
    engine.route("POST", r"/build/prune", (404, {"message": "page not found"}))
    rc, out, err = berth(engine, "system", "prune", "-f")
    assert (rc, err) == (0, "") and out.endswith("Total reclaimed space: 1.236MB\n")


def test_system_df(engine: FakeEngine) -> None:
    assert berth(engine, "system", "df")[1] == (
        "TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\n"
        "Images          2         1         4.263MB   1kB (0%)\n"
        "Containers      2         1         12B       12B (100%)\n"
        "Local Volumes   2         1         2.148kB   100B (4%)\n"
        "Build Cache     0         0         0B        0B\n")
    out = berth(engine, "system", "df", "-v")[1]
    assert "Images space usage:\n\nREPOSITORY   TAG       IMAGE ID       CREATED" in out
    assert "busybox      latest    cccccccccccc   2 hours ago          4.26MB    0B            4.262MB       1\n" in out
    assert "\nLocal Volumes space usage:\n\nVOLUME NAME   LINKS     SIZE\nvol1          1         2.048kB\n" in out
    assert out.endswith("Build cache usage: 0B\n\nCACHE ID   CACHE TYPE   SIZE      CREATED   LAST USED   USAGE     SHARED\n")


def test_events_pretty_and_json(engine: FakeEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    p = run_cli(engine, "berth", "events", "--since", "0", "--until", "1", env={"TZ": "UTC"})
    assert p.stdout.decode() == (
        "2026-11-26T21:57:02.468148855Z container die " + "a" * 64 + " (exitCode=0, image=busybox, name=bt-ev)\n"
        "2026-11-26T21:57:03.000000001Z volume create v1 (driver=local)\n")
    assert engine.calls("/events")[-1].query == {"since": "0", "until": "1"}
    out = berth(engine, "events", "--format", "{{json .}}", "-f", "type=container")[1]
    assert json.loads(out.splitlines()[0])["Actor"]["Attributes"] == {"exitCode": "0", "image": "busybox", "name": "bt-ev"}
    assert out.splitlines()[1].startswith('{"Type":"volume","Action":"create"')
    assert berth(engine, "events", "--format", "{{.Type}} {{.Actor.Attributes.name}}")[1] == (
        "container bt-ev\nvolume <no value>\n")


def test_save_load_export_commit_diff(engine: FakeEngine, tmp_path: Path) -> None:
    assert berth(engine, "save", "busybox", "bt/x:v1")[1] == "TARDATA"
    assert engine.calls("/images/get")[-1].query == {"names": ["busybox", "bt/x:v1"]}
    target = tmp_path / "out.tar"
    assert berth(engine, "save", "-o", str(target), "busybox") == (0, "", "")
    assert target.read_bytes() == b"TARDATA"
    assert berth(engine, "save", "-o", "/nonexistent/x.tar", "busybox") == (
        1, "", "failed to save image: invalid output path: stat /nonexistent: no such file or directory\n")
    rc, out, _ = berth(engine, "load", stdin=b"tar-bytes")
    assert (rc, out) == (0, "Loaded image: bt/imported:v2\n")
    req = engine.calls("/images/load")[-1]
    assert (req.query, req.body, req.headers["content-type"]) == ({"quiet": "1"}, b"tar-bytes", "application/x-tar")
    assert req.headers.get("transfer-encoding") == "chunked"
    assert berth(engine, "load", "-i", "/nonexistent") == (1, "", "open /nonexistent: no such file or directory\n")
    assert berth(engine, "export", "c1")[1] == "EXPORTTAR"
    assert berth(engine, "commit", "-a", "me", "-m", "msg", "-c", "ENV A=1", "--pause=false", "c1", "bt/c") == (
        0, IMG + "\n", "")
    assert engine.calls("/commit")[-1].query == {"author": "me", "changes": "ENV A=1", "comment": "msg",
                                                  "container": "c1", "pause": "0", "repo": "docker.io/bt/c",
                                                  "tag": "latest"}
    assert berth(engine, "diff", "c1")[1] == "C /etc\nD /etc/group\nA /new\n"


@pytest.mark.parametrize(("args", "message"), [
    (["history"], "berth: 'berth history' requires 1 argument\n\nUsage:  berth history [OPTIONS] IMAGE\n\n"
                  "Run 'berth history --help' for more information\n"),
    (["save"], "berth: 'berth save' requires at least 1 argument\n\nUsage:  berth save [OPTIONS] IMAGE [IMAGE...]\n\n"
               "See 'berth save --help' for more information\n"),
    (["images", "a", "b"], "berth: 'berth images' requires at most 1 argument\n\n"
                           "Usage:  berth images [OPTIONS] [REPOSITORY[:TAG]]\n\n"
                           "SRun 'berth images --help' for more information\n"),
])
def test_argument_count_errors(engine: FakeEngine, args: list[str], message: str) -> None:
    assert berth(engine, *args) == (1, "", message)


COMPARED = [
    (["history", "busybox"], b""), (["history", "--no-trunc", "--format", "json", "busybox"], b""),
    (["tag", "busybox", "127.0.0.1:5000/a"], b""), (["rmi", "busybox", "conf"], b""),
    (["image", "prune"], b"y\n"), (["image", "prune"], b"n\n"), (["container", "prune"], b"y\n"),
    (["system", "prune", "--filter", "label=a=b"], b"y\n"),
    (["system", "df"], b""), (["system", "df", "-v"], b""), (["system", "df", "--format", "json"], b""),
    (["events", "--since", "2026-11-26T21:52:58.5Z", "--until", "10m"], b""), (["events", "--format", "json"], b""),
    (["load"], b"x"), (["commit", "c1", "bt/x"], b""), (["diff", "c1"], b""), (["image", "prune", "x"], b""),
]


@pytest.mark.skipif(not os.path.exists("/usr/local/bin/docker"), reason="needs the docker CLI")
@pytest.mark.parametrize(("args", "stdin"), COMPARED, ids=[" ".join(a) for a, _ in COMPARED])
def test_same_as_docker(engine: FakeEngine, args: list[str], stdin: bytes) -> None:
    results = []
    for which in ("docker", "berth"):
        n = len(engine.requests)
        p = run_cli(engine, which, *args, stdin=stdin)
        reqs = [(r.method, r.path, r.query, r.body) for r in engine.requests[n:] if r.path != "/_ping"]
        results.append((p.returncode, p.stdout.decode(), p.stderr.decode().replace("docker", "berth"), reqs))
    assert results[1] == results[0]
