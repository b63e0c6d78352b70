"""One contract for the EventStore port, run against every implementation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from engine.errors import ConcurrencyConflict, StoreError
from engine.ports import ANY_VERSION, NO_STREAM
from engine.store.memory import MemoryEventStore
from engine.store.postgres import PostgresEventStore
from engine.store.sqlite import SqliteEventStore
from tests.store.helpers import TickingClock, new_event

Store = MemoryEventStore | SqliteEventStore | PostgresEventStore


@pytest.fixture(
    params=["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    clock = TickingClock()
    if request.param == "memory":
        async with MemoryEventStore(now=clock) as memory:
            yield memory
    elif request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")  # a real server, a fresh database
        async with PostgresEventStore(url, now=clock) as pg:  # woken by NOTIFY, not polls
            yield pg
    else:
        async with SqliteEventStore(tmp_path / "glam.db", now=clock, poll_interval=0.05) as db:
            yield db


pytestmark = pytest.mark.anyio


async def test_positions_and_versions_start_at_one_and_are_contiguous(store: Store) -> None:
    a = await store.append("s1", [new_event(), new_event()], NO_STREAM)
    b = await store.append("s2", [new_event()], NO_STREAM)
    c = await store.append("s1", [new_event()], 2)
    assert [r.position for r in a + b + c] == [1, 2, 3, 4]
    assert [r.version for r in a + c] == [1, 2, 3]
    assert b[0].version == 1
    assert await store.last_position() == 4
    assert await store.stream_version("s1") == 3
    assert await store.stream_version("missing") == 0


async def test_stale_expected_version_conflicts_and_writes_nothing(store: Store) -> None:
    await store.append("s", [new_event()], NO_STREAM)
    with pytest.raises(ConcurrencyConflict, match="at version 1, expected 0"):
        await store.append("s", [new_event(), new_event()], NO_STREAM)
    with pytest.raises(ConcurrencyConflict):
        await store.append("s", [new_event()], 5)
    assert await store.last_position() == 1


async def test_any_version_skips_the_check(store: Store) -> None:
    await store.append("s", [new_event()], ANY_VERSION)
    recorded = await store.append("s", [new_event()])
    assert recorded[0].version == 2


async def test_repeated_event_id_is_a_no_op_returning_the_stored_record(store: Store) -> None:
    first = await store.append("s", [new_event("x1"), new_event("x2")], NO_STREAM)
    again = await store.append("s", [new_event("x1"), new_event("x2")], NO_STREAM)
    assert again == first
    assert await store.last_position() == 2
    # Ids already stored inside a larger append are returned as stored, the rest appended.
    mixed = await store.append("s", [new_event("x2"), new_event("x3")], 2)
    assert [r.position for r in mixed] == [2, 3]


async def test_records_round_trip_event_and_metadata(store: Store) -> None:
    sent = new_event("rt", reason="alarm Errors in ALARM — rolling back")
    (recorded,) = await store.append("fn:1:eu-west-1:orders", [sent], NO_STREAM)
    (read,) = await store.read_stream("fn:1:eu-west-1:orders")
    assert read == recorded
    assert read.event == sent.event
    assert read.meta == sent.meta
    assert read.recorded_at.tzinfo is not None
    assert len(read.hash) == 64


async def test_read_stream_and_read_all_filter_and_page(store: Store) -> None:
    for i in range(5):
        await store.append("a" if i % 2 else "b", [new_event()])
    assert [r.version for r in await store.read_stream("b", from_version=2)] == [2, 3]
    assert [r.position for r in await store.read_all(2, limit=2)] == [2, 3]
    assert [r.position for r in await store.read_all(4)] == [4, 5]
    assert await store.read_all(9) == []
    assert await store.read_stream("nothing") == []


async def test_follow_replays_then_wakes_on_new_appends(store: Store) -> None:
    await store.append("s", [new_event()])
    seen: list[int] = []

    async def consume() -> None:
        async for record in store.follow(1):
            seen.append(record.position)
            if len(seen) == 3:
                return

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await anyio.wait_all_tasks_blocked()
            await store.append("s", [new_event(), new_event()])
    assert seen == [1, 2, 3]


async def test_follow_pages_through_a_long_log_then_ends_when_the_store_closes(
    store: Store,
) -> None:
    """A follower reads a log longer than one page (1,000 events) in order, none skipped or
    repeated, from any position; once the store is closed its loop ends instead of waiting."""
    events = [new_event() for _ in range(2_345)]
    for start in range(0, len(events), 500):
        await store.append("s", events[start : start + 500])
    seen: list[int] = []
    caught_up = anyio.Event()

    async def consume() -> None:
        async for record in store.follow(7):
            seen.append(record.position)
            if record.position == len(events):
                caught_up.set()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume)
            await caught_up.wait()
            await store.aclose()  # the follower wakes and its loop ends
    assert seen == list(range(7, len(events) + 1))


async def test_hash_chain_verifies(store: Store) -> None:
    for _ in range(3):
        await store.append("s", [new_event()])
    assert await store.verify() is None
    rows = await store.read_rows()
    assert rows[0].prev_hash == "0" * 64
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]


async def test_position_at_a_time(store: Store) -> None:
    await store.append("s", [new_event()])  # recorded 2025-01-01T00:00:01
    await store.append("s", [new_event()])  # ...:02
    assert await store.position_at(datetime(2025, 1, 1, 0, 0, 1, 500, tzinfo=UTC)) == 1
    assert await store.position_at(datetime(2024, 1, 1, tzinfo=UTC)) == 0
    assert await store.position_at(datetime(2026, 1, 1, tzinfo=UTC)) == 2


async def test_views_and_checkpoint_saved_together(store: Store) -> None:
    assert await store.load_views("p") == (0, {})
    await store.save_views("p", 3, {("functions", "a"): "{}", ("functions", "b"): "{}"})
    await store.save_views("p", 5, {("functions", "a"): None, ("commits", "c"): "[]"})
    assert await store.load_views("p") == (
        5,
        {("functions", "b"): "{}", ("commits", "c"): "[]"},
    )
    await store.save_views("p", 1, {("x", "y"): "1"}, reset=True)
    assert await store.load_views("p") == (1, {("x", "y"): "1"})
    assert await store.load_views("other") == (0, {})


async def test_rows_of_one_view_by_key(store: Store) -> None:
    """``load_rows``: one view's rows, all or by key (none, a few, more than one statement
    takes), with the projection's checkpoint."""
    rows: dict[tuple[str, str], str | None] = {
        ("state", f"k{i:04d}"): f'"{i}"' for i in range(1200)
    }
    rows[("summary", "k0001")] = '"s"'
    await store.save_views("p", 7, rows)
    checkpoint, everything = await store.load_rows("p", "state")
    assert checkpoint == 7
    assert len(everything) == 1200
    assert everything["k0042"] == '"42"'
    wanted = [f"k{i:04d}" for i in range(0, 1200, 2)] + ["missing"]
    assert (await store.load_rows("p", "state", wanted))[1] == {
        k: f'"{int(k[1:])}"' for k in wanted if k != "missing"
    }
    assert await store.load_rows("p", "state", []) == (7, {})
    assert await store.load_rows("p", "summary", ["k0001", "k0002"]) == (7, {"k0001": '"s"'})
    assert await store.load_rows("other", "state") == (0, {})


