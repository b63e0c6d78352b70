"""Traffic gates through the engine, on the embedded AWS: the counts are CloudWatch's
``AWS/Lambda`` ``Invocations`` by ``ExecutedVersion``, which the embedded AWS records from the
invocations it serves (the alias's routing decides which version runs each one)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events.function import DeploymentFinished, TrafficGateChecked
from engine.local import LocalAwsThread
from engine.runtime.clock import SystemClock
from tests.builders import events_of
from tests.runtime.support import NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def _update_with(setup: Setup, depdef: dict[str, Any], **options: Any) -> list[str]:
    """Version 1 deployed with ``depdef``, then version 2 committed and run: the outcomes."""
    write_function(setup.repo, setup.outputs, depdef_extra=depdef)
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once(**options)) == ["succeeded"]
    write_function(setup.repo, setup.outputs, code="green", depdef_extra=depdef)
    setup.repo.commit("green")
    return outcomes(await setup.run_once(**options))


def _alias(local_aws: LocalAwsThread) -> tuple[str | None, dict[str, float]]:
    last = [e for e in local_aws.journal.calls("UpdateAlias", function=NAME) if e.status < 300]
    return last[-1].version, dict(last[-1].routing or {})


@pytest.mark.parametrize(
    ("on_timeout", "outcome", "alias"),
    [
        pytest.param("rollback", "rolled_back", "1", id="rollback"),
        pytest.param("promote", "succeeded", "2", id="promote"),
    ],
)
async def test_a_gate_with_no_traffic_waits_then_acts_as_configured(
    setup: Setup, local_aws: LocalAwsThread, on_timeout: str, outcome: str, alias: str
) -> None:
    """Nothing invokes the function: each read finds 0 of the 5 invocations, the gate reads
    again every checkInterval until maxWait, then rolls back or goes on."""
    gate = {"minInvocations": 5, "maxWait": 120, "checkInterval": 60, "onTimeout": on_timeout}
    depdef = {
        "trafficShiftingConfig": {"type": "CANARY", "percent": 10, "waitInterval": 30},
        "trafficGate": gate,
    }
    assert await _update_with(setup, depdef) == [outcome]
    records = await setup.events()
    checks = events_of(records, TrafficGateChecked)
    canary = checks[:3]
    assert [(c.verdict, c.invocations, c.version) for c in canary] == [
        ("waiting", 0, "2"),
        ("waiting", 0, "2"),
        ("timed_out", 0, "2"),
    ]
    assert [round((c.until - canary[0].until).total_seconds()) for c in canary] == [0, 60, 120]
    assert canary[-1].action == on_timeout
    finished = events_of(records, DeploymentFinished)[-1]
    if on_timeout == "rollback":
        assert len(checks) == 3  # never promoted
        assert "traffic gate: version 2 served 0 of the 5 invocations" in finished.reason
    else:
        assert [c.verdict for c in checks[3:]] == ["waiting", "waiting", "timed_out"]
    assert _alias(local_aws) == (alias, {})
    reads = local_aws.journal.calls("GetMetricStatistics")
    assert len(reads) >= len(checks)
    local_aws.journal.check_invariants()


async def test_synthetic_invocations_reach_the_new_version_and_pass_the_gate(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """``syntheticInvoke`` sends invocations to the alias during the bake (real time: the
    embedded AWS stamps its metrics with the wall clock); half reach version 2 at 50 %, so
    the canary's gate passes at the end of its bake, and so does the promote's."""
    depdef = {
        "trafficShiftingConfig": {"type": "CANARY", "percent": 50, "waitInterval": 2},
        "trafficGate": {
            "minInvocations": 2,
            "maxWait": 30,
            "checkInterval": 1,
            "syntheticInvoke": {"payload": {"probe": True}, "ratePerSecond": 5},
        },
    }
    assert await _update_with(setup, depdef, clock=SystemClock()) == ["succeeded"]
    checks = events_of(await setup.events(), TrafficGateChecked)
    passed = [c for c in checks if c.verdict == "passed"]
    assert len(passed) == 2, checks  # the canary's step, then the promote's bake
    assert all(c.invocations >= 2 for c in passed)
    invokes = [e for e in local_aws.journal.calls("Invoke") if e.status == 200]
    assert invokes, "the probe invoked nothing"
    assert {e.function for e in invokes} == {NAME}
    assert _alias(local_aws) == ("2", {})
    local_aws.journal.check_invariants()
