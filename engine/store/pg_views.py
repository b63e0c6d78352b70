"""The ``ViewStore`` port on PostgreSQL: projection rows, checkpoints and snapshots, as SQL.

A mixin of ``engine.store.postgres.PostgresEventStore``, which provides ``_read`` (run a body
on the reader connection, reconnecting once) and ``_submit`` (run a job in the writer's next
transaction). The connection the bodies get is a psycopg ``AsyncConnection``; it is typed
``Any`` here because only the adapter module imports psycopg.

Snapshots (time travel) are kept as in the SQLite log (``engine.store.sqlite_snapshots``
explains the layout): ``view_snapshots`` lists them, ``snapshot_rows`` holds row versions,
each belonging to the first snapshot it is part of, never moved. The tables are created
when a writer opens a log that lacks them (``SNAPSHOT_TABLES``); a log without them has no
snapshots.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any, TypeVar

from engine.ports import RowKey, SnapshotListing, SnapshotRows, ViewSnapshot
from engine.store.batching import Pending
from engine.store.pg_log import APPEND_LOCK

SNAPSHOT_TABLES = """
CREATE TABLE IF NOT EXISTS view_snapshots (
    projection text   NOT NULL,
    position   bigint NOT NULL,
    format     text   NOT NULL,
    PRIMARY KEY (projection, position)
);
CREATE TABLE IF NOT EXISTS snapshot_rows (
    projection text   NOT NULL,
    snapshot   bigint NOT NULL,
    view       text   NOT NULL,
    key        text   NOT NULL,
    position   bigint NOT NULL,
    data       bytea,
    PRIMARY KEY (projection, snapshot, view, key)
);
-- A row's versions in order, with their positions: listing a snapshot's rows reads this index,
-- not the payloads (it replaces snapshot_rows_by_key, the same without position).
CREATE INDEX IF NOT EXISTS snapshot_rows_latest
    ON snapshot_rows (projection, view, key, snapshot) INCLUDE (position);
