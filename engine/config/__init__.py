"""The configuration file ``glam.toml``: one engine for many repositories, branches and AWS
accounts. ``engine.config.model`` says what it holds, ``engine.config.load`` reads it with
every mistake located, ``engine.config.describe`` says what it means (``glam config check``).
"""

from __future__ import annotations

from engine.config.load import load_config, parse_config
from engine.config.model import (
    AccountSettings,
    EngineSettings,
    GlamConfig,
    RepositorySettings,
)

__all__ = [
    "AccountSettings",
    "EngineSettings",
    "GlamConfig",
    "RepositorySettings",
    "load_config",
    "parse_config",
]
