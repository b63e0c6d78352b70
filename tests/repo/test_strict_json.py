"""Strict JSON: every bad-input class is an error naming file, line and column."""

from __future__ import annotations

import pytest

from engine.definitions.strict_json import load_json
from engine.errors import DefinitionError


@pytest.mark.parametrize(
    ("data", "message", "line", "column"),
    [
        pytest.param(b'{\n  "a": 1,\n  "a": 2\n}', "duplicate key 'a'", 3, 3, id="duplicate"),
        pytest.param(b'{"a": {"b": 1, "b": 1}}', "duplicate key 'b'", 1, 16, id="nested-dup"),
        pytest.param(b'{\n "a": NaN\n}', "NaN is not valid JSON", 2, 7, id="nan"),
        pytest.param(b'{"a": -Infinity}', "-Infinity is not valid JSON", 1, 7, id="infinity"),
        pytest.param(b'\xef\xbb\xbf{"a": 1}', "byte order mark", 1, 1, id="bom"),
        pytest.param(b'{\n"a": "\xff"}', "invalid UTF-8", 2, 7, id="utf8"),
        pytest.param(b'{\n"a": 1,\n}', "Expecting property name", 3, 1, id="syntax"),
    ],
)
def test_bad_input_is_located(data: bytes, message: str, line: int, column: int) -> None:
    """A strictness problem names the file and the exact line and column."""
    with pytest.raises(DefinitionError) as info:
        load_json(data, "f_lambdadef.json")
    err = info.value
    assert message in err.reason
    assert (err.file, err.line, err.column) == ("f_lambdadef.json", line, column)
    assert err.hint


def test_too_large() -> None:
    with pytest.raises(DefinitionError, match="more than the 100 allowed"):
        load_json(b'{"a": "' + b"x" * 200 + b'"}', "f.json", max_bytes=100)


def test_too_deep() -> None:
    deep = b'{"a": ' * 70 + b"1" + b"}" * 70
    with pytest.raises(DefinitionError, match="nesting deeper than 64") as info:
        load_json(deep, "f.json")
    assert info.value.line == 1
    assert info.value.column == 1 + 6 * 64


def test_extremely_deep_does_not_crash() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    with pytest.raises(DefinitionError, match="nesting deeper"):
        load_json(deep, "f.json")


def test_valid_json_with_trailing_blank_line_in_object() -> None:
    assert load_json(b'{\n  "a": 1\n\n}\n', "f.json") == {"a": 1}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param(b'{"a": ' + b"1" * 5000 + b"}", "number too long", id="5000-digits"),
        pytest.param(b'{"a": 1e999}', "too large", id="float-overflow"),
        pytest.param(b'{"a": -1e400}', "too large", id="negative-float-overflow"),
    ],
)
def test_numbers_python_cannot_hold_are_errors(data: bytes, message: str) -> None:
    """A number of more than 4,300 digits (Python refuses to make the int) or one past the
    float range (Python would read it as infinity) is a DefinitionError, not a ValueError."""
    with pytest.raises(DefinitionError, match=message) as info:
        load_json(data, "f_lambdainput.json")
    assert info.value.file == "f_lambdainput.json"
