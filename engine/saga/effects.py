"""What the saga asks the runner to do (effects) and what the runner reports back (outcomes).

Effects are plain data: the runner executes them without knowing the saga.

    Call    one AWS operation (below), logged under ``step``. A mutation carries its
            write-ahead ``intent`` (a StepStarted) that must be durable before the call.
    Wait    a durable wait until ``until``, polling ``alarms`` every ``poll_seconds``; its
            ``intent`` (a TimerStarted) is recorded first unless the timer already is; a
            ``probe`` is synthetic traffic to send meanwhile.
    Record  events to append as they are: a decision that needs no I/O.
    Done    nothing left to do on this stream.

Each AWS operation the saga can ask for is its own frozen dataclass whose fields are the
arguments of one port method (engine.ports), so the runner's ``match`` over them is checked
by mypy against the port. Class attributes say what the saga and the failpoints need to know:
``method`` (the port method, as failpoints and messages name it), ``mutation`` (whether it
writes, and so needs a write-ahead intent), ``resolver`` (the read that settles an intent of
it left with no outcome; None when repeating it is harmless), ``omitted`` (arguments the
intent does not record: bulky, or holding environment values) and ``runner_only`` (fields the
runner uses and does not pass to the port: what a read is compared with, what a publish
intent records for the read that may settle it, a hook's deadline).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar, Self, get_args

from engine.events import Event
from engine.events.desired import EventSources, HookPoint
from engine.events.function import (
    FailureKind,
    Release,
    ReleaseStage,
    StepStarted,
    TimerStarted,
)
from engine.saga.results import CallResult
from engine.saga.steps import Step, StepName


@dataclass(frozen=True, slots=True)
class _Operation:
    """Base of every AWS operation the saga can ask for (see the module docstring)."""

    method: ClassVar[str]
    mutation: ClassVar[bool] = False
    resolver: ClassVar[type[Resolver] | None] = None
    omitted: ClassVar[frozenset[str]] = frozenset()
    runner_only: ClassVar[frozenset[str]] = frozenset()

    def summary(self) -> dict[str, Any]:
        """The arguments a write-ahead intent records (``StepStarted.request``)."""
        return {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if f.name not in self.omitted
        }

    def arguments(self) -> dict[str, Any]:
        """The port method's keyword arguments."""
        return {
            f.name: getattr(self, f.name) for f in fields(self) if f.name not in self.runner_only
        }


@dataclass(frozen=True, slots=True)
class LambdaRead(_Operation):
    """A read of the Lambda control plane."""

    name: str

    @classmethod
    def of(cls, name: str, alias: str) -> Self:
        """This read of function ``name`` (and of its ``alias``, where it reads one)."""
        return cls(name)


@dataclass(frozen=True, slots=True)
class LambdaWrite(_Operation):
    """A write to the Lambda control plane."""

    mutation: ClassVar[bool] = True


@dataclass(frozen=True, slots=True)
class SourcesWrite(_Operation):
    """A change to the event sources wired to a function's alias (idempotent)."""

    mutation: ClassVar[bool] = True
    function_name: str
    alias_arn: str


@dataclass(frozen=True, slots=True)
class CodeRead(_Operation):
    """A read of where a function's code lives (S3)."""


@dataclass(frozen=True, slots=True)
class MetricsRead(_Operation):
    """A read of CloudWatch metrics."""


@dataclass(frozen=True, slots=True)
class CountInvocations(MetricsRead):
    """The invocations ``version`` of function ``name`` served through ``alias`` from
    ``since`` to ``until`` (engine.ports.InvocationsApi)."""

    method: ClassVar[str] = "invocations"
    name: str
    alias: str
    version: str
    since: datetime
    until: datetime


@dataclass(frozen=True, slots=True)
class GetFunction(LambdaRead):
    """GetFunction of $LATEST or ``qualifier``; with ``against`` (the desired definition) the
    runner compares the answer with it and records which members differ."""

    method: ClassVar[str] = "get_function"
    runner_only: ClassVar[frozenset[str]] = frozenset({"against"})
    qualifier: str | None = None
    against: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class GetSigning(LambdaRead):
    method: ClassVar[str] = "code_signing_config"


@dataclass(frozen=True, slots=True)
class HashCode(CodeRead):
    """The CodeSha256 of an S3 code object (engine.ports.CodeObjects)."""

    method: ClassVar[str] = "code_sha256"
    bucket: str
    key: str
    version: str | None = None


