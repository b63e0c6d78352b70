"""Hypothesis strategies for the files of a function prefix: templates built from Jinja's own
grammar (loops, macros, filters, methods, operators, huge numbers, odd strings) placed inside
and outside JSON strings, input files with refs that go anywhere, deployment definitions with
any keys, and bytes that are not JSON at all."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

FILTERS = [
    "abs", "attr", "batch", "capitalize", "center", "count", "default", "dictsort", "e",
    "escape", "filesizeformat", "first", "float", "format", "groupby", "indent", "int",
    "items", "join", "last", "length", "list", "lower", "map", "max", "min", "pprint",
    "reject", "replace", "reverse", "round", "select", "slice", "sort", "string",
    "striptags", "sum", "title", "tojson", "trim", "truncate", "unique", "upper", "urlencode",
    "urlize", "wordcount", "wordwrap", "xmlattr",
]  # fmt: skip
METHODS = ["center", "ljust", "rjust", "zfill", "replace", "join", "split", "format", "upper"]
NUMBERS = st.sampled_from(
    ["0", "1", "-1", "3", "255", "100000", "10**6", "10**9", "2**33", "10**12", "1e308", "0.5"]
)
STRINGS = st.sampled_from(
    [
        "'x'",
        "''",
        "'\"'",
        "'\\\\'",
        "'\\n'",
        "'\\ud800'",
        "'\\x00'",
        "'é'",
        "'{{'",
        '\'", "Role": "arn:aws:iam::1:role/admin\'',
    ]
)
NAMES = st.sampled_from(["v", "xs", "d", "n", "missing", "self", "range", "namespace", "loop"])


def _expr(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(children, st.sampled_from(["*", "+", "**", "%", "~", "//", "-"]), children).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"
        ),
        st.tuples(children, st.sampled_from(FILTERS), st.lists(children, max_size=2)).map(
            lambda t: f"({t[0]} | {t[1]}({', '.join(t[2])}))"
        ),
        st.tuples(children, st.sampled_from(METHODS), st.lists(children, max_size=2)).map(
            lambda t: f"{t[0]}.{t[1]}({', '.join(t[2])})"
        ),
        st.lists(children, max_size=3).map(lambda xs: f"[{', '.join(xs)}]"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        children.map(lambda x: f"range({x})"),
        children.map(lambda x: f"namespace(a={x})"),
        st.integers(1, 400).map(lambda k: "(" * k + "1" + ")" * k),
    )


EXPRESSIONS = st.recursive(st.one_of(NUMBERS, STRINGS, NAMES), _expr, max_leaves=6)


def _block(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(EXPRESSIONS, children).map(
            lambda t: f"{{% for i in {t[0]} %}}{t[1]}{{% endfor %}}"
        ),
        st.tuples(EXPRESSIONS, children).map(lambda t: f"{{% if {t[0]} %}}{t[1]}{{% endif %}}"),
        children.map(
            lambda b: f"{{% macro m(a) %}}{b}{{{{ m(a) }}}}{{% endmacro %}}{{{{ m(1) }}}}"
        ),
        st.tuples(EXPRESSIONS, children).map(lambda t: f"{{% set q = {t[0]} %}}{t[1]}"),
        children.map(lambda b: f"{{% filter upper %}}{b}{{% endfilter %}}"),
        st.lists(children, max_size=3).map("".join),
    )


ATOMS = st.one_of(
    EXPRESSIONS.map(lambda e: f"{{{{ {e} }}}}"),
    st.sampled_from(
        [
            "{% include 'x' %}",
            "{% import 'x' as y %}",
            "{% extends 'x' %}",
            "{{",
            "{%",
            "}}",
            "{# #}",
            "{% raw %}{{{% endraw %}",
            "\\",
            '"',
            "\x00",
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
            "{% endfor %}{{ ns.s }}",
        ]
    ),
    st.text(max_size=8),
    # Work and size: loops, products and widths from the numbers above.
    st.tuples(NUMBERS, NUMBERS).map(
        lambda t: (
            f"{{% for i in range({t[0]}) %}}{{% for j in range({t[1]}) %}}."
            "{% endfor %}{% endfor %}"
        )
    ),
    st.just("{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"),
    NUMBERS.map(lambda n: f"{{{{ 'xy' * {n} }}}}"),
    NUMBERS.map(lambda n: f"{{{{ 'x' | center({n}) }}}}"),
    NUMBERS.map(lambda n: f"{{{{ ('ab' * 1000) | replace('a', 'x' * {n}) }}}}"),
)
TEMPLATES = st.recursive(ATOMS, _block, max_leaves=5)

BASE = {
    "Role": "arn:aws:iam::123456789012:role/exec",
    "Handler": "app.handler",
    "Runtime": "python3.12",
    "Code": {"S3Bucket": "code", "S3Key": "k"},
}


@st.composite
def definitions(draw: st.DrawFn, name: str) -> str:
    """A ``_lambdadef.json``: a valid request with templates inside strings, at raw value
    positions, or before it; sometimes keys or whole files that are not valid at all."""
    body: dict[str, Any] = {"FunctionName": name, **BASE}
    extra = draw(
        st.dictionaries(
            st.sampled_from(["Description", "Timeout", "MemorySize", "Layers", "Rolee", "Tags"]),
            st.just("@"),
            max_size=3,
        )
    )
    body.update(extra)
    text = json.dumps(body)
    for _ in range(text.count('"@"')):
        template = draw(TEMPLATES)
        inside = draw(st.integers(0, 3)) > 0
        text = text.replace('"@"', f'"{template}"' if inside else template, 1)
    where = draw(st.sampled_from(["as-is"] * 6 + ["before", "garbage", "huge-number"]))
    if where == "before":
        text = draw(TEMPLATES) + text
    elif where == "garbage":
        text = draw(st.text(max_size=40))
    elif where == "huge-number":
        text = text[:-1] + ', "Timeout": ' + "9" * draw(st.integers(1, 6000)) + "}"
    return text


JSON_VALUES = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**20), 10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=10),
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=10,
)


@st.composite
def inputs(draw: st.DrawFn) -> str:
    values: dict[str, Any] = draw(
        st.dictionaries(st.sampled_from(["v", "xs", "d", "n", "ref"]), JSON_VALUES, max_size=4)
    )
    if draw(st.booleans()):
        values["ref"] = {
            "file": draw(
                st.lists(
                    st.sampled_from(
                        [
                            "infra/tf.json",
                            "../x.json",
                            "/etc/passwd",
                            "infra",
                            "missing.json",
                            "fns/good/good_lambdadef.json",
                        ]
                    ),
                    max_size=2,
                )
            ),
            "type": draw(st.sampled_from(["JSON", "TERRAFORM", "CDK", "XML"])),
        }
    return json.dumps(values)


@st.composite
def depdefs(draw: st.DrawFn) -> str:
    keys = st.sampled_from(
        [
            "alias",
            "environment",
            "trafficShiftingConfig",
            "alarms",
            "readinessCheck",
            "deleteOldVersion",
            "stabilityCheck",
            "webhooks",
            "colour",
        ]
    )
    value: dict[str, Any] = {"alias": draw(st.sampled_from(["live", "7", "$LATEST", "{{ v }}"]))}
    value.update(draw(st.dictionaries(keys, JSON_VALUES, max_size=3)))
    if draw(st.booleans()):
        value["environment"] = {
            "region": draw(st.sampled_from(["eu-west-1", "xx-nowhere-9", "{{ v }}", "us-east-1"]))
        }
    return json.dumps(value)


QUEUE = "arn:aws:sqs:eu-west-1:123456789012:q"
MAPPING_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(
        [
            QUEUE,
            "not-an-arn",
            "arn:aws:kinesis:eu-west-1:123456789012:stream/s",
            "LATEST",
            "NOWISH",
            "ten",
            10,
            0,
            -1,
            10**30,
            "{{ v }}",
            "{{ xs|map('upper') }}",
        ]
    ),
)


@st.composite
def eventsources(draw: st.DrawFn, name: str) -> str:
    """A ``_lambdaeventsourcedef.json``: mappings with CreateEventSourceMapping's keys (and a
    few it does not have) holding values of any type, FunctionNames of this function, of
    another and of no form at all, push sources of any service, templates; sometimes not an
    object at all."""
    keys = st.sampled_from(
        [
            "EventSourceArn",
            "BatchSize",
            "StartingPosition",
            "MaximumBatchingWindowInSeconds",
            "Enabled",
            "FilterCriteria",
            "Queues",
            "SelfManagedEventSource",
            "Bogus",
        ]
    )
    mappings = []
    for _ in range(draw(st.integers(0, 3))):
        if draw(st.booleans()):  # well typed, as most files are
            mapping: dict[str, Any] = {
                "BatchSize": draw(st.integers(1, 100)),
                "Enabled": draw(st.booleans()),
                "StartingPosition": draw(st.sampled_from(["LATEST", "TRIM_HORIZON"])),
            }
        else:
            mapping = draw(st.dictionaries(keys, MAPPING_VALUES, max_size=4))
        if draw(st.integers(0, 3)) > 0:
            mapping["EventSourceArn"] = QUEUE
        if draw(st.booleans()):
            mapping["FunctionName"] = draw(
                st.sampled_from(
                    [
                        name,
                        f"{name}:live",
                        f"{name}:other",
                        f"arn:aws:lambda:eu-west-1:123456789012:function:{name}",
                        f"123456789012:function:{name}",
                        "good",
                        "a:b:c:d",
                        "",
                        5,
                    ]
                )
            )
        mappings.append(mapping)
    pull: Any = {"EventSourceMapping": mappings[0] if len(mappings) == 1 else mappings}
    push = draw(
        st.lists(
            st.dictionaries(
                st.sampled_from(["Service", "TargetGroupArn", "ApiId", "RouteId", "Nope"]),
                st.one_of(
                    st.sampled_from(["elasticloadbalancing", "apigateway", "x"]), JSON_VALUES
                ),
                max_size=3,
            ),
            max_size=2,
        )
    )
    value: Any = {"PullEventSources": pull, "PushEventSources": push}
    if draw(st.booleans()):
        value = {"PullEventSources": pull}
    shape = draw(st.sampled_from(["as-is"] * 6 + ["pull-only", "not-an-object", "garbage"]))
    if shape == "pull-only":
        value = {"PullEventSources": pull}
    elif shape == "not-an-object":
        value = draw(JSON_VALUES)
    elif shape == "garbage":
        return draw(st.text(max_size=40))
    return json.dumps(value)
