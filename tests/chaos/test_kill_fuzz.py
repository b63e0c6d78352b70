"""A seeded random-kill fuzz of ``glam run``, beside the fixed crash matrix (``test_crash``).

Each seed is one function in a repository and database of its own. It is deployed, then
changed a few times with a strategy drawn at random (CANARY or LINEAR at a random percent, or
ALL_AT_ONCE), and for each change ``glam run --once`` is started as a child (short polls, as
the crash matrix's) and SIGKILLed at random moments (while it opens its log, during a shift,
a bake, a publish: wherever the draw falls), a few times in a row, before one run is let
finish. After every kill ``glam replay --verify`` must pass; at the end, read from the
embedded AWS and its journal (never from glam's own log):

- the alias is on the version the last deployment published, with no routing left;
- every deployment published exactly one version, and only the last one remains;
- no delete of a version an alias or its routing referenced was even attempted;
- no UpdateAlias ever asked for ``$LATEST`` in routing, two extra versions, or a weight
  outside [0, 1] (checked on what was asked, not on what the emulator let through).

The draws come from ``random.Random(seed)``, so a failing seed is replayed by running it
again (the kill times then fall near, not exactly at, the same moments: the child's speed
varies). ``GLAM_FUZZ_SEEDS`` sets how many seeds run (default 3, a minute or so);
``GLAM_FUZZ_FIRST_SEED`` where they start.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.local import LocalAwsThread
from tests.chaos.support import (
    Case,
    effective_publishes,
    read_aws,
    referenced_deletes,
    replay_verify,
    version_of,
)
from tests.support.engine_main import start_child

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

SEEDS = int(os.environ.get("GLAM_FUZZ_SEEDS", "3"))
FIRST_SEED = int(os.environ.get("GLAM_FUZZ_FIRST_SEED", "1"))
CHANGES = 2  # deployments after the first, per seed
PARALLEL = 3


def strategy(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["CANARY", "LINEAR", "ALL_AT_ONCE"])
    if kind == "ALL_AT_ONCE":
        return {"type": kind, "waitInterval": 1}
    return {"type": kind, "percent": rng.choice([20, 34, 50]), "waitInterval": 1}


@dataclass
class Fuzz:
    seed: int
    case: Case
    rng: random.Random
    verifying: anyio.Lock  # `replay --verify` runs the CLI in-process: one at a time
    story: list[str] = field(default_factory=list)  # what happened, to replay a failure
    problems: list[str] = field(default_factory=list)


async def run_and_kill(case: Case, after: float | None) -> int | None:
    """``glam run --once`` as a child, SIGKILLed ``after`` seconds in (None: let it finish);
    its exit code if it ended by itself, None if it was killed.

    The child is forked from the fork server that has glam imported (as the crash matrix's
    are): the seconds drawn fall in the engine's work, not in Python importing it, which
    every kill paid a second or two of CPU for."""
    child = start_child(case.child_argv(), case.child_env(), case.root / "child.log")
    try:
        with anyio.move_on_after(90 if after is None else after):
            # Abandoned when the time is up: the kill below ends the join it waits in.
            await anyio.to_thread.run_sync(child.join, abandon_on_cancel=True)
            return child.exitcode
        child.kill()
        await anyio.to_thread.run_sync(child.join)
        return None
    finally:
        if child.is_alive():
            child.kill()
            child.join()


async def fuzz(aws: LocalAwsThread, fuzz: Fuzz) -> None:
    case, rng = fuzz.case, fuzz.rng
    case.write(code="blue", batch=None, traffic={"type": "ALL_AT_ONCE", "waitInterval": 1})
    case.repo.commit("first")
    report = await case.run_in_process()
    if report.exit_code != 0:
        fuzz.problems.append(f"the first deployment failed: {report}")
        return
    for change in range(1, CHANGES + 1):
        chosen = strategy(rng)
        memory = rng.choice([128, 192, 256, 320])
        case.write(code=rng.choice(["blue", "green"]), memory=memory, batch=None, traffic=chosen)
        case.repo.commit(f"change {change}")
        fuzz.story.append(f"change {change}: {chosen}, memory {memory}")
        for _ in range(rng.randint(1, 3)):
            after = round(rng.uniform(0.3, 8.0), 2)
            code = await run_and_kill(case, after)
            fuzz.story.append(f"  kill -9 at {after}s" if code is None else f"  ended {code}")
            async with fuzz.verifying:
                verified, output = await anyio.to_thread.run_sync(replay_verify, case.db)
            if verified != 0:
                fuzz.problems.append(f"replay --verify after the kill at {after}s: {output}")
                return
        code = await run_and_kill(case, None)
        fuzz.story.append(f"  restarted, ended {code}")
        if code != 0:
            fuzz.problems.append(f"change {change}: the run after the kills exited {code}")
            return
    fuzz.problems += await converged(aws, case)


async def converged(aws: LocalAwsThread, case: Case) -> list[str]:
    found = []
    deployments = await case.deployments()
    view = await read_aws(aws, case.name)
    last = await version_of(aws, case, deployments[-1])
    if view.alias != (last, {}):
        found.append(f"alias is {view.alias}, expected ({last!r}, {{}})")
    if last is None or view.versions != (last,):
        found.append(f"versions left {view.versions}, only the last deployment's {last} wanted")
    publishes = effective_publishes(aws, case.name)
    if len(publishes) != len(deployments):
        found.append(f"{len(publishes)} versions published for {len(deployments)} deployments")
    deletes = referenced_deletes(aws, case.name)
    found += [f"referenced version delete attempted: {d}" for d in deletes]
    for entry in aws.journal.calls("UpdateAlias", function=case.name):
        weights = entry.routing or {}
        if "$LATEST" in weights or any(not 0 <= w <= 1 for w in weights.values()):
            found.append(f"UpdateAlias asked for routing {weights} (seq {entry.seq})")
        if len(weights) > 1:
            found.append(f"UpdateAlias asked for two extra versions {weights} (seq {entry.seq})")
    return found


@pytest.mark.timeout(600)
async def test_random_kills_during_random_strategies_converge(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], tmp_path: Path
) -> None:
    outputs = demo_account
    local_aws.journal.clear()
    verifying = anyio.Lock()
    runs = [
        Fuzz(
            seed,
            Case(
                f"fuzz{seed}",
                tmp_path / f"seed{seed}",
                outputs,
                local_aws.endpoint_url,
                local_aws.region,
            ),
            random.Random(seed),
            verifying,
        )
        for seed in range(FIRST_SEED, FIRST_SEED + SEEDS)
    ]
    limiter = anyio.CapacityLimiter(PARALLEL)

    async def one(run: Fuzz) -> None:
        async with limiter:
            await fuzz(local_aws, run)

    async with anyio.create_task_group() as tg:
        for run in runs:
            tg.start_soon(one, run)
    broken = [run for run in runs if run.problems]
    report = "\n".join(
        f"seed {run.seed} (GLAM_FUZZ_FIRST_SEED={run.seed} GLAM_FUZZ_SEEDS=1):\n"
        + "\n".join(run.story)
        + "\n"
        + "\n".join(f"  PROBLEM {p}" for p in run.problems)
        for run in broken
    )
    assert not broken, f"{len(broken)} of {len(runs)} seeds broke:\n{report}"
    kills = sum("kill -9" in line for run in runs for line in run.story)
    assert kills >= SEEDS  # the draws did interrupt engines, not only watch them finish