@dataclass(frozen=True, slots=True)
class GetAlias(LambdaRead):
    method: ClassVar[str] = "get_alias"
    alias: str

    @classmethod
    def of(cls, name: str, alias: str) -> Self:
        return cls(name, alias)


@dataclass(frozen=True, slots=True)
class ListVersions(LambdaRead):
    method: ClassVar[str] = "list_versions"


@dataclass(frozen=True, slots=True)
class CreateFunction(LambdaWrite):
    method: ClassVar[str] = "create_function"
    resolver: ClassVar[type[Resolver] | None] = GetFunction
    omitted: ClassVar[frozenset[str]] = frozenset({"request"})
    request: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateConfig(LambdaWrite):
    method: ClassVar[str] = "update_function_configuration"
    omitted: ClassVar[frozenset[str]] = frozenset({"configuration"})
    name: str
    configuration: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateCode(LambdaWrite):
    method: ClassVar[str] = "update_function_code"
    omitted: ClassVar[frozenset[str]] = frozenset({"code"})
    name: str
    code: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PublishVersion(LambdaWrite):
    """Guarded by CodeSha256/RevisionId, with no Description (the version keeps the user's).
    The intent records ``known_version``, the highest version number known before it: the
    read that settles a lost answer adopts the version above it with ``code_sha256``."""

    method: ClassVar[str] = "publish_version"
    resolver: ClassVar[type[Resolver] | None] = ListVersions
    runner_only: ClassVar[frozenset[str]] = frozenset({"known_version"})
    name: str
    code_sha256: str | None
    revision_id: str | None
    known_version: int = 0


@dataclass(frozen=True, slots=True)
class DeleteVersion(LambdaWrite):
    method: ClassVar[str] = "delete_version"
    resolver: ClassVar[type[Resolver] | None] = ListVersions
    name: str
    version: str


@dataclass(frozen=True, slots=True)
class DeleteFunction(LambdaWrite):
    method: ClassVar[str] = "delete_function"
    resolver: ClassVar[type[Resolver] | None] = GetFunction
    name: str


@dataclass(frozen=True, slots=True)
class CreateAlias(LambdaWrite):
    method: ClassVar[str] = "create_alias"
    resolver: ClassVar[type[Resolver] | None] = GetAlias
    name: str
    alias: str
    version: str


@dataclass(frozen=True, slots=True)
class DeleteAlias(LambdaWrite):
    """Idempotent (an alias already gone is success): a dangling one is simply repeated."""

    method: ClassVar[str] = "delete_alias"
    name: str
    alias: str


@dataclass(frozen=True, slots=True)
class TagFunction(LambdaWrite):
    method: ClassVar[str] = "tag_function"
    arn: str
    tags: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class UntagFunction(LambdaWrite):
    method: ClassVar[str] = "untag_function"
    arn: str
    keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PutSigning(LambdaWrite):
    method: ClassVar[str] = "put_code_signing_config"
    name: str
    arn: str


@dataclass(frozen=True, slots=True)
class DeleteSigning(LambdaWrite):
    method: ClassVar[str] = "delete_code_signing_config"
    name: str


@dataclass(frozen=True, slots=True)
class UpdateAlias(LambdaWrite):
    method: ClassVar[str] = "update_alias"
    resolver: ClassVar[type[Resolver] | None] = GetAlias
    name: str
    alias: str
    version: str
    routing: Mapping[str, float] | None  # None clears the routing


@dataclass(frozen=True, slots=True)
class InvokeHook(LambdaWrite):
    """Invoke (RequestResponse) of a traffic hook with ``payload``, given ``timeout_seconds``
    to answer (the runner's deadline). Data plane: paced on the poll budget, not the
    control plane's. No resolver: a hook whose answer was lost is invoked again, which the
    hook contract asks hooks to allow (docs/progressive-delivery.md)."""

    method: ClassVar[str] = "invoke"
    runner_only: ClassVar[frozenset[str]] = frozenset({"timeout_seconds", "point"})
    function: str
    payload: Mapping[str, Any]
    timeout_seconds: float
    point: HookPoint


@dataclass(frozen=True, slots=True)
class ReconcileSources(SourcesWrite):
    method: ClassVar[str] = "reconcile"
    omitted: ClassVar[frozenset[str]] = frozenset({"desired", "previous"})
    desired: EventSources
    previous: EventSources | None


@dataclass(frozen=True, slots=True)
class DetachSources(SourcesWrite):
    method: ClassVar[str] = "detach_all"
    omitted: ClassVar[frozenset[str]] = frozenset({"previous"})
    previous: EventSources


