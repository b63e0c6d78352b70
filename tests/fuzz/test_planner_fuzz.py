"""Random definition files, templates and input files thrown at the planner, limits on.

Whatever the files hold, nothing escapes: every function prefix is either planned or rejected
with a reason (never "could not be read", which would mean an error glam's checks missed), the
good function beside them is planned, and memory stays bounded. Seeded (``derandomize``) and
bounded: the per-file time limit is 0.05 s, the examples few enough for seconds in all.
"""

from __future__ import annotations

import json
import resource
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.definitions.commit import CommitState, build_commit_state
from engine.definitions.desired import is_lambda_file
from engine.definitions.limits import RenderLimits
from engine.errors import DefinitionError
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from engine.planner import PlanContext, plan_commit
from tests.fuzz.strategies import QUEUE, definitions, depdefs, eventsources, inputs
from tests.repo.gitrepo import GitRepo

LIMITS = RenderLimits(file_seconds=0.05, commit_seconds=20)
GOOD = {
    "fns/good/good_lambdadef.json": json.dumps(
        {
            "FunctionName": "good",
            "Role": "{{ role }}",
            "Handler": "app.handler",
            "Runtime": "python3.12",
            "Code": {"S3Bucket": "code", "S3Key": "k"},
        }
    ),
    "fns/good/good_lambdadepdef.json": json.dumps({"alias": "live"}),
    "fns/good/good_lambdainput.json": json.dumps({"ref": {"file": "infra/tf.json"}}),
    "fns/good/good_lambdaeventsourcedef.json": json.dumps(
        {"PullEventSources": {"EventSourceMapping": {"EventSourceArn": QUEUE, "BatchSize": 10}}}
    ),
    "infra/tf.json": json.dumps({"role": "arn:aws:iam::123456789012:role/exec"}),
}
FUZZ: dict[str, Any] = dict(
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# How much the process's peak memory may grow over all the examples: the limits allow 64 MiB
# of built strings per file; a runaway template would take gigabytes.
MAX_GROWTH_KIB = 256 * 1024


class Files:
    """An in-memory commit (``RepoFiles``)."""

    def __init__(self, files: dict[str, str]):
        self.files = files

    def read_file(self, path: str, *, referenced_from: str) -> bytes:
        if path not in self.files:
            raise DefinitionError(f"{path} does not exist", file=referenced_from, hint="add it")
        return self.files[path].encode("utf-8", errors="surrogatepass")


@st.composite
def commits(draw: st.DrawFn) -> dict[str, str]:
    files = dict(GOOD)
    for i in range(draw(st.integers(1, 3))):
        name = f"fz{i}"
        files[f"fns/{name}/{name}_lambdadef.json"] = draw(definitions(name))
        if draw(st.integers(0, 9)) != 9:
            files[f"fns/{name}/{name}_lambdadepdef.json"] = draw(depdefs())
        if draw(st.booleans()):
            files[f"fns/{name}/{name}_lambdainput.json"] = draw(inputs())
        if draw(st.integers(0, 2)) == 0:
            files[f"fns/{name}/{name}_lambdaeventsourcedef.json"] = draw(eventsources(name))
    return files


def check(state: CommitState) -> None:
    assert "fns/good/good" in state.desired, state.rejected.get("fns/good/good")
    for prefix in state.prefixes:
        assert (prefix in state.desired) != (prefix in state.rejected), prefix
    for rejection in state.rejected.values():
        assert not rejection.reason.startswith("could not be read"), rejection.one_line()
    ctx = PlanContext(new_id=lambda: "id", default_region="eu-west-1", default_account="1" * 12)
    plan = plan_commit(state, {}, ctx)
    actions = {a.prefix: a.action for a in plan.actions}
    assert actions["fns/good/good"] == "create"
    assert set(actions) == set(state.prefixes)


@pytest.mark.slow  # a hundred examples: a few seconds, many more on a loaded machine
def test_random_files_never_escape_the_planner() -> None:
    """In this process, with the sandbox's limits: every outcome is a plan or a rejection,
    and the process's peak memory hardly moves."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=100, **FUZZ)
    @given(commits())
    def examples(files: dict[str, str]) -> None:
        paths = [p for p in files if is_lambda_file(p)]
        check(build_commit_state("f" * 40, paths, Files(files), changes=None, limits=LIMITS))

    examples()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown < MAX_GROWTH_KIB, f"peak memory grew by {grown >> 10} MiB"


@pytest.mark.integration
@settings(max_examples=12, **FUZZ)
@given(commits())
def test_random_files_through_git_and_the_render_workers(
    tmp_path_factory: pytest.TempPathFactory, files: dict[str, str]
) -> None:
    """The same through a real repository and the worker processes the engine uses."""
    repo = GitRepo(tmp_path_factory.mktemp("fuzz") / "repo")
    for path, text in files.items():
        (repo.path / path).parent.mkdir(parents=True, exist_ok=True)
        (repo.path / path).write_bytes(text.encode("utf-8", errors="surrogatepass"))
    repo.commit()

    async def read() -> CommitState:
        async with GitSource(str(repo.path), "main") as source:
            head = await source.sync()
            return await read_commit_state(source, head, base=None, limits=LIMITS, warn=None)

    check(anyio.run(read))
