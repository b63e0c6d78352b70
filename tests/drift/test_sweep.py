"""The drift sweep on the embedded AWS: a function deployed by the engine (real Git, real
SQLite), then changed outside glam straight on moto; each change is found with its field
path, recorded once, and resolved when put back."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.events.function import DeploymentRequested, DriftDetected, DriftResolved
from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from tests.drift.support import DEPDEF, SOURCES, lambda_call, paths, sweeper
from tests.runtime.support import ALARM, NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ALL_AT_ONCE = {"type": "ALL_AT_ONCE", "waitInterval": 1}


async def _deployed(setup: Setup, *, sources: dict[str, Any] | None = None) -> None:
    write_function(setup.repo, setup.outputs, traffic=ALL_AT_ONCE)
    if sources is not None:
        setup.repo.write(SOURCES, sources)
    setup.repo.commit("orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]


async def test_nothing_differs_right_after_a_deployment(setup: Setup) -> None:
    await _deployed(setup)
    async with sweeper(setup) as sweep:
        found = await sweep.once()
        assert paths(found) == []
        assert await sweep.drift_events() == []


async def test_memory_changed_by_hand_is_recorded_once_and_resolved(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    await _deployed(setup)
    await lambda_call(local_aws, "update_function_configuration", FunctionName=NAME, MemorySize=512)
    async with sweeper(setup) as sweep:
        assert paths(await sweep.once()) == ["$LATEST.MemorySize"]
        assert paths(await sweep.once()) == ["$LATEST.MemorySize"]  # read again...
        detected = [e for e in await sweep.drift_events() if isinstance(e, DriftDetected)]
        assert [(e.path, e.desired, e.live) for e in detected] == [
            ("$LATEST.MemorySize", 128, 512)
        ]  # ...recorded once
        assert sweep.sweep.current()[f"fn:{_account(setup)}:{setup.region}:{NAME}"]
        await lambda_call(
            local_aws, "update_function_configuration", FunctionName=NAME, MemorySize=128
        )
        assert paths(await sweep.once()) == []
        resolved = [e for e in await sweep.drift_events() if isinstance(e, DriftResolved)]
        assert [e.path for e in resolved] == ["$LATEST.MemorySize"]
        assert sweep.sweep.current() == {}
        assert sweep.healed == []  # alert: nothing deployed


async def test_an_environment_value_is_masked(setup: Setup, local_aws: LocalAwsThread) -> None:
    await _deployed(setup)
    await lambda_call(
        local_aws,
        "update_function_configuration",
        FunctionName=NAME,
        Environment={"Variables": {"API_TOKEN": "s3cr3t-value"}},
    )
    async with sweeper(setup) as sweep:
        found = await sweep.once()
    (difference,) = [d for ds in found.values() for d in ds]
    assert (difference.path, difference.desired, difference.live) == (
        "$LATEST.Environment.Variables.API_TOKEN",
        None,
        "***",
    )
    assert b"s3cr3t-value" not in setup.db.read_bytes()


async def test_the_alias_moved_or_split_by_hand(setup: Setup, local_aws: LocalAwsThread) -> None:
    await _deployed(setup)
    await lambda_call(local_aws, "update_function_configuration", FunctionName=NAME, MemorySize=256)
    await lambda_call(local_aws, "get_function", FunctionName=NAME)
    other = await lambda_call(local_aws, "publish_version", FunctionName=NAME)
    await lambda_call(
        local_aws,
        "update_alias",
        FunctionName=NAME,
        Name="live",
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {other["Version"]: 0.25}},
    )
    async with sweeper(setup) as sweep:
        assert "alias.RoutingConfig" in paths(await sweep.once())
        await lambda_call(
            local_aws,
            "update_alias",
            FunctionName=NAME,
            Name="live",
            FunctionVersion=other["Version"],
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        found = await sweep.once()
    assert "alias.FunctionVersion" in paths(found)
    assert "stable.MemorySize" in paths(found)  # the version it now serves differs too
    (moved,) = [d for ds in found.values() for d in ds if d.path == "alias.FunctionVersion"]
    assert (moved.desired, moved.live) == ("1", other["Version"])


async def test_a_tag_changed_by_hand(setup: Setup, local_aws: LocalAwsThread) -> None:
    await _deployed(setup)
    latest = await lambda_call(local_aws, "get_function", FunctionName=NAME)
    arn = latest["Configuration"]["FunctionArn"]
    await lambda_call(local_aws, "tag_resource", Resource=arn, Tags={"team": "night-shift"})
    async with sweeper(setup) as sweep:
        found = await sweep.once()
    assert [(d.path, d.desired, d.live) for ds in found.values() for d in ds] == [
        ("tags.team", None, "night-shift")
    ]


async def test_a_deleted_mapping(setup: Setup, local_aws: LocalAwsThread) -> None:
    queue = setup.outputs["sqs_queue_arn"]["value"]
    mapping = {"EventSourceArn": queue, "FunctionName": NAME, "BatchSize": 10}
    await _deployed(setup, sources={"PullEventSources": {"EventSourceMapping": mapping}})
    listed = await lambda_call(local_aws, "list_event_source_mappings", FunctionName=f"{NAME}:live")
    (wired,) = listed["EventSourceMappings"]
    async with sweeper(setup) as sweep:
        assert paths(await sweep.once()) == []
        await lambda_call(local_aws, "delete_event_source_mapping", UUID=wired["UUID"])
        found = await sweep.once()
    assert [d.path for ds in found.values() for d in ds] == [f"mappings[{queue}]"]


async def test_a_removed_alb_target(setup: Setup, local_aws: LocalAwsThread) -> None:
    from engine.local.clients import aws_client

    group = setup.outputs["target_group_arn"]["value"]
    push = {"Service": "elasticloadbalancing.amazonaws.com", "TargetGroupArn": group}
    await _deployed(setup, sources={"PushEventSources": [push]})
    async with sweeper(setup) as sweep:
        assert paths(await sweep.once()) == []
        async with aws_client("elbv2", local_aws.moto_url, region=local_aws.region) as elb:
            health = await elb.describe_target_health(TargetGroupArn=group)
            targets = [t["Target"] for t in health["TargetHealthDescriptions"]]
            await elb.deregister_targets(TargetGroupArn=group, Targets=targets)
        found = await sweep.once()
    assert [d.path for ds in found.values() for d in ds] == [f"elb[{group}].target"]


async def test_heal_asks_for_a_deployment_with_drift_as_its_reason(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    write_function(setup.repo, setup.outputs, traffic=ALL_AT_ONCE)
    setup.repo.write(
        "apps/orders/orders_lambdadepdef.json",
        {"alias": "live", "trafficShiftingConfig": ALL_AT_ONCE, "driftPolicy": "heal"},
    )
    setup.repo.commit("orders, healed")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    await lambda_call(local_aws, "update_function_configuration", FunctionName=NAME, MemorySize=512)
    async with sweeper(setup) as sweep:
        await sweep.once()
        heals = [e for e in await sweep.drift_events() if isinstance(e, DeploymentRequested)]
        assert [e.reason for e in heals][-1] == "drift: $LATEST.MemorySize"
        assert len(sweep.healed) == 1
        await sweep.once()  # recorded already: no second heal
        assert len(sweep.healed) == 1
    report = await setup.run_once()  # the engine runs the heal like any deployment
    assert outcomes(report) == ["succeeded"]
    latest = await lambda_call(local_aws, "get_function", FunctionName=NAME)
    assert latest["Configuration"]["MemorySize"] == 128
    async with sweeper(setup) as sweep:
        assert paths(await sweep.once()) == []
        resolved = [e for e in await sweep.drift_events() if isinstance(e, DriftResolved)]
        assert [e.path for e in resolved] == ["$LATEST.MemorySize"]


def _account(setup: Setup) -> str:
    return str(setup.outputs["sqs_queue_arn"]["value"]).split(":")[4]


async def _alias_moved_off_glams_version(
    setup: Setup, local_aws: LocalAwsThread, *, alarms: tuple[str, ...] = ()
) -> str:
    """Deployed under heal; then someone publishes a version of their own (256 MB) and points
    the alias at it. The version it made."""
    write_function(setup.repo, setup.outputs, traffic=ALL_AT_ONCE, alarms=alarms)
    depdef = json.loads((setup.repo.path / DEPDEF).read_text())
    setup.repo.write(DEPDEF, depdef | {"driftPolicy": "heal"})
    setup.repo.commit("orders, healed")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    await lambda_call(local_aws, "update_function_configuration", FunctionName=NAME, MemorySize=256)
    await lambda_call(local_aws, "get_function", FunctionName=NAME)
    other = str((await lambda_call(local_aws, "publish_version", FunctionName=NAME))["Version"])
    await lambda_call(
        local_aws, "update_alias", FunctionName=NAME, Name="live", FunctionVersion=other
    )
    return other


async def _versions(local_aws: LocalAwsThread) -> list[str]:
    listed = await lambda_call(local_aws, "list_versions_by_function", FunctionName=NAME)
    return [v["Version"] for v in listed["Versions"] if v["Version"] != "$LATEST"]


async def test_a_moved_alias_is_healed_and_the_version_glam_did_not_deploy_kept(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    other = await _alias_moved_off_glams_version(setup, local_aws)
    async with sweeper(setup) as sweep:
        assert "alias.FunctionVersion" in paths(await sweep.once())
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    alias = await lambda_call(local_aws, "get_alias", FunctionName=NAME, Name="live")
    assert alias["FunctionVersion"] != other
    served = await lambda_call(
        local_aws, "get_function", FunctionName=NAME, Qualifier=alias["FunctionVersion"]
    )
    assert served["Configuration"]["MemorySize"] == 128
    assert other in await _versions(local_aws)  # not glam's: never deleted
    async with sweeper(setup) as sweep:
        assert paths(await sweep.once()) == []


async def test_an_alarm_during_the_heal_rolls_it_back(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    other = await _alias_moved_off_glams_version(setup, local_aws, alarms=(ALARM,))
    async with sweeper(setup) as sweep:
        await sweep.once()
        assert len(sweep.healed) == 1
    await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
    report = await setup.run_once()
    assert outcomes(report) == ["rolled_back"]
    alias = await lambda_call(local_aws, "get_alias", FunctionName=NAME, Name="live")
    assert alias["FunctionVersion"] == other  # back where the heal found it
    assert other in await _versions(local_aws)
    async with sweeper(setup) as sweep:
        await sweep.once()
        assert sweep.healed == []  # recorded already: not asked again
        detected = [e for e in await sweep.drift_events() if isinstance(e, DriftDetected)]
        assert "alias.FunctionVersion" in {e.path for e in detected}


async def test_members_moto_alone_would_drop_are_no_drift_after_a_deployment(
    setup: Setup,
) -> None:
    """TracingConfig, LoggingConfig, EphemeralStorage set by the definition are what the
    embedded AWS answers after the deployment: nothing differs."""
    write_function(setup.repo, setup.outputs, traffic=ALL_AT_ONCE)
    definition = json.loads((setup.repo.path / "apps/orders/orders_lambdadef.json").read_text())
    definition |= {
        "TracingConfig": {"Mode": "Active"},
        "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "WARN"},
        "EphemeralStorage": {"Size": 1024},
    }
    setup.repo.write("apps/orders/orders_lambdadef.json", definition)
    setup.repo.commit("orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    async with sweeper(setup) as sweep:
        assert paths(await sweep.once()) == []
