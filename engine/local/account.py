"""The demo account: everything the sample repositories in ``../shared/compat`` expect.

``build_account`` creates, through the proxy (so it shows in the journal like any caller):
an execution role, an S3 bucket with three small real zips (blue, green, sqs handlers), an SQS
queue, CloudWatch alarms (``ALARM_NAMES``; flip one with ``set_alarm_state``), an ALB with a
target group of type ``lambda``, and an HTTP API with route ``GET /test`` (no target) and a
``$default`` stage whose stage variable ``lambdaAlias`` is ``PROD``. It returns what
``terraform output -json`` would print for the same infrastructure, with exactly the output
names the sample input files reference.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from engine.local.clients import aws_client

ROLE_NAME = "glam-lambda-exec"
BUCKET = "glam-demo-code"
QUEUE = "glam-demo-queue"
TARGET_GROUP = "glam-demo-tg"
LOAD_BALANCER = "glam-demo-alb"
API_NAME = "glam-demo-api"
ALARM_NAMES = ("glam-demo-errors", "glam-demo-latency")
CODE_KEYS = {"blue": "blue_function.zip", "green": "green_function.zip", "sqs": "sqs_function.zip"}

_ASSUME_ROLE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)

_HANDLERS = {
    "blue": (
        "test_lambda_function.py",
        'def lambda_handler(event, context):\n    return {"statusCode": 200, "body": "blue"}\n',
    ),
    "green": (
        "test_lambda_function.py",
        'def lambda_handler(event, context):\n    return {"statusCode": 200, "body": "green"}\n',
    ),
    "sqs": (
        "test_lambda_sqs.py",
        'def lambda_handler(event, context):\n    return {"batchItemFailures": []}\n',
    ),
}


def code_zip(kind: str) -> bytes:
    """The zip of one sample handler (``blue``, ``green`` or ``sqs``), byte-stable."""
    filename, source = _HANDLERS[kind]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        # A fixed timestamp keeps the zip, and so CodeSha256, the same on every build.
        info = zipfile.ZipInfo(filename, date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, source)
    return buf.getvalue()


def _output(value: str) -> dict[str, Any]:
    return {"sensitive": False, "type": "string", "value": value}


async def build_account(
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    credentials: tuple[str, str] = ("testing", "testing"),
) -> dict[str, dict[str, Any]]:
    """Create the demo account behind ``endpoint_url``; return terraform-output-shaped JSON."""

    def client(service: str) -> Any:
        # The builder must succeed even while faults are injected: let botocore retry.
        return aws_client(
            service, endpoint_url, region=region, credentials=credentials, max_attempts=10
        )

    async with (
        client("iam") as iam,
        client("s3") as s3,
        client("sqs") as sqs,
        client("cloudwatch") as cloudwatch,
        client("ec2") as ec2,
        client("elbv2") as elbv2,
        client("apigatewayv2") as apigw,
    ):
        role = await iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_ASSUME_ROLE)

        if region == "us-east-1":
            await s3.create_bucket(Bucket=BUCKET)
        else:
            await s3.create_bucket(
                Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": region}
            )
        for kind, key in CODE_KEYS.items():
            await s3.put_object(Bucket=BUCKET, Key=key, Body=code_zip(kind))

        queue = await sqs.create_queue(QueueName=QUEUE)
        attributes = await sqs.get_queue_attributes(
            QueueUrl=queue["QueueUrl"], AttributeNames=["QueueArn"]
        )

        for name in ALARM_NAMES:
            await cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/Lambda",
                MetricName="Errors" if name.endswith("errors") else "Duration",
                Statistic="Sum" if name.endswith("errors") else "Average",
                Period=60,
                EvaluationPeriods=1,
                Threshold=1.0 if name.endswith("errors") else 1000.0,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
            )

        vpc = (await ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}]))[
            "Vpcs"
        ][0]["VpcId"]
        subnets = await ec2.describe_subnets(Filters=[{"Name": "vpc-id", "Values": [vpc]}])
        subnet_ids = [s["SubnetId"] for s in subnets["Subnets"]][:2]
        balancer = (await elbv2.create_load_balancer(Name=LOAD_BALANCER, Subnets=subnet_ids))[
            "LoadBalancers"
        ][0]
        group = (await elbv2.create_target_group(Name=TARGET_GROUP, TargetType="lambda"))[
            "TargetGroups"
        ][0]

        api = await apigw.create_api(Name=API_NAME, ProtocolType="HTTP")
        route = await apigw.create_route(ApiId=api["ApiId"], RouteKey="GET /test")
        await apigw.create_stage(
            ApiId=api["ApiId"],
            StageName="$default",
            AutoDeploy=True,
            StageVariables={"lambdaAlias": "PROD"},
        )

    api_endpoint = (
        api.get("ApiEndpoint") or f"https://{api['ApiId']}.execute-api.{region}.amazonaws.com"
    )
    return {
        "api_endpoint_with_route": _output(f"{api_endpoint}/test"),
        "api_id": _output(api["ApiId"]),
        "elb_endpoint": _output(f"http://{balancer['DNSName']}"),
        "lambda_exec_role_arn": _output(role["Role"]["Arn"]),
        "route_id": _output(route["RouteId"]),
        "s3_bucket_name": _output(BUCKET),
        "s3_object_blue_key": _output(CODE_KEYS["blue"]),
        "s3_object_green_key": _output(CODE_KEYS["green"]),
        "s3_object_sqs_key": _output(CODE_KEYS["sqs"]),
        "sqs_queue_arn": _output(attributes["Attributes"]["QueueArn"]),
        "target_group_arn": _output(group["TargetGroupArn"]),
    }


async def set_alarm_state(
    endpoint_url: str,
    name: str,
    state: str = "ALARM",
    *,
    region: str = "us-east-1",
    credentials: tuple[str, str] = ("testing", "testing"),
) -> None:
    """Force a CloudWatch alarm into ``state`` (``ALARM``, ``OK``, ``INSUFFICIENT_DATA``)."""
    async with aws_client(
        "cloudwatch", endpoint_url, region=region, credentials=credentials, max_attempts=5
    ) as cloudwatch:
        await cloudwatch.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason="set by the embedded AWS"
        )
