"""Body of scripts/bench-plan. See docs/performance.md ("Plan") and docs/limits.md for the
figures.

    scripts/bench-plan [FUNCTIONS] [CHANGED]   glam plan on a generated repository, and what
                                               rendering in worker processes costs
    scripts/bench-plan --limits [BASELINE]     hostile templates: the sandbox's checks alone
                                               against the worker processes (and, given the
                                               path of an older checkout, that code)
"""

from __future__ import annotations

import itertools
import json
import os
import resource
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


def children_cpu() -> float:
    """CPU seconds (user + system) of every waited-for child so far, their children included
    (glam waits for its render workers when it exits)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def render_both_ways(repo: Path) -> tuple[float, float, float, float]:
    """Render every prefix of ``repo``: in this process with the sandbox's checks only, then
    through the render worker pool (first with a worker to start, then warm). Wall seconds of
    each, and the pool's CPU seconds (this process and the workers)."""
    from engine.definitions.commit import build_commit_state
    from engine.git.render import close_pools

    async with GitSource(str(repo), "main") as source:
        head = await source.sync()
        close_pools()  # the sync above started one; measure a cold start

        def in_process() -> int:
            snapshot = source.snapshot(head)
            state = build_commit_state(head, snapshot.lambda_files(), snapshot, changes=None)
            return len(state.desired)

        start = time.perf_counter()
        await source.run(in_process)
        t_sandbox = time.perf_counter() - start
        cpu0 = time.process_time() + children_cpu()
        start = time.perf_counter()
        await read_commit_state(source, head, base=None)
        t_cold = time.perf_counter() - start
        start = time.perf_counter()
        await read_commit_state(source, head, base=None)
        t_warm = time.perf_counter() - start
        close_pools()
        cpu = time.process_time() + children_cpu() - cpu0
    return t_sandbox, t_cold, t_warm, cpu


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
        cpu0 = children_cpu()
        t_db, with_db = timed([*glam, "--db", str(db)], env=warm)
        cpu_db = children_cpu() - cpu0
        t_nodb, no_db = timed(glam, env=warm)
        cpu_nodb = children_cpu() - cpu0 - cpu_db
        t_worker, _ = timed([sys.executable, "-c", "import engine.git.render_worker"], env=warm)
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
            f"{actions.count('new_version')} new versions, {len(actions)} actions  "
            f"(CPU {cpu_db:.2f} s, render worker included)"
        )
        print(
            f"glam plan (no db)     {t_nodb:6.2f} s  exit {no_db.returncode}  "
            f"{len(all_new)} creates  (CPU {cpu_nodb:.2f} s)"
        )
        print(f"  a render worker's start (imports) {t_worker:6.2f} s")
        print(f"  of which CLI import {t_help:6.2f} s")
        print(f"glam plan --db, first run with no bytecode cache {t_cold:6.2f} s")
        print(f"git diff --name-status {t_git:5.3f} s  {len(paths)} files")
        print(f"+ git cat-file those   {t_read:5.3f} s  (total {t_git + t_read:.3f} s)")
        baseline = t_git + t_read
        print(f"glam plan --db takes {t_db / baseline:.0f}x the git diff + read baseline")
        t_sandbox, t_pool_cold, t_pool_warm, cpu_pool = anyio.run(render_both_ways, repo)
        print(
            f"render all {functions} prefixes in one process (sandbox checks only) "
            f"{t_sandbox:6.2f} s"
        )
        print(
            f"render all {functions} prefixes in the worker pool: first {t_pool_cold:6.2f} s "
            f"(a worker to start), then {t_pool_warm:6.2f} s; CPU of both {cpu_pool:.2f} s"
        )


if __name__ == "__main__":
    if sys.argv[1:2] == ["--limits"]:
        from bench_limits import main as limits_main

        limits_main(sys.argv[2:])
    else:
        main()
