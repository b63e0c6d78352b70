"""Time travel from snapshots: the views at any position equal the fold up to it."""

from __future__ import annotations

import itertools
import math
import sqlite3
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.events import Event, Metadata, NewEvent
from engine.events.repo import CommitObserved
from engine.ports import SnapshotRows
from engine.store.memory import MemoryEventStore
from engine.store.sqlite import SqliteEventStore
from projections import history as history_module
from projections import runner as runner_module
from projections.base import Row
from projections.functions import NAME as FUNCTIONS
from projections.history import History, views_at
from projections.runner import PROJECTION, ProjectionRunner, kept_snapshots
from projections.views import RowsNotRead, SnapshotUnreadable, Views, fold, snapshot_format
from tests.projections.strategies import record_all, stream_events

LOGS = st.lists(stream_events, min_size=1, max_size=40)
_ids = itertools.count()


def _new(event: Event) -> NewEvent:
    return NewEvent(event, Metadata(event_id=f"h{next(_ids)}"))


async def _append(
    store: MemoryEventStore | SqliteEventStore, items: list[tuple[str, Event]]
) -> None:
    for stream, event in items:
        await store.append(stream, [_new(event)])


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(LOGS, st.lists(st.integers(1, 12), max_size=5), st.integers(1, 5), st.integers(2, 4))
def test_views_at_any_position_equal_the_fold_up_to_it(
    items: list[tuple[str, Event]], chunks: list[int], every: int, density: int
) -> None:
    """Whatever the snapshots kept (written while catching up in arbitrary chunks, by fresh
    runners as after restarts, and thinned out), the views at every position equal the fold
    of the log up to it."""
    anyio.run(_travel_everywhere, MemoryEventStore(), items, chunks, every, density)


