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
import secrets
import threading
from collections.abc import Mapping
from typing import Any

from jinja2 import TemplateError, Undefined
from markupsafe import Markup

from engine.definitions.limits import RenderLimits, size
from engine.definitions.sandbox import BoundedEnvironment, Budget, LimitExceeded, measure, using
from engine.definitions.strict_json import line_col
from engine.errors import DefinitionError

_MARK = "\x00"
_TEMPLATE_HINT = ("{{", "{%", "{#")
DEFAULT_LIMITS = RenderLimits()


def is_template(text: str) -> bool:
    """Whether ``text`` holds Jinja syntax at all (plain JSON skips the renderer)."""
    return any(token in text for token in _TEMPLATE_HINT)


_local = threading.local()


def _finalize(value: Any) -> str:
    collector: _Collector = _local.collector
    return collector(value)


class _Collector:
    """Jinja ``finalize``: stores each output value and returns its marker instead.

    A marker is NUL, a nonce of this render, the value's index and NUL: the template's text
    holds no NUL (refused before rendering) and an input value cannot know the nonce, so only
    this collector's markers are ever read as one. Text a template builds from its own output
    — a macro's, a ``{% call %}`` or ``{% set %}`` block's — holds the markers of the values
    output inside it; when that text is output in turn, they are put back as text first, and
    the text stands for one string value (a macro's output is text, not JSON structure)."""

    def __init__(self, budget: Budget) -> None:
        self.values: list[Any] = []
        self.budget = budget
        nonce = secrets.token_hex(6)
        self.prefix = f"{_MARK}{nonce}:"
        self.marker = re.compile(f"{_MARK}{nonce}:(\\d+){_MARK}")

    def __call__(self, value: Any) -> str:
        if isinstance(value, Undefined):
            str(value)  # StrictUndefined raises here, naming the missing variable
        if isinstance(value, str) and self.prefix in value:
            value = self.marker.sub(lambda m: _as_text(self.values[int(m.group(1))]), value)
        self.budget.add_output(measure(value, self.budget.max_chars))
        self.values.append(value)
        return f"{self.prefix}{len(self.values) - 1}{_MARK}"


def _as_text(value: Any) -> str:
    """A value output inside text the template builds (a macro's body): strings as they are,
    anything else as JSON."""
    if isinstance(value, str):
        return str(value)
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    except ValueError:
        return str(value)


_JSON_TYPES = (str, int, float, bool, list, tuple, dict, type(None))
_NOT_JSON_HINTS = {
    "generator": "add | list (a filter such as map or select gives a generator)",
    "Namespace": "output one of its attributes, not the namespace",
    "TemplateReference": "self is the template itself; output a value",
    "Macro": "call the macro: name()",
    "LoopContext": "output loop.index or another attribute",
    "BoundedRange": "add | list",
}


def _not_json(value: Any, file: str, where: tuple[int, int] | None) -> DefinitionError:
    kind = type(value).__name__
    return DefinitionError(
        f"a {kind} cannot stand for a JSON value",
        file=file,
        line=where[0] if where else None,
        column=where[1] if where else None,
        hint=_NOT_JSON_HINTS.get(kind, "output a string, number, list or object"),
    )


def _dumps(value: Any, file: str, where: tuple[int, int], **kwargs: Any) -> str:
    """JSON text of a collected value, or the error that says why it has none."""
    if not isinstance(value, _JSON_TYPES):
        raise _not_json(value, file, where)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, **kwargs)
    except (TypeError, ValueError) as exc:
        raise DefinitionError(
            f"a {type(value).__name__} holding {_short(exc)} cannot stand for a JSON value",
            file=file,
            line=where[0],
            column=where[1],
            hint="every item must be a string, number, true/false, null, list or object",
        ) from None


def _in_string(value: Any, file: str, where: tuple[int, int]) -> str:
    """The characters that stand for ``value`` between two quotes of a JSON string."""
    if isinstance(value, str):
        text = str(value)
    elif value is None or isinstance(value, bool | int | float):
        text = json.dumps(value)
    else:
        text = _dumps(value, file, where, sort_keys=True)
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
    if not isinstance(value, _JSON_TYPES):
        raise _not_json(value, file, where)
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

