"""One deployment's trace, built from its events alone. Pure: no clock, no ids made here.

    deploy orders                      DeploymentRequested .. DeploymentFinished (the root)
      inspect_function                 a step: the consecutive events of one saga phase
        Lambda.GetFunction             an AWS call: an intent (or the previous event) .. its
                                       outcome; error status on a StepFailed
      shift                            events: TrafficShifted
        Lambda.UpdateAlias
      bake                             a watched wait: TimerStarted .. its end;
                                       events: AlarmObserved
      gate                             a traffic gate's reads and pauses; events:
                                       TrafficGateChecked
      rollback_alias ...               events on the root: RollbackStarted, operator commands

A step's span holds its calls and the short waits between them (a poll, a backoff, the reads
settling a dangling intent); a bake, a readiness check, the alarm read before the first shift
and an operator's promote are steps of their own. A read records no intent, so its call span
begins at the deployment's previous event: the saga made the call right after it. Any other
event of the deployment (a hook's answer, an event source wired, an event type this module
does not know yet) becomes a span event, named by its type, with its scalar fields.

Ids are derived, never random: the trace id from the deployment id, a span id from the id of
the event that opens it, so a trace exported twice (a crash before its checkpoint) is the same
trace, and a collector keeps one copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from engine.events import RecordedEvent
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    OperatorRequested,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.saga.steps import STEPS, StepName
from engine.streams import parse_function_stream

Scalar = str | int | float | bool
StatusCode = Literal["unset", "ok", "error"]

# Waits that are steps of their own; the other purposes are pauses inside the step they
# interrupt (a poll of an update in progress, a backoff before a retry, a resolve pause).
STEP_WAITS = frozenset({"bake", "readiness", "alarms", "operator_promote"})
# Events that speak for the whole deployment, whichever step was running.
DEPLOYMENT_EVENTS = (RollbackStarted, OperatorRequested)

# The AWS operation each step's call performs: (service, operation). A step missing here is
# named by itself (tests/traces check that every step this glam knows is listed).
OPERATIONS: Mapping[str, tuple[str, str]] = {
    **{
        s: ("Lambda", "GetFunction")
        for s in (
            "inspect_function",
            "inspect_stable",
            "wait_active",
            "wait_config",
            "wait_code",
            "readiness",
            "settle",
        )
    },
    **{s: ("Lambda", "GetAlias") for s in ("inspect_alias", "verify_old", "rollback_verify")},
    "create_function": ("Lambda", "CreateFunction"),
    "update_config": ("Lambda", "UpdateFunctionConfiguration"),
    "update_code": ("Lambda", "UpdateFunctionCode"),
    "publish": ("Lambda", "PublishVersion"),
    "create_alias": ("Lambda", "CreateAlias"),
    **{s: ("Lambda", "UpdateAlias") for s in ("reset_alias", "shift", "promote", "rollback_alias")},
    **{s: ("Lambda", "DeleteFunction") for s in ("delete_old", "rollback_delete_new")},
    "delete_function": ("Lambda", "DeleteFunction"),
    "delete_alias": ("Lambda", "DeleteAlias"),
    **{
        s: ("Lambda", "EventSourceMappings")
        for s in ("sources", "rollback_sources", "detach_sources", "detach_old_alias")
    },
    "tag": ("Lambda", "TagResource"),
    "untag": ("Lambda", "UntagResource"),
    "put_signing": ("Lambda", "PutFunctionCodeSigningConfig"),
    "delete_signing": ("Lambda", "DeleteFunctionCodeSigningConfig"),
    "inspect_signing": ("Lambda", "GetFunctionCodeSigningConfig"),
    "hash_code": ("S3", "HeadObject"),
    **{s: ("Lambda", "Invoke") for s in ("hook_before", "hook_after")},
    "gate": ("CloudWatch", "GetMetricStatistics"),
}
assert set(OPERATIONS) <= STEPS


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time: datetime
    attributes: Mapping[str, Scalar]


@dataclass(slots=True)
class Span:
    """One span: ids as bytes (16 for the trace, 8 for a span), times from the log."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes | None
    name: str
    start: datetime
    end: datetime
    attributes: dict[str, Scalar] = field(default_factory=dict)
    events: list[SpanEvent] = field(default_factory=list)
    status: StatusCode = "unset"
    status_message: str = ""
    kind: Literal["internal", "client"] = "internal"

    def extend(self, time: datetime) -> None:
        self.end = max(self.end, time)


