"""Several engines on one PostgreSQL log, as child processes on the embedded AWS: they share
the shards, a killed owner's deployment is finished by another engine, and a paused owner that
wakes up after its lease was taken writes nothing."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.events.function import DeploymentFinished, TrafficShifted
from engine.local import LocalAwsThread
from engine.store import describe_target, open_store
from tests.chaos.support import read_aws
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import write_function
from tests.support.postgres import postgres_server, postgres_url
from tests.support.shared import ROOT, Engines, by_engine

__all__ = ["postgres_server", "postgres_url"]

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

LINEAR = {"type": "LINEAR", "percent": 25, "waitInterval": 3}


@pytest.fixture
def engines(postgres_url: str, local_aws: LocalAwsThread, tmp_path: Path) -> Iterator[Engines]:
    group = Engines(
        db=postgres_url,
        repo=tmp_path / "repo",
        endpoint_url=local_aws.endpoint_url,
        region=local_aws.region,
        folder=tmp_path,
    )
    try:
        yield group
    finally:
        group.stop_all()


def _repo(engines: Engines) -> GitRepo:
    return GitRepo(engines.repo)


async def _finished(engines: Engines, name: str, count: int) -> list[DeploymentFinished]:
    done = [
        r.event
        for r in await engines.events()
        if isinstance(r.event, DeploymentFinished) and r.stream.endswith(f":{name}")
    ]
    return done if len(done) >= count else []


async def _deployed_once(engines: Engines, outputs: dict[str, Any], name: str) -> GitRepo:
    repo = _repo(engines)
    write_function(repo, outputs, name=name, prefix=f"apps/{name}/{name}")
    repo.commit("first")
    finished = await engines.wait_for(lambda: _finished(engines, name, 1), within=90)
    assert [f.outcome for f in finished] == ["succeeded"]
    return repo


async def test_engines_share_the_shards_and_deploy(
    engines: Engines, local_aws: LocalAwsThread, demo_account: dict[str, Any]
) -> None:
    """Three engines on one log: every shard gets exactly one live owner, no engine holds two
    while another holds none, and a function is deployed by its shard's owner alone."""
    repo = _repo(engines)
    write_function(repo, demo_account, name="shared1", prefix="apps/shared1/shared1")
    repo.commit("first")
    for name in ("a", "b", "c"):
        engines.start(name)
    await engines.wait_for(lambda: _finished(engines, "shared1", 1), within=90)

    async def balanced() -> dict[str, str | None]:
        owners = await engines.owners()
        held = list(owners.values())
        ok = len(owners) == 2 and None not in held and len(set(held)) == 2
        return owners if ok else {}

    owners = await engines.wait_for(balanced, within=30)
    fn_shard = next(s for s in owners if s != "plan")
    records = [r for r in await engines.events() if r.stream.endswith(":shared1")]
    appenders = {by_engine(r) for r in records if r.event.type.startswith("Step")}
    assert len(appenders) == 1, appenders  # one engine ran the saga
    view = await read_aws(local_aws, "shared1")
    assert view.alias is not None
    assert view.alias[1] == {}
    # The owner of the function's shard deploys the next change.
    write_function(repo, demo_account, name="shared1", prefix="apps/shared1/shared1", code="green")
    repo.commit("second")
    await engines.wait_for(lambda: _finished(engines, "shared1", 2), within=90)
    owner = (await engines.owners())[fn_shard]
    late = [r for r in await engines.events() if r.stream.endswith(":shared1")][len(records) :]
    steps = {by_engine(r) for r in late if r.event.type.startswith("Step")}
    assert steps == {owner}


