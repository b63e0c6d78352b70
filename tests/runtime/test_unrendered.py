"""A function the commit's render time ran out before is not lost: nothing is known against
it, so the next poll renders it again and deploys it, with no new commit."""

from __future__ import annotations

import pytest

from engine.definitions.limits import NOT_RENDERED
from engine.events.function import DeploymentFinished
from engine.events.repo import CommitPlanned, DefinitionRejected
from engine.local import LocalAwsThread
from engine.observe import evolve_repo, initial_repo_state
from tests.builders import events_of
from tests.runtime.support import NAME, PREFIX, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SLOW = (
    '{"FunctionName": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}'
    '{% endfor %}slow", "Role": "r", "Handler": "h", "Runtime": "python3.12"}'
)


@pytest.mark.slow
@pytest.mark.timeout(240)  # five engine runs, each up to a second of rendering
async def test_a_function_the_commit_had_no_time_for_deploys_at_the_next_poll(
    setup: Setup, local_aws: LocalAwsThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_function(setup.repo, setup.outputs, memory=128)
    setup.repo.commit("add orders")
    assert outcomes(await setup.run_once()) == ["succeeded"]

    # One render worker, half a second a file, one second a commit: the slow templates (sorted
    # before orders) use up the commit's time, and orders' change is not rendered.
    monkeypatch.setenv("GLAM_RENDER_WORKERS", "1")
    monkeypatch.setenv("GLAM_RENDER_FILE_SECONDS", "0.5")
    monkeypatch.setenv("GLAM_RENDER_COMMIT_SECONDS", "1")
    write_function(setup.repo, setup.outputs, memory=256)
    for i in range(2):
        setup.repo.write(f"aaa/slow{i}/slow{i}_lambdadef.json", SLOW)
    head = setup.repo.commit("orders gets more memory; two slow templates")
    first = await setup.run_once()
    skipped = [r for r in first.rejected if r.prefix == PREFIX]
    assert skipped, [r.reason for r in first.rejected]
    assert skipped[0].reason.startswith(NOT_RENDERED)
    assert first.finished == []

    # No new commit: each poll renders what waited longest first, until orders deploys.
    for _ in range(4):
        report = await setup.run_once()
        if report.finished:
            break
    assert outcomes(report) == ["succeeded"]
    finished = [
        e for e in events_of(await setup.events(), DeploymentFinished) if e.outcome == "succeeded"
    ]
    assert len(finished) == 2
    plans = [e.sha for e in events_of(await setup.events(), CommitPlanned)]
    assert plans[-1] == head
    assert plans.count(head) >= 2
    configs = local_aws.journal.calls("UpdateFunctionConfiguration", function=NAME)
    assert [c.status for c in configs] == [200]


def test_only_a_plan_out_of_render_time_leaves_prefixes_to_render_again() -> None:
    sha = "a" * 40
    state = evolve_repo(initial_repo_state(), CommitPlanned(sha=sha, actions=()))
    for prefix, reason in (
        ("apps/a/a", f"{NOT_RENDERED}the commit used up its render time limit of 120 s"),
        ("apps/b/b", "rendering took longer than the time limit of 2 s per file"),
    ):
        state = evolve_repo(
            state, DefinitionRejected(sha=sha, prefix=prefix, file=f"{prefix}_x", reason=reason)
        )
    assert state.unrendered == ("apps/a/a",)
    # A rejection of an older commit says nothing of the one planned now.
    old = DefinitionRejected(sha="b" * 40, prefix="apps/c/c", file="f", reason=NOT_RENDERED)
    assert evolve_repo(state, old).unrendered == ("apps/a/a",)
    # The next plan of the same commit: what still waits keeps its place before the newly left.
    state = evolve_repo(state, CommitPlanned(sha=sha, actions=()))
    assert state.unrendered == ()
    for prefix in ("apps/0/0", "apps/a/a"):
        state = evolve_repo(
            state, DefinitionRejected(sha=sha, prefix=prefix, file="f", reason=NOT_RENDERED)
        )
    assert state.unrendered == ("apps/a/a", "apps/0/0")
