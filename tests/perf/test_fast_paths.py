"""The fold's fast paths give exactly what the general paths give, and keep failing loudly.

Decoding goes straight from the stored text to the event's own validator, metadata text is
parsed once per distinct text, view rows are copied without ``model_copy``: each shortcut is
held here to the result of the path it replaces.
"""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from pydantic import ValidationError

from engine.errors import EventDecodeError
from engine.events import EVENT_ADAPTER, Event, Metadata, NewEvent, decode, encode
from engine.events.function import StepStarted
from engine.store.records import (
    GENESIS_HASH,
    decode_values,
    encode_metadata,
    gc_paused,
    make_row,
    to_recorded,
)
from projections.base import built, with_changes
from projections.deployments import TimelineEntry
from projections.functions import FunctionRow
from tests.projections.strategies import any_event

metadata = Metadata(event_id="e1", actor="ops", commit="c" * 40, deployment_id="d1")


@given(any_event)
def test_fast_decode_equals_union_validation(event: Event) -> None:
    """The per-type JSON path and the union's Python path agree on every event."""
    type_name, version, data = encode(event)
    expected = EVENT_ADAPTER.validate_python({**json.loads(data), "type": type_name})
    assert decode(type_name, version, data) == expected == event
    assert decode(type_name, version, json.loads(data)) == expected


@pytest.mark.parametrize(
    ("type_name", "version", "data", "message"),
    [
        pytest.param("Nope", 1, "{}", "unknown event type", id="unknown-type"),
        pytest.param("StepStarted", 9, "{}", "schema version 9", id="future-version"),
        pytest.param(
            "StepStarted", 1, '{"deployment_id":"d","step":"s","x":1}', "x", id="extra-field"
        ),
        pytest.param(
            "StepStarted",
            1,
            '{"deployment_id":"d","step":"s","type":"StepFailed"}',
            "StepStarted",
            id="smuggled-type",
        ),
        pytest.param("StepStarted", 1, '{"deployment_id":"d"', "Invalid JSON", id="bad-json"),
    ],
)
def test_fast_decode_still_fails_loudly(
    type_name: str, version: int, data: str, message: str
) -> None:
    with pytest.raises(EventDecodeError, match=message):
        decode(type_name, version, data)


def _row(event_id: str, meta: Metadata) -> tuple[object, ...]:
    row = make_row(
        NewEvent(
            StepStarted(deployment_id="d", step="s"), meta.model_copy(update={"event_id": event_id})
        ),
        stream="fn:1:eu-west-1:f",
        version=1,
        position=1,
        recorded_at="2025-01-01T00:00:00.000000+00:00",
        prev_hash=GENESIS_HASH,
    )
    return row.as_tuple()


def test_metadata_cache_keeps_each_event_id() -> None:
    """Two events sharing one metadata text each keep their own event_id."""
    first = decode_values(_row("a", metadata))
    second = decode_values(_row("b", metadata))
    assert first.meta == metadata.model_copy(update={"event_id": "a"})
    assert second.meta.event_id == "b"
    assert second.meta.model_fields_set == first.meta.model_fields_set


def test_decode_values_equals_to_recorded() -> None:
    new = NewEvent(StepStarted(deployment_id="d", step="s"), metadata)
    row = make_row(
        new,
        stream="fn:1:eu-west-1:f",
        version=1,
        position=1,
        recorded_at="2025-01-01T00:00:00.000000+00:00",
        prev_hash=GENESIS_HASH,
    )
    assert decode_values(row.as_tuple()) == to_recorded(row)
    assert encode_metadata(to_recorded(row).meta) == row.metadata


def test_invalid_metadata_still_fails() -> None:
    """Bad metadata fails as an unreadable event naming its position (never its content)."""
    values = list(_row("a", metadata))
    values[7] = '{"actor": 5}'
    with pytest.raises(EventDecodeError, match=r"position 1 .* its metadata does not validate"):
        decode_values(values)
    values[7] = "[]"
    with pytest.raises(EventDecodeError, match=r"position 1 .* its metadata"):
        decode_values(values)


def test_with_changes_equals_model_copy() -> None:
    row = FunctionRow(
        stream="fn:1:eu-west-1:f",
        account="1",
        region="eu-west-1",
        name="f",
        position=1,
        updated_at="2025-01-01T00:00:00+00:00",
    )
    changes = {"state": "stable", "weight": 0.5, "position": 2}
    fast, slow = with_changes(row, changes), row.model_copy(update=changes)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump_json() == slow.model_dump_json()
    assert row.state == "pending"  # the original is untouched
    with pytest.raises(ValidationError):
        fast.state = "failed"  # type: ignore[misc]  # still frozen


def test_with_changes_of_fields_already_set_equals_model_copy() -> None:
    row = FunctionRow(
        stream="fn:1:eu-west-1:f",
        account="1",
        region="eu-west-1",
        name="f",
        state="stable",
        position=1,
        updated_at="2025-01-01T00:00:00+00:00",
    )
    fast, slow = with_changes(row, {"state": "failed"}), row.model_copy(update={"state": "failed"})
    assert (fast, fast.model_fields_set) == (slow, slow.model_fields_set)


def test_built_equals_the_validated_model() -> None:
    values = {
        "position": 3,
        "at": datetime(2025, 1, 1, tzinfo=UTC),
        "kind": "shifted",
        "name": "live",
        "detail": "",
    }
    fast, slow = built(TimelineEntry, dict(values)), TimelineEntry(**values)
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump_json() == slow.model_dump_json()
    assert TimelineEntry.model_validate_json(fast.model_dump_json()) == slow
    with pytest.raises(ValidationError):
        fast.kind = "x"  # type: ignore[misc]  # still frozen


def test_gc_paused_restores_the_collector() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError
    assert gc.isenabled()


def test_gc_pauses_may_overlap_in_any_order() -> None:
    """Two tasks' sections ending in the opposite order still turn the collector back on."""
    first, second = gc_paused(), gc_paused()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not gc.isenabled()
    second.__exit__(None, None, None)
    assert gc.isenabled()


def test_gc_paused_leaves_a_disabled_collector_disabled() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
