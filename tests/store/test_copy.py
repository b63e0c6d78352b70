"""Choosing the backend from the database given, copying a log between backends with its
chain intact, and describing a log."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from engine.errors import StoreCorrupt, StoreError
from engine.store import describe_target, is_postgres_url, make_store, pg_leases
from engine.store.copy import copy_log, log_info
from engine.store.postgres import PostgresEventStore
from engine.store.records import StoredRow
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from projections.views import Views
from tests.store.helpers import TickingClock, new_event

pytestmark = pytest.mark.anyio

GOLDEN = Path(__file__).parents[1] / "golden"


def _golden_rows() -> list[StoredRow]:
    text = (GOLDEN / "log-0.1.jsonl").read_text()
    return [StoredRow(**json.loads(line)) for line in text.splitlines()]


async def _sqlite_log(path: Path, events: int = 25) -> None:
    async with SqliteEventStore(path, now=TickingClock()) as store:
        for i in range(events):
            await store.append(f"s{i % 4}", [new_event()])


async def test_the_url_picks_the_backend(tmp_path: Path) -> None:
    url = "postgresql://glam:s3cret@db.internal:6432/glam"
    assert is_postgres_url(url)
    assert is_postgres_url("postgres://db/glam")
    assert not is_postgres_url("glam.db")
    assert not is_postgres_url(Path("postgresql:/x"))  # a path is always a file
    assert isinstance(make_store(url), PostgresEventStore)  # not connected until entered
    assert isinstance(make_store(tmp_path / "glam.db", readonly=True), SqliteEventStore)
    assert describe_target(url) == "postgresql://glam@db.internal:6432/glam"
    assert "s3cret" not in repr(make_store(url))


async def test_copy_between_sqlite_files_keeps_every_row_and_resumes(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    await _sqlite_log(source, 25)
    seen: list[int] = []
    report = await copy_log(source, target, chunk=10, progress=lambda at, _: seen.append(at))
    assert (report.copied, report.already, report.position) == (25, 0, 25)
    assert seen == [10, 20, 25]
    async with SqliteEventStore(source) as a, SqliteEventStore(target) as b:
        assert await a.read_rows() == await b.read_rows()
        assert report.last_hash == (await a.read_rows(25))[0].hash
        await a.append("s0", [new_event()])
    again = await copy_log(source, target)  # the source grew: only the new row goes over
    assert (again.copied, again.already, again.position) == (1, 25, 26)
    assert (report.views_at, again.views_at) == (25, 26)  # the views follow the copy


async def test_copy_refuses_a_target_holding_another_log(tmp_path: Path) -> None:
    source, other = tmp_path / "a.db", tmp_path / "other.db"
    await _sqlite_log(source, 5)
    await _sqlite_log(other, 3)  # another log: other event ids, other hashes
    with pytest.raises(StoreCorrupt, match="already holds another log"):
        await copy_log(source, other)
    await _sqlite_log(tmp_path / "long.db", 9)
    with pytest.raises(StoreCorrupt, match="more than"):
        await copy_log(source, tmp_path / "long.db")
    with pytest.raises(StoreError, match="onto itself"):
        await copy_log(source, source)


async def test_a_tampered_source_is_not_copied(tmp_path: Path) -> None:
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    await _sqlite_log(source, 8)
    conn = sqlite3.connect(source)
    conn.execute("UPDATE events SET data = replace(data, 'r', 'x') WHERE position = 6")
    conn.commit()
    conn.close()
    with pytest.raises(StoreCorrupt, match="row 6 cannot be imported"):
        await copy_log(source, target, chunk=4)
    async with SqliteEventStore(target, readonly=True) as copied:
        assert await copied.last_position() == 4  # the chunks before it, which verify


async def test_info_on_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _sqlite_log(db, 3)
    async with SqliteEventStore(db) as store:
        await ProjectionRunner(store).catch_up()
    info = await log_info(db)
    assert (info.backend, info.events, info.schema_version) == ("sqlite", 3, 1)
    assert info.checkpoints == {"views": 3, "planner": 3}
    assert info.first_recorded_at is not None
    assert info.last_recorded_at is not None
    assert info.first_recorded_at < info.last_recorded_at
    assert info.size_bytes > 0
    assert "views at 3" in "\n".join(info.lines())
    assert json.dumps(info.as_dict())
    assert info.leases is None
    assert "leases      no leases: one engine" in info.lines()
    assert info.as_dict()["leases"] is None


@pytest.mark.integration
async def test_info_on_postgresql_shows_each_lease_and_its_owner(postgres_url: str) -> None:
    """``glam db info`` on a shared log lists every shard with its owner, epoch and expiry;
    a lease that ran out shows as expired, a freed one as free."""
    async with PostgresEventStore(postgres_url) as store:
        await store.append("s", [new_event()])
    info = await log_info(postgres_url)  # read-only, before any engine ran shared
    assert info.leases is None
    assert "leases      no leases: one engine (no engine has run --shared on it)" in info.lines()
    async with PostgresEventStore(postgres_url) as store:
        await store.transaction(pg_leases.create_tables)
        shards = ["111111111111:eu-west-1", "222222222222:us-east-1", "plan"]
        await store.transaction(lambda sql: pg_leases.tick(sql, "engine-a", 60, shards))
        await store.transaction(lambda sql: pg_leases.expire(sql, "plan"))
        await store.transaction(
            lambda sql: pg_leases.release(sql, "engine-a", ["222222222222:us-east-1"])
        )
    info = await log_info(postgres_url)
    assert info.leases is not None
    got = {(lease.shard, lease.owner, lease.epoch, lease.live) for lease in info.leases}
    assert got == {
        ("111111111111:eu-west-1", "engine-a", 1, True),
        ("222222222222:us-east-1", None, 1, False),
        ("plan", "engine-a", 1, False),
    }
    lines = info.lines()
    assert "leases      3 shards (engine-a: 1)" in lines
    row = next(line for line in lines if "111111111111:eu-west-1" in line)
    assert "engine-a  epoch 1  expires 20" in row
    assert "(free)" in next(line for line in lines if "222222222222" in line)
    assert "expired" in next(line for line in lines if line.startswith("  plan"))
    listed = info.as_dict()["leases"]
    assert listed[0] == {
        "shard": "111111111111:eu-west-1",
        "owner": "engine-a",
        "epoch": 1,
        "expires_at": info.leases[0].expires_at.isoformat(),
        "live": True,
    }
    assert json.dumps(info.as_dict())


@pytest.mark.integration
async def test_golden_log_copied_from_sqlite_to_postgresql_and_back(
    tmp_path: Path, postgres_url: str
) -> None:
    """A released log, copied to PostgreSQL, holds the very same rows, verifies, folds into
    the same views there; copied back to SQLite it is byte for byte the same rows again."""
    rows = _golden_rows()
    source = tmp_path / "golden.db"
    async with SqliteEventStore(source) as store:
        await store.import_rows(rows)
        await ProjectionRunner(store).catch_up()
        views = Views.from_rows(*await store.load_views("views")).as_json()
    report = await copy_log(source, postgres_url, chunk=7)
    assert (report.copied, report.position, report.views_at) == (len(rows), len(rows), len(rows))
    assert "postgresql://glam@127.0.0.1" in report.target
    async with PostgresEventStore(postgres_url) as pg:
        assert await pg.read_rows() == rows
        assert await pg.verify() is None
        # The copy folded the views there: stored at the end, as a fold of its own makes them.
        assert Views.from_rows(*await pg.load_views("views")).as_json() == views
        await ProjectionRunner(pg, batch=5).rebuild()
        assert Views.from_rows(*await pg.load_views("views")).as_json() == views
    info = await log_info(postgres_url)
    assert (info.backend, info.events, info.checkpoints) == (
        "postgresql",
        len(rows),
        {"views": len(rows), "planner": len(rows)},
    )
    assert info.server_version
    assert info.size_bytes > 0
    back = tmp_path / "back.db"
    await copy_log(postgres_url, back)
    async with SqliteEventStore(back, readonly=True) as copied:
        assert await copied.read_rows() == rows
    assert (await copy_log(source, postgres_url)).copied == 0  # already there: nothing to do


@pytest.mark.integration
async def test_copy_to_postgresql_refuses_another_log_there(
    tmp_path: Path, postgres_url: str
) -> None:
    source = tmp_path / "a.db"
    await _sqlite_log(source, 4)
    async with PostgresEventStore(postgres_url) as pg:
        await pg.append("elsewhere", [new_event()])
    with pytest.raises(StoreCorrupt, match="already holds another log"):
        await copy_log(source, postgres_url)
    rows = _golden_rows()
    with pytest.raises(StoreCorrupt):
        async with PostgresEventStore(postgres_url) as pg:
            await pg.import_rows([dataclasses.replace(rows[0], position=2)])
