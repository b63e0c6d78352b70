"""The desired state of one function, as planned from the repository and carried in events.

These are values, not events: ``DeploymentRequested`` embeds a ``DesiredFunction`` so that a
saga can be rebuilt from the log alone, without re-reading Git.
"""

from __future__ import annotations

from typing import Any, Literal

from engine.events.base import Frozen

ShiftType = Literal["CANARY", "LINEAR", "ALL_AT_ONCE"]
# What glam does about a difference it finds between AWS and what it deployed (engine.drift):
# record and show it, or also deploy again to make AWS match.
DriftPolicy = Literal["alert", "heal"]
# The AWS service principal of a push source, as ``Service`` names it in the definition file.
PushService = Literal["elasticloadbalancing.amazonaws.com", "apigateway.amazonaws.com"]
# What kind of source an ``EventSourceChanged`` is about: a pull mapping, or a push kind.
SourceKind = Literal["mapping", "elb", "apigateway"]


class TrafficStep(Frozen):
    """One step of a custom schedule (``trafficShiftingConfig.steps``): the share of traffic
    the new version gets, and the bake after it."""

    weight: float  # in (0, 1]; 1.0 is the promote itself
    wait_interval: int  # seconds


class TrafficShifting(Frozen):
    """How the alias moves to the new version: the schedule and the bake after each step.
    ``steps``, when not empty, is the schedule and ``type``/``percent``/``wait_interval`` are
    not used (engine.saga.schedule)."""

    type: ShiftType = "CANARY"
    percent: int = 20
    wait_interval: int = 60  # seconds, after every step including the last (the bake)
    steps: tuple[TrafficStep, ...] = ()


# When a traffic hook runs: before the first weight moves, after the promote.
HookPoint = Literal["beforeAllowTraffic", "afterAllowTraffic"]


class Hook(Frozen):
    """A Lambda function invoked synchronously at one point of a deployment; its answer
    decides whether the deployment goes on (docs/progressive-delivery.md, the contract)."""

    function: str  # a function name or ARN (a qualified ARN invokes that version or alias)
    timeout_seconds: int = 20


class Hooks(Frozen):
    """``hooks`` of the deployment definition."""

    before_allow_traffic: Hook | None = None
    after_allow_traffic: Hook | None = None

    def at(self, point: HookPoint) -> Hook | None:
        """The hook configured at ``point``, if any."""
        match point:
            case "beforeAllowTraffic":
                return self.before_allow_traffic
            case "afterAllowTraffic":
                return self.after_allow_traffic


class SyntheticInvoke(Frozen):
    """Invocations glam sends to the alias while a traffic gate waits (``payload`` as JSON
    text, so that the settings stay hashable)."""

    payload: str = "{}"
    rate_per_second: float = 1.0


GateTimeout = Literal["rollback", "promote"]


class TrafficGate(Frozen):
    """``trafficGate``: a step's bake ends only once the new version has served
    ``min_invocations`` (engine.saga.gate), waiting up to ``max_wait`` seconds past the bake,
    re-reading every ``check_interval``; then ``on_timeout``."""

    min_invocations: int
    max_wait: int = 600
    on_timeout: GateTimeout = "rollback"
    check_interval: int = 60
    synthetic: SyntheticInvoke | None = None


class Readiness(Frozen):
    """How the new version is polled (GetFunction) until Active, before traffic shifts to it."""

    wait_interval: int = 10  # seconds between polls of GetFunction
    max_retries: int = 5


class DeploymentSettings(Frozen):
    """The ``_lambdadepdef.json`` after defaults and legacy names are applied."""

    alias: str
    region: str | None = None
    account: str | None = None
    # None means one switch (no trafficShiftingConfig, or shifting disabled), baked only when
    # there are alarms to watch.
    traffic: TrafficShifting | None = TrafficShifting()
    alarms: tuple[str, ...] = ()
    readiness: Readiness = Readiness()
    delete_old_version: bool = True
    drift_policy: DriftPolicy = "alert"
    hooks: Hooks = Hooks()
    traffic_gate: TrafficGate | None = None
    # The release this function moves with (engine.saga.release); None: alone.
    release: str | None = None


class PushSource(Frozen):
    """A push event source: an ALB target group or an API Gateway v2 route."""

    service: PushService
    target_group_arn: str | None = None
    api_id: str | None = None
    route_id: str | None = None
    stage_variable: str | None = None  # AliasStageVariableName, or AlaisStageVariableName


class EventSources(Frozen):
    """The ``_lambdaeventsourcedef.json`` of a function: push sources and pull mappings."""

    push: tuple[PushSource, ...] = ()
    # Each item is an event source mapping request as the user wrote it (rendered), with an
    # unqualified FunctionName already qualified with the alias.
    mappings: tuple[dict[str, Any], ...] = ()


class DesiredFunction(Frozen):
    """Everything glam needs to deploy one function prefix, rendered and validated."""

    prefix: str
    function_name: str
    definition: dict[str, Any]  # the rendered CreateFunction request
    event_sources: EventSources = EventSources()
    settings: DeploymentSettings
    content_hash: str  # over what decides what runs; equal hash => nothing to deploy
