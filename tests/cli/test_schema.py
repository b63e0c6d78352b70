"""The JSON Schemas in docs/schema are what ``glam schema`` prints, and they accept the
example configuration and refuse a mistake."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from engine.cli.schema import SCHEMAS, schema_text

DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_committed_schema_is_current(name: str) -> None:
    committed = DOCS / "schema" / f"{name}.json"
    assert committed.read_text() == schema_text(name), (
        f"regenerate it: glam schema {name} > docs/schema/{name}.json"
    )


def test_glam_toml_schema_describes_the_example() -> None:
    schema = json.loads(schema_text("glam.toml"))
    example = tomllib.loads((DOCS / "examples" / "glam.toml").read_text())
    assert set(example) <= set(schema["properties"])
    repository = schema["$defs"]["RepositorySettings"]
    for repo in example["repository"]:
        assert set(repo) <= set(repository["properties"])
    notify = schema["$defs"]["NotifySettings"]
    assert notify["properties"]["kind"]["enum"] == ["webhook", "slack"]
    assert schema["additionalProperties"] is False  # a typo is refused, as glam refuses it
