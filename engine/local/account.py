"""The demo account: everything the sample repositories in ``../shared/compat`` expect.

``build_account`` creates, through the proxy (so it shows in the journal like any caller):
an execution role, an S3 bucket with three small real zips (blue, green, sqs handlers), an SQS
queue, CloudWatch alarms (``ALARM_NAMES``; flip one with ``set_alarm_state``), an ALB with a
target group of type ``lambda``, and an HTTP API with route ``GET /test`` (no target) and a
``$default`` stage whose stage variable ``lambdaAlias`` is ``PROD``. It returns what
``terraform output -json`` would print for the same infrastructure, with exactly the output
names the sample input files reference.

Many accounts: ``build_account(..., account="111111111111")`` builds the same things in
another account, and ``build_target_role`` makes there the role a deployer in the engine's
account assumes (``glam-deployer``, trusting the engine's account). Both get into the other
account the way an organisation's administrator does, by assuming its
``OrganizationAccountAccessRole`` (moto lets any role be assumed, so no set-up comes first).
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from engine.local.clients import Credentials, assume_role, aws_client

ROLE_NAME = "glam-lambda-exec"
BUCKET = "glam-demo-code"
QUEUE = "glam-demo-queue"
TARGET_GROUP = "glam-demo-tg"
LOAD_BALANCER = "glam-demo-alb"
API_NAME = "glam-demo-api"
ALARM_NAMES = ("glam-demo-errors", "glam-demo-latency")
ADMIN_ROLE = "OrganizationAccountAccessRole"
DEPLOY_ROLE = "glam-deployer"
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


async def caller_account(
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
) -> str:
    """The account ``credentials`` act in (``sts:GetCallerIdentity``)."""
    async with aws_client(
        "sts", endpoint_url, region=region, credentials=credentials, max_attempts=10
    ) as sts:
        return str((await sts.get_caller_identity())["Account"])


async def account_credentials(
    endpoint_url: str,
    account: str,
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
) -> Credentials:
    """Credentials that act in ``account``: ``credentials`` themselves if they already do,
    else the ones of its ``OrganizationAccountAccessRole``, assumed with them."""
    if await caller_account(endpoint_url, region=region, credentials=credentials) == account:
        return credentials
    return await assume_role(
        endpoint_url,
        f"arn:aws:iam::{account}:role/{ADMIN_ROLE}",
        region=region,
        credentials=credentials,
        session_name="glam-admin",
        max_attempts=10,
    )


def _deployer_policy(account: str, region: str) -> str:
    """What a deployer needs in its target account: Lambda, passing the execution role,
    reading alarms, and wiring the event sources glam attaches."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "lambda:*", "Resource": "*"},
                {
                    "Effect": "Allow",
                    "Action": "iam:PassRole",
                    "Resource": f"arn:aws:iam::{account}:role/{ROLE_NAME}",
                },
                {
                    "Effect": "Allow",
                    "Action": ["cloudwatch:DescribeAlarms", "cloudwatch:GetMetricStatistics"],
                    "Resource": "*",
                },
                {
                    "Effect": "Allow",
                    "Action": [
                        "elasticloadbalancing:RegisterTargets",
                        "elasticloadbalancing:DeregisterTargets",
                        "elasticloadbalancing:DescribeTargetHealth",
                        "apigateway:GET",
                        "apigateway:POST",
                        "apigateway:PATCH",
                        "apigateway:DELETE",
                        "sqs:GetQueueAttributes",
                    ],
                    "Resource": "*",
                    "Condition": {"StringEquals": {"aws:RequestedRegion": region}},
                },
            ],
        }
    )


async def build_target_role(
    endpoint_url: str,
    account: str,
    *,
    trusted_account: str | None = None,
    role_name: str = DEPLOY_ROLE,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
) -> str:
    """Create in ``account`` the role a deployer assumes, trusting ``trusted_account`` (by
    default the account of ``credentials``: the engine's); return its ARN."""
    trusted = trusted_account or await caller_account(
        endpoint_url, region=region, credentials=credentials
    )
    creds = await account_credentials(endpoint_url, account, region=region, credentials=credentials)
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{trusted}:root"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    async with aws_client(
        "iam", endpoint_url, region=region, credentials=creds, max_attempts=10
    ) as iam:
        role = await iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))
        await iam.put_role_policy(
            RoleName=role_name,
            PolicyName="glam-deploy",
            PolicyDocument=_deployer_policy(account, region),
        )
    return str(role["Role"]["Arn"])


async def build_account(
    endpoint_url: str,
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
    account: str | None = None,
) -> dict[str, dict[str, Any]]:
    """Create the demo account behind ``endpoint_url``; return terraform-output-shaped JSON.

    With ``account``, build it in that account (see the module docstring) rather than in the
    one ``credentials`` act in."""
    if account is not None:
        credentials = await account_credentials(
            endpoint_url, account, region=region, credentials=credentials
        )

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


async def put_alarm_datapoint(
    endpoint_url: str,
    name: str,
    value: float,
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
) -> None:
    """Put one datapoint of ``value`` on the metric alarm ``name`` evaluates (its namespace,
    metric and dimensions), timestamped now: what a failing version would have sent."""
    async with aws_client(
        "cloudwatch", endpoint_url, region=region, credentials=credentials, max_attempts=5
    ) as cloudwatch:
        alarm = (await cloudwatch.describe_alarms(AlarmNames=[name]))["MetricAlarms"][0]
        await cloudwatch.put_metric_data(
            Namespace=alarm["Namespace"],
            MetricData=[
                {
                    "MetricName": alarm["MetricName"],
                    "Dimensions": alarm.get("Dimensions") or [],
                    "Value": value,
                }
            ],
        )


async def set_alarm_state(
    endpoint_url: str,
    name: str,
    state: str = "ALARM",
    *,
    region: str = "us-east-1",
    credentials: Credentials = ("testing", "testing"),
) -> None:
    """Force a CloudWatch alarm into ``state`` (``ALARM``, ``OK``, ``INSUFFICIENT_DATA``)."""
    async with aws_client(
        "cloudwatch", endpoint_url, region=region, credentials=credentials, max_attempts=5
    ) as cloudwatch:
        await cloudwatch.set_alarm_state(
            AlarmName=name, StateValue=state, StateReason="set by the embedded AWS"
        )
