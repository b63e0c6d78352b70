"""The progressive-delivery keys of a deployment definition: ``trafficShiftingConfig.steps``,
``hooks``, ``trafficGate`` and ``release`` (docs/progressive-delivery.md). Called by
engine.definitions.settings, so each mistake is refused when the commit is planned, naming the
file and what to write instead.

    "trafficShiftingConfig": {"steps": [{"weight": 0.05, "waitInterval": 300},
                                        {"weight": 0.5, "waitInterval": 600},
                                        {"weight": 1.0, "waitInterval": 900}]},
    "hooks": {"beforeAllowTraffic": "orders-smoke-test",
              "afterAllowTraffic": {"function": "orders-verify", "timeoutSeconds": 10}},
    "trafficGate": {"minInvocations": 100, "maxWait": 900, "onTimeout": "rollback",
                    "syntheticInvoke": {"payload": {"probe": true}, "ratePerSecond": 2}},
    "release": "checkout-2026-12"
"""

from __future__ import annotations

import json
import re
from typing import Any, get_args

from engine.definitions.checks import check_int, check_keys
from engine.definitions.files import (
    HookFile,
    HooksFile,
    SyntheticInvokeFile,
    TrafficGateFile,
    TrafficStepFile,
    bounds,
    default,
    keys,
)
from engine.definitions.limits import SYNTHETIC_PAYLOAD_MAX, SYNTHETIC_RATE_MAX, TRAFFIC_STEPS_MAX
from engine.errors import DefinitionError
from engine.events.desired import (
    GateTimeout,
    Hook,
    Hooks,
    SyntheticInvoke,
    TrafficGate,
    TrafficStep,
)

# A function Invoke accepts: a name, a partial or full ARN, each with an optional qualifier.
_INVOKABLE = re.compile(
    r"(arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:|\d{12}:function:)?"
    r"[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9$_-]{1,128})?"
)
# Keys, defaults and ranges are the file models' (engine.definitions.files).
_STEP_KEYS = keys(TrafficStepFile)
_HOOK_POINTS = keys(HooksFile)
_HOOK_KEYS = keys(HookFile)
_STEP_BAKE = bounds(TrafficStepFile, "wait_interval")
_HOOK_DEADLINE = bounds(HookFile, "timeout_seconds")
_GATE_KEYS = keys(TrafficGateFile)
_SYNTHETIC_KEYS = keys(SyntheticInvokeFile)
_GATE_COUNT = bounds(TrafficGateFile, "min_invocations")
_GATE_WAIT = bounds(TrafficGateFile, "max_wait")
_GATE_CHECK = bounds(TrafficGateFile, "check_interval")
_ON_TIMEOUT: tuple[str, ...] = get_args(GateTimeout)
_RELEASE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
_GATE_EXAMPLE = '"trafficGate": {"minInvocations": 100, "maxWait": 600}'
_STEPS_EXAMPLE = (
    '"steps": [{"weight": 0.1, "waitInterval": 300}, {"weight": 1.0, "waitInterval": 600}]'
)


def parse_steps(raw: Any, file: str) -> tuple[TrafficStep, ...]:
    """``trafficShiftingConfig.steps``: 1 to TRAFFIC_STEPS_MAX steps, weights strictly rising
    in (0, 1], each ``waitInterval`` within TrafficStepFile's range."""
    where = "trafficShiftingConfig.steps"
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(
            f"{where} must be a non-empty list of steps", file=file, hint=f"e.g. {_STEPS_EXAMPLE}"
        )
    if len(raw) > TRAFFIC_STEPS_MAX:
        raise DefinitionError(
            f"{where} has {len(raw)} steps, more than {TRAFFIC_STEPS_MAX}",
            file=file,
            hint="merge steps: each one is an alias update and a bake",
        )
    steps: list[TrafficStep] = []
    for index, item in enumerate(raw):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise DefinitionError(
                f"{at} must be an object",
                file=file,
                hint='e.g. {"weight": 0.1, "waitInterval": 300}',
            )
        check_keys(item, _STEP_KEYS, at, file)
        weight = item.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise DefinitionError(
                f"{at}.weight must be a number", file=file, hint="a share of traffic, e.g. 0.1"
            )
        if not 0 < weight <= 1:
            raise DefinitionError(
                f"{at}.weight is {weight}, outside (0, 1]",
                file=file,
                hint="a share of traffic above 0 and at most 1.0 (1.0 is the promote)",
            )
        if steps and weight <= steps[-1].weight:
            raise DefinitionError(
                f"{at}.weight {weight} does not rise above the step before ({steps[-1].weight})",
                file=file,
                hint="list the steps in strictly rising order of weight",
            )
        wait = check_int(
            item.get("waitInterval", _STEP_BAKE.default), f"{at}.waitInterval", _STEP_BAKE, file
        )
        steps.append(TrafficStep(weight=float(weight), wait_interval=wait))
    return tuple(steps)


