"""Templates: sandboxed, strict, values only from inputs, structure always the template's."""

from __future__ import annotations

import json
import time

import pytest

from engine.definitions.limits import RenderLimits
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


# -- hostile templates: each is one function's invalid definition, never an escaping error ----

FAST = RenderLimits(file_seconds=0.5)
_DEEP = "(" * 10_000 + "1" + ")" * 10_000
_HOSTILE = [
    # (template, the words the rejection must hold)
    pytest.param(
        '{% macro f() %}{{ f() }}{% endmacro %}{"a": "{{ f() }}"}',
        "call depth limit of 64",
        id="macro-recursion",
    ),
    pytest.param('{"a": {{ ' + _DEEP + " }}}", "nested too deeply", id="10000-parentheses"),
    pytest.param(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% for k in range(100000) %}"
        '{% endfor %}{% endfor %}{% endfor %}{"a": 1}',
        "time limit of 0.5 s",
        id="three-nested-loops",
    ),
    pytest.param(
        '{% for a in big %}{% for b in big %}{% endfor %}{% endfor %}{"a": 1}',
        "time limit of 0.5 s",
        id="nested-loops-over-a-value",
    ),
    pytest.param(
        '{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}'
        '{% endfor %}{"a": "{{ ns.s }}"}',
        "output limit of 1 MiB",
        id="string-doubling",
    ),
    pytest.param(
        '{% set ns = namespace(s="x") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}'
        '{% endfor %}{"a": "{{ ns.s }}"}',
        "output limit of 1 MiB",
        id="string-doubling-with-tilde",
    ),
    pytest.param('{"a": "{{ \'x\' * 10**10 }}"}', "output limit", id="x-times-10-to-the-10"),
    pytest.param('{"a": "{{ \'x\' * 2**33 }}"}', "output limit", id="x-times-2-to-the-33"),
    pytest.param('{"a": "{{ "x"|center(200000000) }}"}', "output limit", id="center-200mb"),
    pytest.param('{"a": "{{ "x".ljust(10**9) }}"}', "output limit", id="ljust"),
    pytest.param('{"a": "{{ "%1000000000s"|format("x") }}"}', "output limit", id="printf-width"),
    pytest.param('{"a": "{{ "{:>1000000000}".format("x") }}"}', "output limit", id="format-width"),
    pytest.param(
        '{"a": "{{ ("x"*100000)|replace("x", "y"*1000) }}"}', "output limit", id="replace-growth"
    ),
    pytest.param('{"a": "{{ ("\\n"*100000)|indent(1000) }}"}', "output limit", id="indent"),
    pytest.param(
        '{% set a = "x"|center(1000000) %}{"a": "{{ a~a~a~a~a~a~a~a }}"}',
        "output limit",
        id="concat-chain",
    ),
    pytest.param(
        '{"a": {{ (["x"]*100000)|map("center", 1000000)|list|length }}}',
        "64 MiB",
        id="many-values-under-the-limit",
    ),
    pytest.param(
        # A kilobyte an iteration: the output limit is met within a millisecond or two, long
        # before the time limit even on a loaded machine.
        "{% for i in range(100000) %}{% for j in range(100) %}" + "x" * 1024 + "{% endfor %}"
        '{% endfor %}{"a": 1}',
        "output limit",
        id="output-from-loops",
    ),
    pytest.param('{% include "/etc/passwd" %}{"a": 1}', "cannot include", id="include"),
    pytest.param('{% import "x" as x %}{"a": 1}', "cannot include", id="import"),
    pytest.param('{"a": "{{ self }}"}', "TemplateReference cannot stand", id="self"),
    pytest.param(
        '{% for i in range(10**12) %}{% endfor %}{"a": 1}', "limit of 100,000", id="range-10-12"
    ),
    pytest.param('{"a": "{{ xs|map(\'upper\') }}"}', "add | list", id="map-without-list"),
    pytest.param("{\"a\": {{ xs|map('upper') }}}", "add | list", id="map-without-list-raw"),
    pytest.param('{"a": "{{ namespace(a=1) }}"}', "Namespace cannot stand", id="namespace"),
    pytest.param('{"a": "{{ [xs|map(\'upper\')] }}"}', "cannot stand", id="generator-in-list"),
    pytest.param('{"a": "{{ range(3) }}"}', "cannot stand", id="range-object"),
    pytest.param('{"a": {{ 1/0 }}}', "ZeroDivisionError", id="division-by-zero"),
    pytest.param('{"a": {{ 10**100000 }}}', "bits", id="huge-integer"),
    pytest.param('{"a": {{ 1 + "x" }}}', "TypeError", id="type-error"),
    pytest.param('{"a": "{{ "\\ud800" }}"}', "lone surrogate", id="lone-surrogate"),
]


