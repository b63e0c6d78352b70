"""The planner's rule table on real repositories, through the Git source and the planner."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from engine.events import Metadata, RecordedEvent
from engine.events.catalog import Event
from engine.events.function import DeploymentFinished, DeploymentRequested
from engine.git.source import GitSource
from engine.git.state import read_commit_state
from engine.planner import (
    DeployedState,
    Plan,
    PlanContext,
    deployed_from_events,
    plan_commit,
    render_filter,
)
from tests.repo.gitrepo import GitRepo, function_files

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


class Log:
    """A tiny function-event log: what the engine would have appended after each plan."""

    def __init__(self) -> None:
        self.records: list[RecordedEvent] = []
        self.ids = (f"dep-{i}" for i in itertools.count(1))

    def ctx(self, **kw: object) -> PlanContext:
        return PlanContext(
            new_id=lambda: next(self.ids),
            default_region="eu-west-1",
            default_account="123456789012",
            **kw,  # type: ignore[arg-type]
        )

    def add(self, stream: str, event: Event) -> None:
        self.records.append(
            RecordedEvent(
                position=len(self.records) + 1,
                stream=stream,
                version=1 + sum(r.stream == stream for r in self.records),
                event=event,
                meta=Metadata(event_id=f"e{len(self.records)}"),
                recorded_at=datetime(2024, 1, 1, tzinfo=UTC),
                hash="",
            )
        )

    def apply(self, plan: Plan, outcome: str = "succeeded") -> None:
        """Record the plan's requests and finish each with ``outcome``."""
        for stream, event in plan.function_events:
            self.add(stream, event)
            if isinstance(event, DeploymentRequested):
                self.add(
                    stream,
                    DeploymentFinished(deployment_id=event.deployment_id, outcome=outcome),
                )

    @property
    def deployed(self) -> dict[str, DeployedState]:
        return deployed_from_events(self.records)


async def plan_head(repo: GitRepo, log: Log, base: str | None, **ctx: object) -> Plan:
    async with GitSource(str(repo.path), "main") as source:
        head = await source.sync()
        deployed = log.deployed
        state = await read_commit_state(source, head, base=base, select=render_filter(deployed))
    return plan_commit(state, deployed, log.ctx(**ctx))


def kinds(plan: Plan) -> dict[str, str]:
    return {a.prefix: a.action for a in plan.actions}


async def first_deploy(repo: GitRepo, log: Log, names: Sequence[str] = ("a", "b")) -> str:
    for name in names:
        function_files(repo, f"fns/{name}/{name}", f"fn-{name}")
    sha = repo.commit("first")
    plan = await plan_head(repo, log, None)
    assert set(kinds(plan).values()) == {"create"}
    log.apply(plan)
    return sha


async def test_first_run_creates_everything(repo: GitRepo) -> None:
    """First run: every valid function is created, with a deployment id from ctx."""
    log = Log()
    function_files(repo, "fns/a/a", "fn-a")
    function_files(repo, "fns/b/b", "fn-b")
    repo.write("fns/a/a_lambdadef.json.sample", "not json, ignored")
    repo.commit()
    plan = await plan_head(repo, log, None)
    assert kinds(plan) == {"fns/a/a": "create", "fns/b/b": "create"}
    streams = [s for s, _ in plan.function_events]
    assert streams == ["fn:123456789012:eu-west-1:fn-a", "fn:123456789012:eu-west-1:fn-b"]
    ids = [e.deployment_id for _, e in plan.function_events if isinstance(e, DeploymentRequested)]
    assert ids == ["dep-1", "dep-2"]
    assert plan.repo_events[0].type == "CommitPlanned"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            lambda r: function_files(r, "fns/a/a", "fn-a", key="v2.zip"),
            "new_version",
            id="lambdadef-modified",
        ),
        pytest.param(
            lambda r: function_files(r, "fns/a/a", "fn-a", env={"X": "1"}),
            "new_version",
            id="env-only-is-new-version",
        ),
        pytest.param(
            lambda r: function_files(
                r,
                "fns/a/a",
                "fn-a",
                sources={
                    "PullEventSources": {
                        "EventSourceMapping": {
                            "EventSourceArn": "arn:aws:sqs:eu-west-1:123456789012:q"
                        }
                    }
                },
            ),
            "new_version",
            id="eventsource-added",
        ),
        pytest.param(
            lambda r: function_files(r, "fns/a/a", "fn-a", percent=50),
            "settings_only",
            id="depdef-only",
        ),
        pytest.param(
            lambda r: r.write(
                "fns/a/a_lambdadef.json", (r.path / "fns/a/a_lambdadef.json").read_text() + "\n"
            ),
            "nothing",
            id="identical-render",
        ),
    ],
)
async def test_change_kinds(repo: GitRepo, change: object, expected: str) -> None:
    """Each change kind of the rule table plans its action for that prefix only."""
    log = Log()
    base = await first_deploy(repo, log)
    change(repo)  # type: ignore[operator]
    repo.commit("change")
    plan = await plan_head(repo, log, base)
    assert kinds(plan) == {"fns/a/a": expected}
    if expected == "settings_only":
        assert [e.type for _, e in plan.function_events] == ["SettingsRecorded"]
    if expected == "nothing":
        assert plan.function_events == ()
        assert not plan.has_changes


