"""AWS names checked at plan time, as AWS would check them, with the fix to make."""

from __future__ import annotations

from typing import Any

import pytest

from engine.definitions.desired import build_desired
from engine.definitions.names import (
    FunctionRef,
    check_alias,
    check_region,
    parse_function_name,
    partitions,
)
from engine.definitions.settings import parse_settings
from engine.errors import DefinitionError

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:orders"


@pytest.mark.parametrize(
    "region", ["us-east-1", "eu-west-1", "ap-southeast-7", "cn-north-1", "us-gov-west-1"]
)
def test_regions_botocore_knows_are_accepted(region: str) -> None:
    assert check_region(region, "environment.region", "d.json") == region


@pytest.mark.parametrize(
    ("region", "words"),
    [
        pytest.param("xx-nowhere-9", "is not an AWS region", id="nowhere"),
        pytest.param("us-east-1.evil.example.com/", "is not an AWS region", id="host-name"),
        pytest.param("eu-wset-1", "did you mean 'eu-west-1'?", id="typo"),
        pytest.param("aws-global", "is not an AWS region", id="pseudo-region"),
        pytest.param("US-EAST-1", "did you mean 'us-east-1'?", id="upper-case"),
    ],
)
def test_unknown_regions_are_refused_with_the_fix(region: str, words: str) -> None:
    with pytest.raises(DefinitionError) as info:
        check_region(region, "environment.region", "d.json")
    assert words in info.value.one_line()
    assert "botocore" in info.value.one_line()


def test_partitions_come_from_botocore() -> None:
    ids = {p.id for p in partitions()}
    assert {"aws", "aws-cn", "aws-us-gov"} <= ids
    assert all(not r.endswith("-global") for p in partitions() for r in p.regions)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("orders", FunctionRef("orders"), id="name"),
        pytest.param("a" * 64, FunctionRef("a" * 64), id="name-64"),
        pytest.param(ARN, FunctionRef("orders", "aws", "eu-west-1", "123456789012"), id="full-arn"),
        pytest.param(
            "arn:aws-cn:lambda:cn-north-1:123456789012:function:o_1",
            FunctionRef("o_1", "aws-cn", "cn-north-1", "123456789012"),
            id="china-arn",
        ),
        pytest.param(
            "123456789012:function:orders",
            FunctionRef("orders", account="123456789012"),
            id="partial-arn",
        ),
    ],
)
def test_the_forms_create_function_accepts(value: str, expected: FunctionRef) -> None:
    assert parse_function_name(value, "f.json") == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        pytest.param("orders:live", "has a qualifier", id="name-qualifier"),
        pytest.param(ARN + ":live", "has a qualifier", id="arn-qualifier"),
        pytest.param(ARN + ":$LATEST", "has a qualifier", id="arn-latest"),
        pytest.param("123456789012:function:o:1", "has a qualifier", id="partial-qualifier"),
        pytest.param("a" * 65, "1 to 64", id="name-65"),
        pytest.param("a" * 141, "more than the 140", id="over-140"),
        pytest.param("my function", "not a valid function name", id="space"),
        pytest.param("function:orders", "not a function name or ARN", id="function-colon"),
        pytest.param("999:function:orders", "not an AWS account id", id="short-account"),
        pytest.param(
            "arn:aws:lambda:xx-nowhere-9:123456789012:function:o", "not an AWS region", id="region"
        ),
        pytest.param(
            "arn:aws:lambda:cn-north-1:123456789012:function:o", "partition", id="partition"
        ),
        pytest.param("arn:aws:s3:::bucket", "not a function name or ARN", id="other-service"),
        pytest.param(7, "must be a string", id="number"),
    ],
)
def test_other_forms_are_refused(value: Any, words: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_function_name(value, "f_lambdadef.json")
    assert words in info.value.one_line()
    assert info.value.file == "f_lambdadef.json"


@pytest.mark.parametrize("alias", ["live", "PROD", "blue-green_2", "v1", "a" * 128])
def test_aliases_aws_accepts(alias: str) -> None:
    assert check_alias(alias, "d.json") == alias


@pytest.mark.parametrize(
    ("alias", "words"),
    [
        pytest.param("7", "only digits", id="digits"),
        pytest.param("$LATEST", "reserved", id="latest"),
        pytest.param("live:1", "is not valid", id="colon"),
        pytest.param("a" * 129, "1 to 128", id="too-long"),
    ],
)
def test_aliases_aws_refuses(alias: str, words: str) -> None:
    with pytest.raises(DefinitionError) as info:
        parse_settings({"alias": alias}, "d_lambdadepdef.json")
    assert words in info.value.one_line()


class _Files:
    def __init__(self, files: dict[str, str]):
        self.files = files

    def read_file(self, path: str, *, referenced_from: str) -> bytes:
        return self.files[path].encode()


def _desired(function_name: str, depdef_env: dict[str, str]) -> Any:
    import json

    files = {
        "a_lambdadef.json": json.dumps(
            {
                "FunctionName": function_name,
                "Role": "arn:aws:iam::123456789012:role/r",
                "Code": {"ZipFile": "eA=="},
            }
        ),
        "a_lambdadepdef.json": json.dumps({"alias": "live", "environment": depdef_env}),
    }
    return build_desired(
        "a", {"def": "a_lambdadef.json", "depdef": "a_lambdadepdef.json"}, _Files(files)
    )


def test_an_arn_names_the_region_and_account_when_the_depdef_does_not() -> None:
    desired = _desired(ARN, {})
    assert desired.function_name == "orders"
    assert (desired.settings.region, desired.settings.account) == ("eu-west-1", "123456789012")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        pytest.param({"region": "us-east-1"}, "in region eu-west-1 but", id="other-region"),
        pytest.param({"account": "999999999999"}, "in account 123456789012 but", id="account"),
    ],
)
def test_an_arn_of_another_region_or_account_is_refused(env: dict[str, str], words: str) -> None:
    with pytest.raises(DefinitionError) as info:
        _desired(ARN, env)
    assert words in info.value.one_line()
    assert info.value.file == "a_lambdadef.json"


