"""What a saga step reports, as frozen models: made by the runner from a port's answer,
recorded as a StepSucceeded's ``result``, and parsed back from it once, in ``evolve``.

The recorded JSON is the one glam has always written (``to_json``), so every log replays
as before. Parsing is lenient the way the log needs: unknown keys are ignored and missing
ones take their defaults, so results recorded by older versions (or written by hand in a
test) still read. Nothing here ever holds a function's configuration: it carries environment
values, which may be secrets.

    FunctionRead    GetFunction, CreateFunction, UpdateFunctionConfiguration/Code (or not found);
                    a read compared with the desired definition says which members differ
    AliasRead       GetAlias, CreateAlias, UpdateAlias (or not found)
    Published       PublishVersion; one entry of VersionsRead (ListVersionsByFunction)
    SourcesChanged  reconciling or detaching event sources
    Deleted         DeleteVersion, DeleteFunction
    AlreadyAbsent   a delete found its target gone (what a delete wants)
    Kept            a clean-up step gave up without harm, and why
    AlarmsRead      a wait that ended, with the alarm states it saw last
    Applied         a function-level attribute set (TagResource, code signing...)
    CodeHashed      the CodeSha256 an S3 code object would give (None: no such object)
    SigningRead     the function's code-signing configuration (None: it has none)
    HookAnswer      a traffic hook's answer, judged by the hook contract (engine.saga.hooks)
    InvocationsCounted  the invocations the new version served in a window (a traffic gate)
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.events.desired import HookPoint
from engine.events.function import HookStatus
from engine.ports import AliasInfo, FunctionInfo, SourceChange, VersionInfo
from engine.saga.steps import (
    StepName,
    is_alias_step,
    is_attribute_step,
    is_delete_step,
    is_function_step,
    is_hook_step,
    is_sources_step,
)


class Result(BaseModel):
    """Base of every step result: frozen, and lenient about keys it does not know."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_json(self) -> dict[str, Any]:
        """The JSON object a StepSucceeded records."""
        return self.model_dump(mode="json")


# FunctionRead's keys of a read compared with the desired definition: recorded only when set,
# so a read that was not compared records what it always recorded.
_COMPARED = ("image_uri", "differs", "create_only", "tags_set", "tags_removed")


class FunctionRead(Result):
    """One qualifier of a function ($LATEST or a version), or ``found=False``.

    A read compared with the desired definition (``from_info(info, against)``) also records
    which members differ (``differs``: names only, never values, which may be secrets), the
    create-only members that differ with their live value, and the tag keys to set and to
    remove; ``differs`` is None when the read was not compared."""

    found: bool = True
    name: str | None = None
    arn: str | None = None
    version: str | None = None
    state: str | None = None  # Pending | Active | Inactive | Failed
    last_update_status: str | None = None  # InProgress | Successful | Failed
    code_sha256: str | None = None
    revision_id: str | None = None
    description: str | None = None
    state_reason: str | None = None
    image_uri: str | None = None
    differs: tuple[str, ...] | None = None
    create_only: dict[str, str] = Field(default_factory=dict)
    tags_set: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()

    @classmethod
    def from_info(
        cls, info: FunctionInfo | None, against: Mapping[str, Any] | None = None
    ) -> FunctionRead:
        """Never ``info.configuration``: it holds environment values. With ``against`` (a
        desired CreateFunction request) the read is compared with it."""
        if info is None:
            return cls(found=False)
        compared: dict[str, Any] = {}
        if against is not None:
            # Imported here: only the runner compares, and the model loads on first use.
            from engine.definitions import normalize

            live = info.configuration
            compared["differs"] = normalize.differences(against, live)
            compared["create_only"] = {
                k: str(v) for k, v in normalize.create_only_differences(against, live).items()
            }
            if info.tags is not None:
                to_set, to_remove = normalize.tag_changes(against, info.tags)
                compared.update(tags_set=to_set, tags_removed=to_remove)
        return cls(
            name=info.name,
            arn=info.arn,
            version=info.version,
            state=info.state,
            last_update_status=info.last_update_status,
            code_sha256=info.code_sha256,
            revision_id=info.revision_id,
            description=info.description,
            state_reason=info.state_reason,
            image_uri=info.image_uri or None,
            **compared,
        )

    def to_json(self) -> dict[str, Any]:
        if not self.found:
            return {"found": False}
        recorded = super().to_json()
        for key in _COMPARED:
            if not recorded.get(key) and (key != "differs" or recorded.get(key) is None):
                recorded.pop(key, None)
        return recorded


class AliasRead(Result):
    """An alias as AWS answered it, or ``found=False``."""

    found: bool = True
    name: str | None = None
    function_version: str | None = None
    routing: dict[str, float] = Field(default_factory=dict)  # AdditionalVersionWeights
    revision_id: str | None = None
    arn: str | None = None

    @classmethod
    def from_info(cls, info: AliasInfo | None) -> AliasRead:
        if info is None:
            return cls(found=False)
        return cls(
            name=info.name,
            function_version=info.function_version,
            routing={str(k): float(v) for k, v in info.routing.items()},
            revision_id=info.revision_id,
            arn=info.arn,
        )

    def to_json(self) -> dict[str, Any]:
        return super().to_json() if self.found else {"found": False}


class Published(Result):
    """A published version: what PublishVersion answers, and one entry of a listing."""

    version: str
    code_sha256: str = ""
    description: str = ""
    revision_id: str = ""

    @classmethod
    def from_info(cls, info: VersionInfo) -> Published:
        return cls(
            version=info.version,
            code_sha256=info.code_sha256,
            description=info.description,
            revision_id=info.revision_id,
        )


