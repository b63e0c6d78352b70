"""The crash matrix for the progressive steps: the engine SIGKILLed during a traffic hook's
invoke (before it, and after it with the answer not yet recorded), while an operator's hold
is in effect, and while a traffic gate waits for invocations; then restarted on the same log,
it converges as the fixed matrix (tests/chaos/test_crash.py) checks: the alias on the right
version with empty routing, one version published per deployment, no referenced version
deleted, ``glam replay --verify`` clean, and the progressive facts recorded exactly once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from engine.events import RecordedEvent
from engine.events.function import (
    DeploymentHeld,
    DeploymentResumed,
    HookAnswered,
    ReleaseStepReached,
    StepStarted,
    TrafficGateChecked,
    TrafficShifted,
)
from engine.local import LocalAwsThread
from engine.store.sqlite import SqliteEventStore
from engine.testing import AutojumpClock
from tests.chaos.support import (
    Case,
    effective_publishes,
    read_aws,
    referenced_deletes,
    replay_verify,
    version_of,
)
from tests.support.hooks import SUCCEEDS, create_hook

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

LONG_CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 600}


def _glam(*args: str) -> None:
    from engine.cli.main import app

    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.stdout, result.stderr)


async def _operator(case: Case, command: str, reason: str) -> None:
    argv = (command, case.name, "--reason", reason, "--actor", "chaos", "--db", str(case.db))
    await anyio.to_thread.run_sync(lambda: _glam(*argv))


def _case(
    local_aws: LocalAwsThread, outputs: dict[str, Any], root: Path, clock: AutojumpClock, name: str
) -> Case:
    return Case(name, root / name, outputs, local_aws.endpoint_url, local_aws.region, clock)


async def _deployed(case: Case, **options: Any) -> None:
    case.write(**options)
    case.repo.commit(f"add {case.name}")
    report = await case.run_in_process()
    assert report.exit_code == 0, report


async def _converged(local_aws: LocalAwsThread, case: Case, deployment: int) -> list[str]:
    found = []
    deployments = await case.deployments()
    view = await read_aws(local_aws, case.name)
    target = await version_of(local_aws, case, deployments[deployment])
    if view.alias != (target, {}):
        found.append(f"alias is {view.alias}, expected ({target!r}, {{}})")
    if any(n > 1 for n in view.by_code.values()):
        found.append(f"versions published twice: {view.by_code}")
    publishes = effective_publishes(local_aws, case.name)
    if len(publishes) != len(deployments):
        found.append(f"{len(publishes)} versions published, one per deployment wanted")
    found += [f"referenced delete: {d}" for d in referenced_deletes(local_aws, case.name)]
    code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
    if code != 0:
        found.append(f"replay --verify exit {code}: {output}")
    return found


def _of(records: list[RecordedEvent], kind: type) -> list[Any]:
    return [r.event for r in records if isinstance(r.event, kind)]


@pytest.mark.parametrize(
    ("failpoint", "step"),
    [
        pytest.param("invoke:before_call", "hook_before", id="before-hook-not-invoked"),
        pytest.param("invoke:after_call", "hook_before", id="before-hook-answer-lost"),
        pytest.param("invoke:before_call@2", "hook_after", id="after-hook-not-invoked"),
        pytest.param("invoke:after_call@2", "hook_after", id="after-hook-answer-lost"),
    ],
)
@pytest.mark.timeout(300)
async def test_killed_during_a_hook_then_restarted_converges(
    local_aws: LocalAwsThread,
    demo_account: dict[str, Any],
    autojump: AutojumpClock,
    tmp_path: Path,
    failpoint: str,
    step: str,
) -> None:
    """A hook whose answer was lost is invoked again (the hook contract allows it) and its
    answer recorded once; no weight moves before the before hook's answer is recorded."""
    name = f"hk{failpoint.split(':')[1][:1]}{failpoint[-1] if '@' in failpoint else '1'}"
    case = _case(local_aws, demo_account, tmp_path, autojump, name)
    hooks = {"beforeAllowTraffic": f"{name}-smoke", "afterAllowTraffic": f"{name}-verify"}
    for hook in hooks.values():
        await create_hook(local_aws, demo_account, hook, SUCCEEDS)
    await _deployed(case, depdef={"hooks": hooks})
    case.write(code="green", depdef={"hooks": hooks})
    case.repo.commit("green")
    code, output = await case.run_subprocess(failpoint)
    assert code == -9, output
    assert await case.dangling_step() == step
    report = await case.run_in_process()
    assert report.exit_code == 0, report
    assert await _converged(local_aws, case, 1) == []
    records = await case.events()
    answered = _of(records, HookAnswered)
    assert [(a.hook, a.status) for a in answered] == [
        ("beforeAllowTraffic", "succeeded"),
        ("afterAllowTraffic", "succeeded"),
    ]
    kinds = [type(r.event) for r in records]
    first_shift = next(
        i
        for i, r in enumerate(records)
        if isinstance(r.event, StepStarted) and str(r.event.step) == "shift"
    )
    assert kinds.index(HookAnswered) < first_shift
    invokes = [
        e
        for e in local_aws.journal.calls("Invoke")
        if e.function
        == hooks["beforeAllowTraffic" if step == "hook_before" else "afterAllowTraffic"]
        and e.status == 200
    ]
    assert len(invokes) == (2 if "after_call" in failpoint else 1)


