"""The lease table on a real PostgreSQL server: takes up to a fair share, renewals, expiry, a
clean release, and the fencing epoch that refuses a former owner's append inside the append's
own transaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
import pytest

from engine.errors import ConcurrencyConflict, FencedOut
from engine.ports import NO_STREAM
from engine.store import pg_leases
from engine.store.pg_leases import Fence
from engine.store.postgres import PostgresEventStore
from tests.store.helpers import new_event

pytestmark = [pytest.mark.anyio, pytest.mark.integration]

SHARDS = ["111:eu-west-1", "111:us-east-1", "222:eu-west-1", "plan"]


async def _tick(
    store: PostgresEventStore, engine: str, ttl: float = 30.0, shards: list[str] = SHARDS
) -> pg_leases.Tick:
    return await store.transaction(lambda sql: pg_leases.tick(sql, engine, ttl, shards))


async def _leases(store: PostgresEventStore) -> dict[str, pg_leases.Lease]:
    return {lease.shard: lease for lease in await store.transaction(pg_leases.list_leases)}


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[PostgresEventStore]:
    async with PostgresEventStore(postgres_url) as opened:
        await opened.transaction(pg_leases.create_tables)
        yield opened


def test_fair_share() -> None:
    """Every shard is owned and no engine holds more than the rounded-up even split."""
    assert pg_leases.fair_share(4, 1) == 4
    assert pg_leases.fair_share(4, 3) == 2
    assert pg_leases.fair_share(3, 2) == 2
    assert pg_leases.fair_share(0, 2) == 0
    assert pg_leases.fair_share(5, 0) == 5


async def test_a_lone_engine_takes_every_shard_at_epoch_one(store: PostgresEventStore) -> None:
    """The first engine registers the shards and takes them all, each at epoch 1."""
    tick = await _tick(store, "a")
    assert tick.held == dict.fromkeys(SHARDS, 1)
    assert tick.taken == set(SHARDS)
    assert (tick.live, tick.shards, tick.excess) == (1, 4, ())
    rows = await _leases(store)
    assert {row.owner for row in rows.values()} == {"a"}
    assert all(row.live for row in rows.values())


async def test_renewal_keeps_the_epoch(store: PostgresEventStore) -> None:
    """Renewing a lease moves its expiry and never its epoch; nothing is taken again."""
    await _tick(store, "a")
    before = await _leases(store)
    again = await _tick(store, "a")
    assert again.held == dict.fromkeys(SHARDS, 1)
    assert again.taken == set()
    after = await _leases(store)
    assert all(after[s].expires_at > before[s].expires_at for s in SHARDS)


async def test_a_second_engine_gets_its_share_as_the_first_hands_over(
    store: PostgresEventStore,
) -> None:
    """A newcomer counts as live at once: the first engine sees it holds more than its share
    and names the excess; once released, the newcomer takes them at a new epoch."""
    await _tick(store, "a")
    b = await _tick(store, "b")
    assert b.held == {}
    assert b.live == 2
    a = await _tick(store, "a")
    assert len(a.excess) == 2
    await store.transaction(lambda sql: pg_leases.release(sql, "a", a.excess))
    b = await _tick(store, "b")
    assert b.held == dict.fromkeys(a.excess, 2)
    again = await _tick(store, "a")
    assert set(again.held) == set(SHARDS) - set(a.excess)
    assert again.excess == ()


async def test_an_expired_lease_is_taken_at_the_next_epoch(store: PostgresEventStore) -> None:
    """A lease its owner stopped renewing is free once it expires (server time); its owner
    cannot renew it any more, and the taker gets epoch + 1."""
    await _tick(store, "a", ttl=0.3)
    assert (await _tick(store, "b", ttl=30.0)).held == {}  # not expired yet
    await anyio.sleep(0.4)
    b = await _tick(store, "b")
    assert b.held == dict.fromkeys(SHARDS, 2)
    a = await _tick(store, "a")
    assert a.held == {}


async def test_leave_frees_everything_at_once(store: PostgresEventStore) -> None:
    """A clean stop frees the engine's shards and stops it counting as live: another engine
    takes them all without waiting for an expiry."""
    await _tick(store, "a")
    await _tick(store, "b")
    await store.transaction(lambda sql: pg_leases.leave(sql, "a"))
    b = await _tick(store, "b")
    assert b.live == 1
    assert b.held == dict.fromkeys(SHARDS, 2)


async def test_takes_from_two_engines_at_once_never_share_a_shard(
    store: PostgresEventStore, postgres_url: str
) -> None:
    """Two engines ticking at the same moment on their own connections: every shard ends with
    exactly one owner."""
    async with PostgresEventStore(postgres_url) as other:
        results: dict[str, pg_leases.Tick] = {}

        async def run(name: str, on: PostgresEventStore) -> None:
            results[name] = await _tick(on, name)

        async with anyio.create_task_group() as tg:
            tg.start_soon(run, "a", store)
            tg.start_soon(run, "b", other)
    a, b = results["a"].held, results["b"].held
    assert not set(a) & set(b)
    assert set(a) | set(b) <= set(SHARDS)


# -- fencing ------------------------------------------------------------------------------


async def test_an_append_under_the_current_epoch_is_stored(store: PostgresEventStore) -> None:
    """The owner's fenced append is an append: stored, versioned, with optimistic concurrency."""
    await _tick(store, "a")
    fence = Fence("111:eu-west-1", "a", 1)
    stream = "fn:111:eu-west-1:orders"
    recorded = await store.append_fenced(stream, [new_event()], NO_STREAM, fence=fence)
    assert [r.version for r in recorded] == [1]
    with pytest.raises(ConcurrencyConflict):
        await store.append_fenced(stream, [new_event()], NO_STREAM, fence=fence)


