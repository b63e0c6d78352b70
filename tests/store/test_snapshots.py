"""One contract for the snapshots of the ViewStore port (time travel), on every store."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from engine.ports import SnapshotRows, ViewSnapshot
from engine.store.memory import MemoryEventStore
from engine.store.postgres import PostgresEventStore
from engine.store.sqlite import SqliteEventStore
from tests.store.helpers import TickingClock, new_event

Store = MemoryEventStore | SqliteEventStore | PostgresEventStore
F = "format-1"

pytestmark = pytest.mark.anyio


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    clock = TickingClock()
    if request.param == "memory":
        async with MemoryEventStore(now=clock) as memory:
            yield memory
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        async with PostgresEventStore(url, now=clock) as pg:
            yield pg
    else:
        async with SqliteEventStore(tmp_path / "glam.db", now=clock) as db:
            yield db


def _snap(position: int, rows: dict[str, str | None], **options: object) -> ViewSnapshot:
    return ViewSnapshot(
        position,
        str(options.pop("format", F)),
        {
            ("v", key): None if text is None else (position, text.encode())
            for key, text in rows.items()
        },
        **options,  # type: ignore[arg-type]
    )


async def _save(store: Store, snapshot: ViewSnapshot, *, reset: bool = False) -> None:
    await store.save_views("p", snapshot.position, {}, reset=reset, snapshot=snapshot)


def _rows(found: tuple[int, SnapshotRows] | None) -> object:
    if found is None:
        return None
    at, rows = found
    assert set(rows) <= {"v"}
    view = rows.get("v", {})
    return at, {key: (position, data.decode()) for key, (position, data) in view.items()}


async def test_a_log_without_snapshots_has_none(store: Store) -> None:
    assert await store.snapshots("p") == []
    assert await store.load_snapshot("p", 100, F) is None


async def test_each_snapshot_reads_every_row_as_it_was_then(store: Store) -> None:
    """Snapshots are deltas; each one reads the latest version of every row at it."""
    await _save(store, _snap(10, {"a": "a1", "b": "b1"}))
    await _save(store, _snap(20, {"b": "b2", "c": "c2"}))
    await _save(store, _snap(30, {"a": None}))  # a row deleted
    assert await store.snapshots("p") == [(10, F), (20, F), (30, F)]
    assert await store.load_snapshot("p", 9, F) is None
    assert _rows(await store.load_snapshot("p", 19, F)) == (10, {"a": (10, "a1"), "b": (10, "b1")})
    assert _rows(await store.load_snapshot("p", 20, F)) == (
        20,
        {"a": (10, "a1"), "b": (20, "b2"), "c": (20, "c2")},
    )
    assert _rows(await store.load_snapshot("p", 99, F)) == (
        30,
        {"b": (20, "b2"), "c": (20, "c2")},
    )
    assert await store.load_snapshot("p", 99, "another format") is None
    assert await store.load_snapshot("other", 99, F) is None


async def test_dropping_a_snapshot_keeps_the_others_reading_the_same(store: Store) -> None:
    await _save(store, _snap(10, {"a": "a1", "b": "b1"}))
    await _save(store, _snap(20, {"b": "b2"}))
    await _save(store, _snap(30, {"c": "c3"}))
    before = {at: _rows(await store.load_snapshot("p", at, F)) for at in (20, 30)}
    await _save(store, _snap(40, {"a": "a4"}, drop=[10, 30]))
    assert await store.snapshots("p") == [(20, F), (40, F)]
    assert await store.load_snapshot("p", 19, F) is None
    assert _rows(await store.load_snapshot("p", 20, F)) == before[20]
    assert _rows(await store.load_snapshot("p", 39, F)) == before[20]
    assert _rows(await store.load_snapshot("p", 40, F)) == (
        40,
        {"a": (40, "a4"), "b": (20, "b2"), "c": (30, "c3")},
    )
    # The latest is never dropped, whatever is asked.
    await _save(store, _snap(50, {}, drop=[50, 40]))
    assert await store.snapshots("p") == [(20, F), (50, F)]
    assert _rows(await store.load_snapshot("p", 50, F)) == (
        50,
        {"a": (40, "a4"), "b": (20, "b2"), "c": (30, "c3")},
    )


def _listed(found: tuple[int, SnapshotRows] | None) -> object:
    """What ``list_snapshot`` should say of what ``load_snapshot`` found."""
    if found is None:
        return None
    at, rows = found
    return at, {v: {k: p for k, (p, _) in r.items()} for v, r in rows.items() if r}


async def test_a_listing_and_rows_by_key_read_what_the_whole_snapshot_reads(
    store: Store,
) -> None:
    await _save(store, _snap(10, {"a": "a1", "b": "b1"}))
    await _save(store, _snap(20, {"b": "b2", "c": "c2"}))
    await _save(store, _snap(30, {"a": None}))  # a row deleted
    keys = [("v", key) for key in ("a", "b", "c", "never")]
    for position in (9, 10, 19, 20, 29, 30, 99):
        whole = await store.load_snapshot("p", position, F)
        assert await store.list_snapshot("p", position, F) == _listed(whole)
        if whole is not None:
            rows = await store.load_snapshot_rows("p", whole[0], keys)
            assert rows == {("v", key): value for key, value in whole[1].get("v", {}).items()}
    assert await store.list_snapshot("p", 99, "another format") is None
    assert await store.list_snapshot("other", 99, F) is None
    assert await store.load_snapshot_rows("p", 30, []) == {}


async def test_rows_by_key_come_in_any_number(store: Store) -> None:
    many: dict[str, str | None] = {f"k{i:04}": f"v{i}" for i in range(1_001)}
    await _save(store, _snap(10, many))
    await _save(store, _snap(20, {"k0005": "changed", "k0006": None}))
    listed = await store.list_snapshot("p", 20, F)
    assert listed is not None
    assert len(listed[1]["v"]) == 1_000
    rows = await store.load_snapshot_rows("p", 20, [("v", key) for key in many])
    assert rows is not None
    assert len(rows) == 1_000
    assert rows[("v", "k0005")] == (20, b"changed")
    assert rows[("v", "k1000")] == (10, b"v1000")
    assert ("v", "k0006") not in rows


async def test_rows_by_key_of_a_snapshot_no_longer_stored_are_refused(store: Store) -> None:
    """A snapshot the runner drops while a reader is between its listing and its rows has
    lost row versions: the reader is told, never given another snapshot's rows."""
    await _save(store, _snap(10, {"a": "a1"}))
    await _save(store, _snap(20, {"a": "a2"}))
    assert await store.load_snapshot_rows("p", 10, [("v", "a")]) == {("v", "a"): (10, b"a1")}
    await _save(store, _snap(30, {}, drop=[10]))
    assert await store.load_snapshot_rows("p", 10, [("v", "a")]) is None
    assert await store.load_snapshot_rows("p", 15, [("v", "a")]) is None  # never one there
    await store.save_views("p", 5, {}, reset=True)
    assert await store.load_snapshot_rows("p", 20, [("v", "a")]) is None


