"""``GitRepoSource``: the ``RepoSource`` port over a Git repository (a bare mirror, or a local
repository read in place), built from ``GitSource`` and the helpers of ``engine.git.state``.

``GitMirrors`` makes the sources of an engine that watches many branches: the branches of one
repository share one mirror (fetched one at a time, objects stored once)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.definitions.commit import CommitState
from engine.errors import GlamError
from engine.git.source import GitSource, Mirror, TokenSource
from engine.git.state import observe_branch, read_commit_state
from engine.observe import KnownPrefixes, Observation
from engine.redact import repository_id


class GitRepoSource:
    """One branch of the repository at ``url``, mirrored under ``data_dir`` (or in
    ``mirror``, shared with the repository's other branches)."""

    def __init__(
        self,
        url: str,
        branch: str | None = None,
        *,
        data_dir: Path | None = None,
        token_env: str | None = None,
        token: TokenSource | None = None,
        mirror: Mirror | None = None,
    ) -> None:
        self.git = GitSource(
            url, branch, data_dir=data_dir, token_env=token_env, token=token, mirror=mirror
        )

    @property
    def branch(self) -> str | None:
        return self.git.branch

    async def observe(self, last_sha: str | None) -> Observation:
        return await observe_branch(self.git, last_sha)

    async def commit_state(
        self,
        sha: str,
        *,
        base: str | None,
        select: Callable[[str], bool] | None = None,
        known: KnownPrefixes | None = None,
        first: tuple[str, ...] = (),
    ) -> CommitState:
        return await read_commit_state(
            self.git, sha, base=base, select=select, known=known, first=first
        )

    async def has_commit(self, sha: str) -> bool:
        try:
            await self.git.run(lambda: self.git.commit_info(sha))
        except (KeyError, GlamError):
            return False
        return True

    async def aclose(self) -> None:
        await self.git.aclose()


class GitMirrors:
    """Sources for many branches of many repositories under one data folder, one mirror per
    repository (by ``engine.redact.repository_id``)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._mirrors: dict[str, Mirror] = {}

    def source(
        self,
        url: str,
        branch: str | None,
        *,
        token_env: str | None = None,
        token: TokenSource | None = None,
    ) -> GitRepoSource:
        """The source of ``branch`` of ``url``, on the repository's shared mirror."""
        identity = repository_id(url)
        mirror = self._mirrors.get(identity)
        if mirror is None:
            mirror = self._mirrors[identity] = Mirror(url, data_dir=self.data_dir)
        return GitRepoSource(url, branch, token_env=token_env, token=token, mirror=mirror)
