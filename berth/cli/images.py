"""Image verbs: images (image ls), image inspect, history, import, rmi, tag."""

from __future__ import annotations

import sys

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.cli.formatting import ellipsis, human_size, render_rows, short_id, since, unix_to_local
from berth.cli.listing import print_list
from berth.client.api import APIError, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class ImageRow:
    """One line of ``images``: an image under one repository:tag (fields as docker's formatter)."""

    def __init__(self, image: dict[str, Any], repo: str, tag: str, digest: str, trunc: bool) -> None:
        self.i = image
        self.Repository = repo
        self.Tag = tag
        self.Digest = digest
        self.trunc = trunc

    @property
    def ID(self) -> str:  # noqa: N802 - template field names are docker's
        return short_id(self.i.get("Id", "")) if self.trunc else self.i.get("Id", "")

    @property
    def CreatedSince(self) -> str:  # noqa: N802
        return since(self.i.get("Created", 0))

    @property
    def CreatedAt(self) -> str:  # noqa: N802
        return unix_to_local(self.i.get("Created", 0))

    @property
    def Size(self) -> str:  # noqa: N802
        return human_size(self.i.get("Size", 0) or 0)

    @property
    def Containers(self) -> str:  # noqa: N802
        n = self.i.get("Containers", -1)
        return "N/A" if n == -1 else str(n)

    @property
    def SharedSize(self) -> str:  # noqa: N802
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared == -1 else human_size(shared, 4)

    @property
    def UniqueSize(self) -> str:  # noqa: N802
        shared = self.i.get("SharedSize", -1)
        return "N/A" if shared == -1 else human_size((self.i.get("Size") or 0) - shared, 4)

    @property
    def VirtualSize(self) -> str:  # noqa: N802
        return human_size(self.i.get("VirtualSize", self.i.get("Size")) or 0, 4)

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("Containers", "CreatedAt", "CreatedSince", "Digest", "ID",
                                               "Repository", "SharedSize", "Size", "Tag", "UniqueSize",
                                               "VirtualSize")}


def _split_tag(ref: str) -> tuple[str, str]:
    slash, colon = ref.rfind("/"), ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


def image_rows(images: list[dict[str, Any]], trunc: bool) -> list[ImageRow]:
    """Expand summaries into rows the way docker's imageFormat does (``<none>`` for dangling)."""
    rows = []
    for img in images:
        tags = [t for t in img.get("RepoTags") or [] if t != "<none>:<none>"]
        digests = [d for d in img.get("RepoDigests") or [] if d != "<none>@<none>"]
        if not tags and not digests:
            rows.append(ImageRow(img, "<none>", "<none>", "<none>", trunc))
            continue
        by_repo_digest: dict[str, list[str]] = {}
        for d in digests:
            repo, _, dg = d.partition("@")
            by_repo_digest.setdefault(repo, []).append(dg)
        by_repo_tag: dict[str, list[str]] = {}
        for t in tags:
            repo, tag = _split_tag(t)
            by_repo_tag.setdefault(repo, []).append(tag)
        for repo, repo_tags in by_repo_tag.items():
            ds = by_repo_digest.get(repo, [])
            digest = ds[0] if len(ds) == 1 else "<none>"
            for tag in repo_tags:
                rows.append(ImageRow(img, repo, tag, digest, trunc))
        for repo, ds in by_repo_digest.items():
            if repo not in by_repo_tag:
                for dg in ds:
                    rows.append(ImageRow(img, repo, "<none>", dg, trunc))
    return rows


IMAGE_HEADERS = {"ID": "IMAGE ID", "Repository": "REPOSITORY", "Tag": "TAG", "Digest": "DIGEST",
                 "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "Size": "SIZE",
                 "Containers": "CONTAINERS"}

IMAGES = Command("images", "[OPTIONS] [REPOSITORY[:TAG]]", "List images", 0, 1)
IMAGES.flag("all", "a", "bool", help="Show all images (default hides intermediate images)")
IMAGES.flag("digests", None, "bool", help="Show digests")
IMAGES.flag("filter", "f", "list", help="Filter output based on conditions provided", metavar="filter")
IMAGES.flag("format", None, help="Format output using a custom template")
IMAGES.flag("no-trunc", None, "bool", help="Don't truncate output")
IMAGES.flag("quiet", "q", "bool", help="Only show image IDs")


