"""From the files of one function prefix to a validated, rendered ``DesiredFunction``.

Files belong together by *path prefix* (same folder, same name before the suffix) and only the
four suffixes below count, at the very end of the name: ``x_lambdadef.json.sample`` is ignored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from typing import Any, Literal

from engine.definitions.eventsources import parse_event_sources
from engine.definitions.inputs import RepoFiles, load_values
from engine.definitions.lambdadef import validate_create_function
from engine.definitions.limits import RenderLimits
from engine.definitions.names import parse_function_name
from engine.definitions.settings import parse_settings
from engine.definitions.strict_json import decode_utf8, load_json, parse_json_text
from engine.definitions.templates import DEFAULT_LIMITS, render_json_template
from engine.errors import DefinitionError
from engine.events.desired import DesiredFunction, EventSources

FileKind = Literal["def", "eventsource", "depdef", "input"]

SUFFIXES: dict[str, FileKind] = {
    "_lambdadef.json": "def",
    "_lambdaeventsourcedef.json": "eventsource",
    "_lambdadepdef.json": "depdef",
    "_lambdainput.json": "input",
}

# Files whose change asks for a deployment; a depdef change only records settings.
DEPLOY_KINDS: frozenset[FileKind] = frozenset({"def", "eventsource", "input"})


def split_path(path: str) -> tuple[str, FileKind] | None:
    """``(prefix, kind)`` for a Lambda definition file, ``None`` for any other path."""
    for suffix, kind in SUFFIXES.items():
        if path.endswith(suffix) and len(path) > len(suffix):
            return path[: -len(suffix)], kind
    return None


def is_lambda_file(path: str) -> bool:
    return split_path(path) is not None


def group_files(paths: Iterable[str]) -> dict[str, dict[FileKind, str]]:
    """Lambda files by prefix: ``{"apps/orders/orders": {"def": ".../orders_lambdadef.json"}}``."""
    groups: dict[str, dict[FileKind, str]] = {}
    for path in paths:
        split = split_path(path)
        if split is not None:
            groups.setdefault(split[0], {})[split[1]] = path
    return groups


def content_hash(definition: Mapping[str, Any], sources: EventSources, alias: str) -> str:
    """sha256 over what decides what runs: the CreateFunction request (code, configuration,
    environment, layers...), the event sources and the alias. Deployment pacing (percent,
    waits, alarms) is deliberately outside: changing it must not publish a version."""
    payload = {
        "definition": {k: v for k, v in definition.items() if k != "Publish"},
        "event_sources": sources.model_dump(mode="json"),
        "alias": alias,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def function_name_of(definition: Mapping[str, Any]) -> str:
    """The plain function name, also when ``FunctionName`` is an ARN or a partial ARN."""
    return parse_function_name(definition.get("FunctionName"), "").name


def build_desired(
    prefix: str,
    files: Mapping[FileKind, str],
    repo: RepoFiles,
    *,
    ref_cache: MutableMapping[tuple[str, str], dict[str, Any]] | None = None,
    rendered: dict[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
    warnings: list[tuple[str, str]] | None = None,
    on_file: Callable[[str], None] | None = None,
) -> DesiredFunction:
    """Read, render and validate one function prefix. Raises ``DefinitionError``.

    ``rendered``, when given, receives each file's rendered text by path; ``warnings`` receives
    ``(file, message)`` for what is accepted but ignored; ``on_file(path)`` is called before
    each file is read (the render worker times each file from there).
    """
    def_path = files.get("def")
    if def_path is None:
        raise DefinitionError(f"{prefix}: no _lambdadef.json", hint="add the function definition")
    values: dict[str, Any] = {}
    if "input" in files:
        path = files["input"]
        if on_file is not None:
            on_file(path)
        raw = load_json(repo.read_file(path, referenced_from=path), path)
        values = load_values(raw, path, repo, ref_cache)

    def render(path: str) -> Any:
        if on_file is not None:
            on_file(path)
        text = decode_utf8(repo.read_file(path, referenced_from=path), path)
        out = render_json_template(text, values, path, limits)
        if rendered is not None:
            rendered[path] = out
        return parse_json_text(out, path)

    definition = validate_create_function(render(def_path), def_path)
    function = parse_function_name(definition.get("FunctionName"), def_path)
    if "depdef" not in files:
        raise DefinitionError(
            "no _lambdadepdef.json next to the function definition",
            file=def_path,
            hint=f"add {prefix}_lambdadepdef.json with at least an alias",
        )
    notes: list[str] = []
    settings = parse_settings(render(files["depdef"]), files["depdef"], notes)
    if warnings is not None:
        warnings.extend((files["depdef"], note) for note in notes)
    # An ARN in FunctionName names the region and account: they must be the deployment
    # definition's, or become them when it names none.
    for field, named in (("region", function.region), ("account", function.account)):
        chosen = getattr(settings, field)
        if named is None:
            continue
        if chosen is None:
            settings = settings.model_copy(update={field: named})
        elif chosen != named:
            raise DefinitionError(
                f"FunctionName is in {field} {named} but {files['depdef']} deploys to {chosen}",
                file=def_path,
                hint="make them agree, or give FunctionName as the plain function name",
            )
    name = function.name
    sources = EventSources()
    if "eventsource" in files:
        sources = parse_event_sources(
            render(files["eventsource"]), name, settings.alias, files["eventsource"]
        )
    return DesiredFunction(
        prefix=prefix,
        function_name=name,
        definition=definition,
        event_sources=sources,
        settings=settings,
        content_hash=content_hash(definition, sources, settings.alias),
    )
