"""What the log says is deployed, per function stream, and who owns each function.

Pure folds over recorded events, shared by the planner, the engine and the read-only commands:

    states = deployed_from_events(records)        # DeployedState by function stream
    fold_deployed(states, record)                 # the same, one record at a time, in place

The planner walks every function only through ``summaries_of``: a ``DeployedSummary`` (stream,
prefix, owner, whether it lives) per function; it reads whole states only of the prefixes it
renders. A ``DeployedIndex`` holds every summary and only the states a reader loaded, so
``glam plan`` on a stored index (``projections.planner``) costs the change, not the log.

Ownership: every function is owned by one (repository, branch, path prefix). A deployment
request records its owner (``DeploymentRequested.owner``); a request of a glam that watched one
branch per log records none, and such a function belongs to the first repository stream whose
plan names it (its ``CommitPlanned``), so the branch that always planned it keeps it. A function
that is gone from AWS (deleted) has no owner: any branch may create it again. Repository ids
are compared through ``engine.redact.repository_id``, so an owner recorded under another form of
the repository's URL (or a stream an earlier glam named) is the same owner.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import NamedTuple

from engine.events import RecordedEvent
from engine.events.catalog import Event
from engine.events.desired import DeploymentSettings, DesiredFunction
from engine.events.function import (
    DeploymentFinished,
    DeploymentRequested,
    FunctionDeleted,
    FunctionOwner,
    SettingsRecorded,
)
from engine.events.repo import CommitPlanned
from engine.redact import repository_id
from engine.streams import FUNCTION_PREFIX, REPO_PREFIX, parse_repo_stream


class OwnerKey(NamedTuple):
    """A ``FunctionOwner``'s fields, cheap to make: a summary holds one for each function."""

    repository: str
    branch: str
    prefix: str

    def owner(self) -> FunctionOwner:
        return FunctionOwner(repository=self.repository, branch=self.branch, prefix=self.prefix)


Owned = FunctionOwner | OwnerKey


def as_owner(owned: Owned | None) -> FunctionOwner | None:
    return owned.owner() if isinstance(owned, OwnerKey) else owned


@dataclass(frozen=True, slots=True)
class Claimant:
    """The branch a plan is made for: it may plan the functions it owns, and those no one
    owns; another branch's are refused."""

    repository: str  # a repository id (engine.redact.repository_id)
    branch: str

    def owns(self, owner: Owned | None) -> bool:
        """Whether a function owned by ``owner`` is this branch's to plan (None: no one's)."""
        return owner is None or (
            owner.branch == self.branch
            and (
                owner.repository == self.repository  # one string: one id (most functions)
                or repository_id(owner.repository) == repository_id(self.repository)
            )
        )

    def owner(self, prefix: str) -> FunctionOwner:
        return FunctionOwner(repository=self.repository, branch=self.branch, prefix=prefix)

    @classmethod
    def of_stream(cls, stream: str) -> Claimant | None:
        """The branch of repository stream ``stream`` (None if it is not one)."""
        try:
            repository, branch = parse_repo_stream(stream)
        except ValueError:
            return None
        return cls(repository=repository, branch=branch)


def describe_owner(owner: Owned) -> str:
    """``https://github.com/acme/x branch main (apps/orders/orders)``."""
    return f"{owner.repository} branch {owner.branch} ({owner.prefix})"


@dataclass(frozen=True, slots=True)
class DeployedState:
    """What one function stream's events say about the function.

    ``content_hash``/``settings`` are those of the last successful deployment;
    ``rolled_back_hash`` is a desired state that failed and is not retried until it changes;
    ``requests`` are the requested, unfinished deployments in request order (an older one
    may still be finishing while a newer one waits), ``in_flight`` the newest of them.
    ``owner`` is the branch and prefix that own the function (see the module docstring);
    ``stale_aliases`` are aliases glam deployed that the definition no longer names (its
    alias changed), not yet removed.
    """

    stream: str
    prefix: str | None = None
    exists: bool = False
    content_hash: str | None = None
    settings: DeploymentSettings | None = None
    rolled_back_hash: str | None = None
    # The request whose desired state rolled back (or failed): what an operator's retry
    # requests again.
    rolled_back: DeploymentRequested | None = None
    requests: tuple[DeploymentRequested, ...] = ()
    owner: FunctionOwner | None = None
    stale_aliases: tuple[str, ...] = ()
    # The desired state of the last successful deployment (what ``glam plan`` compares a
    # definition with, field by field).
    desired: DesiredFunction | None = None

    @property
    def in_flight(self) -> DeploymentRequested | None:
        """The newest unfinished request: what the function converges to next."""
        return self.requests[-1] if self.requests else None

    @property
    def live(self) -> bool:
        """Deployed, or on its way to be (not being deleted)."""
        flight = self.in_flight
        return self.exists or (flight is not None and flight.action not in ("delete",))

    @property
    def alias(self) -> str | None:
        """The alias the deployed (else the requested) desired state names."""
        if self.settings is not None:
            return self.settings.alias
        flight = self.in_flight
        return flight.desired.settings.alias if flight and flight.desired else None


