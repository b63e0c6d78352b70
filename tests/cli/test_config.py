"""``glam.toml``: the example in the docs checks out, every mistake of a malformed file is
reported at once on its own line, and ``glam config check`` never shows a token's value."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from engine.cli.main import main
from engine.cli.run_config import engine_config_from
from engine.config import load_config, parse_config
from engine.errors import ConfigFileError
from engine.redact import repository_id
from engine.streams import repo_key, repo_stream
from engine.tokens import parse_token_ref

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "glam.toml"


def glam(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["glam", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    out, err = capsys.readouterr()
    return int(exit_info.value.code or 0), out, err


def test_the_documented_example_checks_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/examples/glam.toml is valid, and `glam config check` says what it means."""
    code, out, err = glam(monkeypatch, capsys, "config", "check", str(EXAMPLE))
    assert (code, err) == (0, "")
    assert out.startswith(f"{EXAMPLE}: valid\n")
    assert "repositories: 3 (4 branches watched, one loop each)" in out
    assert "branches: main, release" in out
    assert "token: Secrets Manager secret arn:aws:secretsmanager:" in out
    assert "token: SSM parameter arn:aws:ssm:eu-west-1:111111111111:parameter/glam/github" in out
    assert "222222222222: assumes arn:aws:iam::222222222222:role/glam-deployer" in out
    assert "external id set" in out
    assert "glam-acme-prod" not in out  # the external id itself is not printed
    assert "222222222222: 8 calls/s per region" in out


