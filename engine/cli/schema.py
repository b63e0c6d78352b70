"""``glam schema``: the JSON Schema of a file glam reads, generated from the model that
validates it, for editors (VS Code's json.schemas, taplo) and CI linters.

    glam schema glam.toml > glam.schema.json
    glam schema lambdadef > .glam/lambdadef.json
    glam schema --reference > docs/reference.md

The committed copies in docs/schema/ and docs/reference.md are kept equal to this output by a
test.
"""

from __future__ import annotations

import json
from collections.abc import Callable
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


def _definition(name: str) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        from engine.definitions.file_schemas import DEFINITION_SCHEMAS

        return DEFINITION_SCHEMAS[name]()

    return build


DEFINITION_FILES = ("lambdadef", "lambdadepdef", "lambdaeventsourcedef", "lambdainput")
SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "glam.toml": glam_toml_schema,
    **{name: _definition(name) for name in DEFINITION_FILES},
}


def schema_name(file: str) -> str:
    """The schema's name for ``file``: ``lambdadef`` also as ``_lambdadef.json`` or a path."""
    name = file.rsplit("/", 1)[-1]
    if name.endswith(".json"):
        name = name.removesuffix(".json").rsplit("_", 1)[-1]
    if name not in SCHEMAS:
        raise UsageError(f"no schema for {file!r}", hint="one of: " + ", ".join(sorted(SCHEMAS)))
    return name


def schema_text(name: str) -> str:
    """The schema of ``name`` as glam prints and commits it."""
    schema = SCHEMAS[schema_name(name)]()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def reference_text() -> str:
    """docs/reference.md: every field of the four definition files."""
    from engine.definitions.reference import reference_text as text

    return text()


@app.command(
    epilog=examples(
        "glam schema glam.toml > glam.schema.json",
        "glam schema lambdadef > .glam/lambdadef.json",
        "glam schema apps/orders/orders_lambdadepdef.json",
        "glam schema --reference > docs/reference.md",
    )
)
def schema(
    file: Annotated[
        str,
        typer.Argument(
            help="Which file: glam.toml, lambdadef, lambdadepdef, lambdaeventsourcedef, "
            "lambdainput (or a definition file's name)."
        ),
    ] = "glam.toml",
    reference: Annotated[
        bool,
        typer.Option("--reference", help="Print the field reference of the definition files."),
    ] = False,
) -> None:
    """Print the JSON Schema of a file glam reads (or the definition files' reference)."""
    print(reference_text() if reference else schema_text(file), end="")


__all__ = ["DEFINITION_FILES", "SCHEMAS", "reference_text", "schema", "schema_name", "schema_text"]
