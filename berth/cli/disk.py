"""Disk usage and pruning: system df, system prune, image prune, container prune."""

from __future__ import annotations

import json
import sys

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command
from berth.cli.formatting import human_size, short_id, since
from berth.client.api import APIError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def confirm(ctx: Context, message: str) -> bool:
    """docker's PromptForConfirmation: ``<message> [y/N] ``, true only for ``y``/``Y``."""
    ctx.out(message + " [y/N] ")
    sys.stdout.flush()
    try:
        answer = sys.stdin.readline()
    except (OSError, ValueError):
        answer = ""
    return answer.strip().lower() == "y"


def prune_filters(items: list[str] | None, extra: dict[str, str] | None = None) -> str | None:
    """``--filter k=v`` values (plus ``extra``) as docker's JSON, keys sorted like Go maps."""
    out: dict[str, dict[str, bool]] = {}
    for k, v in (extra or {}).items():
        out.setdefault(k, {})[v] = True
    for item in items or []:
        k, eq, v = item.partition("=")
        if not eq:
            raise CLIError("bad format of filter (expected name=value)", 125)
        out.setdefault(k.strip().lower(), {})[v] = True
    if not out:
        return None
    return json.dumps({k: dict(sorted(v.items())) for k, v in sorted(out.items())}, separators=(",", ":"))


def _section(title: str, names: list[str] | None) -> str:
    if not names:
        return ""
    return title + "\n" + "".join(n + "\n" for n in names)


def _prune_containers(ctx: Context, filters: list[str] | None) -> tuple[int, str]:
    reply = ctx.client.call("POST", "/containers/prune", {"filters": prune_filters(filters)}) or {}
    return int(reply.get("SpaceReclaimed") or 0), _section("Deleted Containers:", reply.get("ContainersDeleted"))


def _prune_images(ctx: Context, filters: list[str] | None, everything: bool) -> tuple[int, str]:
    params = {"filters": prune_filters(filters, {"dangling": "false" if everything else "true"})}
    reply = ctx.client.call("POST", "/images/prune", params) or {}
    lines = []
    for item in reply.get("ImagesDeleted") or []:
        if item.get("Untagged"):
            lines.append(f"untagged: {item['Untagged']}")
        else:
            lines.append(f"deleted: {item.get('Deleted', '')}")
    if not lines:
        return 0, ""
    return int(reply.get("SpaceReclaimed") or 0), _section("Deleted Images:", lines)


def _prune_networks(ctx: Context, filters: list[str] | None) -> tuple[int, str]:
    reply = ctx.client.call("POST", "/networks/prune", {"filters": prune_filters(filters)}) or {}
    return 0, _section("Deleted Networks:", reply.get("NetworksDeleted"))


def _prune_volumes(ctx: Context, filters: list[str] | None) -> tuple[int, str]:
    reply = ctx.client.call("POST", "/volumes/prune", {"filters": prune_filters(filters)}) or {}
    return int(reply.get("SpaceReclaimed") or 0), _section("Deleted Volumes:", reply.get("VolumesDeleted"))


def _prune_build_cache(ctx: Context, filters: list[str] | None, everything: bool) -> tuple[int, str]:
    params = {"all": "1" if everything else None, "filters": prune_filters(filters)}
    try:
        reply = ctx.client.call("POST", "/build/prune", params) or {}
    except APIError as e:
        if e.status == 404:  # a daemon without a build cache has nothing to prune
            return 0, ""
        raise
    return int(reply.get("SpaceReclaimed") or 0), _section("Deleted build cache objects:", reply.get("CachesDeleted"))


def _finish(ctx: Context, results: list[tuple[int, str]]) -> int:
    total = 0
    for space, output in results:
        total += space
        if output:
            ctx.out(output + "\n")
    ctx.out(f"Total reclaimed space: {human_size(total, 4)}\n")
    return 0


IMAGE_PRUNE = Command("image prune", "[OPTIONS]", "Remove unused images", 0, 0)
IMAGE_PRUNE.flag("all", "a", "bool", help="Remove all unused images, not just dangling ones")
IMAGE_PRUNE.flag("filter", None, "list", help='Provide filter values (e.g. "until=<timestamp>")', metavar="filter")
IMAGE_PRUNE.flag("force", "f", "bool", help="Do not prompt for confirmation")


def image_prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = IMAGE_PRUNE.parse(argv)
    if opts.all:
        warning = ("WARNING! This will remove all images without at least one container associated to them.\n"
                   "Are you sure you want to continue?")
    else:
        warning = "WARNING! This will remove all dangling images.\nAre you sure you want to continue?"
    if not opts.force and not confirm(ctx, warning):
        return 0
    return _finish(ctx, [_prune_images(ctx, opts.filter, opts.all)])


CONTAINER_PRUNE = Command("container prune", "[OPTIONS]", "Remove all stopped containers", 0, 0)
CONTAINER_PRUNE.flag("filter", None, "list", help='Provide filter values (e.g. "until=<timestamp>")', metavar="filter")
CONTAINER_PRUNE.flag("force", "f", "bool", help="Do not prompt for confirmation")