def test_partial_arn_gives_the_plain_name() -> None:
    desired = _desired("123456789012:function:orders", {"region": "eu-west-1"})
    assert desired.function_name == "orders"
    assert desired.settings.account == "123456789012"


def test_gitmoxi_ecs_keys_are_accepted_with_a_warning() -> None:
    """The keys Gitmoxi ignores in a Lambda depdef are ignored too, each with a warning; an
    unknown key is still an error with the nearest name."""
    warnings: list[str] = []
    settings = parse_settings(
        {
            "alias": "live",
            "stabilityCheck": {"timeoutPerTask": 25, "timeout": 220},
            "gmDeploymentCircuitBreaker": {"rollback": True, "failureThresholdPercent": 50},
            "webhooks": [{"url": "https://example.com"}],
            "targetGroupArnPairs": [],
            "deleteNewUponFailure": True,
        },
        "d_lambdadepdef.json",
        warnings,
    )
    assert settings.alias == "live"
    assert [w.split(":")[0] for w in warnings] == [
        "key 'stabilityCheck' ignored",
        "key 'gmDeploymentCircuitBreaker' ignored",
        "key 'webhooks' ignored",
        "key 'targetGroupArnPairs' ignored",
        "key 'deleteNewUponFailure' ignored",
    ]
    with pytest.raises(DefinitionError) as info:
        parse_settings({"alias": "live", "stabiltyCheck": {}}, "d_lambdadepdef.json")
    assert "did you mean 'stabilityCheck'" in info.value.one_line()
    with pytest.raises(DefinitionError, match="unknown key 'colour'"):
        parse_settings({"alias": "live", "colour": "blue"}, "d_lambdadepdef.json")
