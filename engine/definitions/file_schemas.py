"""JSON Schemas of the four definition files, built from the models glam validates them with.

- ``lambdadef``: botocore's ``CreateFunction`` input shape (``engine.definitions.lambdadef``
  validates against the same shape), with AWS's defaults from ``engine.definitions.normalize``;
- ``lambdadepdef`` and ``lambdainput``: the file models of ``engine.definitions.files``;
- ``lambdaeventsourcedef``: the push kinds of ``engine.sources_plan`` and botocore's
  ``CreateEventSourceMapping`` input shape for the pull mappings.

Enumerations of botocore's model are offered as ``examples`` (editors complete them) rather
than enforced, as glam leaves them to AWS: an older botocore must not refuse a runtime AWS
already accepts. A schema describes a file after rendering; a ``{{ }}`` outside a string is not
JSON, so an editor marks it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from engine.definitions.files import LambdaDepDefFile, LambdaInputFile
from engine.definitions.lambdadef import lambda_model
from engine.definitions.normalize import DEFAULTS
from engine.definitions.settings import GITMOXI_IGNORED
from engine.sources_plan import PUSH_KINDS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://glam-gitops.dev/schema/{name}.json"
# Misspellings found in real repositories and accepted as the right key.
MISSPELT = {"AlaisStageVariableName": "AliasStageVariableName"}

_SCALARS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "blob": {"type": "string", "contentEncoding": "base64"},
    "timestamp": {"type": ["string", "number"]},
    "boolean": {"type": "boolean"},
    "integer": {"type": "integer"},
    "long": {"type": "integer"},
    "float": {"type": "number"},
    "double": {"type": "number"},
}
_TAG = re.compile(r"<[^>]+>")
_SENTENCE = re.compile(r"(?<=[a-z0-9)\]])\.\s")


def summary(documentation: str, limit: int = 240) -> str:
    """The first sentence of botocore's HTML documentation, as plain text."""
    text = " ".join(html.unescape(_TAG.sub(" ", documentation or "")).split())
    first = _SENTENCE.split(text, maxsplit=1)[0].rstrip(".")
    return first if len(first) <= limit else first[: limit - 1].rstrip() + "…"


