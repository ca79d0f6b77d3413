"""Registry verbs: pull, push, login, logout, search, and ``registry serve|gc`` (Berth's own registry)."""

from __future__ import annotations

import sys

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.client.api import APIError, quote_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, TextIO


class _Null:
    """A text sink for -q: the stream is read (and its errors raised) but nothing printed."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def render_progress(resp: Any, out: TextIO | None) -> None:
    """Print a pull/push progress stream (nothing if ``out`` is None); in-band errors become
    CLIError with docker's bare message."""
    from berth.cli.progress import StreamError, display_stream

    try:
        display_stream(resp.iter_lines(), out or _Null(), terminal=False if out is None else None)
    except StreamError as e:
        raise CLIError(e.message, 1) from None


def pull_image(ctx: Context, ref_text: str, out: TextIO | None, all_tags: bool = False,
               platform: str | None = None) -> Any:
    """POST /images/create for ``ref_text`` with the stored credentials; returns the Reference."""
    from berth.cli.auth import parse_reference, registry_auth_header

    ref = parse_reference(ref_text)
    tag = ref.digest or ("" if all_tags else (ref.tag or "latest"))
    params = {"fromImage": ref.name, "tag": tag or None, "platform": platform or None}
    resp = ctx.client.request("POST", "/images/create", params,
                              headers={"X-Registry-Auth": registry_auth_header(ref)})
    render_progress(resp, out)
    return ref


PULL = Command("pull", "[OPTIONS] NAME[:TAG|@DIGEST]", "Download an image from a registry", 1, 1)
PULL.flag("all-tags", "a", "bool", help="Download all tagged images in the repository")
PULL.flag("disable-content-trust", None, "bool", True, help="Skip image verification (default true)")
PULL.flag("platform", None, help="Set platform if server is multi-platform capable")
PULL.flag("quiet", "q", "bool", help="Suppress verbose output")


def pull(ctx: Context, argv: list[str]) -> int:
    from berth.cli.auth import parse_reference

    opts, (text,) = PULL.parse(argv)
    ref = parse_reference(text)
    if opts.all_tags and (ref.tag or ref.digest):
        raise CLIError("tag can't be used with --all-tags/-a", 1)
    if not opts.all_tags and not ref.tag and not ref.digest and not opts.quiet:
        ctx.out("Using default tag: latest\n")
    pull_image(ctx, text, None if opts.quiet else sys.stdout, opts.all_tags, opts.platform)
    if opts.all_tags:
        ctx.out(ref.name + "\n")
    else:
        if not ref.tag and not ref.digest:
            ref.tag = "latest"
        ctx.out(ref.string() + "\n")
    return 0


PUSH = Command("push", "[OPTIONS] NAME[:TAG]", "Upload an image to a registry", 1, 1)
PUSH.flag("all-tags", "a", "bool", help="Push all tags of an image to the repository")
PUSH.flag("disable-content-trust", None, "bool", True, help="Skip image signing (default true)")
PUSH.flag("platform", None, help="Push a platform-specific manifest as a single-platform image to the registry.")
PUSH.flag("quiet", "q", "bool", help="Suppress verbose output")


def push(ctx: Context, argv: list[str]) -> int:
    from berth.cli.auth import parse_reference, registry_auth_header

    opts, (text,) = PUSH.parse(argv)
    ref = parse_reference(text)
    if opts.all_tags and (ref.tag or ref.digest):
        raise CLIError("tag can't be used with --all-tags/-a", 1)
    if ref.digest:
        raise CLIError("cannot push a digest reference", 1)
    if opts.platform:
        raise CLIError('"--platform" requires API version 1.46, but the Docker daemon API version is '
                       f"{ctx.client.negotiate()}", 1)
    if not opts.all_tags and not ref.tag:
        ref.tag = "latest"
        if not opts.quiet:
            ctx.out("Using default tag: latest\n")
    params = {"tag": None if opts.all_tags else ref.tag}
    resp = ctx.client.request("POST", f"/images/{quote_path(ref.name)}/push", params,
                              headers={"X-Registry-Auth": registry_auth_header(ref)})
    render_progress(resp, None if opts.quiet else sys.stdout)
    if opts.quiet:
        ctx.out(ref.string() + "\n")
    return 0


LOGIN = Command("login", "[OPTIONS] [SERVER]",
                "Authenticate to a registry.\nDefaults to Docker Hub if no server is specified.", 0, 1)
LOGIN.flag("password", "p", help="Password or Personal Access Token (PAT)")
LOGIN.flag("password-stdin", None, "bool", help="Take the Password or Personal Access Token (PAT) from stdin")
LOGIN.flag("username", "u", help="Username")

_UNENCRYPTED = ("\nWARNING! Your credentials are stored unencrypted in '{}'.\n"
                "Configure a credential helper to remove this warning. See\n"
                "https://docs.docker.com/go/credential-store/\n\n")


def _prompt(ctx: Context, user: str | None, password: str | None, stored: dict[str, str] | None
            ) -> tuple[str, str]:
    import os

    if not os.isatty(0):
        raise CLIError("Error: Cannot perform an interactive login from a non TTY device", 1)
    if not user:
        default = (stored or {}).get("username", "")
        prompt = f"Username ({default}): " if default else "Username: "
        sys.stderr.write(prompt)
        sys.stderr.flush()
        user = sys.stdin.readline().strip() or default
        if not user:
            raise CLIError("Error: Non-null Username Required", 1)
    if not password:
        import getpass

        password = getpass.getpass("Password: ", stream=sys.stderr)
        if not password:
            raise CLIError("Error: Password Required", 1)
    return user, password


