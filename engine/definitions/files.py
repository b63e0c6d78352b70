"""The shapes of ``_lambdadepdef.json`` and ``_lambdainput.json`` as a user writes them.

These models are the single statement of those files' keys, defaults, ranges and legacy names:
the parsers (``engine.definitions.settings``, ``engine.definitions.inputs``) take their key
lists, defaults and bounds from here, and ``glam schema`` and docs/reference.md are generated
from them, so the documentation cannot say something the parser does not do. The parsers stay
hand-written for their messages (the nearest known key, the fix to make).

``_lambdadef.json`` and the event source mappings of ``_lambdaeventsourcedef.json`` are
botocore's request shapes; their schema is built from botocore's model
(``engine.definitions.file_schemas``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, get_args

import annotated_types
from pydantic import BaseModel, ConfigDict, Field

from engine.definitions.limits import (
    GATE_INVOCATIONS_MAX,
    HOOK_SECONDS_MAX,
    SYNTHETIC_RATE_MAX,
    TRAFFIC_STEPS_MAX,
    WAIT_SECONDS_MAX,
)

RefType = Literal["TERRAFORM", "CDK", "JSON"]
REF_TYPES: tuple[str, ...] = get_args(RefType)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EnvironmentFile(_File):
    """Where the function is deployed; either left out means the engine's own."""

    region: str | None = Field(
        None,
        description="The AWS region, one botocore knows (e.g. us-east-1); default: the engine's.",
        min_length=1,
    )
    account: str | None = Field(
        None,
        description="The 12-digit AWS account id; default: the engine's credentials' account.",
        pattern=r"^[0-9]{12}$",
    )


class TrafficStepFile(_File):
    """One step of a custom schedule: the new version's share of traffic, then a bake."""

    weight: float = Field(
        gt=0,
        le=1,
        description="The new version's share of traffic after this step, above the step "
        "before's; 1.0 is the promote.",
    )
    wait_interval: int = Field(
        60,
        alias="waitInterval",
        ge=0,
        le=WAIT_SECONDS_MAX,
        description="Seconds of bake after this step.",
    )


class TrafficShiftingConfigFile(_File):
    """How the alias moves to a new version, and how long each step bakes."""

    type: Literal["CANARY", "LINEAR", "ALL_AT_ONCE"] = Field(
        "CANARY",
        description="CANARY: percent, bake, then all; LINEAR: percent more at each step; "
        "ALL_AT_ONCE: one switch.",
    )
    percent: int = Field(
        20, ge=1, le=100, description="The share of traffic (%) of the first or each step."
    )
    wait_interval: int = Field(
        60,
        alias="waitInterval",
        ge=0,
        le=WAIT_SECONDS_MAX,
        description="Seconds of bake after every step, the last included.",
    )
    steps: list[TrafficStepFile] | None = Field(
        None,
        min_length=1,
        max_length=TRAFFIC_STEPS_MAX,
        description="A custom schedule instead of type and percent (not with them): weights "
        "strictly rising, the last step's bake ending the deployment.",
    )


class AlarmsFile(_File):
    """CloudWatch alarms watched during the bake; one in ALARM rolls the deployment back."""

    alarm_names: list[str] = Field(
        default_factory=list,
        alias="alarmNames",
        json_schema_extra={"default": []},
        description="Names of CloudWatch alarms in the function's account and region.",
    )


class ReadinessCheckFile(_File):
    """How the new version is polled (GetFunction) until Active, before traffic moves."""

    wait_interval: int = Field(
        10, alias="waitInterval", ge=0, le=3_600, description="Seconds between polls."
    )
    max_retries: int = Field(
        5, alias="maxRetries", ge=0, le=1_000, description="Polls before the deployment fails."
    )


class HookFile(_File):
    """A hook with its own deadline."""

    function: str = Field(
        min_length=1, description="The function invoked: a name or ARN, optionally qualified."
    )
    timeout_seconds: int = Field(
        20,
        alias="timeoutSeconds",
        ge=1,
        le=HOOK_SECONDS_MAX,
        description="Seconds the hook may take; a hook past it has failed.",
    )


class HooksFile(_File):
    """Lambda functions invoked synchronously; a failed, erroring or timed-out one rolls back."""

    before_allow_traffic: str | HookFile | None = Field(
        None,
        alias="beforeAllowTraffic",
        description="Invoked before the first weight moves: a function name or ARN, or an "
        "object with its deadline.",
    )
    after_allow_traffic: str | HookFile | None = Field(
        None,
        alias="afterAllowTraffic",
        description="Invoked after the promote, before the old version is deleted.",
    )


class SyntheticInvokeFile(_File):
    """Invocations glam sends to the alias itself while a gate waits for traffic."""

    payload: Any = Field(
        default_factory=dict,
        json_schema_extra={"default": {}},
        description="The JSON event each invocation sends (kept small: at most 6,000 bytes).",
    )
    rate_per_second: float = Field(
        1.0,
        alias="ratePerSecond",
        gt=0,
        le=SYNTHETIC_RATE_MAX,
        description="Invocations per second, at most 10; the alias's routing decides which "
        "version serves each.",
    )


