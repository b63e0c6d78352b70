"""Turning traces on: ``[traces]`` in glam.toml, ``--otlp-endpoint``, the OTel variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli.run_config import engine_config, tracing
from engine.config import parse_config
from engine.errors import ConfigFileError, UsageError
from engine.tokens import TokenRef
from engine.traces import ENDPOINT_ENV

FILE = """
[[repository]]
url = "https://github.com/acme/lambdas.git"

[traces]
otlp_endpoint = "http://127.0.0.1:4318/v1/traces"
headers = { "X-Api-Key" = "OTLP_API_KEY" }
attempts = 3
"""


@pytest.fixture(autouse=True)
def _no_endpoint_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENDPOINT_ENV, raising=False)


def test_off_by_default() -> None:
    """No endpoint named anywhere: no traces."""
    config = tracing(engine_config(repo="."), None)
    assert config.traces is None


def test_the_file_names_the_endpoint_and_the_headers_by_reference() -> None:
    section = parse_config(FILE, Path("glam.toml")).traces
    config = tracing(engine_config(repo="."), None, section)
    assert config.traces is not None
    assert config.traces.endpoint == "http://127.0.0.1:4318/v1/traces"
    assert config.traces.headers == (("X-Api-Key", TokenRef("env", "OTLP_API_KEY")),)
    assert config.traces.policy.attempts == 3


def test_the_flag_wins_over_the_variable_which_wins_over_the_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    section = parse_config(FILE, Path("glam.toml")).traces
    monkeypatch.setenv(ENDPOINT_ENV, "http://collector:4318/v1/traces")
    by_variable = tracing(engine_config(repo="."), None, section).traces
    assert by_variable is not None
    assert by_variable.endpoint == "http://collector:4318/v1/traces"
    by_flag = tracing(engine_config(repo="."), "https://otlp.example/v1/traces", section).traces
    assert by_flag is not None
    assert by_flag.endpoint == "https://otlp.example/v1/traces"
    assert by_flag.headers == (("X-Api-Key", TokenRef("env", "OTLP_API_KEY")),)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        pytest.param('otlp_endpoint = "127.0.0.1:4318"', "http:// or https://", id="scheme"),
        pytest.param(
            'otlp_endpoint = "https://user:key@otlp.example/v1/traces"',
            "must not hold credentials",
            id="credentials",
        ),
        pytest.param(
            'otlp_endpoint = "http://127.0.0.1:4318/v1/traces"\n'
            'headers = { Authorization = "Bearer abc" }',
            "never the secret itself",
            id="header-value",
        ),
        pytest.param('headers = { "X-Key" = "KEY" }', "headers need otlp_endpoint", id="alone"),
        pytest.param("attempts = 0", "attempts", id="attempts"),
    ],
)
def test_bad_trace_settings_are_refused(lines: str, message: str) -> None:
    with pytest.raises(ConfigFileError) as refused:
        parse_config(f"[traces]\n{lines}\n", Path("glam.toml"))
    assert message in refused.value.one_line()


def test_a_bad_flag_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="http:// or https://"):
        tracing(engine_config(repo="."), "localhost:4318")
