"""Body of scripts/bench-plan. See docs/performance.md ("Plan") and docs/limits.md for the
figures.

    scripts/bench-plan [FUNCTIONS...] [--changed M]
                                               glam plan --db on generated repositories of
                                               each size (default 5000 and 50000), M changed
                                               (default 50), against git diff + reading the
                                               changed files in the same run
    scripts/bench-plan --render [FUNCTIONS] [CHANGED]
                                               the same at one size, plus glam plan without a
                                               log and what rendering in worker processes costs
    scripts/bench-plan --limits [BASELINE]     hostile templates: the sandbox's checks alone
                                               against the worker processes (and, given the
                                               path of an older checkout, that code)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from engine.events import Metadata, NewEvent
from engine.events.function import DeploymentFinished
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from engine.planner import PlanContext, plan_commit
from engine.store.sqlite import SqliteEventStore
from projections.runner import ProjectionRunner

GLAM = str(Path(sys.executable).parent / "glam")
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


DEPDEF = json.dumps({"alias": "live", "environment": {"region": "eu-west-1"}}).encode()
INPUT = json.dumps({"ref": {"file": ["infra/outputs.json"], "type": "JSON"}}).encode()
OUTPUTS = {"role": "arn:aws:iam::123456789012:role/exec", "bucket": "code"}


def definition(i: int, key: str) -> dict[str, object]:
    return {
        "FunctionName": f"bench-{i:05d}",
        "Role": "{{ role }}",
        "Handler": "app.handler",
        "Runtime": "python3.12",
        "Code": {"S3Bucket": "{{ bucket }}", "S3Key": key},
        "Environment": {"Variables": {"INDEX": str(i)}},
    }


def fast_import(repo: Path, functions: int, changed: list[int] | None) -> None:
    """One commit through ``git fast-import`` (no work tree: 150,000 files in seconds): every
    function (``changed`` None), or a commit on top changing the functions ``changed``."""
    out = bytearray()

    def blob(mark: int, data: bytes) -> None:
        out.extend(b"blob\nmark :%d\ndata %d\n%s\n" % (mark, len(data), data))

    blob(1, DEPDEF)
    blob(2, INPUT)
    blob(3, json.dumps(OUTPUTS).encode())
    indexes = range(functions) if changed is None else changed
    key = "v1.zip" if changed is None else "v2.zip"
    for i in indexes:
        blob(10 + i, json.dumps(definition(i, key), indent=2).encode())
    message = b"all functions" if changed is None else b"change %d" % len(indexes)
    out.extend(b"commit refs/heads/main\n")
    out.extend(b"committer bench <bench@example.com> 1700000000 +0000\n")
    out.extend(b"data %d\n%s\n" % (len(message), message))
    if changed is not None:
        out.extend(b"from refs/heads/main^0\n")
    else:
        out.extend(b"M 100644 :3 infra/outputs.json\n")
    for i in indexes:
        folder = b"functions/fn%05d/" % i
        out.extend(b"M 100644 :%d %sapp_lambdadef.json\n" % (10 + i, folder))
        if changed is None:
            out.extend(b"M 100644 :1 %sapp_lambdadepdef.json\n" % folder)
            out.extend(b"M 100644 :2 %sapp_lambdainput.json\n" % folder)
    out.extend(b"\n")
    git(repo, "fast-import", "--quiet", stdin=bytes(out))


async def record_deployed(repo: Path, db: Path, functions: int) -> None:
    """The log the engine leaves after planning the first commit and deploying every function:
    its plan (``CommitPlanned``) and each function's request and success. The desired states
    are made from one rendered function (rendering 50,000 would take minutes), and checked
    against really rendered ones."""
    from engine.definitions.commit import CommitState
    from engine.definitions.desired import content_hash
    from engine.events.desired import DesiredFunction
    from engine.streams import repo_stream

    async with GitSource(str(repo), "main") as source:
        head = await source.sync()
        sample = sorted({0, functions // 2, functions - 1})
        checked = await _render_some(source, head, [f"functions/fn{i:05d}/app" for i in sample])

    model = checked["functions/fn00000/app"]

    def desired(i: int) -> DesiredFunction:
        prefix = f"functions/fn{i:05d}/app"
        body = json.loads(json.dumps(model.definition))
        body["FunctionName"] = f"bench-{i:05d}"
        body["Environment"] = {"Variables": {"INDEX": str(i)}}
        return model.model_copy(
            update={
                "prefix": prefix,
                "function_name": body["FunctionName"],
                "definition": body,
                "content_hash": content_hash(body, model.event_sources, model.settings.alias),
            }
        )

    for i in sample:
        real = checked[f"functions/fn{i:05d}/app"]
        assert desired(i) == real, f"the bench's desired state of {i} is not what renders"
    prefixes = [f"functions/fn{i:05d}/app" for i in range(functions)]
    extra: dict[str, object] = {}
    if "listing" in CommitState.__dataclass_fields__:  # an older glam records no listing
        from engine.events.repo import PrefixListing

        extra["listing"] = PrefixListing(added=tuple(prefixes))
    state = CommitState(
        sha=head,
        prefixes=frozenset(prefixes),
        desired={p: desired(i) for i, p in enumerate(prefixes)},
        rejected={},
        changes=None,
        **extra,  # type: ignore[arg-type]
    )
    ids = (f"dep-{i}" for i in itertools.count())
    ctx = PlanContext(
        new_id=lambda: next(ids), default_region="eu-west-1", default_account="123456789012"
    )
    plan = plan_commit(state, {}, ctx)
    async with SqliteEventStore(db) as store:
        chunk = 500
        events = plan.function_events
        for start in range(0, len(events), chunk):
            async with anyio.create_task_group() as tg:
                for n in range(start, min(start + chunk, len(events))):
                    stream, event = events[n]
                    done = DeploymentFinished(
                        deployment_id=event.deployment_id,  # type: ignore[union-attr]
                        outcome="succeeded",
                    )
                    batch = [
                        NewEvent(event, Metadata(event_id=f"r{n}")),
                        NewEvent(done, Metadata(event_id=f"f{n}")),
                    ]
                    tg.start_soon(store.append, stream, batch)
        repo_events = [
            NewEvent(e, Metadata(event_id=f"p{n}")) for n, e in enumerate(plan.repo_events)
        ]
        await store.append(repo_stream(str(repo), "main"), repo_events)
        # What the engine's projection runner stores from it: the views and the planner's
        # inputs (projections.planner), which glam plan reads instead of folding the log.
        await ProjectionRunner(store, batch=10_000, snapshot_every=0).catch_up()


async def _render_some(source: GitSource, head: str, prefixes: list[str]) -> dict[str, Any]:
    wanted = set(prefixes)

    def work() -> dict[str, Any]:
        from engine.definitions.commit import build_commit_state

        snapshot = source.snapshot(head)
        files = [f"{p}_lambda{k}.json" for p in prefixes for k in ("def", "depdef", "input")]
        state = build_commit_state(head, files, snapshot, changes=None, select=wanted.__contains__)
        return dict(state.desired)

    return await source.run(work)


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


def generate(tmp: Path, functions: int, changed: int) -> tuple[Path, Path, float]:
    """A repository of ``functions`` folders whose last commit changes ``changed`` of them,
    and the log the engine left after planning and deploying the commit before."""
    repo = tmp / f"repo-{functions}"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    fast_import(repo, functions, None)
    db = tmp / f"glam-{functions}.db"
    t0 = time.perf_counter()
    anyio.run(record_deployed, repo, db, functions)
    setup = time.perf_counter() - t0
    step = max(1, functions // changed)
    fast_import(repo, functions, list(range(0, step * changed, step)))
    return repo, db, setup


def best(
    cmd: list[str], runs: int = 3, **kw: Any
) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """The fastest of ``runs`` runs (the machine is shared: the least disturbed one): its wall
    seconds, the least CPU seconds of a run (user + system, render workers included), and it."""
    results = []
    for _ in range(runs):
        cpu0 = children_cpu()
        wall, result = timed(cmd, **kw)
        results.append((wall, children_cpu() - cpu0, result))
    wall, _, result = min(results, key=lambda r: r[0])
    return wall, min(r[1] for r in results), result


def git_baseline(repo: Path) -> tuple[float, int]:
    """``git diff --name-status HEAD~1 HEAD`` and ``git cat-file --batch`` of those files:
    what a plan that costs the change must at least do."""

    def once() -> tuple[float, int]:
        start = time.perf_counter()
        diff = git(repo, "diff", "--name-status", "HEAD~1", "HEAD")
        paths = [line.split("\t", 1)[1] for line in diff.decode().splitlines()]
        git(repo, "cat-file", "--batch", stdin="".join(f"HEAD:{p}\n" for p in paths).encode())
        return time.perf_counter() - start, len(paths)

    return min(once() for _ in range(3))


async def breakdown(repo: Path, db: Path) -> tuple[float, float, float | None]:
    """In this process, what glam plan --db does after start-up: reading the log, then listing
    and rendering the head against the last planned commit, listing the whole tree and (when
    this glam records listings) only what changed since. Seconds of each."""
    import inspect

    from engine.cli.plan_log import read_log
    from engine.store import records

    _gc_paused = getattr(records, "gc_paused", contextlib.nullcontext)  # an older checkout
    from engine.planner import render_filter
    from engine.streams import repo_stream

    start = time.perf_counter()
    async with SqliteEventStore(db, readonly=True) as store:
        with _gc_paused():  # as glam plan reads it
            log = await read_log(store, repo_stream(str(repo), "main"))
    deployed, repo_state = log.deployed, log.repo
    t_log = time.perf_counter() - start
    base = repo_state.last_planned
    select = render_filter(deployed)
    async with GitSource(str(repo), "main") as source:
        head = await source.sync()
        await read_commit_state(source, head, base=base, select=select)  # a render worker up
        start = time.perf_counter()
        await read_commit_state(source, head, base=base, select=select)
        t_whole = time.perf_counter() - start
        t_changed = None
        if "known" in inspect.signature(read_commit_state).parameters:
            known = repo_state.known  # type: ignore[attr-defined]
            start = time.perf_counter()
            await read_commit_state(source, head, base=base, select=select, known=known)
            t_changed = time.perf_counter() - start
    return t_log, t_whole, t_changed


def sizes_main(sizes: list[int], changed: int) -> None:
    """glam plan --db at each size, each against the git baseline of its own run."""
    figures: dict[int, float] = {}
    with tempfile.TemporaryDirectory(prefix="glam-bench-plan-") as tmp:
        warm = bytecode_env(Path(tmp) / "pycache")
        for functions in sizes:
            repo, db, setup = generate(Path(tmp), functions, changed)
            glam = [GLAM, "plan", "--repo", str(repo), "--json", "--db", str(db)]
            timed(glam, env=warm)  # compiles the bytecode cache, warms the page cache
            t_plan, cpu, result = best(glam, env=warm)
            actions = [a["action"] for a in json.loads(result.stdout)["actions"]]
            t_git, files = git_baseline(repo)
            figures[functions] = t_plan
            print(
                f"functions={functions:>6} changed={changed}: glam plan --db {t_plan:6.3f} s "
                f"(CPU {cpu:5.2f} s, exit {result.returncode}, "
                f"{actions.count('new_version')} new versions, "
                f"{len(actions)} actions)  git diff + cat-file {t_git:6.3f} s ({files} files)  "
                f"ratio {t_plan / t_git:5.1f}x  (log setup {setup:.0f} s)"
            )
            t_log, t_whole, t_changed = anyio.run(breakdown, repo, db)
            listed = "" if t_changed is None else f", listing what changed {t_changed:6.3f} s"
            print(
                f"  in one process: reading the log {t_log:6.3f} s; the head against the last "
                f"plan: listing the whole tree {t_whole:6.3f} s{listed}"
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"glam plan --db at {large} / at {small}: {figures[large] / figures[small]:.2f}x")


def main() -> None:
    functions = int(sys.argv[2]) if len(sys.argv) > 2 else 5000
    changed = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    with tempfile.TemporaryDirectory(prefix="glam-bench-plan-") as tmp:
        repo, db, setup = generate(Path(tmp), functions, changed)
        glam = [GLAM, "plan", "--repo", str(repo), "--json"]
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
    elif sys.argv[1:2] == ["--render"]:
        main()
    else:
        args = sys.argv[1:]
        changed_at = args.index("--changed") if "--changed" in args else None
        changed = 50
        if changed_at is not None:
            changed = int(args[changed_at + 1])
            del args[changed_at : changed_at + 2]
        sizes_main([int(a) for a in args] or [5000, 50000], changed)
