"""Tar verbs: save, load, export, plus commit and diff (a container's filesystem changes)."""

from __future__ import annotations

import os
import sys

from berth.cli.context import CLIError, Context, write_fd
from berth.cli.flags import Command
from berth.client.api import quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_TERMINAL = "cowardly refusing to save to a terminal. Use the -o flag or redirect"


def _copy_to_output(resp: Any, output: str | None, what: str) -> None:
    """Stream a tar reply to ``output`` (a temp file renamed into place, like docker's
    CopyToFile) or to stdout."""
    if not output:
        while True:
            data = resp.read_chunk()
            if not data:
                return
            write_fd(1, data)
    directory = os.path.dirname(os.path.abspath(output))
    import tempfile

    fd, tmp = tempfile.mkstemp(prefix=".docker_temp_", dir=directory)
    try:
        while True:
            data = resp.read_chunk()
            if not data:
                break
            write_fd(fd, data)
        os.close(fd)
        fd = -1
        os.replace(tmp, output)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(tmp)
        raise


def _check_output(output: str | None, what: str) -> None:
    """Before any request, like docker: no tar to a terminal, and -o's directory must exist."""
    if not output:
        if os.isatty(1):
            raise CLIError(_TERMINAL, 1)
        return
    directory = os.path.dirname(os.path.normpath(output))
    if directory and directory != ".":
        try:
            os.stat(directory)
        except OSError as e:
            reason = (e.strerror or str(e)).lower()
            raise CLIError(f"failed to {what}: invalid output path: stat {directory}: {reason}", 1) from None


def _api_version_error(ctx: Context, flag: str, needed: str) -> CLIError:
    return CLIError(f'"{flag}" requires API version {needed}, but the Docker daemon API version is '
                    f"{ctx.client.negotiate()}", 1)


SAVE = Command("save", "[OPTIONS] IMAGE [IMAGE...]",
               "Save one or more images to a tar archive (streamed to STDOUT by default)", 1)
SAVE.flag("output", "o", help="Write to a file, instead of STDOUT")
SAVE.flag("platform", None, help="Save only the given platform variant")


def save(ctx: Context, argv: list[str]) -> int:
    opts, names = SAVE.parse(argv)
    _check_output(opts.output, "save image")
    if opts.platform:
        raise _api_version_error(ctx, "--platform", "1.48")
    resp = ctx.client.request("GET", "/images/get", [("names", n) for n in names])
    _copy_to_output(resp, opts.output, "save image")
    return 0


LOAD = Command("load", "[OPTIONS]", "Load an image from a tar archive or STDIN", 0, 0)
LOAD.flag("input", "i", help="Read from tar archive file, instead of STDIN")
LOAD.flag("platform", None, help="Load only the given platform variant")
LOAD.flag("quiet", "q", "bool", help="Suppress the load output")


def load(ctx: Context, argv: list[str]) -> int:
    from berth.cli.progress import StreamError, display_stream

    opts, _ = LOAD.parse(argv)
    if opts.input:
        try:
            body: Any = open(opts.input, "rb")  # noqa: SIM115 - closed below
        except OSError as e:
            raise CLIError(f"open {opts.input}: {(e.strerror or str(e)).lower()}", 1) from None
    else:
        if os.isatty(0):
            raise CLIError("requested load from stdin, but stdin is empty", 1)
        body = sys.stdin.buffer
    if opts.platform:
        raise _api_version_error(ctx, "--platform", "1.48")
    quiet = opts.quiet or not os.isatty(1)
    try:
        resp = ctx.client.request("POST", "/images/load", {"quiet": "1" if quiet else "0"}, body=body,
                                  headers={"Content-Type": "application/x-tar"})
    finally:
        if body is not sys.stdin.buffer:
            body.close()
    if "json" in resp.header("content-type"):
        try:
            display_stream(resp.iter_lines(), sys.stdout)
        except StreamError as e:
            raise CLIError(e.message, 1) from None
    else:
        sys.stdout.flush()
        _copy_to_output(resp, None, "load")
    return 0


EXPORT = Command("export", "[OPTIONS] CONTAINER", "Export a container's filesystem as a tar archive", 1, 1)
EXPORT.flag("output", "o", help="Write to a file, instead of STDOUT")


def export(ctx: Context, argv: list[str]) -> int:
    opts, (ref,) = EXPORT.parse(argv)
    _check_output(opts.output, "export container")
    resp = ctx.client.request("GET", f"/containers/{quote_path(ref)}/export")
    _copy_to_output(resp, opts.output, "export container")
    return 0


COMMIT = Command("commit", "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]", "Create a new image from a container's changes",
                 1, 2)
COMMIT.flag("author", "a", help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
COMMIT.flag("change", "c", "list", help="Apply Dockerfile instruction to the created image")
COMMIT.flag("message", "m", help="Commit message")
COMMIT.flag("pause", "p", "bool", True, help="Pause container during commit (default true)")


def commit(ctx: Context, argv: list[str]) -> int:
    from berth.cli.auth import parse_reference

    opts, args = COMMIT.parse(argv)
    params: list[tuple[str, Any]] = []
    if opts.author:
        params.append(("author", opts.author))
    for change in opts.change or []:
        params.append(("changes", change))
    if opts.message:
        params.append(("comment", opts.message))
    params.append(("container", args[0]))
    if not opts.pause:
        params.append(("pause", "0"))
    if len(args) > 1 and args[1]:
        ref = parse_reference(args[1])
        if ref.digest:
            raise CLIError("refusing to create a tag with a digest reference", 1)
        params += [("repo", ref.name), ("tag", ref.tag or "latest")]
    reply = ctx.client.call("POST", "/commit", params) or {}
    ctx.out(reply.get("Id", "") + "\n")
    return 0


DIFF = Command("diff", "CONTAINER", "Inspect changes to files or directories on a container's filesystem", 1, 1)
_KINDS = {0: "C", 1: "A", 2: "D"}


def diff(ctx: Context, argv: list[str]) -> int:
    _, (ref,) = DIFF.parse(argv)
    changes = ctx.client.call("GET", f"/containers/{quote_path(ref)}/changes") or []
    ctx.out("".join(f"{_KINDS.get(c.get('Kind'), '?')} {c.get('Path', '')}\n" for c in changes))
    return 0
