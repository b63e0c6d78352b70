"""One commit's desired states: every function prefix of its tree, rendered and validated.

Pure: the files come in through ``RepoFiles`` and a file list. Three steps, so that the render
step can run somewhere else (``engine.git.render`` runs it in worker processes):

    list_commit      which prefixes exist, which changed, which need rendering, and which
                     are refused before any file is read (a symlinked definition file, two
                     paths that read the same)
    render_prefix    one prefix read, rendered and validated; never raises for bad input
    assemble         the outcomes into a ``CommitState``

Rendering is the expensive part, so the caller may name which prefixes need it (those a commit
changed, and those the log does not know yet); the others are listed in ``prefixes`` only,
which is enough to plan "nothing". ``build_commit_state`` does all three in this process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from engine.definitions.desired import FileKind, build_desired, group_files, split_path
from engine.definitions.inputs import RepoFiles
from engine.definitions.limits import RenderLimits
from engine.definitions.templates import DEFAULT_LIMITS
from engine.errors import DefinitionError, GlamError
from engine.events.desired import DesiredFunction
from engine.events.repo import DefinitionWarning, FileChange, PrefixListing

log = logging.getLogger("glam.definitions")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one function prefix of a commit is invalid."""

    prefix: str
    file: str
    reason: str
    line: int | None = None
    column: int | None = None
    hint: str | None = None

    def one_line(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.reason}" + (f" — {self.hint}" if self.hint else "")

    @classmethod
    def of(cls, prefix: str, exc: DefinitionError, default_file: str) -> Rejection:
        return cls(
            prefix=prefix,
            file=exc.file or default_file,
            reason=exc.reason,
            line=exc.line,
            column=exc.column,
            hint=exc.hint,
        )


@dataclass(frozen=True, slots=True)
class CommitState:
    """What one commit asks for.

    ``prefixes`` holds every prefix with a ``_lambdadef.json`` in the tree; ``desired`` and
    ``rejected`` cover the prefixes that were rendered (and those refused without rendering).
    ``changes`` are the Lambda files changed since the base commit, grouped by prefix; ``None``
    means there is no base (first run or rewritten history), so every prefix counts as changed.
    """

    sha: str
    prefixes: frozenset[str]
    desired: Mapping[str, DesiredFunction]
    rejected: Mapping[str, Rejection]
    changes: Mapping[str, tuple[FileChange, ...]] | None
    rendered: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[DefinitionWarning, ...] = ()
    # Its prefixes as its plan records them (``CommitPlanned.listing``).
    listing: PrefixListing | None = None

    def changes_of(self, prefix: str) -> tuple[FileChange, ...]:
        if self.changes is None:
            return ()
        return self.changes.get(prefix, ())


def changes_by_prefix(changes: Iterable[FileChange]) -> dict[str, tuple[FileChange, ...]]:
    out: dict[str, list[FileChange]] = {}
    for change in changes:
        split = split_path(change.path)
        if split is not None:
            out.setdefault(split[0], []).append(change)
    return {prefix: tuple(items) for prefix, items in out.items()}


@dataclass(frozen=True, slots=True)
class Listing:
    """A commit's function prefixes before anything is read: ``render`` names those to render
    (in order), ``refused`` those rejected already."""

    sha: str
    groups: Mapping[str, Mapping[FileKind, str]]
    prefixes: frozenset[str]
    changes: Mapping[str, tuple[FileChange, ...]] | None
    render: tuple[str, ...]
    refused: Mapping[str, Rejection]
    # What the plan records of it (``engine.definitions.listing``); None: make it complete.
    record: PrefixListing | None = None


def list_commit(
    sha: str,
    lambda_files: Iterable[str],
    *,
    changes: Iterable[FileChange] | None,
    select: Callable[[str], bool] | None = None,
    refused: Mapping[str, str] | None = None,
) -> Listing:
    """The prefixes of a commit and which of them to render: those the changes touch plus those
    ``select`` picks (all when ``select`` is ``None``). ``refused`` maps Lambda file paths that
    must not be read (symlinks, colliding names) to why: their prefix is rejected, and a
    refused ``_lambdadef.json`` still counts as present, so it is never read as deleted."""
    refused = refused or {}
    groups = group_files(lambda_files)
    for path in refused:
        split = split_path(path)
        if split is not None:
            groups.setdefault(split[0], {}).setdefault(split[1], path)
    by_prefix = changes_by_prefix(changes) if changes is not None else None
    prefixes = frozenset(p for p, files in groups.items() if "def" in files)
    rejected: dict[str, Rejection] = {}
    for path, reason in sorted(refused.items()):
        split = split_path(path)
        if split is not None and split[0] in prefixes and split[0] not in rejected:
            rejected[split[0]] = Rejection(
                prefix=split[0],
                file=path,
                reason=reason,
                hint="definition files must be regular files; the function is left as it is",
            )
    render = []
    for prefix in sorted(prefixes):
        if prefix in rejected:
            continue
        changed = by_prefix is None or prefix in by_prefix
        if select is not None and not changed and not select(prefix):
            continue
        render.append(prefix)
    return Listing(
        sha=sha,
        groups=groups,
        prefixes=prefixes,
        changes=by_prefix,
        render=tuple(render),
        refused=rejected,
    )


