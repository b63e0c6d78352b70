"""The progressive-delivery keys of a deployment definition: ``trafficShiftingConfig.steps``
and ``hooks`` (docs/progressive-delivery.md). Called by engine.definitions.settings, so each
mistake is refused when the commit is planned, naming the file and what to write instead.

    "trafficShiftingConfig": {"steps": [{"weight": 0.05, "waitInterval": 300},
                                        {"weight": 0.5, "waitInterval": 600},
                                        {"weight": 1.0, "waitInterval": 900}]},
    "hooks": {"beforeAllowTraffic": "orders-smoke-test",
              "afterAllowTraffic": {"function": "orders-verify", "timeoutSeconds": 10}}
"""

from __future__ import annotations

import re
from typing import Any

from engine.definitions.checks import check_int, check_keys
from engine.definitions.files import HookFile, HooksFile, TrafficStepFile, bounds, keys
from engine.definitions.limits import TRAFFIC_STEPS_MAX
from engine.errors import DefinitionError
from engine.events.desired import Hook, Hooks, TrafficStep

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
