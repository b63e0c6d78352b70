"""A repository URL as it may be shown, and as it identifies a repository: pure string work,
for the core and the adapters alike.

Stream names, events and messages carry a repository's URL; a token in it must never reach
them. The Git adapter (engine.git.urls) splits credentials out for its own use; ``redact_url``
is the one rule for showing a URL anywhere, ``repository_id`` the one rule for telling whether
two addresses name the same repository.
"""

from __future__ import annotations

import functools
import posixpath
import re
from urllib.parse import unquote, urlsplit, urlunsplit

REDACTED = "****"
# ``[user@]host:path``: Git's scp-like ssh form (a one-letter "host" is a Windows drive).
_SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>.+)$")


def redact_url(raw: str) -> str:
    """``raw`` as it may be shown: any password or token in it replaced by ``****``."""
    if "://" not in raw:
        return raw
    parts = urlsplit(raw)
    if parts.password is None and (parts.username is None or parts.scheme not in ("http", "https")):
        return raw
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    if parts.password is not None:
        netloc = f"{parts.username}:{REDACTED}@{host}"
    else:
        netloc = f"{REDACTED}@{host}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


_DEFAULT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git+ssh": 22}


@functools.lru_cache(maxsize=1024)  # pure, and a plan compares it for every function
def repository_id(raw: str) -> str:
    """The identity of the repository at ``raw``: the one string every form of its address
    normalises to, so the same repository reached through another URL form or with its token
    placed elsewhere is the same repository (its stream in the log, its mirror on disk).

    Remote URLs: scheme and host in lower case, the default port, any user, password or token,
    the query, a trailing ``/`` and a trailing ``.git`` dropped; ``host:path`` (scp-like ssh)
    reads as ``ssh://host/path``. Local paths (and ``file://``): normalised (``./a/`` is ``a``)
    but never resolved, so the identity does not depend on the machine it is computed on.
    Pure string work, idempotent: ``repository_id(repository_id(x)) == repository_id(x)``.
    """
    text = raw.strip()
    if "://" not in text:
        scp = _SCP_LIKE.match(text)
        if scp and len(scp.group("host")) > 1 and not text.startswith((".", "/")):
            return _remote("ssh", scp.group("host"), None, "/" + scp.group("path").lstrip("/"))
        return posixpath.normpath(text) if text else text
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme == "file":
        return posixpath.normpath(unquote(parts.path) or "/")
    try:
        port = parts.port
    except ValueError:  # not a number: leave the address as it was written, minus credentials
        port = None
    return _remote(scheme, parts.hostname or "", port, parts.path)


def _remote(scheme: str, host: str, port: int | None, path: str) -> str:
    if scheme == "git+ssh":
        scheme = "ssh"
    netloc = host.lower()
    if port is not None and port != _DEFAULT_PORTS.get(scheme):
        netloc += f":{port}"
    path = path.rstrip("/")
    path = path.removesuffix(".git").rstrip("/")
    return urlunsplit((scheme, netloc, path, "", ""))