@pytest.mark.timeout(300)
async def test_killed_while_held_then_resumed_converges_holding_once(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], autojump: AutojumpClock, tmp_path: Path
) -> None:
    """Held in the canary's bake, then SIGKILLed: the restarted engine finds the hold in the
    log (it is not held again), and ``glam resume`` lets it finish the canary."""
    case = _case(local_aws, demo_account, tmp_path, autojump, "held")
    await _deployed(case, traffic=LONG_CANARY)
    case.write(code="green", traffic=LONG_CANARY)
    case.repo.commit("green")

    async def hold_once_shifted() -> None:
        with anyio.fail_after(60):
            # Another process writes the log: polled, as nothing here can be woken by it.
            while not (case.db.exists() and _of(await case.events(), TrafficShifted)):  # noqa: ASYNC110
                await anyio.sleep(0.1)
        await _operator(case, "hold", "watching p99")

    held: Callable[[list[RecordedEvent]], bool] = lambda rs: bool(_of(rs, DeploymentHeld))  # noqa: E731
    then: Callable[[], Awaitable[None]] = hold_once_shifted
    code, output = await case.run_subprocess_until(held, then)
    assert code == -9, output
    await _operator(case, "resume", "p99 fine")
    report = await case.run_in_process()
    assert report.exit_code == 0, report
    assert await _converged(local_aws, case, 1) == []
    records = await case.events()
    assert len(_of(records, DeploymentHeld)) == 1
    assert len(_of(records, DeploymentResumed)) == 1
    assert [e.weight for e in _of(records, TrafficShifted)][-2:] == [0.5, 1.0]


@pytest.mark.timeout(300)
async def test_killed_while_a_gate_waits_then_restarted_times_out_at_the_same_deadline(
    local_aws: LocalAwsThread, demo_account: dict[str, Any], autojump: AutojumpClock, tmp_path: Path
) -> None:
    """SIGKILLed while the canary's gate waits for traffic that never comes: the restarted
    engine reads on from the recorded window, times out at the recorded deadline and rolls
    back (exit 1), with version 2 deleted and nothing published twice."""
    case = _case(local_aws, demo_account, tmp_path, autojump, "gated")
    gate = {"trafficGate": {"minInvocations": 5, "maxWait": 300, "checkInterval": 60}}
    await _deployed(case, depdef=gate)
    case.write(code="green", depdef=gate)
    case.repo.commit("green")
    code, output = await case.run_subprocess_until(lambda rs: bool(_of(rs, TrafficGateChecked)))
    assert code == -9, output
    report = await case.run_in_process()
    assert report.exit_code == 1, report  # rolled back
    assert await _converged(local_aws, case, 0) == []
    checks = _of(await case.events(), TrafficGateChecked)
    assert checks[0].verdict == "waiting"
    assert checks[-1].verdict == "timed_out"
    assert {(c.since, c.deadline) for c in checks} == {(checks[0].since, checks[0].deadline)}
    second = (await case.deployments())[1]
    assert await version_of(local_aws, case, second) is None


RELEASE = ("rla", "rlb", "rlc")


@pytest.mark.parametrize("stage", ["shift", "promote", "finish"])
@pytest.mark.timeout(300)
async def test_killed_during_a_release_step_then_restarted_converges_in_step(
    local_aws: LocalAwsThread,
    demo_account: dict[str, Any],
    autojump: AutojumpClock,
    tmp_path: Path,
    stage: str,
) -> None:
    """Three functions of one release, the engine SIGKILLed once a member has reached the
    release's ``stage`` barrier: the restarted engine finds the barriers reached in the log,
    waits there again (nothing reached twice, no step started before every member reached
    it), and all three finish on version 2, each published once."""
    case = _case(local_aws, demo_account, tmp_path, autojump, RELEASE[0])
    for name in RELEASE:
        case.write(name=name, batch=None)
    case.repo.commit("three functions")
    assert (await case.run_in_process()).exit_code == 0
    for name in RELEASE:
        case.write(name=name, code="green", batch=None, depdef={"release": "trio"})
    case.repo.commit("trio release")

    def reached(records: list[RecordedEvent]) -> bool:
        return any(
            isinstance(r.event, ReleaseStepReached) and r.event.stage == stage for r in records
        )

    code, output = await case.run_subprocess_until(reached)
    assert code == -9, output
    report = await case.run_in_process()
    assert report.exit_code == 0, report
    async with SqliteEventStore(case.db, readonly=True) as store:
        records = await store.read_all()
    reached_at: dict[tuple[str, str, int], int] = {}
    for r in records:
        if isinstance(r.event, ReleaseStepReached):
            point = (r.stream.split(":")[-1], r.event.stage, r.event.index)
            assert point not in reached_at, f"{point} reached twice"
            reached_at[point] = r.position
    for name in RELEASE:
        view = await read_aws(local_aws, name)
        deployments = await case.deployments(name)
        assert view.alias == (await version_of(local_aws, case, deployments[1], name), {})
        assert view.alias[0] == "2"
        assert len(effective_publishes(local_aws, name)) == 2
        assert referenced_deletes(local_aws, name) == []
    release_ids = {d for n in RELEASE for d in (await case.deployments(n))[1:]}
    for r in records:
        event = r.event
        if not isinstance(event, StepStarted) or event.deployment_id not in release_ids:
            continue
        if str(event.step) in ("shift", "promote"):
            barrier = ("shift", 0) if str(event.step) == "shift" else ("promote", 0)
            assert all(reached_at[(n, *barrier)] < r.position for n in RELEASE), r
    code, output = await anyio.to_thread.run_sync(replay_verify, case.db)
    assert code == 0, output
