"""A plan that lists only what changed since the last planned commit equals the plan that lists
the whole tree: on each kind of change, and over random sequences of changes."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.definitions.commit import CommitState
from engine.events.repo import CommitPlanned, PrefixListing
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from engine.observe import RepoState, evolve_repo
from engine.planner import Plan, plan_commit, render_filter
from engine.runtime.engine import Watch
from engine.store.sqlite import SqliteEventStore
from engine.testing import FakeProvider
from projections import planner as planner_rows
from tests.cli.test_org_cli import OWN, fn, glam, run_once
from tests.repo.gitrepo import GitRepo, function_files
from tests.repo.test_planner import Log

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

REF = "infra/outputs.json"


def templated(repo: GitRepo, prefix: str, name: str, key: str = "v1.zip") -> None:
    """A function whose definition reads its role from the ref file through its input."""
    function_files(repo, prefix, name, key=key, inputs={"ref": {"file": [REF]}})
    repo.write(
        f"{prefix}_lambdadef.json",
        {
            "FunctionName": name,
            "Role": "{{ role }}",
            "Handler": "app.handler",
            "Runtime": "python3.12",
            "Code": {"S3Bucket": "code", "S3Key": key},
        },
    )


class Engine:
    """What the engine does per commit: plan against the log, record the plan, deploy it; each
    head planned twice, listing only the changes and listing the whole tree."""

    def __init__(self, repo: GitRepo) -> None:
        self.repo = repo
        self.log = Log()
        self.state = RepoState()
        self.incremental = 0

    async def plan(self, *, base_from_log: bool = True) -> tuple[Plan, CommitState]:
        async with GitSource(str(self.repo.path), "main") as source:
            head = await source.sync()
            deployed = self.log.deployed
            base = self.state.last_planned if base_from_log else None
            select = render_filter(deployed)
            whole = await read_commit_state(source, head, base=base, select=select)
            changed = await read_commit_state(
                source, head, base=base, select=select, known=self.state.known
            )
        assert changed.prefixes == whole.prefixes
        assert changed.desired == whole.desired
        assert changed.rejected == whole.rejected
        assert changed.changes == whole.changes
        assert changed.warnings == whole.warnings
        assert whole.listing is not None
        assert whole.listing.base is None
        assert changed.listing is not None
        if changed.listing.base is not None:
            self.incremental += 1
        full_plan = plan_commit(whole, deployed, self.log.ctx())
        plan = plan_commit(changed, deployed, self.log.ctx())
        assert _without_listing(plan) == _without_listing(full_plan)
        # What the next plan starts from: the recorded listing folds into the same prefixes.
        for event in plan.repo_events:
            self.state = evolve_repo(self.state, event)
        if self.state.known is not None:
            assert self.state.known.prefixes == whole.prefixes
            assert self.state.known.sha == head
        self.log.apply(plan)
        return plan, changed


def _without_listing(plan: Plan) -> tuple[object, ...]:
    events = tuple(
        e.model_copy(update={"listing": None}) if isinstance(e, CommitPlanned) else e
        for e in plan.repo_events
    )
    function_events = tuple(
        (s, e.model_copy(update={"deployment_id": ""}) if hasattr(e, "deployment_id") else e)
        for s, e in plan.function_events
    )
    return (plan.actions, events, function_events, plan.rejected, plan.held, plan.removals)


async def started(repo: GitRepo, n: int = 6) -> Engine:
    repo.write(REF, {"role": "arn:aws:iam::123456789012:role/exec"})
    for i in range(n):
        templated(repo, f"fns/f{i}/f{i}", f"fn-{i}")
    function_files(repo, "root", "fn-root")  # a prefix at the top of the tree
    repo.commit("first")
    engine = Engine(repo)
    plan, state = await engine.plan()
    assert state.listing is not None
    assert state.listing.base is None
    assert {a.action for a in plan.actions} == {"create"}
    return engine


def _symlink(repo: GitRepo) -> None:
    os.symlink("../f1/f1_lambdadef.json", repo.path / "fns/f0/f0_lambdadef.json.tmp")
    os.replace(repo.path / "fns/f0/f0_lambdadef.json.tmp", repo.path / "fns/f0/f0_lambdadef.json")


CHANGES: list[object] = [
    pytest.param(lambda r: templated(r, "fns/f1/f1", "fn-1", key="v2.zip"), True, id="def"),
    pytest.param(lambda r: function_files(r, "root", "fn-root", key="v2.zip"), True, id="root"),
    pytest.param(lambda r: templated(r, "fns/new/new", "fn-new"), True, id="new-folder"),
    pytest.param(lambda r: r.git("rm", "-q", "-r", "fns/f2"), True, id="deleted-folder"),
    pytest.param(lambda r: r.git("mv", "fns/f3", "fns/g3"), True, id="renamed-folder"),
    pytest.param(
        lambda r: r.write(REF, {"role": "arn:aws:iam::123456789012:role/other"}),
        True,
        id="ref-file",
    ),
    pytest.param(
        lambda r: function_files(
            r, "fns/f1/f1", "fn-1", percent=70, inputs={"ref": {"file": [REF]}}
        ),
        True,
        id="depdef-only",
    ),
    pytest.param(lambda r: r.write("fns/f1/f1_lambdadef.json", "{"), True, id="invalid"),
    pytest.param(
        lambda r: r.write("fns/f4/f4_lambdainput.json", {"ref": {"file": ["nope.json"]}}),
        True,
        id="input-names-missing-ref",
    ),
    pytest.param(lambda r: r.remove("fns/f4/f4_lambdadepdef.json"), True, id="depdef-deleted"),
    pytest.param(lambda r: r.write("fns/f1/README.md", "x"), True, id="not-a-lambda-file"),
    pytest.param(_symlink, False, id="symlinked-def-lists-whole-tree"),
]


@pytest.mark.parametrize(("change", "incremental"), CHANGES)
async def test_one_change_plans_as_the_whole_tree_does(
    repo: GitRepo, change: Callable[[GitRepo], None], incremental: bool
) -> None:
    """Each kind of change: the listing from the last plan gives the whole tree's plan."""
    engine = await started(repo)
    change(repo)
    repo.commit("change")
    _, state = await engine.plan()
    assert state.listing is not None
    assert (state.listing.base is not None) == incremental
    # And the plan after it (a later, unrelated change) is listed from it again.
    templated(repo, "fns/f5/f5", "fn-5", key="v3.zip")
    repo.commit("later")
    _, state = await engine.plan()
    assert state.listing is not None