def _without(
    requests: tuple[DeploymentRequested, ...], deployment_id: str
) -> tuple[DeploymentRequested, ...]:
    return tuple(r for r in requests if r.deployment_id != deployment_id)


# The only event types ``evolve_deployed`` changes a state for (a test holds it to that): what
# a reader of the log must fetch to know what is deployed. ``OWNER_EVENT_TYPES``: what
# ``fold_deployed`` also reads, on repository streams, for the owners of older logs.
DEPLOYED_EVENT_TYPES: frozenset[str] = frozenset(
    {"DeploymentRequested", "SettingsRecorded", "DeploymentFinished", "FunctionDeleted"}
)
OWNER_EVENT_TYPES: frozenset[str] = frozenset({"CommitPlanned"})


def _gone(state: DeployedState) -> DeployedState:
    """The function is deleted: nothing is left for a retry to bring back, no one owns it."""
    return replace(
        state,
        exists=False,
        content_hash=None,
        rolled_back_hash=None,
        rolled_back=None,
        desired=None,
        owner=None if not state.requests else state.owner,
        stale_aliases=(),
    )


def evolve_deployed(state: DeployedState, event: Event) -> DeployedState:
    """Fold one event of the function's stream into its ``DeployedState``."""
    match event:
        case DeploymentRequested(desired=desired):
            prefix = desired.prefix if desired is not None else state.prefix
            # Tracked by id: an older deployment finishing must not end the newer one's.
            requests = (*_without(state.requests, event.deployment_id), event)
            owner = event.owner or state.owner
            return replace(state, prefix=prefix, requests=requests, owner=owner)
        case SettingsRecorded(settings=settings):
            return replace(state, settings=settings)
        case DeploymentFinished(deployment_id=dep_id, outcome=outcome):
            request = next((r for r in state.requests if r.deployment_id == dep_id), None)
            if request is None:
                return state
            state = replace(state, requests=_without(state.requests, dep_id))
            if outcome == "succeeded":
                if request.action == "remove_alias":
                    stale = tuple(a for a in state.stale_aliases if a != request.alias)
                    return replace(state, stale_aliases=stale)
                if request.action == "delete" or request.desired is None:
                    return _gone(state)
                new_alias = request.desired.settings.alias
                stale = tuple(a for a in state.stale_aliases if a != new_alias)
                old = state.settings.alias if state.settings is not None else None
                if state.exists and old is not None and old != new_alias and old not in stale:
                    stale = (*stale, old)
                return replace(
                    state,
                    exists=True,
                    content_hash=request.desired.content_hash,
                    settings=request.desired.settings,
                    desired=request.desired,
                    rolled_back_hash=None,
                    rolled_back=None,
                    stale_aliases=stale,
                )
            if outcome in ("rolled_back", "failed") and request.desired is not None:
                return replace(
                    state, rolled_back_hash=request.desired.content_hash, rolled_back=request
                )
            return state
        case FunctionDeleted(deployment_id=dep_id):
            return _gone(replace(state, requests=_without(state.requests, dep_id)))
        case _:
            return state


def fold_deployed(states: MutableMapping[str, DeployedState], record: RecordedEvent) -> None:
    """Fold one recorded event (of any stream, in log order) into ``states``, in place:
    function events into their stream's state, and a plan of a glam that recorded no owners
    into the owners of the functions it names (see the module docstring)."""
    if record.stream.startswith(FUNCTION_PREFIX):
        current = states.get(record.stream) or DeployedState(stream=record.stream)
        states[record.stream] = evolve_deployed(current, record.event)
    elif record.stream.startswith(REPO_PREFIX) and isinstance(record.event, CommitPlanned):
        claimant: Claimant | None = None
        for action in record.event.actions:
            if not action.function:
                continue
            known = states.get(action.function)
            if known is None and action.action in ("create", "new_version"):
                # A plan recorded before its request (some earlier logs): the request follows.
                known = DeployedState(stream=action.function)
            elif known is None or known.owner is not None or not known.live:
                continue
            claimant = claimant or Claimant.of_stream(record.stream)
            if claimant is None:
                return
            states[action.function] = replace(known, owner=claimant.owner(action.prefix))


