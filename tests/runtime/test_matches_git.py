"""AWS matches Git: what a deployment leaves is what the repository describes, read back from
AWS (the embedded one, fidelity on), with real Git and a real SQLite log.

Each test is a reproduction of something that went wrong before: a retry that reported
success with the alias on the old version, attributes removed from a file that stayed, tag and
create-only changes ignored, alarms not watched without a trafficShiftingConfig, a depdef
naming an account glam cannot act in wedging the log, functions that existed before glam
republished, and versions losing the user's Description.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from engine.local import LocalAwsThread
from engine.local.account import set_alarm_state
from engine.local.clients import aws_client
from tests.runtime.support import (
    ALARM,
    NAME,
    PREFIX,
    Setup,
    outcomes,
    write_function,
)

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

CANARY = {"type": "CANARY", "percent": 50, "waitInterval": 1}
DEF = f"{PREFIX}_lambdadef.json"
DEPDEF = f"{PREFIX}_lambdadepdef.json"


def definition(setup: Setup) -> dict[str, Any]:
    return dict(json.loads((setup.repo.path / DEF).read_text()))


def write_definition(setup: Setup, **changes: Any) -> None:
    """The definition with ``changes`` (a value of None drops the member)."""
    current = definition(setup)
    current.update(changes)
    setup.repo.write(DEF, {k: v for k, v in current.items() if v is not None})


async def served(local_aws: LocalAwsThread, qualifier: str = "live") -> dict[str, Any]:
    """GetFunction of ``qualifier`` as moto holds it (outside the journal and the quota)."""
    async with aws_client("lambda", local_aws.moto_url, region=local_aws.region) as lam:
        answer: dict[str, Any] = await lam.get_function(FunctionName=NAME, Qualifier=qualifier)
    return answer


async def alias_of(local_aws: LocalAwsThread) -> tuple[str, dict[str, float]]:
    async with aws_client("lambda", local_aws.moto_url, region=local_aws.region) as lam:
        alias = await lam.get_alias(FunctionName=NAME, Name="live")
    routing = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
    return str(alias["FunctionVersion"]), dict(routing)


async def code_sha(setup: Setup, local_aws: LocalAwsThread, code: str) -> str:
    """The CodeSha256 the demo account's ``code`` object gives a function."""
    from engine.aws.code_objects import AwsCodeObjects

    value = {k: v["value"] for k, v in setup.outputs.items()}
    async with aws_client("s3", local_aws.moto_url, region=local_aws.region) as s3:
        sha = await AwsCodeObjects(s3).code_sha256(
            value["s3_bucket_name"], value[f"s3_object_{code}_key"]
        )
    assert sha is not None
    return sha


def glam_cli(*args: str) -> tuple[int, str]:
    """A glam command in this process; synchronous (it runs its own event loop)."""
    from engine.cli.main import app

    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


async def plan(setup: Setup) -> tuple[int, str]:
    return await anyio.to_thread.run_sync(
        glam_cli,
        "plan",
        "--repo",
        str(setup.repo.path),
        "--db",
        str(setup.db),
        "--region",
        setup.region,
    )


async def rolled_back_green(setup: Setup, local_aws: LocalAwsThread) -> None:
    """Blue deployed; green rolled back by the alarm (read before any traffic moved)."""
    await set_alarm_state(setup.endpoint_url, ALARM, "OK", region=setup.region)
    write_function(setup.repo, setup.outputs, traffic=CANARY, alarms=(ALARM,))
    setup.repo.commit("blue")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
    write_function(setup.repo, setup.outputs, code="green", traffic=CANARY, alarms=(ALARM,))
    setup.repo.commit("green")
    assert outcomes(await setup.run_once()) == ["rolled_back"]
    await set_alarm_state(setup.endpoint_url, ALARM, "OK", region=setup.region)
    assert await alias_of(local_aws) == ("1", {})


