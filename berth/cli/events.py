"""``events``: the daemon's event stream (GET /events), printed as docker prints it."""

from __future__ import annotations

import json
import sys

from berth.cli.context import CLIError, Context
from berth.cli.flags import Command

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

EVENTS = Command("events", "[OPTIONS]", "Get real time events from the server", 0, 0)
EVENTS.flag("filter", "f", "list", help="Filter output based on conditions provided", metavar="filter")
EVENTS.flag("format", None, help="Format output using a custom template")
EVENTS.flag("since", None, help="Show all events created since timestamp")
EVENTS.flag("until", None, help="Stream events until this timestamp")


def go_order(event: dict[str, Any]) -> dict[str, Any]:
    """The fields of docker's events.Message in its struct order (omitempty legacy fields)."""
    out: dict[str, Any] = {}
    for k in ("status", "id", "from"):
        if event.get(k):
            out[k] = event[k]
    actor = event.get("Actor") or {}
    out["Type"] = event.get("Type", "")
    out["Action"] = event.get("Action", "")
    out["Actor"] = {"ID": actor.get("ID", ""), "Attributes": dict(sorted((actor.get("Attributes") or {}).items()))}
    out["scope"] = event.get("scope", "")
    out["time"] = event.get("time", 0)
    out["timeNano"] = event.get("timeNano", 0)
    return out


def pretty(event: dict[str, Any]) -> str:
    """``2026-11-26T21:57:02.468148855Z container die <id> (exitCode=0, image=busybox, name=x)``."""
    from berth.cli.progress import rfc3339_nano

    head = ""
    if event.get("timeNano"):
        head = rfc3339_nano(int(event["timeNano"])) + " "
    elif event.get("time"):
        head = rfc3339_nano(int(event["time"]) * 1_000_000_000) + " "
    actor = event.get("Actor") or {}
    line = f"{head}{event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    attrs = actor.get("Attributes") or {}
    if attrs:
        line += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return line


def events(ctx: Context, argv: list[str]) -> int:
    from berth.cli.containers import build_filters, timestamp_param
    from berth.cli.formatting import Template, TemplateError, _json

    opts, _ = EVENTS.parse(argv)
    params: list[tuple[str, Any]] = []
    if opts.since:
        params.append(("since", timestamp_param(opts.since)))
    if opts.until:
        params.append(("until", timestamp_param(opts.until)))
    filters = build_filters(opts.filter)
    if filters:
        params.append(("filters", json.dumps(json.loads(filters), sort_keys=True, separators=(",", ":"))))
    fmt = opts.format
    tmpl = None
    if fmt and fmt not in ("json", "{{json .}}"):
        try:
            tmpl = Template(fmt.replace("\\t", "\t").replace("\\n", "\n"))
        except TemplateError as e:
            raise CLIError(f"template parsing error: {e}", 1) from None
    resp = ctx.client.request("GET", "/events", params)
    for raw in resp.iter_lines():
        try:
            event = json.loads(raw)
        except ValueError:
            continue
        if fmt in ("json", "{{json .}}"):
            line = _json(go_order(event))
        elif tmpl is not None:
            try:
                line = tmpl.render(go_order(event))
            except TemplateError as e:
                raise CLIError(str(e), 1) from None
        else:
            line = pretty(event)
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    return 0
