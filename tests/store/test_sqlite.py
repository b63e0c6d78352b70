"""What only the SQLite store does: group commit, durability, refusing damaged or foreign files,
read-only mode, cross-process follow and the engine lock."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from engine.errors import (
    ConcurrencyConflict,
    EventDecodeError,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreTooNew,
)
from engine.events import RecordedEvent
from engine.ports import NO_STREAM
from engine.store.lock import EngineLock
from engine.store.sqlite import SqliteEventStore
from tests.store.helpers import (
    HEAD_SQL,
    REWRITE_SQL,
    head_params,
    new_event,
    rewrite_params,
    rewritten,
)
from tests.support.unreadable import unreadable_rows

pytestmark = pytest.mark.anyio


async def _fill(path: Path, count: int = 30) -> None:
    async with SqliteEventStore(path) as store:
        for i in range(count):
            await store.append(f"s{i % 3}", [new_event(reason="x" * 200)])


async def test_200_concurrent_appenders_group_commit(tmp_path: Path) -> None:
    """Positions contiguous, each append's events contiguous, every conflict detected,
    nothing lost, and far fewer transactions than appends."""
    results: dict[int, list[RecordedEvent]] = {}
    conflicts: list[int] = []

    async with SqliteEventStore(tmp_path / "glam.db") as store:

        async def appender(i: int) -> None:
            # Half write their own stream; the others race in pairs for a shared one.
            stream = f"own{i}" if i % 2 else f"shared{i // 4}"
            try:
                results[i] = await store.append(
                    stream, [new_event(), new_event(), new_event()], NO_STREAM
                )
            except ConcurrencyConflict:
                conflicts.append(i)

        async with anyio.create_task_group() as tg:
            for i in range(200):
                tg.start_soon(appender, i)
        commits = store.commits
        everything = await store.read_all()

    assert len(conflicts) == 50  # one loser for each of the 50 shared streams
    assert len(results) == 150
    for records in results.values():
        positions = [r.position for r in records]
        assert positions == list(range(positions[0], positions[0] + 3))
        assert [r.version for r in records] == [1, 2, 3]
    assert [r.position for r in everything] == list(range(1, 451))
    assert {r.meta.event_id for rs in results.values() for r in rs} == {
        r.meta.event_id for r in everything
    }
    assert commits < 50


async def test_one_commit_per_append_when_batching_is_off(tmp_path: Path) -> None:
    async with SqliteEventStore(tmp_path / "glam.db", max_batch=1) as store:
        async with anyio.create_task_group() as tg:
            for _ in range(20):
                tg.start_soon(store.append, "s", [new_event()])
        assert store.commits == 20
        assert await store.verify() is None


_WRITER = textwrap.dedent(
    """
    import sys, anyio
    from engine.store.sqlite import SqliteEventStore
    from tests.store.helpers import new_event

    async def main():
        async with SqliteEventStore(sys.argv[1]) as store:
            i = 0
            while True:
                i += 1
                (rec,) = await store.append(f"s{i % 7}", [new_event(f"ack{i}")])
                print(rec.meta.event_id, flush=True)

    anyio.run(main)
    """
)


@pytest.mark.integration
def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    acknowledged: list[str] = []
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            acknowledged.append(line.strip())
            if len(acknowledged) >= 300:
                break
        os.kill(proc.pid, signal.SIGKILL)
        acknowledged += [line.strip() for line in proc.stdout]  # printed before the kill
    assert proc.returncode == -signal.SIGKILL

    async def check() -> None:
        async with SqliteEventStore(db) as store:
            stored = {r.meta.event_id for r in await store.read_all()}
            assert set(acknowledged) <= stored
            assert await store.verify() is None

    anyio.run(check)


async def test_flipped_bytes_are_refused_not_repaired(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _fill(db, 200)
    page_size = 4096
    data = bytearray(db.read_bytes())
    assert len(data) > 4 * page_size
    # Scribble over the b-tree header of page 3 (a table or index page).
    data[2 * page_size : 2 * page_size + 12] = b"\xff" * 12
    db.write_bytes(bytes(data))
    before = db.read_bytes()
    with pytest.raises(StoreCorrupt, match=r"not a readable glam event log|integrity_check"):
        async with SqliteEventStore(db):
            pass
    assert db.read_bytes() == before


async def test_truncated_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _fill(db, 200)
    size = db.stat().st_size
    with db.open("r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(StoreCorrupt) as info:
        async with SqliteEventStore(db, readonly=True):
            pass
    assert "restore it from a backup" in info.value.one_line()


async def test_other_sqlite_file_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "other.db"

    def make() -> None:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE t (x)")
        conn.close()

    await anyio.to_thread.run_sync(make)
    with pytest.raises(StoreCorrupt, match="not a glam event log"):
        async with SqliteEventStore(db):
            pass


async def test_file_from_a_newer_glam_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _fill(db, 1)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreTooNew, match="newer glam") as info:
        async with SqliteEventStore(db):
            pass
    assert "upgrade glam" in info.value.one_line()


@unreadable_rows
async def test_undecodable_events_fail_loudly(
    tmp_path: Path, column: str, value: object, message: str
) -> None:
    """A row a newer glam wrote (its hashes right, its type or version unknown here)."""
    db = tmp_path / "glam.db"
    await _fill(db, 3)
    async with SqliteEventStore(db, readonly=True) as store:
        stored = await store.read_rows()
    conn = sqlite3.connect(db)
    changed = rewritten(stored, 2, **{column: value})
    for row in changed:
        conn.execute(REWRITE_SQL, rewrite_params(row))
    conn.execute(HEAD_SQL, head_params(changed[-1]))
    conn.commit()
    conn.close()
    async with SqliteEventStore(db, readonly=True) as store:
        with pytest.raises(EventDecodeError, match=message):
            await store.read_all()
        with pytest.raises(EventDecodeError):
            await store.read_all(2, limit=1)
        assert [r.position for r in await store.read_all(3)] == [3]  # never skipped silently


async def test_readonly_mode(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    with pytest.raises(StoreError, match="no event log at") as info:
        async with SqliteEventStore(db, readonly=True):
            pass
    assert "glam demo" in info.value.one_line()
    assert not db.exists()
    await _fill(db, 2)
    async with SqliteEventStore(db, readonly=True) as store:
        assert await store.last_position() == 2
        with pytest.raises(StoreError, match="read-only"):
            await store.append("s", [new_event()])


async def test_follow_notices_appends_from_another_connection(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _fill(db, 1)
    async with (
        SqliteEventStore(db, readonly=True, poll_interval=0.05) as reader,
        SqliteEventStore(db) as writer,
    ):
        seen: list[int] = []

        async def consume() -> None:
            async for record in reader.follow(1):
                seen.append(record.position)
                if len(seen) == 2:
                    return

        with anyio.fail_after(3):
            async with anyio.create_task_group() as tg:
                tg.start_soon(consume)
                await anyio.wait_all_tasks_blocked()
                await writer.append("s", [new_event()])
        assert seen == [1, 2]


def test_engine_lock_admits_one_engine(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    with EngineLock(db), pytest.raises(StoreLocked, match=f"pid {os.getpid()}"):
        EngineLock(db).acquire()
    with EngineLock(db):  # released on exit
        pass


def test_rows_are_json_text(tmp_path: Path) -> None:
    async def go() -> None:
        await _fill(tmp_path / "glam.db", 1)

    anyio.run(go)
    conn = sqlite3.connect(tmp_path / "glam.db")
    data, metadata = conn.execute("SELECT data, metadata FROM events").fetchone()
    conn.close()
    assert json.loads(data)["reason"] == "x" * 200
    assert "event_id" not in json.loads(metadata)