def trace_id(deployment_id: str) -> bytes:
    """The trace id of a deployment: the same on every export."""
    return _digest("trace", deployment_id, 16)


def span_id(kind: str, key: str) -> bytes:
    return _digest(kind, key, 8)


def _digest(kind: str, key: str, size: int) -> bytes:
    raw = hashlib.sha256(f"glam:{kind}:{key}".encode()).digest()[:size]
    # An all-zero id is invalid in OTLP; sha256 gives one with odds of 2^-64, fixed anyway.
    return raw if any(raw) else b"\x01" * size


def deployment_trace(stream: str, records: Sequence[RecordedEvent]) -> list[Span]:
    """The spans of one finished deployment, root first, from its records in log order
    (its ``DeploymentRequested`` first and its ``DeploymentFinished`` last)."""
    first, last = records[0].event, records[-1].event
    if not isinstance(first, DeploymentRequested) or not isinstance(last, DeploymentFinished):
        raise ValueError("a deployment's records run from DeploymentRequested to its end")
    return _Builder(stream, first, last, records).spans()


class _Builder:
    def __init__(
        self,
        stream: str,
        request: DeploymentRequested,
        finished: DeploymentFinished,
        records: Sequence[RecordedEvent],
    ) -> None:
        self.records = records
        self.trace = trace_id(request.deployment_id)
        account, region, function = parse_function_stream(stream)
        self.region = region
        self.root = Span(
            trace_id=self.trace,
            span_id=span_id("deployment", request.deployment_id),
            parent_id=None,
            name=f"deploy {function}",
            start=records[0].recorded_at,
            end=records[-1].recorded_at,
            attributes={
                "glam.deployment.id": request.deployment_id,
                "glam.function": function,
                "glam.stream": stream,
                "glam.commit": request.commit,
                "glam.action": request.action,
                "glam.outcome": finished.outcome,
                "cloud.provider": "aws",
                "cloud.account.id": account,
                "cloud.region": region,
                "faas.name": function,
            },
        )
        if request.reason:
            self.root.attributes["glam.reason"] = request.reason
        if finished.reason:
            self.root.attributes["glam.outcome.reason"] = finished.reason
        if finished.stable_version is not None:
            self.root.attributes["glam.stable_version"] = finished.stable_version
        if finished.outcome in ("rolled_back", "failed"):
            self.root.status = "error"
            self.root.status_message = finished.reason or finished.outcome
        elif finished.outcome == "succeeded":
            self.root.status = "ok"
        self.out: list[Span] = [self.root]
        self.step: Span | None = None  # the step span open now
        self.step_key = ""
        self.intents: dict[str, RecordedEvent] = {}  # step text -> its unanswered intent
        self.previous = records[0].recorded_at

    def spans(self) -> list[Span]:
        for record in self.records[1:-1]:
            self._take(record)
            self.previous = record.recorded_at
        return self.out

    def _take(self, record: RecordedEvent) -> None:
        event = record.event
        match event:
            case StepStarted(step=step):
                self._open(_key(step), record)
                self.intents[str(step.resolves or step)] = record
            case StepSucceeded(step=step) | StepFailed(step=step) if step.purpose is not None:
                if step.purpose in STEP_WAITS and self.step is not None:
                    self.step.extend(record.recorded_at)
                    if isinstance(event, StepSucceeded):
                        _put_result(self.step, event.result)
                    self._close()
            case StepSucceeded(step=step) | StepFailed(step=step):
                self._open(_key(step), record)
                self._call(record, step)
            case TimerStarted(purpose=purpose) if purpose in STEP_WAITS:
                self._close()
                self._open(f"wait:{purpose}", record, name=purpose)
                self.step_attributes(until=event.until.isoformat())
            case TimerStarted():
                pass  # a pause inside the running step: its span covers it
            case _ if isinstance(event, DEPLOYMENT_EVENTS):
                self._event(self.root, record)
            case _:
                self._event(self.step or self.root, record)

    def step_attributes(self, **values: Scalar) -> None:
        if self.step is not None:
            self.step.attributes.update({f"glam.{k}": v for k, v in values.items()})

    def _open(self, key: str, record: RecordedEvent, *, name: str | None = None) -> None:
        """Make ``key``'s step the open one, opening a span for it unless it is open."""
        if self.step is not None and self.step_key == key:
            return
        self._close()
        start = record.recorded_at if name is not None else self._start_of(key, record)
        self.step = Span(
            trace_id=self.trace,
            span_id=span_id("step", record.meta.event_id),
            parent_id=self.root.span_id,
            name=name or key,
            start=start,
            end=record.recorded_at,
            attributes={"glam.step": key},
        )
        self.step_key = key
        self.out.append(self.step)

    def _start_of(self, key: str, record: RecordedEvent) -> datetime:
        if isinstance(record.event, StepStarted):
            return record.recorded_at
        return self.previous  # a read: made right after the previous event

    def _close(self) -> None:
        self.step = None
        self.step_key = ""

    def _call(self, record: RecordedEvent, step: StepName) -> None:
        assert self.step is not None
        event = record.event
        assert isinstance(event, StepSucceeded | StepFailed)
        text = str(step.resolves or step)
        intent = self.intents.pop(text, None) if not step.is_resolve else None
        service, operation = OPERATIONS.get(text, ("", text))
        start = intent.recorded_at if intent is not None else self.previous
        call = Span(
            trace_id=self.trace,
            span_id=span_id("call", record.meta.event_id),
            parent_id=self.step.span_id,
            name=f"{service}.{operation}" if service else operation,
            start=start,
            end=record.recorded_at,
            kind="client",
            attributes={"glam.step": str(step), "cloud.region": self.region},
        )
        if service:
            call.attributes.update(
                {"rpc.system": "aws-api", "rpc.service": service, "rpc.method": operation}
            )
        if intent is not None:
            assert isinstance(intent.event, StepStarted)
            call.attributes["glam.attempt"] = intent.event.attempt
            _put_request(call, intent.event.request)
        if isinstance(event, StepFailed):
            call.status, call.status_message = "error", f"{event.error_code}: {event.message}"
            call.attributes.update(
                {
                    "aws.error.code": event.error_code,
                    "glam.failure.kind": event.kind,
                    "glam.retryable": event.retryable,
                }
            )
            self.step.status, self.step.status_message = call.status, call.status_message
        else:
            self.step.status, self.step.status_message = "unset", ""
        self.out.append(call)
        self.step.extend(record.recorded_at)

    def _event(self, span: Span, record: RecordedEvent) -> None:
        span.events.append(SpanEvent(record.type, record.recorded_at, _attributes(record)))
        span.extend(record.recorded_at)


