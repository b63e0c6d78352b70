"""Measure the event store and the projections (run through ./scripts/bench-store).

1. Append throughput with 1,000 concurrent appenders: group commit (the writer commits
   whatever is queued in one transaction) against one commit per event (``max_batch=1``),
   same store, same durability (WAL, synchronous=FULL).
2. Folding N events into the views (decode, apply, write rows and checkpoint: the runner's
   rebuild) against a bare ``SELECT data`` + ``json.loads`` scan of the same table.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sqlite3
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio

from engine.events import Event, Metadata, NewEvent
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import (
    AlarmObserved,
    DeploymentFinished,
    DeploymentRequested,
    StepStarted,
    StepSucceeded,
    TimerStarted,
    TrafficShifted,
)
from engine.store.records import GENESIS_HASH, StoredRow, format_time, make_row
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner

START = datetime(2025, 1, 1, tzinfo=UTC)


def _event(i: int) -> NewEvent:
    return NewEvent(
        StepSucceeded(deployment_id=f"d{i}", step="publish_version", result={"Version": "2"}),
        Metadata(event_id=f"bench-{i}"),
    )


async def _appenders(path: Path, count: int, max_batch: int) -> tuple[float, int]:
    async with SqliteEventStore(path, max_batch=max_batch) as store:
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
        DeploymentRequested(deployment_id=d, commit=f"{n:040x}", action="update", desired=desired),
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


def _bare_scan(path: Path) -> tuple[float, int]:
    conn = sqlite3.connect(path)
    began = time.perf_counter()
    count = 0
    for (data,) in conn.execute("SELECT data FROM events ORDER BY position"):
        json.loads(data)
        count += 1
    elapsed = time.perf_counter() - began
    conn.close()
    return elapsed, count


async def _fold(path: Path, count: int) -> tuple[float, float]:
    print(f"  generating {count:,} events ...", flush=True)
    began = time.perf_counter()
    rows = _rows(count)
    async with SqliteEventStore(path) as store:
        for start in range(0, len(rows), 50_000):
            await store.import_rows(rows[start : start + 50_000])
        del rows
        print(f"  loaded in {time.perf_counter() - began:.1f} s", flush=True)
        scan, scanned = await anyio.to_thread.run_sync(_bare_scan, path)
        assert scanned == count
        began = time.perf_counter()
        checkpoint = await ProjectionRunner(store, batch=10_000).rebuild()
        fold = time.perf_counter() - began
        assert checkpoint == count
    return scan, fold


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--appenders", type=int, default=1000)
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="glam-bench-") as tmp:
        folder = Path(tmp)
        print(f"append: {args.appenders:,} concurrent appenders, one event each")
        grouped, commits = await _appenders(folder / "grouped.db", args.appenders, 2000)
        single, singles = await _appenders(folder / "single.db", args.appenders, 1)
        print(
            f"  group commit       {grouped:8.3f} s  {args.appenders / grouped:10,.0f} "
            f"events/s  ({commits} transactions)"
        )
        print(
            f"  commit per event   {single:8.3f} s  {args.appenders / single:10,.0f} "
            f"events/s  ({singles} transactions)"
        )
        print(f"  group commit is {single / grouped:.1f}x faster")
        print(f"fold: {args.events:,} events into the views")
        scan, fold = await _fold(folder / "fold.db", args.events)
        print(f"  SELECT + json.loads  {scan:8.2f} s  {args.events / scan:12,.0f} events/s")
        print(f"  fold into views      {fold:8.2f} s  {args.events / fold:12,.0f} events/s")
        print(f"  folding costs {fold / scan:.1f}x the bare scan")


if __name__ == "__main__":
    anyio.run(main)
