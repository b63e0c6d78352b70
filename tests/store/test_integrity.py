"""A log that cannot lie quietly: the verified head, the recent rows checked again at start,
the keyed chain and the witness, on SQLite and on PostgreSQL.

Each tampering is done the way an attacker with write access to the database would: plain SQL
on the tables, hashes recomputed with glam's own function where the attack needs it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.cli.main import first_glam_error
from engine.errors import StoreCorrupt, StoreError
from engine.store import open_store
from engine.store.copy import copy_log, log_info
from engine.store.integrity import Integrity
from engine.store.records import GENESIS_HASH, StoredRow, expected_hash, key_id
from engine.store.sqlite import SqliteEventStore
from engine.store.witness import Witness
from tests.store.helpers import TickingClock, new_event

pytestmark = pytest.mark.anyio

KEY = b"k" * 32
OTHER_KEY = b"o" * 32


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A location for a new log: an SQLite path, or a fresh PostgreSQL database."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "state" / "glam.db")


def sql(where: str, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the log's database behind glam's back (``?`` placeholders)."""
    if where.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(where, autocommit=True) as pg:
            cur = pg.execute(statement.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []
    conn = sqlite3.connect(where)
    try:
        rows = conn.execute(statement, params).fetchall()
        conn.commit()
        return rows
    finally:
        conn.close()


def integrity(*, key: bytes | None = None, witness: Path | None = None) -> Integrity:
    return Integrity(key=key, witness=witness)


@asynccontextmanager
async def engine_store(where: str, options: Integrity | None = None) -> AsyncIterator[Any]:
    """The store as the engine opens it (locked, verified before it is handed over)."""
    async with open_store(where, exclusive=True, integrity=options or Integrity()) as store:
        yield store


async def fill(where: str, count: int, options: Integrity | None = None) -> None:
    async with engine_store(where, options) as store:
        for i in range(count):
            await store.append(f"s{i % 3}", [new_event(reason=f"reason-{i}")])


def rows(where: str) -> list[StoredRow]:
    return [
        StoredRow(*r)
        for r in sql(
            where,
            "SELECT position, event_id, stream, version, type, schema_version, data, metadata, "
            "recorded_at, prev_hash, hash FROM events ORDER BY position",
        )
    ]


def rehash_from(where: str, position: int, digest: Callable[[StoredRow], str]) -> None:
    """Recompute ``prev_hash`` and ``hash`` of every row from ``position`` on, as a forger
    who knows how glam hashes would."""
    stored = rows(where)
    prev = stored[position - 2].hash if position > 1 else GENESIS_HASH
    for row in stored[position - 1 :]:
        fixed = StoredRow(*row.as_tuple()[:9], prev, "")
        new = digest(fixed)
        sql(where, "UPDATE events SET prev_hash = ?, hash = ? WHERE position = ?",
            (prev, new, row.position))  # fmt: skip
        prev = new


# -- the verified head and the recent rows ----------------------------------------------------


async def test_the_engine_refuses_a_recent_event_changed_since_it_was_verified(
    where: str,
) -> None:
    """A byte changed in the data of an event at or before the verified head, among the last
    events, is found when the engine opens the log (issue 17: it used to start and act on it)."""
    await fill(where, 12)
    sql(where, "UPDATE events SET data = replace(data, 'reason-9', 'reason-8') WHERE position = 10")
    with pytest.raises(StoreCorrupt, match="broken at position 10: its content does not match"):
        async with engine_store(where):
            pass
    # A reader is not the engine: it still opens, and `replay --verify` names the position.
    async with open_store(where, readonly=True, integrity=Integrity()) as store:
        assert (await store.verify_detail())[0] == 10  # type: ignore[attr-defined]


async def test_older_events_are_left_to_replay_verify(tmp_path: Path) -> None:
    """Rows before the recheck window are not hashed again at start (bounded cost): only the
    full walk finds a change there. GLAM_RECHECK=all makes the engine walk everything."""
    where = str(tmp_path / "glam.db")
    await fill(where, 30)
    sql(where, "UPDATE events SET data = replace(data, 'reason-2', 'reason-7') WHERE position = 3")
    async with engine_store(where, Integrity(recheck=10)) as store:
        assert (await store.verify_detail())[0] == 3
    with pytest.raises(StoreCorrupt, match="position 3"):
        async with engine_store(where, Integrity.from_env({"GLAM_RECHECK": "all"})):
            pass


async def test_a_deleted_tail_is_refused_even_with_the_checkpoint_rewound(where: str) -> None:
    """The last events deleted (and the views' checkpoint moved back with them): the log's
    note of its verified head betrays it."""
    await fill(where, 10)
    sql(where, "DELETE FROM events WHERE position > 7")
    sql(where, "DELETE FROM checkpoints")
    with pytest.raises(
        StoreCorrupt, match="ends at position 7, but it was verified up to position 10"
    ):
        async with engine_store(where):
            pass


async def test_a_rewrite_with_recomputed_hashes_changes_the_head(where: str) -> None:
    """An old event edited and every later hash recomputed with sha256: the head's hash is no
    longer the one that was verified."""
    await fill(where, 10)
    sql(where, "UPDATE events SET data = replace(data, 'reason-1', 'FORGED') WHERE position = 2")
    rehash_from(where, 2, expected_hash)
    with pytest.raises(StoreCorrupt, match="position 10: the event there is not the one"):
        async with engine_store(where):
            pass


async def test_events_appended_by_another_writer_are_verified_before_use(where: str) -> None:
    """A row added behind the engine's back with a wrong hash is refused by the next read
    and the next append, never decoded or chained onto."""
    async with engine_store(where) as store:
        await store.append("s", [new_event()])
        [last] = rows(where)
        forged = StoredRow(2, "forged", "s", 2, last.type, last.schema_version, last.data,
                           last.metadata, last.recorded_at, last.hash, "0" * 64)  # fmt: skip
        sql(where, "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?)", forged.as_tuple())
        with pytest.raises(StoreCorrupt, match="broken at position 2"):
            await store.read_stream("s")
        with pytest.raises(StoreCorrupt, match="broken at position 2"):
            await store.append("s", [new_event()])
    assert len(rows(where)) == 2  # nothing was chained onto the forged row


# -- the keyed chain ----------------------------------------------------------------------------


async def test_a_keyed_log_finds_a_rewrite_that_sha256_lets_through(where: str) -> None:
    """Redteam S22/M4: history edited and every later hash recomputed with glam's own sha256
    function. Unkeyed, the chain verifies; keyed, it does not."""
    await fill(where, 8, integrity(key=KEY))
    sql(where, "UPDATE events SET data = replace(data, 'reason-3', 'FORGED') WHERE position = 4")
    rehash_from(where, 4, expected_hash)
    sql(where, "DELETE FROM glam_meta WHERE key = 'verified'")  # cover the tracks
    async with open_store(where, readonly=True, integrity=integrity(key=KEY)) as store:
        bad, reason = await store.verify_detail()  # type: ignore[attr-defined]
    assert (bad, reason) == (4, "its content does not match its hash")
    with pytest.raises(StoreCorrupt, match="position 4"):
        async with engine_store(where, integrity(key=KEY)):
            pass


async def test_the_keyed_log_says_so_and_never_holds_the_key(where: str) -> None:
    await fill(where, 3, integrity(key=KEY))
    notes = dict(sql(where, "SELECT key, value FROM glam_meta"))
    chain = json.loads(notes["chain"])
    assert chain["keyed_from"] == 1
    assert chain["key_id"] == key_id(KEY)
    dump = json.dumps(sql(where, "SELECT * FROM glam_meta")) + json.dumps(
        [r.as_tuple() for r in rows(where)]
    )
    assert KEY.decode() not in dump
    info = await log_info(where, integrity=Integrity())
    assert (info.keyed_from, info.key_id) == (1, key_id(KEY))
    assert any("keyed from position 1" in line for line in info.lines())


async def test_a_keyed_log_refuses_writers_without_its_key_or_with_another(where: str) -> None:
    await fill(where, 2, integrity(key=KEY))
    with pytest.raises(StoreError, match=r"keyed .* no key") as no_key:
        async with engine_store(where, Integrity()):
            pass
    assert "GLAM_CHAIN_KEY_FILE" in no_key.value.one_line()
    with pytest.raises(StoreError, match="keyed with another key"):
        async with engine_store(where, integrity(key=OTHER_KEY)):
            pass
    async with open_store(where, readonly=True, integrity=Integrity()) as reader:
        assert len(await reader.read_all()) == 2  # reading needs no key


async def test_a_removed_keyed_note_is_noticed_by_whoever_has_the_key(where: str) -> None:
    """Stripping the note that says the log is keyed (and recomputing sha256 hashes) makes it
    look like an ordinary log, except to a writer or auditor given the key."""
    await fill(where, 4, integrity(key=KEY))
    rehash_from(where, 1, expected_hash)
    sql(where, "DELETE FROM glam_meta")
    with pytest.raises(StoreError, match=r"chain key is configured but .* is not keyed"):
        async with engine_store(where, integrity(key=KEY)):
            pass


async def test_an_unkeyed_log_is_keyed_from_its_next_event(tmp_path: Path) -> None:
    where = str(tmp_path / "glam.db")
    await fill(where, 5)
    async with engine_store(where) as store:
        assert await store.key_from_next(KEY) == 6
    await fill(where, 3, integrity(key=KEY))
    async with open_store(where, readonly=True, integrity=integrity(key=KEY)) as store:
        assert await store.verify_detail() == (None, "")  # type: ignore[attr-defined]
    # The keyed rows are HMACs: sha256 alone no longer verifies them.
    async with open_store(where, readonly=True, integrity=Integrity()) as store:
        assert await store.verify_detail() == (None, "")  # type: ignore[attr-defined]
        assert store.integrity.chain.keyed_from == 6  # type: ignore[attr-defined]
    stored = rows(where)
    assert all(expected_hash(r) == r.hash for r in stored[:5])
    assert not any(expected_hash(r) == r.hash for r in stored[5:])


async def test_a_copy_of_a_keyed_log_stays_keyed(tmp_path: Path, where: str) -> None:
    source = str(tmp_path / "source.db")
    await fill(source, 6, integrity(key=KEY))
    report = await copy_log(source, where, integrity=integrity(key=KEY))
    assert report.copied == 6
    async with engine_store(where, integrity(key=KEY)) as store:
        await store.append("s", [new_event()])
        assert store.integrity.chain.keyed_from == 1
    async with open_store(where, readonly=True, integrity=integrity(key=KEY)) as store:
        assert await store.verify_detail() == (None, "")  # type: ignore[attr-defined]


# -- the witness ------------------------------------------------------------------------------


async def test_the_witness_follows_the_head_and_catches_a_rewound_log(
    where: str, tmp_path: Path
) -> None:
    """Redteam S16: the tail deleted and the log's own notes rewound to match. Only something
    outside the database still knows how far the log reached."""
    witness = tmp_path / "witness" / "glam.witness"
    await fill(where, 9, integrity(witness=witness))
    record = await anyio.to_thread.run_sync(Witness(witness).read)
    assert record is not None
    assert (record.position, record.hash) == (9, rows(where)[8].hash)
    assert record.log == rows(where)[0].hash
    # The thorough attacker: tail gone, checkpoint and verified head moved back with it.
    sql(where, "DELETE FROM events WHERE position > 6")
    six = rows(where)[5]
    note = json.dumps({"hash": six.hash, "position": 6}, sort_keys=True)
    sql(where, "UPDATE glam_meta SET value = ? WHERE key = 'verified'", (note,))
    async with engine_store(where):  # without the witness nothing is left to tell
        pass
    with pytest.raises(StoreCorrupt, match="ends at position 6, behind its witness") as info:
        async with engine_store(where, integrity(witness=witness)):
            pass
    assert "move the witness" in info.value.one_line()
    with pytest.raises(StoreCorrupt, match="behind its witness"):
        await log_info(where, integrity=integrity(witness=witness))


async def test_the_witness_knows_its_log(where: str, tmp_path: Path) -> None:
    witness = tmp_path / "glam.witness"
    await fill(where, 4, integrity(witness=witness))
    other = str(tmp_path / "other.db")
    await fill(other, 6)
    with pytest.raises(StoreCorrupt, match="is not the log its witness"):
        async with engine_store(other, integrity(witness=witness)):
            pass
    sql(where, "UPDATE events SET data = replace(data, 'reason-3', 'X') WHERE position = 4")
    rehash_from(where, 4, expected_hash)
    sql(where, "DELETE FROM glam_meta")
    with pytest.raises(StoreCorrupt, match=r"differs from its witness .* at position 4"):
        async with engine_store(where, integrity(witness=witness)):
            pass


async def test_a_burst_of_commits_costs_few_witness_writes(tmp_path: Path) -> None:
    witness = tmp_path / "glam.witness"
    path = tmp_path / "glam.db"

    async with SqliteEventStore(
        path, integrity=integrity(witness=witness), now=TickingClock()
    ) as s:
        async with anyio.create_task_group() as tg:
            for i in range(300):
                tg.start_soon(s.append, f"s{i}", [new_event()])
        writes = s._witness.writes  # type: ignore[union-attr]
    record = await anyio.to_thread.run_sync(Witness(witness).read)
    assert record is not None
    assert record.position == 300  # the last head is written when the store closes
    assert writes <= s.commits
    assert oct(witness.stat().st_mode & 0o777) == "0o600"


async def test_a_witness_that_cannot_be_written_stops_the_writer(tmp_path: Path) -> None:
    """Rather than run unwitnessed: the error leaves the store (and so stops the engine)."""
    witness = tmp_path / "gone" / "glam.witness"

    async def write_once_the_folder_is_a_file() -> None:
        options = integrity(witness=witness)
        async with SqliteEventStore(tmp_path / "glam.db", integrity=options) as store:
            (tmp_path / "gone").write_text("a file where the witness's folder was")
            await store.append("s", [new_event()])
            await anyio.sleep(5)

    with pytest.raises(BaseException) as raised:
        await write_once_the_folder_is_a_file()
    found = first_glam_error(raised.value)
    assert isinstance(found, StoreError), repr(raised.value)
    assert "cannot write the witness" in found.message
