"""A hostile template in one function, seen by the whole engine: the other functions deploy,
bake and finish meanwhile, ``glam plan`` says "invalid", and a stop is prompt."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import pytest

from engine.events import Event, RecordedEvent
from engine.events.function import DeploymentFinished, TrafficShifted
from engine.events.repo import CommitObserved, DefinitionRejected
from engine.store.sqlite import SqliteEventStore
from tests.repo.gitrepo import GitRepo
from tests.repo.test_render_limits import HOSTILE
from tests.runtime.support import NAME, Setup, write_function

if TYPE_CHECKING:
    pass

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
STUCK_IN_C = "{{ (range(100000)|batch(1)|list|sum(start=[]))|length }}"
TYPO = "{{ ['a', 'b']|map('upper') }}"


@pytest.fixture(autouse=True)
def fast_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLAM_RENDER_FILE_SECONDS", "0.5")


def poison(setup: Setup, name: str, template: str) -> None:
    value = {k: v["value"] for k, v in setup.outputs.items()}
    body = {
        "FunctionName": name,
        "Role": value["lambda_exec_role_arn"],
        "Handler": "h.handler",
        "Runtime": "python3.12",
        "Code": {"S3Bucket": value["s3_bucket_name"], "S3Key": value["s3_object_blue_key"]},
        "Description": "@",
    }
    text = json.dumps(body).replace("@", template)
    setup.repo.write(f"fns/{name}/{name}_lambdadef.json", text)
    setup.repo.write(f"fns/{name}/{name}_lambdadepdef.json", {"alias": "live"})


class Watcher:
    def __init__(self) -> None:
        self.seen: list[RecordedEvent] = []
        self._changed = anyio.Event()

    def __call__(self, record: RecordedEvent) -> None:
        self.seen.append(record)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[Event], bool]) -> None:
        with anyio.fail_after(60):
            while not any(predicate(r.event) for r in self.seen):
                self._changed = anyio.Event()
                await self._changed.wait()


async def test_run_once_deploys_the_others(setup: Setup) -> None:
    """With a typo and a template stuck in C beside it, the good function is deployed in the
    same run and the two bad ones are rejected, each naming its file."""
    write_function(setup.repo, setup.outputs)
    poison(setup, "typo", TYPO)
    poison(setup, "stuck", STUCK_IN_C)
    setup.repo.commit("good and bad")
    report = await setup.run_once()
    assert [(s.rsplit(":", 1)[1], f.outcome) for s, f in report.finished] == [(NAME, "succeeded")]
    assert sorted(r.file for r in report.rejected) == [
        "fns/stuck/stuck_lambdadef.json",
        "fns/typo/typo_lambdadef.json",
    ]


async def test_rollout_goes_on_while_a_poison_commit_renders(setup: Setup) -> None:
    """A function in the middle of a LINEAR rollout keeps shifting, baking and finishes while
    the engine rejects a poisonous commit to another function: nothing freezes, nothing
    stops."""
    write_function(setup.repo, setup.outputs)
    setup.repo.commit("add orders")
    assert [f.outcome for _, f in (await setup.run_once()).finished] == ["succeeded"]
    linear = {"type": "LINEAR", "percent": 30, "waitInterval": 2}
    write_function(setup.repo, setup.outputs, code="green", traffic=linear)
    setup.repo.commit("green, linear")
    watcher = Watcher()
    engine = setup.engine(on_event=watcher)
    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await watcher.wait_for(lambda e: isinstance(e, TrafficShifted) and e.weight == 0.3)
        poison(setup, "stuck", STUCK_IN_C)
        poison(setup, "macro", "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}")
        setup.repo.commit("poison")
        await watcher.wait_for(
            lambda e: isinstance(e, DefinitionRejected) and e.prefix == "fns/stuck/stuck"
        )
        await watcher.wait_for(
            lambda e: isinstance(e, DeploymentFinished) and e.outcome == "succeeded"
        )
        engine.stop()
    weights = [r.event.weight for r in watcher.seen if isinstance(r.event, TrafficShifted)]
    assert weights == [0.3, 0.6, 0.9, 1.0]
    rejected = {r.event.prefix for r in watcher.seen if isinstance(r.event, DefinitionRejected)}
    assert rejected == {"fns/stuck/stuck", "fns/macro/macro"}


def _render_workers_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == pid and b"engine.git.render_worker" in cmdline:
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
async def test_sigterm_during_a_render_stops_promptly(setup: Setup) -> None:
    """``glam run`` stopped by SIGTERM while a template is stuck rendering (limit 60 s)
    exits within seconds, and no render worker is left running the template."""
    poison(setup, "stuck", STUCK_IN_C)
    setup.repo.commit("poison")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["GLAM_RENDER_FILE_SECONDS"] = "60"
    args = [
        sys.executable,
        "-c",
        "from engine.cli.main import main; main()",
        "run",
        "--repo",
        str(setup.repo.path),
        "--db",
        str(setup.db),
        "--endpoint-url",
        setup.endpoint_url,
        "--region",
        setup.region,
    ]
    log = setup.db.parent.parent / "run.log"
    with log.open("wb") as out:
        proc = await anyio.open_process(args, env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        # Rendering has started once the commit is observed and a worker holds the job.
        for _ in range(300):
            if await _observed(setup.db):
                break
            assert proc.returncode is None, log.read_text()
            await anyio.sleep(0.2)
        await anyio.sleep(1.5)
        workers = _render_workers_of(proc.pid)
        assert workers, log.read_text()
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        with anyio.fail_after(30):
            await proc.wait()
        took = time.monotonic() - start
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = log.read_text()
    assert took < 5, output
    assert "Traceback" not in output, output
    for _ in range(50):
        if not any(_alive(pid) for pid in workers):
            break
        await anyio.sleep(0.1)
    assert not any(_alive(pid) for pid in workers)


async def _observed(db: Path) -> bool:
    if not await anyio.Path(db).exists():
        return False
    try:
        async with SqliteEventStore(db, readonly=True) as store:
            return any(isinstance(r.event, CommitObserved) for r in await store.read_all())
    except Exception:
        return False


def test_glam_plan_says_invalid(repo: GitRepo) -> None:
    """``glam plan`` on one commit holding every hostile template (the twelve of
    tests/repo/test_render_limits.py, the one stuck in C among them) exits 2 ("invalid"), never
    1 and never with a traceback, and still shows the good function."""
    from tests.repo.gitrepo import function_files

    function_files(repo, "fns/good/good", "good")
    templates = {name: template for name, (template, _) in HOSTILE.items()}
    base = {
        "Role": "arn:aws:iam::123456789012:role/exec",
        "Handler": "app.handler",
        "Runtime": "python3.12",
        "Code": {"S3Bucket": "code", "S3Key": "k"},
    }
    for name, template in templates.items():
        body = json.dumps({"FunctionName": name, **base, "Description": "@"})
        repo.write(f"fns/{name}/{name}_lambdadef.json", body.replace("@", template))
        repo.write(f"fns/{name}/{name}_lambdadepdef.json", {"alias": "live"})
    repo.commit()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    env["GLAM_RENDER_FILE_SECONDS"] = "0.5"  # the loops and the one stuck in C end sooner
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from engine.cli.main import main; main()",
            "plan",
            "--repo",
            str(repo.path),
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "+ create         fns/good/good" in output
    for name in templates:
        assert f"invalid: fns/{name}/{name}_lambdadef.json" in output, name


async def test_gitmoxi_keys_deploy_with_a_warning_logged_and_recorded(
    setup: Setup, caplog: pytest.LogCaptureFixture
) -> None:
    """A depdef carrying Gitmoxi's ECS keys deploys; each key is a warning in the engine's log
    and in the recorded plan."""
    write_function(setup.repo, setup.outputs)
    path = setup.repo.path / "apps/orders/orders_lambdadepdef.json"
    depdef = json.loads(path.read_text())
    depdef["stabilityCheck"] = {"timeoutPerTask": 25, "timeout": 220}
    depdef["webhooks"] = [{"url": "https://example.com/hook"}]
    setup.repo.write("apps/orders/orders_lambdadepdef.json", depdef)
    setup.repo.commit("orders with ECS leftovers")
    with caplog.at_level("WARNING", logger="glam.definitions"):
        report = await setup.run_once()
    assert [f.outcome for _, f in report.finished] == ["succeeded"]
    logged = [r.getMessage() for r in caplog.records if r.name == "glam.definitions"]
    assert any("key 'stabilityCheck' ignored" in line for line in logged), logged
    assert any("key 'webhooks' ignored" in line for line in logged), logged
    (planned,) = [r.event for r in await setup.events("CommitPlanned")]
    assert [w.message.split(":")[0] for w in planned.warnings] == [  # type: ignore[union-attr]
        "key 'stabilityCheck' ignored",
        "key 'webhooks' ignored",
    ]
