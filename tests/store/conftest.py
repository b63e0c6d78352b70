"""Store tests get the real PostgreSQL server of tests.support.postgres."""

from __future__ import annotations

from tests.support.postgres import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]
