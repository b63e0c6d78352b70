"""A repository URL as it may be shown: pure string work, for the core and the adapters alike.

Stream names, events and messages carry a repository's URL; a token in it must never reach
them. The Git adapter (engine.git.urls) splits credentials out for its own use; this is the one
rule for showing a URL anywhere.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

REDACTED = "****"


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