def login(ctx: Context, argv: list[str]) -> int:
    from berth.cli.auth import credentials, server_key, store_credentials

    opts, args = LOGIN.parse(argv)
    user, password = opts.username, opts.password
    if password:
        ctx.err("WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n")
        if opts.password_stdin:
            raise CLIError("--password and --password-stdin are mutually exclusive", 1)
    if opts.password_stdin:
        if not user:
            raise CLIError("the --password-stdin option requires --username to be set", 1)
        password = sys.stdin.read().rstrip("\r\n")
    key = server_key(args[0] if args else None)
    if not user or not password:
        user, password = _prompt(ctx, user, password, credentials(key))
    body = {"username": user.strip(), "password": password, "serveraddress": key}
    reply = ctx.client.call("POST", "/auth", json_body=body) or {}
    path = store_credentials(key, user.strip(), password)
    ctx.err(_UNENCRYPTED.format(path))
    ctx.out((reply.get("Status") or "Login Succeeded") + "\n")
    return 0


LOGOUT = Command("logout", "[SERVER]",
                 "Log out from a registry.\nIf no server is specified, the default is defined by the daemon.", 0, 1)


def logout(ctx: Context, argv: list[str]) -> int:
    from berth.cli.auth import erase_credentials, hostname, server_key

    _, args = LOGOUT.parse(argv)
    key = server_key(args[0] if args else None)
    ctx.out(f"Removing login credentials for {key}\n")
    for server in dict.fromkeys([key, args[0] if args else key, hostname(args[0]) if args else key]):
        try:
            erase_credentials(server)
        except OSError as e:
            ctx.err(f"WARNING: could not erase credentials: {server}: {e}\n")
    return 0


class SearchRow:
    """One result of ``search`` with docker's formatter fields (``searchContext``)."""

    def __init__(self, r: dict[str, Any], trunc: bool) -> None:
        self.r = r
        self.trunc = trunc

    @property
    def Name(self) -> str:  # noqa: N802 - template field names are docker's
        return str(self.r.get("name") or "")

    @property
    def Description(self) -> str:  # noqa: N802
        from berth.cli.formatting import ellipsis

        desc = str(self.r.get("description") or "").replace("\n", " ").replace("\r", " ")
        return ellipsis(desc, 45) if self.trunc else desc

    @property
    def StarCount(self) -> str:  # noqa: N802
        return str(self.r.get("star_count") or 0)

    @property
    def IsOfficial(self) -> str:  # noqa: N802
        return "[OK]" if self.r.get("is_official") is True else ""

    def as_dict(self) -> dict[str, str]:
        return {"Description": self.Description, "IsOfficial": "true" if self.IsOfficial else "false",
                "Name": self.Name, "StarCount": self.StarCount}


SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"}
SEARCH_TABLE = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"

SEARCH = Command("search", "[OPTIONS] TERM", "Search Docker Hub for images", 1, 1)
SEARCH.flag("filter", "f", "list", help="Filter output based on conditions provided", metavar="filter")
SEARCH.flag("format", None, help="Pretty-print search using a Go template", metavar="string")
SEARCH.flag("limit", None, "int", 0, help="Max number of search results")
SEARCH.flag("no-trunc", None, "bool", help="Don't truncate output")


def search_index(term: str) -> str:
    """The registry a search term names (moby's ``splitReposSearchTerm``): ``docker.io`` unless
    the first component looks like a host (``.``, ``:`` or ``localhost``)."""
    first, sep, _ = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return "docker.io"
    return "docker.io" if first == "index.docker.io" else first


def search(ctx: Context, argv: list[str]) -> int:
    """``GET /images/search?term=&limit=&filters=`` with the index's stored credentials."""
    import json

    from berth.cli.auth import Reference, registry_auth_header

    opts, (term,) = SEARCH.parse(argv)
    filters: dict[str, dict[str, bool]] = {}
    for item in opts.filter or []:  # docker's filters.ParseFlag
        if not item:
            continue
        name, eq, value = item.partition("=")
        if not eq:
            raise SEARCH.fail(f'invalid argument "{item}" for "-f, --filter" flag: '
                              "bad format of filter (expected name=value)")
        filters.setdefault(name.strip().lower(), {})[value.strip()] = True
    if "is-automated" in filters:
        ctx.err('WARNING: the "is-automated" filter is deprecated, and searching for "is-automated=true" '
                "will not yield any results in future.\n")
    params: dict[str, Any] = {"term": term}
    if opts.limit > 0:
        params["limit"] = str(opts.limit)
    if filters:
        params["filters"] = json.dumps(filters, separators=(",", ":"), sort_keys=True)
    auth = registry_auth_header(Reference(search_index(term), "", "", ""))
    results = ctx.client.call("GET", "/images/search", params, headers={"X-Registry-Auth": auth}) or []
    rows = [SearchRow(r, not opts.no_trunc) for r in results if isinstance(r, dict)]
    fmt = opts.format or "table"
    if fmt == "table":
        fmt = SEARCH_TABLE
    from berth.cli.images import print_rows

    return print_rows(ctx, fmt, rows, SEARCH_HEADERS)


def registry(ctx: Context, argv: list[str]) -> int:
    """``berth registry serve|gc ...``: Berth's registry server, run in this process."""
    try:
        from berth.registry.server import main as serve_main
    except ImportError as e:  # aiohttp missing from a client-only install
        raise CLIError(f"berth registry: {e}", 1) from None
    try:
        return serve_main(argv) or 0
    except SystemExit as e:
        if isinstance(e.code, str):
            ctx.err(e.code + "\n")
            return 1
        return int(e.code or 0)


__all__ = ["APIError", "pull", "push", "login", "logout", "registry", "search"]
