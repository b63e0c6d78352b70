"""Measure failover between engines sharing one PostgreSQL log (run through
./scripts/bench-failover).

Two engines in shared mode run as child processes on a throwaway PostgreSQL server (or
``--postgres URL``) and the embedded AWS. Each round commits a LINEAR deployment of one
function, waits for its first traffic shift, SIGKILLs the engine that owns the function's shard
and measures the time from the kill to the first event the other engine appends to that
function's stream (the resumed saga's first step), then lets the deployment finish and starts a
fresh engine in place of the killed one. Prints each round and the median and worst figure.
"""

from __future__ import annotations

import argparse
import logging
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.events.function import DeploymentFinished, TrafficShifted  # noqa: E402
from engine.local import LocalAwsThread  # noqa: E402
from tests.repo.gitrepo import GitRepo  # noqa: E402
from tests.runtime.support import write_function  # noqa: E402
from tests.support.account import DemoAccount  # noqa: E402
from tests.support.postgres import TempPostgres  # noqa: E402
from tests.support.shared import Engines, by_engine  # noqa: E402

NAME = "failover"
PREFIX = f"apps/{NAME}/{NAME}"
LINEAR = {"type": "LINEAR", "percent": 50, "waitInterval": 2}


async def _stream(engines: Engines) -> list[Any]:
    return [r for r in await engines.events() if r.stream.endswith(f":{NAME}")]


async def _round(
    engines: Engines, repo: GitRepo, outputs: dict[str, Any], n: int, spare: str
) -> tuple[float, str]:
    """One kill; the seconds from it to the new owner's first event, and the killed name."""
    write_function(
        repo,
        outputs,
        name=NAME,
        prefix=PREFIX,
        code="green" if n % 2 else "blue",
        memory=128 + n,
        traffic=LINEAR,
    )
    repo.commit(f"round {n}")
    done_before = sum(isinstance(r.event, DeploymentFinished) for r in await _stream(engines))

    async def shifted() -> Any:
        records = await _stream(engines)
        finished = sum(isinstance(r.event, DeploymentFinished) for r in records)
        moved = [r for r in records if isinstance(r.event, TrafficShifted)]
        return moved[-1] if finished == done_before and len(moved) > n else None

    shift = await engines.wait_for(shifted, within=120, step=0.02)
    owner = by_engine(shift)
    engines.signal(owner, signal.SIGKILL)
    killed_at = time.monotonic()
    engines.wait(owner)

    async def first_by_other() -> Any:
        later = [r for r in await _stream(engines) if r.position > shift.position]
        return next((r for r in later if by_engine(r) != owner), None)

    await engines.wait_for(first_by_other, within=120, step=0.02)
    seconds = time.monotonic() - killed_at

    async def finished() -> bool:
        records = await _stream(engines)
        return sum(isinstance(r.event, DeploymentFinished) for r in records) > done_before

    await engines.wait_for(finished, within=120)
    engines.start(spare)  # a fresh engine in place of the killed one

    async def standby() -> bool:
        return spare in await engines.live()

    await engines.wait_for(standby, within=60)
    return seconds, owner


async def _main(args: argparse.Namespace) -> None:
    # Each look at the log opens and closes a store; psycopg warns of the listener it cancels.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="glam-failover-") as tmp, LocalAwsThread() as aws:
        folder = Path(tmp)
        server = None if args.postgres else TempPostgres()
        if server is not None:
            server.start()
        try:
            url = args.postgres or server.create_database()  # type: ignore[union-attr]
            outputs = await DemoAccount().ensure(aws)
            repo = GitRepo(folder / "repo")
            engines = Engines(url, repo.path, aws.endpoint_url, aws.region, folder, ttl=args.ttl)
            write_function(repo, outputs, name=NAME, prefix=PREFIX)
            repo.commit("first")
            names = iter(f"e{i}" for i in range(100))
            engines.start(next(names))
            engines.start(next(names))

            async def deployed() -> bool:
                return any(isinstance(r.event, DeploymentFinished) for r in await _stream(engines))

            await engines.wait_for(deployed, within=120)

            async def both_live() -> bool:
                return len(await engines.live()) == 2

            await engines.wait_for(both_live, within=60)
            figures = []
            try:
                for n in range(1, args.kills + 1):
                    seconds, killed = await _round(engines, repo, outputs, n, next(names))
                    figures.append(seconds)
                    print(
                        f"kill {n}: {killed} SIGKILLed, first step by the new owner after "
                        f"{seconds:.2f} s",
                        flush=True,
                    )
            finally:
                engines.stop_all()
            print(
                f"failover over {len(figures)} kills, lease {args.ttl:g} s: median "
                f"{statistics.median(figures):.2f} s, min {min(figures):.2f} s, "
                f"max {max(figures):.2f} s"
            )
        finally:
            if server is not None:
                server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10, help="rounds (default 10)")
    parser.add_argument("--ttl", type=float, default=15.0, help="lease time, s (default 15)")
    parser.add_argument("--postgres", metavar="URL", help="an empty database to use")
    anyio.run(_main, parser.parse_args())


if __name__ == "__main__":
    main()
