"""Acceptance: `glam plan` on the gm-demo sample layout, as its README tells users to do it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest

from engine.cli.main import app
from engine.events import Metadata, NewEvent
from engine.events.function import DeploymentFinished, DeploymentRequested
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from engine.planner import PlanContext, plan_commit
from engine.store.sqlite import SqliteEventStore
from tests.repo.gitrepo import GitRepo

pytestmark = pytest.mark.integration

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "compat" / "gm-demo-lambda"
OUTPUTS = {
    "lambda_exec_role_arn": "arn:aws:iam::123456789012:role/lambda-exec",
    "s3_bucket_name": "gm-demo-code",
    "s3_object_blue_key": "blue_function.zip",
    "s3_object_green_key": "green_function.zip",
    "s3_object_sqs_key": "sqs_function.zip",
    "api_id": "a1b2c3d4",
    "route_id": "r0ute1",
    "target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/1",
    "sqs_queue_arn": "arn:aws:sqs:us-east-1:123456789012:gm-demo",
    "api_endpoint_with_route": "https://a1b2c3d4.execute-api.us-east-1.amazonaws.com/test",
    "elb_endpoint": "http://gm-demo-alb.example",
}


@pytest.fixture
def demo(repo: GitRepo) -> GitRepo:
    if not SHARED.is_dir():
        pytest.skip(f"gm-demo samples not found at {SHARED} (../shared is not checked out)")
    for sample in sorted(SHARED.glob("lambda/*/sample/test_*.json.sample")):
        target = f"lambda/{sample.parent.parent.name}/{sample.name.removesuffix('.sample')}"
        repo.write(target, sample.read_bytes())
    repo.write(
        "lambda/core-infra/terraform/terraform_output.json",
        {k: {"sensitive": False, "type": "string", "value": v} for k, v in OUTPUTS.items()},
    )
    repo.commit("gm-demo: blue")
    return repo


def glam(*args: str) -> int:
    rc = app(list(args), standalone_mode=False)
    return rc if isinstance(rc, int) else 0


def test_first_plan_creates_three(demo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert glam("plan", "--repo", str(demo.path), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert [(a["prefix"], a["action"]) for a in out["actions"]] == [
        ("lambda/lambda-api-gateway/test", "create"),
        ("lambda/lambda-elb/test", "create"),
        ("lambda/lambda-sqs/test", "create"),
    ]
    assert glam("plan", "--repo", str(demo.path), "--render") == 1
    text = capsys.readouterr().out
    assert '"S3Key": "blue_function.zip"' in text
    assert '"Role": "arn:aws:iam::123456789012:role/lambda-exec"' in text


async def _record_first_deployment(repo: Path, db: Path) -> None:
    """What the engine appends when the first commit deploys successfully."""
    async with GitSource(str(repo), "main") as source:
        head = await source.sync()
        state = await read_commit_state(source, head, base=None)
    sqs = state.desired["lambda/lambda-sqs/test"]
    # The unqualified FunctionName of the SQS mapping follows the alias.
    assert sqs.event_sources.mappings[0]["FunctionName"] == "LambdaFunction_SQS:PROD"
    api = state.desired["lambda/lambda-api-gateway/test"].event_sources.push[0]
    assert (api.api_id, api.stage_variable) == ("a1b2c3d4", "lambdaAlias")
    ids = iter(f"dep-{i}" for i in range(10))
    ctx = PlanContext(
        new_id=lambda: next(ids), default_region="us-east-1", default_account="123456789012"
    )
    plan = plan_commit(state, {}, ctx)
    async with SqliteEventStore(db) as store:
        for i, (stream, event) in enumerate(plan.function_events):
            assert isinstance(event, DeploymentRequested)
            done = DeploymentFinished(
                deployment_id=event.deployment_id, outcome="succeeded", stable_version="1"
            )
            await store.append(
                stream,
                [
                    NewEvent(event, Metadata(event_id=f"r{i}")),
                    NewEvent(done, Metadata(event_id=f"f{i}")),
                ],
            )


def test_green_then_depdef_only(
    demo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "glam.db"
    anyio.run(_record_first_deployment, demo.path, db)
    assert glam("plan", "--repo", str(demo.path), "--db", str(db)) == 0
    capsys.readouterr()

    green = SHARED / "lambda/lambda-api-gateway/sample/test_lambdadef.json.sample.green"
    shutil.copyfile(green, demo.path / "lambda/lambda-api-gateway/test_lambdadef.json")
    demo.commit("api gateway: green")
    assert glam("plan", "--repo", str(demo.path), "--db", str(db), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    assert [(a["prefix"], a["action"], a["function"]) for a in out["actions"]] == [
        (
            "lambda/lambda-api-gateway/test",
            "new_version",
            # The account the log's functions were deployed to, as the engine's own.
            "fn:123456789012:us-east-1:LambdaFunction_APIGateway",
        ),
    ]

    depdef = demo.path / "lambda/lambda-elb/test_lambdadepdef.json"
    depdef.write_text(depdef.read_text().replace('"percent": 50', '"percent": 25'))
    demo.commit("elb: smaller canary")
    assert glam("plan", "--repo", str(demo.path), "--db", str(db), "--json") == 1
    out = json.loads(capsys.readouterr().out)
    # The green API Gateway change is still undeployed in this log, so it shows again; the
    # deployment definition alone plans no deployment.
    actions = {a["prefix"]: a["action"] for a in out["actions"]}
    assert actions["lambda/lambda-elb/test"] == "settings_only"
    assert "lambda/lambda-sqs/test" not in actions


def test_invalid_definition_exits_2(demo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    path = demo.path / "lambda/lambda-sqs/test_lambdadef.json"
    path.write_text(path.read_text().replace('"Timeout"', '"Timeout": 1, "Timeout"'))
    demo.commit("duplicate key")
    assert glam("plan", "--repo", str(demo.path)) == 2
    err = capsys.readouterr().err
    assert "lambda/lambda-sqs/test_lambdadef.json:" in err
    assert "duplicate key 'Timeout'" in err


def test_missing_branch_exits_3(demo: GitRepo, capsys: pytest.CaptureFixture[str]) -> None:
    assert glam("plan", "--repo", str(demo.path), "--branch", "nope") == 3
    assert "branch 'nope' not found" in capsys.readouterr().err
