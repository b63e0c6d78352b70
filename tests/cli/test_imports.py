"""What ``glam run`` loads: never the test-only code of ``engine.testing``."""

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
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
