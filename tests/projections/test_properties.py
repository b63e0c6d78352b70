"""The properties event sourcing relies on, over generated logs."""

from __future__ import annotations

import itertools
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EventDecodeError
from engine.events import UPCASTERS, Event, Metadata, NewEvent, decode, encode
from engine.events.function import RollbackStarted
from engine.store.memory import MemoryEventStore
from projections.runner import ProjectionRunner
from projections.views import Views, fold
from tests.projections.strategies import any_event, record_all, stream_events

LOGS = st.lists(stream_events, max_size=40)


@given(any_event)
def test_encode_decode_round_trip(event: Event) -> None:
    assert decode(*encode(event)) == event


@given(any_event)
def test_encoding_is_canonical(event: Event) -> None:
    assert encode(decode(*encode(event))) == encode(event)


def test_old_schema_versions_are_upcast_before_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    """A v1 RollbackStarted stored with `why` reads as the v2 shape with `reason`."""

    def v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
        raw = dict(raw)
        raw["reason"] = raw.pop("why")
        return raw

    monkeypatch.setattr(RollbackStarted, "SCHEMA_VERSION", 2)
    monkeypatch.setitem(UPCASTERS, ("RollbackStarted", 1), v1_to_v2)
    event = decode("RollbackStarted", 1, '{"deployment_id":"d","why":"alarm"}')
    assert event == RollbackStarted(deployment_id="d", reason="alarm")
    with pytest.raises(EventDecodeError, match="schema version 3"):
        decode("RollbackStarted", 3, '{"deployment_id":"d","reason":"x"}')


@given(LOGS, st.integers(0, 40))
def test_fold_split_anywhere_equals_fold_all(items: list[tuple[str, Event]], cut: int) -> None:
    records = record_all(items)
    start = fold(records[:cut])
    snapshot = start.as_json()
    assert fold(records[cut:], start).as_json() == fold(records).as_json()
    assert start.as_json() == snapshot  # fold is pure: its start is untouched


@given(LOGS)
def test_views_survive_their_row_serialization(items: list[tuple[str, Event]]) -> None:
    views = fold(record_all(items))
    assert Views.from_rows(views.position, views.to_rows()).as_json() == views.as_json()


@settings(max_examples=30, suppress_health_check=[HealthCheck.too_slow])
@given(LOGS, st.lists(st.integers(1, 10), max_size=6), st.integers(1, 7))
def test_rebuild_equals_incremental(
    items: list[tuple[str, Event]], chunks: list[int], batch: int
) -> None:
    """Catching up in arbitrary chunks and batches stores the same rows as one rebuild."""

    async def scenario() -> None:
        store = MemoryEventStore()
        runner = ProjectionRunner(store, batch=batch)
        remaining = list(items)
        for size in [*chunks, len(items)]:
            part, remaining = remaining[:size], remaining[size:]
            for stream, event in part:
                await store.append(stream, [_new(event)])
            await runner.catch_up()
            # A fresh runner resumes from what was stored, as after a restart.
            runner = ProjectionRunner(store, batch=batch)
        incremental = await store.load_views("views")
        await ProjectionRunner(store, batch=batch).rebuild()
        rebuilt = await store.load_views("views")
        assert rebuilt == incremental
        assert incremental[0] == len(items)
        direct = fold(await store.read_all())
        assert Views.from_rows(*rebuilt).as_json() == direct.as_json()

    anyio.run(scenario)


_counter = itertools.count()


def _new(event: Event) -> NewEvent:
    return NewEvent(event, Metadata(event_id=f"n{next(_counter)}"))
