"""The complete desired state: a definition and a live configuration in one shape, defaults
filled in on both sides, so that they compare member by member."""

from __future__ import annotations

from typing import Any

import pytest

from engine.aws.rules import code_sha256
from engine.definitions import normalize
from tests.aws.conftest import code_zip

MINIMAL: dict[str, Any] = {
    "FunctionName": "orders",
    "Role": "arn:aws:iam::123456789012:role/lambda",
    "Handler": "app.handler",
    "Runtime": "python3.12",
    "Code": {"S3Bucket": "artifacts", "S3Key": "orders.zip"},
}
# What GetFunction answers for a function made from MINIMAL, as real Lambda spells it.
LIVE: dict[str, Any] = {
    "FunctionName": "orders",
    "FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:orders",
    "Runtime": "python3.12",
    "Role": "arn:aws:iam::123456789012:role/lambda",
    "Handler": "app.handler",
    "CodeSize": 300,
    "Description": "",
    "Timeout": 3,
    "MemorySize": 128,
    "CodeSha256": "abc",
    "Version": "$LATEST",
    "TracingConfig": {"Mode": "PassThrough"},
    "RevisionId": "r",
    "Layers": [],
    "State": "Active",
    "LastUpdateStatus": "Successful",
    "PackageType": "Zip",
    "Architectures": ["x86_64"],
    "EphemeralStorage": {"Size": 512},
    "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
    "LoggingConfig": {"LogFormat": "Text", "LogGroup": "/aws/lambda/orders"},
}


def test_the_members_are_sorted_by_the_operations_that_set_them() -> None:
    """From botocore's model: what UpdateFunctionConfiguration takes is configuration, Code and
    Architectures are code, Tags and CodeSigningConfigArn have their own APIs, and what is
    left only CreateFunction sets. A member AWS adds shows up here first."""
    kinds = normalize.member_kinds()
    assert kinds["create_only"] == {"PackageType", "TenancyConfig"}
    assert kinds["function"] == {"Tags", "CodeSigningConfigArn"}
    assert kinds["code"] == {"Code", "Architectures"}
    assert {"MemorySize", "Environment", "Layers", "LoggingConfig"} <= kinds["configuration"]
    assert not kinds["configuration"] & {"FunctionName", "RevisionId", "Code", "Tags"}


def test_a_minimal_definition_equals_what_aws_made_of_it() -> None:
    """Every default filled in on both sides: nothing differs, nothing is create-only."""
    assert normalize.differences(MINIMAL, LIVE) == ()
    assert normalize.create_only_differences(MINIMAL, LIVE) == {}


@pytest.mark.parametrize(
    ("live", "member"),
    [
        pytest.param({"MemorySize": 256}, "MemorySize", id="memory"),
        pytest.param({"Timeout": 30}, "Timeout", id="timeout"),
        pytest.param({"Environment": {"Variables": {"A": "1"}}}, "Environment", id="environment"),
        pytest.param(
            {"Layers": [{"Arn": "arn:aws:lambda:us-east-1:1:layer:x:1", "CodeSize": 1}]},
            "Layers",
            id="layers",
        ),
        pytest.param({"TracingConfig": {"Mode": "Active"}}, "TracingConfig", id="tracing"),
        pytest.param(
            {"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:x"}}, "DeadLetterConfig", id="dlq"
        ),
        pytest.param({"KMSKeyArn": "arn:aws:kms:x"}, "KMSKeyArn", id="kms"),
        pytest.param({"Architectures": ["arm64"]}, "Architectures", id="architecture"),
        pytest.param(
            {"LoggingConfig": {"LogFormat": "JSON", "LogGroup": "/aws/lambda/orders"}},
            "LoggingConfig",
            id="log-format",
        ),
    ],
)
def test_a_member_the_file_left_out_differs_from_a_value_aws_holds(
    live: dict[str, Any], member: str
) -> None:
    """A member dropped from the file means AWS's default: a live value other than it is a
    difference, and the update sets the default."""
    assert normalize.differences(MINIMAL, {**LIVE, **live}) == (member,)
    if member != "Architectures":
        update = normalize.configuration_update(MINIMAL, (member,))
        assert update == {member: normalize.desired_configuration(MINIMAL)[member]}


def test_live_shapes_are_mapped_to_the_request_shape() -> None:
    """Layers by ARN, VpcConfig without VpcId (its lists as sets), Environment and
    ImageConfigResponse without their Error, SnapStart without OptimizationStatus."""
    layer = "arn:aws:lambda:us-east-1:1:layer:x:1"
    wanted = {
        **MINIMAL,
        "Layers": [layer],
        "VpcConfig": {"SubnetIds": ["s-1", "s-2"], "SecurityGroupIds": ["g-1"]},
        "Environment": {"Variables": {"A": "1"}},
        "SnapStart": {"ApplyOn": "PublishedVersions"},
        "ImageConfig": {"Command": ["run"]},
    }
    live = {
        **LIVE,
        "Layers": [{"Arn": layer, "CodeSize": 10}],
        "VpcConfig": {
            "SubnetIds": ["s-2", "s-1"],
            "SecurityGroupIds": ["g-1"],
            "VpcId": "vpc-1",
            "Ipv6AllowedForDualStack": False,
        },
        "Environment": {"Variables": {"A": "1"}, "Error": {"ErrorCode": "x"}},
        "SnapStart": {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"},
        "ImageConfigResponse": {"ImageConfig": {"Command": ["run"]}, "Error": {}},
    }
    assert normalize.differences(wanted, live) == ()


def test_json_logs_have_info_levels_by_default() -> None:
    json_logs = {**MINIMAL, "LoggingConfig": {"LogFormat": "JSON"}}
    live = {
        **LIVE,
        "LoggingConfig": {
            "LogFormat": "JSON",
            "ApplicationLogLevel": "INFO",
            "SystemLogLevel": "INFO",
            "LogGroup": "/aws/lambda/orders",
        },
    }
    assert normalize.differences(json_logs, live) == ()


def test_a_member_without_a_default_is_compared_only_where_the_file_sets_it() -> None:
    """An image function's file has no Runtime or Handler: the live ones are not a
    difference (there is nothing to reset them to)."""
    image = {k: v for k, v in MINIMAL.items() if k not in ("Runtime", "Handler")}
    assert normalize.differences(image, LIVE) == ()


def test_create_only_members_name_their_live_value() -> None:
    image = {**MINIMAL, "PackageType": "Image", "Code": {"ImageUri": "repo/x:1"}}
    assert normalize.create_only_differences(image, LIVE) == {"PackageType": "Zip"}


def test_tags_to_set_and_to_remove_leave_aws_own_tags_alone() -> None:
    definition = {**MINIMAL, "Tags": {"team": "b", "cost": "c1"}}
    live = {"team": "a", "cost": "c1", "old": "x", "aws:cloudformation:stack-name": "s"}
    assert normalize.tag_changes(definition, live) == (("team",), ("old",))
    assert normalize.tag_changes(MINIMAL, {"team": "a"}) == ((), ("team",))


def test_inline_code_has_the_sha256_lambda_reports() -> None:
    code = {"ZipFile": code_zip("blue")}
    assert normalize.zip_sha256(code) == code_sha256(code)
    assert normalize.zip_sha256({"S3Bucket": "b", "S3Key": "k"}) is None


def test_the_code_update_resets_a_dropped_architecture() -> None:
    assert normalize.code_update(MINIMAL) == {
        "S3Bucket": "artifacts",
        "S3Key": "orders.zip",
        "Architectures": ["x86_64"],
    }
