"""``glam plan`` and ``glam status`` for an engine that serves many branches, on real Git
repositories and a real SQLite log (AWS in memory): owners shown and filtered, refused claims
and held removals shown, and a plan made with a log but no region (B7)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.cli.main import main
from engine.runtime.engine import Engine, EngineConfig, RunReport, Watch
from engine.testing import FakeProvider
from tests.repo.gitrepo import GitRepo

pytestmark = pytest.mark.integration

OWN = "123456789012"


def fn(repo: GitRepo, prefix: str, name: str, *, key: str = "v1.zip", **env: str) -> None:
    repo.write(
        f"{prefix}_lambdadef.json",
        {
            "FunctionName": name,
            "Role": f"arn:aws:iam::{OWN}:role/exec",
            "Handler": "app.handler",
            "Runtime": "python3.12",
            "Code": {"S3Bucket": "code", "S3Key": key},
        },
    )
    depdef: dict[str, Any] = {"alias": "live", "trafficShiftingConfig": {"type": "ALL_AT_ONCE"}}
    if env:
        depdef["environment"] = env
    repo.write(f"{prefix}_lambdadepdef.json", depdef)


def run_once(db: Path, *watches: Watch, provider: FakeProvider) -> RunReport:
    config = EngineConfig(db=db, region="us-east-1", watches=watches, poll=0.1)

    async def go() -> RunReport:
        async with Engine(config, ports=provider) as engine:
            with anyio.fail_after(60):
                return await engine.run(once=True)

    return anyio.run(go)


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    capsys.readouterr()  # what the engine printed before is not this command's
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "GLAM_DB", "GLAM_CONFIG"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("no_region")
def test_plan_with_a_log_and_no_region_compares_with_what_is_deployed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """B7: without --region or $AWS_REGION, a definition that names no region is compared
    with the function the engine deployed for it (in the engine's region), not planned as a
    new function with the real one's delete held."""
    repo = GitRepo(tmp_path / "repo")
    fn(repo, "f/a/a", "audit-a")
    fn(repo, "f/b/b", "audit-b")
    repo.commit("two functions")
    db = tmp_path / "state" / "glam.db"
    report = run_once(db, Watch(str(repo.path), "main"), provider=FakeProvider(OWN))
    assert report.exit_code == 0
    fn(repo, "f/b/b", "audit-b", key="v2.zip")
    repo.commit("new code for b")
    code, out, err = glam(monkeypatch, capsys, "plan", "--repo", str(repo.path), "--db", str(db))
    assert (code, err) == (1, "")
    lines = [line for line in out.splitlines() if line.startswith(("~", "+", "-", "!"))]
    assert len(lines) == 1
    assert lines[0].startswith("~ new version")
    assert f"fn:{OWN}:us-east-1:audit-b" in lines[0]


@pytest.mark.usefixtures("no_region")
def test_status_shows_and_filters_owners_and_what_a_branch_was_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two repositories deployed by one engine: each function's owner, --repo/--branch
    filters, and a branch's claim on another's function shown refused (with glam plan
    showing it too)."""
    payments, orders = GitRepo(tmp_path / "payments"), GitRepo(tmp_path / "orders")
    fn(payments, "fns/pay/pay", "pay")
    payments.commit("pay")
    fn(orders, "apps/orders/orders", "orders")
    fn(orders, "apps/pay/pay", "pay", key="other.zip")  # claims payments' function
    orders.commit("orders, and a copy of pay")
    db = tmp_path / "state" / "glam.db"
    watches = (Watch(str(payments.path), "main"), Watch(str(orders.path), "main"))
    report = run_once(db, watches[0], provider=FakeProvider(OWN))
    report = run_once(db, *watches, provider=FakeProvider(OWN))
    assert [r.prefix for r in report.rejected] == ["apps/pay/pay"]

    code, out, _ = glam(monkeypatch, capsys, "status", "--db", str(db))
    assert code == 0
    rows = {line.split("\t")[0]: line.split("\t") for line in out.splitlines()}
    owner = rows["function"].index("owner")
    assert rows["pay"][owner] == "payments#main"
    assert rows["orders"][owner] == "orders#main"
    assert "refused by the latest plan" not in out  # a table title only shows on a terminal
    refused = [line for line in out.splitlines() if "(fns/pay/pay) — " in line]
    assert len(refused) == 1
    assert refused[0].startswith(f"{orders.path}#main\t")
    assert "apps/pay/pay\tfunction pay" in refused[0]
    assert f"is owned by {payments.path} branch main" in refused[0]

    code, out, _ = glam(monkeypatch, capsys, "status", "--db", str(db), "--repo", str(orders.path))
    names = [line.split("\t")[0] for line in out.splitlines()[1:]]
    assert names[: names.index("branch")] == ["orders"]
    code, out, _ = glam(
        monkeypatch,
        capsys,
        "status",
        "--db",
        str(db),
        "--repo",
        f"{payments.path}/",
        "--branch",
        "main",
    )
    assert [line.split("\t")[0] for line in out.splitlines()[1:]] == ["pay"]
    code, out, _ = glam(
        monkeypatch, capsys, "events", "--db", str(db), "--repo", str(payments.path)
    )
    streams = {line.split("\t")[2].split("@")[0] for line in out.splitlines()}
    assert streams == {f"repo:{payments.path}#main", f"fn:{OWN}:us-east-1:pay"}

    code, out, err = glam(
        monkeypatch,
        capsys,
        "plan",
        "--repo",
        str(orders.path),
        "--db",
        str(db),
        "--region",
        "us-east-1",
    )
    assert code == 2
    assert "! invalid" in out
    assert "is owned by" in err


@pytest.mark.usefixtures("no_region")
def test_plan_shows_a_region_change_as_a_create_and_a_held_removal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """B1 in `glam plan`: a new region is a create there, and the old function's removal is
    shown held for an operator, never a delete."""
    repo = GitRepo(tmp_path / "repo")
    fn(repo, "f/a/a", "audit-a")
    repo.commit("v1")
    db = tmp_path / "state" / "glam.db"
    assert run_once(db, Watch(str(repo.path), "main"), provider=FakeProvider(OWN)).exit_code == 0
    fn(repo, "f/a/a", "audit-a", region="us-west-2")
    sha = repo.commit("to us-west-2")
    code, out, err = glam(monkeypatch, capsys, "plan", "--repo", str(repo.path), "--db", str(db))
    assert code == 1
    assert f"+ create         f/a/a  fn:{OWN}:us-west-2:audit-a" in out
    assert f"! held           f/a/a  fn:{OWN}:us-east-1:audit-a  — identity changed" in out
    assert "- delete" not in out
    assert f"glam allow-deletes {sha[:12]}" in err
