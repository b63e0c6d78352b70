"""Logs written by earlier glam versions must keep replaying to the same views.

Each ``log-<version>.jsonl`` is an export of the ``events`` rows a released glam wrote, with
``views-<version>.json`` the views they folded into then. A change to an event model, an
upcaster, the codec, the hash chain or a view that breaks old logs fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from engine.events import EVENT_CLASSES
from engine.events.function import AlarmObserved
from engine.store.records import StoredRow, to_recorded, verify_rows
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from projections.views import Views, fold

HERE = Path(__file__).parent
LOGS = sorted(HERE.glob("log-*.jsonl"))


def _rows(log: Path) -> list[StoredRow]:
    return [StoredRow(**json.loads(line)) for line in log.read_text().splitlines()]


def _snapshot(log: Path) -> object:
    return json.loads(
        (HERE / log.name.replace("log-", "views-").replace(".jsonl", ".json")).read_text()
    )


def test_there_is_a_golden_log() -> None:
    assert LOGS


def test_every_event_type_is_in_a_golden_log() -> None:
    """A new event type needs a new golden log (tests/golden/generate.py), so that the logs it
    writes are held to replaying forever like the others."""
    seen = {json.loads(line)["type"] for log in LOGS for line in log.read_text().splitlines()}
    assert set(EVENT_CLASSES) - seen == set()


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_golden_log_chain_verifies(log: Path) -> None:
    assert verify_rows(_rows(log)) is None


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_golden_log_replays_into_its_views(log: Path) -> None:
    views = fold(to_recorded(row) for row in _rows(log))
    assert views.as_json() == _snapshot(log)


@pytest.mark.parametrize("log", LOGS, ids=[p.stem for p in LOGS])
def test_golden_log_through_the_sqlite_store_and_runner(log: Path, tmp_path: Path) -> None:
    """Loaded into a real database, the runner stores exactly the snapshot's views."""
    db = tmp_path / "glam.db"
    rows = _rows(log)

    async def go() -> None:
        async with SqliteEventStore(db) as store:
            await store.import_rows(rows)
            assert await store.verify() is None
            await ProjectionRunner(store, batch=5).catch_up()
            stored = Views.from_rows(*await store.load_views("views"))
        assert stored.as_json() == _snapshot(log)

    anyio.run(go)


def test_alarm_readings_decode_from_their_golden_log() -> None:
    """The metric and datapoints an alarm observation carries read back as written; the
    composite alarm's observation has neither (as in every log before these fields)."""
    log = HERE / "log-0.3-alarm-readings.jsonl"
    observed = {
        e.event.alarm: e.event
        for e in (to_recorded(r) for r in _rows(log))
        if isinstance(e.event, AlarmObserved)
    }
    errors = observed["orders-errors"]
    assert errors.metric is not None
    assert errors.metric.name == "Errors"
    assert errors.metric.comparison == "GreaterThanOrEqualToThreshold"
    assert [p.value for p in errors.datapoints] == [0.0, 0.0, 3.0]
    assert observed["orders-p99"].metric is not None
    assert observed["orders-p99"].metric.statistic == "p99"
    assert observed["orders-health"].metric is None
    assert observed["orders-health"].datapoints == ()
