"""``_lambdaeventsourcedef.json`` -> ``EventSources``.

Push sources (ALB target groups, API Gateway v2 routes) and pull mappings. A mapping whose
``FunctionName`` is unqualified is qualified with the alias (``name:alias``) so that pull
traffic follows the alias through blue/green shifts rather than hitting ``$LATEST``.
"""

from __future__ import annotations

import difflib
from typing import Any

from engine.errors import DefinitionError
from engine.events.desired import EventSources, PushSource
from engine.sources_plan import PUSH_KINDS, mapping_key


def parse_event_sources(raw: Any, function_name: str, alias: str, file: str) -> EventSources:
    """Validate an event source definition for ``function_name`` deployed behind ``alias``."""
    if not isinstance(raw, dict):
        raise DefinitionError(
            "the event source definition must be a JSON object",
            file=file,
            hint='use {"PushEventSources": [...], "PullEventSources": {...}}',
        )
    _known(raw, ("PushEventSources", "PullEventSources"), "", file)
    push_raw = raw.get("PushEventSources", [])
    if isinstance(push_raw, dict):
        push_raw = [push_raw]
    if not isinstance(push_raw, list):
        raise DefinitionError("PushEventSources must be a list", file=file, hint="use [ ... ]")
    push = tuple(_push(item, i, file) for i, item in enumerate(push_raw))

    pull = raw.get("PullEventSources", {})
    if not isinstance(pull, dict):
        raise DefinitionError(
            "PullEventSources must be an object", file=file, hint='use {"EventSourceMapping": ...}'
        )
    _known(pull, ("EventSourceMapping",), "PullEventSources", file)
    mappings_raw = pull.get("EventSourceMapping", [])
    if isinstance(mappings_raw, dict):
        mappings_raw = [mappings_raw]
    if not isinstance(mappings_raw, list) or not all(isinstance(m, dict) for m in mappings_raw):
        raise DefinitionError(
            "EventSourceMapping must be an object or a list of objects",
            file=file,
            hint="see CreateEventSourceMapping",
        )
    mappings = tuple(_qualify(dict(m), function_name, alias) for m in mappings_raw)
    _one_mapping_per_source(mappings, file)
    return EventSources(push=push, mappings=mappings)


def _one_mapping_per_source(mappings: tuple[dict[str, Any], ...], file: str) -> None:
    # AWS allows one mapping of a source per qualified function; two would make the
    # reconciler's plan ambiguous. Rejecting here keeps the rest of the commit deployable.
    seen: set[str] = set()
    for index, mapping in enumerate(mappings):
        where = f"EventSourceMapping[{index}]"
        try:
            key = mapping_key(mapping)
        except ValueError as exc:
            raise DefinitionError(
                f"{where}: {exc}", file=file, hint="add EventSourceArn (or SelfManagedEventSource)"
            ) from None
        if key in seen:
            raise DefinitionError(
                f"{where} maps source {key} a second time",
                file=file,
                hint="keep one mapping per source and merge their settings",
            )
        seen.add(key)


def _push(item: Any, index: int, file: str) -> PushSource:
    where = f"PushEventSources[{index}]"
    if not isinstance(item, dict):
        raise DefinitionError(f"{where} must be an object", file=file, hint="use { ... }")
    kind = next((k for k in PUSH_KINDS.values() if k.service == item.get("Service")), None)
    if kind is None:
        services = " or ".join(repr(service) for service in PUSH_KINDS)
        raise DefinitionError(f"{where}.Service must be {services}", file=file, hint="fix Service")
    _known(item, ("Service", *kind.fields), where, file)
    for key, value in item.items():
        if not isinstance(value, str) or not value:
            raise DefinitionError(
                f"{where}.{key} must be a non-empty string", file=file, hint="fix it"
            )
    for key in kind.required:
        if key not in item:
            raise DefinitionError(f"{where} needs {key}", file=file, hint="add it")
    values: dict[str, str] = {}
    for key, name in kind.fields.items():  # the preferred spelling of a field comes first
        if key in item:
            values.setdefault(name, item[key])
    return PushSource.model_validate({"service": kind.service, **values})


def _qualify(mapping: dict[str, Any], function_name: str, alias: str) -> dict[str, Any]:
    name = mapping.get("FunctionName", function_name)
    if isinstance(name, str):
        # arn:aws:lambda:region:account:function:name has 6 colons; one more is a qualifier.
        unqualified = name.count(":") == 6 if name.startswith("arn:") else ":" not in name
        if unqualified:
            name = f"{name}:{alias}"
    mapping["FunctionName"] = name
    return mapping


def _known(obj: dict[str, Any], known: tuple[str, ...], where: str, file: str) -> None:
    for key in obj:
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            name = f"{where}.{key}" if where else key
            raise DefinitionError(
                f"unknown key {name!r}",
                file=file,
                hint=f"did you mean {near[0]!r}?" if near else f"known keys: {', '.join(known)}",
            )
