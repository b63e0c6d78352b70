"""The repositories added through the API, folded from the ``repositories`` stream, and the
rules a new one must meet before it is recorded.

    registry = fold_registry(records)               {repository key: Registered}
    event = decide_add(registry, url, branches, token)    RepositoryAdded, or ValueError
    event = decide_remove(registry, url)                   RepositoryRemoved, or LookupError

Pure: the server reads the stream and appends what these say; the engine folds the same
stream at start, so a repository added before a restart is watched after it.

Two URLs name the same repository when their ``repository_key`` is equal: scheme,
credentials, a trailing ``.git`` or slash and letter case do not count
(``https://github.com/Acme/Lambdas.git`` and ``git@github.com:acme/lambdas`` are one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from engine.events import RecordedEvent
from engine.events.registry import RepositoryAdded, RepositoryRemoved
from engine.redact import redact_url

_BRANCH_BAD = re.compile(r"(^[/.-])|(\.\.)|([\s~^:?*\[\\])|(/$)|(\.lock$)|(@\{)")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ARN = re.compile(
    r"^arn:aws[a-z-]*:(secretsmanager:[a-z0-9-]+:\d{12}:secret:.+"
    r"|ssm:[a-z0-9-]+:\d{12}:parameter/.+)$"
)


@dataclass(frozen=True, slots=True)
class Registered:
    """A repository added through the API, as its last ``RepositoryAdded`` says."""

    url: str
    branches: tuple[str, ...]
    token: str | None
    actor: str


def repository_key(url: str) -> str:
    """What two forms of one repository's URL share (see the module docstring)."""
    text = redact_url(url.strip()).lower()
    if "://" in text:
        text = text.split("://", 1)[1]
    elif "@" in text and ":" in text:  # scp-like: git@github.com:owner/name.git
        text = text.split("@", 1)[1].replace(":", "/", 1)
    head = text.split("/", 1)[0]
    if "@" in head:  # user@host left by a scheme URL
        text = text.split("@", 1)[1]
    text = text.rstrip("/").removesuffix(".git")
    host, _, path = text.partition("/")
    return f"{host.split(':', 1)[0]}/{path}" if path else host


def fold_registry(records: Iterable[RecordedEvent]) -> dict[str, Registered]:
    """The repositories the ``repositories`` stream leaves added, by ``repository_key``."""
    out: dict[str, Registered] = {}
    for record in records:
        event = record.event
        if isinstance(event, RepositoryAdded):
            out[repository_key(event.url)] = Registered(
                event.url, event.branches, event.token, record.meta.actor
            )
        elif isinstance(event, RepositoryRemoved):
            out.pop(repository_key(event.url), None)
    return out


def check_token_ref(text: str) -> str:
    """``text`` if it names a token the way Gitmoxi's ``access_token_arn`` does: a Secrets
    Manager secret's or SSM parameter's ARN, or an environment variable's name."""
    if _ARN.match(text) or _ENV_NAME.match(text):
        return text
    raise ValueError(
        f"{text!r} is not a Secrets Manager or SSM Parameter Store ARN, nor the name of an "
        "environment variable"
    )


def decide_add(url: str, branches: Sequence[str], token: str | None) -> RepositoryAdded:
    """The event that adds ``url``; ``ValueError`` saying what is wrong with the request."""
    url = url.strip()
    if not url:
        raise ValueError("repo_url is required")
    if redact_url(url) != url:
        raise ValueError(
            "repo_url must not hold credentials: put the token in Secrets Manager, SSM or an "
            "environment variable and name it in access_token_arn"
        )
    seen: list[str] = []
    for branch in branches:
        if not isinstance(branch, str) or not branch or _BRANCH_BAD.search(branch):
            raise ValueError(f"{branch!r} is not a valid branch name")
        if branch in seen:
            raise ValueError(f"branch {branch!r} is listed twice")
        seen.append(branch)
    if token is not None and token != "":
        check_token_ref(token)
        if not url.lower().startswith(("http://", "https://")):
            raise ValueError("access_token_arn is used only for an https:// repository")
    return RepositoryAdded(url=url, branches=tuple(seen), token=token or None)


def decide_remove(registry: dict[str, Registered], url: str) -> RepositoryRemoved:
    """The event that removes ``url``; ``LookupError`` when it was not added."""
    found = registry.get(repository_key(url))
    if found is None:
        raise LookupError(f"{redact_url(url)} was not added through the API")
    return RepositoryRemoved(url=found.url)
