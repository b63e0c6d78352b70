"""The AWS side of each push kind: wire an alias to a source, and unwire it.

:class:`~engine.aws.sources.SourceReconciler` handles what every push kind shares (the invoke
permission, the verdict, the ``SourceChange``) and hands the rest to the kind's adapter in
:data:`PUSH_ADAPTERS`, keyed like ``engine.sources_plan.PUSH_KINDS``. An adapter makes only the
calls of its own small Protocol, which the real backend (engine.aws.sources_backend) and the
in-memory one (engine.testing.sources) both implement.

A new push kind: its ``PushKind`` entry, its calls Protocol (added to :class:`PushCalls`), an
adapter here, and those calls in both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from engine.events.desired import PushSource, SourceKind
from engine.sources_plan import integration_uri


class TargetGroupCalls(Protocol):
    """ELB's calls on a target group of Lambda targets."""

    async def target_ids(self, target_group_arn: str) -> list[str]:
        """The ids (function ARNs) registered in the group, leaving ones not counted."""
        ...

    async def register_target(self, target_group_arn: str, target_id: str) -> None:
        """RegisterTargets with one target."""
        ...

    async def deregister_target(self, target_group_arn: str, target_id: str) -> None:
        """DeregisterTargets with one target; one already gone is success."""
        ...


class RouteCalls(Protocol):
    """API Gateway v2's calls on an API's integrations and routes."""

    async def integrations(self, api_id: str) -> list[dict[str, Any]]:
        """GetIntegrations, every page."""
        ...

    async def create_integration(self, api_id: str, uri: str) -> dict[str, Any]:
        """CreateIntegration: an AWS_PROXY integration (payload 2.0) invoking ``uri``."""
        ...

    async def delete_integration(self, api_id: str, integration_id: str) -> None:
        """DeleteIntegration; one already gone is success."""
        ...

    async def routes(self, api_id: str) -> list[dict[str, Any]]:
        """GetRoutes, every page."""
        ...

    async def get_route(self, api_id: str, route_id: str) -> dict[str, Any]:
        """GetRoute."""
        ...

    async def set_route_target(self, api_id: str, route_id: str, target: str) -> None:
        """UpdateRoute's Target (``""`` clears it)."""
        ...


class PushCalls(TargetGroupCalls, RouteCalls, Protocol):
    """The calls of every push kind: what a sources backend offers besides Lambda's."""


# One thing an attach would change: (the part of the source, what glam wires, what AWS has).
Drift = tuple[str, Any, Any]


class PushAdapter(Protocol):
    """One push kind in AWS. The reconciler has already granted the alias's invoke permission
    before ``attach`` and removes it after ``detach`` when no other source still needs it."""

    async def attach(
        self, alias_arn: str, source: PushSource, before: PushSource | None
    ) -> tuple[bool, dict[str, Any]]:
        """Wire the alias to ``source`` (``before``: what had its id until now):
        whether anything changed, and details for the event."""
        ...

    async def detach(self, alias_arn: str, source: PushSource) -> dict[str, Any]:
        """Unwire the alias from ``source``; details for the event (empty: nothing to do)."""
        ...

    async def inspect(self, alias_arn: str, source: PushSource) -> list[Drift]:
        """Read only: what ``attach`` would change, as ``(part, desired, live)``."""
        ...


class TargetGroups:
    """ALB target groups: the alias registered as a Lambda target of the group."""

    def __init__(self, calls: TargetGroupCalls) -> None:
        self._calls = calls

    async def attach(
        self, alias_arn: str, source: PushSource, before: PushSource | None
    ) -> tuple[bool, dict[str, Any]]:
        group = source.target_group_arn or ""
        registered = alias_arn in await self._calls.target_ids(group)
        if not registered:
            await self._calls.register_target(group, alias_arn)
        return not registered, {"target": alias_arn}

    async def inspect(self, alias_arn: str, source: PushSource) -> list[Drift]:
        if alias_arn in await self._calls.target_ids(source.target_group_arn or ""):
            return []
        return [("target", alias_arn, None)]

    async def detach(self, alias_arn: str, source: PushSource) -> dict[str, Any]:
        group = source.target_group_arn or ""
        if alias_arn not in await self._calls.target_ids(group):
            return {}
        await self._calls.deregister_target(group, alias_arn)
        return {"deregistered": alias_arn}