class TrafficGateFile(_File):
    """A bake ends only once the new version has served enough invocations."""

    min_invocations: int = Field(
        alias="minInvocations",
        ge=1,
        le=GATE_INVOCATIONS_MAX,
        description="Invocations the new version must serve during each step's bake "
        "(CloudWatch Invocations, dimension ExecutedVersion) before the step ends.",
    )
    max_wait: int = Field(
        600,
        alias="maxWait",
        ge=0,
        le=WAIT_SECONDS_MAX,
        description="Seconds past the bake a step may wait for them.",
    )
    on_timeout: Literal["rollback", "promote"] = Field(
        "rollback",
        alias="onTimeout",
        description="What a step that did not get them by maxWait does: rollback, or promote "
        "(go on as if they had come).",
    )
    check_interval: int = Field(
        60,
        alias="checkInterval",
        ge=1,
        le=WAIT_SECONDS_MAX,
        description="Seconds between reads of the count while waiting.",
    )
    synthetic_invoke: SyntheticInvokeFile | None = Field(
        None,
        alias="syntheticInvoke",
        description="Traffic glam sends itself during each bake and wait of the gate.",
    )


class LambdaDepDefFile(_File):
    """How a function is deployed: the alias, the target, the traffic shift and its checks."""

    alias: str = Field(
        description="The alias traffic is shifted on; AWS's alias rule (letters, digits, "
        "- and _, 1 to 128 characters, not only digits).",
        min_length=1,
    )
    environment: EnvironmentFile | None = Field(None, description="The target region and account.")
    environment_variables: EnvironmentFile | None = Field(
        None,
        alias="environmentVariables",
        description="Legacy name of environment (read when environment is absent).",
        json_schema_extra={"deprecated": True},
    )
    traffic_shifting_config: TrafficShiftingConfigFile | None = Field(
        None,
        alias="trafficShiftingConfig",
        description="Left out: one switch to the new version (baked only when alarms are set).",
    )
    traffic_shifting_enabled: bool = Field(
        True,
        alias="trafficShiftingEnabled",
        description="Legacy switch: false means one switch whatever trafficShiftingConfig says; "
        "true with no trafficShiftingConfig means its defaults.",
        json_schema_extra={"deprecated": True},
    )
    alarms: AlarmsFile = Field(default_factory=AlarmsFile, description="Alarms to watch.")
    readiness_check: ReadinessCheckFile = Field(
        default_factory=ReadinessCheckFile,
        alias="readinessCheck",
        description="Polling of the new version before traffic moves.",
    )
    delete_old_version: bool = Field(
        True,
        alias="deleteOldVersion",
        description="Delete the version traffic left once a deployment succeeds.",
    )
    drift_policy: Literal["alert", "heal"] = Field(
        "alert",
        alias="driftPolicy",
        description="On a difference between AWS and the last deployment: alert records and "
        "shows it; heal also deploys again.",
    )
    hooks: HooksFile | None = Field(
        None, description="Traffic hooks (docs/progressive-delivery.md has their contract)."
    )
    traffic_gate: TrafficGateFile | None = Field(
        None,
        alias="trafficGate",
        description="Hold each step until the new version has served enough invocations.",
    )
    release: str | None = Field(
        None,
        description="A release name: the functions of one commit that share it shift in "
        "lockstep and roll back as one (1 to 64 letters, digits, '.', '-' or '_').",
        pattern=r"^[A-Za-z0-9._-]{1,64}$",
        examples=["checkout-2026-12"],
    )


class RefFile(_File):
    """Files of the same commit whose values are read before the inline keys."""

    file: str | list[str] = Field(
        default_factory=list,
        json_schema_extra={"default": []},
        description="A path, or a list of paths, from the repository root; read in order. "
        "Absolute paths, '..', symlinks and submodules are refused.",
    )
    type: RefType = Field(
        "JSON",
        description="JSON: the object as is; TERRAFORM: `terraform output -json`, each "
        "output's value; CDK: `cdk deploy --outputs-file`, as Stack.Output and Output.",
    )


class LambdaInputFile(BaseModel):
    """The values the function's templates see: any key but ref is a value, applied last."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ref: RefFile | None = Field(None, description="Files to read values from.")


@dataclass(frozen=True, slots=True)
class Bounds:
    """A field's default and inclusive range, as its model states them."""

    default: Any
    low: int
    high: int


def bounds(model: type[BaseModel], name: str) -> Bounds:
    """The default and ``ge``/``le`` range of the integer field ``name`` of ``model``."""
    info = model.model_fields[name]
    low: Any = next(m.ge for m in info.metadata if isinstance(m, annotated_types.Ge))
    high: Any = next(m.le for m in info.metadata if isinstance(m, annotated_types.Le))
    return Bounds(default=info.default, low=int(low), high=int(high))


def keys(model: type[BaseModel]) -> tuple[str, ...]:
    """The keys a file object of ``model`` may hold, as written in the file."""
    return tuple(info.alias or name for name, info in model.model_fields.items())


def default(model: type[BaseModel], name: str) -> Any:
    """The default of field ``name`` of ``model``."""
    return model.model_fields[name].get_default(call_default_factory=True)


__all__ = [
    "REF_TYPES",
    "AlarmsFile",
    "Bounds",
    "EnvironmentFile",
    "HookFile",
    "HooksFile",
    "LambdaDepDefFile",
    "LambdaInputFile",
    "ReadinessCheckFile",
    "RefFile",
    "SyntheticInvokeFile",
    "TrafficGateFile",
    "TrafficShiftingConfigFile",
    "TrafficStepFile",
    "bounds",
    "default",
    "keys",
]
