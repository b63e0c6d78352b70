"""``_lambdadepdef.json`` -> ``DeploymentSettings``: defaults, ranges and legacy names.

Unknown keys are refused with the nearest known name: a misspelt ``trafficShiftingConfig``
silently ignored would turn a canary into an all-at-once deployment. The keys Gitmoxi itself
ignores in a Lambda deployment definition (its ECS settings, ``webhooks``) are accepted with a
warning, so a repository that Gitmoxi deploys is deployed by glam too.

The alias, region and account are checked as AWS would (``engine.definitions.names``).
"""

from __future__ import annotations

from typing import Any, get_args

from engine.definitions.checks import check_int, check_keys
from engine.definitions.files import (
    AlarmsFile,
    EnvironmentFile,
    LambdaDepDefFile,
    ReadinessCheckFile,
    TrafficShiftingConfigFile,
    bounds,
    default,
    keys,
)
from engine.definitions.names import check_account, check_alias, check_region
from engine.definitions.progressive import parse_gate, parse_hooks, parse_release, parse_steps
from engine.errors import DefinitionError
from engine.events.desired import (
    DeploymentSettings,
    DriftPolicy,
    Hooks,
    Readiness,
    ShiftType,
    TrafficShifting,
)

# Keys, defaults and ranges are the file model's (engine.definitions.files), from which the
# schema and docs/reference.md are generated.
_TOP = keys(LambdaDepDefFile)
_SHIFT_TYPES: tuple[str, ...] = get_args(ShiftType)
_DRIFT_POLICIES: tuple[str, ...] = get_args(DriftPolicy)
_PERCENT = bounds(TrafficShiftingConfigFile, "percent")
_BAKE = bounds(TrafficShiftingConfigFile, "wait_interval")
_POLL = bounds(ReadinessCheckFile, "wait_interval")
_POLLS = bounds(ReadinessCheckFile, "max_retries")

# Keys of Gitmoxi's deployment definitions that mean nothing for a Lambda function; Gitmoxi
# skips them there, and so does glam, with a warning.
_ECS = "an ECS deployment setting"
GITMOXI_IGNORED: dict[str, str] = {
    "stabilityCheck": _ECS,
    "gmDeploymentCircuitBreaker": _ECS,
    "targetGroupArns": _ECS,
    "targetGroupArnPairs": _ECS,
    "deleteNewUponTrafficShiftFailure": _ECS,
    "deleteNewUponFailure": _ECS,
    "fallbackCapacityProviderStrategy": _ECS,
    "webhooks": "a Gitmoxi notification setting glam does not send",
}