@pytest.mark.parametrize(("text", "words"), _HOSTILE)
def test_hostile_template_is_one_invalid_definition(text: str, words: str) -> None:
    """Whatever a template does, rendering it ends within its limits with a DefinitionError
    naming the file and the limit or the mistake: never another exception, never a hang."""
    values = {"xs": ["a", "b"], "big": list(range(100_000))}
    start = time.monotonic()
    with pytest.raises(DefinitionError) as info:
        render_json_template(text, values, "fns/bad/bad_lambdadef.json", FAST)
    assert time.monotonic() - start < FAST.file_seconds + 1.0
    assert info.value.file == "fns/bad/bad_lambdadef.json"
    assert words in info.value.one_line()


def test_limits_leave_ordinary_templates_alone() -> None:
    """Loops, macros, filters and methods of a real definition render as before."""
    text = """{% macro pad(n) %}{% for i in range(n) %}.{% endfor %}{% endmacro %}{
      "Tags": [{% for k in keys %}{"Key": "{{ k }}", "Value": "{{ (k ~ '-x') | upper }}"}
               {% if not loop.last %},{% endif %}{% endfor %}],
      "Dots": "{{ pad(3) }}",
      "Count": {{ range(1000) | list | length }},
      "Name": "{{ '%s-%03d' | format(prefix, 7) }}",
      "Joined": "{{ keys | join(',') }}",
      "Big": {{ ('x' * 1000) | length }},
      "Pad": "{{ 'a'.ljust(5, '.') }}"
    }"""
    out = render(text, keys=["a", "b"], prefix="fn")
    assert out == {
        "Tags": [{"Key": "a", "Value": "A-X"}, {"Key": "b", "Value": "B-X"}],
        "Dots": "...",
        "Count": 1000,
        "Name": "fn-007",
        "Joined": "a,b",
        "Big": 1000,
        "Pad": "a....",
    }


def test_rendered_output_is_capped_in_bytes() -> None:
    """A file whose rendered text is over the output limit is rejected, naming the limit."""
    small = RenderLimits(output_bytes=1000)
    with pytest.raises(DefinitionError, match="output limit of 1000 bytes"):
        render_json_template('{"a": "{{ v }}"}', {"v": "é" * 600}, "t.json", small)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ('{% macro m(x) %}{{ x }}-{{ x }}{% endmacro %}{"a": "{{ m(v) }}"}', {"a": "hi-hi"}),
        ('{% macro m(x) %}{{ x }}-{{ x }}{% endmacro %}{"a": {{ m(1) }}}', {"a": "1-1"}),
        ('{% set s %}{{ v }}!{% endset %}{"a": "{{ s }}"}', {"a": "hi!"}),
        (
            "{% macro w() %}[{{ caller() }}]{% endmacro %}"
            '{"a": "{% call w() %}{{ v }}{% endcall %}"}',
            {"a": "[hi]"},
        ),
        (
            "{% macro i(x) %}<{{ x }}>{% endmacro %}{% macro o(x) %}{{ i(x) }}{{ i(x) }}"
            '{% endmacro %}{"a": "{{ o(v) }}"}',
            {"a": "<hi><hi>"},
        ),
        ('{% macro m(d) %}{{ d }}{% endmacro %}{"a": "{{ m(obj) }}"}', {"a": '{"k": 1}'}),
    ],
    ids=["macro-in-string", "macro-as-value", "set-block", "call-block", "nested", "object"],
)
def test_text_a_template_builds_holds_its_values(template: str, expected: object) -> None:
    """A macro's output, a call or set block: the values output inside them are in the text
    (before, their internal placeholders leaked into the rendered file as NUL escapes)."""
    out = render_json_template(template, {"v": "hi", "obj": {"k": 1}}, "f_lambdadef.json")
    assert "\\u0000" not in out
    assert json.loads(out) == expected


def test_an_input_value_cannot_forge_a_placeholder() -> None:
    """An input value shaped like a placeholder stays its own text: placeholders carry a
    nonce of the render, so a value cannot pull another value (or structure) in."""
    forged = "\x000\x00 and \x001\x00"
    template = '{% macro m(x) %}{{ x }}{% endmacro %}{"a": "{{ secret }}", "b": "{{ m(v) }}"}'
    out = render_json_template(template, {"secret": "s3", "v": forged}, "f_lambdadef.json")
    assert json.loads(out) == {"a": "s3", "b": forged}
    quote = 'x", "b": 2, "c": "'
    out = render_json_template(
        '{% macro m(x) %}{{ x }}{% endmacro %}{"a": "{{ m(q) }}", "b": 1}', {"q": quote}, "f.json"
    )
    assert json.loads(out) == {"a": quote, "b": 1}