@dataclass(frozen=True, slots=True)
class PrefixOutcome:
    """One prefix rendered: its desired state or why it is rejected, and what it warns of."""

    prefix: str
    desired: DesiredFunction | None = None
    rejection: Rejection | None = None
    warnings: tuple[DefinitionWarning, ...] = ()
    rendered: Mapping[str, str] = field(default_factory=dict)


def render_prefix(
    prefix: str,
    files: Mapping[FileKind, str],
    repo: RepoFiles,
    *,
    ref_cache: MutableMapping[tuple[str, str], dict[str, Any]] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
    keep_rendered: bool = False,
    on_file: Callable[[str], None] | None = None,
) -> PrefixOutcome:
    """Read, render and validate one prefix. Bad input never raises: whatever a file makes go
    wrong rejects this prefix alone (an error that is not a ``DefinitionError`` is a gap in
    glam's checks, logged as such, and still only rejects the prefix)."""
    rendered: dict[str, str] = {}
    notes: list[tuple[str, str]] = []
    current = {"file": files.get("def", prefix)}

    def track(path: str) -> None:
        current["file"] = path
        if on_file is not None:
            on_file(path)

    try:
        desired = build_desired(
            prefix,
            files,
            repo,
            ref_cache=ref_cache,
            rendered=rendered if keep_rendered else None,
            limits=limits,
            warnings=notes,
            on_file=track,
        )
    except DefinitionError as exc:
        return PrefixOutcome(prefix, rejection=Rejection.of(prefix, exc, files.get("def", "")))
    except GlamError:
        raise  # the repository could not be read: not this prefix's fault
    except RecursionError:
        reason = "nested too deeply to read (Python's recursion limit)"
        return PrefixOutcome(prefix, rejection=_rejected(prefix, current["file"], reason))
    except MemoryError:
        reason = "ran out of memory while reading it"
        return PrefixOutcome(prefix, rejection=_rejected(prefix, current["file"], reason))
    except Exception as exc:
        log.exception("%s: unexpected error while reading %s", prefix, current["file"])
        reason = f"could not be read: {type(exc).__name__}: {str(exc)[:200]}"
        return PrefixOutcome(prefix, rejection=_rejected(prefix, current["file"], reason))
    warnings = tuple(DefinitionWarning(prefix=prefix, file=f, message=m) for f, m in notes)
    return PrefixOutcome(prefix, desired=desired, warnings=warnings, rendered=rendered)


def _rejected(prefix: str, file: str, reason: str) -> Rejection:
    return Rejection(prefix=prefix, file=file, reason=reason, hint="fix the file")


def assemble(listing: Listing, outcomes: Iterable[PrefixOutcome]) -> CommitState:
    """The ``CommitState`` of a listing and the outcomes of the prefixes it rendered."""
    desired: dict[str, DesiredFunction] = {}
    rejected: dict[str, Rejection] = dict(listing.refused)
    rendered: dict[str, str] = {}
    warnings: list[DefinitionWarning] = []
    for outcome in outcomes:
        if outcome.rejection is not None:
            rejected[outcome.prefix] = outcome.rejection
        elif outcome.desired is not None:
            desired[outcome.prefix] = outcome.desired
        rendered.update(outcome.rendered)
        warnings.extend(outcome.warnings)
    return CommitState(
        sha=listing.sha,
        prefixes=listing.prefixes,
        desired=desired,
        rejected=rejected,
        changes=listing.changes,
        rendered=rendered,
        warnings=tuple(sorted(warnings, key=lambda w: (w.prefix, w.file, w.message))),
        listing=listing.record
        if listing.record is not None
        else PrefixListing(
            added=tuple(sorted(listing.prefixes)), refused=tuple(sorted(listing.refused))
        ),
    )


def build_commit_state(
    sha: str,
    lambda_files: Iterable[str],
    repo: RepoFiles,
    *,
    changes: Iterable[FileChange] | None,
    select: Callable[[str], bool] | None = None,
    keep_rendered: bool = False,
    refused: Mapping[str, str] | None = None,
    limits: RenderLimits = DEFAULT_LIMITS,
) -> CommitState:
    """List, render and validate a commit in this process, with the sandbox's limits only
    (the engine renders through ``engine.git.render`` instead). A prefix whose files are
    invalid is rejected alone; the others are unaffected."""
    listing = list_commit(sha, lambda_files, changes=changes, select=select, refused=refused)
    ref_cache: dict[tuple[str, str], dict[str, Any]] = {}
    outcomes = [
        render_prefix(
            prefix,
            listing.groups[prefix],
            repo,
            ref_cache=ref_cache,
            limits=limits,
            keep_rendered=keep_rendered,
        )
        for prefix in listing.render
    ]
    return assemble(listing, outcomes)
