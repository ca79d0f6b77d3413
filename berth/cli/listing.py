"""How list verbs (ps, images, ...) print their rows: IDs only, JSON lines, a template, or a table."""

from __future__ import annotations

from berth.cli.context import CLIError, Context
from berth.cli.formatting import render_rows, tabwrite

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any


def print_list(ctx: Context, rows: Sequence[Any], fmt: str | None, quiet: bool,
               headers: dict[str, str], cols: list[str]) -> int:
    """Rows are objects with the template fields as attributes and ``as_dict()``."""
    if quiet and not fmt:
        ctx.out("".join(r.ID + "\n" for r in rows))
        return 0
    if fmt == "json":
        from berth.cli.formatting import json_line

        ctx.out("".join(json_line(r.as_dict()) + "\n" for r in rows))
        return 0
    if fmt and fmt != "table":
        from berth.cli.formatting import TemplateError

        try:
            ctx.out(render_rows(fmt, rows, headers))
        except TemplateError as e:
            raise CLIError(str(e), 1) from None
        return 0
    table = [[headers[c] for c in cols]] + [[getattr(r, c) for c in cols] for r in rows]
    ctx.out(tabwrite(table))
    return 0
