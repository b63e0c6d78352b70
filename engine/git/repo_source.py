"""``GitRepoSource``: the ``RepoSource`` port over a Git repository (a bare mirror, or a local
repository read in place), built from ``GitSource`` and the helpers of ``engine.git.state``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.definitions.commit import CommitState
from engine.errors import GlamError
from engine.git.source import GitSource
from engine.git.state import observe_branch, read_commit_state
from engine.observe import Observation


class GitRepoSource:
    """One branch of the repository at ``url``, mirrored under ``data_dir``."""

    def __init__(
        self,
        url: str,
        branch: str | None = None,
        *,
        data_dir: Path | None = None,
        token_env: str | None = None,
    ) -> None:
        self.git = GitSource(url, branch, data_dir=data_dir, token_env=token_env)

    @property
    def branch(self) -> str | None:
        return self.git.branch

    async def observe(self, last_sha: str | None) -> Observation:
        return await observe_branch(self.git, last_sha)

    async def commit_state(
        self, sha: str, *, base: str | None, select: Callable[[str], bool] | None = None
    ) -> CommitState:
        return await read_commit_state(self.git, sha, base=base, select=select)

    async def has_commit(self, sha: str) -> bool:
        try:
            await self.git.run(lambda: self.git.commit_info(sha))
        except (KeyError, GlamError):
            return False
        return True

    async def aclose(self) -> None:
        await self.git.aclose()
