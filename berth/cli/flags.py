"""A docker-style (spf13/pflag) flag parser: the grammar only, no behaviour.

``-it``, ``-eK=V``, ``-e=K``, ``--env K``, ``--env=K``, ``--rm=false``, ``--`` and, for commands
that take a command line (run, create, exec), parsing that stops at the first positional
(``interspersed=False``). Errors raise :class:`UsageError`, which the CLI prints the way docker
does and turns into exit status 125 (flag errors) or 1 (argument counts).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


PROG = "berth"


class UsageError(Exception):
    """A command line docker would refuse; ``str()`` is the full text to print on stderr."""

    def __init__(self, message: str, code: int = 125) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class HelpRequested(Exception):
    """``--help``: print ``text`` on stdout and exit 0."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class Flag:
    """One option. ``kind`` is bool, str, int, float, list, or a converter (value -> object)."""

    def __init__(
        self,
        long: str,
        short: str | None,
        kind: str | Callable[[str], Any],
        default: Any,
        help: str,
        metavar: str,
    ) -> None:
        self.long = long
        self.short = short
        self.kind = kind
        self.default = default
        self.help = help
        self.metavar = metavar
        self.dest = long.replace("-", "_")

    @property
    def label(self) -> str:
        return f"-{self.short}, --{self.long}" if self.short else f"--{self.long}"


class Options:
    """Parsed flag values as attributes; ``given`` names the flags set on the command line."""

    def __init__(self) -> None:
        self.given: set[str] = set()

    def __getattr__(self, name: str) -> Any:  # pragma: no cover - only for typos
        raise AttributeError(name)


_BOOL_TRUE = {"1", "t", "T", "true", "TRUE", "True"}
_BOOL_FALSE = {"0", "f", "F", "false", "FALSE", "False"}


