"""Accounts and tokens on the embedded AWS, a real Git server and a real SQLite log: the engine
deploys into a second account through STS AssumeRole (every call there signed with that
account's credentials), renews them before they expire, and reads the repository token from
Secrets Manager or SSM at each fetch, so a rotated secret is picked up; no secret reaches the
log, the logs, the output or the embedded AWS's journal."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from engine.aws.secrets import AwsSecrets
from engine.config.model import AccountSettings
from engine.errors import SourceError
from engine.git.source import GitSource
from engine.local import LocalAwsThread
from engine.local.account import ROLE_NAME, account_credentials, build_target_role, code_zip
from engine.local.clients import aws_client
from engine.logs import setup_logging
from engine.runtime.engine import Watch
from engine.runtime.providers import AwsProvider
from engine.tokens import TokenResolver, parse_token_ref
from tests.runtime.support import Setup, outcomes, write_function
from tests.support.git_server import serve_repository

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

OWN = "123456789012"
OTHER = "111111111111"
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}
CANARY = "glam-canary-token-5d1e"  # a token value no sink may ever hold
ROTATED = "glam-canary-rotated-93b7"


async def _other_account(url: str, region: str) -> dict[str, Any]:
    """An execution role and a code bucket in OTHER (bucket names are global: another
    name than the engine's account's), as terraform-style outputs for ``write_function``."""
    creds = await account_credentials(url, OTHER, region=region)
    async with (
        aws_client("iam", url, region=region, credentials=creds) as iam,
        aws_client("s3", url, region=region, credentials=creds) as s3,
    ):
        role = await iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=_TRUST)
        await s3.create_bucket(Bucket="glam-other-code")
        await s3.put_object(Bucket="glam-other-code", Key="blue.zip", Body=code_zip("blue"))
    return {
        "lambda_exec_role_arn": {"value": role["Role"]["Arn"]},
        "s3_bucket_name": {"value": "glam-other-code"},
        "s3_object_blue_key": {"value": "blue.zip"},
    }


_TRUST = json.dumps(
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


def _in_account(setup: Setup, prefix: str, account: str) -> None:
    """Point the deployment definition at ``prefix`` to ``account``."""
    path = setup.repo.path / f"{prefix}_lambdadepdef.json"
    depdef = json.loads(path.read_text())
    depdef["environment"] = {"account": account}
    setup.repo.write(f"{prefix}_lambdadepdef.json", depdef)


async def test_two_accounts_through_assume_role(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A function whose depdef names a configured account is deployed there with the role the
    engine assumes (external id and session name sent); the journal places every call on it
    in that account, and every call on the engine's own function in the engine's account."""
    url = local_aws.endpoint_url
    role = await build_target_role(url, OTHER)
    theirs = await _other_account(url, setup.region)
    local_aws.journal.clear()
    write_function(setup.repo, setup.outputs, traffic=NOW, name="own", prefix="fns/own/own")
    write_function(setup.repo, theirs, traffic=NOW, name="theirs", prefix="fns/theirs/theirs")
    _in_account(setup, "fns/theirs/theirs", OTHER)
    setup.repo.commit("one function per account")
    account = AccountSettings(id=OTHER, role_arn=role, external_id="ext-77", session_name="glam-t")
    report = await setup.run_once(accounts=(account,))
    assert sorted(outcomes(report)) == ["succeeded", "succeeded"]
    assert {s for s, _ in report.finished} == {
        f"fn:{OWN}:{setup.region}:own",
        f"fn:{OTHER}:{setup.region}:theirs",
    }
    (assume,) = local_aws.journal.calls("AssumeRole")
    assert (assume.account, assume.params and assume.params.get("RoleArn")) == (OWN, role)
    assert "ext-77" not in json.dumps(assume.to_json())  # the external id is never journaled
    theirs_calls = [e for e in local_aws.journal if e.function == "theirs"]
    own_calls = [e for e in local_aws.journal if e.function == "own"]
    assert theirs_calls
    assert {e.account for e in theirs_calls} == {OTHER}
    assert own_calls
    assert {e.account for e in own_calls} == {OWN}
    async with aws_client("lambda", url) as own_lambda:
        names = [f["FunctionName"] for f in (await own_lambda.list_functions())["Functions"]]
    assert names == ["own"]


