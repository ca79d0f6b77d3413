"""``berth search`` against a fake Engine API: the request (term, limit, filters, X-Registry-Auth)
and the rendering (table, --no-trunc, --format json / templates), byte for byte as docker CLI
28.2.2 prints it; when docker's CLI is installed, every scenario is also run through it."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from test_cli_fake_engine import DOCKER, FakeEngine, run_cli

RESULTS = [
    {"star_count": 12, "is_official": True, "name": "busybox", "is_automated": False,
     "description": "Busybox base image with a rather long description that goes past forty five chars <&>"},
    {"star_count": 0, "is_official": False, "name": "bt/searchme", "is_automated": False, "description": ""},
    {"star_count": 3, "is_official": False, "name": "x/multi", "is_automated": False,
     "description": "line1\nline2\rend"},
]
LONG = "Busybox base image with a rather long description that goes past forty five chars <&>"
AUTH = {"username": "bob", "password": "pw", "serveraddress": "127.0.0.1:5000"}

# (argv, exit status, stdout, stderr, the query sent, the X-Registry-Auth sent (None: not checked))
CASES = [
    (["search", "busybox"], 0,
     "NAME          DESCRIPTION                                     STARS     OFFICIAL\n"
     "busybox       Busybox base image with a rather long descri…   12        [OK]\n"
     "bt/searchme                                                   0         \n"
     "x/multi       line1 line2 end                                 3         \n", "",
     {"term": "busybox"}, {"username": "hub", "password": "pw", "serveraddress": "https://index.docker.io/v1/"}),
    (["search", "--no-trunc", "--format", "table", "busybox"], 0,
     "NAME          DESCRIPTION" + " " * 77 + "STARS     OFFICIAL\n"
     f"busybox       {LONG}   12        [OK]\n"
     "bt/searchme   " + " " * 88 + "0         \n"
     "x/multi       line1 line2 end" + " " * 73 + "3         \n", "",
     {"term": "busybox"}, None),
    (["search", "--format", "json", "busybox"], 0,
     '{"Description":"Busybox base image with a rather long descri…","IsOfficial":"true","Name":"busybox",'
     '"StarCount":"12"}\n'
     '{"Description":"","IsOfficial":"false","Name":"bt/searchme","StarCount":"0"}\n'
     '{"Description":"line1 line2 end","IsOfficial":"false","Name":"x/multi","StarCount":"3"}\n', "",
     {"term": "busybox"}, None),
    (["search", "--format", "{{.Name}}|{{.IsOfficial}}|{{.StarCount}}", "busybox"], 0,
     "busybox|[OK]|12\nbt/searchme||0\nx/multi||3\n", "", {"term": "busybox"}, None),
    (["search", "--format", "table {{.Name}}\t{{.StarCount}}", "busybox"], 0,
     "NAME          STARS\nbusybox       12\nbt/searchme   0\nx/multi       3\n", "", {"term": "busybox"}, None),
    (["search", "--limit", "5", "-f", "stars=2", "-f", "is-automated=true", "-f", "Is-Official = false ",
      "127.0.0.1:5000/bt/x"], 0, None,
     'WARNING: the "is-automated" filter is deprecated, and searching for "is-automated=true" will not '
     "yield any results in future.\n",
     {"term": "127.0.0.1:5000/bt/x", "limit": "5",
      "filters": '{"is-automated":{"true":true},"is-official":{"false":true},"stars":{"2":true}}'}, AUTH),
    (["search", "--limit", "0", "localhost:7/none"], 0, "NAME      DESCRIPTION   STARS     OFFICIAL\n", "",
     {"term": "localhost:7/none"}, {}),
    (["search", "nf"], 1, "", "Error response from daemon: Unexpected status code 404\n", {"term": "nf"}, None),
    (["search"], 1, "", "{p}: '{p} search' requires 1 argument\n\nUsage:  {p} search [OPTIONS] TERM\n\n"
     "Run '{p} search --help' for more information\n", None, None),
    (["search", "-f", "bad", "x"], 125, "",
     'invalid argument "bad" for "-f, --filter" flag: bad format of filter (expected name=value)\n\n'
     "Usage:  {p} search [OPTIONS] TERM\n\nRun '{p} search --help' for more information\n", None, None),
    (["search", "--limit", "x", "x"], 125, "",
     'invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": invalid syntax\n\n'
     "Usage:  {p} search [OPTIONS] TERM\n\nRun '{p} search --help' for more information\n", None, None),
]


@pytest.fixture
def engine(tmp_path: Path):
    e = FakeEngine(str(tmp_path / "e.sock"))
    e.route("GET", r"/images/search", lambda r: (
        (404, {"message": "Unexpected status code 404"}) if r.query["term"] == "nf" else
        (200, [] if "none" in r.query["term"] else RESULTS)))
    yield e
    e.close()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    d = tmp_path / "cfg"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"auths": {
        "127.0.0.1:5000": {"auth": base64.b64encode(b"bob:pw").decode()},
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()}}}))
    return d


CLIS = ["berth"] + (["docker"] if DOCKER else [])


@pytest.mark.parametrize("which", CLIS)
@pytest.mark.parametrize("case", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_search_like_docker(engine: FakeEngine, config: Path, which: str, case) -> None:
    argv, status, out, err, query, auth = case
    p = run_cli(engine, which, *argv, env={"DOCKER_CONFIG": str(config)})
    assert p.returncode == status
    if out is not None:
        assert p.stdout.decode() == out
    assert p.stderr.decode() == err.format(p=which)
    calls = engine.calls("/images/search")
    if query is None:
        assert calls == []
        return
    assert calls[-1].query == query
    raw = calls[-1].headers["x-registry-auth"]
    if auth is not None:
        assert json.loads(base64.urlsafe_b64decode(raw)) == auth


def test_search_help() -> None:
    import subprocess
    import sys

    from test_cli_fake_engine import ROOT

    p = subprocess.run([sys.executable, "-m", "berth.cli.main", "search", "--help"], capture_output=True,
                       text=True, cwd=ROOT)
    assert p.stdout == ("Usage:  berth search [OPTIONS] TERM\n\nSearch Docker Hub for images\n\nOptions:\n"
                        "  -f, --filter filter   Filter output based on conditions provided\n"
                        "      --format string   Pretty-print search using a Go template\n"
                        "      --limit int       Max number of search results\n"
                        "      --no-trunc        Don't truncate output\n")