class VersionsRead(Result):
    """Every published version of a function (the read settling a publish or a delete)."""

    versions: tuple[Published, ...] = ()

    @classmethod
    def from_infos(cls, infos: Sequence[VersionInfo]) -> VersionsRead:
        return cls(versions=tuple(Published.from_info(v) for v in infos))


class ChangedSource(Result):
    """One event source attached, updated, detached, adopted, or found unchanged."""

    kind: str  # mapping | elb | apigateway
    change: str  # attached | updated | detached | adopted | unchanged
    source_id: str
    details: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_change(cls, change: SourceChange) -> ChangedSource:
        # Details come from AWS answers: anything not JSON (a datetime) is recorded as text.
        details = json.loads(json.dumps(dict(change.details), default=str))
        return cls(
            kind=change.kind, change=change.change, source_id=change.source_id, details=details
        )


class SourcesChanged(Result):
    """What reconciling (or detaching) the event sources changed."""

    changes: tuple[ChangedSource, ...] = ()

    @classmethod
    def from_changes(cls, changes: Sequence[SourceChange]) -> SourcesChanged:
        return cls(changes=tuple(ChangedSource.from_change(c) for c in changes))


class Deleted(Result):
    """A delete AWS carried out."""


class AlreadyAbsent(Result):
    """A delete whose target was already gone: after an ambiguous delete, or a retry."""

    already_absent: Literal[True] = True


class Kept(Result):
    """A clean-up step (deleting an old or failed version, putting event sources back) that
    failed for good and was given up: what it would have removed is kept, ``reason`` says
    why. Harmless, and it must not undo a finished shift."""

    reason: str

    @classmethod
    def parse(cls, raw: Mapping[str, Any]) -> Kept:
        return cls(reason=str(raw["kept"]))

    def to_json(self) -> dict[str, Any]:
        return {"kept": self.reason}


class AlarmsRead(Result):
    """A wait that ended, with the last state seen of each alarm it watched."""

    alarms: dict[str, str] = Field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return super().to_json() if self.alarms else {}


class Applied(Result):
    """A function-level attribute set with its own API (tags, code signing)."""


class CodeHashed(Result):
    """The CodeSha256 an S3 code object would give a function; None when it cannot be known
    (no such object, or no S3 access)."""

    code_sha256: str | None = None


class SigningRead(Result):
    """The function's code-signing configuration; None when it has none."""

    arn: str | None = None


class HookAnswer(Result):
    """What a traffic hook answered: ``status`` by the hook contract (engine.saga.hooks),
    ``body`` the start of its answer (never more than HOOK_BODY_LIMIT characters), and how
    long it took."""

    point: HookPoint
    function: str
    status: HookStatus
    body: str = ""
    duration_ms: int = 0
    function_error: str | None = None
    reason: str = ""  # why a status other than "succeeded"


class InvocationsCounted(Result):
    """A traffic gate's read (engine.saga.gate): the invocations ``version`` served through
    the alias from ``since`` to ``until`` (CloudWatch ``Invocations``, dimension
    ``ExecutedVersion``, at a minute's resolution)."""

    version: str
    invocations: int
    since: datetime
    until: datetime


class Requested(Result):
    """What a write-ahead intent (StepStarted.request) recorded of the call it announced:
    the version and routing an alias write or a delete asked for; of a publish, the highest
    version known before it and the CodeSha256 it expects (``description``: the marker an
    earlier glam published its versions with)."""

    version: str | None = None
    routing: dict[str, float] | None = None
    known_version: int | None = None
    code_sha256: str | None = None
    description: str | None = None


# What the runner answers a call with.
CallResult = (
    FunctionRead
    | AliasRead
    | Published
    | VersionsRead
    | SourcesChanged
    | Deleted
    | Applied
    | CodeHashed
    | SigningRead
    | HookAnswer
    | InvocationsCounted
)
# What a StepSucceeded records.
StepResult = (
    FunctionRead
    | AliasRead
    | Published
    | SourcesChanged
    | Deleted
    | AlreadyAbsent
    | Kept
    | AlarmsRead
    | Applied
    | CodeHashed
    | SigningRead
    | HookAnswer
    | InvocationsCounted
)


def parse_result(name: StepName, raw: Mapping[str, Any]) -> StepResult | None:
    """The model of what step ``name`` reported as ``raw``; None for a step this glam does
    not know (its result is left as it was recorded)."""
    step = name.step
    if name.is_wait:
        return AlarmsRead.model_validate(raw)
    if step == "settle" or is_function_step(step):
        return FunctionRead.model_validate(raw)
    if is_alias_step(step):
        return AliasRead.model_validate(raw)
    if step == "publish":
        return Published.model_validate(raw)
    if raw.get("kept") and (is_delete_step(step) or is_sources_step(step)):
        return Kept.parse(raw)
    if is_delete_step(step):
        return AlreadyAbsent() if raw.get("already_absent") else Deleted()
    if is_sources_step(step):
        return SourcesChanged.model_validate(raw)
    if is_attribute_step(step):
        return Applied.model_validate(raw)
    if step == "hash_code":
        return CodeHashed.model_validate(raw)
    if step == "inspect_signing":
        return SigningRead.model_validate(raw)
    if is_hook_step(step):
        return HookAnswer.model_validate(raw)
    if step == "gate":
        return InvocationsCounted.model_validate(raw)
    return None
