"""``glam plan`` reads only the events the planner folds; it must see the same state as a full
read and still refuse a log it cannot read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given

from engine.errors import EventDecodeError
from engine.events import Event, Metadata, NewEvent
from engine.events.function import DeploymentFinished, DeploymentRequested, StepStarted
from engine.events.repo import CommitObserved
from engine.planner import (
    DEPLOYED_EVENT_TYPES,
    DeployedState,
    deployed_from_events,
    evolve_deployed,
)
from engine.store.sql_reads import TYPES_BY_INDEX
from engine.store.sqlite import SqliteEventStore
from tests.projections.strategies import any_event, desired_function
from tests.support.unreadable import unreadable_rows

pytestmark = pytest.mark.anyio

REPO = "repo:/r@main"
FN = "fn:1:eu-west-1:orders"


@given(any_event)
def test_deployed_state_ignores_every_other_event_type(event: Event) -> None:
    """What read_selected leaves out cannot change a DeployedState."""
    if event.type in DEPLOYED_EVENT_TYPES:
        return
    state = DeployedState(stream=FN, prefix="p", exists=True, content_hash="h")
    assert evolve_deployed(state, event) is state


async def _log(path: Path) -> None:
    events: list[tuple[str, Event]] = [
        (
            REPO,
            CommitObserved(
                sha="a" * 40, parents=(), author="x", committed_at="t", summary="s", changes=()
            ),
        ),
        (
            FN,
            DeploymentRequested(
                deployment_id="d1",
                commit="a" * 40,
                action="create",
                desired=desired_function("orders"),
            ),
        ),
        (FN, StepStarted(deployment_id="d1", step="create_function")),
        (FN, DeploymentFinished(deployment_id="d1", outcome="succeeded")),
        (
            "repo:/other@main",
            CommitObserved(
                sha="b" * 40, parents=(), author="y", committed_at="t", summary="s", changes=()
            ),
        ),
    ]
    async with SqliteEventStore(path) as store:
        for n, (stream, event) in enumerate(events):
            await store.append(stream, [NewEvent(event, Metadata(event_id=f"e{n}"))])


async def test_selected_read_gives_the_same_deployed_state(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _log(db)
    async with SqliteEventStore(db, readonly=True) as store:
        everything = await store.read_all()
        selected = await store.read_selected(DEPLOYED_EVENT_TYPES, [REPO])
    assert [r.position for r in selected] == [1, 2, 4]  # log order, steps and others left out
    assert deployed_from_events(selected) == deployed_from_events(everything)
    assert deployed_from_events(selected)[FN].exists


@unreadable_rows
async def test_rows_left_out_are_still_checked(
    tmp_path: Path, column: str, value: object, message: str
) -> None:
    db = tmp_path / "glam.db"
    await _log(db)
    conn = sqlite3.connect(db)
    # Position 3 is a StepStarted, a row the selected read does not decode.
    conn.execute(f"UPDATE events SET {column} = ? WHERE position = 3", (value,))  # noqa: S608
    conn.commit()
    conn.close()
    async with SqliteEventStore(db, readonly=True) as store:
        with pytest.raises(EventDecodeError, match=message):
            await store.read_selected(DEPLOYED_EVENT_TYPES, [REPO])


async def test_each_event_is_checked_once_and_every_new_one_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store checks the types of the events it has not checked yet: a second selected read
    scans only what was appended since (the first reads the whole log's types from their
    index), and an unreadable event appended after the first read still fails the next one."""
    db = tmp_path / "glam.db"
    await _log(db)
    async with SqliteEventStore(db) as store:
        seen: list[tuple[str, tuple[object, ...]]] = []
        fetch = store._fetch

        async def recorded(sql: str, params: tuple[object, ...] = ()) -> object:
            seen.append((sql, tuple(params)))
            return await fetch(sql, params)

        monkeypatch.setattr(store, "_fetch", recorded)
        await store.read_selected(DEPLOYED_EVENT_TYPES, [REPO])
        await store.read_selected(DEPLOYED_EVENT_TYPES, [REPO])
        checks = [params for sql, params in seen if "GROUP BY type" in sql]
        last = await store.last_position()
        assert [sql for sql, _ in seen].count(TYPES_BY_INDEX) == 1
        assert checks == [(last,)]
        step = StepStarted(deployment_id="d2", step="x")
        await store.append(FN, [NewEvent(step, Metadata(event_id="e-late"))])
    conn = sqlite3.connect(db)
    conn.execute("UPDATE events SET type = 'FluxCapacitorCharged' WHERE position = ?", (last + 1,))
    conn.commit()
    conn.close()
    async with SqliteEventStore(db, readonly=True) as store:
        await store.read_all(1, limit=last)  # the events before it read as before
        with pytest.raises(EventDecodeError, match="unknown event type"):
            await store.read_selected(DEPLOYED_EVENT_TYPES, [REPO])