def parse_settings(raw: Any, file: str, warnings: list[str] | None = None) -> DeploymentSettings:
    """Validate a deployment definition and apply its defaults
    (docs/desired-state.md). Keys Gitmoxi ignores
    are skipped, each with a line appended to ``warnings``."""
    obj = _object(raw, "the deployment definition", file)
    for key in obj:
        if key in GITMOXI_IGNORED and warnings is not None:
            warnings.append(f"key {key!r} ignored: {GITMOXI_IGNORED[key]}, not used for Lambda")
    obj = {k: v for k, v in obj.items() if k not in GITMOXI_IGNORED}
    check_keys(obj, _TOP, "", file, also=tuple(GITMOXI_IGNORED))
    alias = obj.get("alias")
    if not isinstance(alias, str) or not alias:
        raise DefinitionError(
            "'alias' is required and must be a non-empty string",
            file=file,
            hint='add "alias": "PROD" (the alias traffic is shifted on)',
        )
    check_alias(alias, file)
    env_key = "environment" if "environment" in obj else "environmentVariables"
    env = _object(obj.get(env_key, {}), env_key, file)
    check_keys(env, keys(EnvironmentFile), env_key, file)
    region = _opt_str(env.get("region"), f"{env_key}.region", file)
    account = _opt_str(env.get("account"), f"{env_key}.account", file)
    if region is not None:
        check_region(region, f"{env_key}.region", file)
    if account is not None:
        check_account(account, f"{env_key}.account", file)

    traffic: TrafficShifting | None = None
    if "trafficShiftingConfig" in obj:
        cfg = _object(obj["trafficShiftingConfig"], "trafficShiftingConfig", file)
        check_keys(cfg, keys(TrafficShiftingConfigFile), "trafficShiftingConfig", file)
        kind = cfg.get("type", default(TrafficShiftingConfigFile, "type"))
        if kind not in _SHIFT_TYPES:
            raise DefinitionError(
                f"trafficShiftingConfig.type must be one of {', '.join(_SHIFT_TYPES)}",
                file=file,
                hint="CANARY is the default",
            )
        percent = check_int(
            cfg.get("percent", _PERCENT.default), "trafficShiftingConfig.percent", _PERCENT, file
        )
        wait = check_int(
            cfg.get("waitInterval", _BAKE.default),
            "trafficShiftingConfig.waitInterval",
            _BAKE,
            file,
        )
        steps = parse_steps(cfg["steps"], file) if "steps" in cfg else ()
        if steps and ("type" in cfg or "percent" in cfg):
            raise DefinitionError(
                "trafficShiftingConfig.steps is an alternative to type and percent",
                file=file,
                hint="keep steps alone, or type and percent without steps",
            )
        traffic = TrafficShifting(type=kind, percent=percent, wait_interval=wait, steps=steps)
    enabled = obj.get(
        "trafficShiftingEnabled", default(LambdaDepDefFile, "traffic_shifting_enabled")
    )
    if not isinstance(enabled, bool):
        raise DefinitionError(
            "trafficShiftingEnabled must be true or false", file=file, hint="use true or false"
        )
    if not enabled:
        traffic = None
    elif traffic is None and "trafficShiftingEnabled" in obj:
        traffic = TrafficShifting()  # shifting asked for without a config: the defaults

    alarms_obj = _object(obj.get("alarms", {}), "alarms", file)
    check_keys(alarms_obj, keys(AlarmsFile), "alarms", file)
    names = alarms_obj.get("alarmNames", [])
    if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
        raise DefinitionError(
            "alarms.alarmNames must be a list of alarm names",
            file=file,
            hint='e.g. "alarmNames": ["orders-errors"]',
        )

    ready_obj = _object(obj.get("readinessCheck", {}), "readinessCheck", file)
    check_keys(ready_obj, keys(ReadinessCheckFile), "readinessCheck", file)
    readiness = Readiness(
        wait_interval=check_int(
            ready_obj.get("waitInterval", _POLL.default), "readinessCheck.waitInterval", _POLL, file
        ),
        max_retries=check_int(
            ready_obj.get("maxRetries", _POLLS.default), "readinessCheck.maxRetries", _POLLS, file
        ),
    )
    delete_old = obj.get("deleteOldVersion", default(LambdaDepDefFile, "delete_old_version"))
    if not isinstance(delete_old, bool):
        raise DefinitionError(
            "deleteOldVersion must be true or false", file=file, hint="use true or false"
        )
    drift = obj.get("driftPolicy", default(LambdaDepDefFile, "drift_policy"))
    if drift not in _DRIFT_POLICIES:
        raise DefinitionError(
            f"driftPolicy must be one of {', '.join(repr(p) for p in _DRIFT_POLICIES)}",
            file=file,
            hint='"alert" (the default) records and shows drift; "heal" also deploys again',
        )
    hooks = parse_hooks(obj["hooks"], file) if "hooks" in obj else Hooks()
    gate = parse_gate(obj["trafficGate"], file) if obj.get("trafficGate") is not None else None
    return DeploymentSettings(
        alias=alias,
        region=region,
        account=account,
        traffic=traffic,
        alarms=tuple(names),
        readiness=readiness,
        delete_old_version=delete_old,
        drift_policy=drift,
        hooks=hooks,
        traffic_gate=gate,
        release=parse_release(obj.get("release"), file),
    )


def _object(value: Any, name: str, file: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DefinitionError(f"{name} must be a JSON object", file=file, hint="use { ... }")
    return value


def _opt_str(value: Any, name: str, file: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise DefinitionError(f"{name} must be a non-empty string", file=file, hint="fix it")
    return value