def parse_hooks(raw: Any, file: str) -> Hooks:
    """``hooks``: at each point a function name or ARN, or ``{"function", "timeoutSeconds"}``
    (within HookFile's range and default)."""
    if not isinstance(raw, dict):
        raise DefinitionError(
            "hooks must be a JSON object",
            file=file,
            hint='e.g. "hooks": {"beforeAllowTraffic": "my-smoke-test"}',
        )
    check_keys(raw, _HOOK_POINTS, "hooks", file)
    before = _hook(raw.get("beforeAllowTraffic"), "hooks.beforeAllowTraffic", file)
    after = _hook(raw.get("afterAllowTraffic"), "hooks.afterAllowTraffic", file)
    return Hooks(before_allow_traffic=before, after_allow_traffic=after)


def _hook(raw: Any, where: str, file: str) -> Hook | None:
    if raw is None:
        return None
    timeout: int = _HOOK_DEADLINE.default
    if isinstance(raw, dict):
        check_keys(raw, _HOOK_KEYS, where, file)
        timeout = check_int(
            raw.get("timeoutSeconds", timeout), f"{where}.timeoutSeconds", _HOOK_DEADLINE, file
        )
        raw = raw.get("function")
    if not isinstance(raw, str) or not _INVOKABLE.fullmatch(raw):
        raise DefinitionError(
            f"{where} must name a Lambda function",
            file=file,
            hint='a function name (my-hook), its ARN, or {"function": ..., "timeoutSeconds": 20}',
        )
    return Hook(function=raw, timeout_seconds=timeout)


def parse_gate(raw: Any, file: str) -> TrafficGate:
    """``trafficGate``: ``minInvocations`` (required), ``maxWait``, ``onTimeout``,
    ``checkInterval`` and ``syntheticInvoke``, each within TrafficGateFile's range."""
    if not isinstance(raw, dict):
        raise DefinitionError(
            "trafficGate must be a JSON object", file=file, hint=f"e.g. {_GATE_EXAMPLE}"
        )
    check_keys(raw, _GATE_KEYS, "trafficGate", file)
    if "minInvocations" not in raw:
        raise DefinitionError(
            "trafficGate.minInvocations is missing",
            file=file,
            hint=f"the invocations each step needs, e.g. {_GATE_EXAMPLE}",
        )
    count = check_int(raw["minInvocations"], "trafficGate.minInvocations", _GATE_COUNT, file)
    wait = check_int(
        raw.get("maxWait", _GATE_WAIT.default), "trafficGate.maxWait", _GATE_WAIT, file
    )
    check = check_int(
        raw.get("checkInterval", _GATE_CHECK.default),
        "trafficGate.checkInterval",
        _GATE_CHECK,
        file,
    )
    on_timeout = raw.get("onTimeout", default(TrafficGateFile, "on_timeout"))
    if on_timeout not in _ON_TIMEOUT:
        raise DefinitionError(
            f"trafficGate.onTimeout must be one of {', '.join(repr(o) for o in _ON_TIMEOUT)}",
            file=file,
            hint='"rollback" (the default) rolls back a step that got too little traffic; '
            '"promote" goes on',
        )
    synthetic = None
    if raw.get("syntheticInvoke") is not None:
        synthetic = _synthetic(raw["syntheticInvoke"], file)
    return TrafficGate(
        min_invocations=count,
        max_wait=wait,
        on_timeout=on_timeout,
        check_interval=check,
        synthetic=synthetic,
    )


def _synthetic(raw: Any, file: str) -> SyntheticInvoke:
    where = "trafficGate.syntheticInvoke"
    if not isinstance(raw, dict):
        raise DefinitionError(
            f"{where} must be a JSON object",
            file=file,
            hint='e.g. {"payload": {"probe": true}, "ratePerSecond": 1}',
        )
    check_keys(raw, _SYNTHETIC_KEYS, where, file)
    payload = json.dumps(raw.get("payload", {}), sort_keys=True, separators=(",", ":"))
    if len(payload.encode()) > SYNTHETIC_PAYLOAD_MAX:
        raise DefinitionError(
            f"{where}.payload is {len(payload.encode()):,} bytes of JSON, more than "
            f"{SYNTHETIC_PAYLOAD_MAX:,}",
            file=file,
            hint="a probe needs a small event; keep what it checks in the function",
        )
    rate = raw.get("ratePerSecond", default(SyntheticInvokeFile, "rate_per_second"))
    if isinstance(rate, bool) or not isinstance(rate, int | float):
        raise DefinitionError(
            f"{where}.ratePerSecond must be a number", file=file, hint="e.g. 1 or 0.5"
        )
    if not 0 < rate <= SYNTHETIC_RATE_MAX:
        raise DefinitionError(
            f"{where}.ratePerSecond is {rate}, outside (0, {SYNTHETIC_RATE_MAX:g}]",
            file=file,
            hint=f"at most {SYNTHETIC_RATE_MAX:g} invocations a second",
        )
    return SyntheticInvoke(payload=payload, rate_per_second=float(rate))


def parse_release(raw: Any, file: str) -> str | None:
    """``release``: a name of 1 to 64 letters, digits, '.', '-' or '_' (None: no release)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _RELEASE_NAME.fullmatch(raw):
        shown = json.dumps(raw)[:80]
        raise DefinitionError(
            f"release must be a name of 1 to 64 letters, digits, '.', '-' or '_', not {shown}",
            file=file,
            hint='e.g. "release": "checkout-2026-12"; functions of one commit sharing it move '
            "as one",
        )
    return raw
