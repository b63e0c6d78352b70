"""What the planner reads off the golden logs: owners and aliases to remove (0.1-org), and, in
a log whose requests record no owner, the owner a branch's plans make it."""

from __future__ import annotations

import dataclasses

from engine.deployed import Claimant, deployed_from_events
from engine.events.function import DeploymentRequested, FunctionOwner
from engine.store.records import to_recorded
from tests.golden.generate import ORDERS, REPO, rows

MAIN = FunctionOwner(
    repository="https://git.example.com/team/lambdas", branch="main", prefix="apps/orders/orders"
)


def test_owners_and_removed_aliases_of_the_org_log() -> None:
    records = [to_recorded(row) for row in rows("0.1-org")]
    deployed = deployed_from_events(records)
    orders = deployed[ORDERS]
    assert (orders.owner, orders.exists, orders.stale_aliases) == (MAIN, True, ())
    moved = deployed["fn:111111111111:us-east-1:orders"]
    assert (moved.owner, moved.live) == (MAIN, True)
    # Before the alias was removed, the old alias was one to remove.
    before = deployed_from_events(records[:9])[ORDERS]
    assert (before.settings.alias if before.settings else None, before.stale_aliases) == (
        "LIVE",
        ("live",),
    )
    dev = Claimant("https://git.example.com/team/lambdas/", "dev")
    assert not dev.owns(orders.owner)
    assert Claimant("https://GIT.example.com/team/lambdas.git", "main").owns(orders.owner)


def test_a_log_without_owners_gives_each_function_to_the_branch_that_planned_it() -> None:
    """Requests of an earlier glam record no owner: the first branch whose plan names the
    function owns it, even under the stream name that glam gave the branch."""
    records = []
    for row in rows("0.1"):
        record = to_recorded(row)
        if record.stream == REPO:  # "repo:main" names no branch: give it a real name
            record = dataclasses.replace(record, stream="repo:/srv/lambdas/#main")
        if isinstance(record.event, DeploymentRequested):
            assert record.event.owner is None
        records.append(record)
    owner = deployed_from_events(records[:3])[ORDERS].owner
    assert owner == FunctionOwner(
        repository="/srv/lambdas", branch="main", prefix="apps/orders/orders"
    )
