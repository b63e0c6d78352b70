"""An in-memory ``SourcesApi``: the real reconciler over an in-memory AWS of event sources.

``FakeSources`` runs the same :class:`engine.aws.sources.SourceReconciler` as ``AwsSources``; only
the backend differs. :class:`MemorySourcesBackend` keeps what AWS would keep (mappings, alias
resource policies, target registrations, API integrations and routes) and refuses what AWS
refuses (a second mapping of one source on one qualified function, a duplicate statement id,
a target group or API that does not exist when ``strict``), so tests of other parts can assert
on it directly:

    sources = FakeSources(region="us-east-1", account="123456789012")
    await sources.reconcile("orders", alias_arn, desired)
    assert sources.aws.mappings_on("orders", "PROD")
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from copy import deepcopy
from typing import Any

from engine.aws.sources import SourceReconciler
from engine.errors import AwsConflict, AwsInvalid, AwsNotFound
from engine.sources_plan import mapping_key
from engine.testing.clock import ManualClock


def _qualified(function_ref: str, region: str, account: str) -> str:
    """The full ARN a FunctionName means: name, name:qualifier, partial or full ARN."""
    if function_ref.startswith("arn:"):
        return function_ref
    if ":function:" in function_ref:  # partial ARN: account:function:name[:q]
        return f"arn:aws:lambda:{region}:{function_ref}"
    return f"arn:aws:lambda:{region}:{account}:function:{function_ref}"


class MemorySourcesBackend:
    """The AWS state behind event sources, in memory (see the module docstring).

    ``settle_polls``: how many GetEventSourceMapping calls a new or updated mapping reports a
    transitional state before it settles (0: at once), to exercise the reconciler's waits.
    ``strict``: target groups and APIs must be declared with :meth:`add_target_group` and
    :meth:`add_api` first; otherwise they spring into existence on first use.
    """

    def __init__(
        self, *, region: str, account: str, settle_polls: int = 0, strict: bool = False
    ) -> None:
        self.region = region
        self.account = account
        self.settle_polls = settle_polls
        self.strict = strict
        self.mappings: dict[str, dict[str, Any]] = {}
        self.policies: dict[str, list[dict[str, Any]]] = {}  # by qualified function ARN
        self.targets: dict[str, list[str]] = {}  # by target group ARN
        self.apis: dict[str, dict[str, Any]] = {}  # api id -> {"integrations", "routes"}
        self.calls: list[str] = []  # mutating calls, in order, for assertions
        self._pending: dict[str, int] = {}
        self._ids = itertools.count(1)

    # -- setup and inspection -----------------------------------------------------------------

    def add_target_group(self, arn: str) -> None:
        self.targets.setdefault(arn, [])

    def add_api(self, api_id: str, route_ids: tuple[str, ...] = ()) -> None:
        api = self.apis.setdefault(api_id, {"integrations": {}, "routes": {}})
        for route in route_ids:
            api["routes"].setdefault(route, {"RouteId": route})

    def mappings_on(self, function_name: str, qualifier: str | None) -> list[dict[str, Any]]:
        """Mappings whose FunctionArn is ``function_name`` with ``qualifier`` (None: bare)."""
        arn = _qualified(function_name, self.region, self.account)
        if qualifier:
            arn = f"{arn}:{qualifier}"
        return [deepcopy(m) for m in self.mappings.values() if m["FunctionArn"] == arn]

    def statements(self, function_name: str, qualifier: str) -> list[dict[str, Any]]:
        arn = _qualified(f"{function_name}:{qualifier}", self.region, self.account)
        return deepcopy(self.policies.get(arn, []))

    # -- internals ----------------------------------------------------------------------------

    def _target_group(self, arn: str) -> list[str]:
        if arn not in self.targets:
            if self.strict:
                raise AwsNotFound(f"target group {arn} not found", code="TargetGroupNotFound")
            self.targets[arn] = []
        return self.targets[arn]

    def _api(self, api_id: str) -> dict[str, Any]:
        if api_id not in self.apis:
            if self.strict:
                raise AwsNotFound(f"API {api_id} not found", code="NotFoundException")
            self.add_api(api_id)
        return self.apis[api_id]

    def _route(self, api_id: str, route_id: str) -> dict[str, Any]:
        routes: dict[str, dict[str, Any]] = self._api(api_id)["routes"]
        if route_id not in routes:
            if self.strict:
                raise AwsNotFound(f"route {route_id} not found", code="NotFoundException")
            routes[route_id] = {"RouteId": route_id}
        return routes[route_id]

    def _view(self, mapping: dict[str, Any], *, poll: bool) -> dict[str, Any]:
        uuid = mapping["UUID"]
        left = self._pending.get(uuid, 0)
        if left and poll:
            self._pending[uuid] = left - 1
        view = deepcopy(mapping)
        if left:
            view["State"] = mapping["_transition"]
        view.pop("_transition", None)
        return view

    # -- SourcesBackend: lambda ---------------------------------------------------------------

    async def list_mappings(self, function_name: str) -> list[dict[str, Any]]:
        arn = _qualified(function_name, self.region, self.account)
        return [
            self._view(m, poll=False) for m in self.mappings.values() if m["FunctionArn"] == arn
        ]

    async def get_mapping(self, uuid: str) -> dict[str, Any] | None:
        mapping = self.mappings.get(uuid)
        return None if mapping is None else self._view(mapping, poll=True)

    async def create_mapping(self, request: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("CreateEventSourceMapping")
        function_arn = _qualified(str(request["FunctionName"]), self.region, self.account)
        key = mapping_key(request)
        for other in self.mappings.values():
            if other["FunctionArn"] == function_arn and mapping_key(other) == key:
                raise AwsConflict(
                    f"the event source mapping {other['UUID']} already exists",
                    code="ResourceConflictException",
                    retryable=False,
                )
        uuid = f"00000000-0000-4000-8000-{next(self._ids):012d}"
        mapping = {
            k: deepcopy(v) for k, v in request.items() if k not in ("FunctionName", "Enabled")
        }
        enabled = request.get("Enabled", True)
        mapping.update(
            UUID=uuid,
            FunctionArn=function_arn,
            State="Enabled" if enabled else "Disabled",
            _transition="Creating",
        )
        self.mappings[uuid] = mapping
        self._pending[uuid] = self.settle_polls
        return self._view(mapping, poll=False)

    async def update_mapping(self, uuid: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        self.calls.append("UpdateEventSourceMapping")
        mapping = self.mappings.get(uuid)
        if mapping is None:
            raise AwsNotFound(f"event source mapping {uuid} not found")
        if self._pending.get(uuid):
            raise AwsConflict(f"event source mapping {uuid} is {mapping['_transition']}")
        for name, value in changes.items():
            if name == "Enabled":
                mapping["State"] = "Enabled" if value else "Disabled"
            elif name == "FunctionName":
                mapping["FunctionArn"] = _qualified(str(value), self.region, self.account)
            else:
                mapping[name] = deepcopy(value)
        mapping["_transition"] = "Updating"
        self._pending[uuid] = self.settle_polls
        return self._view(mapping, poll=False)

    async def delete_mapping(self, uuid: str) -> None:
        self.calls.append("DeleteEventSourceMapping")
        if self._pending.get(uuid):
            raise AwsConflict(f"event source mapping {uuid} is changing")
        self.mappings.pop(uuid, None)
        self._pending.pop(uuid, None)

    async def policy(self, function_name: str, qualifier: str) -> list[dict[str, Any]]:
        return self.statements(function_name, qualifier)

    async def add_permission(
        self, function_name: str, qualifier: str, sid: str, principal: str, source_arn: str
    ) -> None:
        self.calls.append("AddPermission")
        arn = _qualified(f"{function_name}:{qualifier}", self.region, self.account)
        statements = self.policies.setdefault(arn, [])
        if any(s["Sid"] == sid for s in statements):
            raise AwsConflict(
                f"the statement id {sid} already exists",
                code="ResourceConflictException",
                retryable=False,
            )
        statements.append(
            {
                "Sid": sid,
                "Effect": "Allow",
                "Principal": {"Service": principal},
                "Action": "lambda:InvokeFunction",
                "Resource": arn,
                "Condition": {"ArnLike": {"AWS:SourceArn": source_arn}},
            }
        )

    async def remove_permission(self, function_name: str, qualifier: str, sid: str) -> None:
        self.calls.append("RemovePermission")
        arn = _qualified(f"{function_name}:{qualifier}", self.region, self.account)
        statements = self.policies.get(arn, [])
        self.policies[arn] = [s for s in statements if s["Sid"] != sid]

    # -- SourcesBackend: elbv2 ----------------------------------------------------------------

    async def target_ids(self, target_group_arn: str) -> list[str]:
        return list(self._target_group(target_group_arn))

    async def register_target(self, target_group_arn: str, target_id: str) -> None:
        self.calls.append("RegisterTargets")
        targets = self._target_group(target_group_arn)
        if target_id not in targets:
            targets.append(target_id)

    async def deregister_target(self, target_group_arn: str, target_id: str) -> None:
        self.calls.append("DeregisterTargets")
        targets = self._target_group(target_group_arn)
        if target_id in targets:
            targets.remove(target_id)

    # -- SourcesBackend: apigatewayv2 ---------------------------------------------------------

    async def integrations(self, api_id: str) -> list[dict[str, Any]]:
        return [deepcopy(i) for i in self._api(api_id)["integrations"].values()]

    async def create_integration(self, api_id: str, uri: str) -> dict[str, Any]:
        self.calls.append("CreateIntegration")
        if not uri.startswith("arn:aws:lambda:"):
            raise AwsInvalid(f"bad integration URI {uri}", code="BadRequestException")
        integration = {
            "IntegrationId": f"int{next(self._ids)}",
            "IntegrationType": "AWS_PROXY",
            "IntegrationMethod": "POST",
            "IntegrationUri": uri,
            "PayloadFormatVersion": "2.0",
        }
        self._api(api_id)["integrations"][integration["IntegrationId"]] = integration
        return deepcopy(integration)

    async def delete_integration(self, api_id: str, integration_id: str) -> None:
        self.calls.append("DeleteIntegration")
        self._api(api_id)["integrations"].pop(integration_id, None)

    async def routes(self, api_id: str) -> list[dict[str, Any]]:
        return [deepcopy(r) for r in self._api(api_id)["routes"].values()]

    async def get_route(self, api_id: str, route_id: str) -> dict[str, Any]:
        return deepcopy(self._route(api_id, route_id))

    async def set_route_target(self, api_id: str, route_id: str, target: str) -> None:
        self.calls.append("UpdateRoute")
        route = self._route(api_id, route_id)
        if target:
            route["Target"] = target
        else:
            route.pop("Target", None)


class FakeSources(SourceReconciler):
    """``SourcesApi`` in memory; ``aws`` is the state it keeps, for assertions."""

    def __init__(
        self,
        *,
        region: str = "us-east-1",
        account: str = "123456789012",
        backend: MemorySourcesBackend | None = None,
        settle_polls: int = 0,
    ) -> None:
        self.aws = backend or MemorySourcesBackend(
            region=region, account=account, settle_polls=settle_polls
        )

        super().__init__(
            self.aws,
            region=region,
            account=account,
            poll_interval=0.0,
            state_timeout=float("inf"),
            clock=ManualClock(autojump=True),
        )
