"""docs/reference.md: every field of the four definition files, written from their schemas.

``glam schema --reference > docs/reference.md`` writes it; a test keeps the committed page equal
to this output, so the page says what the parsers do (the schemas come from the same models).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from engine.definitions.file_schemas import DEFINITION_SCHEMAS

_EXAMPLES = 6

_INTRO = """\
# Definition files: field reference

Every field of the four files glam reads for a function `<prefix>`, with its type, default,
range and legacy names. This page is generated from the models glam validates the files with
(`glam schema --reference > docs/reference.md`; a test checks it is current), as are the JSON
Schemas in `docs/schema/` (`glam schema lambdadef`, ...).

A path such as `trafficShiftingConfig.percent` names a key inside an object; `[]` marks the
items of a list; `<key>` any key of a map. *Legacy* keys are read for compatibility; prefer the
key they name. Values may come from templates (`{{ name }}`, rendered with the
`_lambdainput.json` values); the rules apply to the rendered file.

## Editors

Each schema validates a file as it is typed. In VS Code, map them in the repository's
`.vscode/settings.json` (copies written with `glam schema lambdadef > .glam/lambdadef.json`, or
the URLs of a glam checkout's `docs/schema/`):

```json
{
  "json.schemas": [
    {"fileMatch": ["*_lambdadef.json"], "url": "./.glam/lambdadef.json"},
    {"fileMatch": ["*_lambdadepdef.json"], "url": "./.glam/lambdadepdef.json"},
    {"fileMatch": ["*_lambdaeventsourcedef.json"], "url": "./.glam/lambdaeventsourcedef.json"},
    {"fileMatch": ["*_lambdainput.json"], "url": "./.glam/lambdainput.json"}
  ]
}
```

JetBrains IDEs take the same files under Settings > Languages & Frameworks > Schemas and DTDs >
JSON Schema Mappings; other editors through their JSON language server's `json.schemas`. In CI,
any JSON Schema 2020-12 validator (`check-jsonschema --schemafile docs/schema/lambdadef.json
apps/*/*_lambdadef.json`) gives the same verdicts on plain (untemplated) files; `glam plan`
remains the full check (AWS's names, regions and accounts, templates, references).
"""

_FILES = {
    "lambdadef": (
        "`<prefix>_lambdadef.json`",
        "The Lambda `CreateFunction` request, any member botocore's model knows; unknown keys "
        "and wrong JSON types are refused, enumerations are left to AWS (the values listed are "
        "those botocore knows). A member left out is compared with AWS's default, shown here "
        "(docs/desired-state.md says where each comes from).",
    ),
    "lambdadepdef": (
        "`<prefix>_lambdadepdef.json`",
        "How the function is deployed (Gitmoxi's format). Unknown keys are refused with the "
        "nearest known one; the keys Gitmoxi ignores for Lambda are accepted with a warning.",
    ),
    "lambdaeventsourcedef": (
        "`<prefix>_lambdaeventsourcedef.json`",
        "Push sources (allowed to invoke the alias) and pull mappings (event source mappings "
        "on the alias). A change to this file deploys the function again.",
    ),
    "lambdainput": (
        "`<prefix>_lambdainput.json`",
        "The values the function's templates see: every key but `ref` is a value. Ref files are "
        "read in order and the inline keys last, so they win.",
    ),
}


@dataclass(frozen=True, slots=True)
class Row:
    path: str
    type: str
    default: str
    allowed: str
    notes: str


def reference_text() -> str:
    """The whole page."""
    parts = [_INTRO]
    for name, (title, about) in _FILES.items():
        schema = DEFINITION_SCHEMAS[name]()
        parts.append(f"\n## {title}\n\n{about} Schema: `docs/schema/{name}.json`.\n\n")
        parts.append("| field | type | default | allowed | notes |\n|---|---|---|---|---|\n")
        for row in rows(schema):
            cells = (f"`{row.path}`", row.type, row.default, row.allowed, row.notes)
            parts.append("| " + " | ".join(_cell(c) for c in cells) + " |\n")
    return "".join(parts)


def rows(schema: dict[str, Any]) -> list[Row]:
    """One row per field of ``schema``, depth first, in the schema's order."""
    return list(_walk(schema, "", schema.get("$defs", {}), ()))


def _walk(
    node: dict[str, Any], path: str, defs: dict[str, Any], stack: tuple[str, ...]
) -> Iterator[Row]:
    node, ref = _resolve(node, defs)
    if ref in stack:
        yield _row(node, path, defs, required=False, note=f"as `{_last(path)}` above")
        return
    stack = (*stack, ref) if ref else stack
    if "oneOf" in node:
        for option in node["oneOf"]:
            option, _ = _resolve(option, defs)
            yield from _object(option, path, defs, stack)
        return
    objects = [_resolve(o, defs)[0] for o in node.get("anyOf", [node])]
    for option in objects:
        if option.get("type") == "array" and isinstance(option.get("items"), dict):
            yield from _walk(option["items"], f"{path}[]", defs, stack)
            return
        if option.get("type") == "object" and "properties" in option:
            yield from _object(option, path, defs, stack)
            return
        if option.get("type") == "object" and isinstance(option.get("additionalProperties"), dict):
            inner, _ = _resolve(option["additionalProperties"], defs)
            if inner.get("type") == "object" or "$ref" in option["additionalProperties"]:
                yield from _walk(option["additionalProperties"], f"{path}.<key>", defs, stack)
            return


def _object(
    node: dict[str, Any], path: str, defs: dict[str, Any], stack: tuple[str, ...]
) -> Iterator[Row]:
    required = set(node.get("required", ()))
    for key, member in node.get("properties", {}).items():
        here = f"{path}.{key}" if path else key
        yield _row(member, here, defs, required=key in required)
        yield from _walk(member, here, defs, stack)


def _row(
    node: dict[str, Any], path: str, defs: dict[str, Any], *, required: bool, note: str = ""
) -> Row:
    outer = node
    node, _ = _resolve(node, defs)
    merged = {**node, **{k: v for k, v in outer.items() if k != "$ref"}}
    notes = [merged.get("description", "")]
    if merged.get("deprecated") and not notes[0].startswith("Ignored"):
        notes.insert(0, "*Legacy.*")
    if note:
        notes.append(note)
    if "default" in merged:
        default = f"`{json.dumps(merged['default'])}`"
    else:
        default = "**required**" if required else "—"
    return Row(
        path, _type(merged, defs), default, _allowed(merged), " ".join(n for n in notes if n)
    )


def _type(node: dict[str, Any], defs: dict[str, Any]) -> str:
    if "const" in node:
        return "string"
    if "anyOf" in node:
        return " or ".join(_type(_resolve(o, defs)[0], defs) for o in node["anyOf"])
    if "oneOf" in node:
        return "object"
    kind = node.get("type", "any")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind == "array":
        return f"list of {_type(_resolve(node.get('items', {}), defs)[0], defs)}"
    if kind == "object" and isinstance(node.get("additionalProperties"), dict):
        inner = _type(_resolve(node["additionalProperties"], defs)[0], defs)
        return f"map of {inner}"
    return str(kind)


def _allowed(node: dict[str, Any]) -> str:
    parts = []
    if "const" in node:
        parts.append(f"`{node['const']}`")
    if "enum" in node:
        parts.append(", ".join(f"`{v}`" for v in node["enum"]))
    if "exclusiveMinimum" in node:
        parts.append(f"above {node['exclusiveMinimum']} to {node.get('maximum', '…')}")
    elif "minimum" in node or "maximum" in node:
        parts.append(f"{node.get('minimum', '…')} to {node.get('maximum', '…')}")
    if "minItems" in node or "maxItems" in node:
        parts.append(f"{node.get('minItems', 0)} to {node.get('maxItems', '…')} items")
    if "pattern" in node:
        parts.append(f"pattern `{node['pattern']}`")
    if node.get("minLength") == 1:
        parts.append("not empty")
    if "examples" in node:
        shown = ", ".join(f"`{v}`" for v in node["examples"][:_EXAMPLES])
        more = len(node["examples"]) - _EXAMPLES
        parts.append(f"e.g. {shown}" + (f" (and {more} more)" if more > 0 else ""))
    return "; ".join(parts)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> tuple[dict[str, Any], str]:
    ref = node.get("$ref", "")
    if not ref:
        return node, ""
    name = ref.rsplit("/", 1)[-1]
    resolved: dict[str, Any] = defs[name]
    return resolved, name


def _last(path: str) -> str:
    return path.rsplit(".", 1)[-1]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


__all__ = ["Row", "reference_text", "rows"]
