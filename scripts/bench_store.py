"""Measure the event store and the projections (run through ./scripts/bench-store).

1. Append throughput with 1,000 concurrent appenders: group commit (the writer commits
   whatever is queued in one transaction) against one commit per event (``max_batch=1``),
   same store, same durability (SQLite: WAL, synchronous=FULL; PostgreSQL: fsync and
   synchronous_commit on).
2. Folding N events into the views (decode, apply, write rows, checkpoint and snapshots: the
   runner's rebuild) against a bare ``SELECT data`` + ``json.loads`` scan of the same table.
3. Time travel near the end of that log: the views at the position before the last, from the
   nearest snapshot (``projections.history``, what ``glam replay --at`` does), against a fold
   of the log from position 0 to the same position (what it did before snapshots); and, on
   SQLite, the whole ``glam replay --at`` command in a new process.

Both run on SQLite and on PostgreSQL in the same run: ``--postgres URL`` names an empty
database, else a throwaway server is started from the Debian packages (``--no-postgres`` to
leave PostgreSQL out).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import psycopg  # noqa: TID251 - the benchmark's bare scan, the baseline of the fold

from engine.events import Event, Metadata, NewEvent
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    FunctionOwner,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.store import make_store
from engine.store.records import GENESIS_HASH, StoredRow, format_time, make_row
from projections.functions import NAME as FUNCTIONS
from projections.history import History
from projections.runner import PROJECTION, ProjectionRunner
from projections.views import Views
from tests.support.postgres import TempPostgres, find_bindir

START = datetime(2025, 1, 1, tzinfo=UTC)


def _event(i: int) -> NewEvent:
    return NewEvent(
        StepSucceeded(deployment_id=f"d{i}", step="publish_version", result={"Version": "2"}),
        Metadata(event_id=f"bench-{i}"),
    )


async def _appenders(target: Path | str, count: int, max_batch: int) -> tuple[float, int]:
    async with make_store(target, max_batch=max_batch) as store:
        began = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for i in range(count):
                tg.start_soon(store.append, f"fn:1:eu-west-1:f{i}", [_event(i)], 0)
        elapsed = time.perf_counter() - began
        assert await store.last_position() == count
        return elapsed, store.commits


def _deployment(n: int, name: str) -> list[Event]:
    d = f"dep-{n}"
    desired = DesiredFunction(
        prefix=f"apps/{name}/{name}",
        function_name=name,
        definition={"FunctionName": name, "Runtime": "python3.12", "MemorySize": 128},
        settings=DeploymentSettings(alias="live"),
        content_hash=f"h{n}",
    )
    until = START + timedelta(minutes=n)
    return [
        DeploymentRequested(
            deployment_id=d,
            commit=f"{n:040x}",
            action="update",
            desired=desired,
            # As the engine records every request: the branch and prefix that own it.
            owner=FunctionOwner(
                repository="https://git.example.com/acme/lambdas",
                branch="main",
                prefix=f"apps/{name}/{name}",
            ),
        ),
        StepStarted(deployment_id=d, step="update_function_code"),
        StepSucceeded(deployment_id=d, step="update_function_code"),
        StepStarted(deployment_id=d, step="publish_version"),
        StepSucceeded(deployment_id=d, step="publish_version", result={"Version": str(n)}),
        TrafficShifted(
            deployment_id=d, alias="live", stable_version=str(n - 1), new_version=str(n), weight=0.2
        ),
        TimerStarted(deployment_id=d, purpose="bake", until=until),
        AlarmObserved(deployment_id=d, alarm=f"{name}-errors", state="OK"),
        TrafficShifted(
            deployment_id=d, alias="live", stable_version=str(n - 1), new_version=str(n), weight=1.0
        ),
        DeploymentFinished(deployment_id=d, outcome="succeeded", stable_version=str(n)),
    ]


def _rows(count: int, functions: int = 1000) -> list[StoredRow]:
    """``count`` events of realistic canary deployments spread over ``functions`` streams."""
    rows: list[StoredRow] = []
    prev = GENESIS_HASH
    versions: dict[str, int] = {}
    recorded = format_time(START)
    for n in itertools.count(1):
        name = f"f{n % functions}"
        stream = f"fn:111111111111:eu-west-1:{name}"
        for event in _deployment(n, name):
            if len(rows) == count:
                return rows
            versions[stream] = versions.get(stream, 0) + 1
            row = make_row(
                NewEvent(event, Metadata(event_id=f"e{len(rows) + 1}")),
                stream=stream,
                version=versions[stream],
                position=len(rows) + 1,
                recorded_at=recorded,
                prev_hash=prev,
            )
            prev = row.hash
            rows.append(row)
    raise AssertionError("unreachable")


def _bare_scan(target: Path | str) -> tuple[float, int]:
    if isinstance(target, str):
        with psycopg.connect(target) as pg, pg.cursor(name="scan") as cursor:
            began = time.perf_counter()
            cursor.itersize = 10_000
            count = 0
            for (data,) in cursor.execute("SELECT data FROM events ORDER BY position"):
                json.loads(data)
                count += 1
            return time.perf_counter() - began, count
    conn = sqlite3.connect(target)
    began = time.perf_counter()
    count = 0
    for (data,) in conn.execute("SELECT data FROM events ORDER BY position"):
        json.loads(data)
        count += 1
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed, count


async def _fold(target: Path | str, rows: list[StoredRow]) -> tuple[float, float]:
    count = len(rows)
    began = time.perf_counter()
    async with make_store(target) as store:
        for start in range(0, len(rows), 50_000):
            await store.import_rows(rows[start : start + 50_000])
        print(f"  loaded in {time.perf_counter() - began:.1f} s", flush=True)
        scan, scanned = await anyio.to_thread.run_sync(_bare_scan, target)
        assert scanned == count
        began = time.perf_counter()
        checkpoint = await ProjectionRunner(store, batch=10_000).rebuild()
        fold = time.perf_counter() - began
        assert checkpoint == count
        await _travel(store, target, count)
    return scan, fold


def _shown(views: Views) -> int:
    """Read what ``glam replay --at`` prints (every function, the last deployments and
    commits): the rows a snapshot left undecoded are decoded here."""
    return len(views.functions) + len(views.recent("deployments", 20) + views.recent("commits", 20))


async def _travel(store: Any, target: Path | str, count: int) -> None:
    near = max(1, count - 1)  # the worst case near the end: just before the next snapshot
    snapshots = await store.snapshots(PROJECTION)
    print(f"time travel to position {near:,} ({len(snapshots)} snapshots kept)")
    # What `glam replay --at` reads: every function, the last deployments and commits; the
    # first time right after the rebuild wrote the file, then with a new History again (no
    # answer remembered; the file's pages cached, as for a log in use).
    times = []
    for _ in range(2):
        began = time.perf_counter()
        printed = await History(store).at(near, whole=(FUNCTIONS,), recent=20)
        _shown(printed)
        times.append(time.perf_counter() - began)
    fast = times[-1]
    travel = History(store)
    began = time.perf_counter()
    views = await travel.at(near)
    shown = _shown(views)
    whole = time.perf_counter() - began
    start = travel.last_start[1]
    print(
        f"  from the snapshot at {start:,}, what replay --at prints  {times[0]:8.2f} s, "
        f"again {fast:.2f} s  ({near - start:,} events folded)"
    )
    print(f"  the same, the snapshot read whole   {whole:8.2f} s  ({shown:,} rows decoded)")
    began = time.perf_counter()
    again = await travel.at(near)
    _shown(again)
    print(f"  asked again (remembered)  {time.perf_counter() - began:8.3f} s")
    began = time.perf_counter()
    full = await History(store).at(near, snapshots=False)
    slow = time.perf_counter() - began
    assert full.as_json()["functions"] == views.as_json()["functions"]
    assert printed.recent("deployments", 20) == full.recent("deployments", 20)
    print(f"  fold from position 0      {slow:8.2f} s")
    print(f"  the snapshot is {slow / fast:.0f}x faster than the fold")
    if isinstance(target, Path):
        # As an installed copy runs: with a bytecode cache (kept beside the database).
        env = {**os.environ, "PYTHONPYCACHEPREFIX": str(target.parent / "pycache")}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        glam = Path(sys.executable).parent / "glam"
        command = [str(glam), "replay", "--at", str(near), "--db", str(target)]
        runs = ("first run, compiling", "with the bytecode cache")
        status = [str(glam), "status", "--db", str(target)]
        for name, argv, run in [*(("replay --at", command, r) for r in runs),
                                ("status", status, runs[1])]:  # fmt: skip
            cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
            began = time.perf_counter()
            await anyio.run_process(
                argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
            )
            wall = time.perf_counter() - began
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
            print(f"  `glam {name}` ({run})  {wall:8.2f} s  ({used:.2f} s of CPU)")


def _report_appends(backend: str, count: int, runs: dict[str, tuple[float, int]]) -> None:
    (grouped, commits), (single, singles) = runs["grouped"], runs["single"]
    print(f"append ({backend}): {count:,} concurrent appenders, one event each")
    print(
        f"  group commit       {grouped:8.3f} s  {count / grouped:10,.0f} "
        f"events/s  ({commits} transactions)"
    )
    print(
        f"  commit per event   {single:8.3f} s  {count / single:10,.0f} "
        f"events/s  ({singles} transactions)"
    )
    print(f"  group commit is {single / grouped:.1f}x faster")


async def _measure(
    backend: str,
    target: Callable[[str], Path | str],
    args: argparse.Namespace,
    rows: list[StoredRow],
) -> tuple[float, float]:
    """Appends (group commit, then one commit per event) and the fold, each on an empty log
    from ``target(name)``; the group commit time and the fold time."""
    runs = {
        "grouped": await _appenders(target("grouped"), args.appenders, 2000),
        "single": await _appenders(target("single"), args.appenders, 1),
    }
    _report_appends(backend, args.appenders, runs)
    print(f"fold ({backend}): {args.events:,} events into the views")
    scan, fold = await _fold(target("fold"), rows)
    print(f"  SELECT + json.loads  {scan:8.2f} s  {args.events / scan:12,.0f} events/s")
    print(f"  fold into views      {fold:8.2f} s  {args.events / fold:12,.0f} events/s")
    print(f"  folding costs {fold / scan:.1f}x the bare scan")
    return runs["grouped"][0], fold


def _emptied(url: str) -> str:
    """The given database, the tables the previous measurement made dropped: each
    measurement starts from nothing (``main`` checked that it held no log at first)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS events, view_rows, checkpoints, glam_log")
    return url


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--appenders", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--postgres", metavar="URL", help="a database glam's tables may be in")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args()
    print(f"generating {args.events:,} events ...", flush=True)
    rows = _rows(args.events)
    results: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="glam-bench-") as tmp:
        folder = Path(tmp)
        results["SQLite"] = await _measure("SQLite", lambda n: folder / f"{n}.db", args, rows)
    if args.no_postgres:
        return
    if args.postgres:
        url: str = args.postgres
        with psycopg.connect(url) as conn:
            found = conn.execute("SELECT to_regclass('glam_log')").fetchone()
        if found and found[0] is not None:  # never drop a real log's tables
            raise SystemExit("--postgres needs a database that holds no glam log")
        results["PostgreSQL"] = await _measure("PostgreSQL", lambda _: _emptied(url), args, rows)
    elif find_bindir() is None:
        print("PostgreSQL is not installed: its figures are left out (see scripts/_postgres.sh)")
        return
    else:
        with TempPostgres(fsync=True) as server:
            print(f"PostgreSQL: a throwaway server on 127.0.0.1, fsync on ({server.bindir})")
            results["PostgreSQL"] = await _measure(
                "PostgreSQL", lambda _: server.create_database(), args, rows
            )
    print("side by side: group commit appends/s, fold events/s")
    for backend, (append, fold) in results.items():
        print(f"  {backend:<11} {args.appenders / append:10,.0f}  {args.events / fold:10,.0f}")


if __name__ == "__main__":
    anyio.run(main)
