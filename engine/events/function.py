"""Events of a function stream ``fn:<account>:<region>:<name>``: its deployments and every AWS
fact about it. A saga is rebuilt from these alone.

``OperatorRequested`` lives here too, because a command is handed to the stream it acts on
(most often a function's); it is an ``OpsEvent``, like the command it copies."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, PlainSerializer, PlainValidator, WithJsonSchema

from engine.events.alarms import AlarmDatapoint, AlarmMetric
from engine.events.base import Frozen, FunctionEvent, OpsEvent
from engine.events.desired import DeploymentSettings, DesiredFunction, HookPoint, SourceKind
from engine.events.operator import OperatorCommand
from engine.saga.steps import StepName

# "remove_alias": remove the alias ``DeploymentRequested.alias`` of a function whose deployment
# definition moved to another alias (an identity change an operator released); the function,
# its versions and the current alias stay.
DeployAction = Literal["create", "update", "delete", "remove_alias"]
DeployOutcome = Literal["succeeded", "rolled_back", "failed", "superseded"]
# A step's name is stored as the text it has always been (``publish``, ``wait:bake``,
# ``resolve:publish``) and read back into a StepName, which alone knows that spelling.
StepText = Annotated[
    StepName,
    PlainValidator(StepName.coerce),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string"}),
]
# Why a step failed, as the saga needs to know it: "ambiguous" (a mutation whose outcome is
# unknown: read AWS before repeating), "conflict" (update in progress: wait for
# LastUpdateStatus), "not_applied" (a read proved a dangling step never happened: repeat it).
FailureKind = Literal[
    "throttled", "conflict", "not_found", "invalid", "ambiguous", "timeout", "not_applied", "error"
]


class FunctionOwner(Frozen):
    """Who owns a function: one path prefix of one branch of one repository. ``repository``
    is the repository's id (``engine.redact.repository_id``: never a token). Only the owner
    plans the function; another branch or repository claiming it is refused."""

    repository: str
    branch: str
    prefix: str


class ReleaseMember(Frozen):
    """One deployment of a release: the function stream it deploys and its deployment id."""

    stream: str
    deployment_id: str


class Release(Frozen):
    """A release: the deployments of one commit whose deployment definitions share the
    ``release`` name, shifted in lockstep and rolled back as one (engine.saga.release).
    ``id`` is made once by the planner; every member's request carries the same release."""

    id: str
    name: str
    members: tuple[ReleaseMember, ...]


class DeploymentRequested(FunctionEvent):
    """The planner asks for a deployment. Carries the whole desired state.

    ``alias`` names the alias a ``remove_alias`` request removes (None for every other
    action). ``owner`` is the branch and prefix that asked; None in logs of a glam that
    watched one branch per log (the function then belongs to the first branch that plans
    it).

    ``reason`` says why when a commit is not the cause: drift to heal (``drift: ...``).
    ``release``: the release this deployment is a member of (None: it moves alone)."""

    type: Literal["DeploymentRequested"] = "DeploymentRequested"
    deployment_id: str
    commit: str
    action: DeployAction
    desired: DesiredFunction | None  # None for a delete
    alias: str | None = None
    owner: FunctionOwner | None = None
    reason: str = ""
    release: Release | None = None


class SettingsRecorded(FunctionEvent):
    """Only the deployment definition changed: no deployment, the next one uses these."""

    type: Literal["SettingsRecorded"] = "SettingsRecorded"
    commit: str
    settings: DeploymentSettings


class StepStarted(FunctionEvent):
    """Write-ahead intent: the saga is about to perform ``step`` (an AWS mutation or read).
    If no outcome follows it in the log, recovery reads AWS before doing anything again.
    ``step`` (a StepName) is stored as text: a step such as ``publish`` or ``shift``."""

    type: Literal["StepStarted"] = "StepStarted"
    deployment_id: str
    step: StepText
    attempt: int = 1
    request: dict[str, Any] = Field(default_factory=dict)


class StepSucceeded(FunctionEvent):
    """The AWS call of ``step`` succeeded (or its wait ended); ``result`` holds what the saga
    reads from the answer (engine.saga.results). ``step`` is stored as text: ``publish``, or
    ``wait:<purpose>`` for a wait."""

    type: Literal["StepSucceeded"] = "StepSucceeded"
    deployment_id: str
    step: StepText
    result: dict[str, Any] = Field(default_factory=dict)


