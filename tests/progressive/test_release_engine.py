"""Releases through the engine, on the embedded AWS: three functions of one commit sharing a
``release`` name shift in lockstep, and an alarm of one rolls all three back."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

from engine.events import RecordedEvent
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    ReleaseMemberFailed,
    ReleaseStepReached,
    RollbackStarted,
    TrafficShifted,
)
from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from engine.runtime.engine import RunReport
from tests.builders import events_of
from tests.ops.test_engine_operator import glam
from tests.runtime.support import ALARM, Setup, outcomes, write_function
from tests.server.support import serving

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

MEMBERS = ("cart", "pay", "ship")
LINEAR = {"type": "LINEAR", "percent": 50, "waitInterval": 30}


def _write(setup: Setup, code: str, traffic: dict[str, Any], **extra: Any) -> None:
    for name in MEMBERS:
        depdef = {"release": "checkout"} if code == "green" else {}
        write_function(
            setup.repo,
            setup.outputs,
            name=name,
            prefix=f"apps/{name}/{name}",
            code=code,
            traffic=traffic,
            alarms=(ALARM,) if name == "pay" else (),
            depdef_extra=depdef | extra.get(name, {}),
        )


async def _deployed(setup: Setup) -> None:
    _write(setup, "blue", {"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("three functions")
    assert outcomes(await setup.run_once()) == ["succeeded"] * 3


def _name(record: RecordedEvent) -> str:
    return record.stream.split(":")[-1]


def _aliases(local_aws: LocalAwsThread) -> dict[str, tuple[str | None, dict[str, float]]]:
    out = {}
    for name in MEMBERS:
        done = [e for e in local_aws.journal.calls("UpdateAlias", function=name) if e.status < 300]
        out[name] = (done[-1].version, dict(done[-1].routing or {}))
    return out


async def test_a_release_shifts_its_members_in_lockstep(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """Every member's weight moves to a step only once every member has reached it; no member
    finishes before all have baked through; the release is one id in every request. ``ship``
    has a single step (ALL_AT_ONCE): it waits at its promote for the others' LINEAR steps."""
    await _deployed(setup)
    _write(setup, "green", LINEAR, ship={"trafficShiftingConfig": {"type": "ALL_AT_ONCE"}})
    setup.repo.commit("checkout release")
    code, text = await glam("plan", "--repo", str(setup.repo.path), "--db", str(setup.db))
    assert code == 1, text  # changes to make
    assert text.count("; release checkout") == 3, text
    assert outcomes(await setup.run_once()) == ["succeeded"] * 3

    records = await setup.events()
    requests = events_of(records, DeploymentRequested)
    assert [r.release for r in requests[:3]] == [None] * 3  # the first commit has no release
    [release] = {r.release for r in requests[3:]}
    assert release is not None
    assert release.name == "checkout"
    assert sorted(m.stream.split(":")[-1] for m in release.members) == sorted(MEMBERS)
    ids = {m.deployment_id for m in release.members}
    records = [r for r in records if getattr(r.event, "deployment_id", None) in ids]

    reached = [r for r in records if isinstance(r.event, ReleaseStepReached)]
    by_member: dict[str, list[tuple[str, int]]] = {}
    for r in reached:
        assert isinstance(r.event, ReleaseStepReached)
        by_member.setdefault(_name(r), []).append((r.event.stage, r.event.index))
    assert by_member == {
        "cart": [("shift", 0), ("promote", 0), ("finish", 0)],
        "pay": [("shift", 0), ("promote", 0), ("finish", 0)],
        "ship": [("promote", 0), ("finish", 0)],
    }
    # Lockstep: a member's shift (or promote) is after every member reached that point.
    position: dict[tuple[str, str, int], int] = {
        (_name(r), r.event.stage, r.event.index): r.position
        for r in reached
        if isinstance(r.event, ReleaseStepReached)
    }
    shifts = [r for r in records if isinstance(r.event, TrafficShifted)]
    for shift in shifts:
        assert isinstance(shift.event, TrafficShifted)
        point = ("promote", 0) if shift.event.weight == 1.0 else ("shift", 0)
        for name in MEMBERS:
            at = position.get((name, *point), position.get((name, "promote", 0)))
            assert at is not None, (name, point)
            assert at < shift.position, (name, point, shift)
    finished = [r for r in records if isinstance(r.event, DeploymentFinished)]
    assert len(finished) == 3
    last_reached = max(position[(name, "finish", 0)] for name in MEMBERS)
    assert all(f.position > last_reached for f in finished)
    assert {name: alias for name, alias in _aliases(local_aws).items()} == {
        name: ("2", {}) for name in MEMBERS
    }
    local_aws.journal.check_invariants()