async def test_owner_killed_mid_linear_another_engine_finishes(
    engines: Engines, local_aws: LocalAwsThread, demo_account: dict[str, Any]
) -> None:
    """SIGKILL the owner of the function's shard after the first LINEAR step: once its lease
    expires another engine takes the shard, resumes the saga from the log and finishes it,
    with one new version and empty routing."""
    engines.start("a")
    engines.start("b")
    repo = await _deployed_once(engines, demo_account, "killed1")
    write_function(
        repo,
        demo_account,
        name="killed1",
        prefix="apps/killed1/killed1",
        code="green",
        traffic=LINEAR,
    )
    repo.commit("linear")

    async def first_shift() -> list[Any]:
        return [
            r
            for r in await engines.events()
            if isinstance(r.event, TrafficShifted) and r.stream.endswith(":killed1")
        ]

    shifted = await engines.wait_for(first_shift, within=90, step=0.05)
    owner = by_engine(shifted[0])
    engines.signal(owner, signal.SIGKILL)
    finished = await engines.wait_for(lambda: _finished(engines, "killed1", 2), within=90)
    assert finished[-1].outcome == "succeeded"
    records = [r for r in await engines.events() if r.stream.endswith(":killed1")]
    after = [r for r in records if r.position > shifted[0].position]
    assert {by_engine(r) for r in after if r.event.type.startswith("Step")} == {
        "ab".replace(owner, "")
    }
    view = await read_aws(local_aws, "killed1")
    assert view.alias == (finished[-1].stable_version, {})
    assert len(view.versions) <= 2  # the first deployment's and this one's, at most
    assert max(view.by_code.values()) == 1  # no code published twice


async def test_paused_owner_past_its_lease_writes_nothing(
    engines: Engines, local_aws: LocalAwsThread, demo_account: dict[str, Any]
) -> None:
    """SIGSTOP the owner mid-shift until another engine has taken its shard, then SIGCONT:
    nothing it appends lands after the take, and the new owner finishes the deployment."""
    engines.start("a")
    engines.start("b")
    repo = await _deployed_once(engines, demo_account, "paused1")
    write_function(
        repo,
        demo_account,
        name="paused1",
        prefix="apps/paused1/paused1",
        code="green",
        traffic=LINEAR,
    )
    repo.commit("linear")

    async def first_shift() -> list[Any]:
        return [
            r
            for r in await engines.events()
            if isinstance(r.event, TrafficShifted) and r.stream.endswith(":paused1")
        ]

    shifted = await engines.wait_for(first_shift, within=90, step=0.05)
    owner = by_engine(shifted[0])
    other = "ab".replace(owner, "")
    engines.signal(owner, signal.SIGSTOP)
    fn_shard = next(s for s in await engines.owners() if s != "plan")

    async def taken() -> bool:
        return (await engines.owners()).get(fn_shard) == other

    await engines.wait_for(taken, within=30)
    engines.signal(owner, signal.SIGCONT)
    finished = await engines.wait_for(lambda: _finished(engines, "paused1", 2), within=90)
    assert finished[-1].outcome == "succeeded"
    records = [r for r in await engines.events() if r.stream.endswith(":paused1")]
    takeover = min(
        r.position for r in records if r.position > shifted[0].position and by_engine(r) == other
    )
    assert [r for r in records if r.position > takeover and by_engine(r) == owner] == []
    view = await read_aws(local_aws, "paused1")
    assert view.alias == (finished[-1].stable_version, {})


async def test_a_lone_engine_is_refused_beside_shared_ones_until_they_are_gone(
    engines: Engines, local_aws: LocalAwsThread
) -> None:
    """``glam run`` without ``--shared`` on a log that shared engines run on stops before it
    opens the log, in one line naming them; once the shared engine is SIGKILLed its lock has
    gone with its session and a lone engine may start."""
    _repo(engines).commit("empty")
    engines.start("a")
    await engines.wait_for(engines.live, within=60)
    argv = [sys.executable, "-m", "engine", "run", "--repo", str(engines.repo)]
    argv += ["--db", engines.db, "--endpoint-url", local_aws.endpoint_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    with anyio.fail_after(60):
        lone = await anyio.run_process(argv, check=False, cwd=ROOT, env=env)
    err = lone.stderr.decode()
    assert lone.returncode != 0
    assert "Traceback" not in err
    assert [line for line in err.splitlines() if line.startswith("glam:")] == [
        f"glam: shared engines (glam run --shared) are running on {describe_target(engines.db)}"
        " — run this one with --shared too, or stop them first"
    ]
    engines.signal("a", signal.SIGKILL)
    assert engines.wait("a", timeout=10) is not None
    with anyio.fail_after(10):
        async with open_store(engines.db, exclusive=True) as store:
            assert await store.last_position() > 0
