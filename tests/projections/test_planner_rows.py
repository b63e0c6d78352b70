"""The planner's stored inputs (``projections.planner``) equal the fold of the log they replace:
for every function its state and summary, for the branch its repository state, whatever the
runner's batches, the tail after the checkpoint and rows saved after the checkpoint was read."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli.plan_log import fold_log
from engine.deployed import (
    DeployedIndex,
    DeployedState,
    NotLoaded,
    summarize,
)
from engine.errors import StoreCorrupt
from engine.events import Event, Metadata, NewEvent
from engine.events.desired import DeploymentSettings
from engine.events.function import DeploymentRequested, FunctionOwner
from engine.events.repo import CommitPlanned, PlannedAction, PrefixListing
from engine.observe import RepoState
from engine.ports import EventStore
from engine.store.memory import MemoryEventStore
from engine.store.sqlite import SqliteEventStore
from projections.planner import (
    EARLIER_FORMATS,
    PROJECTION,
    SUMMARY_ROW,
    PlannerFold,
    _summary_text,
    _undocumented,
    planner_format,
    read_inputs,
    verify_rows,
)
from projections.runner import ProjectionRunner
from tests.projections.strategies import desired_function, function_events, repo_events

pytestmark = pytest.mark.anyio

REPO = "repo:r@main"
NAMES = ("orders", "pay", "ship")
STREAMS = tuple(f"fn:1:eu-west-1:{n}" for n in NAMES)


def _plan(sha: str, actions: list[tuple[str, str]]) -> CommitPlanned:
    """A plan naming the functions of this log (older logs' plans name their owners)."""
    return CommitPlanned(
        sha=sha,
        actions=tuple(
            PlannedAction(prefix=f"p/{n}", function=s, action=a, files=(), reason="")
            for n, (s, a) in enumerate(actions)
        ),
    )


def _owned(name: str, owner: str | None) -> DeploymentRequested:
    return DeploymentRequested(
        deployment_id=f"d-{name}",
        commit="c" * 40,
        action="create",
        desired=desired_function(name),
        owner=None if owner is None else FunctionOwner(repository="r", branch=owner, prefix=name),
    )


plans = st.builds(
    _plan,
    st.sampled_from(["a" * 40, "b" * 40]),
    st.lists(
        st.tuples(st.sampled_from(STREAMS), st.sampled_from(["create", "new_version", "delete"])),
        max_size=3,
    ),
)
items = st.one_of(
    st.tuples(st.sampled_from(STREAMS), function_events),
    st.tuples(
        st.sampled_from(STREAMS),
        st.builds(_owned, st.sampled_from(NAMES), st.none() | st.sampled_from(["main", "dev"])),
    ),
    st.tuples(st.sampled_from([REPO, "repo:other@main"]), repo_events | plans),
)
LOGS = st.lists(items, max_size=30)
_ids = itertools.count()


async def _append(store: EventStore, part: list[tuple[str, Event]]) -> None:
    for stream, event in part:
        await store.append(stream, [NewEvent(event, Metadata(event_id=f"e{next(_ids)}"))])


async def _folded(store: Any) -> tuple[dict[str, Any], RepoState]:
    """What ``glam plan`` folds without the stored rows."""
    return await fold_log(store, REPO)


class _EarlierCheckpoint:
    """A store whose planner checkpoint reads as ``earlier``: the rows then hold events after
    it, as when the engine saves between a reader's reads."""

    def __init__(self, store: Any, earlier: int) -> None:
        self._store, self._earlier = store, earlier

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def load_rows(self, projection: str, view: str, keys: Any = None) -> Any:
        checkpoint, rows = await self._store.load_rows(projection, view, keys)
        return (min(checkpoint, self._earlier) if view == "meta" else checkpoint), rows


async def _check(store: Any, folded: dict[str, Any], repo: RepoState) -> None:
    inputs = await read_inputs(store, REPO)
    assert inputs is not None
    assert inputs.repo == repo
    deployed = inputs.deployed
    assert deployed.summaries == {s: summarize(state) for s, state in folded.items()}
    await inputs.load(folded)
    assert deployed.states == folded


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LOGS, st.lists(st.integers(1, 8), max_size=4), st.integers(1, 5), st.integers(0, 8))
def test_stored_inputs_equal_the_fold(
    log: list[tuple[str, Event]], chunks: list[int], batch: int, tail: int
) -> None:
    """Caught up in arbitrary chunks and batches by fresh runners (as across restarts), with
    ``tail`` events appended after the last catch-up, read at the checkpoint and at an earlier
    one: the index, the states and the repository state are those of the fold."""

    async def scenario() -> None:
        cut = max(0, len(log) - tail)
        async with MemoryEventStore() as store:
            remaining = log[:cut]
            for size in [*chunks, len(remaining)]:
                part, remaining = remaining[:size], remaining[size:]
                await _append(store, part)
                await ProjectionRunner(store, batch=batch).catch_up()
            await _append(store, log[cut:])
            folded, repo = await _folded(store)
            if not await store.last_position():
                assert await read_inputs(store, REPO) is None  # nothing stored: fold instead
                return
            checkpoint, _ = await store.load_rows(PROJECTION, "meta")
            if checkpoint:
                await _check(store, folded, repo)
                await _check(_EarlierCheckpoint(store, max(1, checkpoint // 2)), folded, repo)

    anyio.run(scenario)


async def _engine_like_log(db: Path) -> None:
    async with SqliteEventStore(db) as store:
        await _append(store, [(STREAMS[0], _owned("orders", "main"))])
        await ProjectionRunner(store).catch_up()


async def test_an_index_refuses_a_state_it_did_not_load(tmp_path: Path) -> None:
    """A reader that asks for a function it did not load gets an error, never "no such
    function" (which would plan a create)."""
    db = tmp_path / "glam.db"
    await _engine_like_log(db)
    async with SqliteEventStore(db, readonly=True) as store:
        inputs = await read_inputs(store, REPO)
    assert inputs is not None
    deployed: DeployedIndex = inputs.deployed
    assert STREAMS[0] in deployed
    assert len(deployed) == 1
    with pytest.raises(NotLoaded):
        deployed.get(STREAMS[0])
    assert deployed.get(STREAMS[1]) is None


async def test_rows_of_another_format_or_none_are_not_read(tmp_path: Path) -> None:
    """A log whose rows are in another format (or that has none: an earlier glam wrote it) is
    folded instead; a runner then writes them again from position 0. (On a real SQLite file:
    the property above runs on the in-memory store.)"""
    db = tmp_path / "glam.db"
    await _engine_like_log(db)
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE view_rows SET data = '\"planner-0:old\"' WHERE projection = ? AND view = 'meta'",
        (PROJECTION,),
    )
    conn.commit()
    conn.close()
    async with SqliteEventStore(db) as store:
        assert await read_inputs(store, REPO) is None
        await ProjectionRunner(store).catch_up()
        inputs = await read_inputs(store, REPO)
        assert inputs is not None
        assert set(inputs.deployed) == {STREAMS[0]}
    conn = sqlite3.connect(db)
    conn.execute("DELETE FROM view_rows WHERE projection = ?", (PROJECTION,))
    conn.execute("DELETE FROM checkpoints WHERE projection = ?", (PROJECTION,))
    conn.commit()
    conn.close()
    async with SqliteEventStore(db) as store:
        assert await read_inputs(store, REPO) is None
        await ProjectionRunner(store).catch_up()  # the views are current: the planner's only
        assert (await read_inputs(store, REPO)) is not None


def test_the_rows_format_is_pinned() -> None:
    """The digest of the rows' format changes only with their models or the summary row's
    layout, never with a docstring; when it does change, the digests of earlier glams that
    are read as this one's must go (their rows are of the models before)."""
    assert planner_format() == "planner-1:185cb15e98cca066", (
        "the planner rows' format changed: empty EARLIER_FORMATS, then pin the new digest"
    )
    assert set(EARLIER_FORMATS) == {"planner-1:3676369fb9c34796"}


def test_the_summary_row_is_written_as_its_layout_says() -> None:
    """The digest names the summary row by ``SUMMARY_ROW``, not by a model: a change to what
    ``_summary_text`` writes must change that text too (and so the digest, pinned above)."""
    state = DeployedState(
        stream="fn:1:eu-west-1:orders",
        prefix="f/orders/",
        exists=True,
        owner=FunctionOwner(
            repository="https://git.example/r.git", branch="main", prefix="f/orders/"
        ),
        settings=DeploymentSettings(alias="live", region="eu-west-1"),
        stale_aliases=("old",),
    )
    assert _summary_text(7, summarize(state)) == (
        '[7,"f/orders/",true,true,false,true,["https://git.example/r.git","main","f/orders/"],'
        "[true,false]]"
    ), "the summary row changed: update SUMMARY_ROW, then pin the new digest"
    assert SUMMARY_ROW.startswith("[position, prefix|null, exists, live, deleting, stale, ")


def test_the_digest_leaves_out_docstrings_only() -> None:
    """A model's or a field's docstring is not its format; a field named ``description``,
    or a default holding that key, is."""
    schema = {
        "description": "the model's docstring",
        "properties": {"description": {"type": "string", "description": "a docstring"}},
        "default": {"description": "a value"},
    }
    assert _undocumented(schema) == {
        "properties": {"description": {"type": "string"}},
        "default": {"description": "a value"},
    }


async def test_rows_an_earlier_glam_wrote_in_this_format_are_read(tmp_path: Path) -> None:
    """Rows under the digest of the glam before (the same rows: its digest held docstrings)
    are read as they are and kept by the runner, not folded again: an older and a newer
    engine on one log (a rolling upgrade of shared engines) do not rebuild them in turn."""
    db = tmp_path / "glam.db"
    await _engine_like_log(db)
    (earlier,) = EARLIER_FORMATS
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE view_rows SET data = ? WHERE projection = ? AND view = 'meta'",
        (json.dumps(earlier), PROJECTION),
    )
    conn.commit()
    conn.close()
    async with SqliteEventStore(db) as store:
        inputs = await read_inputs(store, REPO)
        assert inputs is not None
        assert set(inputs.deployed) == {STREAMS[0]}
        checkpoint = await PlannerFold(store).load()
        assert checkpoint == await store.last_position()  # no reset: nothing folded again
        await _append(store, [(STREAMS[1], _owned("billing", "main"))])
        await ProjectionRunner(store).catch_up()
        _, meta = await store.load_rows(PROJECTION, "meta")
        assert json.loads(meta["format"]) == earlier  # kept as the earlier glam reads it
        inputs = await read_inputs(store, REPO)
        assert inputs is not None
        assert set(inputs.deployed) == {STREAMS[0], STREAMS[1]}


async def test_a_row_that_does_not_decode_is_reported(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _engine_like_log(db)
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE view_rows SET data = '[1, 2' WHERE projection = ? AND view = 'summary'",
        (PROJECTION,),
    )
    conn.commit()
    conn.close()
    async with SqliteEventStore(db, readonly=True) as store:
        with pytest.raises(StoreCorrupt, match="planner rows do not decode"):
            await read_inputs(store, REPO)


async def test_replay_verify_compares_the_stored_rows_with_a_fold(tmp_path: Path) -> None:
    db = tmp_path / "glam.db"
    await _engine_like_log(db)
    async with SqliteEventStore(db, readonly=True) as store:
        assert await verify_rows(store) == {
            "ok": True,
            "checkpoint": 1,
            "differing_rows": [],
        }
    conn = sqlite3.connect(db)
    conn.execute(
        "UPDATE view_rows SET data = replace(data, 'true', 'false') "
        "WHERE projection = ? AND view = 'summary'",
        (PROJECTION,),
    )
    conn.commit()
    conn.close()
    async with SqliteEventStore(db, readonly=True) as store:
        report = await verify_rows(store)
    assert report is not None
    assert report["differing_rows"] == [f"summary/{STREAMS[0]}"]


async def test_replay_verify_reads_a_set_in_any_order(tmp_path: Path) -> None:
    """A repository row's known prefixes are a set: another process writes them in another
    order, and that is no difference."""
    db = tmp_path / "glam.db"
    listing = PrefixListing(added=("p/a", "p/b", "p/c"))
    async with SqliteEventStore(db) as store:
        plan = CommitPlanned(sha="a" * 40, actions=(), listing=listing)
        await _append(store, [(REPO, plan)])
        await ProjectionRunner(store).catch_up()
    conn = sqlite3.connect(db)
    [(text,)] = conn.execute(
        "SELECT data FROM view_rows WHERE projection = ? AND view = 'repo'", (PROJECTION,)
    ).fetchall()
    data = json.loads(text)
    prefixes = data["value"]["known"]["prefixes"]
    assert sorted(prefixes) == ["p/a", "p/b", "p/c"]
    data["value"]["known"]["prefixes"] = prefixes[::-1]
    conn.execute(
        "UPDATE view_rows SET data = ? WHERE projection = ? AND view = 'repo'",
        (json.dumps(data), PROJECTION),
    )
    conn.commit()
    conn.close()
    async with SqliteEventStore(db, readonly=True) as store:
        report = await verify_rows(store)
    assert report is not None
    assert report["ok"], report


class _RebuiltWhileRead(_EarlierCheckpoint):
    """A store whose planner rows were dropped and begun again between a reader's first and
    last read (the checkpoint it reads at the end is lower than at the start)."""

    async def load_rows(self, projection: str, view: str, keys: Any = None) -> Any:
        checkpoint, rows = await self._store.load_rows(projection, view, keys)
        if view == "meta":
            self._earlier, checkpoint = checkpoint - 1, self._earlier
        return checkpoint, rows


async def test_rows_rebuilt_while_read_are_not_used() -> None:
    async with MemoryEventStore() as store:
        await _append(store, [(STREAMS[0], _owned("orders", "main"))] * 3)
        await ProjectionRunner(store).catch_up()
        assert await read_inputs(store, REPO) is not None
        assert await read_inputs(_RebuiltWhileRead(store, 3), REPO) is None


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LOGS, st.integers(1, 5), st.integers(0, 8))
def test_owners_from_the_stored_rows_equal_the_fold(
    log: list[tuple[str, Event]], batch: int, tail: int
) -> None:
    """What `glam status` shows as each function's owner, read from the stored rows (the
    tail after them folded in, the requests of a function no one owns read), is what the
    fold of the whole log says."""
    from engine.cli.query import owners_folded, owners_of

    async def scenario() -> None:
        cut = max(0, len(log) - tail)
        async with MemoryEventStore() as store:
            await _append(store, log[:cut])
            await ProjectionRunner(store, batch=batch).catch_up()
            await _append(store, log[cut:])
            assert await owners_of(store) == await owners_folded(store)  # type: ignore[arg-type]

    anyio.run(scenario)


async def test_a_deleted_function_shows_the_branch_that_owned_it_last() -> None:
    """No one owns a deleted function (any branch may create it again); `glam status` still
    shows the branch that owned it last, from its stream's requests."""
    from engine.cli.query import owners_folded, owners_of
    from engine.events.function import FunctionDeleted

    async with MemoryEventStore() as store:
        await _append(store, [(STREAMS[0], _owned("orders", "dev"))])
        await _append(store, [(STREAMS[0], FunctionDeleted(deployment_id="d-orders"))])
        await _append(store, [(STREAMS[1], _owned("pay", "main"))])
        await ProjectionRunner(store).catch_up()
        owners = await owners_of(store)  # type: ignore[arg-type]
        assert owners == await owners_folded(store)  # type: ignore[arg-type]
    assert {s: o.branch for s, o in owners.items()} == {STREAMS[0]: "dev", STREAMS[1]: "main"}