DROP INDEX IF EXISTS snapshot_rows_by_key;
"""
_DROP = (
    # the versions after the previous snapshot kept that one up to the next kept replaces
    "DELETE FROM snapshot_rows WHERE projection = %(p)s "
    "AND snapshot > %(previous)s AND snapshot <= %(drop)s AND (view, key) IN ("
    "SELECT view, key FROM snapshot_rows WHERE projection = %(p)s "
    "AND snapshot > %(drop)s AND snapshot <= %(next)s)",
    "DELETE FROM view_snapshots WHERE projection = %(p)s AND position = %(drop)s",
)

T = TypeVar("T")


class ViewRows:
    """``load_views`` reads rows and checkpoint in one snapshot; ``save_views`` writes them
    in one transaction of the writer."""

    async def _read(self, body: Callable[[Any], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _submit(self, pending: Pending) -> Any:
        raise NotImplementedError

    async def load_rows(
        self, projection: str, view: str, keys: Collection[str] | None = None
    ) -> tuple[int, dict[str, str]]:
        """The projection's checkpoint and the rows of one view (only those of ``keys``, when
        given), by key, read in one snapshot."""

        async def body(conn: Any) -> tuple[int, dict[str, str]]:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute(
                    "SELECT position FROM checkpoints WHERE projection = %s", (projection,)
                )
                checkpoint = await cur.fetchone()
                if keys is None:
                    cur = await conn.execute(
                        "SELECT key, data FROM view_rows WHERE projection = %s AND view = %s",
                        (projection, view),
                    )
                else:
                    cur = await conn.execute(
                        "SELECT key, data FROM view_rows WHERE projection = %s AND view = %s "
                        "AND key = ANY(%s)",
                        (projection, view, sorted(keys)),
                    )
                rows = await cur.fetchall()
            return (int(checkpoint[0]) if checkpoint else 0), {k: d for k, d in rows}

        return await self._read(body)

    async def load_views(self, projection: str) -> tuple[int, dict[tuple[str, str], str]]:
        """The projection's checkpoint and its rows, read in one snapshot."""

        async def body(conn: Any) -> tuple[int, dict[tuple[str, str], str]]:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute(
                    "SELECT position FROM checkpoints WHERE projection = %s", (projection,)
                )
                checkpoint = await cur.fetchone()
                cur = await conn.execute(
                    "SELECT view, key, data FROM view_rows WHERE projection = %s", (projection,)
                )
                rows = await cur.fetchall()
            return (int(checkpoint[0]) if checkpoint else 0), {(v, k): d for v, k, d in rows}

        return await self._read(body)

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
        upserts = [(v, k, d) for (v, k), d in rows.items() if d is not None]
        deletes = [(v, k) for (v, k), d in rows.items() if d is None]

        async def job(conn: Any) -> None:
            if reset:
                await conn.execute("DELETE FROM view_rows WHERE projection = %s", (projection,))
                await _drop_snapshots(conn, projection)
            if snapshot is not None:
                assert snapshot.position == checkpoint, "a snapshot is of its checkpoint"
                await _write_snapshot(conn, projection, snapshot)
            if deletes:
                await conn.execute(
                    "DELETE FROM view_rows WHERE projection = %s AND (view, key) IN "
                    "(SELECT * FROM unnest(%s::text[], %s::text[]))",
                    (projection, [v for v, _ in deletes], [k for _, k in deletes]),
                )
            if upserts:
                # COPY into a session table, then one upsert: several times faster than
                # passing the rows as array parameters, whose text must be escaped.
                await conn.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS glam_incoming_views "
                    "(view text, key text, data text) ON COMMIT DELETE ROWS"
                )
                sql = "COPY glam_incoming_views (view, key, data) FROM STDIN"
                async with conn.cursor() as cur, cur.copy(sql) as copy:
                    for row in upserts:
                        await copy.write_row(row)
                await conn.execute(
                    "INSERT INTO view_rows (projection, view, key, data) "
                    "SELECT %s, view, key, data FROM glam_incoming_views "
                    "ON CONFLICT (projection, view, key) DO UPDATE SET data = EXCLUDED.data",
                    (projection,),
                )
            await conn.execute(
                "INSERT INTO checkpoints (projection, position) VALUES (%s, %s) "
                "ON CONFLICT (projection) DO UPDATE SET position = EXCLUDED.position",
                (projection, checkpoint),
            )

        await self._submit(Pending(job=job))

    async def snapshots(self, projection: str) -> list[tuple[int, str]]:
        """The stored snapshots of ``projection``: (position, format), oldest first."""

        async def body(conn: Any) -> list[tuple[int, str]]:
            cur = await conn.execute("SELECT to_regclass('view_snapshots') IS NOT NULL")
            if not (await cur.fetchone())[0]:
                return []
            cur = await conn.execute(
                "SELECT position, format FROM view_snapshots WHERE projection = %s "
                "ORDER BY position",
                (projection,),
            )
            return [(int(p), str(f)) for p, f in await cur.fetchall()]

        return await self._read(body)

    async def load_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotRows] | None:
        """The last snapshot in ``format`` at or before ``position`` and its rows, read in
        one snapshot of the database."""

        async def body(conn: Any) -> tuple[int, SnapshotRows] | None:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute("SELECT to_regclass('view_snapshots') IS NOT NULL")
                if not (await cur.fetchone())[0]:
                    return None
                cur = await conn.execute(
                    "SELECT max(position) FROM view_snapshots "
                    "WHERE projection = %s AND format = %s AND position <= %s",
                    (projection, format, position),
                )
                at = (await cur.fetchone())[0]
                if at is None:
                    return None
                rows: SnapshotRows = {}
                # Binary results: bytea as it is stored, not as hexadecimal text to decode.
                async with conn.cursor(binary=True) as cur:
                    await cur.execute(
                        "SELECT view, key, position, data FROM snapshot_rows "
                        "WHERE projection = %s AND snapshot <= %s ORDER BY snapshot",
                        (projection, at),
                    )
                    for view, key, row_position, data in await cur.fetchall():
                        if data is None:
                            rows.get(view, {}).pop(key, None)
                        else:
                            rows.setdefault(view, {})[key] = (row_position, bytes(data))
            return int(at), rows

        return await self._read(body)

    async def list_snapshot(
        self, projection: str, position: int, format: str
    ) -> tuple[int, SnapshotListing] | None:
        """``load_snapshot`` without the payloads (a deleted row is stored with position 0)."""

        async def body(conn: Any) -> tuple[int, SnapshotListing] | None:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute("SELECT to_regclass('view_snapshots') IS NOT NULL")
                if not (await cur.fetchone())[0]:
                    return None
                cur = await conn.execute(
                    "SELECT max(position) FROM view_snapshots "
                    "WHERE projection = %s AND format = %s AND position <= %s",
                    (projection, format, position),
                )
                at = (await cur.fetchone())[0]
                if at is None:
                    return None
                rows: SnapshotListing = {}
                cur = await conn.execute(
                    "SELECT DISTINCT ON (view, key) view, key, position FROM snapshot_rows "
                    "WHERE projection = %s AND snapshot <= %s ORDER BY view, key, snapshot DESC",
                    (projection, at),
                )
                for view, key, row_position in await cur.fetchall():
                    if row_position:  # 0: deleted
                        rows.setdefault(view, {})[key] = int(row_position)
            return int(at), rows

        return await self._read(body)

    async def load_snapshot_rows(
        self, projection: str, at: int, keys: Collection[RowKey]
    ) -> dict[RowKey, tuple[int, bytes]] | None:
        """The rows ``keys`` at the snapshot ``at``; None once it is no longer stored."""
        views, names = [v for v, _ in keys], [k for _, k in keys]

        async def body(conn: Any) -> dict[RowKey, tuple[int, bytes]] | None:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                cur = await conn.execute("SELECT to_regclass('view_snapshots') IS NOT NULL")
                if not (await cur.fetchone())[0]:
                    return None
                cur = await conn.execute(
                    "SELECT 1 FROM view_snapshots WHERE projection = %s AND position = %s",
                    (projection, at),
                )
                if await cur.fetchone() is None:
                    return None  # dropped (or cleared by a rebuild) since it was listed
                out: dict[RowKey, tuple[int, bytes]] = {}
                async with conn.cursor(binary=True) as cur:
                    await cur.execute(
                        "SELECT DISTINCT ON (r.view, r.key) r.view, r.key, r.position, r.data "
                        "FROM unnest(%s::text[], %s::text[]) AS w(view, key) "
                        "JOIN snapshot_rows AS r ON r.projection = %s AND r.view = w.view "
                        "AND r.key = w.key AND r.snapshot <= %s "
                        "ORDER BY r.view, r.key, r.snapshot DESC",
                        (views, names, projection, at),
                    )
                    for view, key, row_position, data in await cur.fetchall():
                        if data is not None:
                            out[(view, key)] = (int(row_position), bytes(data))
            return out

        return await self._read(body)


