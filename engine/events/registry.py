"""Events of the ``repositories`` stream: repositories added to the engine while it runs
(Gitmoxi's ``POST /repositories/add``) and removed again, so that the set of watched
repositories survives a restart like everything else the engine knows.

A repository added here is watched as if the configuration file listed it: each of its
branches gets a repository loop, and its token is read by reference at each fetch. The
configuration file's repositories are not recorded here: the file stays their source.
"""

from __future__ import annotations

from typing import Literal

from engine.events.base import RepoEvent

REPOSITORIES_STREAM = "repositories"  # the one stream of repositories added through the API


class RepositoryAdded(RepoEvent):
    """A repository to watch (added again: these branches and token replace the earlier
    ones). ``url`` never holds credentials; ``branches`` empty means its default branch;
    ``token`` is where its HTTPS token is (an environment variable's name, a Secrets Manager
    or SSM Parameter Store ARN), never the token. The actor is in the metadata."""

    type: Literal["RepositoryAdded"] = "RepositoryAdded"
    url: str
    branches: tuple[str, ...] = ()
    token: str | None = None


class RepositoryRemoved(RepoEvent):
    """The repository is no longer watched. Its functions stay as they are: removing a
    repository deletes nothing."""

    type: Literal["RepositoryRemoved"] = "RepositoryRemoved"
    url: str
