"""What only the PostgreSQL store does, against a real server: appends from several processes
in one global order that no follower ever skips, followers woken by NOTIFY, connections cut
mid-append losing and duplicating nothing, and refusing what is not a glam log."""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import psycopg
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from engine.errors import (
    ConcurrencyConflict,
    EventDecodeError,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreTooNew,
    StoreUnavailable,
)
from engine.events import RecordedEvent
from engine.ports import NO_STREAM
from engine.store import describe_target, open_store
from engine.store.pg_log import ENGINE_LOCK
from engine.store.postgres import PostgresEventStore
from tests.store.helpers import (
    HEAD_SQL,
    REWRITE_SQL,
    head_params,
    new_event,
    rewrite_params,
    rewritten,
    until,
)
from tests.store.proxy import CuttingProxy
from tests.support.postgres import TempPostgres
from tests.support.unreadable import unreadable_rows

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).parents[2]


def _via(url: str, server: TempPostgres, proxy: CuttingProxy) -> str:
    return url.replace(f":{server.port}/", f":{proxy.port}/")


def _database(url: str) -> str:
    return url.rsplit("/", 1)[1]


# -- many writers, one order ----------------------------------------------------------------

_APPENDERS = textwrap.dedent(
    """
    import json, sys, anyio
    from engine.errors import ConcurrencyConflict
    from engine.ports import ANY_VERSION, NO_STREAM
    from engine.store.postgres import PostgresEventStore
    from tests.store.helpers import new_event, until

    async def main():
        url, proc, count, batch = sys.argv[1], *map(int, sys.argv[2:5])
        results = []
        # Small batches: the processes take turns at the append lock many times over.
        async with PostgresEventStore(url, max_batch=batch) as store:
            print("ready", flush=True)
            sys.stdin.readline()

            async def appender(i):
                if i % 3 == 0:    # a stream of its own
                    stream, expected, n = f"own-{proc}-{i}", NO_STREAM, 3
                elif i % 3 == 1:  # raced for by appenders of every process: one wins
                    stream, expected, n = f"race-{i % 60}", NO_STREAM, 2
                else:             # shared by everyone, no expectation
                    stream, expected, n = f"shared-{i % 10}", ANY_VERSION, 1
                events = [new_event(f"p{proc}-a{i}-e{k}") for k in range(n)]
                try:
                    records = await store.append(stream, events, expected)
                except ConcurrencyConflict:
                    results.append({"stream": stream, "conflict": True})
                    return
                results.append({
                    "stream": stream,
                    "ids": [r.meta.event_id for r in records],
                    "positions": [r.position for r in records],
                    "versions": [r.version for r in records],
                    "hashes": [r.hash for r in records],
                })

            async with anyio.create_task_group() as tg:
                for i in range(count):
                    tg.start_soon(appender, i)
            commits = store.commits
        print(json.dumps({"results": results, "commits": commits}), flush=True)

    anyio.run(main)
    """
)