async def create_snapshot_tables(conn: Any) -> None:
    """Add the snapshot tables to a log that lacks them (one written before they existed).
    Under the append lock: two stores opening at once would race in ``CREATE TABLE IF NOT
    EXISTS`` (PostgreSQL checks the name before it creates, not atomically)."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
        await conn.execute(SNAPSHOT_TABLES)


async def _drop_snapshots(conn: Any, projection: str) -> None:
    await conn.execute("DELETE FROM snapshot_rows WHERE projection = %s", (projection,))
    await conn.execute("DELETE FROM view_snapshots WHERE projection = %s", (projection,))


async def _write_snapshot(conn: Any, projection: str, snapshot: ViewSnapshot) -> None:
    if snapshot.clear:
        await _drop_snapshots(conn, projection)
    await conn.execute(
        "DELETE FROM snapshot_rows WHERE projection = %s AND snapshot = %s",
        (projection, snapshot.position),
    )
    sql = (
        "COPY snapshot_rows (projection, snapshot, view, key, position, data) "
        "FROM STDIN (FORMAT BINARY)"  # bytea as it is, not escaped into text
    )
    async with conn.cursor() as cur, cur.copy(sql) as copy:
        copy.set_types(["text", "int8", "text", "text", "int8", "bytea"])
        for (view, key), value in snapshot.rows.items():
            row_position, data = value or (0, None)
            await copy.write_row((projection, snapshot.position, view, key, row_position, data))
    await conn.execute(
        "INSERT INTO view_snapshots (projection, position, format) VALUES (%s, %s, %s) "
        "ON CONFLICT (projection, position) DO UPDATE SET format = EXCLUDED.format",
        (projection, snapshot.position, snapshot.format),
    )
    for dropped in sorted(snapshot.drop):
        if dropped == snapshot.position:
            continue  # the latest is always kept
        cur = await conn.execute(
            "SELECT (SELECT max(position) FROM view_snapshots WHERE projection = %(p)s "
            "AND position < %(drop)s), (SELECT min(position) FROM view_snapshots "
            "WHERE projection = %(p)s AND position > %(drop)s)",
            {"p": projection, "drop": dropped},
        )
        previous, following = await cur.fetchone()
        if following is None:
            continue
        bounds = {"p": projection, "drop": dropped, "next": following, "previous": previous or 0}
        for statement in _DROP:
            await conn.execute(statement, bounds)
