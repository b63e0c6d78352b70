"""A deployment's trace from its events: the span tree, its times and ids."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from engine.events import Event, Metadata, RecordedEvent
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    RollbackStarted,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.saga.steps import STEPS, StepName
from engine.traces.build import OPERATIONS, deployment_trace, span_id, trace_id
from engine.traces.otlp import decode, encode

STREAM = "fn:123456789012:eu-west-1:orders"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
DEP = "dep-7"


def _records(*events: tuple[float, Event]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            position=i + 1,
            stream=STREAM,
            version=i + 1,
            event=event,
            meta=Metadata(event_id=f"e{i + 1}", deployment_id=DEP),
            recorded_at=T0 + timedelta(seconds=at),
            hash="",
        )
        for i, (at, event) in enumerate(events)
    ]


def _step(kind: type[Any], step: str, **fields: Any) -> Any:
    return kind(deployment_id=DEP, step=StepName.parse(step), **fields)


ROLLED_BACK = _records(
    (0, DeploymentRequested(deployment_id=DEP, commit="c" * 40, action="update", desired=None)),
    (1, _step(StepSucceeded, "inspect_function")),
    (2, _step(StepStarted, "shift", request={"routing": {"2": 0.5}, "version": "1"})),
    (3, _step(StepFailed, "shift", error_code="ThrottlingException", message="Rate exceeded",
              retryable=True)),
    (4, TimerStarted(deployment_id=DEP, purpose="backoff", until=T0)),
    (5, _step(StepSucceeded, "wait:backoff")),
    (6, _step(StepStarted, "shift", attempt=2)),
    (7, _step(StepSucceeded, "shift")),
    (7, TrafficShifted(deployment_id=DEP, alias="live", stable_version="1", new_version="2",
                       weight=0.5)),
    (8, TimerStarted(deployment_id=DEP, purpose="bake", until=T0 + timedelta(minutes=5))),
    (20, AlarmObserved(deployment_id=DEP, alarm="errors", state="ALARM")),
    (20, RollbackStarted(deployment_id=DEP, reason="alarm errors is in ALARM")),
    (21, _step(StepStarted, "rollback_alias")),
    (22, _step(StepSucceeded, "rollback_alias")),
    (23, DeploymentFinished(deployment_id=DEP, outcome="rolled_back",
                            reason="alarm errors is in ALARM")),
)  # fmt: skip


def test_span_tree_of_a_rolled_back_canary() -> None:
    """The root spans the deployment, steps are its children in order, each AWS call is a
    child of its step with the times of its intent and outcome, and the rollback is an
    error on the root."""
    root, *spans = deployment_trace(STREAM, ROLLED_BACK)
    assert (root.name, root.parent_id, root.status) == ("deploy orders", None, "error")
    assert root.status_message == "alarm errors is in ALARM"
    assert (root.start, root.end) == (T0, T0 + timedelta(seconds=23))
    tree = [(s.name, s.parent_id == root.span_id, s.start.second, s.end.second) for s in spans]
    assert tree == [
        ("inspect_function", True, 0, 1),
        ("Lambda.GetFunction", False, 0, 1),
        ("shift", True, 2, 7),
        ("Lambda.UpdateAlias", False, 2, 3),
        ("Lambda.UpdateAlias", False, 6, 7),
        ("bake", True, 8, 20),
        ("rollback_alias", True, 21, 22),
        ("Lambda.UpdateAlias", False, 21, 22),
    ]
    shift, failed, ok = spans[2:5]
    assert failed.parent_id == ok.parent_id == shift.span_id
    assert (failed.status, failed.status_message) == ("error", "ThrottlingException: Rate exceeded")
    assert failed.attributes["glam.routing.2"] == 0.5
    assert (failed.attributes["glam.attempt"], ok.attributes["glam.attempt"]) == (1, 2)
    assert (ok.status, shift.status) == ("unset", "unset")  # the retry succeeded
    assert [e.name for e in shift.events] == ["TrafficShifted"]
    bake = spans[5]
    observed = [(e.name, e.attributes["glam.state"]) for e in bake.events]
    assert observed == [("AlarmObserved", "ALARM")]
    assert [e.name for e in root.events] == ["RollbackStarted"]


def test_ids_are_derived_from_the_log() -> None:
    """The same log gives the same trace id and span ids: a re-export is the same trace."""
    first = deployment_trace(STREAM, ROLLED_BACK)
    again = deployment_trace(STREAM, ROLLED_BACK)
    assert [s.span_id for s in first] == [s.span_id for s in again]
    assert {s.trace_id for s in first} == {trace_id(DEP)}
    assert len({s.span_id for s in first}) == len(first)
    assert first[1].span_id == span_id("step", "e2")


def test_otlp_body_round_trips() -> None:
    """The protobuf body decodes to the same spans, with nanosecond times from the log."""
    spans = deployment_trace(STREAM, ROLLED_BACK)
    request = decode(encode(spans))
    (resource,) = request.resource_spans
    decoded = resource.scope_spans[0].spans
    assert [s.name for s in decoded] == [s.name for s in spans]
    assert decoded[0].status.code == 2
    assert decoded[0].end_time_unix_nano - decoded[0].start_time_unix_nano == 23 * 10**9
    assert decoded[0].start_time_unix_nano == int(T0.timestamp()) * 10**9


def test_every_step_names_its_operation() -> None:
    """Each step this glam knows maps to the AWS operation its call performs."""
    assert set(OPERATIONS) == STEPS


def test_not_a_deployment() -> None:
    with pytest.raises(ValueError, match="DeploymentRequested"):
        deployment_trace(STREAM, ROLLED_BACK[1:])
