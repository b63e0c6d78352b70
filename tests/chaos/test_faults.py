"""Faults on every mutating Lambda operation: throttling, 5xx and apply-then-fail, injected by
the embedded AWS's proxy while the engine (in this process) creates, updates, rolls back and
deletes functions. It must converge with the same guarantees as after a crash: the alias on the
desired version with empty routing, no version published twice, no referenced version deleted
or attempted, and a log that ``glam replay --verify`` accepts.

Two tests: a schedule that hands every operation each fault kind in turn (so each pair is
known to have happened, whatever the timing), and a seeded random mix over several functions
at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from engine.runtime.engine import RunReport
from engine.testing import AutojumpClock
from tests.chaos.support import (
    ALARM,
    Case,
    effective_publishes,
    read_aws,
    referenced_deletes,
    replay_verify,
    version_of,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

# Every Lambda mutation a saga makes (engine.runtime.failpoints.MUTATIONS, by API name).
MUTATING = (
    "CreateFunction",
    "UpdateFunctionConfiguration",
    "UpdateFunctionCode",
    "PublishVersion",
    "CreateAlias",
    "UpdateAlias",
    "DeleteFunction",
    "CreateEventSourceMapping",
    "UpdateEventSourceMapping",
    "DeleteEventSourceMapping",
)
KINDS = ("throttle", "error", "apply_then_fail")


class FaultSchedule:
    """Each operation fails once with each kind, in ``KINDS`` order: the proxy's spec holds,
    for every operation, its next kind at share 1, and the kind is struck off as soon as the
    journal shows it injected. A retry of the same call meets the next kind, so one deployment
    walks each operation through all of them."""

    def __init__(self, aws: LocalAwsThread, seed: int) -> None:
        self.aws = aws
        self.seed = seed
        self.pending = {op: list(KINDS) for op in MUTATING}
        self._seen = 0

    def spec(self) -> str:
        rules = [f"{op}:{kinds[0]}=1" for op, kinds in self.pending.items() if kinds]
        return ";".join([f"seed={self.seed}", *rules])

    async def run(self, clock: AutojumpClock) -> None:
        self.aws.set_faults(self.spec())
        while any(self.pending.values()):
            entries = self.aws.journal.entries
            changed = False
            for entry in entries[self._seen :]:
                kinds = self.pending.get(entry.operation)
                if kinds and entry.fault == kinds[0]:
                    kinds.pop(0)
                    changed = True
            self._seen = len(entries)
            if changed:
                self.aws.set_faults(self.spec())
            # Short, and on the engine's clock (which then jumps no further at a time): a
            # retry that arrives before the spec moves on meets the same kind again, which is
            # harmless but no longer one fault per kind.
            await clock.sleep(0.01)


@dataclass
class Env:
    aws: LocalAwsThread
    outputs: dict[str, Any]
    root: Path
    clock: AutojumpClock

    def case(self, name: str) -> Case:
        return Case(
            name, self.root / name, self.outputs, self.aws.endpoint_url, self.aws.region, self.clock
        )


@pytest.fixture
def env(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], autojump: AutojumpClock, tmp_path: Path
) -> Iterator[Env]:
    yield Env(local_aws, demo_account, tmp_path, autojump)
    local_aws.set_faults("")


async def expect_on(env: Env, case: Case, deployment: int, batch: int) -> None:
    """The alias on the ``deployment``-th deployment's version with empty routing, each
    version published once, one SQS mapping of ``batch``."""
    deployments = await case.deployments()
    view = await read_aws(env.aws, case.name)
    target = await version_of(env.aws, case, deployments[deployment])
    assert target is not None, f"{case.name}: no version carries deployment {deployment}"
    assert view.alias == (target, {})
    assert all(n == 1 for n in view.by_code.values()), view.by_code
    assert [m.get("BatchSize") for m in view.mappings] == [batch]


def finished(report: RunReport) -> list[str]:
    """``name:outcome`` of each deployment that finished, and why when it failed."""
    return [
        f"{stream.rsplit(':', 1)[1]}:{f.outcome}"
        + (f" ({f.reason})" if f.outcome == "failed" else "")
        for stream, f in report.finished
    ]


async def test_every_fault_kind_on_every_mutation(env: Env) -> None:
    """Throttled, failed with a 5xx, or applied and then failed, each mutation of a create,
    a rolled-back update, a canary update and a delete is retried or resolved by a read until
    the function is where the branch says: never a duplicate version or a referenced delete."""
    aws = env.aws
    schedule = FaultSchedule(aws, seed=5)
    case = env.case("faulty")
    async with anyio.create_task_group() as tg:
        tg.start_soon(schedule.run, env.clock)

        case.write(alarms=(ALARM,))
        case.repo.commit("add")
        assert finished(await case.run_in_process()) == ["faulty:succeeded"]
        await expect_on(env, case, 0, batch=10)

        await set_alarm_state(aws.endpoint_url, ALARM, "ALARM", region=aws.region)
        case.write(code="green", alarms=(ALARM,))
        case.repo.commit("green, which fires the alarm")
        assert finished(await case.run_in_process()) == ["faulty:rolled_back"]
        await expect_on(env, case, 0, batch=10)

        await set_alarm_state(aws.endpoint_url, ALARM, "OK", region=aws.region)
        case.write(code="green", memory=256, batch=5, alarms=(ALARM,))
        case.repo.commit("green again, more memory, smaller batches")
        assert finished(await case.run_in_process()) == ["faulty:succeeded"]
        await expect_on(env, case, 2, batch=5)

        case.remove()
        case.repo.commit("remove")
        assert finished(await case.run_in_process()) == ["faulty:succeeded"]
        gone = await read_aws(aws, case.name)
        assert not gone.exists
        assert gone.mappings == []
        tg.cancel_scope.cancel()

    missed = {op: kinds for op, kinds in schedule.pending.items() if kinds}
    assert not missed, f"faults never injected: {missed}"
    # Three deployments published, one version each, however often PublishVersion was tried.
    assert len(effective_publishes(aws, case.name)) == 3
    assert referenced_deletes(aws, case.name) == []
    aws.journal.check_invariants()
    code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
    assert code == 0, output


async def test_seeded_random_faults_on_many_functions(env: Env) -> None:
    """A seeded mix of throttling, 5xx and apply-then-fail on every mutation, while three
    functions are created and then updated by canary in one engine: all converge."""
    aws = env.aws
    shares = "throttle=0.15,error=0.1,apply_then_fail=0.1"
    aws.set_faults(";".join(["seed=11", *(f"{op}:{shares}" for op in MUTATING)]))
    names = ("alpha", "bravo", "charlie")
    case = env.case("many")

    def write_all(**options: Any) -> None:
        for name in names:
            case.write(name=name, **options)

    write_all()
    case.repo.commit("add three")
    assert sorted(finished(await case.run_in_process())) == [f"{n}:succeeded" for n in names]
    write_all(code="green", memory=256, batch=5)
    case.repo.commit("update three")
    assert sorted(finished(await case.run_in_process())) == [f"{n}:succeeded" for n in names]
    aws.set_faults("")

    injected = {e.fault for e in aws.journal.entries if e.fault}
    assert injected == {"throttle", "error", "apply_then_fail"}
    for name in names:
        view = await read_aws(aws, name)
        versions = [await version_of(aws, case, d, name) for d in await case.deployments(name)]
        assert versions[0] is None  # the old version deleted
        assert view.alias == (versions[1], {})
        assert all(n == 1 for n in view.by_code.values()), view.by_code
        assert [m.get("BatchSize") for m in view.mappings] == [5]
        assert len(effective_publishes(aws, name)) == 2
        assert referenced_deletes(aws, name) == []
    aws.journal.check_invariants()
    code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
    assert code == 0, output


async def test_a_mutation_that_failed_after_applying_is_read_not_repeated(env: Env) -> None:
    """A 5xx on CreateFunction that moto did apply reaches the saga after ONE call (no
    client-side retry repeats it blindly); the saga reads, adopts the function and goes on."""
    aws = env.aws
    aws.set_faults("seed=1;CreateFunction:apply_then_fail=1")
    case = env.case("once")
    case.write(batch=None)
    case.repo.commit("add")
    assert finished(await case.run_in_process()) == ["once:succeeded"]
    creates = aws.journal.calls("CreateFunction", function=case.name)
    assert [(e.status, e.forwarded_status) for e in creates] == [(500, 201)]
    assert aws.journal.calls("CreateFunction") == creates  # nothing unnamed either
