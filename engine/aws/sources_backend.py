"""The event-source calls of :class:`engine.aws.sources.SourcesBackend` over aiobotocore.

``AwsBackend`` paces each service's calls on its own limiter, translates every failure into the
``AwsError`` tree (engine.aws.errors), retries only what is safe to repeat, and makes "not
there" on a read an empty answer and "already gone" on a removal a success.
``engine.aws.sources.AwsSources`` runs the shared ``SourceReconciler`` over it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

from engine.aws.errors import translate
from engine.aws.lambda_api import CallRetry
from engine.aws.ratelimit import Pacer
from engine.errors import AwsAmbiguous, AwsError, AwsNotFound, AwsThrottled
from engine.ports import Clock
from engine.runtime.clock import SYSTEM_CLOCK
from engine.sources_plan import INVOKE_ACTION, policy_statements

# Codes that mean "it is already gone" on a removal.
_GONE_CODES = frozenset(
    {"ResourceNotFoundException", "NotFoundException", "InvalidTarget", "TargetGroupNotFound"}
)


class AwsBackend:
    """:class:`SourcesBackend` over ready aiobotocore clients, by botocore service name
    (``engine.sources_plan.SOURCE_CLIENTS``: "lambda" and each push kind's).

    Each service's calls are paced by that service's limiter in ``limiters``: Lambda's shared
    control-plane limiter for mappings and permissions, and ELB's and API Gateway's own, which
    have quotas of their own. A service with no limiter is not paced (its throttling is still
    retried with backoff).
    """

    def __init__(
        self,
        clients: Mapping[str, Any],
        *,
        limiters: Mapping[str, Pacer] | None = None,
        policy: CallRetry | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._clients = dict(clients)
        self._limiters = dict(limiters or {})
        self._policy = policy or CallRetry()
        self._clock = clock
        self._rng = random.Random()

    async def _call(
        self, service: str, operation: str, *, mutating: bool, **params: Any
    ) -> dict[str, Any]:
        """Call paced (on ``service``'s limiter) and translated; repeat only what is safe.

        Throttling and a failure before the request was sent are retried with jittered
        backoff (``CallRetry``). An ambiguous mutation is not: the reconciler reads before
        it acts, so the caller's next run finds out what happened instead of guessing.
        """
        method = getattr(self._clients[service], _snake(operation))
        limiter = self._limiters.get(service)
        retries = 0
        while True:
            async with limiter.call() if limiter is not None else nullcontext():
                try:
                    answer = await method(**params)
                except Exception as exc:  # every failure is translated
                    error = translate(exc, operation, mutating=mutating)
                else:
                    answer.pop("ResponseMetadata", None)
                    return dict(answer)
            retries += 1
            if isinstance(error, AwsAmbiguous) or not error.retryable:
                raise error from None
            if retries >= self._policy.attempts:
                raise error from None
            # A Retry-After holds back this service's callers only: it is its quota.
            if isinstance(error, AwsThrottled) and limiter is not None:
                limiter.throttled(error.retry_after)
            await self._clock.sleep(self._policy.delay(retries, self._rng))

    async def _removal(self, service: str, operation: str, **params: Any) -> None:
        """A removal whose "not found" means the job is already done."""
        try:
            await self._call(service, operation, mutating=True, **params)
        except AwsNotFound:
            return
        except AwsError as exc:
            if exc.code in _GONE_CODES:
                return
            raise

    # -- lambda -------------------------------------------------------------------------------

    async def list_mappings(self, function_name: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            params: dict[str, Any] = {"FunctionName": function_name}
            if marker:
                params["Marker"] = marker
            try:
                page = await self._call(
                    "lambda", "ListEventSourceMappings", mutating=False, **params
                )
            except AwsNotFound:
                return items
            items.extend(page.get("EventSourceMappings", []))
            marker = page.get("NextMarker")
            if not marker:
                return items

    async def get_mapping(self, uuid: str) -> dict[str, Any] | None:
        try:
            return await self._call("lambda", "GetEventSourceMapping", mutating=False, UUID=uuid)
        except AwsNotFound:
            return None

    async def create_mapping(self, request: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call(
            "lambda", "CreateEventSourceMapping", mutating=True, **dict(request)
        )

    async def update_mapping(self, uuid: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        return await self._call(
            "lambda", "UpdateEventSourceMapping", mutating=True, UUID=uuid, **dict(changes)
        )

    async def delete_mapping(self, uuid: str) -> None:
        await self._removal("lambda", "DeleteEventSourceMapping", UUID=uuid)

    async def policy(self, function_name: str, qualifier: str) -> list[dict[str, Any]]:
        try:
            answer = await self._call(
                "lambda",
                "GetPolicy",
                mutating=False,
                FunctionName=function_name,
                Qualifier=qualifier,
            )
        except AwsNotFound:
            return []
        return policy_statements(answer.get("Policy"))

    async def add_permission(
        self, function_name: str, qualifier: str, sid: str, principal: str, source_arn: str
    ) -> None:
        await self._call(
            "lambda",
            "AddPermission",
            mutating=True,
            FunctionName=function_name,
            Qualifier=qualifier,
            StatementId=sid,
            Action=INVOKE_ACTION,
            Principal=principal,
            SourceArn=source_arn,
        )

    async def remove_permission(self, function_name: str, qualifier: str, sid: str) -> None:
        await self._removal(
            "lambda",
            "RemovePermission",
            FunctionName=function_name,
            Qualifier=qualifier,
            StatementId=sid,
        )
        if any(s.get("Sid") == sid for s in await self.policy(function_name, qualifier)):
            # Some emulators drop the Qualifier of RemovePermission and look in the
            # unqualified function's policy; the qualified name form reaches the alias there
            # and is equally valid on AWS.
            await self._removal(
                "lambda",
                "RemovePermission",
                FunctionName=f"{function_name}:{qualifier}",
                StatementId=sid,
            )

    # -- elbv2 --------------------------------------------------------------------------------

    async def target_ids(self, target_group_arn: str) -> list[str]:
        answer = await self._call(
            "elbv2", "DescribeTargetHealth", mutating=False, TargetGroupArn=target_group_arn
        )
        ids: list[str] = []
        for item in answer.get("TargetHealthDescriptions", []):
            reason = (item.get("TargetHealth") or {}).get("Reason")
            # A target on its way out is no longer glam's registration.
            if reason in ("Target.NotRegistered", "Target.DeregistrationInProgress"):
                continue
            ids.append(str(item["Target"]["Id"]))
        return ids

    async def register_target(self, target_group_arn: str, target_id: str) -> None:
        await self._call(
            "elbv2",
            "RegisterTargets",
            mutating=True,
            TargetGroupArn=target_group_arn,
            Targets=[{"Id": target_id}],
        )

    async def deregister_target(self, target_group_arn: str, target_id: str) -> None:
        await self._removal(
            "elbv2",
            "DeregisterTargets",
            TargetGroupArn=target_group_arn,
            Targets=[{"Id": target_id}],
        )

    # -- apigatewayv2 -------------------------------------------------------------------------

    async def _pages(self, operation: str, api_id: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"ApiId": api_id}
            if token:
                params["NextToken"] = token
            page = await self._call("apigatewayv2", operation, mutating=False, **params)
            items.extend(page.get("Items", []))
            token = page.get("NextToken")
            if not token:
                return items

    async def integrations(self, api_id: str) -> list[dict[str, Any]]:
        return await self._pages("GetIntegrations", api_id)

    async def create_integration(self, api_id: str, uri: str) -> dict[str, Any]:
        return await self._call(
            "apigatewayv2",
            "CreateIntegration",
            mutating=True,
            ApiId=api_id,
            IntegrationType="AWS_PROXY",
            IntegrationMethod="POST",
            IntegrationUri=uri,
            PayloadFormatVersion="2.0",
        )

    async def delete_integration(self, api_id: str, integration_id: str) -> None:
        await self._removal(
            "apigatewayv2", "DeleteIntegration", ApiId=api_id, IntegrationId=integration_id
        )

    async def routes(self, api_id: str) -> list[dict[str, Any]]:
        return await self._pages("GetRoutes", api_id)

    async def get_route(self, api_id: str, route_id: str) -> dict[str, Any]:
        return await self._call(
            "apigatewayv2", "GetRoute", mutating=False, ApiId=api_id, RouteId=route_id
        )

    async def set_route_target(self, api_id: str, route_id: str, target: str) -> None:
        await self._call(
            "apigatewayv2",
            "UpdateRoute",
            mutating=True,
            ApiId=api_id,
            RouteId=route_id,
            Target=target,
        )


def _snake(operation: str) -> str:
    out = []
    for i, ch in enumerate(operation):
        if ch.isupper() and i:
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
