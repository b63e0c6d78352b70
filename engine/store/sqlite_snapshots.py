"""View saves and snapshots of the views in the SQLite log (time travel): the tables and
their SQL.

A mixin of ``engine.store.sqlite.SqliteEventStore``, which provides ``_fetch`` (a read on the
reader connection) and ``_submit`` (run a job in the writer's next transaction). The
connection handed to the jobs is an aiosqlite connection, typed ``Any`` here because only the
adapter module imports aiosqlite. ``engine.store.pg_views`` is the same for PostgreSQL.

Two tables, created when a writer opens a log that lacks them (a log written before snapshots
existed simply has none; an older glam leaves them alone):

- ``view_snapshots``: one row per snapshot, its position and the format of its rows;
- ``snapshot_rows``: row versions (a rowid table: its rows are large and written in order,
  which a WITHOUT ROWID table stores at several times the cost). A version belongs to the
  first snapshot it is part of; the views at a snapshot are, per (view, key), the latest
  version at or before it (``data`` NULL: the row was deleted). Dropping a snapshot deletes
  the versions that no snapshot kept reads any more: those after the previous snapshot kept
  that a version up to the next one kept replaces. A version is written once and never
  moved, and between two snapshots kept there is at most one version of a row, so every
  other snapshot reads the same.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from engine.ports import RowKey, SnapshotListing, SnapshotRows, ViewSnapshot
from engine.store.batching import Pending

SNAPSHOT_TABLES = """
CREATE TABLE IF NOT EXISTS view_snapshots (
    projection TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    format     TEXT    NOT NULL,
    PRIMARY KEY (projection, position)
) STRICT;
CREATE TABLE IF NOT EXISTS snapshot_rows (
    projection TEXT    NOT NULL,
    snapshot   INTEGER NOT NULL,
    view       TEXT    NOT NULL,
    key        TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    data       BLOB,
    PRIMARY KEY (projection, snapshot, view, key)
) STRICT;
-- Every column but the payload: a row's versions in order, and listing a snapshot's rows
-- reads this index, not the rows (it replaces snapshot_rows_by_key, its first four columns).
CREATE INDEX IF NOT EXISTS snapshot_rows_latest
    ON snapshot_rows (projection, view, key, snapshot, position);
