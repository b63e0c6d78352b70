"""The first check of a log's event types reads the index of types and schema versions (a few
seeks per type) instead of scanning every event: it must find what the scan finds, refuse
what the scan refuses, and a log without the index (an earlier glam's) is checked as before."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import EventDecodeError
from engine.events import Metadata, NewEvent
from engine.events.function import DeploymentFinished, StepStarted
from engine.planner import DEPLOYED_EVENT_TYPES
from engine.store.postgres import PostgresEventStore
from engine.store.sql_reads import TYPE_INDEX, TYPES_BY_INDEX
from engine.store.sqlite import SqliteEventStore
from tests.support.postgres import TempPostgres
from tests.support.unreadable import unreadable_rows

pytestmark = pytest.mark.anyio

FN = "fn:1:eu-west-1:orders"
GROUPED = (
    "SELECT type, max(schema_version), min(position), max(position) FROM events "
    "GROUP BY type ORDER BY type"
)


async def _log(store: SqliteEventStore | PostgresEventStore, events: int = 6) -> None:
    for n in range(events):
        event = (
            StepStarted(deployment_id=f"d{n}", step="create_function")
            if n % 3
            else DeploymentFinished(deployment_id=f"d{n}", outcome="succeeded")
        )
        await store.append(FN, [NewEvent(event, Metadata(event_id=f"e{n}"))])


def _as_index_reads(rows: list[tuple[object, ...]], last: int) -> list[tuple[object, ...]]:
    """The grouped rows as the index query gives them: no first position (looked up only
    for a type refused), the log's last position in each."""
    return [(t, version, None, last) for t, version, _, _ in rows]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(["A", "B", "Ba", "a", "Z z", "é"]), st.integers(1, 4)),
        min_size=0,
        max_size=30,
    )
)
def test_the_index_finds_what_grouping_finds(rows: list[tuple[str, int]]) -> None:
    """On any mix of types and schema versions (SQLite's own table, the query alone)."""
    conn = sqlite3.connect(":memory:")
    conn.execute(
        "CREATE TABLE events (position INTEGER PRIMARY KEY, type TEXT, schema_version INTEGER)"
    )
    conn.execute("CREATE INDEX events_by_type ON events (type, position)")
    conn.execute(f"CREATE INDEX {TYPE_INDEX} ON events (type, schema_version)")
    conn.executemany("INSERT INTO events (type, schema_version) VALUES (?, ?)", rows)
    last = len(rows)
    grouped = _as_index_reads(conn.execute(GROUPED).fetchall(), last)
    assert sorted(conn.execute(TYPES_BY_INDEX).fetchall()) == sorted(grouped)
    steps = [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {TYPES_BY_INDEX}")]
    # Seeks only: no step walks the table, and each type's newest version is read from the
    # index alone (without it SQLite reads every row of the type).
    assert not [s for s in steps if s.startswith(("SCAN e", "SCAN events"))], steps
    assert f"SEARCH e USING COVERING INDEX {TYPE_INDEX} (type=?)" in steps, steps


async def _checks_of(
    store: SqliteEventStore | PostgresEventStore, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """The statements the first selected read of ``store`` checks the types with."""
    seen: list[str] = []
    fetch = store._fetch

    async def recorded(sql: str, params: tuple[object, ...] = ()) -> object:
        seen.append(sql)
        return await fetch(sql, params)

    monkeypatch.setattr(store, "_fetch", recorded)
    await store.read_selected(DEPLOYED_EVENT_TYPES)
    return [s for s in seen if s == TYPES_BY_INDEX or "GROUP BY type" in s]


def _drop_index(db: Path) -> None:
    conn = sqlite3.connect(db)
    conn.execute(f"DROP INDEX {TYPE_INDEX}")
    conn.commit()
    conn.close()


def _has_index(db: Path) -> bool:
    conn = sqlite3.connect(db)
    try:
        return bool(
            conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = ?", (TYPE_INDEX,)
            ).fetchone()[0]
        )
    finally:
        conn.close()


async def test_a_new_log_has_the_index_and_its_first_check_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "glam.db"
    async with SqliteEventStore(db) as store:
        await _log(store)
    assert _has_index(db)
    async with SqliteEventStore(db, readonly=True) as store:
        assert await _checks_of(store, monkeypatch) == [TYPES_BY_INDEX]


async def test_a_log_of_an_earlier_glam_is_grouped_then_given_the_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read-only, a log without the index is checked by grouping; the next writer adds it."""
    db = tmp_path / "glam.db"
    async with SqliteEventStore(db) as store:
        await _log(store)
    _drop_index(db)
    async with SqliteEventStore(db, readonly=True) as store:
        checks = await _checks_of(store, monkeypatch)
    assert len(checks) == 1
    assert "GROUP BY type" in checks[0]
    assert not _has_index(db)  # a reader never writes
    async with SqliteEventStore(db):
        pass
    assert _has_index(db)


@pytest.mark.parametrize("indexed", [True, False], ids=["index", "earlier-glam"])
@unreadable_rows
async def test_an_unreadable_row_is_refused_at_its_position_either_way(
    tmp_path: Path, indexed: bool, column: str, value: object, message: str
) -> None:
    db = tmp_path / "glam.db"
    async with SqliteEventStore(db) as store:
        await _log(store)
    conn = sqlite3.connect(db)
    # Positions 5 and 6 are StepStarted rows, which the selected read does not decode.
    for position in (6, 5):
        conn.execute(f"UPDATE events SET {column} = ? WHERE position = ?", (value, position))  # noqa: S608
    conn.commit()
    conn.close()
    if not indexed:
        _drop_index(db)
    async with SqliteEventStore(db, readonly=True) as store:
        with pytest.raises(EventDecodeError, match=message) as raised:
            await store.read_selected(DEPLOYED_EVENT_TYPES)
    # The first event of the refused type, as the grouped check has always named it: the
    # renamed rows' first, or the first StepStarted (position 2) for the newer version.
    first = 5 if column == "type" else 2
    assert str(raised.value).startswith(f"the event at position {first} cannot be read")


async def test_postgres_reads_the_index_and_a_log_without_it_is_grouped(
    postgres_server: TempPostgres, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with PostgresEventStore(postgres_url, readonly=False) as store:
        await _log(store)
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        assert await _checks_of(store, monkeypatch) == [TYPES_BY_INDEX]
        rows = await store._fetch(TYPES_BY_INDEX)
        last = await store.last_position()
        grouped = _as_index_reads(await store._fetch(GROUPED), last)
        assert sorted(rows) == sorted(grouped)
        assert {r[0] for r in rows} == {"StepStarted", "DeploymentFinished"}
    database = postgres_url.rsplit("/", 1)[1]
    postgres_server.sql(f"DROP INDEX {TYPE_INDEX}", database=database)
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        checks = await _checks_of(store, monkeypatch)
        assert len(checks) == 1
    assert "GROUP BY type" in checks[0]


async def test_a_postgres_log_of_an_earlier_glam_is_told_how_to_add_the_index(
    postgres_server: TempPostgres,
    postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """On PostgreSQL an engine does not build the index on a log of an earlier glam (a build
    waits for every older transaction, and two engines starting at once deadlock on it): it
    logs the statement that does, which then works beside the log; an index a build left
    invalid is not read, and the statement drops it first."""
    async with PostgresEventStore(postgres_url, readonly=False) as store:
        await _log(store)
    database = postgres_url.rsplit("/", 1)[1]

    def index_state() -> object:
        return postgres_server.sql(
            "SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname = %s",
            (TYPE_INDEX,),
            database=database,
        )

    postgres_server.sql(f"DROP INDEX {TYPE_INDEX}", database=database)
    with caplog.at_level("INFO", logger="glam.store"):
        async with PostgresEventStore(postgres_url, readonly=False) as store:
            checks = await _checks_of(store, monkeypatch)
    assert "GROUP BY type" in checks[0]
    assert index_state() == []  # nothing built at the start
    statement = caplog.text.rsplit("as the tables' owner: ", 1)[1].splitlines()[0]
    assert statement.startswith(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {TYPE_INDEX}")
    postgres_server.sql(statement, database=database)
    assert index_state() == [(True,)]
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        assert await _checks_of(store, monkeypatch) == [TYPES_BY_INDEX]

    postgres_server.sql(
        "UPDATE pg_index SET indisvalid = false WHERE indexrelid = %s::regclass",
        (TYPE_INDEX,),
        database=database,
    )
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        checks = await _checks_of(store, monkeypatch)
    assert "GROUP BY type" in checks[0]
    caplog.clear()
    with caplog.at_level("INFO", logger="glam.store"):
        async with PostgresEventStore(postgres_url, readonly=False):
            pass
    assert f"DROP INDEX CONCURRENTLY {TYPE_INDEX}; CREATE INDEX CONCURRENTLY" in caplog.text
