"""One engine for many repositories, branches and accounts, on in-memory ports: ownership of
each function by one branch, conflicting claims refused, accounts checked at plan time,
identity changes held, the set of watched branches changed while the engine runs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.config.model import AccountSettings
from engine.events import Metadata, NewEvent, RecordedEvent
from engine.events.catalog import Event
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import DeploymentFinished, DeploymentRequested, FunctionOwner
from engine.events.operator import OPS_STREAM, OperatorCommandIssued
from engine.events.repo import CommitPlanned
from engine.ports import RepoSource
from engine.runtime.engine import Engine, EngineConfig, RunReport, Watch
from engine.store.memory import MemoryEventStore
from engine.testing import FakeAws, FakeProvider, ManualClock, MemoryRepo

pytestmark = pytest.mark.anyio

OWN = "123456789012"
OTHER = "111111111111"
PAYMENTS = "https://git.example/acme/payments.git"
ORDERS = "https://git.example/acme/orders.git"
NOW = {"type": "ALL_AT_ONCE", "waitInterval": 0}


def fn(
    repo: MemoryRepo,
    prefix: str,
    name: str,
    *,
    code: str = "blue",
    alias: str = "live",
    region: str | None = None,
    account: str | None = None,
) -> None:
    """Write one function's definition and deployment definition."""
    repo.write(
        f"{prefix}_lambdadef.json",
        {
            "FunctionName": name,
            "Role": f"arn:aws:iam::{OWN}:role/r",
            "Handler": "app.handler",
            "Runtime": "python3.12",
            "Code": {"S3Bucket": "b", "S3Key": f"{code}.zip"},
        },
    )
    depdef: dict[str, Any] = {"alias": alias, "trafficShiftingConfig": NOW}
    environment = {k: v for k, v in (("region", region), ("account", account)) if v}
    if environment:
        depdef["environment"] = environment
    repo.write(f"{prefix}_lambdadepdef.json", depdef)


@dataclass
class Org:
    """One log and one AWS shared by every engine a test starts, and a repository (one
    ``MemoryRepo`` per branch) for each (url, branch)."""

    store: MemoryEventStore = field(default_factory=MemoryEventStore)
    provider: FakeProvider = field(default_factory=lambda: FakeProvider(OWN, others=(OTHER,)))
    repos: dict[tuple[str, str], MemoryRepo] = field(default_factory=dict)
    seen: list[RecordedEvent] = field(default_factory=list)
    _changed: anyio.Event = field(default_factory=anyio.Event)

    def saw(self, record: RecordedEvent) -> None:
        self.seen.append(record)
        self._changed.set()

    async def wait_for(self, done: Callable[[], bool]) -> None:
        """Until an engine of this org appended what makes ``done()`` true."""
        with anyio.fail_after(10):
            while not done():
                self._changed = anyio.Event()
                await self._changed.wait()

    def repo(self, url: str, branch: str = "main") -> MemoryRepo:
        return self.repos.setdefault((url, branch), MemoryRepo(branch))

    def source(self, watch: Watch) -> RepoSource:
        return self.repo(watch.url, watch.branch or "main")

    def config(self, *watches: Watch, accounts: tuple[AccountSettings, ...] = ()) -> EngineConfig:
        # The database path is never opened: the engine runs on the store given to it.
        return EngineConfig(
            db=Path("/nonexistent/glam.db"),
            poll=0.01,
            ops_poll=0.01,
            watches=watches,
            accounts=accounts,
        )

    def engine(self, config: EngineConfig, clock: ManualClock | None = None) -> Engine:
        return Engine(
            config,
            store=self.store,
            sources=self.source,
            ports=self.provider,
            clock=clock or ManualClock(autojump=True),
            on_event=self.saw,
        )

    async def once(self, *watches: Watch, **config: Any) -> RunReport:
        async with self.engine(self.config(*watches, **config)) as engine:
            with anyio.fail_after(10):
                return await engine.run(once=True)

    async def aws(self, region: str = "us-east-1", account: str = OWN) -> FakeAws:
        await self.provider.region(region, account)
        return self.provider.fakes_of[(account, region)][0]

    async def events(self, kind: type[Event]) -> list[RecordedEvent]:
        return [r for r in await self.store.read_all() if isinstance(r.event, kind)]

    async def allow(self, sha: str) -> None:
        issued = OperatorCommandIssued(command="allow_deletes", target=sha, reason="agreed")
        await self.store.append(
            OPS_STREAM, [NewEvent(issued, Metadata(event_id=f"allow-{sha}", actor="ops"))]
        )


