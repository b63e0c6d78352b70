"""The engine end to end: real Git, real SQLite, the embedded AWS with fidelity on."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events.function import AlarmObserved
from engine.local import LocalAwsThread
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner
from tests.builders import events_of
from tests.runtime.support import ALARM, NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_first_deployment(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A new definition creates the function, publishes version 1 and points the alias at it."""
    write_function(setup.repo, setup.outputs)
    head = setup.repo.commit("add orders")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert report.exit_code == 0
    assert report.head == head
    creates = local_aws.journal.calls("CreateFunction")
    assert [e.status for e in creates] == [201]
    aliases = local_aws.journal.calls("CreateAlias", function=NAME)
    assert [(e.version, e.status) for e in aliases] == [("1", 201)]
    # The projections followed the log while the engine ran: `glam status` sees the function.
    async with SqliteEventStore(setup.db, readonly=True) as store:
        views = await ProjectionRunner(store).load()
        assert views.position == await store.last_position()
    rows = list(views.functions.values())
    assert len(rows) == 1
    local_aws.journal.check_invariants()
    # Nothing new: a second run plans nothing and exits 0.
    again = await setup.run_once()
    assert again.finished == []
    assert again.exit_code == 0


async def _deployed_v1(setup: Setup, **options: Any) -> None:
    write_function(setup.repo, setup.outputs, **options)
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]


def _alias_calls(local_aws: LocalAwsThread) -> list[tuple[str | None, dict[str, float]]]:
    """(version, routing) of every UpdateAlias the embedded AWS accepted for the function."""
    return [
        (e.version, dict(e.routing or {}))
        for e in local_aws.journal.calls("UpdateAlias", function=NAME)
        if 200 <= e.status < 300
    ]


@pytest.mark.parametrize(
    ("traffic", "expected"),
    [
        pytest.param({"type": "CANARY", "percent": 30, "waitInterval": 1}, [0.3, 1.0], id="canary"),
        pytest.param(
            {"type": "LINEAR", "percent": 40, "waitInterval": 1}, [0.4, 0.8, 1.0], id="linear"
        ),
        pytest.param({"type": "ALL_AT_ONCE", "waitInterval": 1}, [1.0], id="all-at-once"),
    ],
)
async def test_update_shifts_by_the_exact_schedule(
    setup: Setup, local_aws: LocalAwsThread, traffic: dict[str, object], expected: list[float]
) -> None:
    """An update shifts the alias by its schedule, the log and AWS agree weight by weight,
    then the alias is promoted with routing cleared and the old version deleted."""
    await _deployed_v1(setup, traffic=traffic)
    local_aws.journal.clear()
    write_function(setup.repo, setup.outputs, code="green", traffic=traffic)
    setup.repo.commit("green")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    deployment = report.finished[0][1].deployment_id
    assert await setup.weights(deployment) == expected
    calls = _alias_calls(local_aws)
    # One UpdateAlias per step: the 100 % step is the promote itself.
    assert calls == [("1", {"2": w}) for w in expected[:-1]] + [("2", {})]
    deletes = local_aws.journal.calls("DeleteFunction", function=NAME)
    assert [(e.qualifier, e.status) for e in deletes] == [("1", 204)]
    local_aws.journal.check_invariants()


async def _rolled_back(setup: Setup, local_aws: LocalAwsThread, report: object) -> None:
    from engine.runtime.engine import RunReport

    assert isinstance(report, RunReport)
    assert outcomes(report) == ["rolled_back"]
    assert report.exit_code == 1
    # Back on version 1, routing cleared; version 2 deleted; no referenced version touched.
    alias = [e for e in local_aws.journal.calls(function=NAME) if e.operation == "UpdateAlias"]
    if alias:
        assert (alias[-1].version, dict(alias[-1].routing or {})) == ("1", {})
    deletes = local_aws.journal.calls("DeleteFunction", function=NAME)
    assert [(e.qualifier, e.status) for e in deletes] == [("2", 204)]
    local_aws.journal.check_invariants()


