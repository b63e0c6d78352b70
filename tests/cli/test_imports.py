"""What ``glam run`` loads: never the test-only code of ``engine.testing``; and what every
``glam`` command loads before it runs: none of the heavy libraries only some commands use."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

# Everything `glam run` imports on its way to a running engine (its imports are lazy: name
# each module it reaches, so a fake imported by any of them is caught).
RUN_PATH = [
    "engine.cli.main",
    "engine.cli.run",
    "engine.cli.progress",
    "engine.runtime.engine",
    "engine.runtime.providers",
    "engine.runtime.clock",
    "engine.aws.lambda_api",
    "engine.aws.alarms",
    "engine.aws.sources",
    "engine.store.sqlite",
    "engine.git.repo_source",
]


def test_glam_run_never_imports_the_testing_package() -> None:
    """The in-memory fakes, fake provider and manual clock are for tests only."""
    code = (
        "import importlib, sys\n"
        f"for name in {RUN_PATH!r}:\n"
        "    importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[:2] == ['engine', 'testing']))\n"
    )
    assert _printed(code) == "[]"


def _printed(code: str) -> str:
    """What ``code`` prints in a new interpreter (nothing imported before it)."""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


# Loaded by the commands that need them, never by the start every command shares (`glam
# status` must not pay for the templates, the Lambda shapes, the AWS SDK or the git client).
HEAVY = [
    "jinja2",
    "botocore",
    "aiobotocore",
    "aiohttp",
    "dulwich",
    "engine.planner",
    "engine.definitions.desired",
    "engine.definitions.templates",
]


def test_every_command_starts_without_the_heavy_libraries() -> None:
    """`glam`'s entry module imports every subcommand module (to list them in `--help`):
    their module-level imports are what each command's start costs."""
    code = (
        "import sys\n"
        "import engine.cli.main\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({h for h in heavy for m in sys.modules"
        " if m == h or m.startswith(h + '.')}))\n"
    )
    assert _printed(code) == "[]"
