"""The demo account (``engine.local.account.build_account``) built once per test session and
put back before each test that uses it, instead of rebuilt (seconds) every time.

``DemoAccount.restore`` undoes, straight on moto (outside the proxy's journal and quota),
whatever a test can change in the account: it deletes every Lambda function (with its versions,
aliases and permissions) and event source mapping, the target groups, queues, APIs, routes,
integrations and alarms made after the build, deregisters the target groups' targets, makes
a route that was given a target anew (its new id in the outputs) and puts each alarm back in
the state it was built in. The proxy's own
state (journal, Pending timers, quota windows, faults, fidelity) is reset by the caller
(``LocalAwsThread.reset(moto=False)``). A test that empties moto altogether (the plain
``local_aws`` fixture) marks the account gone, and the next test that wants it builds it again.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import anyio

from engine.local import LocalAwsThread
from engine.local.account import build_account
from engine.local.clients import aws_client


@dataclass
class _Baseline:
    queues: set[str] = field(default_factory=set)
    target_groups: set[str] = field(default_factory=set)
    apis: set[str] = field(default_factory=set)
    routes: set[tuple[str, str]] = field(default_factory=set)
    alarms: dict[str, str] = field(default_factory=dict)  # name -> state when built


@dataclass
class DemoAccount:
    """The session's demo account: ``await ensure(aws)`` returns its outputs, built or put
    back; ``forget()`` after moto was emptied."""

    outputs: dict[str, dict[str, Any]] | None = None
    builds: int = 0
    restores: int = 0
    _baseline: _Baseline = field(default_factory=_Baseline)

    def forget(self) -> None:
        self.outputs = None

    async def ensure(self, aws: LocalAwsThread) -> dict[str, dict[str, Any]]:
        if self.outputs is None:
            # From empty: whatever a test left must not clash with the build.
            await anyio.to_thread.run_sync(aws.reset)
            self.outputs = await build_account(aws.endpoint_url, region=aws.region)
            self._baseline = await _snapshot(aws)
            self.builds += 1
        else:
            renamed = await _restore(aws, self._baseline)
            route = self.outputs["route_id"]
            route["value"] = renamed.get(route["value"], route["value"])
            self.restores += 1
        aws.journal.clear()  # only what the test does
        return copy.deepcopy(self.outputs)


def _client(aws: LocalAwsThread, service: str) -> Any:
    return aws_client(service, aws.moto_url, region=aws.region, max_attempts=5)


async def _snapshot(aws: LocalAwsThread) -> _Baseline:
    base = _Baseline()
    async with (
        _client(aws, "sqs") as sqs,
        _client(aws, "elbv2") as elbv2,
        _client(aws, "apigatewayv2") as apigw,
        _client(aws, "cloudwatch") as cloudwatch,
    ):
        base.queues = set((await sqs.list_queues()).get("QueueUrls", []))
        groups = (await elbv2.describe_target_groups())["TargetGroups"]
        base.target_groups = {g["TargetGroupArn"] for g in groups}
        for api in (await apigw.get_apis())["Items"]:
            base.apis.add(api["ApiId"])
            for route in (await apigw.get_routes(ApiId=api["ApiId"]))["Items"]:
                base.routes.add((api["ApiId"], route["RouteId"]))
        alarms = (await cloudwatch.describe_alarms())["MetricAlarms"]
        base.alarms = {a["AlarmName"]: a["StateValue"] for a in alarms}
    return base


async def _restore(aws: LocalAwsThread, base: _Baseline) -> dict[str, str]:
    """Put the account back as ``base`` has it; the ids of the routes made anew, by old id."""
    renamed: dict[str, str] = {}
    async with (
        _client(aws, "lambda") as lam,
        _client(aws, "sqs") as sqs,
        _client(aws, "elbv2") as elbv2,
        _client(aws, "apigatewayv2") as apigw,
        _client(aws, "cloudwatch") as cloudwatch,
    ):
        for mapping in (await lam.list_event_source_mappings())["EventSourceMappings"]:
            await lam.delete_event_source_mapping(UUID=mapping["UUID"])
        for function in (await lam.list_functions())["Functions"]:
            await lam.delete_function(FunctionName=function["FunctionName"])
        for url in set((await sqs.list_queues()).get("QueueUrls", [])) - base.queues:
            await sqs.delete_queue(QueueUrl=url)
        for group in (await elbv2.describe_target_groups())["TargetGroups"]:
            arn = group["TargetGroupArn"]
            if arn not in base.target_groups:
                await elbv2.delete_target_group(TargetGroupArn=arn)
                continue
            health = await elbv2.describe_target_health(TargetGroupArn=arn)
            targets = [d["Target"] for d in health["TargetHealthDescriptions"]]
            if targets:
                await elbv2.deregister_targets(TargetGroupArn=arn, Targets=targets)
        for api in (await apigw.get_apis())["Items"]:
            api_id = api["ApiId"]
            if api_id not in base.apis:
                await apigw.delete_api(ApiId=api_id)
                continue
            for route in (await apigw.get_routes(ApiId=api_id))["Items"]:
                key = (api_id, route["RouteId"])
                if key in base.routes and not route.get("Target"):
                    continue
                await apigw.delete_route(ApiId=api_id, RouteId=route["RouteId"])
                if key in base.routes:
                    # moto keeps a target that UpdateRoute sets to "": make the route anew.
                    made = await apigw.create_route(ApiId=api_id, RouteKey=route["RouteKey"])
                    base.routes.discard(key)
                    base.routes.add((api_id, made["RouteId"]))
                    renamed[route["RouteId"]] = made["RouteId"]
            for integration in (await apigw.get_integrations(ApiId=api_id))["Items"]:
                await apigw.delete_integration(
                    ApiId=api_id, IntegrationId=integration["IntegrationId"]
                )
        alarms = (await cloudwatch.describe_alarms())["MetricAlarms"]
        extra = [a["AlarmName"] for a in alarms if a["AlarmName"] not in base.alarms]
        if extra:
            await cloudwatch.delete_alarms(AlarmNames=extra)
        for alarm in alarms:
            state = base.alarms.get(alarm["AlarmName"])
            if state is not None and alarm["StateValue"] != state:
                await cloudwatch.set_alarm_state(
                    AlarmName=alarm["AlarmName"], StateValue=state, StateReason="test reset"
                )
    return renamed
