"""The names of the saga's steps: the one vocabulary the saga, its runner and its events share.

A step is named in the log by a short text. Three spellings exist, and only ``StepName``
reads or writes them:

    <step>              a call the saga made: ``publish``, ``shift``, ``settle``, ...
    wait:<purpose>      a durable wait that ended: ``wait:bake``, ``wait:readiness``, ...
    resolve:<step>      the read settling a dangling write-ahead intent: ``resolve:publish``

Every phase of the saga that makes a call is logged under the phase's own name, so one
``Literal`` member is both the phase and its step. The phases are grouped by what their call
reports (engine.saga.results): a function read, an alias read, a published version, a delete,
a change of event sources, a function-level attribute set, a lookup, a hook's answer, a traffic
gate's count. Adding a
step means adding it to its group here; mypy then points at every ``match`` that has to learn it.

Pure: no imports from the rest of glam, so the event models can use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard, get_args

# Phases whose call answers with the function (GetFunction, CreateFunction, Update*):
# ``inspect_stable`` reads the version the alias serves (GetFunction with a qualifier).
FunctionStep = Literal[
    "inspect_function",
    "inspect_stable",
    "create_function",
    "wait_active",
    "update_config",
    "wait_config",
    "update_code",
    "wait_code",
    "readiness",
]
# Phases whose call answers with the alias (GetAlias, CreateAlias, UpdateAlias);
# ``reset_alias`` puts an alias split outside glam back on its own version alone.
AliasStep = Literal[
    "inspect_alias",
    "create_alias",
    "reset_alias",
    "shift",
    "promote",
    "verify_old",
    "rollback_alias",
    "rollback_verify",
]
# Phases that delete a version, an alias or the function.
DeleteStep = Literal["delete_old", "rollback_delete_new", "delete_function", "delete_alias"]
# Phases that wire or unwire event sources (``detach_old_alias``: from the alias a deployment
# moves away from).
SourcesStep = Literal["sources", "rollback_sources", "detach_sources", "detach_old_alias"]
# Phases that set a function-level attribute with its own API (not versioned).
AttributeStep = Literal["tag", "untag", "put_signing", "delete_signing"]
# Reads that are neither a function nor an alias: the CodeSha256 of an S3 code object, the
# function's code-signing configuration.
LookupStep = Literal["hash_code", "inspect_signing"]

# Phases that invoke a traffic hook (engine.saga.hooks): before the first weight moves,
# after the promote.
HookStep = Literal["hook_before", "hook_after"]

# The read of a traffic gate (engine.saga.gate): how many invocations the new version served.
GateStep = Literal["gate"]

# Every phase that makes one call, logged under its own name.
PhaseStep = Literal[
    FunctionStep,
    AliasStep,
    "publish",
    DeleteStep,
    SourcesStep,
    AttributeStep,
    LookupStep,
    HookStep,
    GateStep,
]
# Every step a call can be logged as: the phases' calls, and ``settle`` (reading the function
# until an update in progress has finished, after a conflict).
Step = Literal[PhaseStep, "settle"]
# The saga's phases: the ones that call, the waits (the bake after each step, the alarm read
# before the first one) and the end.
Phase = Literal[PhaseStep, "alarm_check", "bake", "finish"]

# Why the saga waits: the bake after a shift, a readiness re-check, a poll of an update in
# progress, the backoff before repeating a failed call, the one alarm read before an
# operator's promote, the pause between reads settling a dangling intent, and the one alarm
# read before the first weight moves; an operator's hold (alarms watched, no timer: it is
# never recorded) and the one alarm read before an operator's one-step promote; a release
# member waiting for the other members to reach the same point (engine.saga.release).
WaitPurpose = Literal[
    "bake",
    "readiness",
    "poll",
    "backoff",
    "operator_promote",
    "resolve",
    "alarms",
    "hold",
    "operator_step",
    "gate",
    "release",
]

STEPS: frozenset[str] = frozenset(get_args(Step))
WAIT_PURPOSES: frozenset[str] = frozenset(get_args(WaitPurpose))
_FUNCTION_STEPS: frozenset[str] = frozenset(get_args(FunctionStep))
_ALIAS_STEPS: frozenset[str] = frozenset(get_args(AliasStep))
_DELETE_STEPS: frozenset[str] = frozenset(get_args(DeleteStep))
_SOURCES_STEPS: frozenset[str] = frozenset(get_args(SourcesStep))
_ATTRIBUTE_STEPS: frozenset[str] = frozenset(get_args(AttributeStep))
_LOOKUP_STEPS: frozenset[str] = frozenset(get_args(LookupStep))
_HOOK_STEPS: frozenset[str] = frozenset(get_args(HookStep))


def is_step(text: object) -> TypeGuard[Step]:
    return text in STEPS


def is_wait_purpose(text: object) -> TypeGuard[WaitPurpose]:
    return text in WAIT_PURPOSES


def is_function_step(step: object) -> TypeGuard[FunctionStep]:
    return step in _FUNCTION_STEPS


def is_alias_step(step: object) -> TypeGuard[AliasStep]:
    return step in _ALIAS_STEPS


def is_delete_step(step: object) -> TypeGuard[DeleteStep]:
    return step in _DELETE_STEPS


def is_sources_step(step: object) -> TypeGuard[SourcesStep]:
    return step in _SOURCES_STEPS


def is_attribute_step(step: object) -> TypeGuard[AttributeStep]:
    return step in _ATTRIBUTE_STEPS


def is_lookup_step(step: object) -> TypeGuard[LookupStep]:
    return step in _LOOKUP_STEPS


def is_hook_step(step: object) -> TypeGuard[HookStep]:
    return step in _HOOK_STEPS


@dataclass(frozen=True, slots=True)
class StepName:
    """A step as the log names it; exactly one field is set.

    ``StepName("publish")`` is a call, ``StepName.wait("bake")`` a wait that ended,
    ``StepName.resolve("publish")`` the read settling a dangling ``publish``. ``unknown``
    keeps a name this glam does not know (written by another version, or by hand) verbatim:
    such a log still loads, writes back the same text, and the saga passes over the step.
    """

    step: Step | None = None
    purpose: WaitPurpose | None = None
    resolves: Step | None = None
    unknown: str | None = None

    def __post_init__(self) -> None:
        parts = (self.step, self.purpose, self.resolves, self.unknown)
        if sum(part is not None for part in parts) != 1:
            raise ValueError(f"a step name has exactly one part, got {parts}")

    @classmethod
    def wait(cls, purpose: str) -> StepName:
        """The name a wait for ``purpose`` ends under (a purpose this glam does not know, read
        from a timer another version recorded, stays as it was written)."""
        if is_wait_purpose(purpose):
            return cls(purpose=purpose)
        return cls(unknown=f"wait:{purpose}")

    @classmethod
    def resolve(cls, step: Step) -> StepName:
        return cls(resolves=step)

    @classmethod
    def parse(cls, text: str) -> StepName:
        """The name stored as ``text``; total: ``str(StepName.parse(t)) == t`` for any text."""
        head, colon, tail = text.partition(":")
        if not colon and is_step(text):
            return cls(step=text)
        if colon and head == "wait" and is_wait_purpose(tail):
            return cls(purpose=tail)
        if colon and head == "resolve" and is_step(tail):
            return cls(resolves=tail)
        return cls(unknown=text)

    @classmethod
    def coerce(cls, value: object) -> StepName:
        """A step name from what an event is built or loaded with: a StepName or its text."""
        if isinstance(value, StepName):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        raise ValueError(f"a step name is text, not {type(value).__name__}")

    @property
    def is_wait(self) -> bool:
        """Whether this names the end of a wait, of a purpose this glam knows or not (a timer
        another version recorded)."""
        return str(self).startswith("wait:")

    @property
    def is_resolve(self) -> bool:
        """Whether this names a read settling a dangling intent, of a step known or not."""
        return str(self).startswith("resolve:")

    def __str__(self) -> str:
        if self.purpose is not None:
            return f"wait:{self.purpose}"
        if self.resolves is not None:
            return f"resolve:{self.resolves}"
        return self.step or self.unknown or ""