async def test_clear_and_reset_forget_every_snapshot(store: Store) -> None:
    await _save(store, _snap(10, {"a": "a1"}))
    await _save(store, _snap(20, {"b": "b2"}, format="format-2", clear=True))
    assert await store.snapshots("p") == [(20, "format-2")]
    assert _rows(await store.load_snapshot("p", 20, "format-2")) == (20, {"b": (20, "b2")})
    await store.save_views("p", 5, {("v", "x"): "{}"}, reset=True)
    assert await store.snapshots("p") == []
    assert await store.load_views("p") == (5, {("v", "x"): "{}"})


async def test_a_snapshot_is_saved_with_its_checkpoint(store: Store) -> None:
    await store.save_views("p", 7, {("v", "a"): "{}"}, snapshot=_snap(7, {"a": "{}"}))
    assert await store.load_views("p") == (7, {("v", "a"): "{}"})
    assert await store.snapshots("p") == [(7, F)]
    with pytest.raises(AssertionError):
        await store.save_views("p", 8, {}, snapshot=_snap(9, {}))


async def test_an_sqlite_log_from_before_snapshots(tmp_path: Path) -> None:
    """A log written before snapshots existed has none: read-only it reads as such, and the
    first writer to open it adds the tables."""
    path = tmp_path / "old.db"
    async with SqliteEventStore(path) as db:
        await db.append("s", [new_event()])
    with sqlite3.connect(path) as conn:
        conn.executescript("DROP TABLE snapshot_rows; DROP TABLE view_snapshots;")
    async with SqliteEventStore(path, readonly=True) as db:
        assert await db.snapshots("views") == []
        assert await db.load_snapshot("views", 1, F) is None
    async with SqliteEventStore(path) as db:
        await _save(db, _snap(1, {"a": "a1"}))
        assert await db.snapshots("p") == [(1, F)]