@settings(max_examples=10, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(LOGS, st.lists(st.integers(1, 12), max_size=5), st.integers(1, 3), st.integers(2, 3))
def test_views_at_any_position_equal_the_fold_up_to_it_on_sqlite(
    items: list[tuple[str, Event]], chunks: list[int], every: int, density: int
) -> None:
    """The same on the SQLite store, whose dropped snapshots leave their rows in place."""

    async def scenario() -> None:
        with tempfile.TemporaryDirectory() as tmp:
            async with SqliteEventStore(Path(tmp) / "glam.db") as store:
                await _travel_everywhere(store, items, chunks, every, density)

    anyio.run(scenario)


async def _travel_everywhere(
    store: MemoryEventStore | SqliteEventStore,
    items: list[tuple[str, Event]],
    chunks: list[int],
    every: int,
    density: int,
) -> None:
    remaining = list(items)
    for size in [*chunks, len(items)]:
        part, remaining = remaining[:size], remaining[size:]
        await _append(store, part)
        runner = ProjectionRunner(store, batch=3, snapshot_every=every, snapshot_density=density)
        await runner.catch_up()
    records = await store.read_all()
    stored = [p for p, _ in await store.snapshots(PROJECTION)]
    assert stored == kept_snapshots(stored, every=every, density=density)
    if len(records) >= every:
        assert stored, "a snapshot every N events"
    travel = History(store)
    for position in range(len(records) + 1):
        expected = fold(records[:position]).as_json()
        assert (await travel.at(position)).as_json() == expected
        fresh = History(store)  # no earlier answers: from a snapshot or the log
        assert (await fresh.at(position)).as_json() == expected
        start, at = fresh.last_start
        nearest = max((p for p in stored if p <= position), default=0)
        assert (start, at) == (("snapshot", nearest) if nearest else ("log", 0))
        shown = await History(store).at(position, whole=(FUNCTIONS,), recent=2)
        _assert_shown_alike(shown, fold(records[:position]))


def _assert_shown_alike(partial: Views, whole: Views) -> None:
    """Views read for what ``glam replay --at`` shows (every function, the two rows of each
    other view changed last) show what the whole views show."""
    assert partial.position == whole.position
    assert _texts(partial.functions) == _texts(whole.functions)
    for view in ("deployments", "commits"):
        assert partial.count(view) == whole.count(view)
        assert _texts(partial.recent(view, 2)) == _texts(whole.recent(view, 2))


def _texts(rows: Iterable[Row] | Mapping[str, Row]) -> list[str]:
    """Rows as JSON: a list in its order, a mapping by key."""
    if isinstance(rows, Mapping):
        return [rows[key].model_dump_json() for key in sorted(rows)]
    return [row.model_dump_json() for row in rows]


def test_kept_snapshots_are_dense_at_the_end_and_logarithmic_in_number() -> None:
    """Thinned as the log grows: the last ``density`` snapshots are ``every`` apart, any
    position has one within a fraction of its age before it, and the count grows with the
    logarithm of the log."""
    every, density = 10, 8
    kept: list[int] = []
    for latest in range(every, 3000 * every + 1, every):
        kept = kept_snapshots([*kept, latest], every=every, density=density)
        assert kept[-1] == latest
        if latest % (97 * every):
            continue
        assert kept[-density:] == list(range(latest - (density - 1) * every, latest + 1, every))
        bound = density + (density // 2 + 2) * math.log2(max(2, latest / (every * density)))
        assert len(kept) <= bound
        for position in range(kept[0], latest + 1, every // 2):
            nearest = max(p for p in kept if p <= position)
            assert position - nearest <= max(every, 4 * (latest - position) // density)


def test_a_fresh_history_answers_from_the_snapshot_then_from_its_own_answers() -> None:
    async def scenario() -> None:
        store = MemoryEventStore()
        items = [("repo:r", event) for _, event in _commits(25)]
        await _append(store, items)
        await ProjectionRunner(store, batch=4, snapshot_every=10).catch_up()
        assert [p for p, _ in await store.snapshots(PROJECTION)] == [10, 20]
        travel = History(store, size=2)
        records = await store.read_all()
        assert (await travel.at(23)).as_json() == fold(records[:23]).as_json()
        assert travel.last_start == ("snapshot", 20)
        assert (await travel.at(23)).position == 23
        assert travel.last_start == ("cache", 23)
        await travel.at(24)
        assert travel.last_start == ("cache", 23)  # nearer than the snapshot
        assert (await travel.at(99)).position == 25  # past the end: the end
        assert (await travel.at(15)).as_json() == fold(records[:15]).as_json()
        assert travel.last_start == ("snapshot", 10)
        # The module-level helper keeps one History per store.
        assert (await views_at(store, 5)).as_json() == fold(records[:5]).as_json()

    anyio.run(scenario)


def test_a_returned_view_is_a_copy() -> None:
    async def scenario() -> None:
        store = MemoryEventStore()
        await _append(store, _commits(3))
        travel = History(store)
        first = await travel.at(3)
        first.commits.clear()
        assert len((await travel.at(3)).commits) == 3

    anyio.run(scenario)


def _commits(count: int) -> list[tuple[str, Event]]:
    return [
        (
            "repo:r",
            CommitObserved(
                sha=f"{n:040x}",
                author="a",
                summary=f"commit {n}",
                committed_at="",
                changes=(),
                parents=(),
            ),
        )
        for n in range(count)
    ]


async def _sqlite_log(path: Path, count: int, every: int) -> list[object]:
    async with SqliteEventStore(path) as store:
        await _append(store, _commits(count))
        await ProjectionRunner(store, snapshot_every=every).catch_up()
        return [v.as_json() for v in [fold((await store.read_all())[:p]) for p in range(count + 1)]]


@pytest.mark.anyio
async def test_a_snapshot_of_another_format_is_ignored_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "glam.db"
    expected = await _sqlite_log(path, 30, every=10)
    monkeypatch.setattr(history_module, "snapshot_format", lambda: "another")
    monkeypatch.setattr(runner_module, "snapshot_format", lambda: "another")
    async with SqliteEventStore(path, readonly=True) as store:
        travel = History(store)
        assert (await travel.at(25)).as_json() == expected[25]
        assert travel.last_start == ("log", 0)
    async with SqliteEventStore(path) as store:
        await _append(store, _commits(1))
        await ProjectionRunner(store, snapshot_every=10).catch_up()
        assert await store.snapshots(PROJECTION) == [(31, "another")]
        views = await store.load_snapshot(PROJECTION, 31, "another")
        assert views is not None
        assert Views.from_snapshot(*views).as_json() == fold(await store.read_all()).as_json()


@pytest.mark.anyio
async def test_a_snapshot_row_that_does_not_decode_is_never_trusted(tmp_path: Path) -> None:
    path = tmp_path / "glam.db"
    expected = await _sqlite_log(path, 30, every=10)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE snapshot_rows SET data = x'00ff' WHERE snapshot = 20")
    async with SqliteEventStore(path, readonly=True) as store:
        travel = History(store)
        views = await travel.at(25)
        assert travel.last_start == ("snapshot", 20)
        with pytest.raises(SnapshotUnreadable, match="does not decode"):
            views.as_json()
        assert (await travel.at(25, snapshots=False)).as_json() == expected[25]
        assert travel.last_start == ("log", 0)


@pytest.mark.anyio
async def test_a_log_without_snapshots_travels_from_position_zero(tmp_path: Path) -> None:
    path = tmp_path / "glam.db"
    expected = await _sqlite_log(path, 12, every=0)
    async with SqliteEventStore(path, readonly=True) as store:
        assert await store.snapshots(PROJECTION) == []
        travel = History(store)
        assert (await travel.at(7)).as_json() == expected[7]
        assert travel.last_start == ("log", 0)


@pytest.mark.anyio
async def test_rebuild_writes_the_snapshots_again(tmp_path: Path) -> None:
    async with SqliteEventStore(tmp_path / "glam.db") as store:
        await _append(store, _commits(25))
        runner = ProjectionRunner(store, snapshot_every=10)
        await runner.catch_up()
        before = await store.snapshots(PROJECTION)
        await runner.rebuild()
        format_ = before[0][1]
        assert await store.snapshots(PROJECTION) == before == [(10, format_), (20, format_)]
        found = await store.load_snapshot(PROJECTION, 20, format_)
        assert found is not None
        expected = fold((await store.read_all())[:20])
        assert Views.from_snapshot(*found).as_json() == expected.as_json()


def test_snapshot_views_decode_only_what_is_read() -> None:
    records = record_all(_commits(5))
    views = fold(records)
    payloads: SnapshotRows = {}
    for view, key in views.row_keys():
        payload = views.payload(view, key)
        assert payload is not None
        payloads.setdefault(view, {})[key] = payload
    lazy = Views.from_snapshot(5, payloads)
    assert lazy.count("commits") == 5
    assert [row.position for row in lazy.recent("commits", 2)] == [4, 5]
    assert len(lazy._rows[2]) == 2  # only those two were decoded
    assert lazy.as_json() == views.as_json()


def test_the_running_projection_saves_snapshots_as_the_log_grows() -> None:
    """The engine's runner (following the log) saves a snapshot every N events too, each
    with its checkpoint, however the appends are grouped."""

    async def scenario() -> None:
        store = MemoryEventStore()
        runner = ProjectionRunner(store, batch=100, snapshot_every=10)
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner.run)
            items = _commits(35)
            await _append(store, items[:3])
            for start in range(3, 35, 8):  # bursts that straddle the snapshot positions
                await store.append("repo:r", [_new(e) for _, e in items[start : start + 8]])
            with anyio.fail_after(5):
                # The store has no event to wait on for "views saved": poll.
                while (await store.load_views(PROJECTION))[0] < 35:  # noqa: ASYNC110
                    await anyio.sleep(0.01)
            tg.cancel_scope.cancel()
        assert [p for p, _ in await store.snapshots(PROJECTION)] == [10, 20, 30]
        records = await store.read_all()
        for at in (10, 20, 30):
            found = await store.load_snapshot(PROJECTION, at, snapshot_format())
            assert found is not None
            assert Views.from_snapshot(*found).as_json() == fold(records[:at]).as_json()

    anyio.run(scenario)


def test_views_read_for_a_few_rows_refuse_the_others() -> None:
    """Of views read for what ``glam replay --at`` shows, only those rows are read from the
    snapshot: the others are counted and ordered, and reading one is refused, never taken
    for a row that does not exist. A snapshot dropped between its listing and its rows is
    read whole instead."""

    async def scenario() -> None:
        store = MemoryEventStore()
        await _append(store, _commits(30))
        await ProjectionRunner(store, batch=4, snapshot_every=10).catch_up()
        records = await store.read_all()
        expected = fold(records[:25])
        partial = await History(store).at(25, whole=(FUNCTIONS,), recent=3)
        assert partial.count("commits") == expected.count("commits") == 25
        assert _texts(partial.recent("commits", 3)) == _texts(expected.recent("commits", 3))
        first = min(expected.commits)
        with pytest.raises(RowsNotRead):
            partial.row("commits", first)
        with pytest.raises(RowsNotRead):
            _ = partial.commits
        with pytest.raises(RowsNotRead):
            partial.as_json()
        assert partial.row("commits", "no such commit") is None

        # Further from the snapshot than a partial read holds in memory: read whole.
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(history_module, "PARTIAL_TAIL", 4)
            far = History(store)
            assert (await far.at(25, whole=(FUNCTIONS,), recent=3)).as_json() == expected.as_json()
            assert far.last_start == ("snapshot", 20)

        async def dropped(*_: object) -> None:
            return None

        travel = History(store)
        store.load_snapshot_rows = dropped  # type: ignore[method-assign,assignment]
        whole = await travel.at(25, whole=(FUNCTIONS,), recent=3)
        assert whole.as_json() == expected.as_json()
        assert travel.last_start == ("snapshot", 20)

    anyio.run(scenario)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(LOGS, st.integers(1, 6), st.integers(0, 6))
def test_the_views_now_from_a_snapshot_are_the_stored_views(
    items: list[tuple[str, Event]], every: int, tail: int
) -> None:
    """What `glam status` reads (``views_now``: the newest snapshot and the events after it,
    rows decoded as read) is what the stored views and the log after them make
    (``current_views``), and the fold of the whole log."""
    from engine.cli import common
    from engine.cli.common import current_views, views_now

    async def _refused(store: object) -> Views:
        raise AssertionError("read the stored views, not the snapshot")

    async def scenario() -> None:
        cut = max(0, len(items) - tail)
        async with MemoryEventStore() as store:
            await _append(store, items[:cut])
            await ProjectionRunner(store, batch=3, snapshot_every=every).catch_up()
            await _append(store, items[cut:])
            expected = fold(await store.read_all()).as_json()
            assert (await current_views(store)).as_json() == expected
            snapshot = bool(await store.snapshots(PROJECTION))
            if snapshot:  # read from it, never from the stored views
                common.current_views = _refused
            try:
                assert (await views_now(store)).as_json() == expected
            finally:
                common.current_views = current_views

    anyio.run(scenario)
