"""Jinja rendering that cannot change the JSON structure of a definition.

Definitions are JSON templates: ``"Role": "{{ role_arn }}"``, ``"Layers": {{ layers | tojson }}``,
loops. Rendering text and parsing it afterwards would let a value such as
``x", "Role": "arn:aws:iam::1:role/admin`` close its string and add keys. So every ``{{ }}``
output is first replaced by an opaque marker; the rendered text then holds only the template's
own characters plus markers, and a JSON string scanner decides for each marker whether it sits
inside a string. Inside a string the value is JSON-escaped (it can never end the string);
outside, it must be exactly one JSON value (numbers, booleans, ``tojson`` output, or a string
which is then quoted). The structure is therefore always the template author's.

The environment is sandboxed (no ``__class__`` walks), undefined names are errors, and the only
values are those passed in — never the process environment.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from engine.definitions.strict_json import line_col
from engine.errors import DefinitionError

_MARK = "\x00"
_MARKER = re.compile("\x00(\\d+)\x00")
_TEMPLATE_HINT = ("{{", "{%", "{#")


def is_template(text: str) -> bool:
    """Whether ``text`` holds Jinja syntax at all (plain JSON skips the renderer)."""
    return any(token in text for token in _TEMPLATE_HINT)


_local = threading.local()


def _finalize(value: Any) -> str:
    collector: _Collector = _local.collector
    return collector(value)


class _Collector:
    """Jinja ``finalize``: stores each output value and returns its marker instead."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    def __call__(self, value: Any) -> str:
        if isinstance(value, Undefined):
            str(value)  # StrictUndefined raises here, naming the missing variable
        self.values.append(value)
        return f"{_MARK}{len(self.values) - 1}{_MARK}"


def _make_env() -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        keep_trailing_newline=True,
    )
    # Nothing that reads outside the values: keep pure helpers only.
    for name in ("lipsum", "cycler", "joiner"):
        env.globals.pop(name, None)
    return env


def _in_string(value: Any) -> str:
    """The characters that stand for ``value`` between two quotes of a JSON string."""
    if isinstance(value, str):
        text = str(value)
    elif value is None or isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        text = json.dumps(value, sort_keys=True)
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _as_value(value: Any, file: str, where: tuple[int, int]) -> str:
    """``value`` as one whole JSON value, for a placeholder outside any string."""
    if isinstance(value, str):
        try:
            parsed = json.loads(str(value))
        except ValueError:
            parsed = _NOT_JSON
        # tojson output (Markup) may be any JSON value; a plain string only a scalar such as
        # "15" or "true" (CDK and Terraform hand out numbers as strings). Anything else is a
        # string and is quoted, so it cannot open or close structure.
        if parsed is not _NOT_JSON and (
            isinstance(value, Markup) or not isinstance(parsed, dict | list | str)
        ):
            return json.dumps(parsed, ensure_ascii=False)
        return json.dumps(str(value), ensure_ascii=False)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        raise DefinitionError(
            f"a {type(value).__name__} cannot stand for a JSON value",
            file=file,
            line=where[0],
            column=where[1],
            hint="use | tojson on a list or object",
        ) from None


_NOT_JSON = object()


def render_json_template(text: str, values: Mapping[str, Any], file: str) -> str:
    """Render ``text`` with ``values`` so that the result has the template's JSON structure.

    Raises ``DefinitionError`` for template syntax errors, undefined names and sandbox
    violations, naming the file and line.
    """
    if _MARK in text:
        idx = text.index(_MARK)
        line, col = line_col(text, idx)
        raise DefinitionError(
            "NUL character in file", file=file, line=line, column=col, hint="remove it"
        )
    if not is_template(text):
        return text
    collector = _Collector()
    # One environment per thread, reused: building one costs more than rendering a file.
    # The finalize hook finds this render's collector through the thread-local.
    env: ImmutableSandboxedEnvironment | None = getattr(_local, "env", None)
    if env is None:
        env = _local.env = _make_env()
    _local.collector = collector
    try:
        rendered = env.from_string(text).render(dict(values))
    except TemplateError as exc:
        lineno: int | None = getattr(exc, "lineno", None)
        message = str(exc.message or exc)
        hint = "define it in the _lambdainput.json file or its ref files"
        if type(exc).__name__ == "SecurityError":
            hint = "templates may only read values, not Python internals"
        elif type(exc).__name__ == "TemplateSyntaxError":
            hint = "fix the template syntax"
        raise DefinitionError(f"template: {message}", file=file, line=lineno, hint=hint) from None
    return _substitute(rendered, collector.values, file)


def _substitute(rendered: str, values: list[Any], file: str) -> str:
    out: list[str] = []
    in_string = False
    pos = 0
    for match in _MARKER.finditer(rendered):
        chunk = rendered[pos : match.start()]
        in_string, dangling = _scan(chunk, in_string)
        if dangling:
            # A backslash right before a value would escape the value's first character and
            # could let an escaped quote end the string.
            line, col = line_col(rendered, match.start())
            raise DefinitionError(
                "a backslash directly before a placeholder",
                file=file,
                line=line,
                column=col,
                hint="remove the backslash or put it in the value",
            )
        out.append(chunk)
        value = values[int(match.group(1))]
        if in_string:
            out.append(_in_string(value))
        else:
            out.append(_as_value(value, file, line_col(rendered, match.start())))
        pos = match.end()
    out.append(rendered[pos:])
    return "".join(out)


def _scan(chunk: str, in_string: bool) -> tuple[bool, bool]:
    """String state after ``chunk`` of template text, starting in ``in_string``, and whether
    the chunk ends inside a string on an unfinished backslash escape."""
    i = 0
    n = len(chunk)
    while i < n:
        ch = chunk[i]
        if in_string and ch == "\\":
            if i + 1 == n:
                return True, True
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        i += 1
    return in_string, False
