"""The helpers the engine and ``glam plan`` call for each commit: Git I/O in one worker thread,
rendering in the render worker processes (``engine.git.render``), definitions logic from the
pure ``engine.definitions.commit`` module."""

from __future__ import annotations

from collections.abc import Callable

from engine.definitions.commit import CommitState, Listing, assemble, list_commit
from engine.definitions.desired import FileKind, split_path
from engine.definitions.limits import RenderLimits
from engine.definitions.listing import list_changed
from engine.errors import SourceError, SourceUnreachable
from engine.events.repo import DefinitionWarning
from engine.git.render import Job, jobs_of, pool_for, render_listing
from engine.git.snapshot import Snapshot
from engine.git.source import GitSource
from engine.logs import get_logger
from engine.observe import Fetched, KnownPrefixes, Observation, ObservedCommit, Unavailable

log = get_logger("definitions")


def log_warning(warning: DefinitionWarning) -> None:
    log.warning("%s: %s", warning.file, warning.message)


async def read_commit_state(
    source: GitSource,
    sha: str,
    *,
    base: str | None,
    select: Callable[[str], bool] | None = None,
    keep_rendered: bool = False,
    limits: RenderLimits | None = None,
    warn: Callable[[DefinitionWarning], None] | None = log_warning,
    known: KnownPrefixes | None = None,
    first: tuple[str, ...] = (),
) -> CommitState:
    """The desired states of commit ``sha``.

    ``base`` is the commit the changes are measured from (the last planned or observed one, or
    the first parent); ``None`` makes every prefix count as changed. Changed prefixes are always
    rendered; ``select(prefix)`` picks which unchanged ones to render too (default: all). Pass
    ``engine.planner.render_filter(deployed)`` to skip prefixes the log already has deployed.

    Rendering runs in worker processes under ``limits`` (default: ``RenderLimits.from_env()``);
    a function that passes one is rejected alone. ``warn`` sees each warning (default: logged).

    ``known``: the prefixes of ``base``'s tree as its plan recorded them (``RepoState.known``).
    With it (and a ``select``), only the folders the diff from ``base`` reaches and those of
    the prefixes rendered are read (``engine.definitions.listing``); without it, or when the
    changes need it, the whole tree is listed. ``first``: prefixes rendered before the others,
    in its order, so that those a plan had no render time for are not starved by the same
    slow ones again.
    """
    limits = limits or RenderLimits.from_env()
    pool = pool_for(limits)

    def work() -> tuple[Listing, str, list[Job]]:
        pool.prestart()  # a first start overlaps the listing
        snapshot = source.snapshot(sha)
        listing = None
        if known is not None and base is not None and known.sha == base and select is not None:
            listing = _list_changed(source, snapshot, known, select)
        if listing is None:
            changes = source.changes_blocking(base, sha) if base is not None else None
            files = snapshot.lambda_files()
            listing = list_commit(
                sha, files, changes=changes, select=select, refused=snapshot.refused
            )
        jobs = jobs_of(listing, snapshot.entry)
        rank = {prefix: i for i, prefix in enumerate(first)}
        jobs.sort(key=lambda job: rank.get(job.prefix, len(rank)))  # stable: in order otherwise
        return listing, source.repo_path, jobs

    listing, repo_path, jobs = await source.run(work)
    outcomes = await render_listing(pool, repo_path, listing, jobs, keep_rendered=keep_rendered)
    state = assemble(listing, outcomes)
    if warn is not None:
        for warning in state.warnings:
            warn(warning)
    return state


def _list_changed(
    source: GitSource, snapshot: Snapshot, known: KnownPrefixes, select: Callable[[str], bool]
) -> Listing | None:
    """The listing of ``snapshot`` from ``known`` and the diff, reading only the folders of
    the prefixes rendered (None: list the whole tree)."""
    folders: dict[str, tuple[list[str], dict[str, str]]] = {}

    def files_of(prefix: str) -> tuple[dict[FileKind, str], bool]:
        folder = prefix.rpartition("/")[0]
        if folder not in folders:
            folders[folder] = snapshot.folder_files(folder)
        files, refused = folders[folder]
        own = {
            split[1]: path for path in files if (split := split_path(path)) and split[0] == prefix
        }
        return own, any((split := split_path(p)) and split[0] == prefix for p in refused)

    entries = source.entries_blocking(known.sha, snapshot.sha)
    return list_changed(snapshot.sha, known, entries, files_of=files_of, select=select)


async def observe_branch(source: GitSource, last_sha: str | None) -> Observation:
    """One poll: fetch, then the new first-parent commits since ``last_sha`` with their
    Lambda file changes, or ``Unavailable`` when the remote or branch cannot be read."""
    try:
        head = await source.sync()
    except SourceUnreachable as exc:
        return Unavailable(reason=exc.message)

    def work() -> Fetched:
        log = source.log_blocking(last_sha, head)
        commits = []
        for c in log.commits:
            if log.rewritten:
                # Measure the rewrite against what was observed before, if the mirror still
                # has it; otherwise everything in the head's tree counts as added.
                base = last_sha if last_sha is not None and _has(source, last_sha) else None
            else:
                base = c.parents[0] if c.parents else None
            commits.append(
                ObservedCommit(
                    sha=c.sha,
                    parents=c.parents,
                    author=c.author,
                    committed_at=c.committed_at,
                    summary=c.summary,
                    changes=source.changes_blocking(base, c.sha),
                )
            )
        return Fetched(head=head, commits=tuple(commits), rewritten=log.rewritten)

    try:
        return await source.run(work)
    except SourceUnreachable as exc:  # e.g. a commit missing from the copy: read again next poll
        return Unavailable(reason=exc.message)


def _has(source: GitSource, sha: str) -> bool:
    try:
        source.commit_info(sha)
    except (KeyError, SourceError):
        return False
    return True
