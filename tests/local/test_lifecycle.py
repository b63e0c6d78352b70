"""Starting and stopping the embedded AWS, loopback only, the CLI, the account builder, and
the acceptance scenario of issue 4."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from botocore.exceptions import ClientError

from engine.local import Fidelity, LocalAws, LocalAwsThread
from engine.local.account import ALARM_NAMES, build_account, set_alarm_state
from engine.local.clients import aws_client
from tests.local.conftest import code

pytestmark = pytest.mark.integration

COMPAT_OUTPUTS = {
    "lambda_exec_role_arn",
    "s3_bucket_name",
    "s3_object_blue_key",
    "s3_object_green_key",
    "s3_object_sqs_key",
    "api_id",
    "route_id",
    "target_group_arn",
    "sqs_queue_arn",
    "api_endpoint_with_route",
    "elb_endpoint",
}


def _listening_ports(pid: int) -> set[tuple[str, int]]:
    """(address, port) of every TCP socket of ``pid`` in LISTEN state, from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except FileNotFoundError:  # closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                address, port = fields[1].split(":")
                found.add((address, int(port, 16)))
    return found


def _threads() -> set[threading.Thread]:
    """The threads alive, less the worker pools of the test's event loop (its default
    executor and anyio's workers): they outlive any one test, and grow with load; and
    asyncio's child watchers ("asyncio-waitpid-N"), one per child process any test of this
    worker awaits, each ending with its child."""
    pools = ("ThreadPoolExecutor-", "asyncio_", "asyncio-waitpid-", "AnyIO worker thread")
    return {t for t in threading.enumerate() if not t.name.startswith(pools)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.anyio
async def test_ready_fast_loopback_only_and_leaves_nothing_behind() -> None:
    """The proxy and moto listen on 127.0.0.1 only; after the block no thread and no process
    of the component remain."""
    threads_before = _threads()
    async with LocalAws() as aws:
        ours = _listening_ports(os.getpid())
        moto_pid = aws.moto_pid
        assert moto_pid is not None
        moto = _listening_ports(moto_pid)
        loopback = "0100007F"  # 127.0.0.1 as /proc/net/tcp writes it
        assert (loopback, aws.proxy.port) in ours
        assert moto == {(loopback, int(aws.moto_url.rsplit(":", 1)[1]))}
        assert all(address == loopback for address, _ in ours)
    assert not _alive(moto_pid)
    assert _threads() <= threads_before, _threads() - threads_before


def test_thread_variant_stops_its_thread_and_process() -> None:
    """LocalAwsThread joins its event-loop thread and reaps moto on exit."""
    threads_before = _threads()
    with LocalAwsThread() as aws:
        pid = aws.moto_pid
        assert pid is not None
        assert _threads() > threads_before
    assert not _alive(pid)
    assert _threads() <= threads_before, _threads() - threads_before


async def _wait_for(aws: LocalAws, lam: Any, key: str, value: str) -> None:
    """Poll GetFunction the way a deployer does until ``key`` shows ``value``, moving the
    component's clock 0.05 s between polls."""
    for _ in range(100):
        config = (await lam.get_function(FunctionName="orders"))["Configuration"]
        if config[key] == value:
            return
        aws.advance_clock(0.05)
        await anyio.lowlevel.checkpoint()
    raise AssertionError(f"{key} never became {value}")


@pytest.mark.anyio
async def test_acceptance_scenario() -> None:
    """Issue 4's acceptance: create, publish, alias, shift; $LATEST in routing and deleting
    the aliased version refused; 40 UpdateAlias calls within one second get 429s; the
    journal shows all of it. The component's clock stands still unless moved (however slow
    the machine, the burst is within one quota second)."""
    fidelity = Fidelity(pending_seconds=0.3, update_seconds=0.3)
    async with LocalAws(fidelity=fidelity, clock=lambda: 1000.0) as aws:
        async with (
            aws_client("iam", aws.endpoint_url) as iam,
            aws_client("lambda", aws.endpoint_url) as lam,
        ):
            role = await iam.create_role(RoleName="exec", AssumeRolePolicyDocument="{}")
            await lam.create_function(
                FunctionName="orders",
                Role=role["Role"]["Arn"],
                Runtime="python3.11",
                Handler="h.handler",
                Code={"ZipFile": code()},
            )
            await _wait_for(aws, lam, "State", "Active")
            assert (await lam.publish_version(FunctionName="orders"))["Version"] == "1"
            await lam.update_function_code(FunctionName="orders", ZipFile=code() + b"")
            await _wait_for(aws, lam, "LastUpdateStatus", "Successful")
            assert (await lam.publish_version(FunctionName="orders"))["Version"] == "2"
            await lam.create_alias(FunctionName="orders", Name="PROD", FunctionVersion="1")
            aws.advance_clock(1.0)  # a fresh quota second for the shift, without waiting it
            shift = {"AdditionalVersionWeights": {"2": 0.2}}
            await lam.update_alias(FunctionName="orders", Name="PROD", RoutingConfig=shift)
            with pytest.raises(ClientError, match="InvalidParameterValueException"):
                await lam.update_alias(
                    FunctionName="orders",
                    Name="PROD",
                    RoutingConfig={"AdditionalVersionWeights": {"$LATEST": 0.2}},
                )
            with pytest.raises(ClientError, match="ResourceConflictException"):
                await lam.delete_function(FunctionName="orders", Qualifier="1")

            aws.advance_clock(1.0)
            throttled = 0
            burst_start = time.perf_counter()
            for i in range(40):
                try:
                    await lam.update_alias(
                        FunctionName="orders",
                        Name="PROD",
                        RoutingConfig={"AdditionalVersionWeights": {"2": (i + 1) / 100}},
                    )
                except ClientError as exc:
                    if exc.response["Error"]["Code"] != "TooManyRequestsException":
                        raise
                    throttled += 1
            burst = time.perf_counter() - burst_start
        journal = aws.journal
        updates = journal.calls("UpdateAlias")
        assert burst < 1.0 or throttled > 0
        assert throttled >= 40 - 15
        assert sum(e.status == 429 for e in updates) == throttled
        ops = [e.operation for e in journal]
        for op in ("CreateFunction", "PublishVersion", "CreateAlias", "UpdateAlias"):
            assert op in ops
        assert [e.version for e in journal.calls("PublishVersion") if e.status == 201] == ["1", "2"]
        assert updates[0].routing == {"2": 0.2}
        assert [e.rule for e in updates[:2]] == [None, "alias_routing"]
        (delete,) = journal.calls("DeleteFunction")
        assert (delete.status, delete.referenced_by) == (409, ("PROD",))
        assert journal.max_rate("control") > 15


@pytest.mark.anyio
async def test_account_builder_outputs(local_aws: LocalAwsThread) -> None:
    """The builder makes the account and returns exactly the compat output names, each
    terraform-shaped; the alarms can be forced into ALARM."""
    outputs = await build_account(local_aws.endpoint_url)
    assert set(outputs) == COMPAT_OUTPUTS
    for value in outputs.values():
        assert value["sensitive"] is False
        assert value["type"] == "string"
        assert isinstance(value["value"], str)
    await set_alarm_state(local_aws.endpoint_url, ALARM_NAMES[0])
    async with (
        aws_client("cloudwatch", local_aws.endpoint_url) as cw,
        aws_client("s3", local_aws.endpoint_url) as s3,
        aws_client("apigatewayv2", local_aws.endpoint_url) as apigw,
    ):
        alarms = (await cw.describe_alarms(AlarmNames=list(ALARM_NAMES)))["MetricAlarms"]
        assert {a["AlarmName"]: a["StateValue"] for a in alarms}[ALARM_NAMES[0]] == "ALARM"
        bucket = outputs["s3_bucket_name"]["value"]
        listed = await s3.list_objects_v2(Bucket=bucket)
        assert {o["Key"] for o in listed["Contents"]} == {
            "blue_function.zip",
            "green_function.zip",
            "sqs_function.zip",
        }
        stage = await apigw.get_stage(ApiId=outputs["api_id"]["value"], StageName="$default")
        assert stage["StageVariables"] == {"lambdaAlias": "PROD"}


GLAM = str(Path(sys.executable).with_name("glam"))


def _start_cli(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [GLAM, "aws-local", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _stop_cli(process: subprocess.Popen[str]) -> None:
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert children, "moto should run as a child of the CLI"
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=10) == 0
    for child in children:
        assert not _alive(int(child))


def test_cli_prints_ready_and_stops_on_ctrl_c() -> None:
    """`glam aws-local` prints endpoint, region and dummy credentials, and stops moto with it
    on SIGINT."""
    with _start_cli() as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            match = re.search(r"ready on (http://127\.0\.0\.1:\d+)", first)
            assert match, first
            lines = [process.stdout.readline().strip() for _ in range(4)]
            assert lines[0] == f"export AWS_ENDPOINT_URL={match.group(1)}"
            assert lines[1] == "export AWS_DEFAULT_REGION=us-east-1"
            assert lines[2] == "export AWS_ACCESS_KEY_ID=testing"
            assert lines[3] == "export AWS_SECRET_ACCESS_KEY=testing"
            _stop_cli(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_cli_with_account_writes_outputs(tmp_path: Path) -> None:
    """`--with-account FILE` builds the demo account and writes the outputs before ready."""
    out = tmp_path / "terraform_output.json"
    with _start_cli("--with-account", str(out), "--faults", "seed=1;*:latency=1ms") as process:
        try:
            assert process.stdout is not None
            assert "ready on" in process.stdout.readline()
            assert set(json.loads(out.read_text())) == COMPAT_OUTPUTS
            _stop_cli(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def test_cli_rejects_a_bad_fault_spec() -> None:
    """A bad --faults fails at once with exit 2 and the grammar hint, starting nothing."""
    result = subprocess.run(
        [GLAM, "aws-local", "--faults", "UpdateAlias:boom=1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "invalid fault spec" in result.stderr


def test_without_moto_the_import_says_how_to_install() -> None:
    """Without the 'local' extra, importing engine.local raises LocalAwsError with the fix."""
    probe = (
        "import sys; sys.modules['moto'] = None\n"
        "from engine.errors import LocalAwsError\n"
        "try:\n    import engine.local\nexcept LocalAwsError as exc:\n    print(exc.hint)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "pip install 'glam-gitops[local]'"
