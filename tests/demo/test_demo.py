"""``glam demo``: the sample repository reads as intended, and the whole demo runs in a
subprocess exactly as ``./scripts/demo`` runs it, showing the canary, the rollback and the
final status, and leaving no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.demo.narrate import narrate
from engine.demo.repo import (
    API,
    BROKEN,
    CANARY,
    ELB,
    FUNCTIONS,
    SQS,
    SampleRepo,
    broken_definition,
    green_definition,
    initial_files,
)
from engine.demo.run import MARKER, _prepare
from engine.errors import UsageError
from engine.events import Metadata, RecordedEvent
from engine.events.catalog import Event
from engine.events.function import RollbackStarted, TrafficShifted
from engine.git.source import GitSource
from engine.git.state import read_commit_state

ROOT = Path(__file__).resolve().parents[2]
OUTPUTS = {
    "lambda_exec_role_arn": "arn:aws:iam::123456789012:role/glam-lambda-exec",
    "s3_bucket_name": "glam-demo-code",
    "s3_object_blue_key": "blue_function.zip",
    "s3_object_green_key": "green_function.zip",
    "s3_object_sqs_key": "sqs_function.zip",
    "api_id": "a1b2c3d4",
    "route_id": "r0ute1",
    "target_group_arn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/tg/1",
    "sqs_queue_arn": "arn:aws:sqs:us-east-1:123456789012:glam-demo-queue",
}
TERRAFORM = {k: {"sensitive": False, "type": "string", "value": v} for k, v in OUTPUTS.items()}
STREAM = "fn:123456789012:us-east-1:glam-demo-status"


def _record(event: Event, stream: str = STREAM) -> RecordedEvent:
    return RecordedEvent(
        position=1,
        stream=stream,
        version=1,
        event=event,
        meta=Metadata(event_id="e1"),
        recorded_at=datetime(2025, 1, 1, tzinfo=UTC),
        hash="0" * 64,
    )


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        pytest.param(
            TrafficShifted(
                deployment_id="d", alias="PROD", stable_version="1", new_version="2", weight=0.5
            ),
            "weight 0.5 → 50% on version 2, 50% on version 1",
            id="canary-step",
        ),
        pytest.param(
            TrafficShifted(
                deployment_id="d", alias="PROD", stable_version="1", new_version="2", weight=1.0
            ),
            "weight 1.0 → all traffic on version 2",
            id="last-step",
        ),
        pytest.param(
            RollbackStarted(deployment_id="d", reason="alarm glam-demo-errors is in ALARM"),
            "ROLLBACK: alarm glam-demo-errors is in ALARM",
            id="rollback",
        ),
    ],
)
def test_narrate_names_the_function_and_the_fact(event: Event, expected: str) -> None:
    """A shown event is one line: the function's name, then what happened."""
    line = narrate(_record(event))
    assert line is not None
    assert line.split()[0] == "glam-demo-status"
    assert expected in line


def test_narrate_skips_repository_events() -> None:
    """Only function streams tell the deployment story."""
    event = RollbackStarted(deployment_id="d", reason="x")
    assert narrate(_record(event, stream="repo:/tmp/r#main")) is None


