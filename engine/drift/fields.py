"""What a deployment would change, field by field: the desired state glam deployed against
the one a plan would deploy. Pure. ``glam plan`` prints these instead of "definition
changed".

``changes(old, new)`` gives ``Difference(path, old value, new value)`` sorted by path:

    <member>[.<key>...]       a configuration member, AWS's default filled in where the
                              definition sets none (removing ``MemorySize`` shows 256 → 128)
    Code                      where the code is (ZipFile by its digest)
    tags.<key>                a tag
    settings.<field>          the deployment definition (alias, region, account, traffic...)
    event_sources             the event sources, when they differ

Environment values are masked as everywhere in drift (engine.drift.compare).
"""

from __future__ import annotations

import json
from typing import Any

from engine.definitions.normalize import (
    DEFAULTS,
    code_key,
    create_only_members,
    desired_configuration,
)
from engine.drift.compare import Difference, leaves
from engine.events.desired import DesiredFunction

CREATE_ONLY_HINT = (
    "put the deployed value back in the file, or give the function a new FunctionName (glam "
    "creates it; the old one is removed once its definition is deleted)"
)


def changes(old: DesiredFunction | None, new: DesiredFunction) -> tuple[Difference, ...]:
    """Every field ``new`` changes from ``old`` (module docstring); ``old`` None: nothing to
    compare with (a new function)."""
    if old is None:
        return ()
    found: list[Difference] = []
    before, after = desired_configuration(old.definition), desired_configuration(new.definition)
    for member in sorted(set(before) | set(after)):
        found += leaves(member, before.get(member), after.get(member))
    if code_key(old.definition) != code_key(new.definition):
        found.append(Difference("Code", _code(old), _code(new)))
    found += leaves("tags", _tags(old), _tags(new))
    found += leaves(
        "settings",
        old.settings.model_dump(mode="json", exclude_defaults=False),
        new.settings.model_dump(mode="json", exclude_defaults=False),
    )
    old_sources = old.event_sources.model_dump(mode="json")
    new_sources = new.event_sources.model_dump(mode="json")
    if old_sources != new_sources:
        found.append(Difference("event_sources", old_sources, new_sources))
    return tuple(sorted(found, key=lambda d: d.path))


def _code(desired: DesiredFunction) -> Any:
    code: Any = json.loads(code_key(desired.definition))
    return code


def _tags(desired: DesiredFunction) -> dict[str, str]:
    return {str(k): str(v) for k, v in (desired.definition.get("Tags") or {}).items()}


def create_only_changes(old: DesiredFunction, new: DesiredFunction) -> list[Difference]:
    """The members ``new`` changes that only CreateFunction sets (PackageType,
    TenancyConfig...): AWS cannot apply them to the function that exists."""
    found: list[Difference] = []
    for member in sorted(create_only_members()):
        default = DEFAULTS.get(member)
        before = old.definition.get(member, default)
        after = new.definition.get(member, default)
        if before != after:
            found.append(Difference(member, before, after))
    return found