async def test_1000_appenders_from_three_processes_one_order_no_skips(postgres_url: str) -> None:
    """Three processes append concurrently (own streams, streams they race for, streams they
    share): positions are contiguous, each append's events adjacent, every race has one
    winner, every acknowledged record is stored as acknowledged, the chain verifies, and a
    follower watching all along saw every position in order, none skipped."""
    counts = [334, 333, 333]
    followed: list[int] = []
    async with PostgresEventStore(postgres_url, readonly=False) as store:
        processes = [
            await anyio.open_process(
                [sys.executable, "-c", _APPENDERS, postgres_url, str(n), str(count), "10"],
                cwd=ROOT,
            )
            for n, count in enumerate(counts)
        ]
        outputs: list[dict[str, Any]] = []
        try:
            readers = [BufferedByteReceiveStream(p.stdout) for p in processes]  # type: ignore[arg-type]
            with anyio.fail_after(60):
                for reader in readers:
                    assert await reader.receive_until(b"\n", 100) == b"ready"

            async def follow() -> None:
                async for record in store.follow(1):
                    followed.append(record.position)

            async with anyio.create_task_group() as tg:
                tg.start_soon(follow)
                for process in processes:
                    assert process.stdin is not None
                    await process.stdin.send(b"go\n")
                with anyio.fail_after(90):
                    for reader in readers:
                        line = await reader.receive_until(b"\n", 50_000_000)
                        outputs.append(json.loads(line))
                    total = sum(
                        len(r["ids"]) for out in outputs for r in out["results"] if "ids" in r
                    )
                    await until(lambda: len(followed) >= total)
                tg.cancel_scope.cancel()
        finally:
            for process in processes:
                with anyio.CancelScope(shield=True):
                    await process.wait()
        stored = await store.read_all()
        assert await store.verify() is None

    results = [r for out in outputs for r in out["results"]]
    acknowledged = [r for r in results if "ids" in r]
    assert len(results) == 1000
    # Every race stream has exactly one winner, however many processes raced for it.
    races = Counter(r["stream"] for r in acknowledged if r["stream"].startswith("race-"))
    contested = {r["stream"] for r in results if r["stream"].startswith("race-")}
    assert set(races) == contested
    assert set(races.values()) == {1}
    assert any("conflict" in r for r in results)
    # Positions: 1..N, nothing lost, nothing doubled; each append's events adjacent.
    assert [r.position for r in stored] == list(range(1, len(stored) + 1))
    by_position = {r.position: r for r in stored}
    for r in acknowledged:
        assert r["positions"] == list(range(r["positions"][0], r["positions"][0] + len(r["ids"])))
        for event_id, position, version, digest in zip(
            r["ids"], r["positions"], r["versions"], r["hashes"], strict=True
        ):
            record = by_position[position]
            assert (record.meta.event_id, record.version, record.hash) == (
                event_id,
                version,
                digest,
            )
    assert sum(len(r["ids"]) for r in acknowledged) == len(stored)
    # Stream versions 1..k in log order.
    versions: dict[str, list[int]] = {}
    for record in stored:
        versions.setdefault(record.stream, []).append(record.version)
    assert all(v == list(range(1, len(v) + 1)) for v in versions.values())
    # The processes really interleaved, and group commit held across them.
    owners = [record.meta.event_id.split("-")[0] for record in stored]
    assert sum(a != b for a, b in itertools.pairwise(owners)) > 3
    assert sum(out["commits"] for out in outputs) < 1000
    assert followed == list(range(1, len(stored) + 1))


async def test_concurrent_appends_share_transactions(postgres_url: str) -> None:
    async with PostgresEventStore(postgres_url) as store:
        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(store.append, f"s{i}", [new_event()], NO_STREAM)
        assert await store.last_position() == 200
        assert store.commits < 20
    async with PostgresEventStore(postgres_url, max_batch=1) as store:
        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(store.append, f"t{i}", [new_event()], NO_STREAM)
        assert store.commits == 20


# -- followers -------------------------------------------------------------------------------


async def test_follower_is_woken_by_notify_not_by_its_poll_interval(postgres_url: str) -> None:
    """A follower on its own connections polls only every 60 s, yet sees an append made
    through other connections within a fraction of a second."""
    async with PostgresEventStore(postgres_url) as writer:
        await writer.append("s", [new_event()])
        async with PostgresEventStore(postgres_url, readonly=True, poll_interval=60) as reader:
            await anyio.sleep(0.5)
            assert not reader.listening  # a read-only store listens once something follows
            seen: list[tuple[int, float]] = []

            async def consume() -> None:
                async for record in reader.follow(1):
                    seen.append((record.position, time.monotonic()))
                    if len(seen) == 3:
                        return

            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(consume)
                    await until(lambda: seen)
                    await until(lambda: reader.listening)
                    await anyio.sleep(0.2)  # the follower is waiting now
                    sent = time.monotonic()
                    await writer.append("s", [new_event()])
                    await until(lambda: len(seen) >= 2)
                    latency = seen[1][1] - sent
                    await writer.append("s", [new_event()])
    assert [position for position, _ in seen] == [1, 2, 3]
    assert latency < 1.0


