"""What ``glam run`` loads: never the test-only code of ``engine.testing``; and what every
``glam`` command loads before it runs: none of the heavy libraries only some commands use."""

from __future__ import annotations

import ast
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
    """`glam --help` imports every subcommand module (to list them): their module-level
    imports are what the start of each command costs."""
    code = (
        "import sys\n"
        "from engine.cli.main import app\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({h for h in heavy for m in sys.modules"
        " if m == h or m.startswith(h + '.')}))\n"
    )
    assert _printed(code) == "[]"


def test_a_command_imports_only_its_own_subcommand_module() -> None:
    """`glam replay` does not pay for the imports of `glam run`, `glam plan` or the rest."""
    code = (
        "import sys\n"
        "sys.argv = ['glam', 'replay', '--help']\n"
        "from engine.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('engine.cli.')"
        " and m.rsplit('.', 1)[1] in __import__('engine.cli.main').cli.main.SUBCOMMANDS))\n"
    )
    imported = set(ast.literal_eval(_printed(code).splitlines()[-1]))
    assert "engine.cli.replay" in imported
    # It shares helpers with `glam status` and `glam db` (their modules are light); it never
    # imports the engine's, the planner's, the operator's or the servers' commands.
    others = {"run", "plan", "ops", "aws_local", "dashboard", "demo", "drift", "sync", "wait"}
    assert not imported & {f"engine.cli.{name}" for name in others}, imported


def test_the_command_table_names_what_each_module_registers() -> None:
    """``COMMANDS`` (which module to import for a command) against the commands and groups
    each subcommand module puts on the app."""
    from typer.main import get_command_name

    from engine.cli import main

    app = main.app  # every module imported
    registered: dict[str, str] = {}
    for command in app.registered_commands:
        assert command.callback is not None
        name = command.name or get_command_name(command.callback.__name__)
        registered[name] = command.callback.__module__.rsplit(".", 1)[1]
    for group in app.registered_groups:
        instance = group.typer_instance
        assert instance is not None
        modules = {c.callback.__module__ for c in instance.registered_commands if c.callback}
        assert len(modules) == 1, modules
        registered[str(group.name or instance.info.name)] = modules.pop().rsplit(".", 1)[1]
    assert registered == main.COMMANDS


def test_replay_starts_the_files_check_before_it_imports_what_it_reads_with(
    tmp_path: Path,
) -> None:
    """On a large log the check is most of `glam replay`'s time: it starts before the
    events, the views and the store are imported, and reads the file's pages while they
    load. (Pydantic itself is imported by typer as it parses the arguments.)"""
    import anyio

    from engine.store.sqlite import SqliteEventStore

    db = tmp_path / "glam.db"

    async def build() -> None:
        async with SqliteEventStore(db):
            pass

    anyio.run(build)
    code = (
        "import sys\n"
        "from engine.store import file_check\n"
        "run = file_check.FileCheck.run\n"
        "seen = []\n"
        "def marked(check):\n"
        "    seen.append(sorted(m for m in ('engine.events', 'projections.views',"
        " 'engine.store.sqlite') if m in sys.modules))\n"
        "    run(check)\n"
        "file_check.FileCheck.run = marked\n"
        f"sys.argv = ['glam', 'replay', '--db', {str(db)!r}]\n"
        "from engine.cli.main import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        "print(seen)\n"
    )
    assert _printed(code).splitlines()[-1] == "[[]]"
