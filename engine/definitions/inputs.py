"""``_lambdainput.json``: the substitution values of a function's templates.

Inline keys plus ``ref`` files read from the same commit. Ref files are applied in order and
the inline keys last, so they win. A ref path must name a regular file inside the repository:
absolute paths and ``..`` are refused here; symlinks and submodule entries are refused by the
reader, which sees the tree's file modes.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import MutableMapping
from typing import Any, Protocol

from engine.definitions.files import REF_TYPES, RefFile, default, keys
from engine.definitions.strict_json import load_json
from engine.errors import DefinitionError


class RepoFiles(Protocol):
    """Files of one commit, read by tree path."""

    def read_file(self, path: str, *, referenced_from: str) -> bytes:
        """The blob at ``path``; ``DefinitionError`` (naming ``referenced_from``) when it is
        missing, a symlink, a submodule or a folder."""
        ...


def check_ref_path(path: Any, file: str) -> str:
    """``path`` normalised, or ``DefinitionError`` if it could leave the repository."""
    if not isinstance(path, str) or not path.strip():
        raise DefinitionError(
            "ref.file entries must be non-empty strings",
            file=file,
            hint="name a file by its path from the repository root",
        )
    if path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":") or "\\" in path:
        raise DefinitionError(
            f"ref file {path!r} is an absolute path",
            file=file,
            hint="name it relative to the repository root",
        )
    parts = path.split("/")
    if ".." in parts:
        raise DefinitionError(
            f"ref file {path!r} leaves the repository through '..'",
            file=file,
            hint="name it relative to the repository root",
        )
    return posixpath.normpath(path)


def load_values(
    raw: Any,
    file: str,
    repo: RepoFiles,
    cache: MutableMapping[tuple[str, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The values an input file provides: ref files in order, inline keys last."""
    if not isinstance(raw, dict):
        raise DefinitionError(
            "an input file must hold one JSON object",
            file=file,
            hint='use {"name": "value", "ref": {...}}',
        )
    values: dict[str, Any] = {}
    ref = raw.get("ref")
    if ref is not None:
        if not isinstance(ref, dict):
            raise DefinitionError(
                "ref must be an object", file=file, hint='use {"file": [...], "type": "TERRAFORM"}'
            )
        unknown = set(ref) - set(keys(RefFile))
        if unknown:
            raise DefinitionError(
                f"unknown key ref.{sorted(unknown)[0]}",
                file=file,
                hint="ref takes 'file' and 'type'",
            )
        kind = ref.get("type", default(RefFile, "type"))
        if kind not in REF_TYPES:
            raise DefinitionError(
                f"ref.type must be one of {', '.join(REF_TYPES)}",
                file=file,
                hint="JSON is the default",
            )
        files = ref.get("file", [])
        if isinstance(files, str):
            files = [files]
        if not isinstance(files, list):
            raise DefinitionError(
                "ref.file must be a path or a list of paths",
                file=file,
                hint="name files by their path from the repository root",
            )
        for entry in files:
            path = check_ref_path(entry, file)
            key = (path, kind)
            loaded = cache.get(key) if cache is not None else None
            if loaded is None:
                loaded = _ref_values(repo.read_file(path, referenced_from=file), path, kind)
                if cache is not None:
                    cache[key] = loaded
            values.update(loaded)
    values.update({k: v for k, v in raw.items() if k != "ref"})
    return values


def _ref_values(data: bytes, path: str, kind: str) -> dict[str, Any]:
    doc = load_json(data, path)
    if not isinstance(doc, dict):
        raise DefinitionError(
            f"{kind} ref file must hold one JSON object", file=path, hint="check the file's format"
        )
    if kind == "JSON":
        return doc
    if kind == "TERRAFORM":
        # `terraform output -json`: {"name": {"sensitive": false, "type": ..., "value": ...}}
        out: dict[str, Any] = {}
        for name, item in doc.items():
            if not isinstance(item, dict) or "value" not in item:
                raise DefinitionError(
                    f"terraform output {name!r} has no 'value'",
                    file=path,
                    hint="use the output of `terraform output -json`",
                )
            out[name] = item["value"]
        return out
    # CDK outputs file: {"Stack": {"Output": "value"}}. Each stack is a nested object (so
    # `Stack.Output` works in a template) and each output is also available by its own name.
    cdk: dict[str, Any] = {}
    flat: dict[str, Any] = {}
    for stack, outputs in doc.items():
        if not isinstance(outputs, dict):
            raise DefinitionError(
                f"CDK stack {stack!r} must map output names to values",
                file=path,
                hint="use the file of `cdk deploy --outputs-file`",
            )
        decoded = {name: _maybe_json(value) for name, value in outputs.items()}
        cdk[stack] = decoded
        flat.update(decoded)
    return {**flat, **cdk}


def _maybe_json(value: Any) -> Any:
    """CDK outputs are strings; one that holds a JSON object or list is decoded."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