def images(ctx: Context, argv: list[str]) -> int:
    from berth.cli.containers import build_filters

    opts, args = IMAGES.parse(argv)
    filters = list(opts.filter or [])
    if args:
        filters.append(f"reference={args[0]}")
    params: list[tuple[str, Any]] = []
    if opts.all:
        params.append(("all", "1"))
    f = build_filters(filters)
    if f:
        params.append(("filters", f))
    data = ctx.client.call("GET", "/images/json", params) or []
    rows = image_rows(data, not opts.no_trunc)
    cols = ["Repository", "Tag"] + (["Digest"] if opts.digests else []) + ["ID", "CreatedSince", "Size"]
    return print_list(ctx, rows, opts.format, opts.quiet, IMAGE_HEADERS, cols)


IMAGE_INSPECT = Command("image inspect", "[OPTIONS] IMAGE [IMAGE...]", "Display detailed information on one or more images", 1)
IMAGE_INSPECT.flag("format", "f", help="Format output using a custom template")


def image_inspect(ctx: Context, argv: list[str]) -> int:
    from berth.cli.system import print_inspect

    opts, refs = IMAGE_INSPECT.parse(argv)
    found, errors = [], []
    for ref in refs:
        try:
            found.append(ctx.client.inspect_image(ref))
        except APIError as e:
            if e.status != 404:
                raise
            errors.append(f"Error response from daemon: {e.message}")
    return print_inspect(ctx, found, errors, opts.format)


IMPORT = Command("import", "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
                 "Import the contents from a tarball to create a filesystem image", 1, 2)
IMPORT.flag("change", "c", "list", help="Apply Dockerfile instruction to the created image")
IMPORT.flag("message", "m", help="Set commit message for imported image")
IMPORT.flag("platform", None, help="Set platform if server is multi-platform capable")


def _print_progress(ctx: Context, resp) -> None:  # noqa: ANN001
    from berth.cli.progress import StreamError, display_stream

    try:
        display_stream(resp.iter_lines(), sys.stdout)
    except StreamError as e:
        raise CLIError(e.message, 1) from None


def import_(ctx: Context, argv: list[str]) -> int:
    opts, args = IMPORT.parse(argv)
    source = args[0]
    repo = args[1] if len(args) > 1 else None
    params: list[tuple[str, Any]] = []
    body: Any = None
    if source.startswith(("http://", "https://")):
        params.append(("fromSrc", source))
    else:
        params.append(("fromSrc", "-"))
        if source == "-":
            body = sys.stdin.buffer
        else:
            try:
                body = open(source, "rb")  # noqa: SIM115 - closed below
            except OSError as e:
                raise CLIError(f"open {source}: {(e.strerror or str(e)).lower()}", 1) from None
    if repo:
        params.append(("repo", repo))
    if opts.message:
        params.append(("message", opts.message))
    for change in opts.change or []:
        params.append(("changes", change))
    if opts.platform:
        params.append(("platform", opts.platform))
    try:
        resp = ctx.client.request("POST", "/images/create", params, body=body if body is not None else b"",
                                  headers={"Content-Type": "text/plain"})
        _print_progress(ctx, resp)
    finally:
        if body is not None and body is not sys.stdin.buffer:
            body.close()
    return 0


RMI = Command("rmi", "[OPTIONS] IMAGE [IMAGE...]", "Remove one or more images", 1)
RMI.flag("force", "f", "bool", help="Force removal of the image")
RMI.flag("no-prune", None, "bool", help="Do not delete untagged parents")


def rmi(ctx: Context, argv: list[str]) -> int:
    opts, refs = RMI.parse(argv)
    params = {"force": True if opts.force else None, "noprune": True if opts.no_prune else None}
    errors = []
    for ref in refs:
        try:
            for item in ctx.client.call("DELETE", f"/images/{quote_path(ref)}", params) or []:
                if item.get("Untagged"):
                    ctx.out(f"Untagged: {item['Untagged']}\n")
                if item.get("Deleted"):
                    ctx.out(f"Deleted: {item['Deleted']}\n")
        except APIError as e:
            errors.append(f"Error response from daemon: {e.message}")
    if errors:
        ctx.err("\n".join(errors) + "\n")
        return 1
    return 0


