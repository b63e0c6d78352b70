"""``scripts/bench-plan --limits [BASELINE]``: hostile templates under the two designs.

For each hostile case (crashes, hangs and memory bombs seen in practice, plus one stuck in C):
the outcome, wall time and peak memory (max RSS)

    sandbox      rendered in a process of its own by ``render_json_template`` with the
                 sandbox's checks only (what the engine would do without worker processes)
    workers      read through Git by the render worker pool, as the engine does; the memory
                 figure is the worker's, the engine's own is printed at the end
    baseline     (with the path of an older checkout) that checkout's renderer, as the sandbox

Each sandbox or baseline run is capped at 4 GiB of address space and 30 s of wall time, so that
a case which would take the machine's memory or run for ever ends as "MemoryError" or "hang".
"""

from __future__ import annotations

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

from engine.git.source import GitSource
from engine.git.state import read_commit_state

BASE = {
    "Role": "arn:aws:iam::123456789012:role/exec",
    "Handler": "app.handler",
    "Runtime": "python3.12",
    "Code": {"S3Bucket": "code", "S3Key": "k"},
}
VALUES = {"xs": ["a", "b"], "big": list(range(100_000))}
CASES = {
    "macro recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "10,000 nested parentheses": "{{ " + "(" * 10_000 + "1" + ")" * 10_000 + " }}",
    "3 nested range(100000) loops": "{% for i in range(100000) %}{% for j in range(100000) %}"
    "{% for k in range(100000) %}{% endfor %}{% endfor %}{% endfor %}",
    "2 nested loops over a list value": "{% for a in big %}{% for b in big %}{% endfor %}"
    "{% endfor %}",
    "string doubling (namespace)": '{% set ns = namespace(s="x") %}{% for i in range(40) %}'
    "{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
    "'x' * 10**10": "{{ 'x' * 10**10 }}",
    '"x"|center(200000000)': '{{ "x"|center(200000000) }}',
    "a map over a list, each under the limit": '{{ (["x"]*100000)|map("center", 1000000)'
    "|list|length }}",
    "{% include %}": '{% include "/etc/passwd" %}',
    "{{ self }}": "{{ self }}",
    "range(10**12)": "{% for i in range(10**12) %}{% endfor %}",
    "xs|map('upper') (no |list)": "{{ xs|map('upper') }}",
    "namespace(...) as a value": "{{ namespace(a=1) }}",
    "a sum of 100,000 lists (stuck in C)": "{{ (range(100000)|batch(1)|list"
    "|sum(start=[]))|length }}",
}
CAP_SECONDS = 30
CAP_BYTES = 4 << 30

CHILD = r"""
import json, resource, sys, time
case = json.loads(sys.stdin.read())
resource.setrlimit(resource.RLIMIT_AS, (case["cap"], case["cap"]))
from engine.definitions import templates
from engine.errors import DefinitionError
start = time.perf_counter()
try:
    templates.render_json_template(case["text"], case["values"], "f_lambdadef.json")
    outcome = "accepted"
except DefinitionError as exc:
    outcome = "rejected: " + exc.reason
except BaseException as exc:
    outcome = "escaped " + type(exc).__name__
took = time.perf_counter() - start
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "seconds": took, "rss_mib": rss // 1024}))
"""


def definition(name: str, template: str) -> str:
    return json.dumps({"FunctionName": name, **BASE, "Description": "@"}).replace("@", template)


def in_a_process(text: str, pythonpath: str | None) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "GLAM_"))}
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    payload = json.dumps({"text": text, "values": VALUES, "cap": CAP_BYTES})
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD],
            input=payload.encode(),
            capture_output=True,
            env=env,
            cwd=pythonpath or Path(__file__).resolve().parents[1],
            timeout=CAP_SECONDS,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"hang (killed at {CAP_SECONDS} s)", "seconds": CAP_SECONDS}
    lines = done.stdout.decode().strip().splitlines()
    if not lines:
        took = time.perf_counter() - start
        return {"outcome": f"crashed (exit {done.returncode})", "seconds": took}
    return dict(json.loads(lines[-1]))


async def through_workers(root: Path) -> dict[str, dict[str, Any]]:
    repo = root / "repo"
    repo.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@x"}
    env.update({"GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@x"})

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    (repo / "values.json").write_text(json.dumps(VALUES))
    git("add", "-A")
    git("commit", "-q", "-m", "values")
    out: dict[str, dict[str, Any]] = {}
    async with GitSource(str(repo), "main") as source:
        await read_commit_state(source, await source.sync(), base=None)  # a worker is ready
        for i, (case, template) in enumerate(CASES.items()):
            folder = repo / "fns" / f"c{i}"
            folder.mkdir(parents=True)
            (folder / f"c{i}_lambdadef.json").write_text(definition(f"c{i}", template))
            (folder / f"c{i}_lambdadepdef.json").write_text('{"alias": "live"}')
            (folder / f"c{i}_lambdainput.json").write_text('{"ref": {"file": "values.json"}}')
            git("add", "-A")
            git("commit", "-q", "-m", case)
            start = time.perf_counter()
            state = await read_commit_state(source, await source.sync(), base=None)
            took = time.perf_counter() - start
            rejection = state.rejected.get(f"fns/c{i}/c{i}")
            outcome = "accepted" if rejection is None else "rejected: " + rejection.reason
            out[case] = {"outcome": outcome, "seconds": took}
            (folder / f"c{i}_lambdadef.json").unlink()  # the next commit renders its case only
            git("add", "-A")
            git("commit", "-q", "-m", f"drop {case}")
    return out


def main(argv: list[str]) -> None:
    baseline = argv[0] if argv else None
    engine_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory(prefix="glam-bench-limits-") as tmp:
        workers = anyio.run(through_workers, Path(tmp))
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - engine_rss) // 1024
    for case, template in CASES.items():
        text = definition("c", template)
        rows = [("sandbox", in_a_process(text, None)), ("workers", workers[case])]
        if baseline:
            rows.insert(0, ("baseline", in_a_process(text, baseline)))
        print(case)
        for label, row in rows:
            rss = f"{row['rss_mib']:>6} MiB" if "rss_mib" in row else " " * 10
            print(f"  {label:<9} {row['seconds']:7.2f} s {rss}  {row['outcome'][:100]}")
    print(f"this process (the engine's side of the workers) grew by {grown} MiB at its peak")
