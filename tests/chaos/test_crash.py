"""The engine SIGKILLed at every named saga step, then restarted: it converges.

Each case is one function in a repository and database of its own. The function is brought to
where the case starts (in this process, quickly), the next change is committed, and
``glam run --once`` runs as a child process with ``GLAM_FAILPOINTS`` armed on one mutating
port method, before or after its call (started through ``tests.support.engine_main``, which
arms them: glam never reads the variable). The child must die by SIGKILL at the saga step the case
names; an engine started afterwards on the same database, without failpoints, must finish the
deployment and exit as ``--once`` would (0, or 1 after a rollback). Every case checks:

- it converged: the alias on the desired version (or, after a rollback, the stable one) with
  empty routing, the SQS mapping as desired, or the function gone after a delete;
- no duplicate version: no two versions hold the same code, and the journal's
  PublishVersion calls that took effect are one per deployment;
- no delete of a version an alias referenced was even attempted;
- ``glam replay --verify`` exits 0.

All the cases run side by side in one test (one embedded AWS and account for all of them), a
few at a time: most of a case's time is a child's start-up and the saga's waits, which overlap
well, so the matrix costs little more than its slowest cases.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from engine.local.clients import aws_client
from engine.testing import AutojumpClock
from tests.chaos.support import (
    DEADLINE,
    Case,
    effective_publishes,
    read_aws,
    referenced_deletes,
    replay_verify,
    version_of,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

# Cases at a time: enough to overlap child start-ups and saga waits on two cores (more only
# adds CPU contention). Eight engines on one account do exceed the 15 requests/second quota
# together: the proxy answers 429 and they ride it out, which is fair chaos; the quota as one
# engine must respect it is checked in test_scale.
PARALLEL = 8


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
# CANARY 50%: update_alias is the 50% shift (1st), then the promote (2nd: the 100 % step).
UPDATE = [
    *both("tag_function", "tag"),
    *both("update_function_configuration", "update_config"),
    # Between UpdateFunctionCode and PublishVersion: after the code call, before the publish.
    *both("update_function_code", "update_code"),
    *both("publish_version", "publish"),
    *both("reconcile", "sources"),
    *both("update_alias", "shift"),
    *both("update_alias", "promote", nth=2),
    *both("delete_version", "delete_old"),
]
# The case's alarm fires once the 50% shift is made (the alarms are read before any weight
# moves, so it must be quiet until then): update_alias is the shift, then the rollback.
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
    clock: AutojumpClock

    def case(self, scenario: str, point: Point) -> Case:
        name = f"{scenario}-{point.id}".replace("_", "")
        return Case(
            name, self.root / name, self.outputs, self.aws.endpoint_url, self.aws.region, self.clock
        )


@pytest.fixture
def env(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], autojump: AutojumpClock, tmp_path: Path
) -> Env:
    return Env(local_aws, demo_account, tmp_path, autojump)


# -- where each scenario starts, and what it must end with -----------------------------------


async def converged_on(env: Env, case: Case, deployment: int) -> list[str]:
    """Problems with a function that must end on the version its ``deployment``-th
    deployment published, routing empty, each version published once, one SQS mapping."""
    found = []
    deployments = await case.deployments()
    view = await read_aws(env.aws, case.name)
    target = await version_of(env.aws, case, deployments[deployment])
    if view.alias != (target, {}):
        found.append(f"alias is {view.alias}, expected ({target!r}, {{}})")
    duplicated = {marker: n for marker, n in view.by_code.items() if n > 1}
    if duplicated:
        found.append(f"versions published twice: {duplicated}")
    publishes = effective_publishes(env.aws, case.name)
    if len(publishes) != len(deployments):
        found.append(f"{len(publishes)} versions published {publishes}, one per deployment wanted")
    if len(view.mappings) != 1:
        found.append(f"{len(view.mappings)} SQS mappings on the alias, expected 1")
    return found


async def deployed(case: Case, **options: Any) -> None:
    """The first version deployed, in this process."""
    case.write(**options)
    case.repo.commit(f"add {case.name}")
    report = await case.run_in_process()
    assert report.exit_code == 0, report


async def prepare_create(env: Env, case: Case) -> None:
    case.write()
    case.repo.commit(f"add {case.name}")


async def check_create(env: Env, case: Case) -> list[str]:
    found = await converged_on(env, case, 0)
    creates = env.aws.journal.calls("CreateFunction", function=case.name)
    applied = [e for e in creates if 200 <= e.status < 300]
    if len(applied) != 1:
        found.append(f"CreateFunction took effect {len(applied)} times")
    return found


async def prepare_update(env: Env, case: Case) -> None:
    await deployed(case)
    case.write(code="green", memory=256, batch=5)
    definition = case.repo.path / f"{case.prefix()}_lambdadef.json"
    case.repo.write(
        f"{case.prefix()}_lambdadef.json",
        {**json.loads(definition.read_text()), "Tags": {"team": case.name}},
    )
    case.repo.commit(f"{case.name}: green, more memory, smaller batches, a tag")


async def check_update(env: Env, case: Case) -> list[str]:
    found = await converged_on(env, case, 1)
    first = (await case.deployments())[0]
    if await version_of(env.aws, case, first) is not None:
        found.append("the old version was not deleted")
    view = await read_aws(env.aws, case.name)
    if [m.get("BatchSize") for m in view.mappings] != [5]:
        found.append(f"SQS mapping not updated: {view.mappings}")
    async with aws_client("lambda", env.aws.moto_url, region=env.aws.region) as lam:
        tags = (await lam.get_function(FunctionName=case.name)).get("Tags") or {}
    if tags != {"team": case.name}:
        found.append(f"tags not applied: {tags}")
    return found


def case_alarm(case: Case) -> str:
    return f"{case.name}-errors"


# A long bake: the alarm is set while the canary bakes, never after it.
SLOW_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 10}


async def prepare_rollback(env: Env, case: Case) -> None:
    alarm = case_alarm(case)
    async with aws_client("cloudwatch", env.aws.endpoint_url, region=env.aws.region) as cw:
        await cw.put_metric_alarm(
            AlarmName=alarm,
            Namespace="AWS/Lambda",
            MetricName="Errors",
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=1.0,
            ComparisonOperator="GreaterThanOrEqualToThreshold",
        )
    await set_alarm_state(env.aws.endpoint_url, alarm, "OK", region=env.aws.region)
    await deployed(case, alarms=(alarm,), traffic=SLOW_CANARY)
    case.write(code="green", alarms=(alarm,), traffic=SLOW_CANARY)
    case.repo.commit(f"{case.name}: green, which fires the alarm")


async def fire_alarm_once_shifted(env: Env, case: Case) -> None:
    """Set the case's alarm to ALARM as soon as the canary's shift took effect (the journal
    is another thread's: it is polled)."""
    with anyio.fail_after(DEADLINE):
        for _ in iter(int, 1):
            calls = env.aws.journal.calls("UpdateAlias", function=case.name)
            if any(200 <= e.status < 300 and e.routing for e in calls):
                break
            await anyio.sleep(0.05)
    await set_alarm_state(env.aws.endpoint_url, case_alarm(case), "ALARM", region=env.aws.region)


async def check_rollback(env: Env, case: Case) -> list[str]:
    found = await converged_on(env, case, 0)
    second = (await case.deployments())[1]
    outcome = (await case.finished()).get(second)
    if outcome is None or outcome.outcome != "rolled_back":
        found.append(f"the update finished {outcome}, expected rolled_back")
    if await version_of(env.aws, case, second) is not None:
        found.append("the new version was not deleted")
    return found


async def prepare_delete(env: Env, case: Case) -> None:
    await deployed(case)
    case.remove()
    case.repo.commit(f"remove {case.name}")


async def check_delete(env: Env, case: Case) -> list[str]:
    view = await read_aws(env.aws, case.name)
    found = []
    if view.exists:
        found.append("the function still exists")
    if view.mappings:
        found.append(f"mappings left behind: {view.mappings}")
    return found


@dataclass(frozen=True)
class Scenario:
    points: list[Point]
    prepare: Callable[[Env, Case], Awaitable[None]]
    check: Callable[[Env, Case], Awaitable[list[str]]]
    exit_code: int  # of the restart's --once run
    during: Callable[[Env, Case], Coroutine[Any, Any, None]] | None = None  # beside the killed one


SCENARIOS = {
    "create": Scenario(CREATE, prepare_create, check_create, 0),
    "update": Scenario(UPDATE, prepare_update, check_update, 0),
    "rollback": Scenario(ROLLBACK, prepare_rollback, check_rollback, 1, fire_alarm_once_shifted),
    "delete": Scenario(DELETE, prepare_delete, check_delete, 0),
}


# -- the matrix ------------------------------------------------------------------------------


# Generous: 32 cases of 20-30 s each on two cores shared with other work; the bound only
# catches a case that hangs.
@pytest.mark.timeout(900)
async def test_killed_at_every_saga_step_then_restarted_converges(env: Env) -> None:
    """SIGKILLed before or after any mutation of a create, a canary update (including between
    UpdateFunctionCode and PublishVersion), a rollback or a delete, the engine resumes from the
    log: it converges, publishes no version twice, never tries to delete a referenced version,
    and leaves a log that ``glam replay --verify`` accepts."""
    problems: dict[str, list[str]] = {}
    cases: dict[str, Case] = {}
    limiter = anyio.CapacityLimiter(PARALLEL)

    async def one(scenario: Scenario, case: Case, point: Point) -> None:
        found: list[str] = []
        async with limiter:
            await scenario.prepare(env, case)
            async with anyio.create_task_group() as beside:
                if scenario.during is not None:
                    beside.start_soon(scenario.during, env, case)
                code, output = await case.run_subprocess(point.failpoint)
                beside.cancel_scope.cancel()
            if code != -9:
                found.append(f"expected SIGKILL at {point.failpoint}, exit {code}:\n{output}")
            else:
                step = await case.dangling_step()
                if step != point.step:
                    found.append(f"killed with intent {step!r} dangling, expected {point.step!r}")
                # The restart runs here: recovery is the same Engine code, and child start-ups
                # are what the matrix's time goes on.
                report = await case.run_in_process()
                if report.exit_code != scenario.exit_code:
                    found.append(f"restart ended {report}, exit code {scenario.exit_code} wanted")
                found += await scenario.check(env, case)
        found += [
            f"referenced version delete attempted: {d}"
            for d in referenced_deletes(env.aws, case.name)
        ]
        if found:
            problems[case.name] = found

    async with anyio.create_task_group() as tg:
        # Longest first: the update cases walk a whole canary before some of their crashes.
        for name in ("update", "rollback", "delete", "create"):
            scenario = SCENARIOS[name]
            for point in scenario.points:
                case = env.case(name, point)
                cases[case.name] = case
                tg.start_soon(one, scenario, case, point)
    # After the engines: `glam replay --verify` runs its own event loop, one at a time.
    for name, case in cases.items():
        code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
        if code != 0:
            problems.setdefault(name, []).append(f"replay --verify exited {code}: {output}")
    report = "\n".join(f"[{name}] {p}" for name, found in sorted(problems.items()) for p in found)
    assert not problems, f"{len(problems)} of {len(cases)} cases broke:\n{report}"
