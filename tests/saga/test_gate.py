"""Traffic gates (engine.saga.gate) through the saga runner on the fake AWS: a step's bake ends
only once the new version has served ``minInvocations``; short of them the gate reads again
until ``maxWait`` has passed, then rolls back or goes on as ``onTimeout`` says."""

from __future__ import annotations

from datetime import timedelta

import anyio
import pytest

from engine.events import RecordedEvent
from engine.events.desired import DesiredFunction, TrafficGate
from engine.events.function import TrafficGateChecked
from tests.saga.support import NAME, STREAM, World, desired

pytestmark = pytest.mark.anyio


def gated(code: str, gate: TrafficGate | None) -> DesiredFunction:
    want = desired(code)
    return want.model_copy(
        update={"settings": want.settings.model_copy(update={"traffic_gate": gate})}
    )


GATE = TrafficGate(min_invocations=50, max_wait=120, check_interval=60)


async def _checks(world: World, deployment_id: str) -> list[TrafficGateChecked]:
    return [e for e in await world.events("TrafficGateChecked") if e.deployment_id == deployment_id]


async def test_a_step_with_its_invocations_ends_at_the_bake_and_records_the_count() -> None:
    world = World()
    assert (await world.deploy("d1", gated("v1", GATE))).succeeded
    assert await _checks(world, "d1") == []  # a first deployment shifts nothing: no gate
    world.aws.set_invocations(NAME, "live", "2", 75)
    assert (await world.deploy("d2", gated("v2", GATE))).succeeded
    checks = await _checks(world, "d2")
    # The canary's step and the bake after the promote: each judged on the count.
    assert [(c.verdict, c.invocations, c.required) for c in checks] == [("passed", 75, 50)] * 2
    assert all(c.until - c.since == timedelta(seconds=60) for c in checks)  # the bake
    assert await world.weights("d2") == [0.2, 1.0]


async def test_no_traffic_reads_again_until_max_wait_then_rolls_back() -> None:
    world = World()
    assert (await world.deploy("d1", gated("v1", GATE))).succeeded
    run = await world.deploy("d2", gated("v2", GATE))
    (finished,) = run.finished
    assert finished.outcome == "rolled_back"
    assert "traffic gate: version 2 served 0 of the 50 invocations required" in finished.reason
    checks = await _checks(world, "d2")
    assert [c.verdict for c in checks] == ["waiting", "waiting", "timed_out"]
    assert checks[-1].action == "rollback"
    # Every read counts from the start of the bake; they end at the bake, +60 s, +120 s.
    assert {c.since for c in checks} == {checks[0].since}
    assert [(c.until - checks[0].until).total_seconds() for c in checks] == [0, 60, 120]
    assert {c.deadline for c in checks} == {checks[0].until + timedelta(seconds=120)}
    assert await world.weights("d2") == [0.2, 0.0]  # never promoted; rolled back
    alias = await world.aws.get_alias(NAME, "live")
    assert alias is not None
    assert (alias.function_version, dict(alias.routing)) == ("1", {})


async def test_no_traffic_with_on_timeout_promote_goes_on_after_max_wait() -> None:
    world = World()
    gate = GATE.model_copy(update={"on_timeout": "promote"})
    assert (await world.deploy("d1", gated("v1", gate))).succeeded
    assert (await world.deploy("d2", gated("v2", gate))).succeeded
    checks = await _checks(world, "d2")
    assert [c.verdict for c in checks] == ["waiting", "waiting", "timed_out"] * 2
    assert {c.action for c in checks if c.verdict == "timed_out"} == {"promote"}
    assert await world.weights("d2") == [0.2, 1.0]


async def test_traffic_arriving_while_the_gate_waits_passes_it_at_the_next_read() -> None:
    world = World()
    assert (await world.deploy("d1", gated("v1", GATE))).succeeded

    def arrive(record: RecordedEvent) -> None:
        if isinstance(record.event, TrafficGateChecked) and record.event.verdict == "waiting":
            world.aws.set_invocations(NAME, "live", "2", 60)

    await world.request("d2", gated("v2", GATE))
    assert (await world.run(on_event=arrive)).succeeded
    checks = await _checks(world, "d2")
    assert [c.verdict for c in checks] == ["waiting", "passed", "passed"]


async def test_a_runner_stopped_while_the_gate_waits_resumes_its_window() -> None:
    """The gate's window and deadline come from the log: a new runner reads on from them,
    publishes nothing more, and times out at the same deadline."""
    world = World()
    assert (await world.deploy("d1", gated("v1", GATE))).succeeded
    await world.request("d2", gated("v2", GATE))
    with anyio.CancelScope() as scope:

        def stop(record: RecordedEvent) -> None:
            if isinstance(record.event, TrafficGateChecked):
                scope.cancel()

        await world.run(on_event=stop)
    assert [c.verdict for c in await _checks(world, "d2")] == ["waiting"]
    run = await world.run()
    assert [f.outcome for f in run.finished] == ["rolled_back"]
    checks = await _checks(world, "d2")
    assert [c.verdict for c in checks] == ["waiting", "waiting", "timed_out"]
    assert {(c.since, c.deadline) for c in checks} == {(checks[0].since, checks[0].deadline)}
    versions = sorted(v.version for v in await world.aws.list_versions(NAME))
    assert versions == ["1"]  # version 2 deleted, and no other version made


