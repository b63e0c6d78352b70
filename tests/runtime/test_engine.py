"""The engine end to end: real Git, real SQLite, the embedded AWS with fidelity on."""

from __future__ import annotations

import pytest

from engine.local import LocalAwsThread
from projections.runner import ProjectionRunner
from engine.store.sqlite import SqliteEventStore
from tests.runtime.support import NAME, Setup, outcomes, write_function

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def test_first_deployment(setup: Setup, local_aws: LocalAwsThread) -> None:
    """A new definition creates the function, publishes version 1 and points the alias at it."""
    write_function(setup.repo, setup.outputs)
    head = setup.repo.commit("add orders")
    report = await setup.run_once()
    assert outcomes(report) == ["succeeded"]
    assert report.exit_code == 0
    assert report.head == head
    creates = local_aws.journal.calls("CreateFunction")
    assert [e.status for e in creates] == [201]
    aliases = local_aws.journal.calls("CreateAlias", function=NAME)
    assert [(e.version, e.status) for e in aliases] == [("1", 201)]
    # The projections followed the log while the engine ran: `glam status` sees the function.
    async with SqliteEventStore(setup.db, readonly=True) as store:
        views = await ProjectionRunner(store).load()
        assert views.position == await store.last_position()
    rows = list(views.functions.values())
    assert len(rows) == 1
    local_aws.journal.check_invariants()
    # Nothing new: a second run plans nothing and exits 0.
    again = await setup.run_once()
    assert again.finished == []
    assert again.exit_code == 0
