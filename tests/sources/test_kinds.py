"""The push-kind table: one entry per kind, read the same way by every layer."""

from __future__ import annotations

import re
from typing import Any, get_args

import pytest

from engine.aws.push_sources import PUSH_ADAPTERS
from engine.aws.session import ALL_SERVICES
from engine.definitions.eventsources import parse_event_sources
from engine.errors import DefinitionError
from engine.events.desired import PushService, PushSource, SourceKind
from engine.sources_plan import (
    APIGW_SERVICE,
    ELB_SERVICE,
    PUSH_KINDS,
    SOURCE_CLIENTS,
    permission_scope,
    push_id,
    validate_push,
)

ACCOUNT, REGION = "123456789012", "us-east-1"
GROUP = f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/orders/0123456789abcdef"
FILE = "apps/orders/orders_lambdaeventsourcedef.json"


def test_every_kind_has_an_entry_an_adapter_and_a_client() -> None:
    """A kind missing from one of the tables would fail at the first deployment using it."""
    kinds = {kind.kind for kind in PUSH_KINDS.values()}
    assert set(PUSH_KINDS) == set(get_args(PushService))
    assert kinds == set(get_args(SourceKind)) - {"mapping"} == set(PUSH_ADAPTERS)
    for kind in PUSH_KINDS.values():
        assert kind.client in SOURCE_CLIENTS
        assert kind.client in ALL_SERVICES
        assert set(kind.required) <= set(kind.fields)
        assert set(kind.fields.values()) <= set(PushSource.model_fields)


@pytest.mark.parametrize(
    ("source", "source_id", "sid", "source_arn"),
    [
        pytest.param(
            PushSource(service=ELB_SERVICE, target_group_arn=GROUP),
            GROUP,
            "glam-elb-8b3aa84b8bddc46f",
            GROUP,
            id="elb",
        ),
        pytest.param(
            PushSource(service=APIGW_SERVICE, api_id="a1b2c3", route_id="r9", stage_variable="v"),
            "a1b2c3/r9",
            "glam-apigw-4f32044a655f32e8",
            f"arn:aws:execute-api:{REGION}:{ACCOUNT}:a1b2c3/*",
            id="apigateway",
        ),
    ],
)
def test_ids_and_permissions_are_the_ones_glam_always_wrote(
    source: PushSource, source_id: str, sid: str, source_arn: str
) -> None:
    """Ids recorded in logs and statement ids left in AWS by earlier runs must still match,
    or glam would wire a second permission and lose track of the first."""
    assert push_id(source) == source_id
    assert permission_scope(source, REGION, ACCOUNT) == (sid, source_arn)


def _push(**item: Any) -> PushSource:
    (source,) = parse_event_sources({"PushEventSources": [item]}, "orders", "live", FILE).push
    return source


def test_definitions_are_read_through_the_table() -> None:
    assert _push(Service=ELB_SERVICE, TargetGroupArn=GROUP) == PushSource(
        service=ELB_SERVICE, target_group_arn=GROUP
    )
    route = PushSource(service=APIGW_SERVICE, api_id="a", route_id="r", stage_variable="v")
    assert _push(Service=APIGW_SERVICE, ApiId="a", RouteId="r", AliasStageVariableName="v") == route
    assert _push(Service=APIGW_SERVICE, ApiId="a", RouteId="r", AlaisStageVariableName="v") == route
    both = {"AliasStageVariableName": "v", "AlaisStageVariableName": "typo"}
    assert _push(Service=APIGW_SERVICE, ApiId="a", RouteId="r", **both) == route


@pytest.mark.parametrize(
    ("item", "message"),
    [
        pytest.param(
            {"Service": "sns.amazonaws.com"},
            "Service must be 'elasticloadbalancing.amazonaws.com' or 'apigateway.amazonaws.com'",
            id="unknown-service",
        ),
        pytest.param({"Service": ["a"]}, "Service must be", id="service-not-a-string"),
        pytest.param({"Service": ELB_SERVICE}, "needs TargetGroupArn", id="elb-without-group"),
        pytest.param({"Service": APIGW_SERVICE, "ApiId": "a"}, "needs RouteId", id="no-route"),
        pytest.param(
            {"Service": ELB_SERVICE, "TargetGroupArn": GROUP, "ApiId": "a"},
            "unknown key 'PushEventSources[0].ApiId'",
            id="another-kinds-key",
        ),
    ],
)
def test_a_push_source_the_table_does_not_allow_is_rejected(
    item: dict[str, Any], message: str
) -> None:
    with pytest.raises(DefinitionError, match=re.escape(message)):
        _push(**item)


def test_a_push_source_without_its_ids_is_refused_by_the_plan() -> None:
    with pytest.raises(ValueError, match="an API Gateway event source needs RouteId"):
        validate_push(PushSource(service=APIGW_SERVICE, api_id="a"))
