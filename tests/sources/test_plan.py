"""The pure rules of event-source reconciliation (engine.sources_plan)."""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest

from engine.events.desired import EventSources, PushSource
from engine.sources_plan import (
    CREATE_ONLY_MAPPING_KEYS,
    ELB_SERVICE,
    UPDATABLE_MAPPING_KEYS,
    ActualMapping,
    CreateMapping,
    DeleteMapping,
    KeepMapping,
    UpdateMapping,
    decide_permission,
    grants,
    integration_uri,
    mapping_key,
    observe_mapping,
    plan_detach_mappings,
    plan_mappings,
    plan_push,
    statement_id,
)

ALIAS_ARN = "arn:aws:lambda:us-east-1:123456789012:function:orders:PROD"
QUEUE = "arn:aws:sqs:us-east-1:123456789012:orders"
OTHER = "arn:aws:sqs:us-east-1:123456789012:other"


def actual(uuid: str, source: str, *, on_alias: bool = True, **config: Any) -> ActualMapping:
    return ActualMapping(
        uuid,
        mapping_key({"EventSourceArn": source}),
        on_alias,
        config.pop("State", "Enabled"),
        {"EventSourceArn": source, "UUID": uuid, **config},
    )


def test_updatable_keys_follow_botocore() -> None:
    """The plan's list of updatable keys is botocore's UpdateEventSourceMapping request."""
    model = botocore.session.get_session().get_service_model("lambda")
    update = set(model.operation_model("UpdateEventSourceMapping").input_shape.members)
    create = set(model.operation_model("CreateEventSourceMapping").input_shape.members)
    assert update - {"UUID", "FunctionName"} == UPDATABLE_MAPPING_KEYS
    assert create - update >= CREATE_ONLY_MAPPING_KEYS


@pytest.mark.parametrize(
    ("request_", "key"),
    [
        pytest.param({"EventSourceArn": QUEUE}, QUEUE, id="arn"),
        pytest.param(
            {"EventSourceArn": "arn:msk", "Topics": ["b", "a"]}, "arn:msk|topics=a,b", id="msk"
        ),
        pytest.param(
            {
                "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["h2", "h1"]}},
                "Topics": ["t"],
            },
            "KAFKA_BOOTSTRAP_SERVERS=h1,h2|topics=t",
            id="self-managed-kafka",
        ),
        pytest.param({"EventSourceArn": "arn:mq", "Queues": ["q"]}, "arn:mq|queues=q", id="mq"),
    ],
)
def test_mapping_key_identifies_the_source(request_: dict[str, Any], key: str) -> None:
    """A source is its ARN plus its topics or queues, in any order."""
    assert mapping_key(request_) == key


def test_mapping_without_a_source_is_refused() -> None:
    with pytest.raises(ValueError, match="EventSourceArn"):
        mapping_key({"BatchSize": 1})


def test_new_source_is_created_with_the_alias_filled_in() -> None:
    """A request without FunctionName targets the alias."""
    ops = plan_mappings([{"EventSourceArn": QUEUE}], [], [], function_ref="orders:PROD")
    assert ops == [CreateMapping(QUEUE, {"EventSourceArn": QUEUE, "FunctionName": "orders:PROD"})]


def test_identical_mapping_is_adopted_then_unchanged() -> None:
    """Same source on the alias: adopted the first time, unchanged once glam deployed it."""
    have = [actual("u1", QUEUE, BatchSize=10)]
    want = [{"EventSourceArn": QUEUE, "BatchSize": 10}]
    assert plan_mappings(want, [], have, function_ref="f:P") == [
        KeepMapping(QUEUE, "u1", "adopted")
    ]
    assert plan_mappings(want, want, have, function_ref="f:P") == [
        KeepMapping(QUEUE, "u1", "unchanged")
    ]


def test_mapping_on_another_qualifier_is_not_the_alias_mapping() -> None:
    """A mapping of the source on $LATEST is left alone; the alias gets its own."""
    have = [actual("u1", QUEUE, on_alias=False)]
    ops = plan_mappings([{"EventSourceArn": QUEUE}], [], have, function_ref="f:P")
    assert [type(op) for op in ops] == [CreateMapping]


def test_only_changed_updatable_keys_are_sent() -> None:
    """Unchanged keys, keys AWS fills in, and create-only keys are not updated."""
    have = [
        actual(
            "u1", QUEUE, BatchSize=10, MaximumBatchingWindowInSeconds=0, StartingPosition="LATEST"
        )
    ]
    want = [{"EventSourceArn": QUEUE, "BatchSize": 20, "StartingPosition": "TRIM_HORIZON"}]
    assert plan_mappings(want, want, have, function_ref="f:P") == [
        UpdateMapping(QUEUE, "u1", {"BatchSize": 20}, ("StartingPosition",))
    ]


@pytest.mark.parametrize(
    ("state", "enabled", "update"),
    [
        pytest.param("Enabled", True, False, id="enabled-stays"),
        pytest.param("Disabled", True, True, id="enable"),
        pytest.param("Enabled", False, True, id="disable"),
        pytest.param("Disabling", False, False, id="already-disabling"),
    ],
)
def test_enabled_is_compared_with_the_state(state: str, enabled: bool, update: bool) -> None:
    have = [actual("u1", QUEUE, State=state)]
    ops = plan_mappings(
        [{"EventSourceArn": QUEUE, "Enabled": enabled}], [], have, function_ref="f:P"
    )
    assert isinstance(ops[0], UpdateMapping) is update