async def test_a_rejected_prefix_is_rendered_again_and_still_rejected(repo: GitRepo) -> None:
    """A new, invalid prefix is rejected by every plan until it is fixed, unchanged or not, as
    the whole-tree plan does (the log has no function for it)."""
    engine = await started(repo)
    function_files(repo, "fns/bad/bad", "fn-bad")
    repo.write("fns/bad/bad_lambdadef.json", "{")
    repo.commit("break")
    await engine.plan()
    repo.write("fns/f2/f2_other.txt", "x")
    repo.commit("unrelated")
    plan, state = await engine.plan()
    assert state.listing is not None
    assert state.listing.base is not None
    assert [r.prefix for r in plan.rejected] == ["fns/bad/bad"]


async def test_a_base_that_is_not_an_ancestor(repo: GitRepo) -> None:
    """History rewritten: the diff from the last planned commit, an ancestor or not, is exact;
    with no base every prefix is rendered."""
    engine = await started(repo)
    first = repo.git("rev-parse", "HEAD")
    templated(repo, "fns/f1/f1", "fn-1", key="v2.zip")
    templated(repo, "fns/x/x", "fn-x")
    repo.commit("second")
    await engine.plan()
    repo.git("reset", "-q", "--hard", first)
    repo.git("rm", "-q", "-r", "fns/f2")
    repo.commit("rewritten")
    await engine.plan()
    await engine.plan(base_from_log=False)
    assert engine.incremental >= 1


async def test_an_old_log_without_listings_lists_the_whole_tree(repo: GitRepo) -> None:
    """A plan recorded by a glam that kept no listing: the next plan lists the whole tree."""
    engine = await started(repo)
    engine.state = RepoState(last_planned=engine.state.last_planned)
    templated(repo, "fns/f1/f1", "fn-1", key="v2.zip")
    repo.commit("change")
    _, state = await engine.plan()
    assert state.listing is not None
    assert state.listing.base is None