def test_prepare_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    """The demo empties only its own folder: anything else is left alone."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not made by `glam demo`"):
        _prepare(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_prepare_empties_a_previous_demo(tmp_path: Path) -> None:
    """A second run starts from an empty folder (a fresh repository and log)."""
    _prepare(tmp_path)
    (tmp_path / "glam.db").write_text("old")
    _prepare(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [MARKER]


@pytest.mark.integration
def test_sample_repository_renders_as_intended(tmp_path: Path) -> None:
    """The sample is valid Gitmoxi format: three functions, their event sources on alias PROD,
    and the two later commits change only the function each act is about."""
    repo = SampleRepo(tmp_path / "repo")
    repo.init()
    repo.write(initial_files(TERRAFORM, wait=3))
    first = repo.commit("three functions")
    repo.write({f"{CANARY.prefix}_lambdadef.json": green_definition()})
    second = repo.commit("green")
    repo.write({f"{BROKEN.prefix}_lambdadef.json": broken_definition()})
    third = repo.commit("broken")

    async def read() -> list[Any]:
        async with GitSource(str(repo.path), "main", data_dir=tmp_path / "mirror") as source:
            await source.sync()
            return [
                await read_commit_state(source, first, base=None),
                await read_commit_state(source, second, base=first),
                await read_commit_state(source, third, base=second),
            ]

    state, green, broken = anyio.run(read)
    assert not state.rejected
    assert {d.function_name for d in state.desired.values()} == {f.name for f in FUNCTIONS}
    sqs = state.desired[SQS.prefix]
    assert sqs.event_sources.mappings[0]["FunctionName"] == f"{SQS.name}:PROD"
    assert sqs.event_sources.mappings[0]["EventSourceArn"] == OUTPUTS["sqs_queue_arn"]
    push = state.desired[API.prefix].event_sources.push[0]
    assert (push.api_id, push.stage_variable) == ("a1b2c3d4", "lambdaAlias")
    assert state.desired[ELB.prefix].settings.traffic.percent == 50
    assert set(green.changes) == {CANARY.prefix}
    assert set(broken.changes) == {BROKEN.prefix}
    assert broken.desired[BROKEN.prefix].settings.alarms


def _session_processes(sid: int) -> list[str]:
    """Processes still alive in session ``sid`` (Linux /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command name: state, ppid, pgrp, session, ...; zombies are gone already.
        if int(fields[3]) == sid and fields[0] != "Z":
            alive.append(stat.parent.name)
    return alive


@pytest.mark.integration
@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path) -> None:
    """The demo exits 0 and shows what the acceptance asks: the canary weights 0.5 then 1.0,
    the alarm rollback, the final status and the commands to explore the log; with --keep it
    ends by printing the dashboard's URL and serves it (every function listed) until Ctrl-C;
    it leaves no process behind, and its log verifies."""
    folder = tmp_path / "demo"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # The `glam` console script's code path: engine.cli.main.main, as ./scripts/demo runs it.
    command = [sys.executable, "-c", "from engine.cli.main import main; main()"]
    process = subprocess.Popen(
        [*command, "demo", "--dir", str(folder), "--wait", "1", "--keep"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 110
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("the dashboard (read-only"):
                break
        url = lines[-1].rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:"), "".join(lines)
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - our own server
            page = answer.read().decode()
        for name in ("glam-demo-hello", "glam-demo-status", "glam-demo-orders"):
            assert name in page
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    out = "".join(lines) + rest
    assert "the dashboard and the embedded AWS stopped" in rest
    assert process.returncode == 0, out
    for headline in ("1/4 first deployment", "2/4 a canary", "3/4 an alarm", "4/4 a delete"):
        assert headline in out
    canary = out[out.index("2/4 a canary") : out.index("3/4 an alarm")]
    assert canary.index("weight 0.5") < canary.index("weight 1.0")
    assert "glam-demo-hello    deployment SUCCEEDED (alias on version 2)" in canary
    rollback = out[out.index("3/4 an alarm") : out.index("4/4 a delete")]
    assert "alarm glam-demo-errors is ALARM" in rollback
    assert "ROLLBACK: alarm glam-demo-errors is in ALARM" in rollback
    assert "deployment ROLLED_BACK (alias on version 1)" in rollback
    assert "glam-demo-orders   function deleted" in out
    status = out[out.index("== glam status") : out.index("== the last")]
    rows = {line.split("\t")[0]: line.split("\t") for line in status.splitlines()[1:] if line}
    assert rows["glam-demo-hello"][4] == "2"
    assert rows["glam-demo-hello"][7] == "stable"
    assert rows["glam-demo-status"][4] == "1"
    assert rows["glam-demo-status"][7] == "rolled_back"
    assert rows["glam-demo-orders"][7] == "deleted"
    assert "glam replay --verify --db" in out
    # Clean shutdown: moto, the proxy and every thread went with the demo process.
    assert _session_processes(process.pid) == []

    verify = subprocess.run(
        [*command, "replay", "--verify", "--db", str(folder / "glam.db")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert verify.returncode == 0, verify.stderr
    assert "hash chain: ok" in verify.stdout

    # What-if of act 3's rolled-back canary: as recorded it rolls back again; with the errors
    # alarm at 5 (the demo reported 3 errors) the same saga code would have promoted.
    whatif_command = [*command, "whatif", "glam-demo-status", "--db", str(folder / "glam.db")]

    def whatif(*args: str) -> dict[str, Any]:
        done = subprocess.run(
            [*whatif_command, "--json", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        answer: dict[str, Any] = json.loads(done.stdout)
        return answer

    as_recorded = whatif()
    assert as_recorded["recorded"]["outcome"] == "rolled_back"
    assert as_recorded["would_have"]["outcome"] == "rolled_back"
    higher = whatif("--alarm-threshold", "glam-demo-errors=5")
    assert higher["would_have"]["outcome"] == "succeeded"
    assert [m["what"] for m in higher["timeline"] if m["what"].startswith("promote")]
    linear = whatif("--alarm-threshold", "glam-demo-errors=5", "--type", "LINEAR", "--percent=25")
    shifts = [m["what"] for m in linear["timeline"] if m["what"].startswith("shift")]
    assert shifts == [f"shift: {p}% to version 2" for p in (25, 50, 75)]
    lower = whatif("--alarm-threshold", "glam-demo-errors=2", "--steps", "5,50")
    assert lower["would_have"]["outcome"] == "rolled_back"
    assert "3 >= 2" in " ".join(m["what"] for m in lower["timeline"])
    unknown = subprocess.run(
        [*whatif_command, "--alarm-threshold", "no-such-alarm=1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 2
    assert "alarm no-such-alarm was not watched by this deployment" in unknown.stderr
