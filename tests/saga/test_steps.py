"""The saga's typed boundary, given/when/then: step names, step results and AWS operations.

What the log stores must not change: every step name and result reads back to the same text
an earlier glam wrote, and the runner records the same JSON it always did.
"""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import types
from dataclasses import fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine.saga
from engine.events import decode, encode
from engine.events.desired import EventSources
from engine.events.function import StepFailed, StepStarted, StepSucceeded, TimerStarted
from engine.ports import (
    AliasInfo,
    CodeObjects,
    FunctionInfo,
    InvocationsApi,
    LambdaApi,
    SourceChange,
    SourcesApi,
    VersionInfo,
)
from engine.runtime.failpoints import MUTATIONS
from engine.saga import (
    Call,
    SagaContext,
    Wait,
    Waited,
    fold,
    initial_state,
    next_effect,
    on_outcome,
)
from engine.saga.calls import PERFORMS
from engine.saga.effects import (
    OPERATIONS,
    CodeRead,
    CreateFunction,
    MetricsRead,
    ReconcileSources,
    SourcesWrite,
    UpdateAlias,
    UpdateConfig,
)
from engine.saga.results import (
    AlarmsRead,
    AliasRead,
    AlreadyAbsent,
    Applied,
    CodeHashed,
    Deleted,
    FunctionRead,
    HookAnswer,
    InvocationsCounted,
    Kept,
    Published,
    SigningRead,
    SourcesChanged,
    VersionsRead,
    parse_result,
)
from engine.saga.steps import STEPS, StepName
from tests.saga.support import NAME
from tests.saga.test_saga import NOW, PUBLISHED

ROOT = Path(__file__).parents[2]


@given(st.text())
def test_any_stored_step_name_reads_back_to_the_same_text(text: str) -> None:
    """Whatever text a log holds as a step's name, it loads and is written back unchanged."""
    assert str(StepName.parse(text)) == text


@pytest.mark.parametrize(
    ("text", "name"),
    [
        pytest.param("publish", StepName("publish"), id="step"),
        pytest.param("settle", StepName("settle"), id="settle"),
        pytest.param("wait:bake", StepName.wait("bake"), id="wait"),
        pytest.param("resolve:publish", StepName.resolve("publish"), id="resolve"),
        pytest.param("publish_version", StepName(unknown="publish_version"), id="unknown"),
        pytest.param("wait:someday", StepName(unknown="wait:someday"), id="unknown-purpose"),
        pytest.param("resolve:label", StepName(unknown="resolve:label"), id="unknown-resolved"),
        pytest.param("wait:bake:x", StepName(unknown="wait:bake:x"), id="two-colons"),
    ],
)
def test_step_names_parse_into_their_parts(text: str, name: StepName) -> None:
    """Each spelling has one meaning; a name this glam does not know is kept verbatim."""
    assert StepName.parse(text) == name
    assert str(name) == text


def test_a_step_name_has_exactly_one_part() -> None:
    """A step, a wait, a resolve read or an unknown name: never none, never two."""
    with pytest.raises(ValueError, match="exactly one part"):
        StepName()
    with pytest.raises(ValueError, match="exactly one part"):
        StepName("publish", purpose="bake")


@pytest.mark.parametrize("text", ["publish", "wait:bake", "resolve:shift", "publish_version"])
def test_step_events_store_the_text_they_always_stored(text: str) -> None:
    """Built from a StepName or its text, a step event is stored as that text and decodes
    into the StepName."""
    events: list[StepStarted | StepSucceeded | StepFailed] = [
        StepStarted(deployment_id="d", step=StepName.parse(text)),
        StepSucceeded(deployment_id="d", step=text),
        StepFailed(deployment_id="d", step=text, error_code="E", message="m", retryable=True),
    ]
    for event in events:
        type_name, version, data = encode(event)
        assert json.loads(data)["step"] == text
        assert decode(type_name, version, data) == event
        assert event.step == StepName.parse(text)


