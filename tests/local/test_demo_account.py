"""The demo account of the engine tests, built once per session and put back before each test
(tests/support/account.py): what one test changes is gone for the next."""

from __future__ import annotations

from typing import Any

import pytest

from engine.local import LocalAwsThread
from engine.local.account import ALARM_NAMES, code_zip
from engine.local.clients import aws_client
from tests.support.account import DemoAccount

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_what_a_test_changes_is_put_back(
    request: pytest.FixtureRequest, local_aws: LocalAwsThread, demo_account: dict[str, Any]
) -> None:
    """A function with a mapping, an ELB target, an API integration on the route, an extra
    queue and target group and an alarm in ALARM: after the reset only the account is left,
    as built, and its outputs still hold."""
    demo: DemoAccount = request.getfixturevalue("_demo")
    value = {k: v["value"] for k, v in demo_account.items()}
    url, region = local_aws.moto_url, local_aws.region
    builds = demo.builds
    async with (
        aws_client("lambda", url, region=region) as lam,
        aws_client("elbv2", url, region=region) as elbv2,
        aws_client("apigatewayv2", url, region=region) as apigw,
        aws_client("sqs", url, region=region) as sqs,
        aws_client("cloudwatch", url, region=region) as cloudwatch,
    ):
        function = await lam.create_function(
            FunctionName="left-behind",
            Role=value["lambda_exec_role_arn"],
            Runtime="python3.12",
            Handler="h.handler",
            Code={"ZipFile": code_zip("blue")},
        )
        await lam.create_event_source_mapping(
            EventSourceArn=value["sqs_queue_arn"], FunctionName="left-behind"
        )
        await elbv2.register_targets(
            TargetGroupArn=value["target_group_arn"], Targets=[{"Id": function["FunctionArn"]}]
        )
        integration = await apigw.create_integration(
            ApiId=value["api_id"], IntegrationType="AWS_PROXY", IntegrationUri="arn:x"
        )
        await apigw.update_route(
            ApiId=value["api_id"],
            RouteId=value["route_id"],
            Target=f"integrations/{integration['IntegrationId']}",
        )
        await sqs.create_queue(QueueName="left-behind")
        await elbv2.create_target_group(Name="left-behind", TargetType="lambda")
        await cloudwatch.set_alarm_state(
            AlarmName=ALARM_NAMES[0], StateValue="ALARM", StateReason="test"
        )

        outputs = await demo.ensure(local_aws)

        # The same account; the route given a target is made anew (its id changes).
        assert {k: v for k, v in outputs.items() if k != "route_id"} == {
            k: v for k, v in demo_account.items() if k != "route_id"
        }
        assert demo.builds == builds  # put back, not built again
        assert (await lam.list_functions())["Functions"] == []
        assert (await lam.list_event_source_mappings())["EventSourceMappings"] == []
        health = await elbv2.describe_target_health(TargetGroupArn=value["target_group_arn"])
        assert health["TargetHealthDescriptions"] == []
        groups = (await elbv2.describe_target_groups())["TargetGroups"]
        assert [g["TargetGroupArn"] for g in groups] == [value["target_group_arn"]]
        assert (await apigw.get_integrations(ApiId=value["api_id"]))["Items"] == []
        route_id = outputs["route_id"]["value"]
        route = await apigw.get_route(ApiId=value["api_id"], RouteId=route_id)
        assert (route["RouteKey"], route.get("Target")) == ("GET /test", None)
        queues = (await sqs.list_queues()).get("QueueUrls", [])
        assert [q for q in queues if q.endswith("left-behind")] == []
        alarms = (await cloudwatch.describe_alarms(AlarmNames=[ALARM_NAMES[0]]))["MetricAlarms"]
        assert [a["StateValue"] for a in alarms] != ["ALARM"]
    assert local_aws.journal.entries == []
