"""The runtime tests' fixtures (embedded AWS, Git repository, SQLite file), shared here."""

from __future__ import annotations

from tests.runtime.conftest import setup

__all__ = ["setup"]
