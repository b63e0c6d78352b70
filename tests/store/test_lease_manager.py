"""The engine's lease manager on a real PostgreSQL server, in one process: its callbacks on
take, loss and hand-over, its local deadline, and the fenced store it gives each shard."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from engine.errors import FencedOut
from engine.runtime.leases import PLAN_SHARD, LeaseManager, shard_of
from engine.store import pg_leases
from engine.store.postgres import PostgresEventStore
from tests.store.helpers import new_event

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

FN = "fn:111:eu-west-1:orders"


class Calls:
    def __init__(self) -> None:
        self.taken: list[str] = []
        self.lost: list[str] = []

    async def on_taken(self, shard: str) -> None:
        self.taken.append(shard)

    async def on_lost(self, shard: str) -> None:
        self.lost.append(shard)


def _manager(store: PostgresEventStore, name: str, calls: Calls, ttl: float = 30.0) -> LeaseManager:
    manager = LeaseManager(store, name, ttl=ttl, on_taken=calls.on_taken, on_lost=calls.on_lost)
    manager.know("111:eu-west-1")
    return manager


@pytest.fixture
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgresEventStore, PostgresEventStore]]:
    async with PostgresEventStore(postgres_url) as one, PostgresEventStore(postgres_url) as two:
        yield one, two


def test_shard_of() -> None:
    """A function stream's shard is its account and region; other streams have none."""
    assert shard_of(FN) == "111:eu-west-1"
    assert shard_of("repo:abc") is None


async def test_take_hand_over_and_fenced_appends(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    """The first engine takes both shards; when a second starts, the first hands one over
    (on_lost, then released) and the second takes it (on_taken). Appends go through only for
    a shard held, and the one handed over refuses its former owner."""
    one, two = stores
    a_calls, b_calls = Calls(), Calls()
    a, b = _manager(one, "a", a_calls), _manager(two, "b", b_calls)
    await a.start()
    assert sorted(a_calls.taken) == ["111:eu-west-1", PLAN_SHARD]
    store_a = a.store_for("111:eu-west-1")
    await store_a.append(FN, [new_event()])
    await b.start()
    assert b_calls.taken == []  # all owned and live
    await a.renew()
    assert len(a_calls.lost) == 1
    await b.renew()
    assert b_calls.taken == a_calls.lost
    moved = a_calls.lost[0]
    assert not a.holds(moved)
    assert b.holds(moved)
    with pytest.raises(FencedOut):
        await a.store_for(moved).append(FN if moved != PLAN_SHARD else "repo:x", [new_event()])
    await b.store_for(moved).append("fn:111:eu-west-1:other", [new_event()])


async def test_a_lease_past_its_local_deadline_refuses_before_the_database(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    """Without a renewal for a whole lease time the engine stops holding its shards on its own
    clock (before the server's expiry), and another engine takes them once they expire."""
    one, two = stores
    a_calls, b_calls = Calls(), Calls()
    a = _manager(one, "a", a_calls, ttl=0.5)
    await a.start()
    await anyio.sleep(0.6)
    assert a.held == frozenset()
    with pytest.raises(FencedOut, match="does not hold"):
        await a.store_for("111:eu-west-1").append(FN, [new_event()])
    b = _manager(two, "b", b_calls)
    await b.start()
    assert sorted(b_calls.taken) == ["111:eu-west-1", PLAN_SHARD]
    leases = {row.shard: row for row in await two.transaction(pg_leases.list_leases)}
    assert leases["111:eu-west-1"].epoch == 2
    # a's next renewal learns it lost everything and says so.
    await a.renew()
    assert sorted(a_calls.lost) == ["111:eu-west-1", PLAN_SHARD]


async def test_leave_hands_everything_over_at_once(
    stores: tuple[PostgresEventStore, PostgresEventStore],
) -> None:
    """A clean stop frees the shards: the other engine takes them at its next renewal."""
    one, two = stores
    a, b = _manager(one, "a", Calls()), _manager(two, "b", Calls())
    await a.start()
    await b.start()
    assert b.held == frozenset()
    await a.leave()
    await b.renew()
    assert b.held == {"111:eu-west-1", PLAN_SHARD}
