"""The gm-demo Lambda samples, deployed unchanged by the engine on the embedded AWS.

The repository is laid out as gm-demo's README tells its users: each
``lambda/<dir>/sample/test_*.json.sample`` copied to ``lambda/<dir>/test_*.json``, next to the
terraform output of an account that provides what the samples reference (here the embedded
AWS's demo account). The samples are read from ``../shared`` beside the repository root and
never copied into the project.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.cli.main import app
from engine.local import LocalAwsThread
from tests.e2e.support import SOURCE_MUTATIONS, AwsState
from tests.runtime.support import Setup, outcomes

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "compat" / "gm-demo-lambda"

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.integration,
    pytest.mark.skipif(
        not SAMPLES.is_dir(),
        reason=f"gm-demo samples not found at {SAMPLES} (../shared is not checked out)",
    ),
]
TF_OUTPUT = "lambda/core-infra/terraform/terraform_output.json"
API, ELB, SQS = "LambdaFunction_APIGateway", "LambdaFunction_ELB", "LambdaFunction_SQS"
API_DIR = "lambda/lambda-api-gateway"
ELB_DIR = "lambda/lambda-elb"


def lay_out(setup: Setup) -> None:
    """Copy the samples as gm-demo's README says, with the demo account's terraform output."""
    for sample in sorted(SAMPLES.glob("lambda/*/sample/test_*.json.sample")):
        target = f"lambda/{sample.parent.parent.name}/{sample.name.removesuffix('.sample')}"
        data = sample.read_bytes()
        if target.endswith("_lambdadepdef.json"):
            # The only edit to the samples: their 60 s canary bake (and 10 s readiness wait)
            # become 1 s so that the canary runs in seconds. Everything else is byte for byte.
            data = re.sub(rb'"waitInterval": \d+', b'"waitInterval": 1', data)
        setup.repo.write(target, data)
    setup.repo.write(TF_OUTPUT, setup.outputs)


def output(setup: Setup, name: str) -> str:
    value: str = setup.outputs[name]["value"]
    return value


def alias_arn(setup: Setup, function: str) -> str:
    # moto's default account; the queue ARN made by the account builder carries it too.
    account = output(setup, "sqs_queue_arn").split(":")[4]
    return f"arn:aws:lambda:{setup.region}:{account}:function:{function}:PROD"


async def snapshot(setup: Setup, aws: AwsState) -> dict[str, Any]:
    """Everything glam manages in the demo account, as listed from AWS."""
    functions = await aws.functions()
    return {
        "functions": functions,
        "aliases": {f: await aws.aliases(f) for f in functions},
        "versions": {f: await aws.versions(f) for f in functions},
        "policies": {f: await aws.statements(f, "PROD") for f in functions},
        "mappings": await aws.mappings(output(setup, "sqs_queue_arn")),
        "targets": await aws.targets(output(setup, "target_group_arn")),
        "route": await aws.route_target(output(setup, "api_id"), output(setup, "route_id")),
        "integrations": await aws.integrations(output(setup, "api_id")),
    }


async def glam(*args: str) -> int:
    """Run a glam command as the CLI would, in a worker thread (it runs its own event loop)."""

    def call() -> int:
        rc = app(list(args), standalone_mode=False)
        return rc if isinstance(rc, int) else 0

    return await anyio.to_thread.run_sync(call)


async def test_gm_demo_end_to_end(
    setup: Setup, aws: AwsState, local_aws: LocalAwsThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """Create the three functions with their sources on the alias, canary the green code,
    delete the ELB function with its sources, and then do nothing when nothing changed."""
    lay_out(setup)
    setup.repo.commit("gm-demo: blue")

    # -- 1. three functions, alias PROD, every source on the alias -----------------------------
    report = await setup.run_once()
    assert sorted(outcomes(report)) == ["succeeded"] * 3
    assert await aws.functions() == [API, ELB, SQS]
    for function in (API, ELB, SQS):
        assert await aws.aliases(function) == {"PROD": ("1", {})}

    # Exactly one mapping for the queue, and it is the one made for the alias. (moto reports
    # as FunctionArn the version the alias pointed to at creation, where AWS reports the alias
    # ARN, so the alias is checked by the FunctionName the mapping is listed under.)
    mappings = await aws.mappings(output(setup, "sqs_queue_arn"))
    assert len(mappings) == 1
    assert [m["UUID"] for m in await aws.mappings_of(f"{SQS}:PROD")] == [mappings[0]["UUID"]]
    assert (mappings[0]["BatchSize"], mappings[0]["MaximumBatchingWindowInSeconds"]) == (10, 60)

    assert await aws.targets(output(setup, "target_group_arn")) == [alias_arn(setup, ELB)]
    elb_policy = await aws.statements(ELB, "PROD")
    assert [s["Principal"]["Service"] for s in elb_policy] == ["elasticloadbalancing.amazonaws.com"]
    assert output(setup, "target_group_arn") in json.dumps(elb_policy[0]["Condition"])

    route = await aws.route_target(output(setup, "api_id"), output(setup, "route_id"))
    integrations = await aws.integrations(output(setup, "api_id"))
    assert len(integrations) == 1
    assert route == f"integrations/{integrations[0]['IntegrationId']}"
    assert integrations[0]["IntegrationType"] == "AWS_PROXY"
    uri = integrations[0]["IntegrationUri"]
    assert uri.endswith(f"function:{API}:${{stageVariables.lambdaAlias}}"), uri
    assert await aws.principals(API, "PROD") == ["apigateway.amazonaws.com"]
    assert await aws.principals(SQS, "PROD") == []  # a pull source needs no permission
    local_aws.journal.check_invariants()

    # `glam status FUNCTION` shows the function's sources.
    capsys.readouterr()
    assert await glam("status", SQS, "--db", str(setup.db), "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["event_sources"] == [{"kind": "mapping", "source_id": mappings[0]["UUID"]}]
    assert await glam("status", SQS, "--db", str(setup.db)) == 0
    out = capsys.readouterr().out
    assert f"mapping\t{mappings[0]['UUID']}" in out
    assert await glam("status", API, "--db", str(setup.db)) == 0
    assert f"apigateway\t{output(setup, 'api_id')}/" in capsys.readouterr().out

    # -- 2. the green code through a 50 % canary -----------------------------------------------
    local_aws.journal.clear()
    shutil.copyfile(
        SAMPLES / f"{API_DIR}/sample/test_lambdadef.json.sample.green",
        setup.repo.path / f"{API_DIR}/test_lambdadef.json",
    )
    setup.repo.commit("api gateway: green")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    stream, finished = report.finished[0]
    assert stream.endswith(f":{API}")
    assert await setup.weights(finished.deployment_id) == [0.5, 1.0]
    shifts = [
        (e.version, dict(e.routing or {}))
        for e in local_aws.journal.calls("UpdateAlias", function=API)
        if 200 <= e.status < 300
    ]
    # The 100 % step is the promote itself: one UpdateAlias moves the version and clears the
    # routing (never a 100 % routing weight first).
    assert shifts == [("1", {"2": 0.5}), ("2", {})]
    assert await aws.aliases(API) == {"PROD": ("2", {})}
    assert await aws.versions(API) == ["$LATEST", "2"]  # the old version deleted
    # The sources stayed on the alias through the shift: nothing to redo for them.
    assert not [e for e in local_aws.journal if e.operation in SOURCE_MUTATIONS]
    assert await aws.principals(API, "PROD") == ["apigateway.amazonaws.com"]
    assert len(await aws.integrations(output(setup, "api_id"))) == 1
    local_aws.journal.check_invariants()

    # -- 3. deleting the ELB definition deletes the function and its sources -------------------
    local_aws.journal.clear()
    setup.repo.remove(f"{ELB_DIR}/test_lambdadef.json")
    setup.repo.commit("elb: delete")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert await aws.functions() == [API, SQS]
    assert await aws.targets(output(setup, "target_group_arn")) == []
    operations = [e.operation for e in local_aws.journal if 200 <= e.status < 300]
    # Sources first: the target and the permission go before the function does.
    assert operations.index("DeregisterTargets") < operations.index("DeleteFunction")
    assert operations.index("RemovePermission") < operations.index("DeleteFunction")
    assert operations.count("RemovePermission") == 1
    assert [r.stream for r in await setup.events("FunctionDeleted")] == [report.finished[0][0]]

    # -- 4. nothing changed: nothing happens ---------------------------------------------------
    before = await snapshot(setup, aws)
    events = len(await setup.events())
    local_aws.journal.clear()
    report = await setup.run_once()
    assert report.finished == []
    assert report.exit_code == 0
    new = [r.event.type for r in (await setup.events())[events:]]
    assert set(new) <= {"CommitObserved"}, new
    assert not [e for e in local_aws.journal if e.operation in SOURCE_MUTATIONS]
    assert await snapshot(setup, aws) == before

    capsys.readouterr()
    assert await glam("replay", "--verify", "--db", str(setup.db)) == 0
