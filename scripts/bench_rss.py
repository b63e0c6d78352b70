"""Measure the engine's memory with N deployments in flight (run through ./scripts/bench-rss).

One process, one engine, an SQLite log in a temporary folder, the in-memory AWS of
``engine.testing`` (no network, no emulator: what is measured is glam's own memory). A first
commit creates N functions and the engine runs until they are all deployed and idle: that is
the baseline, the same process idle with the same log. The peak counter is then reset
(``/proc/self/clear_refs``) and a second commit changes every function's code with a CANARY
whose bake lasts an hour, so all N deployments are in flight at once (traffic shifted,
baking, alarms polled): their peak resident memory is the figure.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from pathlib import Path

import anyio

from engine.events import RecordedEvent
from engine.events.function import DeploymentFinished, TimerStarted
from engine.runtime.engine import Engine, EngineConfig
from engine.store.sqlite import SqliteEventStore
from engine.testing import FakeProvider, MemoryRepo
from tests.runtime.support import FAST, write_function

OUT = {
    "lambda_exec_role_arn": {"value": "arn:aws:iam::123456789012:role/bench"},
    "s3_bucket_name": {"value": "bench"},
    "s3_object_blue_key": {"value": "blue.zip"},
    "s3_object_green_key": {"value": "green.zip"},
}
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}
BAKING = {"type": "CANARY", "percent": 10, "waitInterval": 3600}


def _status(field: str) -> int:
    """A memory figure of this process from /proc/self/status, in bytes (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS


def _write_all(repo: MemoryRepo, count: int, code: str, traffic: dict[str, object]) -> None:
    for i in range(count):
        name = f"fn{i:04d}"
        write_function(
            repo, OUT, name=name, prefix=f"apps/{name}/{name}", code=code, traffic=traffic
        )


class _Count:
    """Counts events of one kind; ``reached`` is set once there are ``target`` of them."""

    def __init__(self) -> None:
        self.seen = 0
        self.target = 0
        self.reached = anyio.Event()

    def expect(self, target: int) -> None:
        self.seen, self.target, self.reached = 0, target, anyio.Event()

    def add(self) -> None:
        self.seen += 1
        if self.seen >= self.target:
            self.reached.set()

    async def wait(self, what: str, within: float) -> None:
        began = time.perf_counter()
        with anyio.fail_after(within):
            await self.reached.wait()
        print(f"  {self.target:,} {what} in {time.perf_counter() - began:.1f} s", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("deployments", nargs="?", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    count: int = args.deployments
    finished, baking = _Count(), _Count()
    finished.expect(count)
    baking.expect(count)

    def on_event(record: RecordedEvent) -> None:
        if isinstance(record.event, DeploymentFinished):
            finished.add()
        elif isinstance(record.event, TimerStarted) and record.event.purpose == "bake":
            baking.add()

    repo = MemoryRepo()
    _write_all(repo, count, "blue", NOW)
    repo.commit(f"{count} functions")
    with tempfile.TemporaryDirectory(prefix="glam-bench-rss-") as tmp:
        db = Path(tmp) / "glam.db"
        config = EngineConfig(
            repo="memory://bench", db=db, poll=0.2, max_parallel=count, policy=FAST
        )
        async with (
            SqliteEventStore(db) as store,
            Engine(
                config, store=store, source=repo, ports=FakeProvider(), on_event=on_event
            ) as engine,
            anyio.create_task_group() as tg,
        ):
            print(f"engine with {count:,} functions, in-memory AWS, SQLite log", flush=True)
            tg.start_soon(engine.run)
            await finished.wait("functions created", args.timeout)
            await anyio.sleep(1)  # the projections catch up; nothing else is running
            gc.collect()
            idle, idle_events = _status("VmRSS"), await store.last_position()
            _reset_peak()
            finished.expect(count)
            _write_all(repo, count, "green", BAKING)
            repo.commit(f"{count} canaries")
            await baking.wait("deployments in flight (traffic shifted, baking)", args.timeout)
            await anyio.sleep(2)  # alarms polled, views saved, while all of them bake
            peak, now = _status("VmHWM"), _status("VmRSS")
            assert finished.seen == 0, "a deployment finished: the bake must outlast the bench"
            events = await store.last_position()
            engine.stop()
            tg.cancel_scope.cancel()
    mib = 1024 * 1024
    print(f"idle, {idle_events:,} events in the log:   {idle / mib:8.1f} MiB resident")
    print(
        f"{count:,} in flight, {events:,} events: {peak / mib:8.1f} MiB peak ({now / mib:.1f} now)"
    )
    print(
        f"  in flight / idle: {peak / idle:.2f}x; "
        f"{(peak - idle) / count / 1024:.0f} KiB more per deployment in flight"
    )


if __name__ == "__main__":
    anyio.run(main)
