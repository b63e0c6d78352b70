"""Repository URLs: classify them and take credentials out.

Pure string work, no dulwich. Showing a URL redacted is ``engine.redact.redact_url``, which the
core uses too; it is re-exported here for the Git adapter's callers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from engine.redact import redact_url

__all__ = ["RepoUrl", "parse_repo_url", "redact_url"]

_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>.+)$")


@dataclass(frozen=True, slots=True)
class RepoUrl:
    """A repository location split into what is safe to show and the credentials.

    ``kind`` is ``local`` (a path or file:// URL), ``http`` (http/https smart HTTP) or ``ssh``.
    ``url`` never holds a password or token; ``username``/``password`` carry them separately.
    """

    kind: str
    url: str
    username: str | None = None
    password: str | None = None

    @property
    def local_path(self) -> Path:
        if self.kind != "local":
            raise ValueError("not a local repository")
        if self.url.startswith("file://"):
            return Path(unquote(urlsplit(self.url).path))
        return Path(self.url)


def parse_repo_url(raw: str) -> RepoUrl:
    """Classify ``raw`` and split credentials out of it (``https://user:token@host/x``)."""
    if "://" not in raw:
        scp = _SCP_LIKE.match(raw)
        # "host:path" is ssh unless it looks like a Windows drive or a relative path.
        if scp and len(scp.group("host")) > 1 and not raw.startswith((".", "/")):
            return RepoUrl("ssh", raw)
        return RepoUrl("local", raw)
    parts = urlsplit(raw)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return RepoUrl("local", raw)
    if scheme in ("http", "https"):
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password else None
        if username and password is None:
            # https://TOKEN@host: a token alone in the user part is a password, not a name.
            username, password = None, username
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return RepoUrl(
            "http",
            urlunsplit((scheme, netloc, parts.path, parts.query, "")),
            username,
            password,
        )
    if scheme in ("ssh", "git+ssh"):
        # ssh keys come from the agent; a password in an ssh URL is dropped, never shown.
        user = f"{parts.username}@" if parts.username else ""
        netloc = user + (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
        return RepoUrl("ssh", urlunsplit((scheme, netloc, parts.path, "", "")))
    return RepoUrl("local" if scheme == "" else scheme, raw)
