"""The engine as a long-running process: supersede while it runs, the engine lock, and
``glam run --once`` exit codes from a real subprocess."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from engine.errors import StoreLocked
from engine.events import Event, RecordedEvent
from engine.events.function import DeploymentFinished, TrafficShifted
from engine.local import LocalAwsThread
from engine.runtime.engine import Engine, EngineConfig
from engine.testing import FakeProvider
from tests.runtime.support import NAME, Setup, outcomes, write_function
from tests.runtime.test_engine import _alias_calls, _deployed_v1

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]


class Watcher:
    """An ``on_event`` hook that keeps every event and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.seen: list[RecordedEvent] = []
        self._changed = anyio.Event()

    def __call__(self, record: RecordedEvent) -> None:
        self.seen.append(record)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Event], bool]) -> None:
        with anyio.fail_after(30):
            while not any(predicate(r.event) for r in self.seen):
                self._changed = anyio.Event()
                await self._changed.wait()


async def test_supersede_in_the_middle_of_a_canary(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A commit landing while a canary bakes rolls the canary back at its next safe point,
    then deploys the newer desired state."""
    await _deployed_v1(setup)
    local_aws.journal.clear()
    slow = {"type": "CANARY", "percent": 50, "waitInterval": 60}
    write_function(setup.repo, setup.outputs, code="green", traffic=slow)
    setup.repo.commit("green, slow canary")
    watcher = Watcher()
    engine = setup.engine(on_event=watcher)
    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await watcher.wait_for(lambda e: isinstance(e, TrafficShifted) and e.weight == 0.5)
        write_function(setup.repo, setup.outputs, code="blue", memory=256)
        setup.repo.commit("blue with more memory, fast canary")
        await watcher.wait_for(
            lambda e: isinstance(e, DeploymentFinished) and e.outcome == "succeeded"
        )
        engine.stop()
    finished = [r.event for r in watcher.seen if isinstance(r.event, DeploymentFinished)]
    assert [f.outcome for f in finished] == ["superseded", "succeeded"]
    # Version 2 was deleted by the rollback; as in real Lambda its number is not reused.
    newest = finished[1].stable_version
    assert newest == "3"
    assert _alias_calls(local_aws) == [
        ("1", {"2": 0.5}),  # the slow canary
        ("1", {}),  # superseded: back to stable
        ("1", {newest: 0.5}),  # the newer desired state
        (newest, {}),  # its promote: the 100 % step
    ]
    deletes = local_aws.journal.calls("DeleteFunction", function=NAME)
    assert [e.qualifier for e in deletes] == ["2", "1"]
    local_aws.journal.check_invariants()


async def test_second_engine_on_the_same_database_is_refused(tmp_path: Path) -> None:
    """Only one engine per database: the second refuses to start and says why."""
    from tests.repo.gitrepo import GitRepo

    repo = GitRepo(tmp_path / "repo")
    repo.commit("empty")
    config = EngineConfig(repo=str(repo.path), db=tmp_path / "glam.db")
    async with Engine(config, ports=FakeProvider()):
        with pytest.raises(StoreLocked) as refused:
            async with Engine(config, ports=FakeProvider()):
                pass
        assert "another glam engine" in refused.value.one_line()
    # Released on exit: the next engine starts.
    async with Engine(config, ports=FakeProvider()) as engine:
        report = await engine.run(once=True)
    assert report.exit_code == 0


async def _glam_run_once(setup: Setup, *, failpoints: str = "") -> tuple[int, str]:
    """``glam run --once`` in a child process; with ``failpoints``, started through
    ``tests.support.engine_main``, which arms them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    entry = ["-c", "from engine.cli.main import main; main()", "run"]
    if failpoints:
        env["GLAM_FAILPOINTS"] = failpoints
        entry = ["-m", "tests.support.engine_main", "--short-waits"]
    args = [
        sys.executable,
        *entry,
        "--repo",
        str(setup.repo.path),
        "--db",
        str(setup.db),
        "--endpoint-url",
        setup.endpoint_url,
        "--region",
        setup.region,
        "--once",
    ]
    with anyio.fail_after(60):
        done = await anyio.run_process(args, env=env, cwd=ROOT, check=False)
    return done.returncode, (done.stdout + done.stderr).decode()


async def test_cli_once_exit_codes(setup: Setup, local_aws: LocalAwsThread) -> None:
    """``glam run --once`` exits 0 when everything succeeded, 1 when a deployment rolled
    back; it logs one line per step and never the credentials."""
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 0})
    setup.repo.commit("add orders")
    code, output = await _glam_run_once(setup)
    assert code == 0, output
    assert "deployment succeeded" in output
    write_function(
        setup.repo,
        setup.outputs,
        code="green",
        alarms=("no-such-alarm",),
        traffic={"type": "ALL_AT_ONCE", "waitInterval": 0},
    )
    setup.repo.commit("green, watched by a missing alarm")
    code, output = await _glam_run_once(setup)
    assert code == 1, output
    assert "rolled_back" in output
    assert "testing" not in output  # the dummy credentials never reach the output
    local_aws.journal.check_invariants()


@pytest.mark.parametrize(
    "point",
    [
        pytest.param("publish_version:after_call", id="after-publish"),
    ],
)
async def test_killed_at_a_failpoint_then_restarted_converges(
    setup: Setup, local_aws: LocalAwsThread, point: str
) -> None:
    """SIGKILLed between a mutation and its record, the engine resumes from the log on
    restart: no duplicate version, the alias ends on the new version with empty routing."""
    fast = {"type": "CANARY", "percent": 50, "waitInterval": 0}
    write_function(setup.repo, setup.outputs, traffic=fast)
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]  # in this process: quicker
    write_function(setup.repo, setup.outputs, code="green", traffic=fast)
    setup.repo.commit("green")
    code, output = await _glam_run_once(setup, failpoints=point)
    assert code == -9, output  # SIGKILL
    code, output = await _glam_run_once(setup)
    assert code == 0, output
    published = [e for e in local_aws.journal.calls("PublishVersion") if e.status == 201]
    assert [e.version for e in published] == ["1", "2"]  # never published twice
    last = local_aws.journal.calls("UpdateAlias", function=NAME)[-1]
    assert (last.version, dict(last.routing or {})) == ("2", {})
    local_aws.journal.check_invariants()