def test_config_check_json_names_tokens_by_reference(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = glam(monkeypatch, capsys, "config", "check", str(EXAMPLE), "--json")
    data = json.loads(out)
    assert (code, data["valid"]) == (0, True)
    first = data["repository"][0]
    assert first["id"] == "https://github.com/acme/payments"
    assert first["token"]["kind"] == "secretsmanager"
    assert [a["external_id"] for a in data["account"]] == [None, "set", None]


MALFORMED = """\
[engine]
regoin = "eu-west-1"
max_parallel = 0

[[repository]]
url = "https://github.com/acme/payments.git"
branchs = ["main"]

[[repository]]
url = "https://GitHub.com/acme/payments/"
branches = ["main", "main"]

[[repository]]
path = "tools"
token = "GH_TOKEN"

[[repository]]
url = "https://x-access-token:ghp_secret@github.com/acme/leaky.git"

[[account]]
id = 222222222222
role_arn = "arn:aws:iam::222222222222:role/x"

[[account]]
id = "444444444444"
role_arn = "arn:aws:iam::555555555555:role/glam"
regions = ["eu-wset-1"]

[[acount]]
id = "1"
"""


def test_config_check_describes_the_server_by_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The [server] section is part of what `glam config check` says (it said nothing of it):
    where it listens, the token and webhook secret by reference only, and the notification
    links' base."""
    path = tmp_path / "glam.toml"
    path.write_text(
        '[engine]\npublic_url = "http://127.0.0.1:8080"\n'
        '[server]\nlisten = "127.0.0.1:8080"\napi_token = "GLAM_API_TOKEN"\n'
        "auth_reads = true\n"
        '[[repository]]\nurl = "https://github.com/acme/payments.git"\n'
    )
    monkeypatch.setenv("GLAM_API_TOKEN", "value-never-shown")
    code, out, err = glam(monkeypatch, capsys, "config", "check", str(path))
    assert (code, err) == (0, "")
    assert "server: http://127.0.0.1:8080" in out
    assert "API token: environment variable GLAM_API_TOKEN" in out
    assert "reads: need the token" in out
    assert "webhook secret: none: pushes are refused" in out
    assert "links in notifications: http://127.0.0.1:8080" in out
    assert "value-never-shown" not in out


def test_a_malformed_file_gives_one_clear_error_per_mistake(tmp_path: Path) -> None:
    """Each mistake is one line naming the file, the line, what is wrong and, where it can,
    what was meant; all of them at once, in file order, and no secret among them."""
    path = tmp_path / "glam.toml"
    path.write_text(MALFORMED)
    with pytest.raises(ConfigFileError) as error:
        load_config(path)
    problems = [p.replace(str(path), "glam.toml") for p in error.value.problems]
    assert problems == [
        "glam.toml:2: [engine]: 'regoin' is not a setting of [engine] — did you mean 'region'?",
        "glam.toml:3: [engine]: max_parallel: should be greater than or equal to 1",
        "glam.toml:7: repository #1: 'branchs' is not a setting of [[repository]] — did you "
        "mean 'branches'?",
        "glam.toml:9: repository #2: the same repository as repository #1 (line 5): list all "
        "its branches in one entry",
        "glam.toml:11: repository #2: branches: branch 'main' is listed twice",
        "glam.toml:13: repository #3: token is used only for an https:// repository (ssh uses "
        "the agent's keys, a local path needs none)",
        "glam.toml:18: repository #4: url: url must not hold credentials (a token in a file "
        "that is shared is a leaked token): put the token in Secrets Manager, SSM or an "
        "environment variable and name it with `token`",
        "glam.toml:21: account #1: id: must be a string: write the account id in quotes",
        "glam.toml:24: account #2: role_arn is in account 555555555555, the entry is for "
        "444444444444: the role to assume must be in the account deployed to",
        "glam.toml:27: account #2: regions[0]: 'eu-wset-1' is not an AWS region — did you mean "
        "'eu-west-1'?",
        "glam.toml:29: [acount] is not a section of glam.toml — did you mean [[account]]?",
    ]
    assert "ghp_secret" not in error.value.one_line()


def test_config_check_exits_2_listing_every_mistake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "glam.toml"
    path.write_text(MALFORMED)
    code, out, err = glam(monkeypatch, capsys, "config", "check", str(path))
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert lines[0] == f"glam: {path}: 11 mistakes:"
    assert len(lines) == 12


REPO = "[[repository]]\nurl = 'https://h/r'\n"
MISTAKES = {
    "syntax": ("[engine\n", ":1: not valid TOML"),
    "wrong-section": (
        "[server]\nlisten = '127.0.0.1:8080'\npublic_url = 'http://127.0.0.1:8080'\n",
        "'public_url' is not a setting of [server] — it is a setting of [engine]: move it there",
    ),
    "table": ("[repository]\nurl = 'x'\n", "write [[repository]], not [repository]"),
    "no-url": ("[[repository]]\nbranches = ['main']\n", "give exactly one of url or path"),
    "bad-arn": (f"{REPO}token = 'arn:aws:s3:::b'\n", "token: 'arn:aws:s3:::b' is not an ARN"),
    "other-service": (
        f"{REPO}token = 'arn:aws:sns:eu-west-1:111111111111:t'\n",
        "a sns ARN: a token is read from secretsmanager or ssm only",
    ),
    "external-id-alone": (
        "[[account]]\nid = '111111111111'\nexternal_id = 'x1'\n",
        "external_id needs a role_arn",
    ),
    "paths": (
        "[[repository]]\npath = 'r'\npaths = ['../up']\n",
        "'../up' is not a folder of the repository",
    ),
}


@pytest.mark.parametrize(("text", "expected"), list(MISTAKES.values()), ids=list(MISTAKES))
def test_each_kind_of_mistake_says_what_to_write(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigFileError) as error:
        parse_config(text, tmp_path / "glam.toml")
    assert expected in error.value.one_line()
    assert len(error.value.problems) == 1


def test_relative_paths_are_relative_to_the_file(tmp_path: Path) -> None:
    """A relative db or repository path is resolved against the file's folder, so the
    repository's identity does not depend on where the engine was started."""
    text = "[engine]\ndb = 'state/glam.db'\n[[repository]]\npath = 'repos/x'\n"
    config = parse_config(text + "branches = ['main', 'dev']\n", tmp_path / "glam.toml")
    assert config.engine.db == tmp_path.resolve() / "state" / "glam.db"
    assert config.repository[0].location == str(tmp_path.resolve() / "repos" / "x")
    engine = engine_config_from(config)
    assert [(w.url, w.branch) for w in engine.watches] == [
        (str(tmp_path.resolve() / "repos" / "x"), "main"),
        (str(tmp_path.resolve() / "repos" / "x"), "dev"),
    ]


@pytest.mark.parametrize(
    "form",
    [
        "https://github.com/acme/lambdas",
        "https://github.com/acme/lambdas.git",
        "https://GitHub.com/acme/lambdas/",
        "https://ghp_tok@github.com/acme/lambdas.git",
        "https://x-access-token:ghp_tok@github.com:443/acme/lambdas",
    ],
)
def test_every_form_of_a_url_is_one_repository(form: str) -> None:
    assert repository_id(form) == "https://github.com/acme/lambdas"
    assert repo_stream(form, "main") == "repo:https://github.com/acme/lambdas#main"


def test_streams_named_by_an_earlier_glam_are_the_same_branch() -> None:
    assert repo_key("repo:https://****@github.com/acme/lambdas.git#main") == repo_stream(
        "https://github.com/acme/lambdas", "main"
    )
    assert repository_id("git@github.com:acme/lambdas.git") == "ssh://github.com/acme/lambdas"
    assert repository_id("./repo/") == "repo"


def test_token_references() -> None:
    secret = parse_token_ref("arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam/gh-Ab12")
    assert (secret.kind, secret.region) == ("secretsmanager", "eu-west-1")
    parameter = parse_token_ref("arn:aws:ssm:us-east-1:111111111111:parameter/glam/gh")
    assert (parameter.kind, parameter.region) == ("ssm", "us-east-1")
    assert parse_token_ref("GITHUB_TOKEN").describe() == "environment variable GITHUB_TOKEN"
    with pytest.raises(ValueError, match="neither"):
        parse_token_ref("ghp_not a name")
