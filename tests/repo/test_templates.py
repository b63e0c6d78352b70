"""Templates: sandboxed, strict, values only from inputs, structure always the template's."""

from __future__ import annotations

import json

import pytest

from engine.definitions.strict_json import parse_json_text
from engine.definitions.templates import render_json_template
from engine.errors import DefinitionError


def render(text: str, **values: object) -> object:
    return parse_json_text(render_json_template(text, values, "t.json"), "t.json")


def test_quote_injection_stays_inside_its_string() -> None:
    """A value holding `", "Role": "…` cannot add a key: it stays one string."""
    evil = 'x", "Role": "arn:aws:iam::1:role/admin'
    out = render('{"Description": "{{ d }}", "Role": "{{ role }}"}', d=evil, role="r")
    assert out == {"Description": evil, "Role": "r"}


def test_injection_outside_a_string_is_quoted() -> None:
    out = render('{"Timeout": {{ t }}, "MemorySize": {{ m }}}', t='1, "Role": "x"', m="128")
    assert out == {"Timeout": '1, "Role": "x"', "MemorySize": 128}


def test_backslash_and_newline_in_values() -> None:
    out = render('{"a": "{{ v }}"}', v='C:\\path\n"quoted"')
    assert out == {"a": 'C:\\path\n"quoted"'}


def test_tojson_and_loops_work() -> None:
    text = """{
      "Layers": {{ layers | tojson }},
      "Environment": {"Variables": {
        {% for k, v in env.items() %}"{{ k }}": "{{ v }}"{% if not loop.last %},{% endif %}
        {% endfor %}
      }}
    }"""
    out = render(text, layers=["arn:l:1", "arn:l:2"], env={"A": "1", "B": 'two"'})
    assert out == {
        "Layers": ["arn:l:1", "arn:l:2"],
        "Environment": {"Variables": {"A": "1", "B": 'two"'}},
    }


def test_sandbox_escape_is_refused() -> None:
    with pytest.raises(DefinitionError) as info:
        render_json_template('{"a": "{{ \'\'.__class__.__mro__ }}"}', {}, "t.json")
    assert "template" in info.value.reason
    assert info.value.file == "t.json"


def test_undefined_is_an_error() -> None:
    with pytest.raises(DefinitionError, match="'missing' is undefined"):
        render_json_template('{"a": "{{ missing }}"}', {}, "t.json")


def test_credential_env_var_is_not_visible(monkeypatch: pytest.MonkeyPatch) -> None:
    """A variable named like a credential env var is undefined, even when the process has it."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    with pytest.raises(DefinitionError) as info:
        render_json_template('{"a": "{{ AWS_SECRET_ACCESS_KEY }}"}', {}, "t.json")
    assert "wJalr" not in info.value.one_line()
    with pytest.raises(DefinitionError):
        render_json_template('{"a": "{{ environ }}"}', {}, "t.json")


def test_plain_json_is_returned_unchanged() -> None:
    text = json.dumps({"a": "b"})
    assert render_json_template(text, {}, "t.json") == text


def test_backslash_before_placeholder_is_refused() -> None:
    with pytest.raises(DefinitionError, match="backslash"):
        render_json_template('{"a": "\\\\{{ v }}"}'.replace("\\\\", "\\"), {"v": '"'}, "t.json")
