"""The progressive-delivery keys of a deployment definition, validated when planned."""

from __future__ import annotations

import re
from typing import Any

import pytest

from engine.definitions.settings import parse_settings
from engine.errors import DefinitionError
from engine.events.desired import Hook, SyntheticInvoke, TrafficGate, TrafficStep

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


def test_a_traffic_gate_is_read_with_its_defaults() -> None:
    settings = _settings(trafficGate={"minInvocations": 100})
    assert settings.traffic_gate == TrafficGate(min_invocations=100)
    full = _settings(
        trafficGate={
            "minInvocations": 5,
            "maxWait": 30,
            "onTimeout": "promote",
            "checkInterval": 10,
            "syntheticInvoke": {"payload": {"probe": True}, "ratePerSecond": 2},
        }
    )
    assert full.traffic_gate == TrafficGate(
        min_invocations=5,
        max_wait=30,
        on_timeout="promote",
        check_interval=10,
        synthetic=SyntheticInvoke(payload='{"probe":true}', rate_per_second=2.0),
    )
    assert _settings().traffic_gate is None  # Gitmoxi files: no gate


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        pytest.param([], "must be a JSON object", id="not-object"),
        pytest.param({}, "minInvocations is missing", id="missing"),
        pytest.param({"minInvocations": 0}, "outside 1..", id="zero"),
        pytest.param({"minInvocations": "10"}, "must be an integer", id="text"),
        pytest.param({"minInvocations": 1, "maxWait": -1}, "outside 0..86400", id="wait"),
        pytest.param({"minInvocations": 1, "onTimeout": "wait"}, "onTimeout must be", id="onto"),
        pytest.param({"minInvocations": 1, "checkInterval": 0}, "outside 1..", id="interval"),
        pytest.param({"minInvocation": 1}, "unknown key 'trafficGate.minInvocation'", id="typo"),
        pytest.param(
            {"minInvocations": 1, "syntheticInvoke": {"ratePerSecond": 50}},
            "outside (0, 10]",
            id="rate",
        ),
        pytest.param(
            {"minInvocations": 1, "syntheticInvoke": {"payload": "x" * 7000}},
            "more than 6,000",
            id="payload",
        ),
        pytest.param(
            {"minInvocations": 1, "syntheticInvoke": {"rate": 1}}, "unknown key", id="synkey"
        ),
    ],
)
def test_bad_traffic_gates_are_refused_naming_the_file(gate: Any, message: str) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)) as refused:
        _settings(trafficGate=gate)
    assert refused.value.file == FILE
    if message.startswith("unknown key 'trafficGate.minInvocation'"):
        assert refused.value.hint == "did you mean 'minInvocations'?"


def test_a_release_name_is_read() -> None:
    assert _settings(release="checkout-2026.12_a").release == "checkout-2026.12_a"
    assert _settings().release is None


@pytest.mark.parametrize("name", ["", "a b", "x" * 65, 12, ["checkout"], "chéckout"])
def test_bad_release_names_are_refused(name: Any) -> None:
    with pytest.raises(DefinitionError, match="release must be a name of 1 to 64") as refused:
        _settings(release=name)
    assert refused.value.file == FILE
    assert "checkout-2026-12" in (refused.value.hint or "")
