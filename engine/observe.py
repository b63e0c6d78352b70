"""Observation of the watched branch: a pure decider over the repository stream.

    state   = fold(evolve_repo, repo stream events)
    events  = decide_observation(state, observation, url=..., branch=...)

An observation is what one poll saw (``engine.git.state.observe_branch`` makes it): either the
source was unavailable, or the head and the first-parent commits since the last observed one.
Unavailable never means "delete everything": it records ``SourceUnavailable`` once per outage
and plans nothing. A head that does not descend from the last observed commit records
``HistoryRewritten`` and then the head itself, whose tree becomes the desired state.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from engine.definitions.limits import NOT_RENDERED
from engine.events.catalog import Event
from engine.events.repo import (
    CommitObserved,
    CommitPlanned,
    DefinitionRejected,
    FileChange,
    HistoryRewritten,
    PrefixListing,
    SourceUnavailable,
)
from engine.redact import redact_url


@dataclass(frozen=True, slots=True)
class KnownPrefixes:
    """The prefixes of commit ``sha``'s tree, as its plan recorded them."""

    sha: str
    prefixes: frozenset[str]


def plain_path(path: str) -> bool:
    # A backslash is how a name that is not UTF-8 reads (and could collide with one that is):
    # such trees are listed whole, where collisions are detected.
    return "\\" not in path


def fold_listing(
    known: KnownPrefixes | None, sha: str, listing: PrefixListing | None
) -> KnownPrefixes | None:
    """The prefixes of ``sha`` after its plan recorded ``listing`` (None: not known)."""
    if listing is None or listing.refused:
        return None  # refused files are re-examined by a whole listing
    if listing.base is None:
        base: frozenset[str] = frozenset()
    elif known is not None and known.sha == listing.base:
        base = known.prefixes
    else:
        return None  # a change from a listing this fold does not have
    if not all(plain_path(p) for p in listing.added):
        return None
    if not listing.removed and not listing.added and listing.base is not None:
        return KnownPrefixes(sha, base)
    return KnownPrefixes(sha, (base - frozenset(listing.removed)) | frozenset(listing.added))


@dataclass(frozen=True, slots=True)
class RepoState:
    """What the repository stream says: the last observed and planned commits."""

    last_sha: str | None = None
    last_planned: str | None = None
    unavailable: bool = False
    # The prefixes of the last planned commit's tree, as its plan recorded them (None: a
    # plan that did not record them; the next plan lists the whole tree).
    known: KnownPrefixes | None = None
    # Prefixes the last plan could not render for want of the commit's render time
    # (``NOT_RENDERED``), longest waiting first: nothing is known against them, so the next
    # plan renders them again, even with no new commit, and first, so that slow templates
    # cannot starve the same function plan after plan.
    unrendered: tuple[str, ...] = ()
    waited: tuple[str, ...] = ()  # while a plan's events fold: the plan before's unrendered


@dataclass(frozen=True, slots=True)
class ObservedCommit:
    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: str
    summary: str
    changes: tuple[FileChange, ...]  # Lambda files changed against the first parent


@dataclass(frozen=True, slots=True)
class Unavailable:
    reason: str


@dataclass(frozen=True, slots=True)
class Fetched:
    """The head and the new first-parent commits (oldest first). ``rewritten``: the head is
    not a descendant of the last observed commit, ``commits`` is then the head alone."""

    head: str
    commits: tuple[ObservedCommit, ...]
    rewritten: bool = False


Observation = Unavailable | Fetched


def initial_repo_state() -> RepoState:
    return RepoState()


def evolve_repo(state: RepoState, event: Event) -> RepoState:
    match event:
        case CommitObserved(sha=sha):
            return replace(state, last_sha=sha, unavailable=False)
        case HistoryRewritten(head=head):
            return replace(state, last_sha=None, unavailable=False) if head else state
        case SourceUnavailable():
            return replace(state, unavailable=True)
        case CommitPlanned(sha=sha, listing=listing):
            known = fold_listing(state.known, sha, listing)
            return replace(
                state, last_planned=sha, known=known, unrendered=(), waited=state.unrendered
            )
        case DefinitionRejected(sha=sha, prefix=prefix, reason=reason):
            if sha != state.last_planned or not reason.startswith(NOT_RENDERED):
                return state
            waited = state.waited
            rank = {p: i for i, p in enumerate(waited)}
            unrendered = sorted(
                {*state.unrendered, prefix}, key=lambda p: (rank.get(p, len(waited)), p)
            )
            return replace(state, unrendered=tuple(unrendered))
        case _:
            return state


def decide_observation(
    state: RepoState, observation: Observation, *, url: str, branch: str
) -> list[Event]:
    """The events one poll adds to the repository stream."""
    match observation:
        case Unavailable(reason=reason):
            if state.unavailable:
                return []  # one event per outage, not one per poll
            return [SourceUnavailable(url=redact_url(url), branch=branch, reason=reason)]
        case Fetched(head=head, commits=commits, rewritten=rewritten):
            if head == state.last_sha and not rewritten:
                return []
            events: list[Event] = []
            if rewritten and state.last_sha is not None:
                events.append(HistoryRewritten(previous=state.last_sha, head=head))
            events.extend(
                CommitObserved(
                    sha=c.sha,
                    parents=c.parents,
                    author=c.author,
                    committed_at=c.committed_at,
                    summary=c.summary,
                    changes=c.changes,
                )
                for c in commits
            )
            return events


def plan_base(state: RepoState, observation: Fetched) -> str | None:
    """The commit to measure the head's changes from: the last planned one.

    Also after a rewrite: the old commit's objects stay in the mirror, so the tree diff tells
    exactly what differs. ``None`` (every prefix counts as changed, so every one is rendered
    and compared with what is deployed) when the stream never planned a commit: a new branch,
    another URL or clone of a repository the log knows, or a crash between observing and
    planning. Measuring from the commit just observed would make the change set empty and
    skip every change the log has not deployed.
    """
    return state.last_planned
