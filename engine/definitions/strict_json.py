"""A strict JSON reader for files in the user's repository.

Python's ``json`` accepts things that make a definition ambiguous or unsafe to act on: a
duplicate key (which value wins?), ``NaN``/``Infinity``, a byte order mark. This reader refuses
them, and invalid UTF-8, oversized files and excessive nesting, each as a ``DefinitionError``
naming ``file:line:column``. The fast path is the C parser; only when it finds a problem does a
slower positional scan run to say exactly where.
"""

from __future__ import annotations

import json
from typing import Any

from engine.errors import DefinitionError

MAX_BYTES = 1 << 20  # 1 MiB: far above any real definition, far below a memory problem
MAX_DEPTH = 64

_BOM = b"\xef\xbb\xbf"


def line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``index`` in ``text``."""
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def decode_utf8(data: bytes, file: str, *, max_bytes: int = MAX_BYTES) -> str:
    """The file as text: size, byte order mark and UTF-8 validity checked."""
    if len(data) > max_bytes:
        raise DefinitionError(
            f"file is {len(data)} bytes, more than the {max_bytes} allowed",
            file=file,
            hint="split the definition or move data out of it",
        )
    if data.startswith(_BOM):
        raise DefinitionError(
            "file starts with a byte order mark",
            file=file,
            line=1,
            column=1,
            hint="save the file as UTF-8 without BOM",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        head = data[: exc.start].decode("utf-8", errors="replace")
        line, col = line_col(head, len(head))
        raise DefinitionError(
            f"invalid UTF-8 byte 0x{data[exc.start]:02x}",
            file=file,
            line=line,
            column=col,
            hint="save the file as UTF-8",
        ) from None


class _Problem(Exception):
    def __init__(self, message: str, index: int, hint: str):
        super().__init__(message)
        self.message = message
        self.index = index
        self.hint = hint


def _reject_constant(name: str) -> Any:
    raise _Problem(f"{name} is not valid JSON", -1, "use a number or a string")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Problem(f"the number {text[:40]} is too large", -1, "use a smaller number")
    return value


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Problem("duplicate key", -1, "remove one of the duplicate keys")
    return result


def _depth(value: Any, limit: int) -> bool:
    """True when ``value`` nests deeper than ``limit``; iterative so it cannot overflow."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def parse_json_text(text: str, file: str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse ``text`` strictly; a problem raises ``DefinitionError`` at file:line:column."""
    try:
        value = json.loads(
            text, object_pairs_hook=_pairs, parse_constant=_reject_constant, parse_float=_finite
        )
    except json.JSONDecodeError as exc:
        raise DefinitionError(
            exc.msg, file=file, line=exc.lineno, column=exc.colno, hint="fix the JSON syntax"
        ) from None
    except RecursionError:
        problem = _locate(text, max_depth)
        raise _as_error(problem, text, file) from None
    except _Problem as exc:
        problem = _locate(text, max_depth) or exc
        raise _as_error(problem, text, file) from None
    except ValueError as exc:
        # Python refuses to turn a number of more than 4,300 digits into an int.
        raise DefinitionError(
            f"a number too long to read ({str(exc).split(':')[0]})",
            file=file,
            hint="write it as a string",
        ) from None
    if _depth(value, max_depth):
        raise _as_error(_locate(text, max_depth), text, file)
    return value


def load_json(data: bytes, file: str, *, max_bytes: int = MAX_BYTES) -> Any:
    """Decode and parse one repository file strictly."""
    return parse_json_text(decode_utf8(data, file, max_bytes=max_bytes), file)


def _as_error(problem: _Problem | None, text: str, file: str) -> DefinitionError:
    if problem is None:  # the positional scan must agree with the fast path; be safe anyway
        return DefinitionError("invalid JSON", file=file, hint="fix the JSON syntax")
    if problem.index < 0:
        return DefinitionError(problem.message, file=file, hint=problem.hint)
    line, col = line_col(text, problem.index)
    return DefinitionError(problem.message, file=file, line=line, column=col, hint=problem.hint)


_WS = " \t\r\n"


def _locate(text: str, max_depth: int) -> _Problem | None:
    """Walk ``text`` (already known to be JSON-shaped) and return the first strictness
    problem with its index. Slow, pure Python: only runs on the error path."""
    i = 0
    n = len(text)
    # Each open container: a set of keys seen (object) or None (array).
    stack: list[set[str] | None] = []
    expect_key = False
    while i < n:
        ch = text[i]
        if ch in _WS or ch in ",:":
            if ch == "," and stack and stack[-1] is not None:
                expect_key = True
            i += 1
            continue
        if ch in "{[":
            if len(stack) >= max_depth:
                return _Problem(
                    f"nesting deeper than {max_depth} levels", i, "flatten the structure"
                )
            stack.append(set() if ch == "{" else None)
            expect_key = ch == "{"
            i += 1
            continue
        if ch in "}]":
            stack.pop() if stack else None
            expect_key = False
            i += 1
            continue
        if ch == '"':
            start = i
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            if expect_key and stack and stack[-1] is not None:
                key = json.loads(text[start:i])
                if key in stack[-1]:
                    return _Problem(
                        f"duplicate key {key!r}", start, "remove one of the duplicate keys"
                    )
                stack[-1].add(key)
                expect_key = False
            continue
        for word in ("NaN", "Infinity", "-Infinity"):
            if text.startswith(word, i):
                return _Problem(f"{word} is not valid JSON", i, "use a number or a string")
        i += 1
    return None
