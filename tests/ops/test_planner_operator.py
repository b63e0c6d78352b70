"""The planner's side of operator commands: retry requests the rolled-back desired state
again; allow-deletes plans the held deletes of a commit, once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.events import Event
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    FunctionDeleted,
    OperatorRequested,
)
from engine.events.repo import ActionKind, CommitPlanned, DeletesHeld, PlannedAction
from engine.replan import head_action, held_deletes, plan_retry, retry_refusal
from tests.repo.gitrepo import GitRepo
from tests.repo.test_planner import Log, first_deploy, kinds, plan_head
from tests.saga.support import desired, requested

STREAM = "fn:123456789012:eu-west-1:orders"


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    if shutil.which("git") is None:  # pragma: no cover - the CI image has git
        pytest.fail("the git CLI is required for these tests")
    return GitRepo(tmp_path / "repo")


def logged(*events: Event) -> Log:
    log = Log()
    for event in events:
        log.add(STREAM, event)
    return log


DEPLOYED: tuple[Event, ...] = (
    requested("d1", desired("v1"), action="create"),
    DeploymentFinished(deployment_id="d1", outcome="succeeded", stable_version="1"),
)
ROLLED_BACK: tuple[Event, ...] = (
    *DEPLOYED,
    requested("d2", desired("v2")),
    DeploymentFinished(deployment_id="d2", outcome="rolled_back", stable_version="1"),
)


def test_retry_requests_the_rolled_back_state_again() -> None:
    """Retry asks for the very desired state that rolled back, from its commit, as an update."""
    log = logged(*ROLLED_BACK)
    current = log.deployed[STREAM]
    assert retry_refusal(current) is None
    request = plan_retry(current, log.ctx())
    assert request == DeploymentRequested(
        deployment_id="dep-1", commit="c-d2", action="update", desired=desired("v2")
    )


def test_retry_of_a_failed_first_deployment_creates() -> None:
    """A first deployment that failed is retried as a create."""
    log = logged(
        requested("d1", desired("v1"), action="create"),
        DeploymentFinished(deployment_id="d1", outcome="failed"),
    )
    request = plan_retry(log.deployed[STREAM], log.ctx())
    assert request is not None
    assert (request.action, request.desired) == ("create", desired("v1"))


@pytest.mark.parametrize(
    ("events", "refusal"),
    [
        pytest.param(DEPLOYED, "no rolled-back desired state", id="deployed"),
        pytest.param(
            (*ROLLED_BACK, requested("d3", desired("v2"))), "deployment in progress", id="retrying"
        ),
        pytest.param(
            (
                *ROLLED_BACK,
                requested("d3", desired("v3")),
                DeploymentFinished(deployment_id="d3", outcome="succeeded", stable_version="3"),
            ),
            "no rolled-back desired state",
            id="fixed-since",
        ),
    ],
)
def test_retry_is_refused_without_a_rolled_back_state(
    events: tuple[Event, ...], refusal: str
) -> None:
    """Nothing rolled back, or a deployment in flight: nothing to retry."""
    log = logged(*events)
    reason = retry_refusal(log.deployed[STREAM])
    assert reason is not None
    assert refusal in reason
    assert plan_retry(log.deployed[STREAM], log.ctx()) is None


def _planned(action: ActionKind, content_hash: str | None) -> CommitPlanned:
    return CommitPlanned(
        sha="h",
        actions=(
            PlannedAction(
                prefix="apps/orders/orders",
                function=STREAM,
                action=action,
                files=(),
                reason="r",
                content_hash=content_hash,
            ),
        ),
    )


@pytest.mark.parametrize(
    ("events", "plans", "refusal"),
    [
        pytest.param(
            (*ROLLED_BACK, FunctionDeleted(deployment_id="d9")),
            (),
            "no rolled-back desired state",
            id="deleted",
        ),
        pytest.param(
            (
                *ROLLED_BACK,
                requested("d9", None, action="delete"),
                DeploymentFinished(deployment_id="d9", outcome="succeeded"),
            ),
            (),
            "no rolled-back desired state",
            id="delete-finished",
        ),
        pytest.param(
            ROLLED_BACK, (_planned("delete", None),), "deleted the definition", id="head-deletes"
        ),
        pytest.param(
            ROLLED_BACK,
            (_planned("nothing", desired("v2").content_hash), _planned("nothing", "other")),
            "another desired state",
            id="head-differs",
        ),
    ],
)
def test_retry_is_refused_when_the_branch_no_longer_wants_it(
    events: tuple[Event, ...], plans: tuple[CommitPlanned, ...], refusal: str
) -> None:
    """A retry never brings back a function the branch deleted, nor a desired state it has
    replaced since (the normal plan deploys that)."""
    log = logged(*events)
    current = log.deployed[STREAM]
    head = head_action(plans, STREAM)
    reason = retry_refusal(current, head)
    assert reason is not None
    assert refusal in reason
    assert plan_retry(current, log.ctx(), head) is None


def test_retry_of_what_the_branch_still_wants() -> None:
    """The head's last plan for the function is the rolled-back state: the retry is made."""
    log = logged(*ROLLED_BACK)
    head = head_action((_planned("nothing", desired("v2").content_hash),), STREAM)
    assert retry_refusal(log.deployed[STREAM], head) is None


def _allow(sha: str) -> OperatorRequested:
    return OperatorRequested(command="allow_deletes", target=sha, actor="alice", reason="ok")


@pytest.mark.parametrize(
    ("events", "held"),
    [
        pytest.param([], set(), id="empty"),
        pytest.param(
            [
                CommitPlanned(sha="a", actions=()),
                DeletesHeld(sha="a", prefixes=("p",), share=1, limit=0.5),
            ],
            {"a"},
            id="held",
        ),
        pytest.param(
            [
                DeletesHeld(sha="a", prefixes=("p",), share=1, limit=0.5),
                CommitPlanned(sha="a", actions=()),  # planned again, allowed
                _allow("a"),
            ],
            set(),
            id="allowed",
        ),
        pytest.param(
            [
                DeletesHeld(sha="a", prefixes=("p",), share=1, limit=0.5),
                CommitPlanned(sha="b", actions=()),
            ],
            set(),
            id="stale",
        ),
    ],
)
def test_held_deletes(events: list[Event], held: set[str]) -> None:
    """A commit's deletes stay held until allowed or until a newer commit is planned."""
    assert set(held_deletes(events)) == held


@pytest.mark.anyio
@pytest.mark.integration
async def test_allowed_deletes_are_planned_once(repo: GitRepo) -> None:
    """Allowing the held deletes requests them; planning the commit again (a restart before
    the command was marked handled) does not request them twice."""
    log = Log()
    await first_deploy(repo, log, ("a", "b", "c"))
    repo.remove("fns/a/a_lambdadef.json")
    repo.remove("fns/b/b_lambdadef.json")
    sha = repo.commit("drop two of three")
    held = await plan_head(repo, log, sha)
    assert held.held == ("fns/a/a", "fns/b/b")
    allowed = await plan_head(repo, log, sha, allow_deletes=True)
    assert kinds(allowed) == {"fns/a/a": "delete", "fns/b/b": "delete"}
    for stream, event in allowed.function_events:
        log.add(stream, event)  # requested, not finished yet
    again = await plan_head(repo, log, sha, allow_deletes=True)
    assert again.function_events == ()