FUNCTION = FunctionInfo(
    name="orders",
    arn="arn:aws:lambda:us-east-1:1:function:orders",
    version="$LATEST",
    state="Active",
    last_update_status="Successful",
    code_sha256="abc",
    revision_id="r1",
    description="d",
    state_reason="",
    configuration={"Environment": {"Variables": {"TOKEN": "secret-value"}}},
)


def test_a_function_read_records_what_it_always_recorded() -> None:
    """The runner records a function read as before, never the raw configuration."""
    recorded = FunctionRead.from_info(FUNCTION).to_json()
    assert recorded == {
        "found": True,
        "name": "orders",
        "arn": "arn:aws:lambda:us-east-1:1:function:orders",
        "version": "$LATEST",
        "state": "Active",
        "last_update_status": "Successful",
        "code_sha256": "abc",
        "revision_id": "r1",
        "description": "d",
        "state_reason": "",
    }
    assert "secret-value" not in json.dumps(recorded)
    assert FunctionRead.from_info(None).to_json() == {"found": False}


def test_a_compared_read_records_member_names_never_values() -> None:
    """A read compared with the definition records which members differ, the create-only
    ones with their live value, and the tag keys to change; no environment value."""
    live = replace(FUNCTION, tags={"team": "a", "old": "x"})
    against = {
        "FunctionName": "orders",
        "Role": "r",
        "Code": {"S3Bucket": "b", "S3Key": "k"},
        "Environment": {"Variables": {"TOKEN": "another-secret"}},
        "PackageType": "Image",
        "Tags": {"team": "b"},
    }
    recorded = FunctionRead.from_info(live, against).to_json()
    assert recorded["differs"] == ["Environment", "Role"]
    assert recorded["create_only"] == {"PackageType": "None"}
    assert (recorded["tags_set"], recorded["tags_removed"]) == (["team"], ["old"])
    assert "secret" not in json.dumps(recorded)
    # Nothing differs: recorded as an empty list, not left out (left out: not compared).
    same = {"FunctionName": "orders", "Environment": {"Variables": {"TOKEN": "secret-value"}}}
    config = {**FUNCTION.configuration, "Architectures": ["x86_64"], "PackageType": "Zip"}
    info = replace(FUNCTION, configuration=config)
    assert FunctionRead.from_info(info, same).to_json()["differs"] == []


def test_alias_and_version_reads_record_what_they_always_recorded() -> None:
    alias = AliasInfo(name="live", function_version="1", routing={"2": 0.2}, revision_id="r")
    assert AliasRead.from_info(alias).to_json() == {
        "found": True,
        "name": "live",
        "function_version": "1",
        "routing": {"2": 0.2},
        "revision_id": "r",
        "arn": "",
    }
    assert AliasRead.from_info(None).to_json() == {"found": False}
    version = VersionInfo(version="2", code_sha256="abc", description="glam deployment d2")
    expected = {
        "version": "2",
        "code_sha256": "abc",
        "description": "glam deployment d2",
        "revision_id": "",
    }
    assert Published.from_info(version).to_json() == expected
    assert VersionsRead.from_infos([version]).to_json() == {"versions": [expected]}


def test_source_changes_record_what_they_always_recorded() -> None:
    """Details that are not JSON (a datetime from an AWS answer) are recorded as text."""
    when = datetime(2025, 1, 1, tzinfo=UTC)
    change = SourceChange("mapping", "attached", "uuid-1", {"BatchSize": 10, "At": when})
    assert SourcesChanged.from_changes([change]).to_json() == {
        "changes": [
            {
                "kind": "mapping",
                "change": "attached",
                "source_id": "uuid-1",
                "details": {"BatchSize": 10, "At": str(when)},
            }
        ]
    }


@pytest.mark.parametrize(
    ("result", "recorded"),
    [
        pytest.param(Deleted(), {}, id="deleted"),
        pytest.param(AlreadyAbsent(), {"already_absent": True}, id="already-absent"),
        pytest.param(Kept(reason="why"), {"kept": "why"}, id="kept"),
        pytest.param(AlarmsRead(), {}, id="no-alarms"),
        pytest.param(
            AlarmsRead(alarms={"errors": "OK"}), {"alarms": {"errors": "OK"}}, id="alarms"
        ),
    ],
)
def test_small_results_record_what_they_always_recorded(result: Any, recorded: object) -> None:
    assert result.to_json() == recorded