def _key(step: StepName) -> str:
    """The step a step name belongs to: a resolve read to the step it settles."""
    return str(step.resolves or step)


def _put_request(span: Span, request: Mapping[str, Any]) -> None:
    """The intent's arguments worth showing (an intent never holds the definition)."""
    routing = request.get("routing")
    if isinstance(routing, Mapping):
        for version, weight in routing.items():
            span.attributes[f"glam.routing.{version}"] = float(weight)
    for key in ("version", "alias"):
        value = request.get(key)
        if isinstance(value, str):
            span.attributes[f"glam.{key}"] = value


def _put_result(span: Span, result: Mapping[str, Any]) -> None:
    alarms = result.get("alarms")
    if isinstance(alarms, Mapping):
        for name, state in alarms.items():
            span.attributes[f"glam.alarm.{name}"] = str(state)


def _attributes(record: RecordedEvent) -> dict[str, Scalar]:
    """An event's scalar fields, and its alarm's metric and last datapoint."""
    event = record.event
    out: dict[str, Scalar] = {}
    for name, value in event.model_dump(mode="json", exclude={"type", "deployment_id"}).items():
        if isinstance(value, str | int | float | bool):
            out[f"glam.{name}"] = value
    if isinstance(event, AlarmObserved):
        if event.metric is not None:
            out["glam.metric"] = f"{event.metric.namespace}/{event.metric.name}"
            out["glam.threshold"] = event.metric.threshold
        if event.datapoints:
            out["glam.datapoints"] = len(event.datapoints)
            out["glam.last_value"] = event.datapoints[-1].value
    if isinstance(event, TrafficShifted):
        out["glam.weight"] = event.weight
    return out
