"""Rendering like docker's CLI: tabwriter tables, go-units sizes and durations, Go templates.

Only pure functions over values; nothing here talks to the daemon.
"""

from __future__ import annotations

import time

from berth.units import human_duration

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any


# ---- tables ----------------------------------------------------------------------------


def tabwrite(rows: Iterable[list[str]], minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)`` as docker uses it for tables.

    Every cell but the last of a line is padded to its column's width (widest cell + padding,
    at least ``minwidth``); the last cell is written as is.
    """
    rows = [list(r) for r in rows]
    widths: list[int] = []
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            w = max(len(cell) + padding, minwidth)
            if i >= len(widths):
                widths.append(w)
            elif w > widths[i]:
                widths[i] = w
    out = []
    for r in rows:
        line = "".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1]))
        if r:
            line += r[-1]
        out.append(line)
    return "".join(line + "\n" for line in out)


# ---- sizes and durations ---------------------------------------------------------------

_DECIMAL = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"]
_BINARY = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"]


def _go_g(value: float, precision: int) -> str:
    s = f"{value:.{precision}g}"
    if "e" in s:  # Go writes e+03 like C; keep it
        mant, _, exp = s.partition("e")
        sign = exp[0]
        digits = exp[1:].lstrip("0").rjust(2, "0")
        s = f"{mant}e{sign}{digits}"
    return s


def human_size(size: float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision``: decimal units, ``4.26MB``, ``1.2kB``, ``0B``."""
    i = 0
    size = float(size)
    while size >= 1000.0 and i < len(_DECIMAL) - 1:
        size /= 1000.0
        i += 1
    return _go_g(size, precision) + _DECIMAL[i]


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units with 4 significant digits (``1.944GiB``)."""
    i = 0
    size = float(size)
    while size >= 1024.0 and i < len(_BINARY) - 1:
        size /= 1024.0
        i += 1
    return _go_g(size, 4) + _BINARY[i]


def since(unix: float, now: float | None = None) -> str:
    """``2 minutes ago`` for a unix timestamp."""
    return human_duration((time.time() if now is None else now) - unix) + " ago"


def unix_to_local(unix: float) -> str:
    """Go's ``time.Unix(x, 0).String()`` as docker prints ``CreatedAt``."""
    t = time.localtime(unix)
    off = time.strftime("%z", t)
    return time.strftime("%Y-%m-%d %H:%M:%S ", t) + off + " " + time.strftime("%Z", t)


def ellipsis(s: str, width: int) -> str:
    """docker's ``formatter.Ellipsis``: cut to ``width`` characters ending in ``…``."""
    if width <= 0:
        return ""
    if len(s) <= width:
        return s
    if width == 1:
        return s[0]
    return s[: width - 1] + "…"


def short_id(ident: str) -> str:
    """``stringid.TruncateID``: drop an algorithm prefix, keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def go_quote(s: str) -> str:
    """``strconv.Quote`` (close enough: JSON string syntax with printable unicode kept)."""
    import json
    return json.dumps(s, ensure_ascii=False)


# ---- Go templates (the subset people use with --format) --------------------------------


class TemplateError(Exception):
    """A template that cannot be parsed or executed; ``str()`` is docker's wording."""


def go_str(v: Any) -> str:
    """How Go's text/template prints a value decoded from JSON."""
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if v == int(v) and abs(v) < 1e21:
            return str(int(v)) if abs(v) < 1e21 else _go_g(v, 17)
        return repr(v)
    if isinstance(v, list):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{go_str(v[k])}" for k in sorted(v)) + "]"
    return str(v)


def _json(v: Any) -> str:
    """Go's ``json.Marshal``: compact, ``<>&`` escaped; row objects as their sorted fields."""
    import json
    if hasattr(v, "as_dict"):
        v = dict(sorted(v.as_dict().items()))
    return json.dumps(v, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c").replace(
        ">", "\\u003e"
    ).replace("&", "\\u0026")


def json_line(v: Any) -> str:
    """One ``--format json`` line (docker marshals formatter rows with sorted keys)."""
    return _json(dict(sorted(v.items())) if isinstance(v, dict) else v)


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, list):
            v = v[int(k)]
        elif isinstance(v, dict):
            v = v.get(k)
        else:
            raise TemplateError("can't index item")
    return v