def deployed_from_events(events: Iterable[RecordedEvent]) -> dict[str, DeployedState]:
    """``DeployedState`` per function stream, folded from any sequence of recorded events
    (a whole log, or function streams and plans, in log order)."""
    states: dict[str, DeployedState] = {}
    for record in events:
        fold_deployed(states, record)
    return states


class DeployedSummary(NamedTuple):
    """What the planner reads of every function, not only of the prefixes it renders: where
    its definition is, who owns it and whether it lives (``DeployedState``'s properties of
    the same names). A tuple: a plan of 50,000 functions makes 50,000 of them, and a tuple is
    made in C where a dataclass runs its ``__init__``."""

    stream: str
    prefix: str | None = None
    exists: bool = False
    live: bool = False
    deleting: bool = False  # the newest unfinished request is a delete
    stale: bool = False  # aliases the definition no longer names wait to be removed
    owner: OwnerKey | None = None
    # Whether its definition named its region and its account (None: the log holds none).
    named: tuple[bool, bool] | None = None


def named_settings(state: DeployedState) -> DeploymentSettings | None:
    """The settings of the definition behind ``state``: deployed, else requested, else the
    rolled-back one (None when the log holds no desired state for it)."""
    desired = state.in_flight.desired if state.in_flight is not None else None
    if desired is None and state.rolled_back is not None:
        desired = state.rolled_back.desired
    return state.settings or (desired.settings if desired is not None else None)


def summarize(state: DeployedState) -> DeployedSummary:
    flight = state.in_flight
    settings = named_settings(state)
    return DeployedSummary(
        stream=state.stream,
        prefix=state.prefix,
        exists=state.exists,
        live=state.live,
        deleting=flight is not None and flight.action == "delete",
        stale=bool(state.stale_aliases),
        owner=None if (o := state.owner) is None else OwnerKey(o.repository, o.branch, o.prefix),
        named=None
        if settings is None
        else (settings.region is not None, settings.account is not None),
    )


class NotLoaded(RuntimeError):
    """A reader of a ``DeployedIndex`` asked for a state it did not load: a bug in that
    reader (never read as "no such function", which would plan a create)."""


class DeployedIndex(Mapping[str, DeployedState]):
    """``DeployedState`` by function stream where only some states are loaded and every
    function is summarized: iterating or counting it walks the summaries; looking up a
    function that has a summary but was not loaded raises ``NotLoaded``."""

    def __init__(
        self, summaries: Mapping[str, DeployedSummary], states: Mapping[str, DeployedState]
    ) -> None:
        self.summaries = dict(summaries)
        self.states = dict(states)

    def __getitem__(self, stream: str) -> DeployedState:
        state = self.states.get(stream)
        if state is not None:
            return state
        if stream in self.summaries:
            raise NotLoaded(f"the state of {stream} was not loaded")
        raise KeyError(stream)

    def __iter__(self) -> Iterator[str]:
        return iter(self.summaries)

    def __len__(self) -> int:
        return len(self.summaries)

    def __contains__(self, stream: object) -> bool:
        return stream in self.summaries

    def loaded(self, state: DeployedState) -> None:
        """Add (or replace) one loaded state, and its summary."""
        self.states[state.stream] = state
        self.summaries[state.stream] = summarize(state)


def summaries_of(deployed: Mapping[str, DeployedState]) -> Iterable[DeployedSummary]:
    """A summary of every function in ``deployed``, without loading an index's states."""
    if isinstance(deployed, DeployedIndex):
        return deployed.summaries.values()
    return (summarize(state) for state in deployed.values())


def summary_of(deployed: Mapping[str, DeployedState], stream: str) -> DeployedSummary | None:
    """The summary of one function of ``deployed`` (None: the log has none)."""
    if isinstance(deployed, DeployedIndex):
        return deployed.summaries.get(stream)
    state = deployed.get(stream)
    return summarize(state) if state is not None else None
