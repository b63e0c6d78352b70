"""Stream names: the one place that decides how a function or a repository is named in the log.

A function's stream is ``fn:<account>:<region>:<name>``, so the same function
name deployed to two regions or accounts has two independent histories. A repository's stream
is ``repo:<repository id>#<branch>``, the id being ``engine.redact.repository_id`` of its URL:
credentials dropped (a token never reaches the log) and the address normalised, so another
form of the same URL names the same stream. Streams an earlier glam named from the redacted
URL as given are read through the same function (``repo_key``), so they name the same branch.
"""

from __future__ import annotations

from engine.redact import repository_id

FUNCTION_PREFIX = "fn:"
REPO_PREFIX = "repo:"


def function_stream(account: str, region: str, name: str) -> str:
    """``fn:<account>:<region>:<name>``, the stream of one Lambda function."""
    return f"{FUNCTION_PREFIX}{account}:{region}:{name}"


def parse_function_stream(stream: str) -> tuple[str, str, str]:
    """``(account, region, name)`` of a function stream; ``ValueError`` if it is not one."""
    parts = stream[len(FUNCTION_PREFIX) :].split(":", 2)
    if not stream.startswith(FUNCTION_PREFIX) or len(parts) != 3 or not all(parts):
        raise ValueError(f"not a function stream: {stream!r}")
    account, region, name = parts
    return account, region, name


def is_function_stream(stream: str) -> bool:
    """Whether ``stream`` is ``fn:<account>:<region>:<name>``."""
    try:
        parse_function_stream(stream)
    except ValueError:
        return False
    return True


def repo_stream(url: str, branch: str) -> str:
    """``repo:<repository id>#<branch>``, the stream of one watched branch."""
    return f"{REPO_PREFIX}{repository_id(url)}#{branch}"


def parse_repo_stream(stream: str) -> tuple[str, str]:
    """``(repository id, branch)`` of a repository stream, also of one an earlier glam named
    from the URL as given (normalised here); ``ValueError`` if it is not one."""
    url, sep, branch = stream[len(REPO_PREFIX) :].rpartition("#")
    if not stream.startswith(REPO_PREFIX) or not sep or not url or not branch:
        raise ValueError(f"not a repository stream: {stream!r}")
    return repository_id(url), branch


def repo_key(stream: str) -> str:
    """The stream of the same branch as this glam names it: ``repo_stream`` of the parsed
    stream. Two repository streams are the same branch when their keys are equal; a stream
    this glam cannot parse is its own key."""
    try:
        repository, branch = parse_repo_stream(stream)
    except ValueError:
        return stream
    return f"{REPO_PREFIX}{repository}#{branch}"