async def test_input_change_deploys_and_ref_change_alone_does_not(repo: GitRepo) -> None:
    log = Log()
    repo.write("infra/out.json", {"key": {"sensitive": False, "type": "string", "value": "v1"}})
    function_files(
        repo,
        "fns/a/a",
        "fn-a",
        key="{{ key }}",
        inputs={"ref": {"file": "infra/out.json", "type": "TERRAFORM"}},
    )
    base = repo.commit()
    log.apply(await plan_head(repo, log, None))
    # A ref file changed: nothing on its own.
    repo.write("infra/out.json", {"key": {"sensitive": False, "type": "string", "value": "v2"}})
    second = repo.commit()
    plan = await plan_head(repo, log, base)
    assert kinds(plan) == {}
    # The input file changed: the new ref value deploys with it.
    repo.write(
        "fns/a/a_lambdainput.json",
        {"ref": {"file": ["infra/out.json"], "type": "TERRAFORM"}, "extra": 1},
    )
    repo.commit()
    plan = await plan_head(repo, log, second)
    assert kinds(plan) == {"fns/a/a": "new_version"}
    (event,) = [e for _, e in plan.function_events if isinstance(e, DeploymentRequested)]
    assert event.desired is not None
    assert event.desired.definition["Code"]["S3Key"] == "v2"


async def test_no_op_commit_plans_nothing(repo: GitRepo) -> None:
    log = Log()
    base = await first_deploy(repo, log)
    repo.write("README.md", "docs only")
    repo.commit("docs")
    plan = await plan_head(repo, log, base)
    assert plan.actions == ()
    assert not plan.has_changes


async def test_delete(repo: GitRepo) -> None:
    """A deleted _lambdadef deletes the function (one of three is below the hold limit)."""
    log = Log()
    base = await first_deploy(repo, log, ("a", "b", "c"))
    repo.remove("fns/a/a_lambdadef.json")
    repo.commit("drop a")
    plan = await plan_head(repo, log, base)
    assert kinds(plan) == {"fns/a/a": "delete"}
    (stream, event) = plan.function_events[0]
    assert stream == "fn:123456789012:eu-west-1:fn-a"
    assert isinstance(event, DeploymentRequested)
    assert (event.action, event.desired) == ("delete", None)


async def test_mass_delete_is_held(repo: GitRepo) -> None:
    log = Log()
    base = await first_deploy(repo, log, ("a", "b", "c"))
    repo.remove("fns/a/a_lambdadef.json")
    repo.remove("fns/b/b_lambdadef.json")
    repo.commit("drop two of three")
    plan = await plan_head(repo, log, base)
    assert plan.function_events == ()
    assert plan.held == ("fns/a/a", "fns/b/b")
    held = [e for e in plan.repo_events if e.type == "DeletesHeld"]
    assert len(held) == 1
    assert plan.has_changes
    allowed = await plan_head(repo, log, base, allow_deletes=True)
    assert kinds(allowed) == {"fns/a/a": "delete", "fns/b/b": "delete"}