FUNCS: dict[str, Callable[..., Any]] = {
    "json": _json,
    "index": _index,
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": lambda s: go_str(s).title(),
    "join": lambda v, sep: sep.join(go_str(x) for x in (v or [])),
    "split": lambda s, sep: go_str(s).split(sep),
    "len": lambda v: len(v or []),
    "println": lambda *a: " ".join(go_str(x) for x in a) + "\n",
    "print": lambda *a: "".join(go_str(x) for x in a),
    "printf": lambda fmt, *a: _printf(fmt, a),
    "truncate": lambda s, n: go_str(s)[: int(n)],
    "pad": lambda s, left, right: " " * int(left) + go_str(s) + " " * int(right),
    "table": lambda v: v,
}


def _printf(fmt: str, args: tuple[Any, ...]) -> str:
    py = fmt.replace("%v", "%s").replace("%q", "%r")
    try:
        return py % tuple(go_str(a) if isinstance(a, list | dict | bool | type(None)) else a for a in args)
    except (TypeError, ValueError):
        return fmt


def _tokenize(expr: str) -> list[str]:
    toks: list[str] = []
    i = 0
    while i < len(expr):
        c = expr[i]
        if c.isspace():
            i += 1
        elif c in "\"`":
            j = expr.index(c, i + 1) if c == "`" else i + 1
            if c == '"':
                while j < len(expr) and expr[j] != '"':
                    j += 2 if expr[j] == "\\" else 1
            toks.append(expr[i : j + 1])
            i = j + 1
        elif c in "()|":
            toks.append(c)
            i += 1
        else:
            j = i
            while j < len(expr) and not expr[j].isspace() and expr[j] not in "()|":
                j += 1
            toks.append(expr[i:j])
            i = j
    return toks


class _Missing:
    pass


MISSING = _Missing()


def _field(obj: Any, name: str) -> Any:
    if isinstance(obj, dict):
        if name in obj:
            return obj[name]
        low = name.lower()
        for k in obj:
            if k.lower() == low:
                return obj[k]
        return MISSING
    attr = getattr(obj, name, MISSING)
    if attr is MISSING:
        raise TemplateError(f"can't evaluate field {name}")
    return attr() if callable(attr) else attr


def _eval_operand(tok: str, dot: Any, variables: dict[str, Any]) -> Any:
    import json
    if tok.startswith('"'):
        return json.loads(tok)
    if tok.startswith("`"):
        return tok[1:-1]
    if tok == ".":
        return dot
    if tok.startswith("$"):
        name, _, path = tok.partition(".")
        v = variables.get(name, dot)
        parts = path.split(".") if path else []
    elif tok.startswith("."):
        v = dot
        parts = tok[1:].split(".")
    else:
        if tok in ("true", "false"):
            return tok == "true"
        try:
            return int(tok)
        except ValueError:
            pass
        try:
            return float(tok)
        except ValueError:
            raise TemplateError(f'function "{tok}" not defined') from None
    for p in parts:
        if v is None or v is MISSING:
            return MISSING
        v = _field(v, p)
    return v


def _eval_cmd(toks: list[str], dot: Any, variables: dict[str, Any], piped: Any = MISSING) -> Any:
    # group parenthesised sub-expressions
    items: list[Any] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t == "(":
            depth, j = 1, i + 1
            while depth:
                depth += {"(": 1, ")": -1}.get(toks[j], 0)
                j += 1
            items.append(("sub", toks[i + 1 : j - 1]))
            i = j
        else:
            items.append(t)
            i += 1
    if not items:
        raise TemplateError("empty command")

    def val(it: Any) -> Any:
        if isinstance(it, tuple):
            return _eval_pipeline(it[1], dot, variables)
        return _eval_operand(it, dot, variables)

    head = items[0]
    if isinstance(head, str) and head in FUNCS:
        args = [val(x) for x in items[1:]]
        if piped is not MISSING:
            args.append(piped)
        return FUNCS[head](*args)
    if piped is not MISSING and len(items) == 1:
        raise TemplateError(f"can't give argument to non-function {head}")
    return val(head)


def _eval_pipeline(toks: list[str], dot: Any, variables: dict[str, Any]) -> Any:
    cmds: list[list[str]] = [[]]
    depth = 0
    for t in toks:
        depth += {"(": 1, ")": -1}.get(t, 0)
        if t == "|" and depth == 0:
            cmds.append([])
        else:
            cmds[-1].append(t)
    v: Any = MISSING
    for c in cmds:
        v = _eval_cmd(c, dot, variables, v)
    return v


def _truthy(v: Any) -> bool:
    return not (v is None or v is MISSING or v is False or v == 0 or v == "" or v == [] or v == {})


