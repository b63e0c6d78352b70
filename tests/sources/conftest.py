"""Fixtures for the event-source tests: one ``World`` per test, in memory or on a moto server.

A ``World`` is a function with alias PROD plus the things sources attach to (two SQS queues,
two Lambda target groups, an HTTP API with route ``GET /test`` and a ``$default`` stage), the
``SourcesApi`` under test, and inspection calls that read the resulting state independently of
the code under test, by *listing* it, since moto happily stores duplicates glam must not make.
"""

from __future__ import annotations

import io
import itertools
import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from engine.aws.session import AwsConfig, open_clients
from engine.aws.sources import AwsSources
from engine.ports import SourcesApi
from engine.sources_plan import SOURCE_CLIENTS
from engine.testing.sources import FakeSources

REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
ALIAS = "PROD"
_names = itertools.count(1)


@dataclass
class World:
    sources: SourcesApi
    function: str
    alias_arn: str
    queues: list[str]
    target_groups: list[str]
    api_id: str
    route_id: str
    kind: str  # "fake" or "moto"
    clients: Any = None
    fake: FakeSources | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- inspection -------------------------------------------------------------------------

    async def mappings(self) -> list[dict[str, Any]]:
        """Every mapping of the test's queues, whatever function it invokes."""
        if self.fake is not None:
            return [
                m for m in self.fake.aws.mappings.values() if m.get("EventSourceArn") in self.queues
            ]
        found: list[dict[str, Any]] = []
        for queue in self.queues:
            page = await self.clients.lambda_.list_event_source_mappings(EventSourceArn=queue)
            found.extend(page["EventSourceMappings"])
        return found

    async def statements(self) -> list[dict[str, Any]]:
        """The statements of the alias's resource policy."""
        if self.fake is not None:
            return self.fake.aws.statements(self.function, ALIAS)
        try:
            answer = await self.clients.lambda_.get_policy(
                FunctionName=self.function, Qualifier=ALIAS
            )
        except self.clients.lambda_.exceptions.ResourceNotFoundException:
            return []
        return list(json.loads(answer["Policy"])["Statement"])

    async def targets(self, target_group: str) -> list[str]:
        if self.fake is not None:
            return list(self.fake.aws.targets.get(target_group, []))
        answer = await self.clients["elbv2"].describe_target_health(TargetGroupArn=target_group)
        return [d["Target"]["Id"] for d in answer["TargetHealthDescriptions"]]

    async def integrations(self) -> list[dict[str, Any]]:
        if self.fake is not None:
            return list(self.fake.aws.apis[self.api_id]["integrations"].values())
        answer = await self.clients["apigatewayv2"].get_integrations(ApiId=self.api_id)
        return list(answer["Items"])

    async def route_target(self) -> str | None:
        if self.fake is not None:
            return self.fake.aws.apis[self.api_id]["routes"][self.route_id].get("Target")
        answer = await self.clients["apigatewayv2"].get_route(
            ApiId=self.api_id, RouteId=self.route_id
        )
        return answer.get("Target")

    async def create_mapping_directly(self, request: dict[str, Any]) -> None:
        """Make a mapping behind glam's back (as a person or an older deployment would)."""
        if self.fake is not None:
            await self.fake.aws.create_mapping(request)
        else:
            await self.clients.lambda_.create_event_source_mapping(**request)


# -- the fake -----------------------------------------------------------------------------------


def fake_world() -> World:
    fake = FakeSources(region=REGION, account=ACCOUNT)
    fake.aws.strict = True
    name = f"fn{next(_names)}"
    queues = [f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}-q{i}" for i in range(2)]
    groups = [
        f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/{name}-tg{i}/0123456789abcdef"
        for i in range(2)
    ]
    for group in groups:
        fake.aws.add_target_group(group)
    fake.aws.add_api("api1", ("route1",))
    return World(
        sources=fake,
        function=name,
        alias_arn=f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}:{ALIAS}",
        queues=queues,
        target_groups=groups,
        api_id="api1",
        route_id="route1",
        kind="fake",
        fake=fake,
    )


# -- moto ---------------------------------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("index.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
    return buf.getvalue()


async def moto_world(endpoint: str) -> AsyncIterator[World]:
    config = AwsConfig(
        region=REGION,
        endpoint_url=endpoint,
        access_key_id="testing",
        secret_access_key="testing",
    )
    services = (*SOURCE_CLIENTS, "iam", "sqs")
    async with open_clients(config, services) as clients:
        name = f"fn{next(_names)}"
        iam = clients["iam"]
        role = await iam.create_role(
            RoleName=f"{name}-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "lambda.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        lam = clients.lambda_
        await lam.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role["Role"]["Arn"],
            Handler="index.handler",
            Code={"ZipFile": _zip()},
        )
        version = await lam.publish_version(FunctionName=name)
        alias = await lam.create_alias(
            FunctionName=name, Name=ALIAS, FunctionVersion=version["Version"]
        )
        sqs = clients["sqs"]
        queues = []
        for i in range(2):
            url = (await sqs.create_queue(QueueName=f"{name}-q{i}"))["QueueUrl"]
            attrs = await sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
            queues.append(attrs["Attributes"]["QueueArn"])
        groups = []
        for i in range(2):
            tg = await clients["elbv2"].create_target_group(
                Name=f"{name}-tg{i}", TargetType="lambda"
            )
            groups.append(tg["TargetGroups"][0]["TargetGroupArn"])
        apigw = clients["apigatewayv2"]
        api = await apigw.create_api(Name=f"{name}-api", ProtocolType="HTTP")
        route = await apigw.create_route(ApiId=api["ApiId"], RouteKey="GET /test")
        await apigw.create_stage(
            ApiId=api["ApiId"], StageName="$default", StageVariables={"lambdaAlias": ALIAS}
        )
        sources = AwsSources(
            {service: clients[service] for service in SOURCE_CLIENTS},
            region=REGION,
            account=ACCOUNT,
            poll_interval=0.05,
            state_timeout=10.0,
        )
        yield World(
            sources=sources,
            function=name,
            alias_arn=alias["AliasArn"],
            queues=queues,
            target_groups=groups,
            api_id=api["ApiId"],
            route_id=route["RouteId"],
            kind="moto",
            clients=clients,
        )


@pytest.fixture(params=["fake", pytest.param("moto", marks=pytest.mark.integration)])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """The same contract, against the in-memory fake and against a real moto server."""
    if request.param == "fake":
        yield fake_world()
        return
    endpoint = request.getfixturevalue("moto_url")
    async for w in moto_world(endpoint):
        yield w
