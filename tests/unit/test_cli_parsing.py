"""Flag grammar, create-body building, sizes, durations, tables, templates, frames."""

from __future__ import annotations

import os
import struct

import pytest

from berth.cli.containers import format_ports, timestamp_param
from berth.cli.flags import HelpRequested, UsageError
from berth.cli.formatting import Template, bytes_size, ellipsis, human_duration, human_size, tabwrite
from berth.cli.runconfig import build_create_body, nano_cpus, ram_in_bytes, run_command
from berth.cli.streams import Demuxer, demux_all, parse_detach_keys


def parse_run(*argv: str):
    return run_command().parse(list(argv))


def test_run_stops_at_first_positional() -> None:
    opts, args = parse_run("-it", "--rm", "busybox", "sh", "-c", "ls -l", "--rm", "-e", "X")
    assert opts.interactive and opts.tty and opts.rm
    assert args == ["busybox", "sh", "-c", "ls -l", "--rm", "-e", "X"]
    assert opts.env is None


def test_env_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_CLI", "v1")
    monkeypatch.delenv("NOT_SET", raising=False)
    opts, args = parse_run("-e", "A=1", "-eB=2", "--env=C=3", "--env", "FROM_CLI", "-e", "NOT_SET", "img")
    body = build_create_body(opts, args, False, (0, 0))
    assert body["Env"] == ["A=1", "B=2", "C=3", "FROM_CLI=v1"]


