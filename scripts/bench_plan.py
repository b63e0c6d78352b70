"""Body of scripts/bench-plan. See docs/performance.md ("Plan") for the figures."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from engine.events import Metadata, NewEvent
from engine.events.function import DeploymentFinished
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from engine.planner import PlanContext, plan_commit
from engine.store.sqlite import SqliteEventStore

ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
}


def git(repo: Path, *args: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(
        ["git", *args], cwd=repo, env=ENV, check=True, capture_output=True, input=stdin
    ).stdout


def write_function(repo: Path, i: int, key: str) -> None:
    folder = repo / "functions" / f"fn{i:05d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app_lambdadef.json").write_text(
        json.dumps(
            {
                "FunctionName": f"bench-{i:05d}",
                "Role": "{{ role }}",
                "Handler": "app.handler",
                "Runtime": "python3.12",
                "Code": {"S3Bucket": "{{ bucket }}", "S3Key": key},
                "Environment": {"Variables": {"INDEX": str(i)}},
            },
            indent=2,
        )
    )
    (folder / "app_lambdadepdef.json").write_text(
        json.dumps({"alias": "live", "environment": {"region": "eu-west-1"}})
    )
    (folder / "app_lambdainput.json").write_text(
        json.dumps({"ref": {"file": ["infra/outputs.json"], "type": "JSON"}})
    )


async def record_all_deployed(repo: Path, db: Path) -> None:
    """The log after every function of the first commit deployed successfully."""
    async with GitSource(str(repo), "main") as source:
        head = await source.sync()
        state = await read_commit_state(source, head, base=None)
    ids = (f"dep-{i}" for i in itertools.count())
    ctx = PlanContext(
        new_id=lambda: next(ids), default_region="eu-west-1", default_account="123456789012"
    )
    plan = plan_commit(state, {}, ctx)
    async with SqliteEventStore(db) as store, anyio.create_task_group() as tg:
        for n, (stream, event) in enumerate(plan.function_events):
            done = DeploymentFinished(
                deployment_id=event.deployment_id,  # type: ignore[union-attr]
                outcome="succeeded",
            )
            batch = [
                NewEvent(event, Metadata(event_id=f"r{n}")),
                NewEvent(done, Metadata(event_id=f"f{n}")),
            ]
            tg.start_soon(store.append, stream, batch)


def timed(
    cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[bytes]]:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env or ENV, capture_output=True)
    return time.perf_counter() - start, result


def bytecode_env(cache: Path) -> dict[str, str]:
    """glam as an installed copy runs it: Python's compiled bytecode cached between runs (kept
    in ``cache``, outside the tree). Without a cache, as with PYTHONDONTWRITEBYTECODE=1, every
    run first compiles each module it imports from source."""
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "PYTHONPYCACHEPREFIX": str(cache)}


def main() -> None:
    functions = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    changed = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    with tempfile.TemporaryDirectory(prefix="glam-bench-plan-") as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        (repo / "infra").mkdir()
        (repo / "infra" / "outputs.json").write_text(
            json.dumps({"role": "arn:aws:iam::123456789012:role/exec", "bucket": "code"})
        )
        for i in range(functions):
            write_function(repo, i, "v1.zip")
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "all functions")
        db = Path(tmp) / "glam.db"
        t0 = time.perf_counter()
        anyio.run(record_all_deployed, repo, db)
        setup = time.perf_counter() - t0
        step = max(1, functions // changed)
        for i in range(0, step * changed, step):
            write_function(repo, i, "v2.zip")
        git(repo, "commit", "-q", "-am", f"change {changed}")

        glam = [str(Path(sys.executable).parent / "glam"), "plan", "--repo", str(repo), "--json"]
        warm = bytecode_env(Path(tmp) / "pycache")
        # First run with an empty bytecode cache (compiles every module), then cached runs.
        t_cold, _ = timed([*glam, "--db", str(db)], env=warm)
        # Import cost of the CLI alone, to read the figures honestly.
        t_help, _ = timed([sys.executable, "-c", "import engine.cli.main"], env=warm)
        t_db, with_db = timed([*glam, "--db", str(db)], env=warm)
        t_nodb, no_db = timed(glam, env=warm)
        t_git, diff = timed(["git", "diff", "--name-status", "HEAD~1", "HEAD"], cwd=repo)
        paths = [line.split("\t", 1)[1] for line in diff.stdout.decode().splitlines()]
        start = time.perf_counter()
        git(repo, "cat-file", "--batch", stdin="".join(f"HEAD:{p}\n" for p in paths).encode())
        t_read = time.perf_counter() - start

        planned = json.loads(with_db.stdout)
        actions = [a["action"] for a in planned["actions"]]
        all_new = json.loads(no_db.stdout)["actions"]
        print(f"functions={functions} changed={changed} (log setup {setup:.1f} s)")
        print(
            f"glam plan --db        {t_db:6.2f} s  exit {with_db.returncode}  "
            f"{actions.count('new_version')} new versions, {len(actions)} actions"
        )
        print(
            f"glam plan (no db)     {t_nodb:6.2f} s  exit {no_db.returncode}  "
            f"{len(all_new)} creates"
        )
        print(f"  of which CLI import {t_help:6.2f} s")
        print(f"glam plan --db, first run with no bytecode cache {t_cold:6.2f} s")
        print(f"git diff --name-status {t_git:5.3f} s  {len(paths)} files")
        print(f"+ git cat-file those   {t_read:5.3f} s  (total {t_git + t_read:.3f} s)")
        baseline = t_git + t_read
        print(f"glam plan --db takes {t_db / baseline:.0f}x the git diff + read baseline")


if __name__ == "__main__":
    main()