class StepFailed(FunctionEvent):
    """The AWS call of ``step`` failed; ``kind`` tells the saga what to do next (retry, wait
    for the update in progress, or read AWS before repeating). ``step`` is stored as text:
    ``publish``, or ``resolve:<step>`` for a failed read settling a dangling intent."""

    type: Literal["StepFailed"] = "StepFailed"
    deployment_id: str
    step: StepText
    error_code: str
    message: str
    retryable: bool
    kind: FailureKind = "error"


class TimerStarted(FunctionEvent):
    """A durable wait: after a restart the saga waits only until ``until``."""

    type: Literal["TimerStarted"] = "TimerStarted"
    deployment_id: str
    purpose: str  # "bake", "readiness", "active", ...
    until: datetime


class TrafficShifted(FunctionEvent):
    """The alias sends ``weight`` of traffic to ``new_version``, the rest to ``stable_version``."""

    type: Literal["TrafficShifted"] = "TrafficShifted"
    deployment_id: str
    alias: str
    stable_version: str
    new_version: str
    weight: float


class AlarmObserved(FunctionEvent):
    """The state of one alarm, polled while a shift bakes (MISSING: CloudWatch has no such
    alarm). Recorded when an alarm fires, and at the end of a watched wait for each metric
    alarm whose metric had datapoints then. ``metric`` and ``datapoints`` are what the
    alarm's evaluation saw (engine.events.alarms): its metric, threshold and the values
    since the wait began; empty for a composite alarm, when they could not be read, and in
    logs of earlier glams."""

    type: Literal["AlarmObserved"] = "AlarmObserved"
    deployment_id: str
    alarm: str
    state: str  # OK, ALARM, INSUFFICIENT_DATA or MISSING
    metric: AlarmMetric | None = None
    datapoints: tuple[AlarmDatapoint, ...] = ()


class RollbackStarted(FunctionEvent):
    """The deployment goes back to the stable version: the alias to it with routing cleared,
    then the new version deleted."""

    type: Literal["RollbackStarted"] = "RollbackStarted"
    deployment_id: str
    reason: str
    superseded_by: str | None = None  # set when a newer deployment interrupts this one


class EventSourceChanged(FunctionEvent):
    """An event source of the alias was attached, updated or detached, or found already wired
    (adopted)."""

    type: Literal["EventSourceChanged"] = "EventSourceChanged"
    deployment_id: str
    kind: SourceKind
    change: Literal["attached", "updated", "detached", "adopted"]
    source_id: str  # mapping UUID, target group ARN, or api/route
    details: dict[str, Any] = Field(default_factory=dict)


class DeploymentFinished(FunctionEvent):
    """The deployment ended: succeeded, rolled back, failed, or superseded by a newer one."""

    type: Literal["DeploymentFinished"] = "DeploymentFinished"
    deployment_id: str
    outcome: DeployOutcome
    reason: str = ""
    stable_version: str | None = None  # the version the alias points to now


class FunctionDeleted(FunctionEvent):
    """The function is gone from AWS, its event sources detached first."""

    type: Literal["FunctionDeleted"] = "FunctionDeleted"
    deployment_id: str


class DriftDetected(FunctionEvent):
    """AWS differs from what glam deployed in one field, found by reading the live function.
    ``path`` names the field (``alias.FunctionVersion``, ``stable.MemorySize``, ``tags.team``,
    ``mappings[<source>]``...), ``desired`` is what glam deployed and ``live`` what AWS has
    (None: absent); a value that can be a secret (an environment variable's) is masked.
    Recorded once per difference, and again only when one of its values changes."""

    type: Literal["DriftDetected"] = "DriftDetected"
    function: str
    path: str
    desired: Any = None
    live: Any = None
    detected_at: datetime


class DriftResolved(FunctionEvent):
    """A difference a ``DriftDetected`` recorded is gone: AWS matches what glam deployed in
    ``path`` again (fixed by hand, healed by a deployment, or glam deployed something else)."""

    type: Literal["DriftResolved"] = "DriftResolved"
    function: str
    path: str
    resolved_at: datetime
    reason: str = ""


# What a traffic hook answered (engine.saga.hooks, the contract): it succeeded, it failed
# (FunctionError, or a body whose status is not "succeeded"), it could not be invoked, or it
# gave no answer within its deadline. Anything but "succeeded" rolls the deployment back.
HookStatus = Literal["succeeded", "failed", "error", "timed_out"]