def outcomes(report: RunReport) -> dict[str, str]:
    return {stream.rsplit(":", 1)[1]: f.outcome for stream, f in report.finished}


MAIN = Watch(PAYMENTS, "main")
DEV = Watch(PAYMENTS, "dev")
ORDERS_MAIN = Watch(ORDERS, "main")
ALL = (MAIN, DEV, ORDERS_MAIN)


@pytest.fixture
def org() -> Org:
    return Org()


async def _three(org: Org) -> None:
    fn(org.repo(PAYMENTS, "main"), "fns/pay/pay", "pay")
    org.repo(PAYMENTS, "main").commit("pay")
    fn(org.repo(PAYMENTS, "dev"), "fns/pay-dev/pay-dev", "pay-dev")
    fn(org.repo(PAYMENTS, "dev"), "fns/pay-dev2/pay-dev2", "pay-dev2")
    org.repo(PAYMENTS, "dev").commit("pay-dev")
    fn(org.repo(ORDERS), "apps/orders/orders", "orders")
    org.repo(ORDERS).commit("orders")


async def test_two_repositories_and_two_branches_share_one_engine_and_log(org: Org) -> None:
    """Every branch's functions deploy from one engine into one log, each owned by its branch;
    a delete in one branch removes only that branch's function."""
    await _three(org)
    report = await org.once(*ALL)
    assert outcomes(report) == dict.fromkeys(("pay", "pay-dev", "pay-dev2", "orders"), "succeeded")
    owners = {
        r.stream.rsplit(":", 1)[1]: r.event.owner
        for r in await org.events(DeploymentRequested)
        if isinstance(r.event, DeploymentRequested)
    }
    assert owners["pay-dev"] == FunctionOwner(
        repository="https://git.example/acme/payments", branch="dev", prefix="fns/pay-dev/pay-dev"
    )
    assert owners["orders"] == FunctionOwner(
        repository="https://git.example/acme/orders", branch="main", prefix="apps/orders/orders"
    )
    planned = {r.stream for r in await org.events(CommitPlanned)}
    assert planned == {
        "repo:https://git.example/acme/payments#main",
        "repo:https://git.example/acme/payments#dev",
        "repo:https://git.example/acme/orders#main",
    }

    dev = org.repo(PAYMENTS, "dev")
    dev.remove("fns/pay-dev2/pay-dev2_lambdadef.json")
    dev.remove("fns/pay-dev2/pay-dev2_lambdadepdef.json")
    dev.commit("retire pay-dev2")
    report = await org.once(*ALL)
    assert outcomes(report) == {"pay-dev2": "succeeded"}
    deletes = [
        r.stream
        for r in await org.events(DeploymentRequested)
        if isinstance(r.event, DeploymentRequested) and r.event.action == "delete"
    ]
    assert deletes == [f"fn:{OWN}:us-east-1:pay-dev2"]
    assert (await org.aws()).function_names() == ["orders", "pay", "pay-dev"]


async def test_a_second_branch_claiming_a_function_is_refused(org: Org) -> None:
    """The newer claim on a function another branch owns is rejected naming the owner; the
    owner goes on deploying it (no tug of war)."""
    main, dev = org.repo(PAYMENTS, "main"), org.repo(PAYMENTS, "dev")
    fn(main, "fns/pay/pay", "pay")
    main.commit("pay")
    assert outcomes(await org.once(MAIN)) == {"pay": "succeeded"}
    fn(dev, "other/pay/pay", "pay", code="green")
    dev.commit("dev wants pay too")
    report = await org.once(MAIN, DEV)
    assert (report.finished, report.exit_code) == ([], 1)
    (rejected,) = report.rejected
    assert rejected.prefix == "other/pay/pay"
    assert "is owned by https://git.example/acme/payments branch main (fns/pay/pay)" in (
        rejected.reason
    )
    fn(main, "fns/pay/pay", "pay", code="green")
    main.commit("pay green")
    assert outcomes(await org.once(MAIN, DEV)) == {"pay": "succeeded"}
    requests = [
        r.event.owner.branch  # type: ignore[union-attr]
        for r in await org.events(DeploymentRequested)
    ]
    assert requests == ["main", "main"]