async def test_an_alarm_of_one_member_rolls_the_whole_release_back(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """``pay``'s alarm fires during its canary: ``pay`` rolls back on it, ``cart`` and
    ``ship`` record that their release member failed and roll back too; every alias ends on
    version 1 with no routing, and each reason names the cause."""
    await _deployed(setup)
    _write(setup, "green", LINEAR)
    setup.repo.commit("checkout release")
    shifted = anyio.Event()
    count = 0

    def watch(record: RecordedEvent) -> None:
        nonlocal count
        if isinstance(record.event, TrafficShifted) and record.event.weight == 0.5:
            count += 1
            if count == 3:  # every member at 50 %: hold the clock while the alarm fires
                setup.clock.hold()
                shifted.set()

    report = RunReport()
    async with setup.engine(on_event=watch) as engine:

        async def run() -> None:
            nonlocal report
            report = await engine.run(once=True)

        with anyio.fail_after(120):
            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                await shifted.wait()
                await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
                setup.clock.release()
    assert outcomes(report) == ["rolled_back"] * 3

    records = await setup.events()
    rollbacks = {_name(r): r.event.reason for r in records if isinstance(r.event, RollbackStarted)}
    assert rollbacks["pay"] == f"alarm {ALARM} is in ALARM"
    for name in ("cart", "ship"):
        assert rollbacks[name] == f"release checkout: pay rolled back: alarm {ALARM} is in ALARM"
    failed = [r for r in records if isinstance(r.event, ReleaseMemberFailed)]
    assert sorted(_name(r) for r in failed) == ["cart", "ship"]
    assert all(e.member.endswith(":pay") for e in events_of(records, ReleaseMemberFailed))
    assert _aliases(local_aws) == {name: ("1", {}) for name in MEMBERS}
    # Nobody promoted: no weight reached 100 %.
    weights = {e.weight for e in events_of(records, TrafficShifted)}
    assert 1.0 not in weights
    local_aws.journal.check_invariants()

    # One release, shown as one: in glam status (text and --json) and in the API.
    code, text = await glam("status", "--db", str(setup.db), "--wide")
    assert code == 0, text
    [line] = [x for x in text.splitlines() if x.startswith("checkout")]
    assert "rolled_back" in line
    assert "cart rolled_back, pay rolled_back, ship rolled_back" in line
    assert f"pay: alarm {ALARM} is in ALARM" in line
    code, text = await glam("status", "--db", str(setup.db), "--json")
    assert code == 0, text
    rows = json.loads(text[: text.rindex("]") + 1])
    assert {r["release"]["name"] for r in rows} == {"checkout"}
    [release_id] = {r["release"]["id"] for r in rows}
    async with serving(setup) as srv:
        status, body = await srv.get("/api/v1/releases")
        assert status == 200, body
        [release] = body["releases"]
        assert (release["id"], release["name"], release["state"]) == (
            release_id,
            "checkout",
            "rolled_back",
        )
        assert release["cause"] == f"pay: alarm {ALARM} is in ALARM"
        assert [(m["name"], m["outcome"]) for m in release["members"]] == [
            (name, "rolled_back") for name in MEMBERS
        ]
        status, one = await srv.get(f"/api/v1/releases/{release_id}")
        assert (status, one) == (200, release)
        status, _ = await srv.get("/api/v1/releases/nope")
        assert status == 404
        member = release["members"][0]["deployment_id"]
        status, deployment = await srv.get(f"/api/v1/deployments/{member}")
        assert deployment["release"]["id"] == release_id
        kinds = [(s["kind"], s["name"]) for s in deployment["steps"]]
        assert ("release", "failed") in kinds
