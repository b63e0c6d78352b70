"""The planner's inputs, stored: what ``glam plan`` reads instead of folding the whole log.

Projection ``planner``, kept by the projection runner beside the views (its own checkpoint and
transaction, right after each save of the views):

- view ``state``: per function stream its ``DeployedState``;
- view ``summary``: per function stream its ``DeployedSummary`` (a few short fields);
- view ``repo``: per repository stream its ``RepoState`` (last planned commit, known prefixes);
- view ``meta``: the format of the rows (a digest of their models).

Each row also holds the position of the last event that changed it. The fold is the planner's
own (``engine.deployed.fold_deployed``, ``engine.observe.evolve_repo``), so a stored state
equals the fold of the log up to its row's position. A reader (``read_inputs``) takes every
summary, its branch's repository row and the whole states only of the prefixes it renders,
then folds what the log holds after the checkpoint, each row only with the events after its
own position (the engine may save between two reads). Derived data: a log without it, or in a
format this glam does not read, is folded from the start instead, and the runner writes it
again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable
from functools import cache
from typing import Any

from pydantic import TypeAdapter, ValidationError

from engine.deployed import (
    DEPLOYED_EVENT_TYPES,
    OWNER_EVENT_TYPES,
    DeployedIndex,
    DeployedState,
    DeployedSummary,
    OwnerKey,
    fold_deployed,
    summarize,
)
from engine.errors import StoreCorrupt
from engine.events import RecordedEvent
from engine.events.repo import CommitPlanned
from engine.observe import RepoState, evolve_repo
from engine.ports import ViewStore
from engine.streams import FUNCTION_PREFIX, REPO_PREFIX

PROJECTION = "planner"
# Bumped whenever the fold of the rows changes (engine.deployed, engine.observe): rows an
# earlier fold wrote are then folded again, never read.
FOLD_VERSION = 1

_STATE = TypeAdapter(DeployedState)
_REPO = TypeAdapter(RepoState)
# A stored summary, as ``_summary_text`` writes it: a JSON array, not a model's dump.
SUMMARY_ROW = (
    "[position, prefix|null, exists, live, deleting, stale, "
    "[repository, branch, prefix]|null, [region named, account named]|null]"
)
# Digests an earlier glam gave rows of exactly today's format, read as today's (its digest
# held the models' docstrings and the summary's former dataclass). Emptied whenever
# ``planner_format`` changes (``tests/projections/test_planner_rows.py`` pins it): rows
# under these digests are of today's models only.
EARLIER_FORMATS = frozenset({"planner-1:3676369fb9c34796"})


@cache
def planner_format() -> str:
    """A digest of the stored rows' formats (the states' and repository states' models, the
    summary row's layout): rows of another format are not read. A model's docstrings are
    not its format: they are left out."""
    schemas = [_undocumented(a.json_schema()) for a in (_STATE, _REPO)]
    text = json.dumps([schemas, SUMMARY_ROW], sort_keys=True)
    return f"planner-{FOLD_VERSION}:{hashlib.sha256(text.encode()).hexdigest()[:16]}"


_NAMED_SCHEMAS = frozenset({"properties", "$defs", "patternProperties"})  # name -> schema
_LITERALS = frozenset({"default", "const", "enum", "examples"})  # values, not schemas


def _undocumented(schema: Any) -> Any:
    """A JSON schema without its descriptions (a model's and its fields' docstrings): the
    ``description`` of each schema only, not a field of that name, nor a key in a default."""
    if isinstance(schema, list):
        return [_undocumented(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in _LITERALS:
            out[key] = value
        elif key in _NAMED_SCHEMAS and isinstance(value, dict):
            out[key] = {name: _undocumented(v) for name, v in value.items()}
        else:
            out[key] = _undocumented(value)
    return out


def readable_format(meta: dict[str, str]) -> bool:
    """Whether the rows whose ``meta`` view this is are in a format this glam reads."""
    found = _format_of(meta)
    return found == planner_format() or found in EARLIER_FORMATS


def relevant(record: RecordedEvent) -> bool:
    """Whether ``record`` can change a stored row."""
    stream = record.stream
    if stream.startswith(FUNCTION_PREFIX):
        return record.type in DEPLOYED_EVENT_TYPES
    return stream.startswith(REPO_PREFIX)


def touched(records: Iterable[RecordedEvent]) -> tuple[set[str], set[str]]:
    """The function and repository streams whose rows ``records`` change (a plan may name
    the owners of functions of older logs)."""
    functions: set[str] = set()
    repos: set[str] = set()
    for record in records:
        if record.stream.startswith(FUNCTION_PREFIX):
            functions.add(record.stream)
        else:
            repos.add(record.stream)
            if isinstance(record.event, CommitPlanned):
                functions.update(a.function for a in record.event.actions if a.function)
    return functions, repos


def _text(position: int, adapter: TypeAdapter[Any], value: object) -> str:
    return f'{{"position":{position},"value":{adapter.dump_json(value).decode()}}}'


def _decode(text: str, adapter: TypeAdapter[Any]) -> tuple[int, Any]:
    data = json.loads(text)
    return int(data["position"]), adapter.validate_python(data["value"])


class Rows:
    """Stored rows being folded: states and repository states by stream, each with the
    position of the last event that changed it."""

    def __init__(self, repos_of: Collection[str] | None = None) -> None:
        self.repos_of = repos_of  # the repository streams kept (None: every one)
        self.states: dict[str, DeployedState] = {}
        self.repos: dict[str, RepoState] = {}
        self.at: dict[str, int] = {}  # row position by stream
        self.dirty: set[str] = set()

    async def load(
        self, store: ViewStore, functions: Collection[str], repos: Collection[str]
    ) -> None:
        """Load the stored rows of these streams that are not loaded yet."""
        for view, streams, adapter, into in (
            ("state", functions, _STATE, self.states),
            ("repo", repos, _REPO, self.repos),
        ):
            missing = [s for s in streams if s not in into]
            if missing:
                _, found = await store.load_rows(PROJECTION, view, missing)
                for stream, text in found.items():
                    self.at[stream], into[stream] = _decode(text, adapter)

    def fold(self, record: RecordedEvent) -> None:
        """Fold one relevant record into each row it changes that has not folded it yet."""
        position, stream, event = record.position, record.stream, record.event
        if stream.startswith(REPO_PREFIX):
            kept = self.repos_of is None or stream in self.repos_of
            if kept and self.at.get(stream, 0) < position:
                self.repos[stream] = evolve_repo(self.repos.get(stream) or RepoState(), event)
                self._changed(stream, position)
            if not isinstance(event, CommitPlanned):
                return
            names = {a.function for a in event.actions if a.function}
        else:
            names = {stream}
        names = {s for s in names if self.at.get(s, 0) < position}
        view = {s: self.states[s] for s in names if s in self.states}
        before = dict(view)
        fold_deployed(view, record)
        for name in names:
            if name in view and view[name] is not before.get(name):
                self.states[name] = view[name]
                self._changed(name, position)

    def _changed(self, stream: str, position: int) -> None:
        self.at[stream] = position
        self.dirty.add(stream)

    def take_rows(self) -> dict[tuple[str, str], str | None]:
        """The rows changed since the last call, as stored text."""
        rows: dict[tuple[str, str], str | None] = {}
        for stream in self.dirty:
            position = self.at[stream]
            if stream in self.repos:
                rows[("repo", stream)] = _text(position, _REPO, self.repos[stream])
            else:
                state = self.states[stream]
                rows[("state", stream)] = _text(position, _STATE, state)
                rows[("summary", stream)] = _summary_text(position, summarize(state))
        self.dirty = set()
        return rows


def _summary_text(position: int, summary: DeployedSummary) -> str:
    owner = summary.owner
    return json.dumps(
        [
            position,
            summary.prefix,
            summary.exists,
            summary.live,
            summary.deleting,
            summary.stale,
            None if owner is None else [owner.repository, owner.branch, owner.prefix],
            None if summary.named is None else list(summary.named),
        ],
        separators=(",", ":"),
    )


def _summaries(found: dict[str, str]) -> dict[str, DeployedSummary]:
    """Summaries as stored: a JSON array each, decoded without validation (glam wrote them
    in this format, ``planner_format``; the hot path of a plan of many functions)."""
    # One parse of them all: 50,000 calls of json.loads cost more than the parsing itself.
    decoded = json.loads(f"[{','.join(found.values())}]")
    # Each made as the tuple it is (``tuple.__new__`` does not call the class's Python
    # ``__new__``): the fields in the stored order, the position replaced by the stream.
    make = tuple.__new__
    return {
        stream: make(
            DeployedSummary,
            (
                stream,
                prefix,
                exists,
                live,
                deleting,
                stale,
                None if owned is None else make(OwnerKey, owned),
                None if named is None else tuple(named),
            ),
        )
        for stream, (_, prefix, exists, live, deleting, stale, owned, named) in zip(
            found, decoded, strict=True
        )
    }


# Events between two saves of the rows while the runner catches up (the engine's steady
# state saves whenever it reaches the end of the log): each save rewrites the states changed
# since the one before, so fewer saves write each busy function once instead of many times.
SAVE_EVERY = 10_000


class PlannerFold:
    """The projection runner's side: folds the relevant records it is given and saves the
    rows they changed, with the checkpoint, when the runner says (``due``)."""

    def __init__(self, store: ViewStore) -> None:
        self.store = store
        self.position = 0
        self.saved = 0  # the checkpoint last saved
        self._rows = Rows()
        self._pending: list[RecordedEvent] = []
        self._reset = False

    async def load(self) -> int:
        """The stored checkpoint (0, and the rows dropped at the next save, when they are
        missing or in another format)."""
        checkpoint, meta = await self.store.load_rows(PROJECTION, "meta")
        self._rows, self._pending = Rows(), []
        if readable_format(meta):
            self.position, self._reset = checkpoint, False
        else:
            self.position, self._reset = 0, True
        self.saved = self.position
        return self.position

    def due(self, *, at_end: bool) -> bool:
        """Whether to save now: at the end of the log, or every ``SAVE_EVERY`` events."""
        if self.position == self.saved and not self._reset:
            return False
        return at_end or self._reset or self.position - self.saved >= SAVE_EVERY

    def restart(self) -> None:
        """Fold from position 0 again (the views are rebuilt)."""
        self.position, self._rows, self._pending, self._reset = 0, Rows(), [], True
        self.saved = 0

    def add(self, record: RecordedEvent) -> None:
        if record.position <= self.position:
            return
        if relevant(record):
            self._pending.append(record)
        self.position = record.position

    async def save(self) -> None:
        reset, pending = self._reset, self._pending
        if not reset:
            functions, repos = touched(pending)
            await self._rows.load(self.store, functions, repos)
        for record in pending:
            self._rows.fold(record)
        rows = self._rows.take_rows()
        if reset:
            rows[("meta", "format")] = json.dumps(planner_format())
        await self.store.save_views(PROJECTION, self.position, rows, reset=reset)
        self._pending, self._reset, self.saved = [], False, self.position


def _format_of(meta: dict[str, str]) -> str | None:
    text = meta.get("format")
    try:
        value = json.loads(text) if text is not None else None
    except ValueError:
        return None
    return value if isinstance(value, str) else None


class PlannerInputs:
    """What ``read_inputs`` read: ``deployed`` (every summary, the states loaded so far, the
    log's tail folded in) and ``repo``, the branch's repository state."""

    def __init__(
        self,
        store: ViewStore,
        deployed: DeployedIndex,
        repo: RepoState,
        rows: Rows,
        tail: list[RecordedEvent],
    ) -> None:
        self.store = store
        self.deployed = deployed
        self.repo = repo
        self._rows = rows
        self._tail = tail

    async def load(self, streams: Iterable[str]) -> None:
        """Load the states of ``streams`` the index has a summary of (the tail folded in)."""
        wanted = {
            s for s in streams if s in self.deployed.summaries and s not in self.deployed.states
        }
        if not wanted:
            return
        try:
            await self._rows.load(self.store, wanted, ())
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise StoreCorrupt(f"the stored planner rows do not decode: {exc}") from None
        for record in self._tail:
            self._rows.fold(record)
        for stream in wanted:
            state = self._rows.states.get(stream)
            if state is None:
                raise StoreCorrupt(f"the stored planner state of {stream} is missing")
            self.deployed.loaded(state)


async def read_inputs(store: Any, repo_stream: str | None) -> PlannerInputs | None:
    """The planner's inputs from the stored rows and the log after their checkpoint, for
    the branch of ``repo_stream`` (None: the functions only); None when the log has no
    stored rows this glam reads (the caller folds the log instead). ``store``: a
    ``ViewStore`` with ``read_selected``."""
    checkpoint, meta = await store.load_rows(PROJECTION, "meta")
    if checkpoint == 0 or not readable_format(meta):
        return None
    try:
        _, found = await store.load_rows(PROJECTION, "summary")
        summaries = _summaries(found)
        repos = [] if repo_stream is None else [repo_stream]
        rows = Rows(repos_of=set(repos))
        await rows.load(store, (), repos)
        tail = await store.read_selected(
            DEPLOYED_EVENT_TYPES | OWNER_EVENT_TYPES, repos, after=checkpoint
        )
        functions, _ = touched(tail)
        await rows.load(store, functions, ())
        for record in tail:
            rows.fold(record)
    except (ValidationError, ValueError, KeyError, TypeError) as exc:
        raise StoreCorrupt(f"the stored planner rows do not decode: {exc}") from None
    after, meta = await store.load_rows(PROJECTION, "meta")
    if after < checkpoint or not readable_format(meta):
        return None  # rebuilt while read: what was read may be partial, so fold the log
    deployed = DeployedIndex(summaries, {})
    for state in rows.states.values():
        deployed.loaded(state)
    repo = rows.repos.get(repo_stream) if repo_stream is not None else None
    return PlannerInputs(store, deployed, repo or RepoState(), rows, tail)


def _value(view: str, text: str | None) -> object:
    """A stored row as the value it holds (its text is not canonical: a set's order in JSON
    depends on the process that wrote it); a row that does not decode as itself."""
    if text is None:
        return None
    try:
        if view == "summary":
            return json.loads(text)
        return _decode(text, _STATE if view == "state" else _REPO)
    except (ValidationError, ValueError, KeyError, TypeError):
        return text


async def verify_rows(store: Any) -> dict[str, Any] | None:
    """The stored rows against a fold of the log from position 0 to their checkpoint (for
    ``glam replay --verify``): ``ok``, the checkpoint and the rows that differ (None: the log
    has no rows this glam reads)."""
    checkpoint, meta = await store.load_rows(PROJECTION, "meta")
    if checkpoint == 0 or not readable_format(meta):
        return None
    rows = Rows()
    position = 0
    while position < checkpoint:
        batch = await store.read_all(position + 1, limit=min(5000, checkpoint - position))
        if not batch:
            break
        for record in batch:
            if relevant(record):
                rows.fold(record)
        position = batch[-1].position
    replayed = rows.take_rows()
    stored: dict[tuple[str, str], str] = {}
    for view in ("state", "summary", "repo"):
        _, found = await store.load_rows(PROJECTION, view)
        stored.update({(view, key): text for key, text in found.items()})
    differing = sorted(
        f"{view}/{key}"
        for view, key in stored.keys() | replayed.keys()
        if _value(view, stored.get((view, key))) != _value(view, replayed.get((view, key)))
    )
    return {"ok": not differing, "checkpoint": checkpoint, "differing_rows": differing}