async def test_retry_after_a_rollback_publishes_and_shifts(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """``glam retry`` after an alarm rollback deploys the rolled-back state as a new
    deployment: the alias ends on a new version with green's code, and the plan then has
    nothing to do because the alias serves what the branch describes."""
    await rolled_back_green(setup, local_aws)
    green = await code_sha(setup, local_aws, "green")
    code, output = await anyio.to_thread.run_sync(
        glam_cli, "retry", NAME, "--reason", "alarm fixed", "--db", str(setup.db)
    )
    assert code == 0, output
    local_aws.journal.clear()
    report = await setup.run_once()
    assert [(f.outcome, f.stable_version) for _, f in report.finished] == [("succeeded", "3")]
    assert report.exit_code == 0
    assert await alias_of(local_aws) == ("3", {})
    assert (await served(local_aws))["Configuration"]["CodeSha256"] == green
    assert [e.status for e in local_aws.journal.calls("PublishVersion", function=NAME)][-1] == 201
    assert (await plan(setup))[0] == 0


async def test_a_commit_back_to_the_rolled_back_state_plus_a_tag_reaches_the_alias(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """With no operator: a later commit keeping the rolled-back code and adding only a tag
    publishes and shifts (the stable version does not serve green), and sets the tag."""
    await rolled_back_green(setup, local_aws)
    green = await code_sha(setup, local_aws, "green")
    write_definition(setup, Tags={"team": "payments"})
    setup.repo.commit("green again, tagged")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    version, routing = await alias_of(local_aws)
    assert (version, routing) == (report.finished[0][1].stable_version, {})
    assert version not in ("1", "2")
    answer = await served(local_aws)
    assert answer["Configuration"]["CodeSha256"] == green
    assert answer.get("Tags") == {"team": "payments"}


async def test_attributes_removed_from_the_definition_are_reset(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """MemorySize, Environment and Timeout dropped from the file go back to AWS's defaults,
    on the version the alias serves and on $LATEST; only what differs is sent."""
    write_function(setup.repo, setup.outputs, traffic=CANARY, memory=256)
    write_definition(setup, Environment={"Variables": {"FEATURE": "on"}}, Timeout=30)
    setup.repo.commit("tuned")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_definition(setup, MemorySize=None, Environment=None, Timeout=None)
    setup.repo.commit("defaults")
    local_aws.journal.clear()
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    for qualifier in ("live", "$LATEST"):
        configuration = (await served(local_aws, qualifier))["Configuration"]
        assert configuration["MemorySize"] == 128, qualifier
        assert configuration["Timeout"] == 3, qualifier
        assert not (configuration.get("Environment") or {}).get("Variables"), qualifier
    assert await alias_of(local_aws) == ("2", {})
    # The code was unchanged: no UpdateFunctionCode.
    assert local_aws.journal.calls("UpdateFunctionCode", function=NAME) == []


async def test_tags_are_applied_and_removed_without_a_new_version(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A change of tags alone sets and removes them with their own APIs; nothing is
    published (tags are not versioned) and the deployment says the version serves it."""
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    write_definition(setup, Tags={"team": "a", "cost": "c1"})
    setup.repo.commit("tagged")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_definition(setup, Tags={"team": "b"})
    setup.repo.commit("retagged")
    local_aws.journal.clear()
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert "already serves" in report.finished[0][1].reason
    assert (await served(local_aws, "$LATEST")).get("Tags") == {"team": "b"}
    done = {e.operation for e in local_aws.journal.calls(function=None) if e.service == "lambda"}
    assert {"TagResource", "UntagResource"} <= done
    assert not done & {"PublishVersion", "UpdateAlias", "UpdateFunctionConfiguration"}


async def test_code_signing_is_set_and_removed(setup: Setup, local_aws: LocalAwsThread) -> None:
    """CodeSigningConfigArn is put on the function when the file names one and removed when
    it drops it, read only because it is or was configured."""
    arn = f"arn:aws:lambda:{setup.region}:123456789012:code-signing-config:csc-0123456789abcdef0"
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    setup.repo.commit("unsigned")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    assert local_aws.journal.calls("GetFunctionCodeSigningConfig") == []
    write_definition(setup, CodeSigningConfigArn=arn)
    setup.repo.commit("signed")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    assert [e.status for e in local_aws.journal.calls("PutFunctionCodeSigningConfig")] == [200]
    write_definition(setup, CodeSigningConfigArn=None)
    setup.repo.commit("unsigned again")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    assert [e.status for e in local_aws.journal.calls("DeleteFunctionCodeSigningConfig")] == [204]


async def test_a_package_type_change_is_refused_before_anything_moves(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """PackageType cannot change on a function: the plan refuses it naming the file, the
    member and what to do, no deployment is asked for, and nothing was changed in AWS."""
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    setup.repo.commit("zip")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_definition(setup, PackageType="Image", Code={"ImageUri": "1.dkr.ecr/x:1"})
    setup.repo.commit("image")
    local_aws.journal.clear()
    report = await setup.run_once()
    assert report.finished == []
    [refused] = report.rejected
    assert refused.file == DEF
    assert "PackageType" in refused.reason
    assert "new FunctionName" in refused.reason
    lambda_calls = [e for e in local_aws.journal.calls() if e.service == "lambda"]
    writes = [e for e in lambda_calls if e.operation != "GetFunction"]
    assert writes == [], [e.operation for e in writes]
    assert await alias_of(local_aws) == ("1", {})


async def test_alarms_without_a_traffic_config_are_watched(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """With alarms and no trafficShiftingConfig, an alarm in ALARM is found before the one
    switch: rolled back, the alias never moved; with the alarm quiet the switch is baked
    (60 s by default) with the alarm polled."""
    await set_alarm_state(setup.endpoint_url, ALARM, "OK", region=setup.region)
    write_function(setup.repo, setup.outputs)
    setup.repo.write(DEPDEF, {"alias": "live", "alarms": {"alarmNames": [ALARM]}})
    setup.repo.commit("blue")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    await set_alarm_state(setup.endpoint_url, ALARM, "ALARM", region=setup.region)
    write_definition(setup, MemorySize=256)
    setup.repo.commit("bigger, alarm firing")
    local_aws.journal.clear()
    assert outcomes(await setup.run_once()) == ["rolled_back"]
    assert local_aws.journal.calls("UpdateAlias") == []
    await set_alarm_state(setup.endpoint_url, ALARM, "OK", region=setup.region)
    write_definition(setup, MemorySize=512)
    setup.repo.commit("bigger still, alarm quiet")
    start = setup.clock.monotonic()
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert setup.clock.monotonic() - start >= 60  # the bake after the switch: 60 s
    assert len(local_aws.journal.calls("DescribeAlarms")) >= 2


async def test_traffic_shifting_enabled_without_a_config_is_the_default_canary(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """``trafficShiftingEnabled: true`` with no config shifts the default CANARY: 20 %, a
    60 s bake, the promote, another bake."""
    write_function(setup.repo, setup.outputs)
    setup.repo.write(DEPDEF, {"alias": "live", "trafficShiftingEnabled": True})
    setup.repo.commit("blue")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_function(setup.repo, setup.outputs, code="green")
    setup.repo.write(DEPDEF, {"alias": "live", "trafficShiftingEnabled": True})
    setup.repo.commit("green")
    local_aws.journal.clear()
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    updates = [(e.version, dict(e.routing or {})) for e in local_aws.journal.calls("UpdateAlias")]
    assert updates == [("1", {"2": 0.2}), ("2", {})]


async def test_a_depdef_naming_another_account_does_not_wedge_the_log(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A depdef naming an account the engine has no role for is rejected at plan time with
    the reason (no deployment is started to stay in flight); once the file is fixed,
    ``--once`` exits 0."""
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    setup.repo.write(
        DEPDEF,
        {
            "alias": "live",
            "environment": {"account": "111111111111"},
            "trafficShiftingConfig": CANARY,
        },
    )
    setup.repo.commit("another account")
    report = await setup.run_once()
    assert report.finished == []
    [rejected] = report.rejected
    assert rejected.file.endswith("_lambdadepdef.json")
    assert "account 111111111111 is not configured" in rejected.reason
    assert report.exit_code == 1
    setup.repo.write(DEPDEF, {"alias": "live", "trafficShiftingConfig": CANARY})
    setup.repo.commit("fixed")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert report.exit_code == 0
    assert (await setup.run_once()).exit_code == 0


async def create_outside_glam(setup: Setup, local_aws: LocalAwsThread, **extra: Any) -> None:
    """The function as another tool made it: the definition's function, version 1, alias."""
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    request = {**definition(setup), **extra}
    async with aws_client("lambda", setup.endpoint_url, region=setup.region) as lam:
        await lam.create_function(**request)
        for _ in range(100):
            state = (await lam.get_function(FunctionName=NAME))["Configuration"]
            if state.get("State") == "Active" and state.get("LastUpdateStatus") != "InProgress":
                break
            await anyio.sleep(0.2)
        version = await lam.publish_version(FunctionName=NAME)
        await lam.create_alias(FunctionName=NAME, Name="live", FunctionVersion=version["Version"])
    local_aws.journal.clear()


async def test_a_function_that_already_matches_is_adopted(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A function made before glam saw it, serving what the definition describes, is
    recorded as deployed: nothing updated, published or shifted; its S3 code is compared by
    reading the object once."""
    await create_outside_glam(setup, local_aws)
    setup.repo.commit("adopt")
    report = await setup.run_once()
    [(_, finished)] = report.finished
    assert (finished.outcome, finished.stable_version) == ("succeeded", "1")
    assert finished.reason.startswith("adopted")
    lambda_calls = {e.operation for e in local_aws.journal.calls() if e.service == "lambda"}
    assert lambda_calls == {"GetFunction", "GetAlias"}
    assert [e.operation for e in local_aws.journal.calls() if e.service == "s3"] == ["GetObject"]
    assert (await plan(setup))[0] == 0


async def test_a_function_that_differs_is_deployed_from_the_version_it_serves(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """A function made before glam with other settings is deployed with the normal
    strategy from the version its alias serves, which glam keeps (it did not deploy it)."""
    await create_outside_glam(setup, local_aws, MemorySize=512)
    setup.repo.commit("take over")
    report = await setup.run_once()
    [(_, finished)] = report.finished
    assert (finished.outcome, finished.stable_version) == ("succeeded", "2")
    assert "kept: glam did not deploy it" in finished.reason
    updates = [(e.version, dict(e.routing or {})) for e in local_aws.journal.calls("UpdateAlias")]
    assert updates == [("1", {"2": 0.5}), ("2", {})]
    assert (await served(local_aws))["Configuration"]["MemorySize"] == 128


async def test_versions_keep_the_users_description(setup: Setup, local_aws: LocalAwsThread) -> None:
    """The published versions carry the definition's Description, not glam's."""
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    write_definition(setup, Description="orders service")
    setup.repo.commit("described")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    write_function(setup.repo, setup.outputs, code="green", traffic=CANARY)
    write_definition(setup, Description="orders service, green")
    setup.repo.commit("green")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    assert (await served(local_aws))["Configuration"]["Description"] == "orders service, green"
    async with aws_client("lambda", local_aws.moto_url, region=local_aws.region) as lam:
        listed = await lam.list_versions_by_function(FunctionName=NAME)
    described = {v["Version"]: v.get("Description") for v in listed["Versions"]}
    assert described == {"$LATEST": "orders service, green", "2": "orders service, green"}


async def test_an_alias_change_moves_the_event_sources_and_keeps_the_old_alias(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """The depdef names another alias: the new alias is made on the version the old one
    serves, the SQS mapping is attached to it and then detached from the old alias, and the
    old alias is left for an operator to remove."""
    queue = setup.outputs["sqs_queue_arn"]["value"]
    write_function(setup.repo, setup.outputs, traffic=CANARY)
    mapping = {"EventSourceArn": queue, "FunctionName": NAME, "BatchSize": 10}
    setup.repo.write(
        f"{PREFIX}_lambdaeventsourcedef.json", {"PullEventSources": {"EventSourceMapping": mapping}}
    )
    setup.repo.commit("on live")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    setup.repo.write(DEPDEF, {"alias": "prod", "trafficShiftingConfig": CANARY})
    setup.repo.commit("on prod")
    local_aws.journal.clear()
    report = await setup.run_once()
    assert [(f.outcome, f.stable_version) for _, f in report.finished] == [("succeeded", "1")]
    async with aws_client("lambda", local_aws.moto_url, region=local_aws.region) as lam:
        aliases = await lam.list_aliases(FunctionName=NAME)
        mappings = {
            alias: (await lam.list_event_source_mappings(FunctionName=f"{NAME}:{alias}"))[
                "EventSourceMappings"
            ]
            for alias in ("live", "prod")
        }
    assert sorted((a["Name"], a["FunctionVersion"]) for a in aliases["Aliases"]) == [
        ("live", "1"),
        ("prod", "1"),
    ]
    assert (len(mappings["live"]), len(mappings["prod"])) == (0, 1)
    changes = [r.event for r in await setup.events("EventSourceChanged")]
    assert [c.change for c in changes][-2:] == ["attached", "detached"]  # type: ignore[union-attr]
    assert local_aws.journal.calls("PublishVersion") == []
    assert local_aws.journal.calls("DeleteAlias") == []