DROP INDEX IF EXISTS snapshot_rows_by_key;
"""

# One statement, so one read transaction: the snapshot chosen and its rows come from the same
# commit even while the engine writes (and drops) snapshots.
_LOAD = """
WITH chosen AS (
    SELECT max(position) AS at FROM view_snapshots
    WHERE projection = ?1 AND format = ?2 AND position <= ?3
)
SELECT chosen.at, r.view, r.key, r.position, r.data
FROM chosen LEFT JOIN snapshot_rows AS r ON r.projection = ?1 AND r.snapshot <= chosen.at
ORDER BY r.snapshot
"""

# The same without the payloads: each row's latest version at the snapshot, grouped in the
# index that holds every column but the payload (a deleted row is stored with position 0).
_LIST = """
WITH chosen AS (
    SELECT max(position) AS at FROM view_snapshots
    WHERE projection = ?1 AND format = ?2 AND position <= ?3
)
SELECT at, NULL, NULL FROM chosen
UNION ALL
SELECT position, view, key FROM (
    SELECT view, key, position, max(snapshot) FROM snapshot_rows
    WHERE projection = ?1 AND snapshot <= (SELECT at FROM chosen) GROUP BY view, key
) WHERE position > 0
"""

# Rows by key at the snapshot ?2, with a first row saying the snapshot is still stored: one
# statement, so one read transaction (a snapshot dropped meanwhile has lost row versions).
_ROWS = """
WITH wanted(view, key) AS (VALUES {values})
SELECT NULL, NULL, NULL, NULL FROM view_snapshots WHERE projection = ?1 AND position = ?2
UNION ALL
SELECT r.view, r.key, r.position, r.data FROM wanted AS w JOIN snapshot_rows AS r
ON r.projection = ?1 AND r.view = w.view AND r.key = w.key AND r.snapshot = (
    SELECT max(snapshot) FROM snapshot_rows
    WHERE projection = ?1 AND view = w.view AND key = w.key AND snapshot <= ?2
)
"""
_ROWS_AT_ONCE = 400  # keys per statement (two parameters each)

_DROP = (
    # the versions after the previous snapshot kept that one up to the next kept replaces
    "DELETE FROM snapshot_rows WHERE projection = :p "
    "AND snapshot > :previous AND snapshot <= :drop AND (view, key) IN ("
    "SELECT view, key FROM snapshot_rows WHERE projection = :p "
    "AND snapshot > :drop AND snapshot <= :next)",
    "DELETE FROM view_snapshots WHERE projection = :p AND position = :drop",
)


class SqliteSnapshots:
    """``save_views``, ``snapshots`` and ``load_snapshot`` of the ViewStore port: a view save
    writes its snapshot in the same transaction."""

    async def _fetch(self, sql: str, params: Any = ()) -> Any:
        raise NotImplementedError

    async def _submit(self, pending: Pending) -> Any:
        raise NotImplementedError

    async def save_views(
        self,
        projection: str,
        checkpoint: int,
        rows: Mapping[tuple[str, str], str | None],
        *,
        reset: bool = False,
        snapshot: ViewSnapshot | None = None,
    ) -> None:
        """Write changed rows (None deletes) and the checkpoint in one transaction;
        ``reset`` first drops every row and snapshot of the projection (rebuild);
        ``snapshot`` is written in the same transaction."""
        upserts = [(projection, v, k, d) for (v, k), d in rows.items() if d is not None]
        deletes = [(projection, v, k) for (v, k), d in rows.items() if d is None]

        async def job(conn: Any) -> None:
            if reset:
                await conn.execute("DELETE FROM view_rows WHERE projection = ?", (projection,))
                await drop_snapshots(conn, projection)
            if snapshot is not None:
                assert snapshot.position == checkpoint, "a snapshot is of its checkpoint"
                await write_snapshot(conn, projection, snapshot)
            if deletes:
                await conn.executemany(
                    "DELETE FROM view_rows WHERE projection = ? AND view = ? AND key = ?", deletes
                )
            if upserts:
                await conn.executemany(
                    "INSERT OR REPLACE INTO view_rows (projection, view, key, data) "
                    "VALUES (?,?,?,?)",
                    upserts,
                )
            await conn.execute(
                "INSERT OR REPLACE INTO checkpoints (projection, position) VALUES (?, ?)",
                (projection, checkpoint),
            )

        await self._submit(Pending(job=job))

    async def _has_snapshot_tables(self) -> bool:
        rows = list(
            await self._fetch(
                "SELECT count(*) FROM sqlite_master "
                "WHERE type = 'table' AND name = 'view_snapshots'"
            )
        )
        return bool(rows[0][0])

    async def snapshots(self, projection: str) -> list[tuple[int, str]]:
        """The stored snapshots of ``projection``: (position, format), oldest first."""
        if not await self._has_snapshot_tables():
            return []
        rows = await self._fetch(
            "SELECT position, format FROM view_snapshots WHERE projection = ? ORDER BY position",
            (projection,),
        )
        return [(int(position), str(format_)) for position, format_ in rows]

    async def load_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotRows] | None:
        """The last snapshot in ``format`` at or before ``position`` and its rows."""
        if not await self._has_snapshot_tables():
            return None
        at: int | None = None
        rows: SnapshotRows = {}
        for chosen, view, key, row_position, data in await self._fetch(
            _LOAD, (projection, format, position)
        ):
            at = chosen
            if view is None:
                continue  # a snapshot with no rows (empty views)
            if data is None:
                rows.get(view, {}).pop(key, None)
            else:
                found = rows.get(view)
                if found is None:
                    found = rows[view] = {}
                found[key] = (row_position, data)
        return None if at is None else (at, rows)

    async def list_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotListing] | None:
        """``load_snapshot`` without the payloads (read from an index, not the rows)."""
        if not await self._has_snapshot_tables():
            return None
        found = iter(await self._fetch(_LIST, (projection, format, position)))
        at = next(found)[0]
        if at is None:
            return None
        rows: SnapshotListing = {}
        current, into = None, {}
        for row_position, view, key in found:
            if view != current:
                current, into = view, rows.setdefault(view, {})
            into[key] = row_position
        return at, rows

    async def load_snapshot_rows(
        self, projection: str, at: int, keys: Collection[RowKey]
    ) -> dict[RowKey, tuple[int, bytes]] | None:
        """The rows ``keys`` at the snapshot ``at``; None once it is no longer stored."""
        if not await self._has_snapshot_tables():
            return None
        wanted = sorted(keys)
        out: dict[RowKey, tuple[int, bytes]] = {}
        for start in range(0, max(1, len(wanted)), _ROWS_AT_ONCE):
            chunk = wanted[start : start + _ROWS_AT_ONCE] or [("", "")]
            values = ",".join(f"(?{3 + 2 * i},?{4 + 2 * i})" for i in range(len(chunk)))
            params = [projection, at, *(part for row_key in chunk for part in row_key)]
            stored = False
            for view, key, row_position, data in await self._fetch(
                _ROWS.format(values=values), params
            ):
                if view is None:
                    stored = True  # the snapshot's own row
                elif data is not None:
                    out[(view, key)] = (row_position, data)
            if not stored:
                return None  # dropped (or cleared by a rebuild) since it was listed
        return out


async def create_snapshot_tables(conn: Any) -> None:
    """Add the snapshot tables to a log that lacks them (one written before they existed)."""
    await conn.executescript(f"BEGIN IMMEDIATE;\n{SNAPSHOT_TABLES}\nCOMMIT;")


async def drop_snapshots(conn: Any, projection: str) -> None:
    """Forget every snapshot of ``projection`` (inside the caller's transaction)."""
    await conn.execute("DELETE FROM snapshot_rows WHERE projection = ?", (projection,))
    await conn.execute("DELETE FROM view_snapshots WHERE projection = ?", (projection,))


async def write_snapshot(conn: Any, projection: str, snapshot: ViewSnapshot) -> None:
    """Store ``snapshot`` and drop the ones it names (inside the caller's transaction)."""
    if snapshot.clear:
        await drop_snapshots(conn, projection)
    await conn.executemany(
        "INSERT OR REPLACE INTO snapshot_rows (projection, snapshot, view, key, position, data) "
        "VALUES (?,?,?,?,?,?)",
        [
            (projection, snapshot.position, view, key, *(value or (0, None)))
            for (view, key), value in snapshot.rows.items()
        ],
    )
    await conn.execute(
        "INSERT OR REPLACE INTO view_snapshots (projection, position, format) VALUES (?,?,?)",
        (projection, snapshot.position, snapshot.format),
    )
    for dropped in sorted(snapshot.drop):
        if dropped == snapshot.position:
            continue  # the latest is always kept
        found = list(
            await conn.execute_fetchall(
                "SELECT (SELECT max(position) FROM view_snapshots WHERE projection = :p "
                "AND position < :drop), (SELECT min(position) FROM view_snapshots "
                "WHERE projection = :p AND position > :drop)",
                {"p": projection, "drop": dropped},
            )
        )
        previous, following = found[0]
        if following is None:
            continue
        bounds = {"p": projection, "drop": dropped, "next": following, "previous": previous or 0}
        for statement in _DROP:
            await conn.execute(statement, bounds)
