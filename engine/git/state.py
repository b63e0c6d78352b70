"""The helper the engine and ``glam plan`` call for each commit: Git I/O in one worker thread,
definitions logic from the pure ``engine.definitions.commit`` module."""

from __future__ import annotations

from collections.abc import Callable

from engine.definitions.commit import CommitState, build_commit_state
from engine.errors import SourceError, SourceUnreachable
from engine.git.source import GitSource
from engine.observe import Fetched, Observation, ObservedCommit, Unavailable


async def read_commit_state(
    source: GitSource,
    sha: str,
    *,
    base: str | None,
    select: Callable[[str], bool] | None = None,
    keep_rendered: bool = False,
) -> CommitState:
    """The desired states of commit ``sha``.

    ``base`` is the commit the changes are measured from (the last planned or observed one, or
    the first parent); ``None`` makes every prefix count as changed. Changed prefixes are always
    rendered; ``select(prefix)`` picks which unchanged ones to render too (default: all). Pass
    ``engine.planner.render_filter(deployed)`` to skip prefixes the log already has deployed.
    """

    def work() -> CommitState:
        snapshot = source.snapshot(sha)
        changes = source.changes_blocking(base, sha) if base is not None else None
        return build_commit_state(
            sha,
            snapshot.lambda_files(),
            snapshot,
            changes=changes,
            select=select,
            keep_rendered=keep_rendered,
        )

    return await source.run(work)


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

    return await source.run(work)


def _has(source: GitSource, sha: str) -> bool:
    try:
        source.commit_info(sha)
    except (KeyError, SourceError):
        return False
    return True
