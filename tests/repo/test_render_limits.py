"""Rendering in worker processes: a hostile function is rejected alone, within its limits, and
the engine's process is never the one that runs out of time or memory."""

from __future__ import annotations

import json
import os
import signal
import time
from typing import Any

import anyio
import pytest

from engine.definitions.commit import CommitState
from engine.definitions.limits import MIB, RenderLimits
from engine.git.render import pool_for
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from tests.repo.gitrepo import GitRepo, function_files

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FAST = RenderLimits(file_seconds=0.5, commit_seconds=20)
BASE = {
    "Role": "arn:aws:iam::123456789012:role/exec",
    "Handler": "app.handler",
    "Runtime": "python3.12",
    "Code": {"S3Bucket": "code", "S3Key": "k"},
}
# Runs in C for far longer than the limit (a sum of 100,000 lists is quadratic): a worker's
# timer cannot interrupt it, only killing the worker stops it.
STUCK_IN_C = "{{ (range(100000)|batch(1)|list|sum(start=[]))|length }}"


# Every hostile template of the redteam report, with words of the rejection it must get.
HOSTILE: dict[str, tuple[str, str]] = {
    "macro": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "call depth limit"),
    "parens": ("{{ " + "(" * 10_000 + "1" + ")" * 10_000 + " }}", "nested too deeply"),
    "loops": (
        "{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% for k in range(100000) %}{% endfor %}{% endfor %}{% endfor %}",
        "time limit of 0.5 s",
    ),
    "doubling": (
        '{% set ns = namespace(s="x") %}{% for i in range(64) %}'
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "output limit",
    ),
    "mul": ("{{ 'x' * 10**10 }}", "output limit"),
    "center": ('{{ "x"|center(200000000) }}', "output limit"),
    "include": ('{% include "/etc/passwd" %}', "cannot include"),
    "self": ("{{ self }}", "TemplateReference"),
    "range": ("{% for i in range(10**12) %}{% endfor %}", "limit of 100,000"),
    "map": ("{{ ['a']|map('upper') }}", "add | list"),
    "namespace": ("{{ namespace(a=1) }}", "Namespace"),
    "stuck": (STUCK_IN_C, "the render worker was stopped"),
}


def bad_function(repo: GitRepo, name: str, template: str) -> None:
    """A function whose definition holds ``template`` in its Description string."""
    body = json.dumps({"FunctionName": name, **BASE, "Description": "@"})
    repo.write(f"fns/{name}/{name}_lambdadef.json", body.replace("@", template))
    repo.write(f"fns/{name}/{name}_lambdadepdef.json", {"alias": "live"})


async def read(repo: GitRepo, limits: RenderLimits = FAST, **kw: Any) -> CommitState:
    async with GitSource(str(repo.path), "main") as source:
        head = await source.sync()
        return await read_commit_state(source, head, base=None, limits=limits, **kw)


async def test_every_hostile_case_is_rejected_alone(repo: GitRepo) -> None:
    """Each hostile template rejects its own function, naming the file and the
    limit; the good function beside them is planned."""
    function_files(repo, "fns/good/good", "good")
    cases = HOSTILE
    for name, (template, _) in cases.items():
        bad_function(repo, name, template)
    repo.commit()
    start = time.monotonic()
    state = await read(repo)
    # A hang shows as the commit's own limit (20 s) or far past it; a loaded machine is slow
    # only by some seconds (the worker's start is outside the commit's time).
    assert time.monotonic() - start < FAST.commit_seconds + 10
    assert set(state.desired) == {"fns/good/good"}
    for name, (_, words) in cases.items():
        rejection = state.rejected[f"fns/{name}/{name}"]
        assert rejection.file == f"fns/{name}/{name}_lambdadef.json", name
        assert words in rejection.one_line(), (name, rejection.one_line())


async def test_memory_limit_is_the_workers(repo: GitRepo) -> None:
    """A template that needs more memory than the worker may have is rejected naming the
    memory limit, whatever the sandbox's own size checks allow."""
    roomy = RenderLimits(file_seconds=5, output_bytes=64 * MIB, memory_bytes=160 * MIB)
    function_files(repo, "fns/good/good", "good")
    bad_function(
        repo,
        "greedy",
        '{% set a = "x"|center(60000000) %}{% set b = "y"|center(60000000) %}'
        '{% set c = "z"|center(60000000) %}{{ [a, b, c]|map("length")|sum }}',
    )
    repo.commit()
    state = await read(repo, roomy)
    assert set(state.desired) == {"fns/good/good"}
    assert "160 MiB" in state.rejected["fns/greedy/greedy"].one_line()


async def test_worker_killed_for_time_is_replaced(repo: GitRepo) -> None:
    """After a worker is killed, the next commit renders with a fresh one."""
    bad_function(repo, "stuck", STUCK_IN_C)
    repo.commit()
    state = await read(repo)
    assert "stopped" in state.rejected["fns/stuck/stuck"].reason
    repo.remove("fns/stuck/stuck_lambdadef.json")
    function_files(repo, "fns/good/good", "good")
    repo.commit()
    state = await read(repo)
    assert set(state.desired) == {"fns/good/good"}
    assert not state.rejected