def container_prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = CONTAINER_PRUNE.parse(argv)
    warning = "WARNING! This will remove all stopped containers.\nAre you sure you want to continue?"
    if not opts.force and not confirm(ctx, warning):
        return 0
    return _finish(ctx, [_prune_containers(ctx, opts.filter)])


SYSTEM_PRUNE = Command("system prune", "[OPTIONS]", "Remove unused data", 0, 0)
SYSTEM_PRUNE.flag("all", "a", "bool", help="Remove all unused images not just dangling ones")
SYSTEM_PRUNE.flag("filter", None, "list", help='Provide filter values (e.g. "label=<key>=<value>")', metavar="filter")
SYSTEM_PRUNE.flag("force", "f", "bool", help="Do not prompt for confirmation")
SYSTEM_PRUNE.flag("volumes", None, "bool", help="Prune anonymous volumes")


def system_prune(ctx: Context, argv: list[str]) -> int:
    opts, _ = SYSTEM_PRUNE.parse(argv)
    if not opts.force:
        items = ["all stopped containers", "all networks not used by at least one container"]
        if opts.volumes:
            items.append("all anonymous volumes not used by at least one container")
        if opts.all:
            items += ["all images without at least one container associated to them", "all build cache"]
        else:
            items += ["all dangling images", "unused build cache"]
        warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
        if opts.filter:
            warning += "\n  Items to be pruned will be filtered with:\n" + "".join(f"  - {f}\n" for f in opts.filter)
        if not confirm(ctx, warning + "\nAre you sure you want to continue?"):
            return 0
    results = [_prune_containers(ctx, opts.filter), _prune_networks(ctx, opts.filter)]
    if opts.volumes:
        results.append(_prune_volumes(ctx, opts.filter))
    results.append(_prune_images(ctx, opts.filter, opts.all))
    results.append(_prune_build_cache(ctx, opts.filter, opts.all))
    return _finish(ctx, results)


# ---- system df --------------------------------------------------------------------------


def _reclaimable(reclaimable: int, total: int) -> str:
    if total > 0:
        return f"{human_size(reclaimable, 4)} ({reclaimable * 100 // total}%)"
    return human_size(reclaimable, 4)


class DfRow:
    def __init__(self, kind: str, total: int, active: int, size: int, reclaimable: str) -> None:
        self.Type = kind
        self.TotalCount = str(total)
        self.Active = str(active)
        self.Size = human_size(size, 4)
        self.Reclaimable = reclaimable

    def as_dict(self) -> dict[str, str]:
        return {k: getattr(self, k) for k in ("Active", "Reclaimable", "Size", "TotalCount", "Type")}


DF_HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}


def df_rows(data: dict[str, Any]) -> list[DfRow]:
    """The four summary rows of ``system df`` computed like docker's disk-usage formatter."""
    images = data.get("Images") or []
    layers = int(data.get("LayersSize") or 0)
    used = sum((i.get("Size") or 0) - (i.get("SharedSize") or 0) for i in images
               if (i.get("Containers") or 0) > 0 and i.get("SharedSize", 0) != -1 and i.get("Size", 0) != -1)
    rows = [DfRow("Images", len(images), sum(1 for i in images if (i.get("Containers") or 0) > 0), layers,
                  _reclaimable(layers - used, layers))]
    containers = data.get("Containers") or []
    active = [c for c in containers if c.get("State") in ("running", "paused", "restarting")]
    csize = sum(c.get("SizeRw") or 0 for c in containers)
    creclaim = csize - sum(c.get("SizeRw") or 0 for c in active)
    rows.append(DfRow("Containers", len(containers), len(active), csize, _reclaimable(creclaim, csize)))
    volumes = data.get("Volumes") or []
    usage = [(v.get("UsageData") or {}) for v in volumes]
    vsize = sum(u.get("Size") or 0 for u in usage if (u.get("Size") or 0) != -1)
    vreclaim = sum(u.get("Size") or 0 for u in usage if (u.get("Size") or 0) != -1 and not u.get("RefCount"))
    rows.append(DfRow("Local Volumes", len(volumes), sum(1 for u in usage if (u.get("RefCount") or 0) > 0), vsize,
                      _reclaimable(vreclaim, vsize)))
    cache = data.get("BuildCache") or []
    bsize = sum(b.get("Size") or 0 for b in cache if not b.get("Shared"))
    breclaim = sum(b.get("Size") or 0 for b in cache if not b.get("Shared") and not b.get("InUse"))
    rows.append(DfRow("Build Cache", len(cache), sum(1 for b in cache if b.get("InUse")), bsize,
                      _reclaimable(breclaim, bsize)))
    return rows


DF = Command("system df", "[OPTIONS]", "Show docker disk usage", 0, 0)
DF.flag("format", None, help="Format output using a custom template")
DF.flag("verbose", "v", "bool", help="Show detailed information on space usage")


