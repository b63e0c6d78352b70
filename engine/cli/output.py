"""How glam's commands print: a rich table on a terminal, tab-separated lines when piped, JSON
with ``--json``; and the small parsers and messages the commands share (times, durations,
"did you mean", the Examples block of each command's help)."""

from __future__ import annotations

import difflib
import json
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from engine.errors import GlamError, UsageError


def examples(*lines: str) -> str:
    """The Examples block of a command's help (its epilog). Click rewraps help paragraphs;
    one that starts with a ``\\b`` line is printed as written."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def print_json(value: object) -> None:
    """``value`` as indented JSON on stdout (keys sorted, times as ISO-8601)."""
    print(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str))


def is_terminal() -> bool:
    return sys.stdout.isatty()


@dataclass(frozen=True, slots=True)
class Column:
    """A table column: its header, and how it gives way on a narrow terminal (``wrap``: the
    text wraps onto more lines; else it is cut with an ellipsis). ``min`` keeps it readable."""

    header: str
    wrap: bool = False
    min: int | None = None
    right: bool = False


def table(
    title: str | None,
    columns: Sequence[str | Column],
    rows: Iterable[Sequence[object]],
    *,
    wide: bool = False,
) -> None:
    """A rich table on a terminal, fitted to its width (``wide``: every cell in full, the
    table as wide as it needs); tab-separated lines, header first, when piped."""
    cols = [c if isinstance(c, Column) else Column(c) for c in columns]
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not is_terminal():
        print("\t".join(c.header for c in cols))
        for row in cells:
            print("\t".join(cell.replace("\t", " ").replace("\n", " ") for cell in row))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(soft_wrap=False)
    if wide:
        console = Console(width=max(console.width, 400), soft_wrap=False)
    out = Table(title=title, expand=False, pad_edge=False, collapse_padding=True)
    for c in cols:
        out.add_column(
            c.header,
            overflow="fold" if (c.wrap or wide) else "ellipsis",
            no_wrap=not (c.wrap or wide),
            min_width=c.min,
            justify="right" if c.right else "left",
        )
    for row in cells:
        out.add_row(*row)
    console.print(out, crop=not wide)


# -- parsing -------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, *, option: str) -> float:
    """Seconds in ``text``: ``90``, ``90s``, ``15m``, ``2h``, ``1d``."""
    match = _DURATION.match(text)
    if match is None:
        raise UsageError(
            f"{option} {text!r} is not a duration", hint=f"use e.g. {option} 90s, 15m or 2h"
        )
    return float(match[1]) * _UNITS[match[2] or "s"]


def parse_moment(text: str, *, option: str, now: datetime | None = None) -> int | datetime:
    """A log position (``120``), an ISO-8601 time (``2026-03-01T10:00:00Z``, naive = UTC) or
    a time that long ago (``10m``, ``2h``, ``1d``)."""
    if text.isdigit():
        return int(text)
    if _DURATION.match(text) and not text.strip().replace(".", "").isdigit():
        ago = parse_duration(text, option=option)
        return (now or datetime.now(UTC)) - timedelta(seconds=ago)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {text!r} is neither a position, an ISO-8601 time nor a duration",
            hint=f"use e.g. {option} 120, {option} 2026-03-01T10:00:00Z or {option} 15m",
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# -- messages ------------------------------------------------------------------------------


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to ``word``, if one is close enough to be a typo."""
    near = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return near[0] if near else None


def unknown_function(name: str, known: Iterable[str]) -> GlamError:
    """The error for a function name the log does not know, with the likely one."""
    near = did_you_mean(name, known)
    if near is not None:
        return GlamError(f"no function {name!r} in the log — did you mean {near!r}?")
    return GlamError(
        f"no function {name!r} in the log",
        hint="run `glam status` to list the functions glam knows",
    )


def format_seconds(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``1h02m``; empty for None."""
    if seconds is None:
        return ""
    total = round(max(seconds, 0.0))
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_time(moment: datetime | None) -> str:
    """A time as glam prints it in tables: UTC, to the second."""
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