async def test_a_definition_for_an_unconfigured_account_is_refused_at_plan_time(
    org: Org,
) -> None:
    """B4: a depdef naming an account the engine has no role for is rejected when planned,
    with the fix to make; nothing is left in flight, and once fixed the run exits 0."""
    repo = org.repo(PAYMENTS)
    fn(repo, "fns/acct/acct", "acct", account="222222222222")
    repo.commit("another account")
    report = await org.once(MAIN)
    (rejected,) = report.rejected
    assert rejected.file == "fns/acct/acct_lambdadepdef.json"
    assert "account 222222222222 is not configured" in rejected.reason
    assert '[[account]] entry with id = "222222222222"' in rejected.reason
    assert (report.exit_code, await org.events(DeploymentRequested)) == (1, [])
    fn(repo, "fns/acct/acct", "acct")
    repo.commit("own account")
    report = await org.once(MAIN)
    assert (outcomes(report), report.exit_code) == ({"acct": "succeeded"}, 0)
    assert [r.stream for r in await org.events(DeploymentRequested)] == [f"fn:{OWN}:us-east-1:acct"]


async def test_a_configured_account_is_deployed_to_within_its_regions(org: Org) -> None:
    """A configured account takes the definitions that name it, in the regions it allows;
    another region of it is refused at plan time."""
    repo = org.repo(PAYMENTS)
    fn(repo, "fns/a/a", "a", account=OTHER, region="eu-west-1")
    fn(repo, "fns/b/b", "b", account=OTHER, region="us-west-2")
    repo.commit("two regions")
    account = AccountSettings(
        id=OTHER, role_arn=f"arn:aws:iam::{OTHER}:role/glam", regions=("eu-west-1",)
    )
    report = await org.once(MAIN, accounts=(account,))
    assert outcomes(report) == {"a": "succeeded"}
    assert (await org.aws("eu-west-1", OTHER)).function_names() == ["a"]
    (rejected,) = report.rejected
    assert "region us-west-2 is not allowed for account 111111111111" in rejected.reason


async def test_an_old_request_in_an_unconfigured_account_finishes_failed(org: Org) -> None:
    """A log written before plan-time checks may hold a request in an account the engine
    cannot act in: it is finished failed with the reason, never left in flight for ever."""
    stream = "fn:222222222222:us-east-1:stuck"
    desired = DesiredFunction(
        prefix="fns/stuck/stuck",
        function_name="stuck",
        definition={"FunctionName": "stuck"},
        settings=DeploymentSettings(alias="live", account="222222222222"),
        content_hash="h",
    )
    request = DeploymentRequested(
        deployment_id="old-1", commit="c" * 40, action="create", desired=desired
    )
    await org.store.append(stream, [NewEvent(request, Metadata(event_id="old"))])
    first = await org.once(MAIN)
    assert [(s, f.outcome) for s, f in first.finished] == [(stream, "failed")]
    assert "account 222222222222 is not configured" in first.finished[0][1].reason
    second = await org.once(MAIN)
    assert (second.finished, second.errors) == ([], [])


