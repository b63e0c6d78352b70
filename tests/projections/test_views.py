"""The views' rules, given/when/then, and the runner following the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import anyio
import pytest

from engine.events import Event, Metadata, NewEvent
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    EventSourceChanged,
    FunctionDeleted,
    RollbackStarted,
    TimerStarted,
    TrafficShifted,
)
from engine.store.memory import MemoryEventStore
from projections.functions import WiredSource
from projections.runner import ProjectionRunner
from projections.views import Views, fold
from tests.projections.strategies import desired_function, record_all

FN = "fn:1:eu-west-1:orders"
UNTIL = datetime(2025, 1, 1, tzinfo=UTC)


def _request(d: str = "d1", action: str = "update") -> DeploymentRequested:
    desired = None if action == "delete" else desired_function("orders")
    return DeploymentRequested(deployment_id=d, commit="c" * 40, action=action, desired=desired)


def _shift(weight: float) -> TrafficShifted:
    return TrafficShifted(
        deployment_id="d1", alias="live", stable_version="1", new_version="2", weight=weight
    )


def _fold(events: list[Event]) -> Views:
    return fold(record_all([(FN, e) for e in events]))


@pytest.mark.parametrize(
    ("given", "state", "stable", "new", "weight"),
    [
        pytest.param([_request()], "deploying", None, None, 0.0, id="requested"),
        pytest.param([_request(), _shift(0.2)], "shifting", "1", "2", 0.2, id="canary"),
        pytest.param(
            [
                _request(),
                _shift(0.2),
                TimerStarted(deployment_id="d1", purpose="bake", until=UNTIL),
            ],
            "baking",
            "1",
            "2",
            0.2,
            id="baking",
        ),
        pytest.param(
            [
                _request(),
                _shift(0.2),
                DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="2"),
            ],
            "stable",
            "2",
            None,
            0.0,
            id="promoted",
        ),
        pytest.param(
            [
                _request(),
                _shift(0.2),
                RollbackStarted(deployment_id="d1", reason="alarm"),
                _shift(0.0),
                DeploymentFinished(deployment_id="d1", outcome="rolled_back", stable_version="1"),
            ],
            "rolled_back",
            "1",
            None,
            0.0,
            id="rolled-back",
        ),
        pytest.param(
            [
                _request(),
                DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="1"),
                _request("d2", "delete"),
                FunctionDeleted(deployment_id="d2"),
                DeploymentFinished(deployment_id="d2", outcome="succeeded"),
            ],
            "deleted",
            None,
            None,
            0.0,
            id="deleted",
        ),
    ],
)
def test_functions_view_state(
    given: list[Event], state: str, stable: str | None, new: str | None, weight: float
) -> None:
    """The functions view tells what runs where and what glam is doing about it."""
    row = _fold(given).functions[FN]
    assert (row.state, row.stable_version, row.new_version, row.weight) == (
        state,
        stable,
        new,
        weight,
    )


def test_event_sources_follow_attach_and_detach() -> None:
    """The view keeps each wired source with the kind its event named (the CLI shows it)."""

    def change(c: str, s: str, kind: str = "mapping") -> EventSourceChanged:
        return EventSourceChanged(
            deployment_id="d1",
            kind=kind,
            change=c,
            source_id=s,
        )

    views = _fold(
        [
            _request(),
            change("attached", "m1"),
            change("adopted", "m2"),
            change("attached", "api/route", "apigateway"),
            change("updated", "m1"),
            change("detached", "m2"),
        ]
    )
    assert views.functions[FN].event_sources == (
        WiredSource(kind="apigateway", source_id="api/route"),
        WiredSource(kind="mapping", source_id="m1"),
    )


def test_rows_in_an_older_shape_are_folded_again() -> None:
    """Stored rows this glam cannot read (an earlier one kept event sources as bare ids) give
    empty views at position 0, so every reader folds the log again instead of failing."""
    views = _fold([_request(), _shift(0.2)])
    stored = views.to_rows()
    row = json.loads(stored[("functions", FN)])
    stored[("functions", FN)] = json.dumps({**row, "event_sources": ["m1"]})
    assert Views.from_rows(views.position, views.to_rows()).as_json() == views.as_json()
    assert Views.from_rows(views.position, stored).as_json() == Views().as_json()


@pytest.mark.anyio
async def test_runner_replaces_rows_in_an_older_shape() -> None:
    store = MemoryEventStore()
    await store.append(FN, [NewEvent(_request(), Metadata(event_id="a"))])
    await ProjectionRunner(store).catch_up()
    checkpoint, rows = await store.load_views("views")
    old_shape = {**json.loads(rows[("functions", FN)]), "event_sources": ["m1"]}
    stale = ("deployments", "gone")  # a row the fold would not write again
    await store.save_views(
        "views", checkpoint, {("functions", FN): json.dumps(old_shape), stale: "{}"}
    )
    assert await ProjectionRunner(store).catch_up() == 1
    checkpoint, rows = await store.load_views("views")
    assert json.loads(rows[("functions", FN)])["event_sources"] == []
    assert stale not in rows
    assert rows == Views.from_rows(checkpoint, rows).to_rows()


def test_deployment_timeline_and_outcome() -> None:
    views = _fold(
        [
            _request(),
            _shift(0.2),
            RollbackStarted(deployment_id="d1", reason="alarm"),
            DeploymentFinished(deployment_id="d1", outcome="rolled_back"),
        ]
    )
    row = views.deployments["d1"]
    assert [s.kind for s in row.steps] == ["requested", "shifted", "rollback", "finished"]
    assert (row.outcome, row.reason, row.commit) == ("rolled_back", "alarm", "c" * 40)
    assert views.commits["c" * 40].deployments == ("d1",)


@pytest.mark.anyio
async def test_runner_run_follows_new_appends() -> None:
    store = MemoryEventStore()
    await store.append(FN, [NewEvent(_request(), Metadata(event_id="a"))])
    runner = ProjectionRunner(store)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            await anyio.wait_all_tasks_blocked()
            assert (await store.load_views("views"))[0] == 1
            await store.append(FN, [NewEvent(_shift(0.5), Metadata(event_id="b"))])
            await anyio.wait_all_tasks_blocked()
            checkpoint, rows = await store.load_views("views")
            tg.cancel_scope.cancel()
    assert checkpoint == 2
    assert '"weight":0.5' in rows[("functions", FN)]