def test_env_file(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME_X", "h")
    f = tmp_path / "env"
    f.write_text("# comment\n\nK=V with spaces\nHOME_X\n")
    opts, args = parse_run("--env-file", str(f), "-e", "Z=1", "img")
    assert build_create_body(opts, args, False, (0, 0))["Env"] == ["K=V with spaces", "HOME_X=h", "Z=1"]


@pytest.mark.parametrize(("text", "value"), [
    ("32m", 32 << 20), ("1g", 1 << 30), ("1024", 1024), ("1.5GiB", 3 << 29), ("512k", 512 << 10),
    ("64MB", 64 << 20), ("10 m", 10 << 20),
])
def test_memory_units(text: str, value: int) -> None:
    assert ram_in_bytes(text) == value


def test_memory_errors_like_docker() -> None:
    with pytest.raises(UsageError) as e:
        parse_run("--memory", "12q", "img")
    assert e.value.message.startswith('invalid argument "12q" for "-m, --memory" flag: invalid suffix: \'q\'')
    assert e.value.code == 125


def test_cpus() -> None:
    assert nano_cpus("1.5") == 1_500_000_000
    assert nano_cpus("0.000000001") == 1
    with pytest.raises(ValueError, match="rational number"):
        nano_cpus("abc")
    opts, args = parse_run("--cpus", "2", "-m", "1g", "--memory-swap", "-1", "img")
    hc = build_create_body(opts, args, False, (0, 0))["HostConfig"]
    assert (hc["NanoCpus"], hc["Memory"], hc["MemorySwap"]) == (2_000_000_000, 1 << 30, -1)


def test_unknown_flags_and_arguments() -> None:
    with pytest.raises(UsageError) as e:
        parse_run("--bogus", "img")
    assert e.value.message == ("unknown flag: --bogus\n\nUsage:  berth run [OPTIONS] IMAGE [COMMAND] [ARG...]\n\n"
                               "Run 'berth run --help' for more information")
    assert e.value.code == 125
    with pytest.raises(UsageError) as e:
        parse_run("-z", "img")
    assert e.value.message.startswith("unknown shorthand flag: 'z' in -z")
    with pytest.raises(UsageError) as e:
        parse_run("-e")
    assert e.value.message.startswith("flag needs an argument: 'e' in -e")
    with pytest.raises(UsageError) as e:
        parse_run()
    assert e.value.message.startswith("berth: 'berth run' requires at least 1 argument")
    assert e.value.code == 1
    with pytest.raises(HelpRequested):
        parse_run("--help")


def test_h_is_hostname_for_run() -> None:
    opts, _ = parse_run("-h", "box", "img")
    assert opts.hostname == "box"


def test_bool_values_and_detach_body() -> None:
    opts, args = parse_run("--rm=false", "-d", "-i", "--entrypoint", "", "--name", "x", "img", "a")
    body = build_create_body(opts, args, True, (0, 0))
    assert not opts.rm
    assert body["Entrypoint"] == [""]
    assert body["Cmd"] == ["a"]
    assert (body["AttachStdin"], body["AttachStdout"], body["OpenStdin"], body["StdinOnce"]) == (False, False, True, False)


def test_caps_labels_ports() -> None:
    opts, args = parse_run("--cap-add", "net_admin", "--cap-drop", "ALL", "-l", "a=b", "-l", "c",
                           "-p", "127.0.0.1:8080:80/udp", "-p", "443", "img")
    body = build_create_body(opts, args, False, (0, 0))
    assert body["HostConfig"]["CapAdd"] == ["CAP_NET_ADMIN"]
    assert body["HostConfig"]["CapDrop"] == ["ALL"]
    assert body["Labels"] == {"a": "b", "c": ""}
    assert body["ExposedPorts"] == {"80/udp": {}, "443/tcp": {}}
    assert body["HostConfig"]["PortBindings"]["80/udp"] == [{"HostIp": "127.0.0.1", "HostPort": "8080"}]


@pytest.mark.parametrize(("size", "text"), [
    (0, "0B"), (999, "999B"), (1000, "1kB"), (1234, "1.23kB"), (4261574, "4.26MB"), (1_000_000_000, "1GB"),
    (999_999, "1e+03kB"), (12, "12B"),
])
def test_human_size(size: int, text: str) -> None:
    assert human_size(size) == text


def test_bytes_size() -> None:
    assert bytes_size(2 * 1024**3) == "2GiB"
    assert bytes_size(1536) == "1.5KiB"


@pytest.mark.parametrize(("secs", "text"), [
    (0.5, "Less than a second"), (1, "1 second"), (5, "5 seconds"), (59, "59 seconds"), (60, "About a minute"),
    (119, "About a minute"), (120, "2 minutes"), (3599, "59 minutes"), (3600, "About an hour"),
    (5400, "2 hours"), (47 * 3600, "47 hours"), (48 * 3600, "2 days"), (14 * 86400, "2 weeks"),
    (60 * 86400, "2 months"), (800 * 86400, "2 years"),
])
def test_human_duration(secs: float, text: str) -> None:
    assert human_duration(secs) == text


def test_tabwriter_matches_docker_layout() -> None:
    out = tabwrite([["CONTAINER ID", "IMAGE", "NAMES"], ["abc", "busybox:latest", "x"]])
    assert out == "CONTAINER ID   IMAGE            NAMES\nabc            busybox:latest   x\n"


def test_ellipsis() -> None:
    assert ellipsis("sleep 10", 20) == "sleep 10"
    assert ellipsis("a" * 25, 20) == "a" * 19 + "…"


def test_templates() -> None:
    obj = {"Id": "abc", "State": {"Status": "exited", "ExitCode": 3}, "Config": {"Env": ["A=1", "B=2"], "Cmd": None}}
    assert Template("{{.State.Status}}").render(obj) == "exited"
    assert Template("{{.Id}} {{.ID}}").render(obj) == "abc abc"
    assert Template("{{json .Config}}").render(obj) == '{"Env":["A=1","B=2"],"Cmd":null}'
    assert Template("{{.State.ExitCode}}").render(obj) == "3"
    assert Template("{{index .Config.Env 1}}").render(obj) == "B=2"
    assert Template("{{range .Config.Env}}[{{.}}]{{end}}").render(obj) == "[A=1][B=2]"
    assert Template("{{.Config.Env}}").render(obj) == "[A=1 B=2]"
    assert Template("{{if .State.ExitCode}}bad{{else}}ok{{end}}").render(obj) == "bad"


def test_ports_like_docker() -> None:
    ports = [{"IP": "0.0.0.0", "PrivatePort": 80, "PublicPort": 8080, "Type": "tcp"},
             {"PrivatePort": 443, "Type": "tcp"}, {"PrivatePort": 444, "Type": "tcp"}]
    assert format_ports(ports) == "443-444/tcp, 0.0.0.0:8080->80/tcp"


def test_frames_demultiplex_across_reads() -> None:
    data = struct.pack(">BxxxI", 1, 5) + b"out1\n" + struct.pack(">BxxxI", 2, 5) + b"err1\n"
    assert demux_all(data) == [(1, b"out1\n"), (2, b"err1\n")]
    d = Demuxer()
    got = []
    for i in range(len(data)):
        got += list(d.feed(data[i : i + 1]))
    assert got == [(1, b"out1\n"), (2, b"err1\n")]


def test_detach_keys() -> None:
    assert parse_detach_keys(None) == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"


def test_timestamps() -> None:
    assert timestamp_param("1700000000") == "1700000000"
    assert timestamp_param("10m", now=1000.0) == "400"
    assert timestamp_param("2026-11-26T21:52:58Z") == "1795729978.000000000"
    assert timestamp_param("2026-11-26T21:52:58.5Z") == "1795729978.500000000"


def test_no_env_leak() -> None:
    assert "BERTH_TEST_NOPE" not in os.environ