async def test_alarm_in_alarm_rolls_back(setup: Setup, local_aws: LocalAwsThread) -> None:
    """An alarm in ALARM during the canary sends the alias back to the stable version."""
    from engine.local.account import set_alarm_state

    await _deployed_v1(setup, alarms=(ALARM,))
    await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
    local_aws.journal.clear()
    write_function(setup.repo, setup.outputs, code="green", alarms=(ALARM,))
    setup.repo.commit("green, which fails")
    report = await setup.run_once()
    await _rolled_back(setup, local_aws, report)
    observed = events_of(await setup.events(), AlarmObserved)
    assert [(e.alarm, e.state) for e in observed] == [(ALARM, "ALARM")]


async def test_alarm_observation_records_what_the_alarm_evaluated(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """An alarm that fires is recorded with its metric, threshold and the datapoints its
    evaluation saw, so that the deployment can be replayed against another threshold."""
    from engine.local.account import set_alarm_state
    from engine.local.clients import aws_client

    await _deployed_v1(setup, alarms=(ALARM,))
    async with aws_client(
        "cloudwatch", setup.endpoint_url, region=setup.region, credentials=("testing", "testing")
    ) as cloudwatch:
        await cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[{"MetricName": "Errors", "Value": 3.0, "Timestamp": setup.clock.now()}],
        )
    await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
    write_function(setup.repo, setup.outputs, code="green", alarms=(ALARM,))
    setup.repo.commit("green, which fails")
    await _rolled_back(setup, local_aws, await setup.run_once())
    (observed,) = events_of(await setup.events(), AlarmObserved)
    assert observed.metric is not None
    assert (observed.metric.name, observed.metric.threshold) == ("Errors", 1.0)
    assert [p.value for p in observed.datapoints] == [3.0]


async def test_missing_alarm_rolls_back(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A configured alarm that does not exist is a reason to roll back, not to go on."""
    await _deployed_v1(setup)
    local_aws.journal.clear()
    write_function(setup.repo, setup.outputs, code="green", alarms=("no-such-alarm",))
    setup.repo.commit("green, watched by an alarm nobody made")
    report = await setup.run_once()
    await _rolled_back(setup, local_aws, report)
    observed = events_of(await setup.events(), AlarmObserved)
    assert [e.state for e in observed] == ["MISSING"]
    # Rolled back is remembered: the same desired state is not retried on the next run.
    again = await setup.run_once()
    assert again.finished == []


class _NeverReady:
    """A LambdaApi whose published versions stay Pending: the emulator cannot stall a
    version, so the test stalls its answer."""

    def __init__(self, api: object) -> None:
        self._api = api

    def __getattr__(self, name: str) -> object:
        return getattr(self._api, name)

    async def get_function(self, name: str, qualifier: str | None = None) -> object:
        from dataclasses import replace

        info = await self._api.get_function(name, qualifier)  # type: ignore[attr-defined]
        if info is not None and qualifier not in (None, "$LATEST"):
            return replace(info, state="Pending")
        return info


async def test_readiness_never_reached_rolls_back(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A new version that never becomes Active is rolled back after maxRetries checks."""
    from engine.runtime.providers import AwsProvider, RegionPorts

    class Stalling(AwsProvider):
        async def region(self, region: str, account: str | None = None) -> RegionPorts:
            ports = await super().region(region, account)
            return RegionPorts(region, _NeverReady(ports.lambda_api), ports.alarms, ports.sources)  # type: ignore[arg-type]

    await _deployed_v1(setup)
    local_aws.journal.clear()
    write_function(
        setup.repo, setup.outputs, code="green", readiness={"waitInterval": 1, "maxRetries": 2}
    )
    setup.repo.commit("green, never ready")
    report = await setup.run_once(ports=Stalling(setup.config().aws_config()))
    await _rolled_back(setup, local_aws, report)
    assert "readiness" in report.finished[0][1].reason
    # The alias was never shifted: nothing to undo on it.
    assert _alias_calls(local_aws) == []


async def test_delete(setup: Setup, local_aws: LocalAwsThread) -> None:
    """Deleting the definition deletes the function."""
    await _deployed_v1(setup)
    setup.repo.remove("apps/orders/orders_lambdadef.json")
    setup.repo.remove("apps/orders/orders_lambdadepdef.json")
    setup.repo.commit("remove orders")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert [r.stream for r in await setup.events("FunctionDeleted")] == [report.finished[0][0]]
    deletes = local_aws.journal.calls("DeleteFunction", function=NAME)
    assert [(e.qualifier, e.status) for e in deletes][-1] == (None, 204)