async def test_a_region_change_creates_the_new_function_and_holds_the_old_ones_removal(
    org: Org,
) -> None:
    """B1: a new region in the depdef creates the function there; the old one stays until an
    operator allows its removal (its _lambdadef.json still describes a function)."""
    repo = org.repo(PAYMENTS)
    fn(repo, "fns/a/a", "audit-a")
    repo.commit("v1")
    await org.once(MAIN)
    fn(repo, "fns/a/a", "audit-a", region="us-west-2")
    sha = repo.commit("move to us-west-2")
    report = await org.once(MAIN)
    assert outcomes(report) == {"audit-a": "succeeded"}
    assert [s for s, _ in report.finished] == [f"fn:{OWN}:us-west-2:audit-a"]
    assert (await org.aws()).function_names() == ["audit-a"]  # the old one is still there
    (held,) = report.held
    assert held.sha == sha
    ((removal),) = held.removals
    assert (removal.function, removal.alias) == (f"fn:{OWN}:us-east-1:audit-a", None)
    assert removal.reason == f"identity changed (now fn:{OWN}:us-west-2:audit-a)"
    await org.allow(sha)
    report = await org.once(MAIN)
    assert [(s, f.outcome) for s, f in report.finished] == [
        (f"fn:{OWN}:us-east-1:audit-a", "succeeded")
    ]
    assert (await org.aws()).function_names() == []
    assert (await org.aws("us-west-2")).function_names() == ["audit-a"]


async def test_a_renamed_function_is_created_and_the_old_name_held(org: Org) -> None:
    """B1: a new FunctionName is a create; the old function is not deleted at once."""
    repo = org.repo(PAYMENTS)
    fn(repo, "fns/c/c", "audit-c")
    repo.commit("v1")
    await org.once(MAIN)
    fn(repo, "fns/c/c", "audit-c2")
    repo.commit("rename")
    report = await org.once(MAIN)
    assert outcomes(report) == {"audit-c2": "succeeded"}
    assert (await org.aws()).function_names() == ["audit-c", "audit-c2"]
    (held,) = report.held
    assert [r.function for r in held.removals] == [f"fn:{OWN}:us-east-1:audit-c"]
    # Held again by every later plan until allowed, never silently forgotten.
    fn(repo, "fns/other/other", "other")
    repo.commit("unrelated")
    report = await org.once(MAIN)
    assert [r.function for h in report.held for r in h.removals] == [f"fn:{OWN}:us-east-1:audit-c"]


async def test_an_alias_change_deploys_the_new_alias_and_holds_the_old_ones_removal(
    org: Org,
) -> None:
    """B1: a new alias is a deployment on it; removing the old alias waits for an operator,
    is requested (remove_alias) only once the new alias serves, and then deletes the old alias
    alone: the function stays on the new one."""
    repo = org.repo(PAYMENTS)
    fn(repo, "fns/b/b", "audit-b", alias="PROD")
    repo.commit("v1")
    await org.once(MAIN)
    fn(repo, "fns/b/b", "audit-b", alias="LIVE")
    sha = repo.commit("alias LIVE")
    report = await org.once(MAIN)
    assert outcomes(report) == {"audit-b": "succeeded"}
    (held,) = report.held
    ((removal),) = held.removals
    assert (removal.alias, removal.reason.startswith("alias changed to LIVE")) == ("PROD", True)
    await org.allow(sha)
    seen = len(org.seen)
    await org.once(MAIN)
    removes = [
        r.event
        for r in org.seen[seen:]
        if isinstance(r.event, DeploymentRequested) and r.event.action == "remove_alias"
    ]
    assert [(e.alias, e.desired) for e in removes] == [("PROD", None)]
    aws = await org.aws()
    assert await aws.get_alias("audit-b", "PROD") is None
    live = await aws.get_alias("audit-b", "LIVE")
    assert live is not None
    assert not live.routing
    again = await org.once(MAIN)
    assert again.ok
    assert again.finished == []


async def test_a_new_url_form_of_a_known_repository_deploys_pending_changes(org: Org) -> None:
    """H2: the same repository under another URL form (the token moved out of the URL) is the
    same stream, and a change made meanwhile is deployed, not skipped."""
    repo = org.repo("https://ghp_token@Git.Example/acme/payments.git")
    fn(repo, "fns/a/a", "a")
    repo.commit("v1")
    await org.once(Watch("https://ghp_token@Git.Example/acme/payments.git", "main"))
    fn(repo, "fns/a/a", "a", code="green")
    repo.commit("v2")
    org.repos[(PAYMENTS, "main")] = repo  # the same repository, read through another URL
    report = await org.once(MAIN)
    assert outcomes(report) == {"a": "succeeded"}
    streams = {r.stream for r in await org.events(CommitPlanned)}
    assert streams == {"repo:https://git.example/acme/payments#main"}


