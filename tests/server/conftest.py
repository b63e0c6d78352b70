"""The server tests' fixtures: the runtime tests' embedded AWS, Git repository and SQLite
file (``setup``)."""

from __future__ import annotations

from tests.runtime.conftest import setup

__all__ = ["setup"]
