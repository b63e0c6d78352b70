"""The commands that read a log beside AWS or a repository read a PostgreSQL log as they read
an SQLite file: ``glam drift`` and ``glam plan --db`` on a real deployment copied with
``glam db copy`` answer exactly as on its SQLite original, and ``glam dashboard --db URL``
serves the same pages as on the file."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import urllib.request
from functools import partial
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest
from typer.testing import CliRunner

from engine.local import LocalAwsThread
from engine.local.clients import aws_client
from tests.cli.test_history_wait import build
from tests.golden.generate import ORDERS
from tests.runtime.support import NAME, Setup, outcomes, write_function
from tests.support.postgres import TempPostgres, postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]  # the fixtures of a real PostgreSQL server

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]


def _glam(*args: str) -> tuple[int, str, str]:
    from engine.cli.main import app

    result = CliRunner().invoke(app, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def _no_log_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GLAM_DB", "GLAM_CHAIN_KEY_FILE", "GLAM_WITNESS"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.anyio
async def test_drift_and_plan_read_a_postgresql_log_as_its_sqlite_original(
    setup: Setup, local_aws: LocalAwsThread, postgres_url: str, postgres_server: TempPostgres
) -> None:
    write_function(setup.repo, setup.outputs, traffic={"type": "ALL_AT_ONCE", "waitInterval": 1})
    setup.repo.commit("orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]
    async with aws_client("lambda", local_aws.endpoint_url, region=local_aws.region) as lam:
        await lam.update_function_configuration(FunctionName=NAME, MemorySize=512)
    write_function(setup.repo, setup.outputs, memory=256)  # a change not yet deployed
    setup.repo.commit("more memory")
    sqlite = str(setup.db)
    copied = await anyio.to_thread.run_sync(
        lambda: _glam("db", "copy", "--from", sqlite, "--to", postgres_url)
    )
    assert copied[0] == 0, copied

    aws = ["--endpoint-url", setup.endpoint_url, "--region", setup.region]
    commands = {
        "drift": ["drift", *aws],
        "drift-json": ["drift", NAME, "--json", *aws],
        "plan": ["plan", "--repo", str(setup.repo.path), "--region", setup.region],
        "plan-json": ["plan", "--repo", str(setup.repo.path), "--json", "--region", setup.region],
    }
    answers: dict[str, tuple[int, str, str]] = {}
    for name, command in commands.items():
        on_file = await anyio.to_thread.run_sync(partial(_glam, *command, "--db", sqlite))
        on_pg = await anyio.to_thread.run_sync(partial(_glam, *command, "--db", postgres_url))
        assert on_pg[:2] == on_file[:2], name
        assert postgres_server.password not in on_pg[1] + on_pg[2]
        answers[name] = on_file
    code, out, _ = answers["drift"]
    assert code == 1, out
    assert "$LATEST.MemorySize: 128 → 512" in out  # the drift, the same on both
    # The plan is made against the log: the function is known (an update), not new.
    code, out, _ = answers["plan"]
    no_log = await anyio.to_thread.run_sync(partial(_glam, *commands["plan"]))
    assert code == 1, out
    assert out != no_log[1]


def test_a_plan_on_a_postgresql_log_that_does_not_exist_says_so(
    tmp_path: Path, postgres_url: str, postgres_server: TempPostgres
) -> None:
    """An empty database holds no log: exit 3 ("could not be read"), one line, no password."""
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    who = ["-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(
        ["git", "-C", str(repo), *who, "commit", "-q", "--allow-empty", "-m", "e"], check=True
    )
    code, out, err = _glam("plan", "--repo", str(repo), "--db", postgres_url)
    assert code == 3, (out, err)
    assert "no event log" in err
    assert postgres_server.password not in out + err
    assert len(err.strip().splitlines()) == 1


def _serve_dashboard(db: str) -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("GLAM_DB",)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "dashboard", "--db", db, "--listen", "127.0.0.1:0"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    found = re.search(r"(http://127\.0\.0\.1:\d+/dashboard/)", line)
    if found is None:
        proc.kill()
        _, err = proc.communicate(timeout=10)
        pytest.fail(f"glam dashboard did not start: {line!r} {err!r}")
    return proc, found.group(1)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - 127.0.0.1 only
        body: str = answer.read().decode()
    return body


def test_the_dashboard_serves_a_postgresql_log_as_its_sqlite_original(
    tmp_path: Path, postgres_url: str, postgres_server: TempPostgres
) -> None:
    sqlite = str(build(tmp_path / "glam.db"))
    copied = _glam("db", "copy", "--from", sqlite, "--to", postgres_url)
    assert copied[0] == 0, copied
    pages: dict[str, dict[str, str]] = {}
    for db in (sqlite, postgres_url):
        proc, base = _serve_dashboard(db)
        try:
            pages[db] = {
                "overview": _get(base),
                "function": _get(base + f"functions/{quote(ORDERS)}"),
                "deployment": _get(base + "deployments/dep-2"),
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert postgres_server.password not in err
    on_file, on_pg = pages[sqlite], pages[postgres_url]
    assert "orders" in on_pg["overview"]
    assert "rolled_back" in on_pg["deployment"].replace(" ", "_").lower() or (
        "rolled back" in on_pg["deployment"].lower()
    )
    for page in on_file:
        assert on_pg[page].replace(postgres_url, "LOG") == on_file[page].replace(sqlite, "LOG")
