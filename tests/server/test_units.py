"""The server's pure parts: where it may listen, how a token is read and compared, how a
push names its repository, and the loop wake-up."""

from __future__ import annotations

import base64
from pathlib import Path

import anyio
import pytest

from engine.errors import ConfigError
from engine.registry import decide_add, repository_key
from engine.runtime.wake import Wakeup
from engine.server.auth import token_matches
from engine.server.settings import ServerSettings, is_loopback, parse_listen
from engine.server.webhooks import Deliveries
from engine.tokens import TokenRef


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("8080", ("127.0.0.1", 8080), id="port"),
        pytest.param(":8080", ("127.0.0.1", 8080), id="colon-port"),
        pytest.param("127.0.0.2:80", ("127.0.0.2", 80), id="host-port"),
        pytest.param("[::1]:9", ("::1", 9), id="ipv6"),
        pytest.param("0.0.0.0:0", ("0.0.0.0", 0), id="any-port"),
    ],
)
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    """``--listen`` takes PORT, :PORT, HOST:PORT and [IPv6]:PORT; the host is loopback."""
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "host:", "1.2.3.4:99999", "[::1]9"])
def test_bad_listen_addresses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_listen(text)


def test_a_non_loopback_bind_needs_permission_and_a_token() -> None:
    """0.0.0.0 or a host name is refused unless remote clients are allowed explicitly and a
    token is configured; loopback is always fine."""
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("glam.internal")
    ServerSettings(host="127.0.0.1").check()
    with pytest.raises(ConfigError, match="refusing to listen"):
        ServerSettings(host="0.0.0.0").check()
    with pytest.raises(ConfigError, match="needs an API token"):
        ServerSettings(host="0.0.0.0", allow_remote=True).check()
    ServerSettings(host="0.0.0.0", allow_remote=True, api_token=TokenRef("env", "T")).check()


def test_tokens_compare_whole_and_never_match_nothing() -> None:
    assert token_matches("abc", "abc")
    assert not token_matches("abc", "abcd")
    assert not token_matches("", "")
    assert not token_matches("abc", None)
    assert not token_matches(None, "abc")


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Acme/Lambdas.git",
        "https://github.com/acme/lambdas",
        "https://x-access-token:ghp_123@github.com/acme/lambdas.git",
        "git@github.com:acme/lambdas.git",
        "ssh://git@github.com/acme/lambdas.git",
        "git://github.com/acme/lambdas.git",
        "https://github.com/acme/lambdas/",
    ],
)
def test_a_push_names_its_repository_in_any_url_form(url: str) -> None:
    assert repository_key(url) == "github.com/acme/lambdas"


def test_other_repositories_are_other() -> None:
    assert repository_key("https://github.com/acme/lambdas-two") != repository_key(
        "https://github.com/acme/lambdas"
    )
    assert repository_key("/srv/git/lambdas") == repository_key("/srv/git/lambdas/")


def test_deliveries_are_remembered_up_to_a_bound() -> None:
    seen = Deliveries(size=2)
    assert seen.first_time("github", "a")
    assert not seen.first_time("github", "a")
    assert seen.first_time("gitlab", "a")  # per provider
    assert seen.first_time("github", "b")
    assert seen.first_time("github", "a")  # the oldest was forgotten


@pytest.mark.anyio
async def test_a_wake_up_cuts_a_nap_short_and_is_kept_while_busy() -> None:
    """A nap of an hour ends when woken; a wake-up while the loop is not napping makes the
    next nap return at once; an unwoken nap sleeps its whole time."""
    wake = Wakeup()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wake.nap, 3600)
            await anyio.sleep(0.01)
            wake.set()
        wake.set()
        assert await wake.nap(3600) is True
    assert await wake.nap(0.01) is False


def test_basic_auth_carries_the_token_as_its_password() -> None:
    from aiohttp.test_utils import make_mocked_request

    from engine.server.auth import presented_token

    def with_header(value: str) -> str | None:
        return presented_token(make_mocked_request("GET", "/", headers={"Authorization": value}))

    assert with_header("Bearer t0k") == "t0k"
    assert with_header("Basic " + base64.b64encode(b"glam:t0k").decode()) == "t0k"
    assert with_header("Basic " + base64.b64encode(b"t0k").decode()) is None
    assert with_header("Basic !!!") is None
    assert with_header("Token t0k") is None


def test_a_repository_added_through_the_api_is_checked_first() -> None:
    """Credentials in the URL, bad or repeated branches and a token reference that is neither
    an ARN nor a variable name are refused; a good request names only the reference."""
    url = "https://github.com/acme/lambdas.git"
    arn = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam/token"
    added = decide_add(url, ["main", "dev"], arn)
    assert (added.url, added.branches, added.token) == (url, ("main", "dev"), arn)
    assert decide_add(url, [], "GITHUB_TOKEN").token == "GITHUB_TOKEN"
    ssm = "arn:aws:ssm:eu-west-1:111111111111:parameter/glam/token"
    assert decide_add(url, ["main"], ssm).token == ssm
    for bad in (
        ("https://x:ghp_secret@github.com/acme/lambdas.git", ["main"], None),
        (url, ["main", "main"], None),
        (url, ["bad..name"], None),
        (url, ["main"], "ghp_notareference-with-dashes"),
        (url, ["main"], "arn:aws:s3:::bucket"),
        ("git@github.com:acme/lambdas.git", ["main"], "GITHUB_TOKEN"),
        ("  ", ["main"], None),
    ):
        with pytest.raises(ValueError):
            decide_add(*bad)


def test_the_configuration_file_names_a_server(tmp_path: Path) -> None:
    """``[server]`` in glam.toml: where to listen and the token and webhook secret by
    reference; settings without ``listen``, a token that is no reference and auth_reads
    without a token are each one located mistake."""
    from engine.cli.run_config import file_server
    from engine.config import load_config
    from engine.errors import ConfigFileError

    good = tmp_path / "glam.toml"
    arn = "arn:aws:secretsmanager:eu-west-1:111111111111:secret:glam/api"
    good.write_text(
        f'[server]\nlisten = "8080"\napi_token = "{arn}"\nwebhook_secret = "HOOK_SECRET"\n'
    )
    server = file_server(load_config(good))
    assert server is not None
    assert (server.host, server.port) == ("127.0.0.1", 8080)
    assert server.api_token == TokenRef("secretsmanager", arn, "eu-west-1")
    assert server.webhook_secret == TokenRef("env", "HOOK_SECRET")
    none = tmp_path / "none.toml"
    none.write_text("[engine]\npoll = 5\n")
    assert file_server(load_config(none)) is None
    for text, message in (
        ('[server]\napi_token = "T"\n', "need listen"),
        ('[server]\nlisten = "8080"\napi_token = "not a name"\n', "neither"),
        ('[server]\nlisten = "8080"\nauth_reads = true\n', "auth_reads needs api_token"),
        ('[server]\nlisten = "8080"\nport = 1\n', "'port' is not a setting of [server]"),
    ):
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(ConfigFileError) as refused:
            load_config(bad)
        [problem] = refused.value.problems
        assert message in problem, problem
    exposed = tmp_path / "exposed.toml"
    exposed.write_text('[server]\nlisten = "0.0.0.0:8080"\n')
    with pytest.raises(ConfigError, match="refusing to listen"):
        file_server(load_config(exposed))
