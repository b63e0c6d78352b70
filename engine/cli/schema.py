"""``glam schema``: the JSON Schema of a file glam reads, generated from the model that
validates it, for editors (taplo, VS Code's Even Better TOML) and CI linters.

    glam schema glam.toml > glam.schema.json

The committed copies in docs/schema/ are kept equal to this output by a test.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from engine.cli.app import app
from engine.cli.output import examples
from engine.errors import UsageError

SCHEMA_ID = "https://glam-gitops.dev/schema/{name}.json"


def glam_toml_schema() -> dict[str, Any]:
    """The JSON Schema of glam.toml."""
    from engine.config.model import GlamConfig

    schema = GlamConfig.model_json_schema()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID.format(name="glam.toml"),
        **schema,
    }


SCHEMAS = {"glam.toml": glam_toml_schema}


def schema_text(name: str) -> str:
    """The schema of ``name`` as glam prints and commits it."""
    if name not in SCHEMAS:
        raise UsageError(f"no schema for {name!r}", hint="one of: " + ", ".join(sorted(SCHEMAS)))
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@app.command(epilog=examples("glam schema glam.toml > glam.schema.json"))
def schema(
    file: Annotated[str, typer.Argument(help="Which file: glam.toml.")] = "glam.toml",
) -> None:
    """Print the JSON Schema of a file glam reads."""
    print(schema_text(file), end="")


__all__ = ["SCHEMAS", "schema", "schema_text"]