async def test_follower_recovers_when_its_listener_connection_is_cut(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    async with (
        CuttingProxy(postgres_server.port) as proxy,
        PostgresEventStore(postgres_url) as writer,
        PostgresEventStore(
            _via(postgres_url, postgres_server, proxy), readonly=True, poll_interval=60
        ) as reader,
    ):
        seen: list[int] = []

        async def consume() -> None:
            async for record in reader.follow(1):
                seen.append(record.position)
                if len(seen) == 2:
                    return

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await until(lambda: reader.listening)
                await writer.append("s", [new_event()])
                await until(lambda: seen)
                proxy.cut_all()
                await until(lambda: not reader.listening)
                await until(lambda: reader.listening)  # back, well before the 60 s poll
                await writer.append("s", [new_event()])
        assert seen == [1, 2]
        assert reader.reconnects >= 1


# -- the network failing mid-append ----------------------------------------------------------


async def test_commit_whose_reply_was_lost_is_stored_once_and_a_retry_returns_it(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    """The COMMIT reaches the server, its reply never reaches glam: the append says the
    outcome is unknown; repeating it (same event ids, same expected version) returns the
    stored record instead of appending again or conflicting."""
    async with (
        CuttingProxy(postgres_server.port) as proxy,
        PostgresEventStore(_via(postgres_url, postgres_server, proxy), retry_for=0) as store,
    ):
        event = new_event("only-once")
        proxy.cut_after(b"COMMIT", delay=0.3)
        with pytest.raises(StoreUnavailable, match="may or may not be stored") as info:
            await store.append("s", [event], NO_STREAM)
        assert info.value.retryable
        assert "retry the same append" in info.value.one_line()
        assert postgres_server.password not in info.value.one_line()
        assert proxy.cuts == 1
        (again,) = await store.append("s", [event], NO_STREAM)
        assert again.position == 1
        assert await store.last_position() == 1
    rows = postgres_server.sql("SELECT event_id FROM events", database=_database(postgres_url))
    assert rows == [("only-once",)]


async def test_connections_cut_during_appends_lose_and_duplicate_nothing(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    """Commits whose replies are lost and connections cut at random moments: every append is
    acknowledged (the store retries on a new connection), each exactly once in the log, as
    acknowledged, and the chain verifies."""
    acknowledged: dict[str, RecordedEvent] = {}
    async with CuttingProxy(postgres_server.port) as proxy:
        url = _via(postgres_url, postgres_server, proxy)
        async with PostgresEventStore(url, max_batch=20) as store:

            async def appender(i: int) -> None:
                await anyio.sleep(i * 0.004)
                events = [new_event(f"cut-{i}-{k}") for k in range(2)]
                for record in await store.append(f"s{i % 7}", events):
                    acknowledged[record.meta.event_id] = record

            async def cutter() -> None:
                proxy.cut_after(b"COMMIT", times=3, delay=0.05)
                for _ in range(4):
                    await anyio.sleep(0.15)
                    proxy.cut_all()

            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(cutter)
                    for i in range(300):
                        tg.start_soon(appender, i)
            assert store.reconnects >= 3
        assert proxy.cuts >= 5
    async with PostgresEventStore(postgres_url, readonly=True) as check:
        stored = await check.read_all()
        assert await check.verify() is None
    assert len(acknowledged) == 600
    assert [r.position for r in stored] == list(range(1, 601))
    assert {r.meta.event_id: r for r in stored} == acknowledged


# -- opening: what is and is not a glam log ------------------------------------------------


async def test_readonly_needs_an_existing_log_and_never_writes(postgres_url: str) -> None:
    with pytest.raises(StoreError, match=r"no event log at postgresql://glam@127\.0\.0\.1"):
        async with PostgresEventStore(postgres_url, readonly=True):
            pass
    async with PostgresEventStore(postgres_url) as store:
        await store.append("s", [new_event()])
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        assert await store.last_position() == 1
        with pytest.raises(StoreError, match="read-only"):
            await store.append("s", [new_event()])


async def test_a_database_with_another_events_table_is_refused(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    postgres_server.sql("CREATE TABLE events (id int)", database=_database(postgres_url))
    with pytest.raises(StoreCorrupt, match="not a glam event log"):
        async with PostgresEventStore(postgres_url):
            pass


async def test_a_log_from_a_newer_glam_is_refused(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    async with PostgresEventStore(postgres_url):
        pass
    postgres_server.sql("UPDATE glam_log SET schema_version = 99", database=_database(postgres_url))
    with pytest.raises(StoreTooNew, match="newer glam") as info:
        async with PostgresEventStore(postgres_url, readonly=True):
            pass
    assert "upgrade glam" in info.value.one_line()


async def test_an_unreachable_server_is_retryable_and_the_password_never_shown(
    postgres_server: TempPostgres,
) -> None:
    url = postgres_server.url("glam").replace(f":{postgres_server.port}/", ":1/")
    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL") as info:
        async with PostgresEventStore(url, connect_timeout=2):
            pass
    assert info.value.retryable
    assert postgres_server.password not in info.value.one_line()
    assert "postgresql://glam@127.0.0.1:1/glam" in info.value.one_line()
    with pytest.raises(StoreError, match="cannot be parsed") as bad:
        PostgresEventStore("postgresql://glam:s3cret@127.0.0.1:notaport/glam?sslmode==x")
    assert "s3cret" not in bad.value.one_line()


async def test_two_stores_creating_the_tables_at_once_both_open(postgres_url: str) -> None:
    async def open_one() -> None:
        async with PostgresEventStore(postgres_url) as store:
            await store.append("s", [new_event()])

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(open_one)
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        assert await store.last_position() == 3


@unreadable_rows
async def test_undecodable_events_fail_loudly(
    postgres_server: TempPostgres, postgres_url: str, column: str, value: object, message: str
) -> None:
    """A row a newer glam wrote (its hashes right, its type or version unknown here)."""
    async with PostgresEventStore(postgres_url) as store:
        for i in range(3):
            await store.append(f"s{i}", [new_event()])
        stored = await store.read_rows()
    changed = rewritten(stored, 2, **{column: value})
    for sql, params in [(REWRITE_SQL, rewrite_params(row)) for row in changed] + [
        (HEAD_SQL, head_params(changed[-1]))
    ]:
        postgres_server.sql(sql.replace("?", "%s"), params, database=_database(postgres_url))
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        with pytest.raises(EventDecodeError, match=message):
            await store.read_all()
        with pytest.raises(EventDecodeError):
            await store.read_selected({"RollbackStarted"})
        assert [r.position for r in await store.read_all(3)] == [3]
        assert await store.verify() is None  # written properly: the chain holds


async def test_an_edited_row_breaks_the_chain(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    async with PostgresEventStore(postgres_url) as store:
        for _ in range(5):
            await store.append("s", [new_event(reason="ok")])
    postgres_server.sql(
        "UPDATE events SET data = replace(data, 'ok', 'ko') WHERE position = 4",
        database=_database(postgres_url),
    )
    async with PostgresEventStore(postgres_url, readonly=True) as store:
        assert await store.verify_detail() == (4, "its content does not match its hash")


async def test_expected_version_conflict_across_two_stores(postgres_url: str) -> None:
    async with PostgresEventStore(postgres_url) as a, PostgresEventStore(postgres_url) as b:
        await a.append("s", [new_event()], NO_STREAM)
        with pytest.raises(ConcurrencyConflict, match="at version 1, expected 0"):
            await b.append("s", [new_event()], NO_STREAM)
        (record,) = await b.append("s", [new_event()], 1)
        assert record.version == 2


async def test_import_rows_continues_the_chain_and_skips_rows_already_stored(
    postgres_url: str,
) -> None:
    async with PostgresEventStore(postgres_url) as source:
        for i in range(6):
            await source.append(f"s{i % 2}", [new_event()])
        rows = await source.read_rows()
    async with PostgresEventStore(postgres_url) as target:
        await target.import_rows(rows[:4])  # already stored unchanged (a repeated import)
        assert await target.last_position() == 6
        with pytest.raises(StoreCorrupt, match="already holds another event"):
            await target.import_rows([dataclasses.replace(rows[1], hash="0" * 64)])
        with pytest.raises(StoreCorrupt, match="does not chain"):
            await target.import_rows([dataclasses.replace(rows[5], position=7)])
        assert await target.last_position() == 6
        assert await target.verify() is None


# -- one engine per log ----------------------------------------------------------------------


async def test_the_engine_lock_admits_one_engine(postgres_url: str) -> None:
    async with open_store(postgres_url, exclusive=True) as first:
        await first.append("s", [new_event()])
        with pytest.raises(StoreLocked, match="another glam engine is running on postgresql"):
            async with open_store(postgres_url, exclusive=True):
                pass
        async with open_store(postgres_url, readonly=True) as query:  # queries still open
            assert await query.last_position() == 1
    async with open_store(postgres_url, exclusive=True) as second:  # released on close
        assert await second.last_position() == 1


async def test_a_closed_store_has_given_its_engine_lock_back(postgres_url: str) -> None:
    """Once a store is closed its engine lock is free, at once: an engine started right
    after another stopped is not refused. (The server frees a closed session's locks when its
    backend ends, after the client has gone: before the store gave the lock back itself, a
    watcher saw it still held now and then, and the next exclusive open was refused.)"""
    held = (
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND classid = %(high)s AND objid = %(low)s"
    )
    key = {"high": ENGINE_LOCK >> 32, "low": ENGINE_LOCK & 0xFFFFFFFF}
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as watch:
        for _ in range(50):
            async with open_store(postgres_url, exclusive=True):
                pass
            row = await (await watch.execute(held, key)).fetchone()
            assert row == (0,)
            async with open_store(postgres_url, shared=True):
                pass


async def test_shared_engines_and_a_lone_engine_never_run_on_one_log(postgres_url: str) -> None:
    """Shared engines hold the engine lock shared with each other: a lone engine is refused
    beside them, and they beside a lone engine, each with a message naming the other kind;
    the lock goes with its holder's session."""
    async with (
        open_store(postgres_url, shared=True) as first,
        open_store(postgres_url, shared=True) as second,
    ):
        await first.append("s", [new_event()])
        assert await second.last_position() == 1
        with pytest.raises(StoreLocked, match=r"shared engines \(glam run --shared\) are running"):
            async with open_store(postgres_url, exclusive=True):
                pass
    async with open_store(postgres_url, exclusive=True):
        with pytest.raises(StoreLocked) as refused:
            async with open_store(postgres_url, shared=True):
                pass
        assert refused.value.one_line() == (
            "an engine that is not shared (glam run without --shared) is running on "
            f"{describe_target(postgres_url)} — stop it first, or run every engine on this log "
            "with --shared"
        )
    async with open_store(postgres_url, shared=True):  # released on close
        pass


async def test_the_engine_lock_is_taken_again_when_its_connection_breaks(
    postgres_server: TempPostgres, postgres_url: str
) -> None:
    async with (
        CuttingProxy(postgres_server.port) as proxy,
        PostgresEventStore(_via(postgres_url, postgres_server, proxy), exclusive=True) as store,
    ):
        with anyio.fail_after(10):
            await until(lambda: store.listening)
            proxy.cut_all()  # the lock's, the writer's, the reader's and the listener's
            await until(lambda: store.reconnects >= 2)  # the lock and the listener are back
        with pytest.raises(StoreLocked):
            async with PostgresEventStore(postgres_url, exclusive=True):
                pass
        await store.append("s", [new_event()])  # and the writer reconnects on its own


async def test_reads_cancelled_part_way_leave_a_clean_reader(postgres_url: str) -> None:
    """A load_views (a REPEATABLE READ transaction) cancelled at any moment leaves no reader
    inside its snapshot or its query: the next reads see what was appended since."""
    async with PostgresEventStore(postgres_url) as store:
        await store.save_views("p", 0, {("functions", f"f{i}"): "{}" for i in range(2000)})
        for n in range(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(store.load_views, "p")
                for _ in range(n):
                    await anyio.lowlevel.checkpoint()
                tg.cancel_scope.cancel()
            await store.append("s", [new_event()])
            assert await store.last_position() == n + 1
            assert len(await store.read_all()) == n + 1
        assert (await store.load_views("p"))[0] == 0