async def test_a_branch_new_to_the_log_compares_every_prefix_with_what_is_deployed(
    org: Org,
) -> None:
    """H2: the first plan of a repository stream renders every prefix: a function whose
    deployed state differs from the branch is deployed, not left as it was."""
    # The stream as a glam that named streams after the redacted URL as given wrote it.
    old_stream = "repo:https://****@git.example/acme/payments.git#main"
    desired = DesiredFunction(
        prefix="fns/a/a",
        function_name="a",
        definition={"FunctionName": "a"},
        settings=DeploymentSettings(alias="live"),
        content_hash="old",
    )
    fn_stream = f"fn:{OWN}:us-east-1:a"
    request = DeploymentRequested(
        deployment_id="d0", commit="0" * 40, action="create", desired=desired
    )
    done = DeploymentFinished(deployment_id="d0", outcome="succeeded", stable_version="1")
    await org.store.append(fn_stream, [NewEvent(request, Metadata(event_id="o1"))])
    await org.store.append(fn_stream, [NewEvent(done, Metadata(event_id="o2"))])
    repo = org.repo(PAYMENTS)
    fn(repo, "fns/a/a", "a", code="green")
    sha = repo.commit("a, changed while another glam ran")
    planned = CommitPlanned(sha=sha, actions=())
    await org.store.append(old_stream, [NewEvent(planned, Metadata(event_id="o3"))])
    report = await org.once(MAIN)
    assert outcomes(report) == {"a": "succeeded"}
    actions = [a for r in await org.events(CommitPlanned) for a in r.event.actions]  # type: ignore[union-attr]
    assert [(a.prefix, a.action) for a in actions] == [("fns/a/a", "new_version")]


async def test_watched_branches_change_while_the_engine_runs(org: Org) -> None:
    """A branch added to the configuration starts being watched; a removed one stops, and its
    functions are left as they are."""
    main, orders = org.repo(PAYMENTS), org.repo(ORDERS)
    fn(main, "fns/pay/pay", "pay")
    main.commit("pay")
    fn(orders, "apps/orders/orders", "orders")
    orders.commit("orders")
    engine = org.engine(org.config(MAIN), ManualClock(autojump=True))

    async def finished(name: str) -> None:
        await org.wait_for(
            lambda: any(
                isinstance(r.event, DeploymentFinished) and r.stream.endswith(f":{name}")
                for r in org.seen
            )
        )

    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(engine.run)
        await finished("pay")
        engine.reconfigure(org.config(MAIN, ORDERS_MAIN))
        await finished("orders")
        assert {w.url for w in engine.watching} == {PAYMENTS, ORDERS}
        engine.reconfigure(org.config(ORDERS_MAIN))
        main.remove("fns/pay/pay_lambdadef.json")
        main.commit("pay deleted while no longer watched")
        await anyio.sleep(0.2)
        engine.stop()
    assert [w.url for w in engine.watching] == [ORDERS]
    assert (await org.aws()).function_names() == ["orders", "pay"]
    assert not [
        r
        for r in await org.events(DeploymentRequested)
        if r.event.action == "delete"  # type: ignore[union-attr]
    ]


async def test_a_branch_only_owns_the_folders_it_is_given(org: Org) -> None:
    """A repository's ``paths`` limit its branches to those folders: functions elsewhere are
    neither planned nor deleted by it."""
    repo = org.repo(PAYMENTS)
    fn(repo, "team-a/x/x", "x")
    fn(repo, "team-b/y/y", "y")
    repo.commit("two teams")
    report = await org.once(Watch(PAYMENTS, "main", paths=("team-a",)))
    assert outcomes(report) == {"x": "succeeded"}
    repo.remove("team-a/x/x_lambdadef.json")
    repo.commit("x gone")
    report = await org.once(Watch(PAYMENTS, "main", paths=("team-b",)))
    assert outcomes(report) == {"y": "succeeded"}  # x is no longer this watch's business
    assert (await org.aws()).function_names() == ["x", "y"]
