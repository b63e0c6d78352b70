"""Engines in shared mode as child processes on one PostgreSQL log (``shared_engine``), with
what the tests and the failover benchmark ask of them: start, kill, pause, the lease table and
the log. The children are forked from the fork server that has glam imported
(``tests.support.engine_main``): each is a process of its own, killed or paused as any
engine, without a second or two of CPU spent importing glam first."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import anyio

from engine.events import RecordedEvent
from engine.store import pg_leases
from engine.store.postgres import PostgresEventStore
from tests.support import shared_engine
from tests.support.engine_main import start_child

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Engines:
    """Child engines named by their engine ids, all on ``db`` and the embedded AWS."""

    db: str
    repo: Path
    endpoint_url: str
    region: str
    folder: Path
    ttl: float = 3.0
    procs: dict[str, BaseProcess] = field(default_factory=dict)

    def start(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
        argv = [
            *("--repo", str(self.repo), "--db", self.db, "--engine-id", name),
            *("--endpoint-url", self.endpoint_url, "--region", self.region),
            *("--lease-ttl", str(self.ttl)),
        ]
        output = self.folder / f"{name}.log"
        self.procs[name] = start_child(argv, env, output, entry=shared_engine.main, append=True)

    def signal(self, name: str, sig: signal.Signals) -> None:
        pid = self.procs[name].pid
        assert pid is not None
        os.kill(pid, sig)

    def wait(self, name: str, timeout: float | None = None) -> int | None:
        """Wait for the engine ``name`` to end; its exit code (None if it is still running
        after ``timeout`` seconds)."""
        self.procs[name].join(timeout)
        return self.procs[name].exitcode

    def output(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            if proc.is_alive():
                self.signal(name, signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            proc.join(timeout=20)
            if proc.is_alive():
                proc.kill()
                proc.join()

    async def leases(self) -> dict[str, pg_leases.Lease]:
        async with PostgresEventStore(self.db) as store:
            await store.transaction(pg_leases.create_tables)
            rows = await store.transaction(pg_leases.list_leases)
        return {row.shard: row for row in rows}

    async def live(self) -> list[str]:
        """The engines whose heartbeat is current."""
        async with PostgresEventStore(self.db) as store:
            await store.transaction(pg_leases.create_tables)
            return await store.transaction(pg_leases.live_engines)

    async def owners(self) -> dict[str, str | None]:
        """Each shard's live owner (None when free or expired)."""
        return {
            s: (lease.owner if lease.live else None) for s, lease in (await self.leases()).items()
        }

    async def events(self) -> list[RecordedEvent]:
        async with PostgresEventStore(self.db) as store:  # it may not be created yet
            return await store.read_all()

    async def wait_for(
        self, check: Callable[[], Any], *, within: float = 60.0, step: float = 0.2
    ) -> Any:
        """Poll the async ``check`` until it returns something true; that value."""
        with anyio.fail_after(within):
            while True:
                value = await check()
                if value:
                    return value
                await anyio.sleep(step)


def by_engine(record: RecordedEvent) -> str:
    """The engine that appended ``record`` (its event ids start with the engine id)."""
    return record.meta.event_id.split("-", 1)[0]
