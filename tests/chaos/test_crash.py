"""The engine SIGKILLed at every named saga step, then restarted: it converges.

Each case is one function in a repository and database of its own. The function is brought to
where the case starts (in this process, quickly), the next change is committed, and
``glam run --once`` runs as a child process with ``GLAM_FAILPOINTS`` armed on one mutating
port method, before or after its call. The child must die by SIGKILL at the saga step the case
names; a second child without failpoints must then finish the deployment. Every case checks:

- it converged: the alias on the desired version (or, after a rollback, the stable one) with
  empty routing, the SQS mapping as desired, or the function gone after a delete;
- no duplicate version: one version per deployment carries its marker, and the journal's
  PublishVersion calls that took effect are one per deployment;
- no delete of a version an alias referenced was even attempted;
- ``glam replay --verify`` exits 0.

Cases of one scenario run side by side (one embedded AWS and account for all of them), a few at
a time, so the whole matrix costs little more than its slowest cases.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.local import LocalAwsThread
from engine.local.account import build_account, set_alarm_state
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

# Child processes at a time: enough to overlap their start-up and waits on two cores, few
# enough that the cases together stay under the 15 requests/second control-plane quota.
PARALLEL = 5


@dataclass(frozen=True)
class Point:
    """A failpoint and the saga step it must interrupt."""

    failpoint: str
    step: str

    @property
    def id(self) -> str:
        return self.failpoint.replace(":", "-").replace("@", "-")


def both(operation: str, step: str, nth: int = 1) -> list[Point]:
    """The point before and the point after one call."""
    suffix = f"@{nth}" if nth > 1 else ""
    return [
        Point(f"{operation}:before_call{suffix}", step),
        Point(f"{operation}:after_call{suffix}", step),
    ]


CREATE = [
    *both("create_function", "create_function"),
    *both("publish_version", "publish"),
    *both("create_alias", "create_alias"),
    *both("reconcile", "sources"),
]
# CANARY 50%: update_alias is the 50% shift (1st), the 100% shift (2nd), the promote (3rd).
UPDATE = [
    *both("update_function_configuration", "update_config"),
    # Between UpdateFunctionCode and PublishVersion: after the code call, before the publish.
    *both("update_function_code", "update_code"),
    *both("publish_version", "publish"),
    *both("reconcile", "sources"),
    *both("update_alias", "shift"),
    *both("update_alias", "promote", nth=3),
    *both("delete_version", "delete_old"),
]
# The alarm fires at the first bake: update_alias is the 50% shift, then the rollback.
ROLLBACK = [
    *both("update_alias", "rollback_alias", nth=2),
    *both("delete_version", "rollback_delete_new"),
]
DELETE = [
    *both("detach_all", "detach_sources"),
    *both("delete_function", "delete_function"),
]


@dataclass
class Env:
    aws: LocalAwsThread
    outputs: dict[str, Any]
    root: Path

    def case(self, scenario: str, index: int) -> Case:
        name = f"{scenario}{index:02d}"
        return Case(name, self.root / name, self.outputs, self.aws.endpoint_url, self.aws.region)


@pytest.fixture
async def env(local_aws: LocalAwsThread, tmp_path: Path) -> Env:
    outputs = await build_account(local_aws.endpoint_url, region=local_aws.region)
    local_aws.journal.clear()  # only what the engines do
    return Env(local_aws, outputs, tmp_path)


Prepare = Callable[[Case], Awaitable[None]]
Check = Callable[[Case], Awaitable[list[str]]]


async def run_matrix(
    env: Env,
    scenario: str,
    points: list[Point],
    prepare: Prepare,
    check: Check,
    *,
    restart_code: int,
) -> None:
    """Run every point of one scenario side by side; fail naming every case that broke."""
    problems: dict[str, list[str]] = {}
    cases: dict[str, Case] = {}
    limiter = anyio.CapacityLimiter(PARALLEL)

    async def one(index: int, point: Point) -> None:
        case = env.case(scenario, index)
        cases[point.id] = case
        found: list[str] = []
        async with limiter:
            await prepare(case)
            code, output = await case.run_subprocess(point.failpoint)
            if code != -9:
                found.append(f"expected SIGKILL at {point.failpoint}, exit {code}:\n{output}")
            else:
                step = await case.dangling_step()
                if step != point.step:
                    found.append(f"killed with intent {step!r} dangling, expected {point.step!r}")
                code, output = await case.run_subprocess()
                if code != restart_code:
                    found.append(f"restart exited {code}, expected {restart_code}:\n{output}")
                found += await check(case)
        found += [
            f"referenced version delete attempted: {d}"
            for d in referenced_deletes(env.aws, case.name)
        ]
        if found:
            problems[point.id] = found

    async with anyio.create_task_group() as tg:
        for index, point in enumerate(points):
            tg.start_soon(one, index, point)
    # After the engines: `glam replay --verify` runs its own event loop, one at a time.
    for point_id, case in cases.items():
        code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
        if code != 0:
            problems.setdefault(point_id, []).append(f"replay --verify exited {code}: {output}")
    report = "\n".join(f"[{pid}] {p}" for pid, found in sorted(problems.items()) for p in found)
    assert not problems, f"{len(problems)} of {len(points)} cases broke:\n{report}"


async def converged_on(case: Case, env: Env, *, version_of_deployment: int) -> list[str]:
    """Problems with a function that must end on the version of the ``version_of_deployment``
    -th deployment, routing empty, with one SQS mapping of batch size 10 or 5."""
    found = []
    deployments = await case.deployments()
    view = await read_aws(env.aws, case.name)
    target = await version_of(env.aws, case.name, deployments[version_of_deployment])
    if view.alias != (target, {}):
        found.append(f"alias is {view.alias}, expected ({target!r}, {{}})")
    duplicated = {marker: n for marker, n in view.markers.items() if n > 1}
    if duplicated:
        found.append(f"versions published twice: {duplicated}")
    publishes = effective_publishes(env.aws, case.name)
    if len(publishes) != len(deployments):
        found.append(f"{len(publishes)} versions published {publishes}, one per deployment wanted")
    if len(view.mappings) != 1:
        found.append(f"{len(view.mappings)} SQS mappings on the alias, expected 1")
    return found


async def test_killed_on_the_create_path(env: Env) -> None:
    """A first deployment killed at any step is finished by the next run, exactly once."""

    async def prepare(case: Case) -> None:
        case.write()
        case.repo.commit(f"add {case.name}")

    async def check(case: Case) -> list[str]:
        found = await converged_on(case, env, version_of_deployment=0)
        creates = env.aws.journal.calls("CreateFunction", function=case.name)
        applied = [e for e in creates if 200 <= e.status < 300]
        if len(applied) != 1:
            found.append(f"CreateFunction took effect {len(applied)} times")
        return found

    await run_matrix(env, "create", CREATE, prepare, check, restart_code=0)


async def test_killed_on_the_update_path(env: Env) -> None:
    """A canary update killed at any step (configuration, code, between UpdateFunctionCode and
    PublishVersion, publish, sources, shift, promote, old-version delete) converges on the new
    version, the old one deleted."""

    async def prepare(case: Case) -> None:
        case.write()
        case.repo.commit(f"add {case.name}")
        report = await case.run_in_process()
        assert report.exit_code == 0, report
        case.write(code="green", memory=256, batch=5)
        case.repo.commit(f"{case.name}: green, more memory, smaller batches")

    async def check(case: Case) -> list[str]:
        found = await converged_on(case, env, version_of_deployment=1)
        first = (await case.deployments())[0]
        if await version_of(env.aws, case.name, first) is not None:
            found.append("the old version was not deleted")
        view = await read_aws(env.aws, case.name)
        if [m.get("BatchSize") for m in view.mappings] != [5]:
            found.append(f"SQS mapping not updated: {view.mappings}")
        return found

    await run_matrix(env, "update", UPDATE, prepare, check, restart_code=0)


async def test_killed_during_a_rollback(env: Env) -> None:
    """A rollback (an alarm in ALARM during the canary) killed while moving the alias back or
    deleting the new version still ends on the stable version, the new one deleted."""
    await set_alarm_state(env.aws.endpoint_url, ALARM, "ALARM", region=env.aws.region)

    async def prepare(case: Case) -> None:
        case.write(alarms=(ALARM,))  # a first deployment does not watch alarms
        case.repo.commit(f"add {case.name}")
        report = await case.run_in_process()
        assert report.exit_code == 0, report
        case.write(code="green", alarms=(ALARM,))
        case.repo.commit(f"{case.name}: green, which fires the alarm")

    async def check(case: Case) -> list[str]:
        found = await converged_on(case, env, version_of_deployment=0)
        second = (await case.deployments())[1]
        outcome = (await case.finished()).get(second)
        if outcome is None or outcome.outcome != "rolled_back":
            found.append(f"the update finished {outcome}, expected rolled_back")
        if await version_of(env.aws, case.name, second) is not None:
            found.append("the new version was not deleted")
        return found

    await run_matrix(env, "rollback", ROLLBACK, prepare, check, restart_code=1)


async def test_killed_while_deleting(env: Env) -> None:
    """Deleting a function killed while detaching its source or deleting it still ends with
    the function and its mapping gone."""

    async def prepare(case: Case) -> None:
        case.write()
        case.repo.commit(f"add {case.name}")
        report = await case.run_in_process()
        assert report.exit_code == 0, report
        case.remove()
        case.repo.commit(f"remove {case.name}")

    async def check(case: Case) -> list[str]:
        view = await read_aws(env.aws, case.name)
        found = []
        if view.exists:
            found.append("the function still exists")
        if view.mappings:
            found.append(f"mappings left behind: {view.mappings}")
        return found

    await run_matrix(env, "delete", DELETE, prepare, check, restart_code=0)
