"""Stream names: the one place that decides how a function or a repository is named in the log.

A function's stream is ``fn:<account>:<region>:<name>`` (DESIGN §3), so the same function
name deployed to two regions or accounts has two independent histories. A repository's stream
is ``repo:<url>#<branch>`` with the URL redacted first, so a token never reaches the log.
"""

from __future__ import annotations

from engine.redact import redact_url

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
    """``repo:<redacted url>#<branch>``, the stream of one watched branch."""
    return f"{REPO_PREFIX}{redact_url(url)}#{branch}"
