"""The ``ViewStore`` port on PostgreSQL: projection rows and checkpoints, as SQL.

A mixin of ``engine.store.postgres.PostgresEventStore``, which provides ``_read`` (run a body
on the reader connection, reconnecting once) and ``_submit`` (run a job in the writer's next
transaction). The connection the bodies get is a psycopg ``AsyncConnection``; it is typed
``Any`` here because only the adapter module imports psycopg.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from engine.store.batching import Pending

T = TypeVar("T")


class ViewRows:
    """``load_views`` reads rows and checkpoint in one snapshot; ``save_views`` writes them
    in one transaction of the writer."""

    async def _read(self, body: Callable[[Any], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _submit(self, pending: Pending) -> Any:
        raise NotImplementedError

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
    ) -> None:
        """Write changed rows (None deletes) and the checkpoint in one transaction;
        ``reset`` first drops every row of the projection (rebuild)."""
        upserts = [(v, k, d) for (v, k), d in rows.items() if d is not None]
        deletes = [(v, k) for (v, k), d in rows.items() if d is None]

        async def job(conn: Any) -> None:
            if reset:
                await conn.execute("DELETE FROM view_rows WHERE projection = %s", (projection,))
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