class _Botocore:
    """botocore shapes as JSON Schema, structures shared through ``$defs``."""

    def __init__(self) -> None:
        self.defs: dict[str, Any] = {}

    def structure(self, shape: Any, *, optional: frozenset[str] = frozenset()) -> dict[str, Any]:
        properties = {name: self.member(member) for name, member in shape.members.items()}
        out: dict[str, Any] = {
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        required = [name for name in shape.required_members if name not in optional]
        if required:
            out["required"] = required
        return out

    def member(self, shape: Any) -> dict[str, Any]:
        out = self.shape(shape)
        text = summary(shape.documentation)
        if text:
            out = {**out, "description": text}
        return out

    def shape(self, shape: Any) -> dict[str, Any]:
        kind = shape.type_name
        if kind == "structure":
            if shape.name not in self.defs:
                self.defs[shape.name] = {}  # placeholder first: a recursive shape ends here
                self.defs[shape.name] = self.structure(shape)
            return {"$ref": f"#/$defs/{shape.name}"}
        if kind == "list":
            return {"type": "array", "items": self.shape(shape.member)}
        if kind == "map":
            return {"type": "object", "additionalProperties": self.shape(shape.value)}
        out: dict[str, Any] = dict(_SCALARS.get(kind, {}))
        if kind in ("integer", "long"):
            if "min" in shape.metadata:
                out["minimum"] = shape.metadata["min"]
            if "max" in shape.metadata:
                out["maximum"] = shape.metadata["max"]
        enum = getattr(shape, "enum", None)  # string shapes only
        if enum:
            out["examples"] = list(enum)
        return out


def _document(name: str, title: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"$schema": DRAFT, "$id": SCHEMA_ID.format(name=name), "title": title, **body}


def lambdadef_schema() -> dict[str, Any]:
    """``_lambdadef.json``: a CreateFunction request."""
    builder = _Botocore()
    body = builder.structure(lambda_model().operation_model("CreateFunction").input_shape)
    for key, value in DEFAULTS.items():
        if key in body["properties"]:
            body["properties"][key]["default"] = value
    body["description"] = (
        "The Lambda CreateFunction request of one function, any member AWS accepts; "
        "a member left out is compared with AWS's default."
    )
    return _document("lambdadef", "_lambdadef.json", {**body, "$defs": builder.defs})


def lambdaeventsourcedef_schema() -> dict[str, Any]:
    """``_lambdaeventsourcedef.json``: push sources and pull mappings."""
    kinds = []
    for kind in PUSH_KINDS.values():
        properties: dict[str, Any] = {
            "Service": {
                "const": kind.service,
                "description": f"{kind.label} push source: {kind.label} invokes the alias.",
            }
        }
        for key in kind.fields:
            properties[key] = {"type": "string", "minLength": 1}
            if key in MISSPELT:
                properties[key] |= {
                    "description": f"Misspelling of {MISSPELT[key]} found in real "
                    "repositories, read as it.",
                    "deprecated": True,
                }
        kinds.append(
            {
                "title": f"{kind.label} push source",
                "type": "object",
                "properties": properties,
                "required": ["Service", *kind.required],
                "additionalProperties": False,
            }
        )
    builder = _Botocore()
    shape = lambda_model().operation_model("CreateEventSourceMapping").input_shape
    mapping = builder.structure(shape, optional=frozenset({"FunctionName"}))
    mapping["properties"]["FunctionName"]["description"] = (
        "Default: this function. An unqualified name is qualified with the alias, so pull "
        "traffic follows the deployment."
    )
    builder.defs["PushSource"] = {"oneOf": kinds}
    builder.defs["EventSourceMapping"] = {
        **mapping,
        "description": "A CreateEventSourceMapping request; one mapping per source.",
    }
    push = {"$ref": "#/$defs/PushSource"}
    pull = {"$ref": "#/$defs/EventSourceMapping"}
    body = {
        "description": "The event sources of one function: push sources allowed to invoke its "
        "alias, and pull mappings that invoke it.",
        "type": "object",
        "properties": {
            "PushEventSources": {
                "description": "ALB target groups and API Gateway v2 routes (a list, or one).",
                "anyOf": [{"type": "array", "items": push}, push],
                "default": [],
            },
            "PullEventSources": {
                "type": "object",
                "properties": {
                    "EventSourceMapping": {
                        "description": "Event source mappings (a list, or one).",
                        "anyOf": [{"type": "array", "items": pull}, pull],
                        "default": [],
                    }
                },
                "additionalProperties": False,
                "default": {},
            },
        },
        "additionalProperties": False,
        "$defs": builder.defs,
    }
    return _document("lambdaeventsourcedef", "_lambdaeventsourcedef.json", body)


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True)
    cleaned: dict[str, Any] = _without_null(schema)
    return cleaned


def _without_null(node: Any) -> Any:
    """A file never holds ``null`` where glam reads a value: ``X | None`` fields mean that the
    key may be left out, which JSON Schema says by leaving it out of ``required``."""
    if isinstance(node, list):
        return [_without_null(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _without_null(value) for key, value in node.items() if key != "title"}
    if "anyOf" in out:
        rest = [option for option in out["anyOf"] if option != {"type": "null"}]
        if len(rest) != len(out["anyOf"]):
            del out["anyOf"]
            out = {**rest[0], **out} if len(rest) == 1 else {**out, "anyOf": rest}
    if out.get("default", 0) is None:
        del out["default"]
    return out


def lambdadepdef_schema() -> dict[str, Any]:
    """``_lambdadepdef.json``: Gitmoxi's Lambda deployment definition."""
    body = _model_schema(LambdaDepDefFile)
    for key, why in GITMOXI_IGNORED.items():
        body["properties"][key] = {
            "description": f"Ignored with a warning: {why}, not used for Lambda.",
            "deprecated": True,
        }
    return _document("lambdadepdef", "_lambdadepdef.json", body)


def lambdainput_schema() -> dict[str, Any]:
    """``_lambdainput.json``: template values."""
    return _document("lambdainput", "_lambdainput.json", _model_schema(LambdaInputFile))


DEFINITION_SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "lambdadef": lambdadef_schema,
    "lambdadepdef": lambdadepdef_schema,
    "lambdaeventsourcedef": lambdaeventsourcedef_schema,
    "lambdainput": lambdainput_schema,
}

__all__ = ["DEFINITION_SCHEMAS", "SCHEMA_ID", "summary"]
