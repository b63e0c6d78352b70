"""Moving a log between backends (``glam db copy``) and describing one (``glam db info``).

``copy_log`` reads the source read-only and imports its rows verbatim into the target, in
chunks: the same positions, times and hashes, so the hash chain arrives intact, and each
chunk is checked to continue the chain before it is written. A keyed log stays keyed: its note
saying so is copied first (with the key given, the copy is checked with it). Afterwards the
whole target is verified and its last hash compared with the source's. A copy that stopped
half way is resumed by running it again: the rows the target already holds are checked
against the source, not written twice. The stored views are not copied row by row: once the
events are, they are folded in the target (with their snapshots for ``replay --at``) by the
projection runner, the same code the engine folds with, so queries and the dashboard on the
copy start at its end rather than refolding it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from engine.errors import StoreCorrupt, StoreError
from engine.store import describe_target, is_postgres_url, make_store
from engine.store.integrity import Integrity
from engine.store.witness import Witness
from projections.runner import ProjectionRunner

if TYPE_CHECKING:
    from engine.store import Store
    from engine.store.pg_leases import Lease

COPY_CHUNK = 10_000


@dataclass(frozen=True, slots=True)
class CopyReport:
    """What ``copy_log`` did."""

    source: str
    target: str
    copied: int  # rows written by this run
    already: int  # rows the target held already (a copy resumed), checked against the source
    position: int  # the last position of both logs
    last_hash: str  # the hash at that position, the same in both
    views_at: int = 0  # the checkpoint of the target's stored views after the copy


async def copy_log(
    source: str | Path,
    target: str | Path,
    *,
    chunk: int = COPY_CHUNK,
    progress: Callable[[int, int], None] | None = None,
    folding: Callable[[int], None] | None = None,
    integrity: Integrity | None = None,
) -> CopyReport:
    """Copy every event of ``source`` into ``target`` (an SQLite path or a PostgreSQL URL
    each), chain intact, verify the copy, then fold the target's stored views to its end.
    ``progress(position, last)`` after each chunk; ``folding(last)`` before the fold.

    Raises ``StoreCorrupt`` when the target holds another log, when a source row breaks the
    chain (nothing of that chunk is written) or when the copy does not verify. Stop the engine
    writing to the source first: what it appends during the copy is not copied (run the copy
    again to bring it over).
    """
    where_from, where_to = describe_target(source), describe_target(target)
    if where_from == where_to:
        raise StoreError(f"cannot copy {where_from} onto itself", hint="name another target")
    failure: StoreError | None = None
    # The target is not witnessed while it is filled: the witness, if any, is the source's.
    options = integrity or Integrity.from_env()
    quiet = Integrity(options.key, options.key_file, None)
    async with (
        make_store(source, readonly=True, integrity=options) as src,
        make_store(target, integrity=quiet) as dst,
    ):
        try:
            report = await _copy(src, dst, where_from, where_to, chunk, progress)
            if folding is not None:
                folding(report.position)
            views_at = await ProjectionRunner(dst).catch_up()
            return dataclasses.replace(report, views_at=views_at)
        except StoreError as exc:
            # Raised once both stores are closed, as itself (not inside an exception group).
            failure = exc
    raise failure


async def _copy(
    src: Store,
    dst: Store,
    where_from: str,
    where_to: str,
    chunk: int,
    progress: Callable[[int, int], None] | None,
) -> CopyReport:
    end = await src.last_position()
    start = await dst.last_position()
    if start > end:
        raise StoreCorrupt(
            f"{where_to} holds {start} events, more than {where_from} ({end}): another log",
            hint="copy into an empty database or file",
        )
    if start and (await dst.read_rows(start, 1))[0].hash != (await src.read_rows(start, 1))[0].hash:
        raise StoreCorrupt(
            f"{where_to} already holds another log (position {start} differs)",
            hint="copy into an empty database or file",
        )
    note = src.integrity.raw_chain_note
    if not start:
        await dst.adopt_chain(note)
    elif dst.integrity.raw_chain_note != note:
        raise StoreCorrupt(
            f"{where_to} is keyed differently from {where_from}",
            hint="copy into an empty database or file",
        )
    position = start + 1
    while position <= end:
        rows = await src.read_rows(position, min(chunk, end - position + 1))
        if not rows:
            break
        await dst.import_rows(rows)
        position = rows[-1].position + 1
        if progress is not None:
            progress(rows[-1].position, end)
    bad, reason = await dst.verify_detail()
    if bad is not None:
        raise StoreCorrupt(
            f"the copy in {where_to} does not verify at position {bad}: {reason}",
            hint="check the source with `glam replay --verify`, then copy again",
        )
    last_hash = ""
    if end:
        (theirs,) = await src.read_rows(end, 1)
        (mine,) = await dst.read_rows(end, 1)
        if mine.hash != theirs.hash or await dst.last_position() != end:
            raise StoreCorrupt(
                f"the copy in {where_to} ends differently from {where_from}",
                hint="copy into an empty database or file",
            )
        last_hash = mine.hash
    return CopyReport(where_from, where_to, end - start, start, end, last_hash)


@dataclass(frozen=True, slots=True)
class LogInfo:
    """What ``glam db info`` shows about one log."""

    backend: str  # "sqlite" or "postgresql"
    location: str  # the path, or the URL without its password
    schema_version: int
    events: int  # the last position
    first_recorded_at: datetime | None
    last_recorded_at: datetime | None
    size_bytes: int
    checkpoints: dict[str, int] = field(default_factory=dict)  # projection -> position
    server_version: str = ""  # PostgreSQL's
    head_hash: str = ""  # the hash of the last event: the head of the chain
    verified_to: int = 0  # the verified head the log's notes record
    keyed_from: int | None = None
    key_id: str | None = None
    witness: str = ""  # the witness file and what it saw, if one is configured
    # PostgreSQL's lease table (engine.store.pg_leases), by shard; None on a log no engine
    # ever shared (SQLite always: one engine, under the file's lock).
    leases: tuple[Lease, ...] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "location": self.location,
            "schema_version": self.schema_version,
            "events": self.events,
            "first_recorded_at": _iso(self.first_recorded_at),
            "last_recorded_at": _iso(self.last_recorded_at),
            "size_bytes": self.size_bytes,
            "checkpoints": dict(self.checkpoints),
            "server_version": self.server_version,
            "head": {"position": self.events, "hash": self.head_hash},
            "verified_to": self.verified_to,
            "keyed": self.keyed_from is not None,
            "keyed_from": self.keyed_from,
            "key_id": self.key_id,
            "witness": self.witness,
            "leases": None
            if self.leases is None
            else [
                {
                    "shard": lease.shard,
                    "owner": lease.owner,
                    "epoch": lease.epoch,
                    "expires_at": _iso(lease.expires_at),
                    "live": lease.live,
                }
                for lease in self.leases
            ],
        }

    def lines(self) -> list[str]:
        """The human form, one fact per line."""
        backend = self.backend + (f" {self.server_version}" if self.server_version else "")
        views = ", ".join(f"{name} at {at}" for name, at in sorted(self.checkpoints.items()))
        return [
            f"backend     {backend} (schema {self.schema_version})",
            f"location    {self.location}",
            f"events      {self.events:,}",
            f"recorded    {_iso(self.first_recorded_at) or '-'} .. "
            f"{_iso(self.last_recorded_at) or '-'}",
            f"size        {self.size_bytes / 1_048_576:,.1f} MiB",
            f"views       {views or 'not folded yet'}",
            f"head        {head_line(self.events, self.head_hash)}",
            f"verified    up to position {self.verified_to:,} (as its writers last noted)",
            "chain       "
            + (
                f"keyed from position {self.keyed_from:,} (key id {self.key_id})"
                if self.keyed_from is not None
                else "sha256, not keyed"
            ),
            *([f"witness     {self.witness}"] if self.witness else []),
            *self._lease_lines(),
        ]

    def _lease_lines(self) -> list[str]:
        if self.leases is None:
            return [
                "leases      no leases: one engine"
                + ("" if self.backend == "sqlite" else " (no engine has run --shared on it)")
            ]
        if not self.leases:
            return ["leases      none yet"]
        width = max(len(lease.shard) for lease in self.leases)
        lines = [f"leases      {len(self.leases)} shards ({_owners(self.leases)})"]
        for lease in self.leases:
            owner = lease.owner if lease.owner is not None else "(free)"
            state = "expires" if lease.live else "expired"
            lines.append(
                f"  {lease.shard:<{width}}  {owner}  epoch {lease.epoch}  "
                f"{state} {_iso(lease.expires_at) or '-'}"
            )
        return lines


def _owners(leases: tuple[Lease, ...]) -> str:
    """How many shards each live owner holds, as one phrase."""
    held: dict[str, int] = {}
    for lease in leases:
        if lease.live and lease.owner is not None:
            held[lease.owner] = held.get(lease.owner, 0) + 1
    if not held:
        return "no live owner"
    return ", ".join(f"{owner}: {count}" for owner, count in sorted(held.items()))


def head_line(position: int, digest: str) -> str:
    """The head of a chain as shown: its position and the start of its hash."""
    return f"position {position:,}, hash {digest[:16]}" if position else "empty log"


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment is not None else ""


async def log_info(target: str | Path, *, integrity: Integrity | None = None) -> LogInfo:
    """Describe the log at ``target`` (opened read-only; SQLite without its integrity check,
    which ``glam replay --verify`` runs; a witness that does not match refuses it)."""
    options = integrity or Integrity.from_env()
    async with make_store(target, readonly=True, check=False, integrity=options) as store:
        verified_to = store.integrity.head.position  # as the log's notes say, before any read
        events = await store.last_position()
        first = await store.read_all(1, 1)
        last = await store.read_all(events, 1) if events else []
        times = (
            first[0].recorded_at if first else None,
            last[0].recorded_at if last else None,
        )
        chain = store.integrity.chain
        facts: dict[str, Any] = {
            "head_hash": last[0].hash if last else "",
            "verified_to": verified_to,
            "keyed_from": chain.keyed_from,
            "key_id": chain.key_id,
            "witness": await anyio.to_thread.run_sync(_witness_line, options),
        }
        if is_postgres_url(target):
            from engine.store.postgres import PostgresEventStore

            assert isinstance(store, PostgresEventStore)
            described = await store.describe()
            return LogInfo(
                "postgresql",
                describe_target(target),
                described["schema_version"],
                events,
                *times,
                size_bytes=described["size_bytes"],
                checkpoints=described["checkpoints"],
                server_version=described["server_version"],
                leases=None if (rows := await store.leases()) is None else tuple(rows),
                **facts,
            )
    schema, checkpoints = await anyio.to_thread.run_sync(_sqlite_facts, Path(target))
    return LogInfo(
        "sqlite",
        str(target),
        schema,
        events,
        *times,
        size_bytes=await anyio.to_thread.run_sync(_size_on_disk, Path(target)),
        checkpoints=checkpoints,
        **facts,
    )


def _size_on_disk(path: Path) -> int:
    """The bytes of the SQLite file with its WAL and shared-memory files (file-system calls:
    run in a worker thread)."""
    files = (path, Path(f"{path}-wal"), Path(f"{path}-shm"))
    return sum(p.stat().st_size for p in files if p.exists())


def _witness_line(options: Integrity) -> str:
    """What the witness saw (reads its file: run in a worker thread)."""
    if options.witness is None:
        return ""
    record = Witness(options.witness).read()
    if record is None:
        return f"{options.witness}: not written yet"
    return f"{options.witness}: saw {head_line(record.position, record.hash)} (the log matches)"


def _sqlite_facts(path: Path) -> tuple[int, dict[str, int]]:
    """The schema version and the checkpoints, read with the standard library (read-only):
    the SQLite store has no call for them, and this needs no writer."""
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        (schema,) = conn.execute("PRAGMA user_version").fetchone()
        rows = conn.execute("SELECT projection, position FROM checkpoints").fetchall()
    finally:
        conn.close()
    return int(schema), {str(name): int(position) for name, position in rows}
