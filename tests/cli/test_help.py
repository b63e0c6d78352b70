"""Every command's help ends with examples; ``--version`` and shell completion are on; a
typo in a function name gets a "did you mean"."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from engine.cli.app import glam_version
from engine.cli.main import app


def _commands() -> list[list[str]]:
    root = typer.main.get_command(app)
    found = []
    for name, command in getattr(root, "commands", {}).items():
        subcommands = getattr(command, "commands", None)
        if subcommands:
            found += [[name, sub] for sub in subcommands]
        else:
            found.append([name])
    assert len(found) > 10
    return found


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_every_command_shows_examples(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Examples:" in result.output
    assert f"glam {command[0]}" in result.output.split("Examples:")[1]


def test_version_and_completion() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.output.strip()) == (0, f"glam {glam_version()}")
    assert "--install-completion" in runner.invoke(app, ["--help"]).output