# One result of every step as a log of this or an earlier glam holds it.
RECORDED: dict[str, tuple[dict[str, Any], type]] = {
    "inspect_function": ({"found": False}, FunctionRead),
    "create_function": ({"State": "Pending"}, FunctionRead),  # the first golden log's
    "wait_active": ({"state": "Active", "last_update_status": "Successful"}, FunctionRead),
    "update_config": ({"found": True, "revision_id": "r"}, FunctionRead),
    "wait_config": ({"last_update_status": "Successful"}, FunctionRead),
    "update_code": ({"found": True}, FunctionRead),
    "wait_code": ({"last_update_status": "InProgress"}, FunctionRead),
    "readiness": ({"found": False}, FunctionRead),
    "settle": ({"last_update_status": "Successful"}, FunctionRead),
    "inspect_alias": ({"found": True, "function_version": "1", "routing": {}}, AliasRead),
    "create_alias": ({"found": True, "function_version": "1"}, AliasRead),
    "shift": ({"function_version": "1", "routing": {"2": 0.2}}, AliasRead),
    "promote": ({"function_version": "2", "routing": {}}, AliasRead),
    "reset_alias": ({"function_version": "1", "routing": {}}, AliasRead),
    "verify_old": ({"found": True, "function_version": "2"}, AliasRead),
    "rollback_alias": ({"function_version": "1"}, AliasRead),
    "rollback_verify": ({"found": False}, AliasRead),
    "publish": ({"version": "2", "description": "glam deployment d2"}, Published),
    "delete_old": ({}, Deleted),
    "rollback_delete_new": ({"kept": "it failed"}, Kept),
    "delete_function": ({"already_absent": True}, AlreadyAbsent),
    "sources": ({"changes": []}, SourcesChanged),
    "rollback_sources": ({"kept": "it failed"}, Kept),
    "detach_sources": ({"changes": []}, SourcesChanged),
    "inspect_stable": ({"found": True, "version": "1", "differs": []}, FunctionRead),
    "hash_code": ({"code_sha256": "abc"}, CodeHashed),
    "inspect_signing": ({"arn": None}, SigningRead),
    "tag": ({}, Applied),
    "untag": ({}, Applied),
    "put_signing": ({}, Applied),
    "delete_signing": ({}, Applied),
    "delete_alias": ({}, Deleted),
    "detach_old_alias": ({"changes": []}, SourcesChanged),
    "hook_before": (
        {"point": "beforeAllowTraffic", "function": "smoke", "status": "succeeded"},
        HookAnswer,
    ),
    "hook_after": (
        {"point": "afterAllowTraffic", "function": "verify", "status": "failed", "extra": 1},
        HookAnswer,
    ),
    "gate": (
        {
            "version": "2",
            "invocations": 3,
            "since": "2026-01-01T00:00:00Z",
            "until": "2026-01-01T00:05Z",
        },
        InvocationsCounted,
    ),
}


def test_every_step_reads_its_recorded_result() -> None:
    """Each step's result parses into its model; unknown keys are passed over."""
    assert set(RECORDED) == STEPS
    for step, (raw, model) in RECORDED.items():
        assert type(parse_result(StepName.parse(step), raw)) is model, step
    assert parse_result(StepName.wait("bake"), {}) == AlarmsRead()
    assert parse_result(StepName(unknown="publish_version"), {"Version": "1"}) is None


def test_each_operation_is_a_port_method_taking_its_fields() -> None:
    """An operation's fields are arguments of the port method it names."""
    for operation in OPERATIONS:
        port: type = LambdaApi
        if issubclass(operation, SourcesWrite):
            port = SourcesApi
        elif issubclass(operation, CodeRead):
            port = CodeObjects
        elif issubclass(operation, MetricsRead):
            port = InvocationsApi
        method = getattr(port, operation.method)
        parameters = set(inspect.signature(method).parameters) - {"self"}
        taken = {f.name for f in fields(operation)} - operation.runner_only
        assert taken <= parameters, operation