def _random_change(repo: GitRepo, rnd: random.Random, names: list[str]) -> str:
    kind = rnd.choice(
        ["def", "def", "new", "delete", "rename", "ref", "depdef", "invalid", "stray", "input"]
    )
    live = [n for n in names if (repo.path / "fns" / n).exists()]
    if kind == "new" or not live:
        name = f"n{len(names)}"
        names.append(name)
        templated(repo, f"fns/{name}/{name}", f"fn-{name}")
        return "new"
    name = rnd.choice(live)
    prefix = f"fns/{name}/{name}"
    match kind:
        case "def":
            templated(repo, prefix, f"fn-{name}", key=f"v{rnd.randrange(100)}.zip")
        case "delete":
            shutil.rmtree(repo.path / "fns" / name)
        case "rename":
            new = f"r{len(names)}"
            names.append(new)
            os.rename(repo.path / "fns" / name, repo.path / "fns" / new)
            # the files keep their old names inside: same prefix name, another folder
        case "ref":
            repo.write(REF, {"role": f"arn:aws:iam::123456789012:role/r{rnd.randrange(9)}"})
        case "depdef":
            function_files(
                repo,
                prefix,
                f"fn-{name}",
                percent=rnd.randrange(1, 99),
                inputs={"ref": {"file": [REF]}},
            )
        case "invalid":
            repo.write(f"{prefix}_lambdadef.json", "{ not json")
        case "stray":
            repo.write(f"fns/{name}/notes.txt", str(rnd.random()))
        case "input":
            repo.write(f"{prefix}_lambdainput.json", {"ref": {"file": [REF]}, "x": rnd.random()})
    return kind


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_change_sequences(repo: GitRepo, seed: int) -> None:
    """Random commits of one to three changes each: every plan equals the whole tree's."""
    rnd = random.Random(seed)
    engine = await started(repo, n=5)
    names = [f"f{i}" for i in range(5)]
    for step in range(12):
        for _ in range(rnd.randint(1, 3)):
            _random_change(repo, rnd, names)
        repo.commit(f"step {step}")
        await engine.plan()
    assert engine.incremental >= 10


def quick(repo: GitRepo, prefix: str, name: str, key: str = "v1.zip") -> None:
    """A function the engine deploys at once, with no bake to wait for."""
    fn(repo, prefix, name, key=key)
    shifting = {"type": "ALL_AT_ONCE", "waitInterval": 0}
    repo.write(f"{prefix}_lambdadepdef.json", {"alias": "live", "trafficShiftingConfig": shifting})


def _plans_both_ways(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], repo: GitRepo, db: Path
) -> str:
    """``glam plan --db`` three ways, which must print the same: from the planner's inputs
    the engine stored (``projections.planner``), from a fold of the log, and listing the
    whole tree (no listing known)."""
    args = ("plan", "--repo", str(repo.path), "--db", str(db), "--json", "--region", "us-east-1")
    read: list[bool] = []
    real = planner_rows.read_inputs

    async def spy(store: Any, stream: str) -> Any:
        inputs = await real(store, stream)
        read.append(inputs is not None)
        return inputs

    with monkeypatch.context() as stored:
        stored.setattr(planner_rows, "read_inputs", spy)
        code, out, err = glam(monkeypatch, capsys, *args)
    assert read == [True]  # the engine stored them, and this plan read them
    with monkeypatch.context() as folded:
        folded.setattr(planner_rows, "read_inputs", _none)
        assert glam(monkeypatch, capsys, *args) == (code, out, err)
        folded.setattr("engine.observe.fold_listing", lambda *_: None)
        assert glam(monkeypatch, capsys, *args) == (code, out, err)
    return out


async def _none(*_: object) -> None:
    return None


def _listings(db: Path) -> list[PrefixListing | None]:
    async def read() -> list[PrefixListing | None]:
        async with SqliteEventStore(db, readonly=True) as store:
            records = await store.read_all()
        return [r.event.listing for r in records if isinstance(r.event, CommitPlanned)]

    return anyio.run(read)


def test_the_engine_records_listings_and_glam_plan_lists_from_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The engine on a real SQLite log records each plan's prefixes (complete, then as a
    change); ``glam plan --db`` lists from them and prints what the whole tree's plan prints."""
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "GLAM_DB", "GLAM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    repo = GitRepo(tmp_path / "repo")
    for name in ("a", "b", "c", "d"):
        quick(repo, f"f/{name}/{name}", f"audit-{name}")
    repo.commit("four functions")
    db = tmp_path / "state" / "glam.db"
    provider = FakeProvider(OWN)
    assert run_once(db, Watch(str(repo.path), "main"), provider=provider).exit_code == 0
    quick(repo, "f/b/b", "audit-b", key="v2.zip")
    quick(repo, "f/e/e", "audit-e")
    shutil.rmtree(repo.path / "f" / "c")
    os.rename(repo.path / "f" / "d", repo.path / "g")
    repo.commit("a bit of everything")
    out = _plans_both_ways(monkeypatch, capsys, repo, db)
    assert '"new_version"' in out
    assert '"create"' in out
    assert run_once(db, Watch(str(repo.path), "main"), provider=provider).exit_code == 0
    first, second = _listings(db)
    assert first is not None
    assert first.base is None
    assert first.added == ("f/a/a", "f/b/b", "f/c/c", "f/d/d")
    assert second is not None
    assert second.base is not None
    assert (second.added, second.removed) == (("f/e/e", "g/d"), ("f/c/c", "f/d/d"))
    quick(repo, "f/a/a", "audit-a", key="v3.zip")
    repo.commit("one more")
    out = _plans_both_ways(monkeypatch, capsys, repo, db)
    assert out.count('"new_version"') == 1
