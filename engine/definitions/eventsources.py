"""``_lambdaeventsourcedef.json`` -> ``EventSources``.

Push sources (ALB target groups, API Gateway v2 routes) and pull mappings. A mapping whose
``FunctionName`` is unqualified is qualified with the alias (``name:alias``) so that pull
traffic follows the alias through blue/green shifts rather than hitting ``$LATEST``.

A mapping is checked at plan time as AWS would check it, so that a typo is an invalid
definition of that function (the file named, with the fix) instead of a create that fails at
deploy time:

    every field      botocore's ``CreateEventSourceMapping`` input shape: known keys, JSON
                     types (``BatchSize`` an integer, ``EventSourceArn`` a string)
    EventSourceArn   the model's ARN pattern
    StartingPosition the model's enumeration (a short list AWS has kept for years; other
                     enumerations and the limits are left to AWS, as for ``_lambdadef.json``)
    FunctionName     the function of this definition: its name or ARN, qualified by nothing
                     or by its alias
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import Any

from engine.definitions.lambdadef import check_shape, lambda_model
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
    mappings = tuple(
        _mapping(m, f"EventSourceMapping[{i}]", function_name, alias, file)
        for i, m in enumerate(mappings_raw)
    )
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


_API = "CreateEventSourceMapping"


@lru_cache(maxsize=1)
def _mapping_shape() -> Any:
    return lambda_model().operation_model(_API).input_shape


def _mapping(
    raw: dict[str, Any], where: str, function_name: str, alias: str, file: str
) -> dict[str, Any]:
    """One mapping checked (see the module docstring) and qualified."""
    shape = _mapping_shape()
    if "FunctionName" in raw:
        _own_function(raw["FunctionName"], f"{where}.FunctionName", function_name, alias, file)
    mapping = _qualify(dict(raw), function_name, alias)
    check_shape(mapping, shape, where, file, _API)
    arn = mapping.get("EventSourceArn")
    pattern = shape.members["EventSourceArn"].metadata.get("pattern")
    if isinstance(arn, str) and pattern and not re.fullmatch(pattern, arn):
        raise DefinitionError(
            f"{where}.EventSourceArn {_show(arn)} is not an ARN",
            file=file,
            hint="give the source's ARN, e.g. arn:aws:sqs:us-east-1:123456789012:my-queue",
        )
    position = mapping.get("StartingPosition")
    allowed = list(shape.members["StartingPosition"].enum or ())
    if position is not None and allowed and position not in allowed:
        near = difflib.get_close_matches(str(position).upper(), allowed, n=1, cutoff=0.6)
        raise DefinitionError(
            f"{where}.StartingPosition {_show(str(position))} is not one AWS knows",
            file=file,
            hint=(f"did you mean {near[0]!r}? " if near else "") + f"use {' or '.join(allowed)}",
        )
    return mapping


def _own_function(value: Any, where: str, function_name: str, alias: str, file: str) -> None:
    """A mapping's ``FunctionName`` names the function of its definition, through its alias:
    a mapping of another function would take that one's events from this file, and one of
    another qualifier would not follow the blue/green shifts."""
    own = f"leave FunctionName out (glam maps {function_name}:{alias}) or write {function_name!r}"
    if not isinstance(value, str):
        raise DefinitionError(f"{where} must be a string", file=file, hint=own)
    parts = value.split(":")
    if value.startswith("arn:"):
        name, qualifier = parts[6:7], parts[7:]
        well_formed = len(parts) in (7, 8) and parts[2] == "lambda" and parts[5] == "function"
    elif "function" in parts:  # 123456789012:function:name[:qualifier]
        at = parts.index("function")
        name, qualifier = parts[at + 1 : at + 2], parts[at + 2 :]
        well_formed = at == 1 and len(parts) in (3, 4)
    else:  # name[:qualifier]
        name, qualifier = parts[:1], parts[1:]
        well_formed = len(parts) in (1, 2)
    if not well_formed or not name:
        raise DefinitionError(
            f"{where} {_show(value)} is not a function name or ARN", file=file, hint=own
        )
    if name[0] != function_name:
        raise DefinitionError(
            f"{where} {_show(value)} names function {name[0]!r}, not {function_name!r} that "
            "this definition deploys",
            file=file,
            hint=f"a mapping here invokes this function: {own}",
        )
    if qualifier and qualifier[0] != alias:
        raise DefinitionError(
            f"{where} {_show(value)} is qualified by {qualifier[0]!r}, not by the alias "
            f"{alias!r}: its events would not follow the traffic shifts",
            file=file,
            hint=own,
        )


def _show(value: str) -> str:
    return repr(value if len(value) <= 80 else value[:80] + "…")


def _qualify(mapping: dict[str, Any], function_name: str, alias: str) -> dict[str, Any]:
    name = mapping.get("FunctionName", function_name)
    if isinstance(name, str):
        # arn:aws:lambda:region:account:function:name has 6 colons, account:function:name 2;
        # one more is a qualifier.
        if name.startswith("arn:"):
            unqualified = name.count(":") == 6
        elif ":function:" in name:
            unqualified = name.count(":") == 2
        else:
            unqualified = ":" not in name
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
