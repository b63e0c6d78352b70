"""Event sources, decided: desired versus what AWS has, turned into operations. No I/O here.

The adapter (``engine.aws.sources``) observes AWS, asks this module what to do, does it, and
reports each outcome as a ``SourceChange``. Keeping the decisions pure means the same rules run
against moto, real AWS and the in-memory fake, and are tested without any of them.

Identity rules, which are what make re-running a plan a no-op:

- A pull mapping is identified by its *source* (:func:`mapping_key`: the event source ARN, plus
  the Kafka topics or MQ queues, or the self-managed Kafka bootstrap servers) together with the
  *qualified* function it invokes. glam adopts a mapping with the same identity instead of
  creating another one, so there is never a second mapping for one source and one alias.
- A push source is identified as its kind says (:data:`PUSH_KINDS`): an ALB source by its
  target group ARN, an API Gateway v2 source by ``<api id>/<route id>``. Invoke permissions get
  deterministic statement ids derived from the kind's scope (the target group ARN, the API id),
  so a retry finds the statement it added before.

Push kinds are one table: a new kind is one :class:`PushKind` entry here, plus its adapter
(``engine.aws.push_sources``) and the backend calls that adapter makes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.events.desired import EventSources, PushService, PushSource, SourceKind

ELB_SERVICE: PushService = "elasticloadbalancing.amazonaws.com"
APIGW_SERVICE: PushService = "apigateway.amazonaws.com"
INVOKE_ACTION = "lambda:InvokeFunction"

# The members of UpdateEventSourceMapping's request besides UUID and FunctionName (botocore's
# lambda model; a test keeps this list in step with it). Everything else in a
# CreateEventSourceMapping request is fixed at creation.
UPDATABLE_MAPPING_KEYS = frozenset(
    {
        "AmazonManagedKafkaEventSourceConfig",
        "BatchSize",
        "BisectBatchOnFunctionError",
        "DestinationConfig",
        "DocumentDBEventSourceConfig",
        "Enabled",
        "FilterCriteria",
        "FunctionResponseTypes",
        "KMSKeyArn",
        "LoggingConfig",
        "MaximumBatchingWindowInSeconds",
        "MaximumRecordAgeInSeconds",
        "MaximumRetryAttempts",
        "MetricsConfig",
        "ParallelizationFactor",
        "ProvisionedPollerConfig",
        "ScalingConfig",
        "SelfManagedKafkaEventSourceConfig",
        "SourceAccessConfigurations",
        "TumblingWindowInSeconds",
    }
)
# Keys only CreateEventSourceMapping takes. A difference in them cannot be applied in place;
# glam reports it rather than silently recreating a mapping (which would lose its position).
CREATE_ONLY_MAPPING_KEYS = frozenset({"StartingPosition", "StartingPositionTimestamp", "Tags"})
# States a mapping passes through; no update or delete is accepted until they settle.
TRANSITIONAL_STATES = frozenset({"Creating", "Updating", "Deleting", "Enabling", "Disabling"})
# States of a mapping that is (or is becoming) enabled.
ENABLED_STATES = frozenset({"Enabled", "Enabling", "Creating", "Updating"})


# ------------------------------------------------------------------------------------------
# Names and identities
# ------------------------------------------------------------------------------------------


def split_alias_arn(alias_arn: str) -> tuple[str, str, str, str]:
    """``(region, account, function name, alias)`` of ``arn:aws:lambda:r:a:function:n:alias``."""
    parts = alias_arn.split(":")
    if len(parts) != 8 or parts[2] != "lambda" or parts[5] != "function":
        raise ValueError(f"not a qualified Lambda function ARN: {alias_arn!r}")
    return parts[3], parts[4], parts[6], parts[7]


def mapping_key(request: Mapping[str, Any]) -> str:
    """The identity of a mapping's *source*, from a request or from AWS's description of it."""
    parts: list[str] = []
    arn = request.get("EventSourceArn")
    if arn:
        parts.append(str(arn))
    endpoints = (request.get("SelfManagedEventSource") or {}).get("Endpoints") or {}
    for name in sorted(endpoints):
        parts.append(f"{name}={','.join(sorted(map(str, endpoints[name])))}")
    if request.get("Topics"):
        parts.append("topics=" + ",".join(sorted(map(str, request["Topics"]))))
    if request.get("Queues"):
        parts.append("queues=" + ",".join(sorted(map(str, request["Queues"]))))
    if not parts:
        raise ValueError("an event source mapping needs EventSourceArn or SelfManagedEventSource")
    return "|".join(parts)


def function_qualifier(function_arn: str) -> str | None:
    """The qualifier of a function ARN (``None`` when unqualified)."""
    tail = function_arn.split(":function:", 1)[-1]
    return tail.split(":", 1)[1] if ":" in tail else None


def execute_api_arn(region: str, account: str, api_id: str) -> str:
    """The SourceArn that lets every stage and route of an API invoke the function."""
    return f"arn:aws:execute-api:{region}:{account}:{api_id}/*"


def integration_uri(alias_arn: str, stage_variable: str | None) -> str:
    """The integration's target: the alias ARN, or the function qualified by a stage variable."""
    if not stage_variable:
        return alias_arn
    unqualified = alias_arn.rsplit(":", 1)[0]
    return f"{unqualified}:${{stageVariables.{stage_variable}}}"


