"""Engines in shared mode as child processes on one PostgreSQL log (``shared_engine``), with
what the tests and the failover benchmark ask of them: start, kill, pause, the lease table and
the log."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from engine.events import RecordedEvent
from engine.store import pg_leases
from engine.store.postgres import PostgresEventStore

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
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
        argv = [
            sys.executable,
            "-m",
            "tests.support.shared_engine",
            *("--repo", str(self.repo), "--db", self.db, "--engine-id", name),
            *("--endpoint-url", self.endpoint_url, "--region", self.region),
            *("--lease-ttl", str(self.ttl)),
        ]
        out = (self.folder / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()

    def signal(self, name: str, sig: signal.Signals) -> None:
        self.procs[name].send_signal(sig)

    def output(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

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