async def test_commit_time_limit_rejects_what_is_left(repo: GitRepo) -> None:
    """Past the commit's limit, every function not rendered yet is rejected naming it; those
    rendered before keep their outcome."""
    limits = RenderLimits(file_seconds=0.5, commit_seconds=1.0, workers=1)
    function_files(repo, "fns/a-good/a-good", "a-good")
    loop = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    for i in range(6):
        bad_function(repo, f"slow{i}", loop)
    repo.commit()
    start = time.monotonic()
    state = await read(repo, limits)
    # The commit's second, a file's limit and grace, and a worker's start (a new pool).
    assert time.monotonic() - start < 1.0 + 0.5 * 1.5 + 1.0 + 6.0
    assert set(state.desired) == {"fns/a-good/a-good"}
    reasons = [r.reason for r in state.rejected.values()]
    assert len(reasons) == 6
    assert any("render time limit of 1 s" in r for r in reasons)


async def test_cancelling_a_render_kills_the_worker(repo: GitRepo) -> None:
    """A render being cancelled (the engine stopping) returns at once and leaves no worker
    running the template."""
    limits = RenderLimits(file_seconds=30, commit_seconds=60)
    function_files(repo, "fns/good/good", "good")
    repo.commit()
    await read(repo, limits)  # a worker is started and waiting
    bad_function(repo, "stuck", STUCK_IN_C)
    repo.commit()
    pool = pool_for(limits)
    killed = len(pool.killed)
    async with GitSource(str(repo.path), "main") as source:
        head = await source.sync()
        start = time.monotonic()
        with anyio.move_on_after(1.0):
            await read_commit_state(source, head, base=None, limits=limits)
        assert time.monotonic() - start < 1.5
    # The busy worker is killed (and reaped) by the render thread right after the cancel.
    for _ in range(100):
        if len(pool.killed) > killed:
            break
        await anyio.sleep(0.05)
    with pytest.raises(ProcessLookupError):
        os.kill(pool.killed[-1], 0)


async def test_keep_rendered_and_warnings_come_back(repo: GitRepo) -> None:
    """What glam plan shows comes through the worker: rendered texts and warnings."""
    function_files(repo, "fns/a/a", "fn-a")
    repo.write(
        "fns/a/a_lambdadepdef.json",
        {"alias": "live", "stabilityCheck": {"timeout": 220}, "webhooks": []},
    )
    repo.commit()
    state = await read(repo, keep_rendered=True, warn=None)
    assert set(state.rendered) == {"fns/a/a_lambdadef.json", "fns/a/a_lambdadepdef.json"}
    assert [(w.file, w.message.split(":")[0]) for w in state.warnings] == [
        ("fns/a/a_lambdadepdef.json", "key 'stabilityCheck' ignored"),
        ("fns/a/a_lambdadepdef.json", "key 'webhooks' ignored"),
    ]


async def test_a_worker_that_crashes_rejects_only_its_function(repo: GitRepo) -> None:
    """A worker that dies under a template (here: killed with SIGSEGV from outside) rejects
    the function it was on, naming how it ended; the pool carries on with a fresh worker."""
    limits = RenderLimits(file_seconds=30, commit_seconds=60, workers=1)
    function_files(repo, "fns/good/good", "good")
    repo.commit()
    await read(repo, limits)  # a worker is started and waiting
    pool = pool_for(limits)
    (worker,) = pool._idle
    bad_function(repo, "stuck", STUCK_IN_C)
    repo.commit()

    async def crash_soon() -> None:
        await anyio.sleep(1.0)
        os.kill(worker.proc.pid, signal.SIGSEGV)

    async with anyio.create_task_group() as tg:
        tg.start_soon(crash_soon)
        state = await read(repo, limits)
    assert "stopped by signal SIGSEGV" in state.rejected["fns/stuck/stuck"].reason
    assert set(state.desired) == {"fns/good/good"}
    repo.remove("fns/stuck/stuck_lambdadef.json")
    repo.commit()
    assert set((await read(repo, limits)).desired) == {"fns/good/good"}


async def test_a_large_engine_keeps_its_workers(repo: GitRepo) -> None:
    """A worker's memory is its own: started by a process whose peak is past the recycling
    share (``ru_maxrss`` is inherited across fork and exec), it still stays for the next
    commit instead of leaving after every job."""
    limits = RenderLimits(file_seconds=30, commit_seconds=60, workers=1, memory_bytes=300 * MIB)
    ballast = bytearray(200 * MIB)
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    function_files(repo, "fns/good/good", "good")
    repo.commit()
    pool = pool_for(limits)
    try:
        await read(repo, limits)
        (first,) = pool._idle
        repo.write("fns/good/good_lambdadepdef.json", {"alias": "prod"})
        repo.commit()
        await read(repo, limits)
        (second,) = pool._idle
        assert second.proc.pid == first.proc.pid
    finally:
        del ballast