# ------------------------------------------------------------------------------------------
# Push kinds
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushKind:
    """One kind of push source: how its definition reads, how glam names it, and what its
    invoke permission covers. What it does in AWS is its adapter's (engine.aws.push_sources).
    """

    kind: SourceKind  # as EventSourceChanged records it
    service: PushService  # the definition's ``Service``: the principal that invokes the alias
    client: str  # the botocore service its adapter calls
    label: str  # for messages
    short: str  # in its statement ids: ``glam-<short>-<hash>``
    # Definition key -> PushSource field, the preferred spelling first; and the keys it needs.
    fields: Mapping[str, str]
    required: tuple[str, ...]
    # The id events record for a source; what its permission is for (sources with one scope
    # share one statement); that permission's SourceArn, from (scope, region, account).
    id: Callable[[PushSource], str]
    scope: Callable[[PushSource], str]
    source_arn: Callable[[str, str, str], str]


PUSH_KINDS: dict[PushService, PushKind] = {
    kind.service: kind
    for kind in (
        PushKind(
            kind="elb",
            service=ELB_SERVICE,
            client="elbv2",
            label="ELB",
            short="elb",
            fields={"TargetGroupArn": "target_group_arn"},
            required=("TargetGroupArn",),
            id=lambda s: s.target_group_arn or "",
            scope=lambda s: s.target_group_arn or "",
            source_arn=lambda scope, _region, _account: scope,
        ),
        PushKind(
            kind="apigateway",
            service=APIGW_SERVICE,
            client="apigatewayv2",
            label="API Gateway",
            short="apigw",
            # Real repositories spell it AlaisStageVariableName; both mean the same thing.
            fields={
                "ApiId": "api_id",
                "RouteId": "route_id",
                "AliasStageVariableName": "stage_variable",
                "AlaisStageVariableName": "stage_variable",
            },
            required=("ApiId", "RouteId"),
            id=lambda s: f"{s.api_id}/{s.route_id}",
            scope=lambda s: s.api_id or "",
            source_arn=lambda scope, region, account: execute_api_arn(region, account, scope),
        ),
    )
}

# The botocore services event sources are wired through: Lambda's own (mappings and
# permissions), then each push kind's.
SOURCE_CLIENTS: tuple[str, ...] = tuple(
    dict.fromkeys(("lambda", *(kind.client for kind in PUSH_KINDS.values())))
)


def push_kind(source: PushSource) -> PushKind:
    """The kind of ``source``, by its service."""
    return PUSH_KINDS[source.service]


def statement_id(service: PushService, scope: str) -> str:
    """A deterministic statement id: ``glam-elb-<hash>`` or ``glam-apigw-<hash>``."""
    short = PUSH_KINDS[service].short
    return f"glam-{short}-{hashlib.sha256(scope.encode()).hexdigest()[:16]}"


def push_id(source: PushSource) -> str:
    """The source id recorded in events: the target group ARN, or ``<api id>/<route id>``."""
    return push_kind(source).id(source)


def permission_scope(source: PushSource, region: str, account: str) -> tuple[str, str]:
    """``(statement id, SourceArn)`` of the invoke permission a push source needs."""
    kind = push_kind(source)
    scope = kind.scope(source)
    return statement_id(kind.service, scope), kind.source_arn(scope, region, account)


def validate_push(source: PushSource) -> None:
    """Refuse a push source missing the ids it needs (the definitions layer should catch it)."""
    kind = push_kind(source)
    missing = [key for key in kind.required if not getattr(source, kind.fields[key])]
    if missing:
        raise ValueError(f"an {kind.label} event source needs {' and '.join(missing)}")


# ------------------------------------------------------------------------------------------
# Policy statements
# ------------------------------------------------------------------------------------------


