"""The embedded AWS applies every member of UpdateFunctionConfiguration (botocore's request
shape) and answers it in the configuration, as AWS does: moto alone drops some (TracingConfig,
EphemeralStorage, LoggingConfig...), which would show as drift after every deployment."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from engine.local import LocalAwsThread
from engine.local.clients import aws_client

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

NAME = "members"
ARN = "arn:aws:{}:us-east-1:123456789012:{}"


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return 1\n")
    return buffer.getvalue()


def _values(role: str, queue: str) -> dict[str, Any]:
    """A value for every member of the request shape but the name and RevisionId."""
    return {
        "Role": role,
        "Handler": "app.other",
        "Description": "every member",
        "Timeout": 9,
        "MemorySize": 256,
        "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []},
        "Environment": {"Variables": {"MODE": "blue"}},
        "Runtime": "python3.11",
        "DeadLetterConfig": {"TargetArn": queue},
        "KMSKeyArn": ARN.format("kms", "key/1234abcd"),
        "TracingConfig": {"Mode": "Active"},
        "Layers": [],
        "FileSystemConfigs": [
            {
                "Arn": ARN.format("elasticfilesystem", "access-point/fsap-0123456789abcdef0"),
                "LocalMountPath": "/mnt/data",
            }
        ],
        "ImageConfig": {"Command": ["app.handler"]},
        "EphemeralStorage": {"Size": 1024},
        "SnapStart": {"ApplyOn": "PublishedVersions"},
        "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "WARN"},
        "CapacityProviderConfig": {
            "LambdaManagedInstancesCapacityProviderConfig": {
                "CapacityProviderArn": ARN.format("lambda", "capacity-provider:cp"),
            }
        },
        "DurableConfig": {"RetentionPeriodInDays": 7, "ExecutionTimeout": 60},
    }


def _answered(member: str, value: Any, configuration: dict[str, Any]) -> Any:
    """What the configuration says of ``member``, in the shape it was set in."""
    if member == "Layers":
        return [layer["Arn"] for layer in configuration.get("Layers") or []]
    answer = configuration.get(member)
    if member == "ImageConfig":
        answer = (configuration.get("ImageConfigResponse") or {}).get("ImageConfig")
    if isinstance(value, dict) and isinstance(answer, dict):
        return {k: answer.get(k) for k in value}  # AWS adds fields of its own
    return answer


def test_every_member_of_the_request_shape_is_covered() -> None:
    import botocore.session

    model = botocore.session.get_session().get_service_model("lambda")
    shape = model.operation_model("UpdateFunctionConfiguration").input_shape
    assert set(shape.members) - {"FunctionName", "RevisionId"} == set(_values("r", "q"))


async def test_each_member_set_is_answered(
    local_aws: LocalAwsThread, demo_account: dict[str, Any]
) -> None:
    role = demo_account["lambda_exec_role_arn"]["value"]
    queue = demo_account["sqs_queue_arn"]["value"]
    values = _values(role, queue)
    async with aws_client("lambda", local_aws.moto_url, region=local_aws.region) as lam:
        await lam.create_function(
            FunctionName=NAME,
            Role=role,
            Runtime="python3.12",
            Handler="app.handler",
            Code={"ZipFile": _zip()},
        )
        try:
            for member, value in values.items():
                await lam.update_function_configuration(FunctionName=NAME, **{member: value})
                configuration = await lam.get_function_configuration(FunctionName=NAME)
                assert _answered(member, value, configuration) == value, member
            # Members set at create are answered too, and a version keeps them.
            answer = await lam.publish_version(FunctionName=NAME)
            version = await lam.get_function_configuration(
                FunctionName=NAME, Qualifier=answer["Version"]
            )
            assert version["TracingConfig"] == {"Mode": "Active"}
            assert version["LoggingConfig"]["LogFormat"] == "JSON"
            snap = version["SnapStart"]
            assert snap == {"ApplyOn": "PublishedVersions", "OptimizationStatus": "On"}
        finally:
            await lam.delete_function(FunctionName=NAME)
