"""Events of the repository stream ``repo:<id>``: what glam saw in Git and what it planned."""

from __future__ import annotations

from typing import Literal

from engine.events.base import Frozen, RepoEvent

ChangeKind = Literal["added", "modified", "deleted"]
# "remove_alias": an alias the definition no longer names is removed (released by an operator).
ActionKind = Literal["create", "new_version", "settings_only", "delete", "remove_alias", "nothing"]


class FileChange(Frozen):
    """One Lambda definition file a commit added, modified or deleted."""

    path: str
    change: ChangeKind


class CommitObserved(RepoEvent):
    """A new first-parent commit on the watched branch."""

    type: Literal["CommitObserved"] = "CommitObserved"
    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: str  # ISO-8601 with offset, as Git recorded it
    summary: str  # first line of the message
    changes: tuple[FileChange, ...]  # Lambda definition files only


class HistoryRewritten(RepoEvent):
    """The branch head is not a descendant of the last observed commit (force-push)."""

    type: Literal["HistoryRewritten"] = "HistoryRewritten"
    previous: str
    head: str


class SourceUnavailable(RepoEvent):
    """The remote or branch could not be read; nothing is planned, nothing is deleted."""

    type: Literal["SourceUnavailable"] = "SourceUnavailable"
    url: str  # redacted: never holds a token
    branch: str
    reason: str


class PlannedAction(Frozen):
    """What the plan of a commit does about one function prefix, and why."""

    prefix: str
    function: str  # the function stream, fn:<account>:<region>:<name>
    action: ActionKind
    files: tuple[str, ...]
    reason: str
    content_hash: str | None = None


class DefinitionWarning(Frozen):
    """Something in a function's files that is accepted but ignored (a Gitmoxi ECS key)."""

    prefix: str
    file: str
    message: str


class PrefixListing(Frozen):
    """The function prefixes (those with a ``_lambdadef.json``) of a planned commit's tree, as
    a change from the listing recorded by the plan of ``base``: ``added`` and ``removed``
    prefixes. ``base`` None: the listing is complete (``added`` holds every prefix).
    ``refused`` names the prefixes whose Lambda files are not regular files (complete)."""

    base: str | None = None
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    refused: tuple[str, ...] = ()


class CommitPlanned(RepoEvent):
    """The plan of a commit: one action per function prefix it touches (or orphans)."""

    type: Literal["CommitPlanned"] = "CommitPlanned"
    sha: str
    actions: tuple[PlannedAction, ...]
    # What the rendered functions hold that glam accepted but ignores.
    warnings: tuple[DefinitionWarning, ...] = ()
    # Which prefixes the tree holds, so that the next plan lists only what changed since
    # (None in logs of a glam that did not record it: the next plan lists the whole tree).
    listing: PrefixListing | None = None


class DefinitionRejected(RepoEvent):
    """One function prefix of a commit is invalid; the others are planned normally."""

    type: Literal["DefinitionRejected"] = "DefinitionRejected"
    sha: str
    prefix: str
    file: str
    line: int | None = None
    column: int | None = None
    reason: str


class HeldRemoval(Frozen):
    """One removal a plan holds for an operator: a function (``alias`` None) or one alias of
    it, and why (``reason``: "definition deleted", "identity changed", "alias changed")."""

    function: str  # the function stream
    prefix: str
    reason: str
    alias: str | None = None


class DeletesHeld(RepoEvent):
    """A commit would delete more than the allowed share of functions, or remove the old
    identity of a function whose definition still exists (a new region, account, name or
    alias): held until an operator allows it. ``removals`` says what each held removal is
    (empty in logs of a glam that held only mass deletes: then ``prefixes`` says it)."""

    type: Literal["DeletesHeld"] = "DeletesHeld"
    sha: str
    prefixes: tuple[str, ...]
    share: float
    limit: float
    removals: tuple[HeldRemoval, ...] = ()
