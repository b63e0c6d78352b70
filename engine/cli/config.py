"""``glam config check [FILE]``: validate a configuration file and print what it means.

    glam config check                  # $GLAM_CONFIG, else ./glam.toml
    glam config check glam.toml --json

Exit 0 when the file is valid, 2 with one line per mistake (file:line: what is wrong and
what to write instead) when it is not. Nothing is resolved: tokens are shown as the
reference the engine reads at each fetch, never their value, and no AWS call is made.

Also home of what ``glam run`` and ``glam plan`` share about the file: where it is
(``config_path``) and how flags override it (``settings_from``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from engine.cli.app import app
from engine.cli.common import JsonOption
from engine.cli.output import examples
from engine.errors import UsageError

DEFAULT_CONFIG = Path("glam.toml")

config_app = typer.Typer(
    name="config",
    help="The configuration file (glam.toml): check it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(config_app)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Configuration file (glam.toml): repositories, branches, accounts. "
        "Default: $GLAM_CONFIG.",
        show_default=False,
    ),
]


def config_path(value: Path | None, *, required: bool = False) -> Path | None:
    """``--config``, else ``$GLAM_CONFIG``, else (when ``required``) ``./glam.toml``."""
    if value is not None:
        return value
    env = os.environ.get("GLAM_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if required else None


@config_app.command(
    "check",
    epilog=examples(
        "glam config check                    # ./glam.toml, or $GLAM_CONFIG",
        "glam config check /etc/glam/glam.toml --json",
    ),
)
def check(
    file: Annotated[
        Path | None,
        typer.Argument(help="The file to check. Default: $GLAM_CONFIG, else ./glam.toml."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a configuration file and print what it means (tokens as references only)."""
    from engine.config import load_config
    from engine.config.describe import as_json as config_json
    from engine.config.describe import describe

    path = config_path(file, required=True)
    assert path is not None
    if not path.exists():
        raise UsageError(
            f"no configuration file at {path}",
            hint="pass its path, or set $GLAM_CONFIG (docs/examples/glam.toml is an example)",
        )
    config = load_config(path)  # ConfigFileError: every mistake, one line each (exit 2)
    if as_json:
        print(json.dumps({"file": str(path), "valid": True, **config_json(config)}, indent=2))
        return
    print(f"{path}: valid")
    for line in describe(config):
        print(line)


__all__ = ["ConfigOption", "config_app", "config_path"]
