"""Event sources on the alias, through aiobotocore: ``AwsSources`` implements ``SourcesApi``.

The work is split in three layers so that the fake and the real adapter share the rules:

- :mod:`engine.sources_plan` decides (pure): which mapping to create, update, adopt or delete;
  which permission statement to keep or add.
- :class:`SourceReconciler` (here) observes, asks the plan, acts and reports ``SourceChange``s,
  against a small :class:`SourcesBackend` of plain calls.
- :class:`~engine.aws.sources_backend.AwsBackend` is that backend over aiobotocore's lambda,
  elbv2 and apigatewayv2 clients (``AwsSources``, here, runs the reconciler over it);
  ``engine.aws.fake_sources`` is the same backend in memory.

Every backend call raises only ``AwsError`` subclasses; "not there" on a read comes back as an
empty answer, and "already gone" on a removal is success, so detaching twice is harmless.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import anyio

from engine.aws.lambda_api import RetryPolicy
from engine.aws.ratelimit import RateLimiter
from engine.aws.sources_backend import AwsBackend
from engine.errors import AwsConflict, AwsNotFound
from engine.events.desired import EventSources, PushSource
from engine.ports import SourceChange
from engine.sources_plan import (
    ELB_SERVICE,
    TRANSITIONAL_STATES,
    ActualMapping,
    CreateMapping,
    DeleteMapping,
    KeepMapping,
    UpdateMapping,
    decide_permission,
    integration_uri,
    observe_mapping,
    permission_scope,
    plan_detach_mappings,
    plan_mappings,
    plan_push,
    push_id,
    split_alias_arn,
)

# AwsBackend moved to engine.aws.sources_backend; it is still importable from here.
__all__ = ["AwsBackend", "AwsSources", "SourceReconciler", "SourcesBackend"]

Sleep = Callable[[float], Awaitable[None]]


class SourcesBackend(Protocol):
    """The AWS calls the reconciler needs, with botocore's request and response shapes."""

    async def list_mappings(self, function_name: str) -> list[dict[str, Any]]:
        """ListEventSourceMappings(FunctionName=...), every page."""
        ...

    async def get_mapping(self, uuid: str) -> dict[str, Any] | None: ...

    async def create_mapping(self, request: Mapping[str, Any]) -> dict[str, Any]: ...

    async def update_mapping(self, uuid: str, changes: Mapping[str, Any]) -> dict[str, Any]: ...

    async def delete_mapping(self, uuid: str) -> None: ...

    async def policy(self, function_name: str, qualifier: str) -> list[dict[str, Any]]:
        """The statements of the alias's resource policy ([] when it has none)."""
        ...

    async def add_permission(
        self, function_name: str, qualifier: str, sid: str, principal: str, source_arn: str
    ) -> None: ...

    async def remove_permission(self, function_name: str, qualifier: str, sid: str) -> None: ...

    async def target_ids(self, target_group_arn: str) -> list[str]: ...

    async def register_target(self, target_group_arn: str, target_id: str) -> None: ...

    async def deregister_target(self, target_group_arn: str, target_id: str) -> None: ...

    async def integrations(self, api_id: str) -> list[dict[str, Any]]: ...

    async def create_integration(self, api_id: str, uri: str) -> dict[str, Any]: ...

    async def delete_integration(self, api_id: str, integration_id: str) -> None: ...

    async def routes(self, api_id: str) -> list[dict[str, Any]]: ...

    async def get_route(self, api_id: str, route_id: str) -> dict[str, Any]: ...

    async def set_route_target(self, api_id: str, route_id: str, target: str) -> None: ...


