"""CodeObjects: the CodeSha256 an S3 code object gives a function, read as a stream."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from engine.aws.code_objects import AwsCodeObjects
from engine.aws.lambda_api import AwsLambda, CallRetry
from engine.aws.ratelimit import RateLimiter
from engine.aws.session import open_clients
from engine.errors import AwsInvalid
from engine.testing.aws import FakeAws

from .conftest import REGION, code_zip, moto_config

pytestmark = pytest.mark.anyio

ROLE_POLICY = json.dumps(
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


@pytest.mark.integration
async def test_the_hash_of_an_object_is_the_code_sha256_lambda_reports(moto_url: str) -> None:
    """A function made from an S3 object reports the CodeSha256 the object's hash gives; an
    object that does not exist has none; one larger than the bound is refused."""
    bucket = f"code-{uuid.uuid4().hex[:8]}"
    archive = base64.b64decode(code_zip("from-s3"))
    async with open_clients(moto_config(moto_url), ("lambda", "s3", "iam")) as clients:
        s3 = clients["s3"]
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="app.zip", Body=archive)
        role = await clients["iam"].create_role(
            RoleName=f"glam-test-{uuid.uuid4().hex[:8]}", AssumeRolePolicyDocument=ROLE_POLICY
        )
        objects = AwsCodeObjects(s3)
        sha = await objects.code_sha256(bucket, "app.zip")
        lam = AwsLambda(clients.lambda_, RateLimiter(rate=200, poll_rate=200), policy=CallRetry())
        name = f"fn-{uuid.uuid4().hex[:8]}"
        created = await lam.create_function(
            {
                "FunctionName": name,
                "Runtime": "python3.12",
                "Role": role["Role"]["Arn"],
                "Handler": "index.handler",
                "Code": {"S3Bucket": bucket, "S3Key": "app.zip"},
            }
        )
        assert sha == created.code_sha256
        assert await objects.code_sha256(bucket, "missing.zip") is None
        with pytest.raises(AwsInvalid, match="larger than"):
            await AwsCodeObjects(s3, max_bytes=10).code_sha256(bucket, "app.zip")


async def test_the_fake_hashes_the_objects_it_holds() -> None:
    """The in-memory S3 answers like the real one, and code made from an object has its
    CodeSha256."""
    fake = FakeAws(region=REGION)
    fake.put_object("b", "k.zip", b"zip bytes")
    sha = await fake.code_sha256("b", "k.zip")
    created = await fake.create_function(
        {"FunctionName": "f", "Role": "r", "Code": {"S3Bucket": "b", "S3Key": "k.zip"}}
    )
    assert sha == created.code_sha256
    assert await fake.code_sha256("b", "other.zip") is None
