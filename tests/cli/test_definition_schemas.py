"""The definition files' schemas and docs/reference.md come from the models the parsers use:
the committed copies are current, and what the schemas state (keys, defaults, ranges, legacy
names) is what ``parse_settings`` and ``load_values`` do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.cli.schema import DEFINITION_FILES, schema_name, schema_text
from engine.definitions.lambdadef import create_function_shape
from engine.definitions.reference import reference_text
from engine.definitions.settings import parse_settings
from engine.errors import DefinitionError, UsageError

DOCS = Path(__file__).resolve().parents[2] / "docs"
FILE = "apps/orders/orders_lambdadepdef.json"


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(schema_text(name))
    return schema


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    return schema["$defs"][ref.rsplit("/", 1)[-1]] if ref else node


def test_reference_page_is_current() -> None:
    assert (DOCS / "reference.md").read_text() == reference_text(), (
        "regenerate it: glam schema --reference > docs/reference.md"
    )


@pytest.mark.parametrize("name", DEFINITION_FILES)
def test_committed_definition_schema_is_current(name: str) -> None:
    assert (DOCS / "schema" / f"{name}.json").read_text() == schema_text(name)


def test_a_definition_file_name_selects_its_schema() -> None:
    assert schema_name("apps/orders/orders_lambdaeventsourcedef.json") == "lambdaeventsourcedef"
    with pytest.raises(UsageError):
        schema_name("orders_lambdanothing.json")


def test_lambdadef_schema_is_botocores_create_function() -> None:
    schema = _schema("lambdadef")
    shape = create_function_shape()
    assert set(schema["properties"]) == set(shape.members)
    assert set(schema["required"]) == set(shape.required_members)
    assert schema["additionalProperties"] is False
    assert schema["properties"]["Timeout"]["default"] == 3


def _depdef_ranges() -> list[tuple[str, str, dict[str, Any]]]:
    schema = _schema("lambdadepdef")
    out = []
    for key, member in schema["properties"].items():
        for inner, spec in _resolve(schema, member).get("properties", {}).items():
            if spec.get("type") == "integer":
                out.append((key, inner, spec))
    return out


@pytest.mark.parametrize(("outer", "key", "spec"), _depdef_ranges())
def test_depdef_ranges_and_defaults_are_the_parsers(
    outer: str, key: str, spec: dict[str, Any]
) -> None:
    schema = _schema("lambdadepdef")
    required = _required(schema, outer)

    def settings_with(value: object | None) -> Any:
        inner = {**required, **({} if value is None else {key: value})}
        raw = {"alias": "live", outer: inner}
        parsed = parse_settings(raw, FILE)
        match outer:
            case "trafficShiftingConfig":
                return parsed.traffic
            case "trafficGate":
                return parsed.traffic_gate
        return parsed.readiness

    field = {
        "waitInterval": "wait_interval",
        "maxRetries": "max_retries",
        "minInvocations": "min_invocations",
        "maxWait": "max_wait",
        "checkInterval": "check_interval",
    }.get(key, key)
    if "default" in spec:
        assert getattr(settings_with(None), field) == spec["default"]
    else:  # a required key
        with pytest.raises(DefinitionError, match="missing"):
            parse_settings({"alias": "live", outer: {}}, FILE)
    for edge in (spec["minimum"], spec["maximum"]):
        assert getattr(settings_with(edge), field) == edge
    for outside in (spec["minimum"] - 1, spec["maximum"] + 1):
        with pytest.raises(DefinitionError, match="outside"):
            settings_with(outside)


def _required(schema: dict[str, Any], outer: str) -> dict[str, Any]:
    """The least an object key of the depdef needs: each required member at its minimum."""
    node = _resolve(schema, schema["properties"][outer])
    if "anyOf" in node:  # an optional object: its object member
        node = _resolve(schema, next(m for m in node["anyOf"] if m.get("type") != "null"))
    return {k: node["properties"][k]["minimum"] for k in node.get("required", [])}


def test_depdef_keys_are_the_parsers() -> None:
    schema = _schema("lambdadepdef")
    warnings: list[str] = []
    for key, member in schema["properties"].items():
        if key == "alias":
            continue
        node = _resolve(schema, member)
        is_object = node.get("type") == "object" or any(
            _resolve(schema, m).get("type") == "object" for m in node.get("anyOf", [])
        )
        value = _required(schema, key) if is_object else member.get("default")
        if value is None:
            value = member.get("examples", [{}])[0]
        raw = {"alias": "live", key: value}
        parse_settings(raw, FILE, warnings)  # every key the schema lists is accepted
    ignored = [
        k for k, m in schema["properties"].items() if m.get("description", "").startswith("Ignored")
    ]
    assert len(warnings) == len(ignored) > 0
    assert schema["properties"]["environmentVariables"]["deprecated"] is True
    legacy = parse_settings(
        {"alias": "live", "environmentVariables": {"region": "eu-west-1"}}, FILE
    )
    assert legacy.region == "eu-west-1"
    with pytest.raises(DefinitionError, match="unknown key"):
        parse_settings({"alias": "live", "trafficShifting": {}}, FILE)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["alias"]


def test_lambdainput_ref_types_are_the_readers() -> None:
    from engine.definitions.files import REF_TYPES

    ref = _schema("lambdainput")["$defs"]["RefFile"]
    assert ref["properties"]["type"]["enum"] == list(REF_TYPES)
    assert ref["properties"]["type"]["default"] == "JSON"
