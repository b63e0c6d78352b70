"""Event sources on the alias, through aiobotocore: ``AwsSources`` implements ``SourcesApi``.

The work is split in layers so that the fake and the real adapter share the rules:

- :mod:`engine.sources_plan` decides (pure): which mapping to create, update, adopt or delete;
  which permission statement to keep or add; how each push kind is named and scoped.
- :class:`SourceReconciler` (here) observes, asks the plan, acts and reports ``SourceChange``s,
  against a small :class:`SourcesBackend` of plain calls; each push kind's own wiring is its
  adapter's (:mod:`engine.aws.push_sources`).
- :class:`~engine.aws.sources_backend.AwsBackend` is that backend over aiobotocore clients
  (``AwsSources``, here, runs the reconciler over it); ``engine.testing.sources`` is the same
  backend in memory.

Every backend call raises only ``AwsError`` subclasses; "not there" on a read comes back as an
empty answer, and "already gone" on a removal is success, so detaching twice is harmless.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.aws.lambda_api import CallRetry
from engine.aws.push_sources import PUSH_ADAPTERS, PushCalls
from engine.aws.ratelimit import Pacer
from engine.aws.sources_backend import AwsBackend
from engine.errors import AwsConflict, AwsNotFound
from engine.events.desired import EventSources, PushSource
from engine.ports import Clock, SourceChange, SourceDifference, SourceVerdict
from engine.runtime.clock import SYSTEM_CLOCK
from engine.sources_plan import (
    ENABLED_STATES,
    TRANSITIONAL_STATES,
    ActualMapping,
    CreateMapping,
    DeleteMapping,
    KeepMapping,
    UpdateMapping,
    decide_permission,
    observe_mapping,
    permission_scope,
    plan_detach_mappings,
    plan_mappings,
    plan_push,
    push_kind,
    split_alias_arn,
)


class SourcesBackend(PushCalls, Protocol):
    """The AWS calls the reconciler needs, with botocore's request and response shapes:
    Lambda's (mappings, the alias's resource policy) and every push kind's."""

    async def list_mappings(self, function_name: str) -> list[dict[str, Any]]:
        """ListEventSourceMappings(FunctionName=...), every page."""
        ...

    async def get_mapping(self, uuid: str) -> dict[str, Any] | None:
        """GetEventSourceMapping, or None when there is no such mapping."""
        ...

    async def create_mapping(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """CreateEventSourceMapping with the request as given."""
        ...

    async def update_mapping(self, uuid: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """UpdateEventSourceMapping with only ``changes``."""
        ...

    async def delete_mapping(self, uuid: str) -> None:
        """DeleteEventSourceMapping; one already gone is success."""
        ...

    async def policy(self, function_name: str, qualifier: str) -> list[dict[str, Any]]:
        """The statements of the alias's resource policy ([] when it has none)."""
        ...

    async def add_permission(
        self, function_name: str, qualifier: str, sid: str, principal: str, source_arn: str
    ) -> None:
        """AddPermission: ``principal`` may invoke the alias from ``source_arn``."""
        ...

    async def remove_permission(self, function_name: str, qualifier: str, sid: str) -> None:
        """RemovePermission of statement ``sid``; one already gone is success."""
        ...


class SourceReconciler:
    """``SourcesApi`` over any :class:`SourcesBackend`: observe, plan, act, report.

    ``state_timeout`` bounds each wait for a mapping to leave Creating/Updating/Deleting;
    ``poll_interval`` spaces the polls. ``clock`` (``engine.ports.Clock``) is injectable so
    tests never sleep.
    """

    def __init__(
        self,
        backend: SourcesBackend,
        *,
        region: str,
        account: str,
        poll_interval: float = 2.0,
        state_timeout: float = 300.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._backend = backend
        self._region = region
        self._account = account
        self._poll_interval = poll_interval
        self._state_timeout = state_timeout
        self._clock = clock
        self._push = {kind: adapter(backend) for kind, adapter in PUSH_ADAPTERS.items()}

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
            changes.append(await self._attach_push(function_name, alias_arn, source, before))
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

    async def inspect(
        self, function_name: str, alias_arn: str, desired: EventSources
    ) -> list[SourceDifference]:
        """What ``reconcile(desired, previous=desired)`` would change, read only: the same
        observations and the same plan, nothing done. Mappings glam does not wire are not
        differences (a reconcile leaves them alone), nor is anything it would only adopt."""
        _, _, _, alias = split_alias_arn(alias_arn)
        found: list[SourceDifference] = []
        actual = await self._observe_mappings(function_name, alias_arn) if desired.mappings else []
        by_uuid = {m.uuid: m for m in actual}
        ops = plan_mappings(
            desired.mappings, desired.mappings, actual, function_ref=f"{function_name}:{alias}"
        )
        for op in ops:
            match op:
                case CreateMapping(key=key, request=request):
                    wanted = str(request.get("FunctionName", ""))
                    found.append(SourceDifference("mapping", key, f"mappings[{key}]", wanted, None))
                case UpdateMapping(key=key, uuid=uuid, changes=changes):
                    mapping = by_uuid[uuid]
                    for name, value in sorted(changes.items()):
                        live: Any = mapping.configuration.get(name)
                        if name == "Enabled":
                            live = mapping.state in ENABLED_STATES
                        path = f"mappings[{key}].{name}"
                        found.append(SourceDifference("mapping", uuid, path, value, live))
                case KeepMapping() | DeleteMapping():
                    pass
        for source in desired.push:
            kind = push_kind(source)
            sid, source_arn = permission_scope(source, self._region, self._account)
            statements = await self._backend.policy(function_name, alias)
            if decide_permission(statements, sid, source.service, source_arn).action != "keep":
                wanted = f"{source.service} from {source_arn}"
                path = f"permissions[{sid}]"
                found.append(SourceDifference(kind.kind, kind.id(source), path, wanted, None))
            for part, wanted, live in await self._push[kind.kind].inspect(alias_arn, source):
                path = f"{kind.kind}[{kind.id(source)}].{part}"
                found.append(SourceDifference(kind.kind, kind.id(source), path, wanted, live))
        return found

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
        deadline = self._clock.monotonic() + self._state_timeout
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
            if self._clock.monotonic() >= deadline:
                raise AwsConflict(
                    f"event source mapping {uuid} stayed {current.get('State')} for over "
                    f"{self._state_timeout:.0f}s",
                    operation="GetEventSourceMapping",
                    hint="check the mapping in the Lambda console; glam retries on the next run",
                )
            await self._clock.sleep(self._poll_interval)

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
        self, function_name: str, alias_arn: str, source: PushSource, before: PushSource | None
    ) -> SourceChange:
        _, _, _, alias = split_alias_arn(alias_arn)
        kind = push_kind(source)
        # The permission comes first: ELB refuses to register a Lambda target it may not
        # invoke, and a route must not point at an integration that cannot call the alias.
        perm_changed, sid = await self._ensure_permission(function_name, alias, source)
        wired, details = await self._push[kind.kind].attach(alias_arn, source, before)
        verdict = _verdict(perm_changed or wired, before is not None, before == source)
        return SourceChange(kind.kind, verdict, kind.id(source), {"statement_id": sid, **details})

    async def _detach_push(
        self,
        function_name: str,
        alias_arn: str,
        source: PushSource,
        kept_scopes: frozenset[str],
    ) -> SourceChange:
        _, _, _, alias = split_alias_arn(alias_arn)
        kind = push_kind(source)
        details = await self._push[kind.kind].detach(alias_arn, source)
        if kind.scope(source) not in kept_scopes and await self._drop_permission(
            function_name, alias, source
        ):
            details["permission_removed"] = True
        return SourceChange(kind.kind, "detached", kind.id(source), details)


def _verdict(mutated: bool, known: bool, same_as_before: bool) -> SourceVerdict:
    if mutated:
        return "updated" if known else "attached"
    return "unchanged" if known and same_as_before else "adopted"


class AwsSources(SourceReconciler):
    """``SourcesApi`` for real AWS (or the embedded one), over ready aiobotocore clients by
    botocore service name (``engine.sources_plan.SOURCE_CLIENTS``), each service's calls paced
    on its own limiter in ``limiters``."""

    def __init__(
        self,
        clients: Mapping[str, Any],
        *,
        limiters: Mapping[str, Pacer] | None = None,
        region: str,
        account: str,
        policy: CallRetry | None = None,
        poll_interval: float = 2.0,
        state_timeout: float = 300.0,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        super().__init__(
            AwsBackend(clients, limiters=limiters, policy=policy, clock=clock),
            region=region,
            account=account,
            poll_interval=poll_interval,
            state_timeout=state_timeout,
            clock=clock,
        )
