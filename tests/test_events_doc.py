"""docs/events.md is generated from the event models; this test keeps it true.

After changing an event, regenerate it with ``uv run --frozen python -m tests.test_events_doc``.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from pathlib import Path

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from engine.events import EVENT_CLASSES
from engine.events.base import Metadata

DOC = Path(__file__).parents[1] / "docs" / "events.md"

STREAMS = {
    "engine.events.repo": "repository stream `repo:<id>`",
    "engine.events.function": "function stream `fn:<account>:<region>:<name>`",
    "engine.events.operator": "operator stream `ops`",
    "engine.events.registry": "stream `repositories`",
}


def _type_name(annotation: object) -> str:
    if isinstance(annotation, type):
        return "None" if annotation is type(None) else annotation.__name__
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", '"') for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin is not None and args:
        name = getattr(origin, "__name__", str(origin))
        return f"{name}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in args)}]"
    return re.sub(r"\btyping\.", "", str(annotation))


def _models_in(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for a in typing.get_args(annotation) for m in _models_in(a)]


def _doc(cls: type) -> str:
    text = inspect.getdoc(cls) or ""
    inherited = [inspect.getdoc(base) for base in cls.__mro__[1:]]
    return "" if text in inherited else " ".join(text.split("\n\n")[0].split())


def _fields(model: type[BaseModel]) -> list[str]:
    lines = ["| field | type | default |", "|---|---|---|"]
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        if info.default is PydanticUndefined and info.default_factory is None:
            default = "required"
        elif info.default_factory is not None:
            default = f"`{info.default_factory()!r}`"  # type: ignore[call-arg]
        else:
            default = f"`{info.default!r}`"
        lines.append(f"| `{name}` | {_type_name(info.annotation)} | {default} |")
    return lines


def render() -> str:
    """The whole of docs/events.md."""
    out = [
        "# Events",
        "",
        "Every fact glam records is one of these events, stored in the `events` table under its",
        "type name with its `schema_version` and its fields as JSON (one hash-chained log). This",
        "page is generated from the models in `engine/events/` by `tests/test_events_doc.py`;",
        "regenerate it with `uv run --frozen python -m tests.test_events_doc`.",
        "",
        "## Metadata (every event)",
        "",
        *_fields(Metadata),
        "",
    ]
    values: dict[str, type[BaseModel]] = {}
    for module, stream in STREAMS.items():
        out += [f"## Events of the {stream}", ""]
        for type_name, cls in EVENT_CLASSES.items():
            if cls.__module__ != module:
                continue
            out += [f"### `{type_name}` (schema version {cls.SCHEMA_VERSION})", ""]
            if doc := _doc(cls):
                out += [doc, ""]
            out += [*_fields(cls), ""]
            for info in cls.model_fields.values():
                for model in _models_in(info.annotation):
                    values.setdefault(model.__name__, model)
    out += ["## Values carried inside events", ""]
    pending = sorted(values)
    seen: set[str] = set()
    while pending:
        name = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        model = values[name]
        out += [f"### `{name}`", ""]
        if doc := _doc(model):
            out += [doc, ""]
        out += [*_fields(model), ""]
        for info in model.model_fields.values():
            for nested in _models_in(info.annotation):
                if nested.__name__ not in values:
                    values[nested.__name__] = nested
                    pending.append(nested.__name__)
    unknown = [t for t, c in EVENT_CLASSES.items() if c.__module__ not in STREAMS]
    assert not unknown, f"add the module of {unknown} to STREAMS"
    return "\n".join(out).rstrip() + "\n"


def test_events_doc_lists_every_event_and_field() -> None:
    assert DOC.read_text() == render(), (
        "docs/events.md is stale: run `uv run --frozen python -m tests.test_events_doc`"
    )


def test_every_event_type_is_in_the_doc() -> None:
    text = DOC.read_text()
    for type_name in EVENT_CLASSES:
        assert f"### `{type_name}`" in text


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