class SourceReconciler:
    """``SourcesApi`` over any :class:`SourcesBackend`: observe, plan, act, report.

    ``state_timeout`` bounds each wait for a mapping to leave Creating/Updating/Deleting;
    ``poll_interval`` spaces the polls. ``sleep`` and ``monotonic`` are injectable so tests
    never sleep.
    """

    def __init__(
        self,
        backend: SourcesBackend,
        *,
        region: str,
        account: str,
        poll_interval: float = 2.0,
        state_timeout: float = 300.0,
        sleep: Sleep = anyio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._region = region
        self._account = account
        self._poll_interval = poll_interval
        self._state_timeout = state_timeout
        self._sleep = sleep
        self._monotonic = monotonic

    # -- SourcesApi ---------------------------------------------------------------------------

    async def reconcile(
        self,
        function_name: str,
        alias_arn: str,
        desired: EventSources,
        previous: EventSources | None = None,
    ) -> list[SourceChange]:
        """Make AWS match ``desired`` on the alias; detach what only ``previous`` had."""
        _, _, _, alias = split_alias_arn(alias_arn)
        # With no mapping desired and none wired before, the plan is empty whatever AWS has
        # (glam only removes mappings it knew of), so skip the four list calls: they were most
        # of the control-plane budget of a commit with many source-less functions.
        wanted = bool(desired.mappings) or bool(previous and previous.mappings)
        actual = await self._observe_mappings(function_name, alias_arn) if wanted else []
        ops = plan_mappings(
            desired.mappings,
            previous.mappings if previous else (),
            actual,
            function_ref=f"{function_name}:{alias}",
        )
        changes: list[SourceChange] = []
        by_uuid = {m.uuid: m for m in actual}
        for op in ops:
            changes.append(await self._apply_mapping(op, by_uuid))

        plan = plan_push(desired, previous)
        for source, before in plan.attach:
            changes.append(
                await self._attach_push(function_name, alias_arn, source, before, previous)
            )
        for source in plan.detach:
            changes.append(
                await self._detach_push(function_name, alias_arn, source, plan.kept_scopes)
            )
        return changes

    async def detach_all(
        self, function_name: str, alias_arn: str, previous: EventSources
    ) -> list[SourceChange]:
        """Remove every mapping on the alias and every push source ``previous`` wired."""
        actual = await self._observe_mappings(function_name, alias_arn)
        changes: list[SourceChange] = []
        by_uuid = {m.uuid: m for m in actual}
        for op in plan_detach_mappings(previous.mappings, actual):
            changes.append(await self._apply_mapping(op, by_uuid))
        for source in previous.push:
            changes.append(await self._detach_push(function_name, alias_arn, source, frozenset()))
        return changes

    # -- pull mappings ------------------------------------------------------------------------

    async def _observe_mappings(self, function_name: str, alias_arn: str) -> list[ActualMapping]:
        _, _, _, alias = split_alias_arn(alias_arn)
        unqualified_arn = alias_arn.rsplit(":", 1)[0]
        seen: dict[str, ActualMapping] = {}
        # AWS matches FunctionName in several forms and emulators match it literally, so ask
        # for each form a mapping may have been created with; the alias forms first, so that
        # a mapping found both ways counts as on the alias.
        forms = (
            (f"{function_name}:{alias}", True),
            (alias_arn, True),
            (function_name, False),
            (unqualified_arn, False),
        )
        for form, under_alias in forms:
            for item in await self._backend.list_mappings(form):
                uuid = str(item["UUID"])
                if uuid in seen:
                    continue
                seen[uuid] = observe_mapping(
                    item, alias_arn=alias_arn, listed_under_alias=under_alias
                )
        return list(seen.values())

    async def _settle(self, uuid: str, *, gone_ok: bool) -> dict[str, Any] | None:
        """Wait until the mapping leaves a transitional state (or is gone); bounded."""
        deadline = self._monotonic() + self._state_timeout
        while True:
            current = await self._backend.get_mapping(uuid)
            if current is None:
                if gone_ok:
                    return None
                raise AwsNotFound(
                    f"event source mapping {uuid} disappeared while glam was changing it",
                    operation="GetEventSourceMapping",
                    hint="someone else deleted it; run glam again to recreate it",
                )
            if str(current.get("State", "")) not in TRANSITIONAL_STATES:
                return current
            if self._monotonic() >= deadline:
                raise AwsConflict(
                    f"event source mapping {uuid} stayed {current.get('State')} for over "
                    f"{self._state_timeout:.0f}s",
                    operation="GetEventSourceMapping",
                    hint="check the mapping in the Lambda console; glam retries on the next run",
                )
            await self._sleep(self._poll_interval)

    async def _apply_mapping(
        self,
        op: CreateMapping | UpdateMapping | KeepMapping | DeleteMapping,
        by_uuid: Mapping[str, ActualMapping],
    ) -> SourceChange:
        details: dict[str, Any] = {"event_source": op.key}
        match op:
            case CreateMapping(request=request):
                created = await self._backend.create_mapping(request)
                uuid = str(created["UUID"])
                settled = await self._settle(uuid, gone_ok=False)
                details["function"] = str(request.get("FunctionName", ""))
                details["state"] = str((settled or created).get("State", ""))
                return SourceChange("mapping", "attached", uuid, details)
            case UpdateMapping(uuid=uuid, changes=changes, ignored=ignored):
                await self._settle(uuid, gone_ok=False)
                await self._backend.update_mapping(uuid, changes)
                settled = await self._settle(uuid, gone_ok=False)
                details["changed"] = sorted(changes)
                details["state"] = str((settled or {}).get("State", ""))
                if ignored:
                    details["create_only_differs"] = list(ignored)
                return SourceChange("mapping", "updated", uuid, details)
            case KeepMapping(uuid=uuid, change=change, ignored=ignored):
                if ignored:
                    details["create_only_differs"] = list(ignored)
                return SourceChange("mapping", change, uuid, details)
            case DeleteMapping(uuid=uuid):
                if by_uuid.get(uuid) and by_uuid[uuid].state in TRANSITIONAL_STATES:
                    await self._settle(uuid, gone_ok=True)
                await self._backend.delete_mapping(uuid)
                # Wait the deletion out: a create for the same source right after would
                # otherwise conflict with the mapping still being deleted.
                await self._settle(uuid, gone_ok=True)
                return SourceChange("mapping", "detached", uuid, details)

    # -- permissions --------------------------------------------------------------------------

    async def _ensure_permission(
        self, function_name: str, alias: str, source: PushSource
    ) -> tuple[bool, str]:
        """Make sure the alias grants ``source``; ``(changed, statement id)``."""
        sid, source_arn = permission_scope(source, self._region, self._account)
        statements = await self._backend.policy(function_name, alias)
        decision = decide_permission(statements, sid, source.service, source_arn)
        if decision.action == "keep":
            return False, decision.statement_id
        if decision.action == "replace":
            await self._backend.remove_permission(function_name, alias, sid)
        await self._backend.add_permission(function_name, alias, sid, source.service, source_arn)
        return True, sid

    async def _drop_permission(self, function_name: str, alias: str, source: PushSource) -> bool:
        sid, _ = permission_scope(source, self._region, self._account)
        statements = await self._backend.policy(function_name, alias)
        if not any(s.get("Sid") == sid for s in statements):
            return False
        await self._backend.remove_permission(function_name, alias, sid)
        return True

    # -- push sources -------------------------------------------------------------------------

    async def _attach_push(
        self,
        function_name: str,
        alias_arn: str,
        source: PushSource,
        before: PushSource | None,
        previous: EventSources | None,
    ) -> SourceChange:
        _, _, _, alias = split_alias_arn(alias_arn)
        known = before is not None
        # The permission comes first: ELB refuses to register a Lambda target it may not
        # invoke, and a route must not point at an integration that cannot call the alias.
        perm_changed, sid = await self._ensure_permission(function_name, alias, source)
        details: dict[str, Any] = {"statement_id": sid}
        if source.service == ELB_SERVICE:
            tg = source.target_group_arn or ""
            registered = alias_arn in await self._backend.target_ids(tg)
            if not registered:
                await self._backend.register_target(tg, alias_arn)
            details["target"] = alias_arn
            mutated = perm_changed or not registered
            return SourceChange("elb", _verdict(mutated, known, before == source), tg, details)

        api, route = source.api_id or "", source.route_id or ""
        uri = integration_uri(alias_arn, source.stage_variable)
        integration_id, created = await self._ensure_integration(api, uri)
        target = f"integrations/{integration_id}"
        current = await self._backend.get_route(api, route)
        retargeted = current.get("Target") != target
        if retargeted:
            await self._backend.set_route_target(api, route, target)
        details.update({"integration_id": integration_id, "integration_uri": uri})
        if before is not None and before != source:
            old_uri = integration_uri(alias_arn, before.stage_variable)
            if old_uri != uri:
                await self._drop_integration(api, old_uri)
        mutated = perm_changed or created or retargeted
        return SourceChange(
            "apigateway", _verdict(mutated, known, before == source), push_id(source), details
        )

    async def _ensure_integration(self, api: str, uri: str) -> tuple[str, bool]:
        for item in await self._backend.integrations(api):
            if item.get("IntegrationType") == "AWS_PROXY" and item.get("IntegrationUri") == uri:
                return str(item["IntegrationId"]), False
        created = await self._backend.create_integration(api, uri)
        return str(created["IntegrationId"]), True

    async def _drop_integration(self, api: str, uri: str, route: str | None = None) -> str | None:
        """Delete glam's integration for ``uri`` unless a route still targets it; clear
        ``route``'s target first when it points there. Returns the deleted integration id."""
        ours = [
            str(i["IntegrationId"])
            for i in await self._backend.integrations(api)
            if i.get("IntegrationType") == "AWS_PROXY" and i.get("IntegrationUri") == uri
        ]
        deleted = None
        for integration_id in ours:
            target = f"integrations/{integration_id}"
            if route is not None:
                current = await self._backend.get_route(api, route)
                if current.get("Target") == target:
                    await self._backend.set_route_target(api, route, "")
            # An integration another route still uses is that route's, not garbage. The
            # route just cleared is skipped: some emulators keep an emptied target.
            if any(
                r.get("Target") == target and r.get("RouteId") != route
                for r in await self._backend.routes(api)
            ):
                continue
            await self._backend.delete_integration(api, integration_id)
            deleted = integration_id
        return deleted

    async def _detach_push(
        self,
        function_name: str,
        alias_arn: str,
        source: PushSource,
        kept_scopes: frozenset[str],
    ) -> SourceChange:
        _, _, _, alias = split_alias_arn(alias_arn)
        details: dict[str, Any] = {}
        if source.service == ELB_SERVICE:
            tg = source.target_group_arn or ""
            if alias_arn in await self._backend.target_ids(tg):
                await self._backend.deregister_target(tg, alias_arn)
                details["deregistered"] = alias_arn
            if tg not in kept_scopes and await self._drop_permission(function_name, alias, source):
                details["permission_removed"] = True
            return SourceChange("elb", "detached", tg, details)

        api, route = source.api_id or "", source.route_id or ""
        uri = integration_uri(alias_arn, source.stage_variable)
        deleted = await self._drop_integration(api, uri, route)
        if deleted:
            details["integration_deleted"] = deleted
        if api not in kept_scopes and await self._drop_permission(function_name, alias, source):
            details["permission_removed"] = True
        return SourceChange("apigateway", "detached", push_id(source), details)


def _verdict(mutated: bool, known: bool, same_as_before: bool) -> str:
    if mutated:
        return "updated" if known else "attached"
    return "unchanged" if known and same_as_before else "adopted"


class AwsSources(SourceReconciler):
    """``SourcesApi`` for real AWS (or the embedded one), over ready aiobotocore clients."""

    def __init__(
        self,
        lambda_client: Any,
        elbv2_client: Any,
        apigw_client: Any,
        *,
        limiter: RateLimiter | None = None,
        elb_limiter: RateLimiter | None = None,
        apigw_limiter: RateLimiter | None = None,
        region: str,
        account: str,
        policy: RetryPolicy | None = None,
        poll_interval: float = 2.0,
        state_timeout: float = 300.0,
        sleep: Sleep = anyio.sleep,
    ) -> None:
        super().__init__(
            AwsBackend(
                lambda_client,
                elbv2_client,
                apigw_client,
                limiter=limiter,
                elb_limiter=elb_limiter,
                apigw_limiter=apigw_limiter,
                policy=policy,
                sleep=sleep,
            ),
            region=region,
            account=account,
            poll_interval=poll_interval,
            state_timeout=state_timeout,
            sleep=sleep,
        )