async def test_selected_events_after_a_position(store: Store) -> None:
    for stream in ("fn:a", "repo:r", "fn:b", "repo:r"):
        await store.append(stream, [new_event()])
    selected = await store.read_selected(set(), ["repo:r"], after=2)
    assert [r.position for r in selected] == [4]
    assert [r.position for r in await store.read_selected(set(), ["repo:r"])] == [2, 4]


async def test_closed_store_refuses_appends(store: Store) -> None:
    await store.aclose()
    with pytest.raises(StoreError):
        await store.append("s", [new_event()])


@pytest.mark.parametrize("yields", [0, 1, 2, 3, 5])
async def test_a_cancelled_load_views_leaves_the_store_readable(store: Store, yields: int) -> None:
    """A load_views cancelled part way (Ctrl-C, a sibling task failing) leaves no read
    half done: later reads see new appends, and the next load_views works."""
    await store.append("s", [new_event()])
    await store.save_views("p", 1, {("functions", "a"): "{}"})
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.load_views, "p")
        for _ in range(yields):
            await anyio.lowlevel.checkpoint()
        tg.cancel_scope.cancel()
    await store.append("s", [new_event(), new_event()])
    assert await store.last_position() == 3
    assert len(await store.read_all()) == 3
    assert await store.load_views("p") == (1, {("functions", "a"): "{}"})
