"""The helper the engine and ``glam plan`` call for each commit: Git I/O in one worker thread,
definitions logic from the pure ``engine.definitions.commit`` module."""

from __future__ import annotations

from collections.abc import Callable

from engine.definitions.commit import CommitState, build_commit_state
from engine.git.source import GitSource


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
    the first parent); ``None`` makes every prefix count as changed. ``select(prefix)`` picks
    which prefixes to render (default all); see ``engine.planner.needs_render``.
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