_LIMIT_HINTS = {
    "file_seconds": "make the template do less work",
    "output_bytes": "make the rendered definition smaller",
    "call_depth": "a macro must not call itself without end",
    "range": "loop over fewer items",
}


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"


def reset_thread_state() -> None:
    """Forget this thread's environment (after a render was interrupted half-way)."""
    _local.env = None
    _local.collector = None


def render_json_template(
    text: str, values: Mapping[str, Any], file: str, limits: RenderLimits = DEFAULT_LIMITS
) -> str:
    """Render ``text`` with ``values`` so that the result has the template's JSON structure.

    Raises ``DefinitionError`` for anything the template does wrong — syntax errors, undefined
    names, sandbox violations, a value that is not JSON, any error while it runs — and when it
    passes one of ``limits`` (time, output size, call depth), naming the file and the limit.
    """
    if _MARK in text:
        idx = text.index(_MARK)
        line, col = line_col(text, idx)
        raise DefinitionError(
            "NUL character in file", file=file, line=line, column=col, hint="remove it"
        )
    if not is_template(text):
        return text
    budget = Budget(limits)
    collector = _Collector(budget)
    # One environment per thread, reused: building one costs more than rendering a file.
    # The finalize hook finds this render's collector through the thread-local.
    env: BoundedEnvironment | None = getattr(_local, "env", None)
    if env is None:
        env = _local.env = BoundedEnvironment(finalize=_finalize)
    _local.collector = collector
    try:
        with using(budget):
            parts = []
            for chunk in env.from_string(text).generate(dict(values)):
                budget.add_output(len(chunk))
                parts.append(chunk)
            rendered = "".join(parts)
            out = _substitute(rendered, collector, file)
    except DefinitionError:
        raise
    except LimitExceeded as exc:
        raise DefinitionError(
            exc.message or str(exc), file=file, hint=_LIMIT_HINTS.get(exc.limit)
        ) from None
    except TemplateError as exc:
        lineno: int | None = getattr(exc, "lineno", None)
        message = _short(exc) if exc.message is None else str(exc.message)[:300]
        hint = "define it in the _lambdainput.json file or its ref files"
        if type(exc).__name__ == "SecurityError":
            hint = "templates may only read values, not Python internals"
        elif type(exc).__name__ == "TemplateSyntaxError":
            hint = "fix the template syntax"
        elif type(exc).__name__ == "TemplateNotFound":
            message = f"cannot include {message}"
            hint = "put the values in the _lambdainput.json file instead"
        raise DefinitionError(f"template: {message}", file=file, line=lineno, hint=hint) from None
    except RecursionError:
        raise DefinitionError(
            "template: nested too deeply (Python's recursion limit)",
            file=file,
            hint="simplify the expression or stop a macro from calling itself",
        ) from None
    except MemoryError:
        raise DefinitionError(
            "template: ran out of memory while rendering (the render memory limit is "
            f"{size(limits.memory_bytes)})",
            file=file,
            hint="make the rendered definition smaller",
        ) from None
    except Exception as exc:
        # Anything else a template can raise while it runs: 1/0, 'a' + 1, int('x'), an
        # OverflowError... all the template's doing, never a reason to stop the engine.
        raise DefinitionError(
            f"template: {type(exc).__name__}: {_short(exc)}", file=file, hint="fix the template"
        ) from None
    finally:
        _local.collector = None
    try:
        encoded = out.encode("utf-8")
    except UnicodeEncodeError as exc:
        line, col = line_col(out, exc.start)
        raise DefinitionError(
            "the rendered text holds a character that is not valid UTF-8 (a lone surrogate)",
            file=file,
            line=line,
            column=col,
            hint="remove the \\ud800-\\udfff escape from the template or its values",
        ) from None
    if len(encoded) > limits.output_bytes:
        raise DefinitionError(
            f"the rendered file is {len(encoded):,} bytes, over the output limit of "
            f"{size(limits.output_bytes)}",
            file=file,
            hint=_LIMIT_HINTS["output_bytes"],
        )
    return out


def _substitute(rendered: str, collector: _Collector, file: str) -> str:
    values = collector.values
    out: list[str] = []
    in_string = False
    pos = 0
    for match in collector.marker.finditer(rendered):
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
        where = line_col(rendered, match.start())
        if in_string:
            out.append(_in_string(value, file, where))
        else:
            out.append(_as_value(value, file, where))
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
