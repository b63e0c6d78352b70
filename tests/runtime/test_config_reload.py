"""``glam run --config`` as a process of its own, on the embedded AWS: SIGHUP re-reads the file,
a repository added to it starts being watched, a removed one stops (its function stays), and a
file that no longer validates is refused while the engine goes on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import pytest

from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from tests.repo.gitrepo import GitRepo
from tests.runtime.support import Setup, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}


def _config(setup: Setup, *repos: Path, broken: bool = False) -> str:
    lines = [
        "[engine]",
        f'db = "{setup.db}"',
        f'region = "{setup.region}"',
        f'endpoint_url = "{setup.endpoint_url}"',
        "poll = 0.2",
    ]
    for repo in repos:
        lines += ["[[repository]]", f'path = "{repo}"', 'branches = ["main"]']
    if broken:
        lines.append('branchs = ["dev"]')
    return "\n".join(lines) + "\n"


async def _functions(local_aws: LocalAwsThread) -> list[str]:
    async with aws_client("lambda", local_aws.endpoint_url) as lam:
        return sorted(f["FunctionName"] for f in (await lam.list_functions())["Functions"])


async def _until(check: Callable[[], Awaitable[bool]], what: str, seconds: float = 90) -> None:
    with anyio.move_on_after(seconds):
        # Polling another process's effect on AWS: there is no event to wait on.
        while not await check():  # noqa: ASYNC110
            await anyio.sleep(0.2)
        return
    pytest.fail(f"no {what} within {seconds:g} s")


async def test_sighup_rereads_the_configuration(
    setup: Setup, local_aws: LocalAwsThread, tmp_path: Path
) -> None:
    first = setup.repo
    write_function(first, setup.outputs, traffic=NOW, name="first", prefix="fns/first/first")
    first.commit("first")
    second = GitRepo(tmp_path / "second")
    write_function(second, setup.outputs, traffic=NOW, name="second", prefix="fns/second/second")
    second.commit("second")
    config = tmp_path / "glam.toml"
    config.write_text(_config(setup, first.path))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    env["PYTHONPATH"] = str(ROOT)
    log = (tmp_path / "engine.log").open("wb")
    child = await anyio.open_process(
        [sys.executable, "-m", "engine", "run", "--config", str(config)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:

        async def has(name: str) -> bool:
            return name in await _functions(local_aws)

        await _until(lambda: has("first"), "the first repository's function")
        config.write_text(_config(setup, first.path, second.path))
        child.send_signal(signal.SIGHUP)
        await _until(lambda: has("second"), "the added repository's function")

        config.write_text(_config(setup, second.path, broken=True))
        child.send_signal(signal.SIGHUP)
        await anyio.sleep(1)
        config.write_text(_config(setup, second.path))
        child.send_signal(signal.SIGHUP)
        await anyio.sleep(1)
        first.remove("fns/first/first_lambdadef.json")
        first.commit("first deleted while no longer watched")
        await anyio.sleep(3)  # many polls of the engine's 0.2 s
        assert await _functions(local_aws) == ["first", "second"]
        running = child.returncode is None
        assert running  # the broken file did not stop the engine
    finally:
        child.send_signal(signal.SIGTERM)
        with anyio.fail_after(30):
            await child.wait()
        log.close()
    output = (tmp_path / "engine.log").read_text()
    assert child.returncode == 0, output
    assert "configuration not applied" in output
    assert "'branchs' is not a setting of [[repository]]" in output
    assert f"no longer watching {first.path} main" in output
    assert output.count("configuration applied") == 2