def _plain(value: Any) -> Any:
    """A value as JSON records it (a tuple as a list, a mapping as a dict)."""
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Mapping):
        return dict(value)
    return value


Read = GetFunction | GetAlias | ListVersions | GetSigning | HashCode | CountInvocations
# The reads that settle a dangling intent.
Resolver = GetFunction | GetAlias | ListVersions
LambdaMutation = (
    CreateFunction
    | UpdateConfig
    | UpdateCode
    | PublishVersion
    | DeleteVersion
    | DeleteFunction
    | CreateAlias
    | UpdateAlias
    | DeleteAlias
    | TagFunction
    | UntagFunction
    | PutSigning
    | DeleteSigning
    | InvokeHook
)
SourcesMutation = ReconcileSources | DetachSources
Mutation = LambdaMutation | SourcesMutation
Operation = Read | Mutation
OPERATIONS: tuple[type[Operation], ...] = (*get_args(Read), *get_args(Mutation))


@dataclass(frozen=True, slots=True)
class Call:
    """Perform ``operation``; ``step`` names it in the log. A read that settles a dangling
    write-ahead intent is named ``resolve:<step>`` (``resolves`` is that step)."""

    step: StepName
    operation: Operation
    intent: StepStarted | None = None

    @property
    def mutation(self) -> bool:
        return self.operation.mutation

    @property
    def method(self) -> str:
        return self.operation.method

    @property
    def resolves(self) -> Step | None:
        return self.step.resolves


@dataclass(frozen=True, slots=True)
class Probe:
    """Synthetic traffic the runner sends while a wait lasts: ``function`` (the alias's ARN)
    invoked with ``payload`` at ``rate_per_second`` (a traffic gate's ``syntheticInvoke``).
    Data plane, never recorded one by one: CloudWatch counts them like any invocation."""

    function: str
    payload: Mapping[str, Any] = field(compare=False)
    rate_per_second: float = 1.0


@dataclass(frozen=True, slots=True)
class ReleaseWatch:
    """What a wait of a release member watches besides its alarms (engine.saga.release): the
    other members, for a failure (which ends the wait, to roll back with them) and, when
    ``barrier`` names the point this member waits at, for all of them to reach it (which ends
    the wait, to go on)."""

    release: Release
    deployment_id: str
    barrier: tuple[ReleaseStage, int] | None = None


@dataclass(frozen=True, slots=True)
class ReleaseFailure:
    """Why a release member stops: ``member`` (a function stream) failed, or did not reach
    the barrier in time; ``member_deployment`` is its deployment (None: several members)."""

    member: str
    member_deployment: str | None
    reason: str


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait until ``until``. When ``alarms`` is not empty, poll them every ``poll_seconds``
    and stop early as soon as one is in ALARM or does not exist. ``purpose`` is a
    TimerStarted's (engine.saga.steps.WaitPurpose, or another version's, read from the log)."""

    purpose: str
    until: datetime
    alarms: tuple[str, ...] = ()
    poll_seconds: float = 5.0
    intent: TimerStarted | None = None
    probe: Probe | None = None
    release: ReleaseWatch | None = None


@dataclass(frozen=True, slots=True)
class Record:
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class Done:
    pass


Effect = Call | Wait | Record | Done


@dataclass(frozen=True, slots=True)
class Ok:
    """A call returned; ``result`` is what it reported (engine.saga.results)."""

    result: CallResult


@dataclass(frozen=True, slots=True)
class Failed:
    """A call raised an AwsError (or timed out), classified for the saga."""

    kind: FailureKind
    code: str
    message: str
    retryable: bool


@dataclass(frozen=True, slots=True)
class Waited:
    """A wait ended: ``completed`` when ``until`` passed with no alarm firing and the alarms
    were read; otherwise an alarm fired or, when ``unreadable`` says why, the alarms could not
    be read (an unread alarm must not count as a quiet one). ``alarms`` holds the last state
    seen per alarm (MISSING if absent). A release member's wait also ends when another member
    failed (``release_failed``) and, at a barrier, ``completed`` once every member reached it."""

    completed: bool
    alarms: Mapping[str, str] = field(default_factory=dict)
    unreadable: str = ""
    release_failed: ReleaseFailure | None = None


CallOutcome = Ok | Failed | Waited


@dataclass(frozen=True, slots=True)
class SagaContext:
    """What the pure core may not make itself: the time."""

    now: datetime