async def test_an_operator_step_promote_ends_a_gate_that_waits() -> None:
    """``glam promote --step`` during a gate's wait moves on at once, as it does in a bake."""
    from engine.events import Metadata, NewEvent
    from engine.events.function import OperatorRequested

    world = World()
    gate = GATE.model_copy(update={"on_timeout": "promote"})
    assert (await world.deploy("d1", gated("v1", gate))).succeeded
    await world.request("d2", gated("v2", gate))
    command = OperatorRequested(
        deployment_id="d2",
        command="promote_step",
        target=STREAM,
        actor="ops",
        reason="traffic is fine",
    )
    sent = False

    def step(record: RecordedEvent) -> None:
        nonlocal sent
        if isinstance(record.event, TrafficGateChecked) and not sent:
            sent = True
            tg.start_soon(world.store.append, STREAM, [NewEvent(command, Metadata(event_id="o"))])

    async with anyio.create_task_group() as tg:
        run = await world.run(on_event=step)
    assert run.succeeded
    checks = await _checks(world, "d2")
    # The canary's gate read once, then the operator stepped past it; the promote's bake
    # waited out its own gate (no traffic) and went on, as onTimeout says.
    assert [c.verdict for c in checks] == ["waiting", "waiting", "waiting", "timed_out"]
    assert await world.weights("d2") == [0.2, 1.0]


async def test_a_what_if_of_a_gated_deployment_answers_its_reads_from_the_recording() -> None:
    """``glam whatif`` of a deployment whose gate waited for traffic: each of the replay's
    gate reads gets the count the recording had read by then, so the same schedule passes
    when the recording did, and the note says how the reads were answered."""
    from engine.whatif.replay import Schedule, what_if

    world = World()
    assert (await world.deploy("d1", gated("v1", GATE))).succeeded

    def arrive(record: RecordedEvent) -> None:
        if isinstance(record.event, TrafficGateChecked) and record.event.verdict == "waiting":
            world.aws.set_invocations(NAME, "live", "2", 60)

    await world.request("d2", gated("v2", GATE))
    assert (await world.run(on_event=arrive)).succeeded
    stream = await world.store.read_stream(STREAM)
    same = what_if(stream, "d2", Schedule())
    assert same.verdict is not None
    assert same.verdict.outcome == "succeeded"
    assert any("traffic gate" in note for note in same.notes)
    faster = what_if(stream, "d2", Schedule(steps=(0.5,)))
    assert faster.verdict is not None
    assert faster.verdict.outcome == "succeeded"


async def test_after_an_operator_promote_the_promotes_gate_has_its_own_window() -> None:
    """``glam promote`` while the canary's gate waits: the gate after the promote counts from
    its own bake and waits its own maxWait (it inherited the canary's deadline)."""
    from engine.events import Metadata, NewEvent
    from engine.events.function import OperatorRequested

    world = World()
    assert (await world.deploy("d1", gated("v1", GATE))).succeeded
    await world.request("d2", gated("v2", GATE))
    command = OperatorRequested(
        deployment_id="d2", command="promote", target=STREAM, actor="ops", reason="go"
    )
    sent = False

    def promote(record: RecordedEvent) -> None:
        nonlocal sent
        if isinstance(record.event, TrafficGateChecked) and not sent:
            sent = True
            tg.start_soon(world.store.append, STREAM, [NewEvent(command, Metadata(event_id="o"))])

    async with anyio.create_task_group() as tg:
        await world.run(on_event=promote)
    canary, *after = await _checks(world, "d2")
    assert after, "no gate after the promote"
    assert [c.verdict for c in after] == ["waiting", "waiting", "timed_out"]
    assert {c.since for c in after} != {canary.since}
    assert after[0].deadline == after[0].until + timedelta(seconds=120)


async def test_a_gate_without_a_schedule_or_alarms_still_gates_the_switch() -> None:
    """No trafficShiftingConfig and no alarms: one switch, a bake of 0 s, then the gate."""
    world = World()
    want = gated("v1", GATE)
    plain = want.model_copy(update={"settings": want.settings.model_copy(update={"traffic": None})})
    assert (await world.deploy("d1", plain)).succeeded
    v2 = gated("v2", GATE)
    v2 = v2.model_copy(update={"settings": v2.settings.model_copy(update={"traffic": None})})
    run = await world.deploy("d2", v2)
    assert [f.outcome for f in run.finished] == ["rolled_back"]  # no traffic came
    assert [c.verdict for c in await _checks(world, "d2")] == ["waiting", "waiting", "timed_out"]
