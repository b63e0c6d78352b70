"""Events of a function stream ``fn:<account>:<region>:<name>``: its deployments and every AWS
fact about it. A saga is rebuilt from these alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from engine.events.base import EventBase
from engine.events.desired import DeploymentSettings, DesiredFunction

DeployAction = Literal["create", "update", "delete"]
Outcome = Literal["succeeded", "rolled_back", "failed", "superseded"]
# Why a step failed, as the saga needs to know it: "ambiguous" (a mutation whose outcome is
# unknown: read AWS before repeating), "conflict" (update in progress: wait for
# LastUpdateStatus), "not_applied" (a read proved a dangling step never happened: repeat it).
FailureKind = Literal[
    "throttled", "conflict", "not_found", "invalid", "ambiguous", "timeout", "not_applied", "error"
]


class DeploymentRequested(EventBase):
    """The planner asks for a deployment. Carries the whole desired state."""

    type: Literal["DeploymentRequested"] = "DeploymentRequested"
    deployment_id: str
    commit: str
    action: DeployAction
    desired: DesiredFunction | None  # None for a delete


class SettingsRecorded(EventBase):
    """Only the deployment definition changed: no deployment, the next one uses these."""

    type: Literal["SettingsRecorded"] = "SettingsRecorded"
    commit: str
    settings: DeploymentSettings


class StepStarted(EventBase):
    """Write-ahead intent: the saga is about to perform ``step`` (an AWS mutation or read).
    If no outcome follows it in the log, recovery reads AWS before doing anything again."""

    type: Literal["StepStarted"] = "StepStarted"
    deployment_id: str
    step: str
    attempt: int = 1
    request: dict[str, Any] = Field(default_factory=dict)


class StepSucceeded(EventBase):
    type: Literal["StepSucceeded"] = "StepSucceeded"
    deployment_id: str
    step: str
    result: dict[str, Any] = Field(default_factory=dict)


class StepFailed(EventBase):
    type: Literal["StepFailed"] = "StepFailed"
    deployment_id: str
    step: str
    error_code: str
    message: str
    retryable: bool
    kind: FailureKind = "error"


class TimerStarted(EventBase):
    """A durable wait: after a restart the saga waits only until ``until``."""

    type: Literal["TimerStarted"] = "TimerStarted"
    deployment_id: str
    purpose: str  # "bake", "readiness", "active", ...
    until: datetime


class TrafficShifted(EventBase):
    """The alias sends ``weight`` of traffic to ``new_version``, the rest to ``stable_version``."""

    type: Literal["TrafficShifted"] = "TrafficShifted"
    deployment_id: str
    alias: str
    stable_version: str
    new_version: str
    weight: float


class AlarmObserved(EventBase):
    type: Literal["AlarmObserved"] = "AlarmObserved"
    deployment_id: str
    alarm: str
    state: str  # OK, ALARM, INSUFFICIENT_DATA or MISSING


class RollbackStarted(EventBase):
    type: Literal["RollbackStarted"] = "RollbackStarted"
    deployment_id: str
    reason: str
    superseded_by: str | None = None  # set when a newer deployment interrupts this one


class EventSourceChanged(EventBase):
    type: Literal["EventSourceChanged"] = "EventSourceChanged"
    deployment_id: str
    kind: Literal["mapping", "elb", "apigateway"]
    change: Literal["attached", "updated", "detached", "adopted"]
    source_id: str  # mapping UUID, target group ARN, or api/route
    details: dict[str, Any] = Field(default_factory=dict)


class DeploymentFinished(EventBase):
    type: Literal["DeploymentFinished"] = "DeploymentFinished"
    deployment_id: str
    outcome: Outcome
    reason: str = ""
    stable_version: str | None = None  # the version the alias points to now


class FunctionDeleted(EventBase):
    type: Literal["FunctionDeleted"] = "FunctionDeleted"
    deployment_id: str


class OperatorRequested(EventBase):
    """An operator's command handed to the stream it acts on: the engine copies each
    ``OperatorCommandIssued`` of the ``ops`` stream here (causation: the command's event id),
    so a saga stays a fold of its own stream. ``deployment_id`` is the deployment in flight
    the command was handed to (abort, promote); ``target`` is the function stream, or the
    commit sha of an ``allow_deletes`` (recorded on the repository stream). A command the
    engine cannot act on is recorded too, with ``outcome="ignored"`` and a ``note`` saying why
    (on the ``ops`` stream when it names no known stream), so it is handled exactly once."""

    type: Literal["OperatorRequested"] = "OperatorRequested"
    command: Literal["promote", "abort", "retry", "allow_deletes"]
    target: str
    actor: str
    reason: str
    deployment_id: str | None = None
    outcome: Literal["applied", "ignored"] = "applied"
    note: str = ""