async def test_rolled_back_state_is_not_requested_again(repo: GitRepo) -> None:
    log = Log()
    base = await first_deploy(repo, log)
    function_files(repo, "fns/a/a", "fn-a", key="bad.zip")
    second = repo.commit("bad")
    log.apply(await plan_head(repo, log, base), outcome="rolled_back")
    repo.write("notes.txt", "x")
    third = repo.commit("unrelated")
    assert kinds(await plan_head(repo, log, base)) == {"fns/a/a": "nothing"}
    function_files(repo, "fns/a/a", "fn-a", key="good.zip")
    repo.commit("fix")
    assert kinds(await plan_head(repo, log, third)) == {"fns/a/a": "new_version"}
    assert second


async def test_invalid_prefix_is_rejected_alone(repo: GitRepo) -> None:
    """An invalid function is rejected by itself, never deleted; the others are planned."""
    log = Log()
    base = await first_deploy(repo, log)
    repo.write("fns/a/a_lambdadef.json", '{"FunctionName": "fn-a", "Rol": "x"}')
    function_files(repo, "fns/b/b", "fn-b", key="v2.zip")
    repo.commit()
    plan = await plan_head(repo, log, base)
    assert kinds(plan) == {"fns/a/a": "nothing", "fns/b/b": "new_version"}
    (rejected,) = [e for e in plan.repo_events if e.type == "DefinitionRejected"]
    assert rejected.file == "fns/a/a_lambdadef.json"
    assert "did you mean 'Role'" in rejected.reason
    assert [s for s, _ in plan.function_events] == ["fn:123456789012:eu-west-1:fn-b"]


@pytest.mark.parametrize(
    ("depdef", "message"),
    [
        pytest.param(
            {"alias": "live", "trafficShiftingConfig": {"percent": -5}},
            "percent is -5",
            id="negative-percent",
        ),
        pytest.param(
            {"alias": "live", "trafficShiftingConfig": {"waitInterval": -1}},
            "waitInterval is -1",
            id="negative-wait",
        ),
        pytest.param(
            {"alias": "live", "trafficShiftingConfg": {}},
            "unknown key 'trafficShiftingConfg'",
            id="unknown-depdef-key",
        ),
        pytest.param({"trafficShiftingConfig": {}}, "'alias' is required", id="no-alias"),
    ],
)
async def test_deployment_definition_ranges(repo: GitRepo, depdef: object, message: str) -> None:
    function_files(repo, "fns/a/a", "fn-a")
    repo.write("fns/a/a_lambdadepdef.json", depdef)
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    (rejection,) = plan.rejected
    assert message in rejection.reason
    assert rejection.file == "fns/a/a_lambdadepdef.json"


def _escape_cases() -> list[object]:
    return [
        pytest.param("/etc/passwd", "absolute path", id="absolute"),
        pytest.param("../outside.json", "leaves the repository", id="dotdot"),
        pytest.param("fns/../../x.json", "leaves the repository", id="dotdot-inner"),
        pytest.param("link.json", "symlink", id="symlink"),
        pytest.param("linkdir/out.json", "symlink", id="symlinked-folder"),
        pytest.param("sub/out.json", "submodule", id="submodule"),
    ]


@pytest.mark.parametrize(("ref", "message"), _escape_cases())
async def test_ref_cannot_leave_the_repository(repo: GitRepo, ref: str, message: str) -> None:
    (repo.path.parent / "outside.json").write_text('{"secret": "x"}')
    os.symlink("/etc/hostname", repo.path / "link.json")
    os.symlink("/tmp", repo.path / "linkdir")
    repo.commit("links")
    # A submodule entry (gitlink) pointing at some commit.
    head = repo.git("rev-parse", "HEAD")
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{head},sub")
    function_files(repo, "fns/a/a", "fn-a", inputs={"ref": {"file": [ref]}})
    repo.git("add", "fns")
    repo.git("commit", "-q", "-m", "refs")
    plan = await plan_head(repo, Log(), None)
    (rejection,) = plan.rejected
    assert message in rejection.reason
    assert rejection.file == "fns/a/a_lambdainput.json"


async def test_unknown_lambdadef_key_suggests_nearest(repo: GitRepo) -> None:
    function_files(repo, "fns/a/a", "fn-a")
    repo.write(
        "fns/a/a_lambdadef.json",
        '{"FunctionName": "fn-a", "Role": "r", "Code": {"S3Bucket": "b", "S3Key": "k"},\n'
        ' "MemorySzie": 128}',
    )
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    (rejection,) = plan.rejected
    assert rejection.reason == "unknown key 'MemorySzie'"
    assert rejection.hint == "did you mean 'MemorySize'?"
