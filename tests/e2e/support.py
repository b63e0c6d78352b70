"""Reading AWS as it is, by listing it: moto stores duplicates that glam must never make, so
the tests count what is there instead of asking glam what it did."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from engine.local.clients import aws_client

# Journal operations that change event sources; a run with nothing to do makes none of them.
SOURCE_MUTATIONS = frozenset(
    {
        "CreateEventSourceMapping",
        "UpdateEventSourceMapping",
        "DeleteEventSourceMapping",
        "AddPermission",
        "RemovePermission",
        "RegisterTargets",
        "DeregisterTargets",
        "CreateIntegration",
        "UpdateIntegration",
        "DeleteIntegration",
        "UpdateRoute",
    }
)


@dataclass
class AwsState:
    """Plain aiobotocore clients on the embedded AWS, with listing helpers."""

    lambda_: Any
    elbv2: Any
    apigw: Any

    @classmethod
    @asynccontextmanager
    async def open(cls, endpoint_url: str, region: str) -> AsyncIterator[AwsState]:
        async with AsyncExitStack() as stack:
            clients = [
                # Listing counts against the embedded AWS's quota like any caller: retry 429s.
                await stack.enter_async_context(
                    aws_client(s, endpoint_url, region=region, max_attempts=10)
                )
                for s in ("lambda", "elbv2", "apigatewayv2")
            ]
            yield cls(*clients)

    async def functions(self) -> list[str]:
        answer = await self.lambda_.list_functions()
        return sorted(f["FunctionName"] for f in answer["Functions"])

    async def aliases(self, function: str) -> dict[str, tuple[str, dict[str, float]]]:
        """alias name -> (version, additional version weights)."""
        answer = await self.lambda_.list_aliases(FunctionName=function)
        return {
            a["Name"]: (
                a["FunctionVersion"],
                dict(a.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})),
            )
            for a in answer["Aliases"]
        }

    async def versions(self, function: str) -> list[str]:
        answer = await self.lambda_.list_versions_by_function(FunctionName=function)
        return sorted(v["Version"] for v in answer["Versions"])

    async def mappings(self, source_arn: str) -> list[dict[str, Any]]:
        """Every mapping of ``source_arn``, whatever function it invokes."""
        answer = await self.lambda_.list_event_source_mappings(EventSourceArn=source_arn)
        return list(answer["EventSourceMappings"])

    async def mappings_of(self, function: str) -> list[dict[str, Any]]:
        """The mappings created for ``function`` exactly as named (e.g. ``name:PROD``)."""
        answer = await self.lambda_.list_event_source_mappings(FunctionName=function)
        return list(answer["EventSourceMappings"])

    async def statements(self, function: str, qualifier: str) -> list[dict[str, Any]]:
        """The statements of one qualifier's resource policy ([] when it has none)."""
        try:
            answer = await self.lambda_.get_policy(FunctionName=function, Qualifier=qualifier)
        except self.lambda_.exceptions.ResourceNotFoundException:
            return []
        return list(json.loads(answer["Policy"])["Statement"])

    async def principals(self, function: str, qualifier: str) -> list[str]:
        return sorted(s["Principal"]["Service"] for s in await self.statements(function, qualifier))

    async def targets(self, target_group: str) -> list[str]:
        answer = await self.elbv2.describe_target_health(TargetGroupArn=target_group)
        return sorted(d["Target"]["Id"] for d in answer["TargetHealthDescriptions"])

    async def route_target(self, api_id: str, route_id: str) -> str | None:
        answer = await self.apigw.get_route(ApiId=api_id, RouteId=route_id)
        target: str | None = answer.get("Target")
        return target

    async def integrations(self, api_id: str) -> list[dict[str, Any]]:
        answer = await self.apigw.get_integrations(ApiId=api_id)
        return list(answer["Items"])