async def test_an_unconfigured_account_is_refused_at_plan_time(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """B4 on real AWS: without an [[account]] entry the definition is rejected before any
    call, with the fix to make; nothing stays in flight, and the fixed file deploys."""
    write_function(setup.repo, setup.outputs, traffic=NOW, name="acct", prefix="fns/acct/acct")
    _in_account(setup, "fns/acct/acct", OTHER)
    setup.repo.commit("another account, not configured")
    report = await setup.run_once()
    assert (report.finished, report.exit_code) == ([], 1)
    (rejected,) = report.rejected
    assert f'add an [[account]] entry with id = "{OTHER}"' in rejected.reason
    assert local_aws.journal.calls("CreateFunction") == []
    assert await setup.events("DeploymentRequested") == []
    write_function(setup.repo, setup.outputs, traffic=NOW, name="acct", prefix="fns/acct/acct")
    setup.repo.commit("the engine's own account")
    report = await setup.run_once()
    assert (outcomes(report), report.exit_code) == (["succeeded"], 0)


async def test_assumed_credentials_are_renewed_before_they_expire(
    setup: Setup, local_aws: LocalAwsThread
) -> None:
    """Near its expiry, the assumed role's credentials are renewed (AssumeRole again) before
    the next call is signed; the call still acts in the other account."""
    # A role of its own: the embedded AWS (and the other account in it) lives for the session.
    role = await build_target_role(local_aws.endpoint_url, OTHER, role_name="glam-renewing")
    local_aws.journal.clear()
    account = AccountSettings(id=OTHER, role_arn=role)
    provider = AwsProvider(setup.config().aws_config(), accounts={OTHER: account})
    try:
        ports = await provider.region(setup.region, OTHER)
        assert await ports.lambda_api.get_function("absent") is None
        credentials = provider.sessions.credentials(OTHER)
        assert credentials is not None
        first = (await credentials.get_frozen_credentials()).access_key
        # Five minutes left: inside botocore's mandatory refresh window (ten minutes).
        credentials._expiry_time = datetime.now(UTC) + timedelta(minutes=5)
        assert await ports.lambda_api.get_function("absent") is None
        renewed = (await credentials.get_frozen_credentials()).access_key
    finally:
        await provider.aclose()
    assert renewed != first
    assert [e.account for e in local_aws.journal.calls("AssumeRole")] == [OWN, OWN]
    assert {e.account for e in local_aws.journal.calls("GetFunction")} == {OTHER}


# -- tokens ------------------------------------------------------------------------------------


@pytest.fixture
def served(setup: Setup) -> Iterator[tuple[str, list[str]]]:
    """``setup.repo`` over smart HTTP on 127.0.0.1, recording each request's credentials."""
    write_function(setup.repo, setup.outputs, traffic=NOW)
    setup.repo.commit("served")
    seen: list[str] = []

    def record(environ: dict[str, Any]) -> None:
        header = str(environ.get("HTTP_AUTHORIZATION", ""))
        if header.startswith("Basic "):
            seen.append(base64.b64decode(header[6:]).decode().split(":", 1)[1])

    with serve_repository(setup.repo.path, on_request=record) as url:
        yield url, seen


async def _secret(local_aws: LocalAwsThread, value: str) -> str:
    async with aws_client("secretsmanager", local_aws.endpoint_url) as sm:
        answer = await sm.create_secret(Name="glam/git-token", SecretString=value)
    return str(answer["ARN"])


async def _rotate(local_aws: LocalAwsThread, arn: str, value: str) -> None:
    async with aws_client("secretsmanager", local_aws.endpoint_url) as sm:
        await sm.put_secret_value(SecretId=arn, SecretString=value)


@pytest.fixture
def verbose_logs() -> Iterator[io.StringIO]:
    """glam's own logging at its most verbose (``glam run --verbose``), written here."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    stream = io.StringIO()
    setup_logging(verbose=True, stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
        logging.getLogger("glam").setLevel(logging.NOTSET)


def _sinks(setup: Setup, logs: io.StringIO, capsys: pytest.CaptureFixture[str]) -> dict[str, str]:
    """Every place a secret must never reach, as text."""
    out, err = capsys.readouterr()
    log_files = b"".join(p.read_bytes() for p in setup.db.parent.glob("glam.db*"))
    return {
        "log database": log_files.decode("latin-1"),
        "logs": logs.getvalue(),
        "output": out + err,
    }


async def test_a_token_from_secrets_manager_is_read_at_each_fetch_and_rotated(
    setup: Setup,
    local_aws: LocalAwsThread,
    served: tuple[str, list[str]],
    verbose_logs: io.StringIO,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The engine fetches with the token the secret holds (a JSON object of one key), and
    after a rotation with the new one; the canary values reach the Git server only."""
    url, seen = served
    arn = await _secret(local_aws, json.dumps({"token": CANARY}))
    watch = Watch(url, "main", token=parse_token_ref(arn))
    report = await setup.run_once(watches=(watch,))
    assert (outcomes(report), report.exit_code) == (["succeeded"], 0)
    assert set(seen) == {CANARY}
    await _rotate(local_aws, arn, ROTATED)
    write_function(setup.repo, setup.outputs, traffic=NOW, memory=256)
    setup.repo.commit("more memory")
    seen.clear()
    report = await setup.run_once(watches=(watch,))
    assert (outcomes(report), report.exit_code) == (["succeeded"], 0)
    assert set(seen) == {ROTATED}
    assert len(local_aws.journal.calls("GetSecretValue")) >= 2
    journal = json.dumps([e.to_json() for e in local_aws.journal])
    sinks = {**_sinks(setup, verbose_logs, capsys), "journal": journal}
    assert "GetSecretValue" in journal
    assert "engine" in sinks["logs"]  # the verbose logs did record the runs
    for name, text in sinks.items():
        assert CANARY not in text, name
        assert ROTATED not in text, name


async def test_a_token_that_cannot_be_read_makes_the_repository_unavailable(
    setup: Setup, local_aws: LocalAwsThread, served: tuple[str, list[str]]
) -> None:
    """A secret that does not exist is an outage of that repository, recorded and retried,
    never an engine error; the message names the secret, not a value."""
    url, seen = served
    arn = f"arn:aws:secretsmanager:{setup.region}:{OWN}:secret:glam/missing-AbCdEf"
    report = await setup.run_once(watches=(Watch(url, "main", token=parse_token_ref(arn)),))
    assert (report.finished, report.exit_code, seen) == ([], 1, [])
    assert report.unavailable is not None
    assert "cannot read Secrets Manager secret arn:aws:secretsmanager:" in report.unavailable
    (event,) = await setup.events("SourceUnavailable")
    assert "glam/missing" in event.event.reason  # type: ignore[union-attr]


async def test_an_ssm_secure_string_token(
    local_aws: LocalAwsThread, served: tuple[str, list[str]], setup: Setup, tmp_path: Path
) -> None:
    """An SSM SecureString is read decrypted, by its ARN, at each fetch."""
    url, seen = served
    async with aws_client("ssm", local_aws.endpoint_url) as ssm:
        await ssm.put_parameter(Name="/glam/git-token", Value=CANARY, Type="SecureString")
    arn = f"arn:aws:ssm:{setup.region}:{OWN}:parameter/glam/git-token"
    secrets = AwsSecrets(setup.config().aws_config())
    resolver = TokenResolver(secrets=secrets, ttl=0)
    ref = parse_token_ref(arn)

    async def token() -> str:
        return await resolver.resolve(ref)

    try:
        async with GitSource(url, "main", data_dir=tmp_path / "data", token=token) as source:
            await source.sync()
            async with aws_client("ssm", local_aws.endpoint_url) as ssm:
                await ssm.put_parameter(
                    Name="/glam/git-token", Value=ROTATED, Type="SecureString", Overwrite=True
                )
            await source.sync()
    finally:
        await secrets.aclose()
    assert seen[0] == CANARY
    assert seen[-1] == ROTATED


async def test_an_empty_token_variable_is_an_outage_not_a_crash(
    setup: Setup, served: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = served
    monkeypatch.setenv("GLAM_TEST_TOKEN", "")
    report = await setup.run_once(
        watches=(Watch(url, "main", token=parse_token_ref("GLAM_TEST_TOKEN")),)
    )
    assert report.unavailable == "environment variable GLAM_TEST_TOKEN is empty"
    with pytest.raises(SourceError):
        GitSource(url, "main", data_dir=setup.db.parent, token_env="GLAM_TEST_TOKEN")