class Command:
    """The grammar of one verb: its flags, usage line and how many positionals it takes."""

    def __init__(
        self,
        name: str,
        usage: str,
        description: str,
        min_args: int = 0,
        max_args: int | None = None,
        interspersed: bool = True,
    ) -> None:
        self.name = name
        self.usage = usage
        self.description = description
        self.min_args = min_args
        self.max_args = max_args
        self.interspersed = interspersed
        self.flags: list[Flag] = []
        self._long: dict[str, Flag] = {}
        self._short: dict[str, Flag] = {}

    def flag(
        self,
        long: str,
        short: str | None = None,
        kind: str | Callable[[str], Any] = "str",
        default: Any = None,
        help: str = "",
        metavar: str | None = None,
    ) -> Command:
        if default is None:
            default = {"bool": False, "list": None}.get(kind if isinstance(kind, str) else "", None)
        if metavar is None:
            metavar = kind if isinstance(kind, str) and kind != "bool" else ("" if kind == "bool" else "string")
        f = Flag(long, short, kind, default, help, metavar)
        self.flags.append(f)
        self._long[long] = f
        if short:
            self._short[short] = f
        return self

    # ---- text ------------------------------------------------------------------------------
    def usage_line(self) -> str:
        return f"Usage:  {PROG} {self.name} {self.usage}".rstrip()

    def fail(self, message: str) -> UsageError:
        return UsageError(
            f"{message}\n\n{self.usage_line()}\n\nRun '{PROG} {self.name} --help' for more information", 125
        )

    def arg_error(self) -> UsageError:
        # docker CLI 28's cli/required.go: "See" only for a minimum; its RequiresMaxArgs really
        # prints "SRun" (a truncated "See" left in front of the new "Run" line).
        lo, hi = self.min_args, self.max_args
        hint = "Run"
        if hi == 0:
            what = "accepts no arguments"
        elif lo == hi:
            what = f"requires {lo} argument" + ("s" if lo != 1 else "")
        elif hi is None:
            what = f"requires at least {lo} argument" + ("s" if lo != 1 else "")
            hint = "See"
        elif lo == 0:
            what = f"requires at most {hi} argument" + ("s" if hi != 1 else "")
            hint = "SRun"
        else:
            what = f"requires at least {lo} and at most {hi} arguments"
        return UsageError(
            f"{PROG}: '{PROG} {self.name}' {what}\n\n{self.usage_line()}\n\n"
            f"{hint} '{PROG} {self.name} --help' for more information",
            1,
        )

    def help_text(self) -> str:
        lines = [self.usage_line(), "", self.description]
        if self.flags:
            lines += ["", "Options:"]
            rows = []
            for f in sorted(self.flags, key=lambda f: f.long):
                left = f"  -{f.short}, --{f.long}" if f.short else f"      --{f.long}"
                if f.metavar:
                    left += f" {f.metavar}"
                rows.append((left, f.help))
            width = max(len(r[0]) for r in rows)
            lines += [f"{left.ljust(width)}   {text}".rstrip() for left, text in rows]
        return "\n".join(lines) + "\n"

    # ---- parsing ---------------------------------------------------------------------------
    def _convert(self, f: Flag, value: str) -> Any:
        kind = f.kind
        try:
            if kind == "bool":
                if value in _BOOL_TRUE:
                    return True
                if value in _BOOL_FALSE:
                    return False
                raise ValueError(f'strconv.ParseBool: parsing "{value}": invalid syntax')
            if kind == "int":
                try:
                    return int(value, 0) if value.lower().startswith(("0x", "0o", "0b")) else int(value)
                except ValueError:
                    raise ValueError(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
            if kind == "float":
                try:
                    return float(value)
                except ValueError:
                    raise ValueError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
            if kind in ("str", "string", "list"):
                return value
            return kind(value)  # type: ignore[operator]
        except ValueError as e:
            raise self.fail(f'invalid argument "{value}" for "{f.label}" flag: {e}') from None

    def _set(self, opts: Options, f: Flag, value: str) -> None:
        v = self._convert(f, value)
        if f.kind == "list":
            cur = getattr(opts, f.dest, None) or []
            cur.append(v)
            v = cur
        setattr(opts, f.dest, v)
        opts.given.add(f.long)

    def parse(self, argv: list[str]) -> tuple[Options, list[str]]:
        """Split ``argv`` into options and positionals; raises UsageError or HelpRequested."""
        opts = Options()
        for f in self.flags:
            setattr(opts, f.dest, list(f.default) if isinstance(f.default, list) else f.default)
        args: list[str] = []
        i = 0
        n = len(argv)
        while i < n:
            a = argv[i]
            i += 1
            if a == "--":
                args.extend(argv[i:])
                break
            if a.startswith("--"):
                name, eq, value = a[2:].partition("=")
                f = self._long.get(name)
                if f is None:
                    if name == "help":
                        raise HelpRequested(self.help_text())
                    raise self.fail(f"unknown flag: --{name}")
                if eq:
                    self._set(opts, f, value)
                elif f.kind == "bool":
                    self._set(opts, f, "true")
                elif i < n:
                    self._set(opts, f, argv[i])
                    i += 1
                else:
                    raise self.fail(f"flag needs an argument: --{name}")
                continue
            if a.startswith("-") and len(a) > 1:
                j = 1
                while j < len(a):
                    c = a[j]
                    j += 1
                    f = self._short.get(c)
                    if f is None:
                        if c == "h":
                            raise HelpRequested(self.help_text())
                        raise self.fail(f"unknown shorthand flag: '{c}' in {a}")
                    rest = a[j:]
                    if f.kind == "bool":
                        if rest.startswith("="):
                            self._set(opts, f, rest[1:])
                            break
                        self._set(opts, f, "true")
                        continue
                    if rest:
                        self._set(opts, f, rest[1:] if rest.startswith("=") else rest)
                    elif i < n:
                        self._set(opts, f, argv[i])
                        i += 1
                    else:
                        raise self.fail(f"flag needs an argument: '{c}' in -{c}")
                    break
                continue
            args.append(a)
            if not self.interspersed:
                args.extend(argv[i:])
                break
        if len(args) < self.min_args or (self.max_args is not None and len(args) > self.max_args):
            raise self.arg_error()
        return opts, args