def test_nested_parameters_compare_by_value() -> None:
    """A desired nested dict matches when AWS echoes it, with extra fields of its own."""
    have = [actual("u1", QUEUE, ScalingConfig={"MaximumConcurrency": 5, "Extra": 1})]
    want = [{"EventSourceArn": QUEUE, "ScalingConfig": {"MaximumConcurrency": 5}}]
    assert isinstance(plan_mappings(want, want, have, function_ref="f:P")[0], KeepMapping)


def test_removed_source_is_deleted_and_unknown_ones_are_left() -> None:
    """Only what the previous deployment had is deleted; a stranger's mapping stays."""
    have = [actual("u1", QUEUE), actual("u2", OTHER)]
    ops = plan_mappings([], [{"EventSourceArn": QUEUE}], have, function_ref="f:P")
    assert ops == [DeleteMapping(QUEUE, "u1")]


def test_duplicates_pick_one_mapping_every_time() -> None:
    """Emulators accept duplicates; glam always keeps talking to the same one."""
    have = [actual("u2", QUEUE), actual("u1", QUEUE)]
    ops = plan_mappings([{"EventSourceArn": QUEUE}], [], have, function_ref="f:P")
    assert ops == [KeepMapping(QUEUE, "u1", "adopted")]


def test_two_desired_mappings_of_one_source_are_refused() -> None:
    with pytest.raises(ValueError, match="same source"):
        plan_mappings(
            [{"EventSourceArn": QUEUE}, {"EventSourceArn": QUEUE, "BatchSize": 1}],
            [],
            [],
            function_ref="f:P",
        )


def test_detach_removes_alias_mappings_and_previous_sources() -> None:
    have = [
        actual("u1", QUEUE),
        actual("u2", OTHER, on_alias=False),
        actual("u3", "arn:aws:sqs:us-east-1:1:x", on_alias=False),
    ]
    assert plan_detach_mappings([{"EventSourceArn": OTHER}], have) == [
        DeleteMapping(QUEUE, "u1"),
        DeleteMapping(OTHER, "u2"),
    ]


def test_observed_mapping_is_on_the_alias_by_listing_or_by_arn() -> None:
    item = {"UUID": "u", "EventSourceArn": QUEUE, "FunctionArn": ALIAS_ARN, "State": "Enabled"}
    assert observe_mapping(item, alias_arn=ALIAS_ARN, listed_under_alias=False).on_alias
    bare = {**item, "FunctionArn": ALIAS_ARN.rsplit(":", 1)[0]}
    assert not observe_mapping(bare, alias_arn=ALIAS_ARN, listed_under_alias=False).on_alias
    assert observe_mapping(bare, alias_arn=ALIAS_ARN, listed_under_alias=True).on_alias


def test_statement_ids_are_deterministic_and_distinct() -> None:
    a = statement_id(ELB_SERVICE, "arn:tg/a")
    assert a == statement_id(ELB_SERVICE, "arn:tg/a")
    assert a.startswith("glam-elb-")
    assert a != statement_id(ELB_SERVICE, "arn:tg/b")
    assert statement_id("apigateway.amazonaws.com", "abc").startswith("glam-apigw-")


def _statement(sid: str, principal: Any, source: str, **extra: Any) -> dict[str, Any]:
    return {
        "Sid": sid,
        "Effect": "Allow",
        "Principal": principal,
        "Action": "lambda:InvokeFunction",
        "Condition": {"ArnLike": {"AWS:SourceArn": source}},
        **extra,
    }


def test_permission_decisions() -> None:
    """Keep glam's own, adopt an identical one, replace a stale one, add when missing."""
    service = {"Service": ELB_SERVICE}
    assert decide_permission([], "s", ELB_SERVICE, "tg").action == "add"
    assert decide_permission([_statement("s", service, "tg")], "s", ELB_SERVICE, "tg").action == (
        "keep"
    )
    adopted = decide_permission([_statement("x", service, "tg")], "s", ELB_SERVICE, "tg")
    assert (adopted.action, adopted.statement_id, adopted.adopted) == ("keep", "x", True)
    assert decide_permission([_statement("s", service, "old")], "s", ELB_SERVICE, "tg").action == (
        "replace"
    )


def test_grants_requires_principal_action_and_source() -> None:
    assert grants(_statement("s", ELB_SERVICE, "tg"), ELB_SERVICE, "tg")
    assert not grants(_statement("s", {"Service": "sns.amazonaws.com"}, "tg"), ELB_SERVICE, "tg")
    assert not grants(_statement("s", ELB_SERVICE, "tg", Effect="Deny"), ELB_SERVICE, "tg")
    assert not grants(
        _statement("s", ELB_SERVICE, "tg", Action="lambda:GetFunction"), ELB_SERVICE, "tg"
    )


def test_integration_uri() -> None:
    assert integration_uri(ALIAS_ARN, None) == ALIAS_ARN
    assert integration_uri(ALIAS_ARN, "alias") == (
        "arn:aws:lambda:us-east-1:123456789012:function:orders:${stageVariables.alias}"
    )


def test_push_plan_attaches_desired_and_detaches_gone() -> None:
    tg1 = PushSource(service=ELB_SERVICE, target_group_arn="tg1")
    tg2 = PushSource(service=ELB_SERVICE, target_group_arn="tg2")
    route = PushSource(service="apigateway.amazonaws.com", api_id="a", route_id="r")
    staged = route.model_copy(update={"stage_variable": "v"})
    plan = plan_push(EventSources(push=(tg2, staged)), EventSources(push=(tg1, route)))
    assert plan.attach == ((tg2, None), (staged, route))
    assert plan.detach == (tg1,)
    assert plan.kept_scopes == {"tg2", "a"}


def test_push_source_without_ids_is_refused() -> None:
    with pytest.raises(ValueError, match="TargetGroupArn"):
        plan_push(EventSources(push=(PushSource(service=ELB_SERVICE),)), None)
