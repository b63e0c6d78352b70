"""The progressive-delivery keys of a deployment definition, validated when planned."""

from __future__ import annotations

from typing import Any

import pytest

from engine.definitions.settings import parse_settings
from engine.errors import DefinitionError
from engine.events.desired import Hook, TrafficStep

FILE = "apps/orders/orders_lambdadepdef.json"


def _settings(**keys: Any) -> Any:
    return parse_settings({"alias": "live", **keys}, FILE)


def test_steps_and_hooks_are_read() -> None:
    """Custom steps keep their weights and bakes; a hook is a name or an object."""
    settings = _settings(
        trafficShiftingConfig={
            "steps": [{"weight": 0.1, "waitInterval": 30}, {"weight": 1, "waitInterval": 60}]
        },
        hooks={
            "beforeAllowTraffic": "orders-smoke",
            "afterAllowTraffic": {"function": "orders-verify", "timeoutSeconds": 5},
        },
    )
    assert settings.traffic.steps == (
        TrafficStep(weight=0.1, wait_interval=30),
        TrafficStep(weight=1.0, wait_interval=60),
    )
    assert settings.hooks.before_allow_traffic == Hook(function="orders-smoke")
    assert settings.hooks.after_allow_traffic == Hook(function="orders-verify", timeout_seconds=5)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        pytest.param({"steps": []}, "non-empty list", id="empty"),
        pytest.param({"steps": [{"weight": 0, "waitInterval": 1}]}, "outside (0, 1]", id="zero"),
        pytest.param({"steps": [{"weight": 1.5, "waitInterval": 1}]}, "outside (0, 1]", id="big"),
        pytest.param(
            {"steps": [{"weight": 0.5, "waitInterval": 1}, {"weight": 0.5, "waitInterval": 1}]},
            "does not rise",
            id="not-rising",
        ),
        pytest.param(
            {"steps": [{"weight": 0.5, "waitInterval": 100_000}]}, "outside 0..86400", id="long"
        ),
        pytest.param({"steps": [{"weight": 0.5, "wait": 1}]}, "unknown key", id="misspelt"),
        pytest.param(
            {"type": "LINEAR", "steps": [{"weight": 0.5, "waitInterval": 1}]},
            "alternative to type and percent",
            id="both",
        ),
    ],
)
def test_bad_steps_are_refused_naming_the_file(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(DefinitionError) as caught:
        _settings(trafficShiftingConfig=keys)
    assert message in str(caught.value)
    assert caught.value.file == FILE


@pytest.mark.parametrize(
    "hooks",
    [
        pytest.param({"beforeAllowTraffic": ""}, id="empty"),
        pytest.param({"beforeAllowTraffic": "has spaces"}, id="not-a-name"),
        pytest.param({"beforeTraffic": "x"}, id="unknown-point"),
        pytest.param({"afterAllowTraffic": {"function": "x", "timeoutSeconds": 60}}, id="long"),
    ],
)
def test_bad_hooks_are_refused(hooks: dict[str, Any]) -> None:
    with pytest.raises(DefinitionError):
        _settings(hooks=hooks)