def _parse(src: str) -> list[Any]:
    """Nodes: str (text) or (kind, expr, body, else_body)."""
    pos = 0
    stack: list[list[Any]] = []
    root: list[Any] = []
    cur = root
    while True:
        i = src.find("{{", pos)
        if i < 0:
            cur.append(src[pos:])
            break
        text = src[pos:i]
        j = src.find("}}", i)
        if j < 0:
            raise TemplateError('template: :1: unclosed action')
        action = src[i + 2 : j]
        pos = j + 2
        if action.startswith("-"):
            text = text.rstrip()
            action = action[1:]
        if action.endswith("-"):
            action = action[:-1]
            while pos < len(src) and src[pos].isspace():
                pos += 1
        cur.append(text)
        action = action.strip()
        word = action.split(None, 1)[0] if action else ""
        if word in ("if", "range", "with"):
            node: list[Any] = [word, action[len(word) :].strip(), [], None]
            cur.append(node)
            stack.append(node)
            cur = node[2]
        elif word == "else":
            if not stack:
                raise TemplateError("template: :1: unexpected {{else}}")
            stack[-1][3] = []
            cur = stack[-1][3]
        elif word == "end":
            if not stack:
                raise TemplateError("template: :1: unexpected {{end}}")
            stack.pop()
            cur = root if not stack else _body_of(stack[-1])
        else:
            cur.append(["expr", action, [], None])
    if stack:
        raise TemplateError("template: :1: unexpected EOF")
    return root


def _body_of(node: list[Any]) -> list[Any]:
    return node[3] if node[3] is not None else node[2]


def _exec(nodes: list[Any], dot: Any, variables: dict[str, Any], out: list[str]) -> None:
    for n in nodes:
        if isinstance(n, str):
            out.append(n)
            continue
        if n[0] == "expr" and n[1].startswith("/*"):
            continue
        kind, expr, body, els = n
        if kind == "expr":
            if ":=" in expr:
                name, _, rhs = expr.partition(":=")
                variables[name.strip()] = _eval_pipeline(_tokenize(rhs), dot, variables)
                continue
            v = _eval_pipeline(_tokenize(expr), dot, variables)
            out.append("<no value>" if v is MISSING else go_str(v))
        elif kind == "if":
            v = _eval_pipeline(_tokenize(expr), dot, variables)
            _exec(body if _truthy(v) else (els or []), dot, variables, out)
        elif kind == "with":
            v = _eval_pipeline(_tokenize(expr), dot, variables)
            if _truthy(v):
                _exec(body, v, variables, out)
            else:
                _exec(els or [], dot, variables, out)
        elif kind == "range":
            kv_names: list[str] = []
            if ":=" in expr:
                names, _, expr = expr.partition(":=")
                kv_names = [x.strip() for x in names.split(",")]
            v = _eval_pipeline(_tokenize(expr), dot, variables)
            seq = sorted(v.items()) if isinstance(v, dict) else list(enumerate(v or [])) if _truthy(v) else []
            if not seq:
                _exec(els or [], dot, variables, out)
            for k, item in seq:
                if len(kv_names) == 2:
                    variables[kv_names[0]], variables[kv_names[1]] = k, item
                elif len(kv_names) == 1:
                    variables[kv_names[0]] = item
                _exec(body, item, variables, out)


class Template:
    """A parsed Go template; ``render(obj)`` executes it on a JSON-like value or an object."""

    def __init__(self, src: str) -> None:
        self.src = src
        self.nodes = _parse(src)

    def render(self, obj: Any) -> str:
        out: list[str] = []
        try:
            _exec(self.nodes, obj, {"$": obj}, out)
        except TemplateError:
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise TemplateError(f"template: :1: executing \"\" {e}") from None
        return "".join(out)


def format_table_or_template(fmt: str) -> tuple[bool, str]:
    """Split docker's ``table `` prefix from a --format value; ``\\t`` means a tab."""
    fmt = fmt.replace("\\t", "\t").replace("\\n", "\n")
    if fmt.startswith("table"):
        return True, fmt[5:].lstrip()
    return False, fmt


def render_rows(fmt: str, objects: list[Any], headers: dict[str, str]) -> str:
    """Docker's formatter: ``table`` templates get a header row and tab alignment."""
    is_table, body = format_table_or_template(fmt)
    tmpl = Template(body)
    lines = [tmpl.render(o) for o in objects]
    if not is_table:
        return "".join(line + "\n" for line in lines)
    header_tmpl = Template(body)
    header = header_tmpl.render(_Headers(headers))
    rows = [line.split("\t") for line in [header, *lines]]
    return tabwrite(rows)


class _Headers:
    """Stands in for a row object when rendering the header line of a table."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def __getattr__(self, name: str) -> Any:
        return self.headers.get(name, name.upper())