TAG = Command("tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE", 2, 2)


def tag(ctx: Context, argv: list[str]) -> int:
    from berth.cli.auth import parse_reference

    _, (source, target) = TAG.parse(argv)
    ref = parse_reference(target)
    if ref.digest:
        raise CLIError("refusing to create a tag with a digest reference", 1)
    ctx.client.request("POST", f"/images/{quote_path(source)}/tag",
                       {"repo": ref.name, "tag": ref.tag or "latest"}).read()
    return 0


class HistoryRow:
    """One layer of ``history``, with docker's formatter fields."""

    def __init__(self, h: dict[str, Any], trunc: bool, human: bool) -> None:
        self.h = h
        self.trunc = trunc
        self.human = human

    @property
    def ID(self) -> str:  # noqa: N802 - template field names are docker's
        ident = self.h.get("Id") or ""
        return short_id(ident) if self.trunc and ident != "<missing>" else ident

    @property
    def CreatedAt(self) -> str:  # noqa: N802
        import time

        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.h.get("Created") or 0))

    @property
    def CreatedSince(self) -> str:  # noqa: N802
        return since(self.h.get("Created") or 0) if self.human else self.CreatedAt

    @property
    def CreatedBy(self) -> str:  # noqa: N802
        text = (self.h.get("CreatedBy") or "").replace("\t", " ")
        return ellipsis(text, 45) if self.trunc else text

    @property
    def Size(self) -> str:  # noqa: N802
        size = self.h.get("Size") or 0
        return human_size(size) if self.human else str(size)

    @property
    def Comment(self) -> str:  # noqa: N802
        return self.h.get("Comment") or ""

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size")}


HISTORY_HEADERS = {"ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT", "CreatedBy": "CREATED BY",
                   "Size": "SIZE", "Comment": "COMMENT"}

HISTORY = Command("history", "[OPTIONS] IMAGE", "Show the history of an image", 1, 1)
HISTORY.flag("format", None, help="Format output using a custom template")
HISTORY.flag("human", "H", "bool", True, help="Print sizes and dates in human readable format (default true)")
HISTORY.flag("no-trunc", None, "bool", help="Don't truncate output")
HISTORY.flag("platform", None, help="Show history for the given platform")
HISTORY.flag("quiet", "q", "bool", help="Only show image IDs")


def history(ctx: Context, argv: list[str]) -> int:
    opts, (ref,) = HISTORY.parse(argv)
    if opts.platform:
        raise CLIError('"--platform" requires API version 1.48, but the Docker daemon API version is '
                       f"{ctx.client.negotiate()}", 1)
    data = ctx.client.call("GET", f"/images/{quote_path(ref)}/history") or []
    rows = [HistoryRow(h, not opts.no_trunc, opts.human) for h in data]
    fmt = opts.format or "table"
    if fmt == "table":
        if opts.quiet:
            ctx.out("".join(r.ID + "\n" for r in rows))
            return 0
        when = "CreatedSince" if opts.human else "CreatedAt"
        fmt = f"table {{{{.ID}}}}\t{{{{.{when}}}}}\t{{{{.CreatedBy}}}}\t{{{{.Size}}}}\t{{{{.Comment}}}}"
    return print_rows(ctx, fmt, rows, HISTORY_HEADERS)


def print_rows(ctx: Context, fmt: str, rows: list[Any], headers: dict[str, str]) -> int:
    """Render rows with a ``--format`` value: ``json``, ``table [TEMPLATE]`` or a template."""
    from berth.cli.formatting import TemplateError, json_line

    if fmt == "json":
        ctx.out("".join(json_line(r.as_dict()) + "\n" for r in rows))
        return 0
    try:
        ctx.out(render_rows(fmt, rows, headers))
    except TemplateError as e:
        raise CLIError(str(e), 1) from None
    return 0