def test_the_mutations_are_the_ones_failpoints_name() -> None:
    """The crash matrix and GLAM_FAILPOINTS name these port methods."""
    named = {
        "create_function",
        "update_function_configuration",
        "update_function_code",
        "publish_version",
        "create_alias",
        "update_alias",
        "delete_version",
        "delete_function",
        "reconcile",
        "detach_all",
        "delete_alias",
        "tag_function",
        "untag_function",
        "put_code_signing_config",
        "delete_code_signing_config",
        "invoke",
    }
    assert named == MUTATIONS


def test_dangling_steps_are_settled_by_the_reads_they_always_were() -> None:
    """A step the read settles; the others are idempotent and simply repeated."""
    settled = {step: op.resolver.method for step, op in PERFORMS.items() if op.resolver}
    assert settled == {
        "create_function": "get_function",
        "delete_function": "get_function",
        "publish": "list_versions",
        "delete_old": "list_versions",
        "rollback_delete_new": "list_versions",
        "create_alias": "get_alias",
        "shift": "get_alias",
        "promote": "get_alias",
        "reset_alias": "get_alias",
        "rollback_alias": "get_alias",
    }
    assert set(PERFORMS) - set(settled) == {
        "hook_before",  # a hook is invoked again: the contract asks it to allow that
        "hook_after",
        "update_config",
        "update_code",
        "sources",
        "rollback_sources",
        "detach_sources",
        "detach_old_alias",
        "delete_alias",
        "tag",
        "untag",
        "put_signing",
        "delete_signing",
    }


def test_an_intent_records_the_arguments_it_always_recorded() -> None:
    """Never the definition (it can hold environment values) nor the bulky event sources."""
    assert UpdateAlias("orders", "live", "1", {"2": 0.2}).summary() == {
        "name": "orders",
        "alias": "live",
        "version": "1",
        "routing": {"2": 0.2},
    }
    assert CreateFunction({"FunctionName": "orders", "Environment": {}}).summary() == {}
    assert UpdateConfig("orders", {"Environment": {}}).summary() == {"name": "orders"}
    reconcile = ReconcileSources("orders", "arn:live", EventSources(), None)
    assert reconcile.summary() == {"function_name": "orders", "alias_arn": "arn:live"}


def test_the_saga_package_exports_what_it_names() -> None:
    """Every name engine.saga lists is the object of its home module, never a module."""
    assert set(engine.saga.__all__) == set(engine.saga._HOME_OF)
    for name, home in engine.saga._HOME_OF.items():
        value = getattr(engine.saga, name)
        assert not isinstance(value, types.ModuleType), name
        assert getattr(importlib.import_module(home), name) is value, name


def test_the_events_load_before_the_saga() -> None:
    """The event models use the step vocabulary; importing them first must work."""
    code = "import engine.events, engine.saga; engine.saga.fold"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, check=False)
    assert done.returncode == 0, done.stderr.decode()


def test_a_timer_of_a_purpose_this_glam_does_not_know_ends_like_any_other() -> None:
    """A wait another version recorded (``wait:<purpose>`` unknown here) ends the timer, so
    the saga goes on instead of waiting on it again and again."""
    timer = TimerStarted(deployment_id="d2", purpose="someday", until=NOW)
    state = fold(initial_state(NAME), [*PUBLISHED, timer])
    wait = next_effect(state, NOW)
    assert isinstance(wait, Wait)
    assert wait.purpose == "someday"
    events = on_outcome(state, wait, Waited(completed=True), SagaContext(now=NOW))
    assert [str(e.step) for e in events if isinstance(e, StepSucceeded)] == ["wait:someday"]
    after = next_effect(fold(state, events), NOW)
    assert isinstance(after, Call)
    assert str(after.step) == "readiness"