class ApiRoutes:
    """API Gateway v2 routes: the route targets an AWS_PROXY integration invoking the alias
    (or the function qualified by the stage variable the source names)."""

    def __init__(self, calls: RouteCalls) -> None:
        self._calls = calls

    async def attach(
        self, alias_arn: str, source: PushSource, before: PushSource | None
    ) -> tuple[bool, dict[str, Any]]:
        api, route = source.api_id or "", source.route_id or ""
        uri = integration_uri(alias_arn, source.stage_variable)
        integration_id, created = await self._ensure_integration(api, uri)
        target = f"integrations/{integration_id}"
        current = await self._calls.get_route(api, route)
        retargeted = current.get("Target") != target
        if retargeted:
            await self._calls.set_route_target(api, route, target)
        # The route is rewired first and the old integration removed after, so the route
        # always has a target.
        if before is not None and before != source:
            old_uri = integration_uri(alias_arn, before.stage_variable)
            if old_uri != uri:
                await self._drop_integration(api, old_uri)
        return created or retargeted, {"integration_id": integration_id, "integration_uri": uri}

    async def inspect(self, alias_arn: str, source: PushSource) -> list[Drift]:
        api, route = source.api_id or "", source.route_id or ""
        uri = integration_uri(alias_arn, source.stage_variable)
        ours = [
            str(i["IntegrationId"])
            for i in await self._calls.integrations(api)
            if i.get("IntegrationType") == "AWS_PROXY" and i.get("IntegrationUri") == uri
        ]
        if not ours:
            return [("integration", uri, None)]
        target = (await self._calls.get_route(api, route)).get("Target") or None
        if target not in {f"integrations/{i}" for i in ours}:
            return [("target", f"integrations/{ours[0]}", target)]
        return []

    async def detach(self, alias_arn: str, source: PushSource) -> dict[str, Any]:
        api, route = source.api_id or "", source.route_id or ""
        uri = integration_uri(alias_arn, source.stage_variable)
        deleted = await self._drop_integration(api, uri, route)
        return {"integration_deleted": deleted} if deleted else {}

    async def _ensure_integration(self, api: str, uri: str) -> tuple[str, bool]:
        for item in await self._calls.integrations(api):
            if item.get("IntegrationType") == "AWS_PROXY" and item.get("IntegrationUri") == uri:
                return str(item["IntegrationId"]), False
        created = await self._calls.create_integration(api, uri)
        return str(created["IntegrationId"]), True

    async def _drop_integration(self, api: str, uri: str, route: str | None = None) -> str | None:
        """Delete glam's integration for ``uri`` unless a route still targets it; clear
        ``route``'s target first when it points there. Returns the deleted integration id."""
        ours = [
            str(i["IntegrationId"])
            for i in await self._calls.integrations(api)
            if i.get("IntegrationType") == "AWS_PROXY" and i.get("IntegrationUri") == uri
        ]
        deleted = None
        for integration_id in ours:
            target = f"integrations/{integration_id}"
            if route is not None:
                current = await self._calls.get_route(api, route)
                if current.get("Target") == target:
                    await self._calls.set_route_target(api, route, "")
            # An integration another route still uses is that route's, not garbage. The
            # route just cleared is skipped: some emulators keep an emptied target.
            if any(
                r.get("Target") == target and r.get("RouteId") != route
                for r in await self._calls.routes(api)
            ):
                continue
            await self._calls.delete_integration(api, integration_id)
            deleted = integration_id
        return deleted


# Each push kind's adapter, made over the backend's calls.
PUSH_ADAPTERS: dict[SourceKind, Callable[[PushCalls], PushAdapter]] = {
    "elb": TargetGroups,
    "apigateway": ApiRoutes,
}