def policy_statements(policy_document: str | Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The statements of a GetPolicy ``Policy`` (a JSON string) or of a parsed policy."""
    if not policy_document:
        return []
    doc = json.loads(policy_document) if isinstance(policy_document, str) else policy_document
    statements = doc.get("Statement", [])
    if isinstance(statements, dict):
        statements = [statements]
    return [dict(s) for s in statements]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def grants(statement: Mapping[str, Any], principal: str, source_arn: str) -> bool:
    """Whether ``statement`` allows ``principal`` to invoke the function from ``source_arn``."""
    if statement.get("Effect", "Allow") != "Allow":
        return False
    raw_principal = statement.get("Principal")
    services = (
        _as_list(raw_principal.get("Service"))
        if isinstance(raw_principal, Mapping)
        else _as_list(raw_principal)
    )
    if principal not in services:
        return False
    actions = _as_list(statement.get("Action"))
    if not any(a in (INVOKE_ACTION, "lambda:*") for a in actions):
        return False
    condition = statement.get("Condition") or {}
    for operator in ("ArnLike", "ArnEquals", "StringEquals", "StringLike"):
        block = condition.get(operator) or {}
        for name, value in block.items():
            if name.lower() == "aws:sourcearn" and source_arn in _as_list(value):
                return True
    return False


@dataclass(frozen=True, slots=True)
class PermissionDecision:
    """What to do about one invoke permission, given the alias's current statements."""

    action: Literal["keep", "add", "replace"]
    statement_id: str  # glam's own id, or the adopted statement's id when action is "keep"
    adopted: bool = False  # an identical statement under another id already grants it


def decide_permission(
    statements: Sequence[Mapping[str, Any]], sid: str, principal: str, source_arn: str
) -> PermissionDecision:
    """Keep glam's statement or an identical one; replace a stale statement under glam's id."""
    ours = [s for s in statements if s.get("Sid") == sid]
    if ours and grants(ours[0], principal, source_arn):
        return PermissionDecision("keep", sid)
    for statement in statements:
        if statement.get("Sid") != sid and grants(statement, principal, source_arn):
            return PermissionDecision("keep", str(statement.get("Sid", "")), adopted=True)
    return PermissionDecision("replace" if ours else "add", sid)


# ------------------------------------------------------------------------------------------
# Pull mappings
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ActualMapping:
    """A mapping AWS has for this function, as ListEventSourceMappings described it."""

    uuid: str
    key: str
    on_alias: bool  # invokes the alias glam manages (not $LATEST, a version or another alias)
    state: str
    configuration: Mapping[str, Any] = field(default_factory=dict)


def observe_mapping(
    configuration: Mapping[str, Any], *, alias_arn: str, listed_under_alias: bool
) -> ActualMapping:
    """Describe one ListEventSourceMappings item.

    ``listed_under_alias``: AWS returned it for a qualified FunctionName (``name:alias`` or the
    alias ARN). That is trusted as well as its FunctionArn, because emulators report the
    version the alias points to there.
    """
    function_arn = str(configuration.get("FunctionArn", ""))
    return ActualMapping(
        uuid=str(configuration["UUID"]),
        key=mapping_key(configuration),
        on_alias=listed_under_alias or function_arn == alias_arn,
        state=str(configuration.get("State", "")),
        configuration=dict(configuration),
    )


def _same(desired: Any, actual: Any) -> bool:
    if isinstance(desired, Mapping) and isinstance(actual, Mapping):
        return all(_same(v, actual.get(k)) for k, v in desired.items())
    if isinstance(desired, list | tuple) and isinstance(actual, list | tuple):
        return len(desired) == len(actual) and all(
            _same(d, a) for d, a in zip(desired, actual, strict=True)
        )
    return bool(desired == actual)


def mapping_changes(request: Mapping[str, Any], actual: ActualMapping) -> dict[str, Any]:
    """The updatable parameters of ``request`` whose value differs from ``actual``'s.

    Keys the request does not set are left as AWS has them (AWS fills in defaults that the user
    never wrote, and resetting them would make every run an update).
    """
    changes: dict[str, Any] = {}
    for name, value in request.items():
        if name not in UPDATABLE_MAPPING_KEYS:
            continue
        if name == "Enabled":
            enabled = actual.state in ENABLED_STATES
            if bool(value) != enabled:
                changes[name] = value
        elif name not in actual.configuration or not _same(value, actual.configuration[name]):
            changes[name] = value
    return changes


def create_only_differences(request: Mapping[str, Any], actual: ActualMapping) -> list[str]:
    """Create-only keys whose requested value differs from the existing mapping's."""
    return sorted(
        name
        for name in CREATE_ONLY_MAPPING_KEYS & request.keys()
        if name in actual.configuration and not _same(request[name], actual.configuration[name])
    )


@dataclass(frozen=True, slots=True)
class CreateMapping:
    """Create a mapping for a source the alias has none of."""

    key: str
    request: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class UpdateMapping:
    """Change the updatable parameters of an existing mapping in place."""

    key: str
    uuid: str
    changes: Mapping[str, Any]
    ignored: tuple[str, ...] = ()  # create-only keys that differ and cannot be applied


@dataclass(frozen=True, slots=True)
class KeepMapping:
    """Leave a mapping as it is: glam's own (unchanged), or one it finds and takes over."""

    key: str
    uuid: str
    change: Literal["adopted", "unchanged"]
    ignored: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DeleteMapping:
    """Delete a mapping of a source glam no longer wants on the alias."""

    key: str
    uuid: str


MappingOp = CreateMapping | UpdateMapping | KeepMapping | DeleteMapping


def _pick(candidates: Iterable[ActualMapping]) -> ActualMapping | None:
    # AWS refuses two mappings of one source on one qualified function; an emulator may hold
    # several. Choosing the smallest UUID makes every run pick the same one.
    ordered = sorted(candidates, key=lambda m: m.uuid)
    return ordered[0] if ordered else None


def plan_mappings(
    desired: Sequence[Mapping[str, Any]],
    previous: Sequence[Mapping[str, Any]],
    actual: Sequence[ActualMapping],
    *,
    function_ref: str,
) -> list[MappingOp]:
    """Operations that make the alias's mappings match ``desired``.

    ``function_ref`` fills in a request without FunctionName (``name:alias``). Mappings of a
    source in ``previous`` but not in ``desired`` are deleted; mappings glam never knew of are
    left alone unless ``desired`` names their source, in which case they are adopted.
    """
    on_alias: dict[str, list[ActualMapping]] = {}
    for mapping in actual:
        if mapping.on_alias:
            on_alias.setdefault(mapping.key, []).append(mapping)
    previous_keys = {mapping_key(r) for r in previous}
    desired_keys: set[str] = set()
    ops: list[MappingOp] = []
    for raw in desired:
        request = dict(raw)
        request.setdefault("FunctionName", function_ref)
        key = mapping_key(request)
        if key in desired_keys:
            raise ValueError(f"two event source mappings for the same source: {key}")
        desired_keys.add(key)
        existing = _pick(on_alias.get(key, ()))
        if existing is None:
            ops.append(CreateMapping(key, request))
            continue
        changes = mapping_changes(request, existing)
        ignored = tuple(create_only_differences(request, existing))
        if changes:
            ops.append(UpdateMapping(key, existing.uuid, changes, ignored))
        else:
            change: Literal["adopted", "unchanged"] = (
                "unchanged" if key in previous_keys else "adopted"
            )
            ops.append(KeepMapping(key, existing.uuid, change, ignored))
    for key in sorted(previous_keys - desired_keys):
        ops.extend(DeleteMapping(key, m.uuid) for m in on_alias.get(key, ()))
    return ops


def union_sources(*parts: EventSources | None) -> EventSources | None:
    """Every source any of ``parts`` names, later parts winning for one id: what glam may have
    wired, for use as ``previous`` so nothing it attached is left behind. None if all are."""
    present = [p for p in parts if p is not None]
    if not present:
        return None
    push: dict[str, PushSource] = {}
    mappings: dict[str, dict[str, Any]] = {}
    for part in present:
        push.update((push_id(s), s) for s in part.push)
        mappings.update((mapping_key(m), dict(m)) for m in part.mappings)
    return EventSources(push=tuple(push.values()), mappings=tuple(mappings.values()))


def plan_detach_mappings(
    previous: Sequence[Mapping[str, Any]], actual: Sequence[ActualMapping]
) -> list[DeleteMapping]:
    """Every mapping on the alias, and any mapping of a previously wired source (the function
    is about to be deleted, so nothing of it may keep polling)."""
    previous_keys = {mapping_key(r) for r in previous}
    return [
        DeleteMapping(m.key, m.uuid)
        for m in sorted(actual, key=lambda m: (m.key, m.uuid))
        if m.on_alias or m.key in previous_keys
    ]


# ------------------------------------------------------------------------------------------
# Push sources
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PushPlan:
    """Push sources to attach (each with what had its id before) and to detach."""

    attach: tuple[tuple[PushSource, PushSource | None], ...]
    detach: tuple[PushSource, ...]
    # APIs and target groups that some desired source still uses: their permission stays.
    kept_scopes: frozenset[str]


def plan_push(desired: EventSources, previous: EventSources | None) -> PushPlan:
    """Attach every desired push source; detach previous ones whose id is gone.

    A source that changed under the same id (an API route whose stage variable changed) is
    attached with what it was before, so the adapter rewires the route first and removes the
    old integration after: the route always has a target.
    """
    for source in desired.push:
        validate_push(source)
    before = {push_id(s): s for s in (previous.push if previous else ())}
    wanted = {push_id(s): s for s in desired.push}
    attach = tuple((s, before.get(push_id(s))) for s in desired.push)
    detach = tuple(s for pid, s in before.items() if pid not in wanted)
    return PushPlan(attach, detach, frozenset(push_kind(s).scope(s) for s in desired.push))