def system_df(ctx: Context, argv: list[str]) -> int:
    from berth.cli.images import print_rows

    opts, _ = DF.parse(argv)
    data = ctx.client.call("GET", "/system/df") or {}
    if opts.verbose:
        return _df_verbose(ctx, data, opts.format)
    fmt = opts.format or "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"
    return print_rows(ctx, fmt, df_rows(data), DF_HEADERS)


def _df_verbose(ctx: Context, data: dict[str, Any], fmt: str | None) -> int:
    """``system df -v``: per-object tables, or with ``--format json`` one JSON document of all
    fields untruncated (no trailing newline, as docker prints it)."""
    from berth.cli.containers import ContainerRow
    from berth.cli.formatting import _json, tabwrite, unix_to_local
    from berth.cli.images import image_rows

    if fmt and fmt != "json":
        raise CLIError("--verbose with --format other than json is not supported", 1)
    trunc = not fmt
    images = []
    for r in image_rows(data.get("Images") or [], trunc):
        shared = r.i.get("SharedSize", -1)
        size = r.i.get("Size") or 0
        row = {"Containers": str(r.i.get("Containers", 0)), "CreatedAt": unix_to_local(r.i.get("Created", 0)),
               "CreatedSince": r.CreatedSince, "Digest": "" if r.Digest == "<none>" else r.Digest, "ID": r.ID,
               "Repository": r.Repository, "SharedSize": "N/A" if shared == -1 else human_size(shared, 4),
               "Size": r.Size, "Tag": r.Tag, "UniqueSize": "N/A" if shared == -1 else human_size(size - shared, 4),
               "VirtualSize": human_size(r.i.get("VirtualSize", size) or 0, 4)}
        images.append(row)
    containers = []
    for c in data.get("Containers") or []:
        cr = ContainerRow(c, trunc)
        local = sum(1 for m in c.get("Mounts") or [] if m.get("Driver") == "local")
        row = {**cr.as_dict(), "LocalVolumes": str(local), "Platform": None,
               "Size": human_size(c.get("SizeRw") or 0, 4)}
        containers.append(dict(sorted(row.items())))
    volumes = []
    for v in data.get("Volumes") or []:
        u = v.get("UsageData") or {}
        size = u.get("Size", -1)
        labels = ",".join(f"{k}={val}" for k, val in (v.get("Labels") or {}).items())
        volumes.append({"Availability": "N/A", "Driver": v.get("Driver", ""), "Group": "N/A", "Labels": labels,
                        "Links": str(u.get("RefCount", 0)), "Mountpoint": v.get("Mountpoint", ""),
                        "Name": v.get("Name", ""), "Scope": v.get("Scope", ""),
                        "Size": "N/A" if size == -1 else human_size(size, 4), "Status": "N/A"})
    cache = []
    for b in data.get("BuildCache") or []:
        cache.append({"CacheType": b.get("Type", ""), "CreatedSince": since(_unix(b.get("CreatedAt"))),
                      "ID": short_id(b.get("ID", "")) if trunc else b.get("ID", ""),
                      "LastUsedSince": since(_unix(b.get("LastUsedAt"))) if b.get("LastUsedAt") else "",
                      "Shared": str(bool(b.get("Shared"))).lower(), "Size": human_size(b.get("Size") or 0, 4),
                      "UsageCount": str(b.get("UsageCount", 0))})
    if fmt == "json":
        ctx.out(_json({"Images": images, "Containers": containers, "Volumes": volumes, "BuildCache": cache}))
        return 0

    def table(cols: list[tuple[str, str]], rows: list[dict[str, str]]) -> str:
        return tabwrite([[h for _, h in cols]] + [[r[k] for k, _ in cols] for r in rows])

    out = "Images space usage:\n\n"
    out += table([("Repository", "REPOSITORY"), ("Tag", "TAG"), ("ID", "IMAGE ID"), ("CreatedSince", "CREATED"),
                  ("Size", "SIZE"), ("SharedSize", "SHARED SIZE"), ("UniqueSize", "UNIQUE SIZE"),
                  ("Containers", "CONTAINERS")], images)
    out += "\nContainers space usage:\n\n"
    out += table([("ID", "CONTAINER ID"), ("Image", "IMAGE"), ("Command", "COMMAND"),
                  ("LocalVolumes", "LOCAL VOLUMES"), ("Size", "SIZE"), ("RunningFor", "CREATED"),
                  ("Status", "STATUS"), ("Names", "NAMES")], containers)
    out += "\nLocal Volumes space usage:\n\n"
    out += table([("Name", "VOLUME NAME"), ("Links", "LINKS"), ("Size", "SIZE")], volumes)
    out += f"\nBuild cache usage: {human_size(int(data.get('BuilderSize') or 0), 4)}\n\n"
    out += table([("ID", "CACHE ID"), ("CacheType", "CACHE TYPE"), ("Size", "SIZE"), ("CreatedSince", "CREATED"),
                  ("LastUsedSince", "LAST USED"), ("UsageCount", "USAGE"), ("Shared", "SHARED")], cache)
    ctx.out(out)
    return 0


def _unix(stamp: str | None) -> float:
    from datetime import datetime

    try:
        return datetime.fromisoformat((stamp or "").replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0