class HookAnswered(FunctionEvent):
    """A traffic hook was invoked and answered (or did not, in time): what compliance shows was
    checked before traffic moved (``beforeAllowTraffic``) or once it all had
    (``afterAllowTraffic``). ``body`` is the start of the function's answer (at most
    HOOK_BODY_LIMIT characters); ``duration_ms`` the time from invoke to answer."""

    type: Literal["HookAnswered"] = "HookAnswered"
    deployment_id: str
    hook: HookPoint
    function: str
    status: HookStatus
    body: str = ""
    duration_ms: int = 0
    function_error: str | None = None


GateVerdict = Literal["passed", "waiting", "timed_out"]


class TrafficGateChecked(FunctionEvent):
    """A traffic gate read how many invocations the new version served in the step so far
    (``since`` to ``until``) against the ``required`` count: ``passed`` ends the bake,
    ``waiting`` reads again after a pause (until ``deadline``), ``timed_out`` does what
    ``action`` says (``trafficGate.onTimeout``: roll back, or go on as if they had come)."""

    type: Literal["TrafficGateChecked"] = "TrafficGateChecked"
    deployment_id: str
    version: str
    invocations: int
    required: int
    since: datetime
    until: datetime
    verdict: GateVerdict
    deadline: datetime | None = None
    action: Literal["rollback", "promote"] | None = None


# Where a release's members wait for each other (engine.saga.release): before a shift to
# step ``index``, before the promote, and before the deployment finishes (after its last bake).
ReleaseStage = Literal["shift", "promote", "finish"]


class ReleaseStepReached(FunctionEvent):
    """A member of release ``release_id`` reached a point where it waits for every other
    member to reach it too: the step ``index`` of ``stage`` (0 but for a shift). The wait that
    follows is a TimerStarted of purpose ``release``: its ``until`` is when it gives up."""

    type: Literal["ReleaseStepReached"] = "ReleaseStepReached"
    deployment_id: str
    release_id: str
    stage: ReleaseStage
    index: int = 0


class ReleaseMemberFailed(FunctionEvent):
    """Another member of release ``release_id`` failed (rolled back, finished other than
    succeeded, or did not reach a step in time): this member rolls back with it. ``member``
    is the failing member's function stream and ``member_deployment`` its deployment (None:
    the release's wait timed out on several)."""

    type: Literal["ReleaseMemberFailed"] = "ReleaseMemberFailed"
    deployment_id: str
    release_id: str
    member: str
    member_deployment: str | None = None
    reason: str


class DeploymentHeld(FunctionEvent):
    """An operator's hold took effect at a safe point (a bake): the bake timer is stopped,
    ``bake_left`` seconds of it left (None: the bake had not started), while the alarms are
    still watched and still roll back. Lasts until ``glam resume``."""

    type: Literal["DeploymentHeld"] = "DeploymentHeld"
    deployment_id: str
    actor: str
    reason: str
    bake_left: float | None = None


class DeploymentResumed(FunctionEvent):
    """An operator's resume lifted the hold: the bake runs on for what was left of it."""

    type: Literal["DeploymentResumed"] = "DeploymentResumed"
    deployment_id: str
    actor: str
    reason: str


class BakeExtended(FunctionEvent):
    """An operator lengthened the bake in progress (or the next one) by ``seconds``; ``until``
    is when it now ends (None: the bake is held or had not started)."""

    type: Literal["BakeExtended"] = "BakeExtended"
    deployment_id: str
    actor: str
    reason: str
    seconds: int
    until: datetime | None = None


class OperatorRequested(OpsEvent):
    """An operator's command handed to the stream it acts on: the engine copies each
    ``OperatorCommandIssued`` of the ``ops`` stream here (causation: the command's event id),
    so a saga stays a fold of its own stream. ``deployment_id`` is the deployment in flight
    the command was handed to (abort, promote); ``target`` is the function stream, or the
    commit sha of an ``allow_deletes`` (recorded on the repository stream). A command the
    engine cannot act on is recorded too, with ``outcome="ignored"`` and a ``note`` saying why
    (on the ``ops`` stream when it names no known stream), so it is handled exactly once."""

    type: Literal["OperatorRequested"] = "OperatorRequested"
    command: OperatorCommand
    target: str
    actor: str
    reason: str
    deployment_id: str | None = None
    outcome: Literal["applied", "ignored"] = "applied"
    note: str = ""
    seconds: int | None = None  # an extend's length
