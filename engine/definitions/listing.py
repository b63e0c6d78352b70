"""Listing a commit's function prefixes from what changed since the last planned commit.

Pure. Listing a whole tree costs every folder of the repository; a plan needs only the set of
prefixes and the files of those it renders. The plan of each commit records its prefixes
(``CommitPlanned.listing``: complete, or as a change from the plan before), so the next plan
takes that set, applies the tree diff from the planned commit (which never descends into a
subtree whose hash is unchanged) and reads only the folders of the prefixes it renders:

    known = fold_listing(known, sha, event.listing)      # engine.observe: the repo stream
    listing = list_changed(sha, known, entries, files_of=..., select=...)

``list_changed`` returns None whenever it cannot be sure of giving the listing a whole-tree
walk gives (``engine.definitions.commit.list_commit``): a changed Lambda file that is not a
regular file, a path that is not valid UTF-8, a rendered prefix whose files disagree with the
known set. The caller then lists the whole tree. Which prefixes exist does not depend on the
render limits or on any file's content, only on the names in the tree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from engine.definitions.commit import Listing, changes_by_prefix
from engine.definitions.desired import FileKind, split_path
from engine.events.repo import ChangeKind, FileChange, PrefixListing
from engine.observe import KnownPrefixes, plain_path


@dataclass(frozen=True, slots=True)
class ChangedEntry:
    """One Lambda file the tree diff reports; ``regular``: a regular file on both sides that
    have it, with a name that is valid UTF-8 (``decoded``)."""

    path: str
    change: ChangeKind
    regular: bool = True


def list_changed(
    sha: str,
    known: KnownPrefixes,
    entries: Iterable[ChangedEntry],
    *,
    files_of: Callable[[str], tuple[Mapping[FileKind, str], bool]],
    select: Callable[[str], bool],
) -> Listing | None:
    """The listing of ``sha`` from ``known`` (its base's) and the Lambda files changed since,
    as ``list_commit`` would make it from the whole tree, or None when only the whole tree can
    tell. ``files_of(prefix)`` reads the prefix's folder in ``sha``: its Lambda files by kind
    and whether one of them is refused (not a regular file)."""
    changes: list[FileChange] = []
    added: set[str] = set()
    removed: set[str] = set()
    for entry in entries:
        if not entry.regular or not plain_path(entry.path):
            return None
        split = split_path(entry.path)
        if split is None:
            continue
        changes.append(FileChange(path=entry.path, change=entry.change))
        prefix, kind = split
        if kind == "def" and entry.change == "added" and prefix not in known.prefixes:
            added.add(prefix)
        elif kind == "def" and entry.change == "deleted" and prefix in known.prefixes:
            removed.add(prefix)
    prefixes = (known.prefixes - removed) | added if added or removed else known.prefixes
    by_prefix = changes_by_prefix(changes)
    render = sorted(p for p in prefixes if p in by_prefix or select(p))
    groups: dict[str, Mapping[FileKind, str]] = {}
    for prefix in render:
        files, refused = files_of(prefix)
        if refused or "def" not in files:
            return None  # the known set disagrees with the tree, or a file must be refused
        groups[prefix] = files
    record = PrefixListing(
        base=known.sha, added=tuple(sorted(added)), removed=tuple(sorted(removed))
    )
    return Listing(
        sha=sha,
        groups=groups,
        prefixes=prefixes,
        changes=by_prefix,
        render=tuple(render),
        refused={},
        record=record,
    )
