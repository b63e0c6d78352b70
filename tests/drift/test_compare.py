"""The pure side of drift: the comparison (paths, masking, AWS's own tags) and the events a
sweep's findings make (recorded once, resolved, heal asked only for a new difference)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from engine.definitions.lambdadef import lambda_model
from engine.definitions.settings import parse_settings
from engine.drift.compare import MASK, Difference, Expected, LiveFunction, compare
from engine.drift.watch import Watched, sweep_events
from engine.errors import DefinitionError
from engine.events.function import DeploymentRequested, DriftDetected, DriftResolved
from engine.ports import AliasInfo, FunctionInfo
from engine.saga import initial_state
from tests.saga.support import NAME, desired

lambda_model()  # read once, before any test

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _info(tags: dict[str, str] | None = None, **configuration: object) -> FunctionInfo:
    base = {
        "FunctionName": NAME,
        "Runtime": "python3.12",
        "Role": "arn:aws:iam::123456789012:role/lambda",
        "Handler": "app.handler",
        "MemorySize": 128,
    }
    base.update(configuration)
    return FunctionInfo(
        name=NAME,
        arn=f"arn:aws:lambda:us-east-1:1:function:{NAME}",
        version="$LATEST",
        state="Active",
        last_update_status="Successful",
        code_sha256="",
        revision_id="r",
        configuration=base,
        tags=tags or {},
    )


def test_an_environment_value_never_shows() -> None:
    want = desired("v1")
    definition = {**want.definition, "Environment": {"Variables": {"TOKEN": "old-secret"}}}
    want = want.model_copy(update={"definition": definition})
    live = _info(Environment={"Variables": {"TOKEN": "new-secret"}})
    found = compare(
        Expected(NAME, want, "1"),
        LiveFunction(latest=live, alias=AliasInfo("live", "1", {})),
    )
    assert found == (Difference("$LATEST.Environment.Variables.TOKEN", MASK, MASK),)
    assert "secret" not in found[0].text()


def test_aws_own_tags_are_not_drift() -> None:
    live = _info(tags={"aws:cloudformation:stack-name": "x", "team": "a"})
    alias = AliasInfo("live", "1", {})
    found = compare(Expected(NAME, desired("v1"), "1"), LiveFunction(latest=live, alias=alias))
    assert [d.path for d in found] == ["tags.team"]


def _watched(policy: str, open_: dict[str, DriftDetected] | None = None) -> Watched:
    want = desired("v1")
    want = want.model_copy(
        update={"settings": want.settings.model_copy(update={"drift_policy": policy})}
    )
    state = replace(initial_state(NAME), deployed=want, stable_version="1", function_exists=True)
    return Watched(state=state, open=open_ or {})


def test_a_difference_is_recorded_once_and_resolved_when_gone() -> None:
    memory = Difference("$LATEST.MemorySize", 128, 512)
    first = sweep_events(_watched("alert"), [memory], NOW, lambda: "d")
    assert [type(e) for e in first] == [DriftDetected]
    recorded = first[0]
    assert isinstance(recorded, DriftDetected)
    again = sweep_events(_watched("alert", {memory.path: recorded}), [memory], NOW, lambda: "d")
    assert again == []
    gone = sweep_events(_watched("alert", {memory.path: recorded}), [], NOW, lambda: "d")
    assert [type(e) for e in gone] == [DriftResolved]


def test_heal_asks_once_per_new_difference() -> None:
    memory = Difference("$LATEST.MemorySize", 128, 512)
    events = sweep_events(_watched("heal"), [memory], NOW, lambda: "heal-1")
    (request,) = [e for e in events if isinstance(e, DeploymentRequested)]
    assert request.reason == "drift: $LATEST.MemorySize"
    recorded = events[0]
    assert isinstance(recorded, DriftDetected)
    assert sweep_events(_watched("heal", {memory.path: recorded}), [memory], NOW, lambda: "x") == []


def test_drift_policy_is_validated() -> None:
    assert parse_settings({"alias": "live"}, "f").drift_policy == "alert"
    assert parse_settings({"alias": "live", "driftPolicy": "heal"}, "f").drift_policy == "heal"
    with pytest.raises(DefinitionError, match="driftPolicy"):
        parse_settings({"alias": "live", "driftPolicy": "fix"}, "f")
