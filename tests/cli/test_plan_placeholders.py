"""``glam plan --db`` without ``--account`` on a log of several accounts: the log's functions
are matched under the account placeholder, from the stored planner inputs and from a fold of
the log alike, and two live functions that the placeholder would merge are refused with what
to pass instead (a plan that kept one of them would lose the other's delete in silence)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.events import Event, Metadata, NewEvent
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import DeploymentFinished, DeploymentRequested
from engine.store.sqlite import SqliteEventStore
from projections import planner as planner_rows
from projections.runner import ProjectionRunner
from tests.cli.test_org_cli import fn, glam
from tests.repo.gitrepo import GitRepo

pytestmark = pytest.mark.integration

REGION = "us-east-1"
FIRST, SECOND = "111111111111", "222222222222"


def _deployed(account: str, name: str, n: int, *, delete: bool = False) -> list[NewEvent]:
    """A finished deployment of ``name`` in ``account`` (its definition names neither its
    account nor its region: the engine's defaults), or of its delete."""
    desired = DesiredFunction(
        prefix=f"f/{name}/{name}",
        function_name=name,
        definition={"FunctionName": name, "Runtime": "python3.12"},
        settings=DeploymentSettings(alias="live"),
        content_hash=f"hash-{account}-{n}",
    )
    deployment = f"d-{account}-{name}-{n}"
    requested = DeploymentRequested(
        deployment_id=deployment,
        commit=f"{n:040x}",
        action="delete" if delete else "create",
        desired=None if delete else desired,
    )
    finished = DeploymentFinished(deployment_id=deployment, outcome="succeeded")
    events: tuple[Event, ...] = (requested, finished)
    return [
        NewEvent(event, Metadata(event_id=f"e-{deployment}-{i}")) for i, event in enumerate(events)
    ]


def _log(db: Path, deployments: list[tuple[str, str, bool]]) -> None:
    """A log of ``(account, name, delete)`` deployments, one after another, and the planner's
    inputs the engine's projection runner stores for it."""

    async def write() -> None:
        db.parent.mkdir(parents=True, exist_ok=True)
        async with SqliteEventStore(db) as store:
            versions: dict[str, int] = {}
            for n, (account, name, delete) in enumerate(deployments, start=1):
                stream = f"fn:{account}:{REGION}:{name}"
                version = versions.get(stream, 0)
                await store.append(stream, _deployed(account, name, n, delete=delete), version)
                versions[stream] = version + 2
            await ProjectionRunner(store).catch_up()

    anyio.run(write)


def _plan(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    repo: GitRepo,
    db: Path,
    *,
    stored: bool,
) -> tuple[int, str, str]:
    """``glam plan --db`` without ``--account``, from the stored inputs or from a fold."""
    read: list[bool] = []
    real = planner_rows.read_inputs

    async def inputs(store: Any, stream: str) -> Any:
        found = await real(store, stream) if stored else None
        read.append(found is not None)
        return found

    with monkeypatch.context() as patched:
        patched.setattr(planner_rows, "read_inputs", inputs)
        result = glam(
            monkeypatch, capsys, "plan", "--repo", str(repo.path), "--db", str(db), "--json",
            "--region", REGION,
        )  # fmt: skip
    assert read == [stored]
    return result


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GitRepo:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "GLAM_DB", "GLAM_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    repo = GitRepo(tmp_path / "repo")
    fn(repo, "f/cart/cart", "cart")
    fn(repo, "f/pay/pay", "pay", key="v2.zip")
    repo.commit("two functions")
    return repo


def test_a_function_deleted_in_one_account_and_live_in_another_plans_the_same_both_ways(
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``pay`` was deleted from the first account and lives in the second: under the
    placeholder the plan compares the definition with the live one, whichever way it reads
    the log (and the order the functions were deployed in does not matter)."""
    for order in ("deleted-first", "live-first"):
        db = tmp_path / order / "glam.db"
        gone = [(FIRST, "pay", False), (FIRST, "pay", True)]
        live = [(SECOND, "pay", False), (SECOND, "ship", False)]
        _log(db, [*gone, *live] if order == "deleted-first" else [*live, *gone])
        stored = _plan(monkeypatch, capsys, repo, db, stored=True)
        assert stored == _plan(monkeypatch, capsys, repo, db, stored=False)
        code, out, err = stored
        assert code == 1, err  # changes
        # pay is compared with the live one (a new version: another hash), cart is new, and
        # ship is in the log but no longer in the tree.
        assert '"function": "fn:<account>:us-east-1:pay"' in out
        assert '"new_version"' in out
        assert '"create"' in out
        assert "ship" in out


def test_two_live_functions_the_placeholder_would_merge_are_refused(
    repo: GitRepo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    db = tmp_path / "state" / "glam.db"
    _log(db, [(FIRST, "pay", False), (SECOND, "pay", False)])
    for stored in (True, False):
        code, out, err = _plan(monkeypatch, capsys, repo, db, stored=stored)
        assert code == 3
        assert out == ""
        assert f"function pay in accounts {FIRST} and {SECOND}" in err
        assert "--account ACCOUNT" in err
    code, out, err = glam(
        monkeypatch, capsys, "plan", "--repo", str(repo.path), "--db", str(db), "--json",
        "--region", REGION, "--account", SECOND,
    )  # fmt: skip
    assert code == 1, err
    assert f"fn:{SECOND}:us-east-1:pay" in out
