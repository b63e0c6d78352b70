"""The repositories added through the API, folded from the ``repositories`` stream, and the
rules a new one must meet before it is recorded.

    registry = fold_registry(records)                  {repository_id: Registered}
    event = decide_add(url, branches, token)           RepositoryAdded, or ValueError
    event = decide_remove(registry, url)               RepositoryRemoved, or LookupError

Pure: the engine reads the stream at start and appends what these say, and watches every
branch of every repository left added beside the configuration file's (``Registered.settings``
is the entry the file would have for it), so a repository added before a restart is watched
after it. A new one is checked by the configuration file's own rules (``RepositorySettings``:
no credentials in the URL, valid branch names, a token only by reference, and only for
https), so its token reference resolves exactly as one written in the file.

Two URLs name the same repository when their ``repository_id`` is equal
(``engine.redact``). ``repository_key`` is a looser match, for the URLs a request or a push
names: the identity without its scheme, in lower case, so ``https://github.com/Acme/Lambdas``
and ``git@github.com:acme/lambdas.git`` find the same watched repository.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from engine.config.model import RepositorySettings
from engine.events import RecordedEvent
from engine.events.registry import RepositoryAdded, RepositoryRemoved
from engine.redact import redact_url, repository_id


@dataclass(frozen=True, slots=True)
class Registered:
    """A repository added through the API, as its last ``RepositoryAdded`` says."""

    url: str
    branches: tuple[str, ...]
    token: str | None
    actor: str

    @property
    def settings(self) -> RepositorySettings:
        """The configuration file's entry for it."""
        return RepositorySettings(url=self.url, branches=self.branches, token=self.token)


def repository_key(url: str) -> str:
    """What two forms of one repository's URL share (see the module docstring)."""
    identity = repository_id(url)
    return identity.split("://", 1)[-1].lower()


def fold_registry(records: Iterable[RecordedEvent]) -> dict[str, Registered]:
    """The repositories the ``repositories`` stream leaves added, by ``repository_id``."""
    out: dict[str, Registered] = {}
    for record in records:
        event = record.event
        if isinstance(event, RepositoryAdded):
            out[repository_id(event.url)] = Registered(
                event.url, event.branches, event.token, record.meta.actor
            )
        elif isinstance(event, RepositoryRemoved):
            out.pop(repository_id(event.url), None)
    return out


def decide_add(url: str, branches: Sequence[str], token: str | None) -> RepositoryAdded:
    """The event that adds ``url``; ``ValueError`` saying what is wrong with the request."""
    url = url.strip() if isinstance(url, str) else url
    if not url:
        raise ValueError("repo_url is required")
    if redact_url(url) != url:
        raise ValueError(
            "repo_url must not hold credentials: put the token in Secrets Manager, SSM or an "
            "environment variable and name it in access_token_arn"
        )
    try:
        settings = RepositorySettings(url=url, branches=tuple(branches), token=token or None)
    except ValidationError as exc:
        raise ValueError(
            "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        ) from None
    return RepositoryAdded(url=url, branches=settings.branches, token=settings.token)


def decide_remove(registry: dict[str, Registered], url: str) -> RepositoryRemoved:
    """The event that removes ``url``; ``LookupError`` when it was not added."""
    found = registry.get(repository_id(url))
    if found is None:
        raise LookupError(f"{redact_url(url)} was not added through the API")
    return RepositoryRemoved(url=found.url)