async def test_a_stale_epoch_is_refused_and_nothing_is_applied(store: PostgresEventStore) -> None:
    """Once another engine took the shard (epoch 2), the former owner's append under epoch 1
    raises FencedOut and the log does not move."""
    await _tick(store, "a", ttl=0.3)
    await anyio.sleep(0.4)
    await _tick(store, "b")
    before = await store.last_position()
    stale = Fence("111:eu-west-1", "a", 1)
    with pytest.raises(FencedOut, match="no longer leased"):
        await store.append_fenced("fn:111:eu-west-1:orders", [new_event()], fence=stale)
    assert await store.last_position() == before
    assert await store.read_stream("fn:111:eu-west-1:orders") == []
    # The new owner's epoch is accepted.
    fresh = Fence("111:eu-west-1", "b", 2)
    await store.append_fenced("fn:111:eu-west-1:orders", [new_event()], fence=fresh)
    assert await store.last_position() == before + 1


async def test_an_expired_lease_fences_even_before_anyone_takes_it(
    store: PostgresEventStore,
) -> None:
    """A lease past its expiry refuses its owner's appends although nobody took it yet: the
    owner was told to stop, and a taker may be on its way."""
    await _tick(store, "a", ttl=0.3)
    await anyio.sleep(0.4)
    with pytest.raises(FencedOut):
        await store.append_fenced(
            "fn:111:us-east-1:f", [new_event()], fence=Fence("111:us-east-1", "a", 1)
        )


async def test_a_released_shard_fences_its_former_owner(store: PostgresEventStore) -> None:
    """After a release the same epoch no longer names an owner: refused."""
    await _tick(store, "a")
    await store.transaction(lambda sql: pg_leases.release(sql, "a", ["plan"]))
    with pytest.raises(FencedOut):
        await store.append_fenced("repo:x", [new_event()], fence=Fence("plan", "a", 1))


async def test_a_refused_append_in_a_batch_leaves_the_others_alone(
    store: PostgresEventStore,
) -> None:
    """Fenced and plain appends queued together are group-committed: the stale one is
    refused, the current one and the plain ones land, in few transactions."""
    await _tick(store, "a", ttl=0.3)
    await anyio.sleep(0.4)
    await _tick(store, "b")  # b takes everything at epoch 2
    outcomes: dict[str, object] = {}
    before = store.commits

    async def current() -> None:
        fence = Fence("111:us-east-1", "b", 2)
        outcomes["current"] = await store.append_fenced("fn:1:r:g", [new_event()], fence=fence)

    async def plain(i: int) -> None:
        outcomes[f"p{i}"] = await store.append(f"s{i}", [new_event()])

    async def fenced() -> None:
        try:
            await store.append_fenced("fn:1:r:f", [new_event()], fence=Fence("plan", "a", 1))
        except FencedOut as exc:
            outcomes["fenced"] = exc

    async with anyio.create_task_group() as tg:
        for i in range(5):
            tg.start_soon(plain, i)
        tg.start_soon(fenced)
        tg.start_soon(current)
    assert isinstance(outcomes["fenced"], FencedOut)
    assert await store.last_position() == 6
    assert store.commits - before <= 2
