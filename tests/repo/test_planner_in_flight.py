"""The planner against deployments still in flight: tracked by id, superseded on change."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from datetime import UTC, datetime

from engine.definitions.commit import CommitState
from engine.events import Metadata, RecordedEvent
from engine.events.catalog import Event
from engine.events.desired import DesiredFunction
from engine.events.function import DeploymentFinished, DeploymentRequested
from engine.planner import Plan, PlanContext, deployed_from_events, plan_commit
from tests.saga.support import STREAM, desired, requested


def _records(events: Sequence[Event]) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            position=i,
            stream=STREAM,
            version=i,
            event=event,
            meta=Metadata(event_id=f"e{i}"),
            recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
            hash="",
        )
        for i, event in enumerate(events, start=1)
    ]


def _plan(log: Sequence[Event], want: DesiredFunction) -> Plan:
    ids = (f"new-{i}" for i in itertools.count(1))
    state = CommitState(
        sha="c9",
        prefixes=frozenset({want.prefix}),
        desired={want.prefix: want},
        rejected={},
        changes=None,
    )
    ctx = PlanContext(
        new_id=lambda: next(ids), default_region="us-east-1", default_account="123456789012"
    )
    return plan_commit(state, deployed_from_events(_records(log)), ctx)


def _requests(plan: Plan) -> list[DeploymentRequested]:
    return [e for _, e in plan.function_events if isinstance(e, DeploymentRequested)]


V1, V2, V3 = desired("v1"), desired("v2"), desired("v3")
DEPLOYED: list[Event] = [
    requested("d1", V1, action="create"),
    DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="1"),
]


def test_revert_during_a_deployment_is_requested() -> None:
    """Given d2 (v2) in flight over deployed v1, when the commit reverts to v1, then a new
    deployment of v1 is requested (it supersedes d2)."""
    plan = _plan([*DEPLOYED, requested("d2", V2)], V1)
    assert [r.desired for r in _requests(plan)] == [V1]
    assert plan.actions[0].action == "new_version"


def test_same_desired_state_as_in_flight_is_not_requested_again() -> None:
    """Given d2 (v2) in flight, when the commit still asks for v2, then nothing is requested."""
    plan = _plan([*DEPLOYED, requested("d2", V2)], V2)
    assert _requests(plan) == []


def test_older_deployment_finishing_keeps_the_newer_in_flight() -> None:
    """Given d2 (v2) then d3 (v3) requested, when d2 finishes first (it was past the safe
    point), then v2 counts as deployed and d3 is still in flight."""
    log = [
        *DEPLOYED,
        requested("d2", V2),
        requested("d3", V3),
        DeploymentFinished(deployment_id="d2", outcome="succeeded", stable_version="2"),
    ]
    state = deployed_from_events(_records(log))[STREAM]
    assert state.content_hash == V2.content_hash
    assert state.in_flight is not None
    assert state.in_flight.deployment_id == "d3"
    assert _requests(_plan(log, V3)) == []


def test_revert_after_newer_rolled_back_and_older_promoted() -> None:
    """Given d2 (v2) promoted and d3 (v3) rolled back after it, when the commit goes back to
    v1, then v1 is requested: what runs is v2, not v1."""
    log = [
        *DEPLOYED,
        requested("d2", V2),
        requested("d3", V3),
        DeploymentFinished(deployment_id="d2", outcome="succeeded", stable_version="2"),
        DeploymentFinished(deployment_id="d3", outcome="rolled_back", stable_version="2"),
    ]
    assert [r.desired for r in _requests(_plan(log, V1))] == [V1]
