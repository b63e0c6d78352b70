"""Observation of a branch: mirrored fetch (local and smart HTTP), new commits, rewrites,
and an unavailable source that plans nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.errors import SourceError, SourceUnreachable
from engine.events.catalog import Event
from engine.events.repo import CommitObserved, HistoryRewritten, SourceUnavailable
from engine.git.source import GitSource
from engine.git.state import observe_branch
from engine.git.urls import parse_repo_url, redact_url
from engine.observe import (
    Fetched,
    RepoState,
    Unavailable,
    decide_observation,
    evolve_repo,
    initial_repo_state,
)
from engine.streams import function_stream, repo_stream
from tests.builders import events_of
from tests.repo.gitrepo import GitRepo, function_files
from tests.support.git_server import serve_repository

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


async def poll(source: GitSource, state: RepoState, url: str) -> tuple[RepoState, list[Event]]:
    observation = await observe_branch(source, state.last_sha)
    events = decide_observation(state, observation, url=url, branch="main")
    for event in events:
        state = evolve_repo(state, event)
    return state, events


async def test_first_run_then_new_commits_then_no_op(
    repo: GitRepo, tmp_path: Path, open_source: Callable[..., GitSource]
) -> None:
    function_files(repo, "fns/a/a", "fn-a")
    first = repo.commit("first\n\nbody")
    source = open_source(str(repo.path), "main", data_dir=tmp_path / "data")
    state, events = await poll(source, initial_repo_state(), str(repo.path))
    assert [e.type for e in events] == ["CommitObserved"]
    [observed] = events_of(events, CommitObserved)
    assert observed.sha == first
    assert observed.summary == "first"
    assert observed.author == "Test Author <author@example.com>"
    assert {c.path for c in observed.changes} == {
        "fns/a/a_lambdadef.json",
        "fns/a/a_lambdadepdef.json",
    }
    assert (tmp_path / "data" / "mirrors").is_dir()

    function_files(repo, "fns/b/b", "fn-b")
    second = repo.commit("second")
    repo.write("fns/a/a_lambdadef.json", "{}")
    third = repo.commit("third")
    state, events = await poll(source, state, str(repo.path))
    observed_two = events_of(events, CommitObserved)
    assert [e.sha for e in observed_two] == [second, third]
    assert [c.change for c in observed_two[1].changes] == ["modified"]

    state, events = await poll(source, state, str(repo.path))
    assert events == []
    assert state.last_sha == third


async def test_force_push_records_a_rewrite(
    repo: GitRepo, tmp_path: Path, open_source: Callable[..., GitSource]
) -> None:
    function_files(repo, "fns/a/a", "fn-a")
    repo.commit("one")
    function_files(repo, "fns/b/b", "fn-b")
    repo.commit("two")
    source = open_source(str(repo.path), "main", data_dir=tmp_path / "data")
    state, _ = await poll(source, initial_repo_state(), str(repo.path))
    old = state.last_sha
    repo.git("reset", "-q", "--hard", "HEAD~1")
    function_files(repo, "fns/c/c", "fn-c")
    new = repo.commit("rewritten")
    state, events = await poll(source, state, str(repo.path))
    assert [e.type for e in events] == ["HistoryRewritten", "CommitObserved"]
    [rewrite] = events_of(events, HistoryRewritten)
    assert (rewrite.previous, rewrite.head) == (old, new)
    # Measured against what was observed before: b gone, c added.
    [after] = events_of(events, CommitObserved)
    changes = {(c.path, c.change) for c in after.changes}
    assert ("fns/b/b_lambdadef.json", "deleted") in changes
    assert ("fns/c/c_lambdadef.json", "added") in changes


async def test_deleted_branch_is_unavailable_not_empty(
    repo: GitRepo, tmp_path: Path, open_source: Callable[..., GitSource]
) -> None:
    """A missing branch records SourceUnavailable once and observes no commit."""
    function_files(repo, "fns/a/a", "fn-a")
    repo.commit()
    source = open_source(str(repo.path), "main", data_dir=tmp_path / "data")
    state, _ = await poll(source, initial_repo_state(), str(repo.path))
    repo.git("checkout", "-q", "-b", "other")
    repo.git("branch", "-q", "-D", "main")
    state2, events = await poll(source, state, str(repo.path))
    assert [e.type for e in events] == ["SourceUnavailable"]
    [unavailable] = events_of(events, SourceUnavailable)
    assert "not found" in unavailable.reason
    assert state2.last_sha == state.last_sha
    _, again = await poll(source, state2, str(repo.path))
    assert again == []  # once per outage


async def test_a_missing_commit_is_an_unavailable_poll_not_a_crash(
    repo: GitRepo, open_source: Callable[..., GitSource]
) -> None:
    """A commit the history walk needs is not in the repository (seen once in the suite:
    dulwich's KeyError left the repository loop and stopped the engine): the poll is
    Unavailable, naming the commit, and once the object is back the next poll reads it."""
    function_files(repo, "fns/a/a", "fn-a")
    first = repo.commit("first")
    function_files(repo, "fns/b/b", "fn-b")
    repo.commit("second")
    loose = repo.path / ".git" / "objects" / first[:2] / first[2:]
    saved = loose.read_bytes()
    loose.unlink()
    source = open_source(str(repo.path), "main")  # read in place: no mirror to refetch into
    observation = await observe_branch(source, None)
    assert isinstance(observation, Unavailable)
    assert f"commit {first} is missing" in observation.reason
    loose.write_bytes(saved)
    fetched = await observe_branch(source, None)
    assert isinstance(fetched, Fetched)
    assert fetched.commits[0].sha == first


async def test_unreachable_remote_is_unavailable(
    tmp_path: Path, open_source: Callable[..., GitSource]
) -> None:
    url = "http://user:s3cr3t-token@127.0.0.1:9/repo.git"
    source = open_source(url, "main", data_dir=tmp_path, timeout=10)
    with pytest.raises(SourceUnreachable) as info:
        await source.sync()
    assert "s3cr3t" not in info.value.one_line()
    observation = await observe_branch(source, None)
    assert isinstance(observation, Unavailable)
    (event,) = decide_observation(RepoState(), observation, url=url, branch="main")
    assert "s3cr3t" not in event.model_dump_json()


def test_url_redaction_and_parsing() -> None:
    assert redact_url("https://x:tok@h.example/r.git") == "https://x:****@h.example/r.git"
    assert redact_url("https://ghp_abcdefghij@h.example/r.git") == "https://****@h.example/r.git"
    assert redact_url("/srv/repo") == "/srv/repo"
    parsed = parse_repo_url("https://ghp_tok@h.example:8443/r.git")
    assert (parsed.kind, parsed.url, parsed.password) == (
        "http",
        "https://h.example:8443/r.git",
        "ghp_tok",
    )
    assert parse_repo_url("git@github.com:org/repo.git").kind == "ssh"
    assert parse_repo_url("ssh://git@host/repo").kind == "ssh"
    assert parse_repo_url("file:///srv/repo").local_path == Path("/srv/repo")
    assert repo_stream("https://u:tok@h/r.git", "main") == "repo:https://h/r#main"
    assert function_stream("123456789012", "eu-west-1", "f") == "fn:123456789012:eu-west-1:f"


def test_token_env_must_be_set(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("GLAM_TEST_TOKEN", raising=False)
    with pytest.raises(SourceError, match="GLAM_TEST_TOKEN"):
        GitSource("https://h.example/r.git", data_dir=tmp_path, token_env="GLAM_TEST_TOKEN")


@pytest.fixture
def http_repo(repo: GitRepo) -> Iterator[tuple[GitRepo, str, list[str]]]:
    """``repo`` served over smart HTTP on 127.0.0.1, recording the Authorization headers."""
    function_files(repo, "fns/a/a", "fn-a")
    repo.commit("served")
    seen: list[str] = []
    with serve_repository(
        repo.path, on_request=lambda env: seen.append(str(env.get("HTTP_AUTHORIZATION", "")))
    ) as url:
        yield repo, url, seen


async def test_smart_http_fetch_with_token_from_env(
    http_repo: tuple[GitRepo, str, list[str]],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    open_source: Callable[..., GitSource],
) -> None:
    repo, url, seen = http_repo
    monkeypatch.setenv("GLAM_TEST_TOKEN", "tok-from-env")
    source = open_source(url, "main", data_dir=tmp_path / "data", token_env="GLAM_TEST_TOKEN")
    state, events = await poll(source, initial_repo_state(), url)
    assert [e.type for e in events] == ["CommitObserved"]
    assert any(h.startswith("Basic ") for h in seen)  # the token was sent to the server...
    assert "tok-from-env" not in repr(events)  # ...and never recorded
    # Incremental: one new commit fetches only what is new.
    function_files(repo, "fns/b/b", "fn-b")
    sha = repo.commit("more")
    state, events = await poll(source, state, url)
    assert [e.sha for e in events_of(events, CommitObserved)] == [sha]
    assert isinstance(await observe_branch(source, state.last_sha), Fetched)
    content = await source.read_file(sha, "fns/b/b_lambdadef.json")
    assert b'"fn-b"' in content
