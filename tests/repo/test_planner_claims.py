"""Files that mean what they say: symlinked definitions, names claimed twice, paths that are
not UTF-8, names AWS would refuse, and the keys Gitmoxi ignores — through Git and the
planner."""

from __future__ import annotations

import os

import pytest

from engine.events.repo import CommitPlanned, DefinitionRejected
from tests.repo.gitrepo import GitRepo, function_files
from tests.repo.test_planner import Log, plan_head

pytestmark = [pytest.mark.anyio, pytest.mark.integration]


def _actions(plan: object) -> dict[str, str]:
    return {a.prefix: a.action for a in plan.actions}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "kind", ["lambdadef", "lambdadepdef", "lambdainput", "lambdaeventsourcedef"]
)
async def test_a_symlinked_definition_file_is_invalid_not_deleted(repo: GitRepo, kind: str) -> None:
    """Replacing a deployed function's file by a symlink (to anything) rejects the function,
    naming the file; the function is not deleted."""
    function_files(repo, "fns/a/a", "fn-a", inputs={"x": 1})
    function_files(repo, "fns/b/b", "fn-b", inputs={"x": 1})
    base = repo.commit("v1")
    log = Log()
    log.apply(await plan_head(repo, log, None))
    target = repo.path / f"fns/b/b_{kind}.json"
    if target.exists():
        target.unlink()
    os.symlink(f"../a/a_{kind}.json", target)
    repo.commit("b's file is a symlink")
    plan = await plan_head(repo, log, base)
    (rejection,) = plan.rejected
    assert rejection.prefix == "fns/b/b"
    assert rejection.file == f"fns/b/b_{kind}.json"
    assert "is a symlink" in rejection.reason
    assert "delete" not in _actions(plan).values()
    assert not plan.function_events


async def test_a_symlink_to_outside_is_invalid_for_a_new_function(repo: GitRepo) -> None:
    """A new function whose definition is a symlink (to /etc/passwd) is rejected, not ignored."""
    function_files(repo, "fns/a/a", "fn-a")
    os.makedirs(repo.path / "fns/evil")
    os.symlink("/etc/passwd", repo.path / "fns/evil/evil_lambdadef.json")
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    assert [r.file for r in plan.rejected] == ["fns/evil/evil_lambdadef.json"]
    assert _actions(plan)["fns/a/a"] == "create"


async def test_an_owned_function_keeps_its_owner(repo: GitRepo) -> None:
    """A new prefix that claims a deployed function's name is rejected naming the owner; the
    owner's own change is planned as usual."""
    function_files(repo, "fns/a/a", "orders")
    base = repo.commit("v1")
    log = Log()
    log.apply(await plan_head(repo, log, None))
    function_files(repo, "fns/a/a", "orders", key="v2.zip")
    function_files(repo, "fns/copy/copy", "orders", key="evil.zip")
    repo.commit("a copied folder claims orders")
    plan = await plan_head(repo, log, base)
    (rejection,) = plan.rejected
    assert rejection.prefix == "fns/copy/copy"
    assert "belongs to fns/a/a" in rejection.reason
    assert _actions(plan)["fns/a/a"] == "new_version"
    (request,) = [e for _, e in plan.function_events]
    assert request.desired.definition["Code"]["S3Key"] == "v2.zip"  # type: ignore[union-attr]


async def test_an_unchanged_owner_keeps_its_function(repo: GitRepo) -> None:
    """The owner need not be rendered to keep its function: a new claim is still rejected."""
    function_files(repo, "fns/a/a", "orders")
    base = repo.commit("v1")
    log = Log()
    log.apply(await plan_head(repo, log, None))
    function_files(repo, "fns/z/z", "orders", key="evil.zip")
    repo.commit("new prefix, same name")
    plan = await plan_head(repo, log, base)
    assert [(r.prefix, "belongs to fns/a/a" in r.reason) for r in plan.rejected] == [
        ("fns/z/z", True)
    ]
    assert not plan.function_events


async def test_two_new_claims_are_both_rejected(repo: GitRepo) -> None:
    function_files(repo, "fns/a/a", "orders")
    function_files(repo, "fns/b/b", "orders", key="other.zip")
    function_files(repo, "fns/c/c", "fn-c")
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    reasons = {r.prefix: r.reason for r in plan.rejected}
    assert set(reasons) == {"fns/a/a", "fns/b/b"}
    assert "claimed by fns/b/b too" in reasons["fns/a/a"]
    assert "claimed by fns/a/a too" in reasons["fns/b/b"]
    assert _actions(plan)["fns/c/c"] == "create"
    events = [e for e in plan.repo_events if isinstance(e, DefinitionRejected)]
    assert len(events) == 2


async def test_a_moved_definition_keeps_its_function(repo: GitRepo) -> None:
    """Moving a definition to another folder in one commit is not a conflict: the new prefix
    takes the function over, nothing is deleted."""
    function_files(repo, "fns/a/a", "orders")
    base = repo.commit("v1")
    log = Log()
    log.apply(await plan_head(repo, log, None))
    repo.git("mv", "fns/a", "fns/moved")
    for kind in ("lambdadef", "lambdadepdef"):
        repo.git("mv", f"fns/moved/a_{kind}.json", f"fns/moved/moved_{kind}.json")
    repo.commit("moved")
    plan = await plan_head(repo, log, base)
    assert not plan.rejected
    assert "delete" not in _actions(plan).values()


async def test_paths_that_are_not_utf8_stay_apart(repo: GitRepo) -> None:
    """Two folders whose names are different invalid UTF-8 bytes are two functions (they
    used to decode to the same text, and one was silently dropped)."""
    for byte, name in ((b"\xff", "fn-ff"), (b"\xfe", "fn-fe")):
        folder = os.path.join(os.fsencode(repo.path), b"fns", byte)
        os.makedirs(folder)
        function_files(repo, f"fns/{os.fsdecode(byte)}/bad", name)
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    assert not plan.rejected
    creates = sorted(a.function.rsplit(":", 1)[1] for a in plan.actions if a.action == "create")
    assert creates == ["fn-fe", "fn-ff"]
    assert sorted(a.prefix for a in plan.actions) == ["fns/\\xfe/bad", "fns/\\xff/bad"]


@pytest.mark.parametrize(
    ("depdef", "definition", "words"),
    [
        pytest.param(
            {"environment": {"region": "xx-nowhere-9"}}, {}, "not an AWS region", id="region"
        ),
        pytest.param(
            {"environment": {"region": "us-east-1.evil.example.com/"}},
            {},
            "not an AWS region",
            id="region-host",
        ),
        pytest.param({"alias": "7"}, {}, "only digits", id="alias-digits"),
        pytest.param({"alias": "$LATEST"}, {}, "reserved", id="alias-latest"),
        pytest.param({}, {"FunctionName": "fn-a:live"}, "has a qualifier", id="qualified"),
        pytest.param({}, {"Role": "exec"}, "not the ARN of an IAM role", id="role-name"),
        pytest.param(
            {}, {"Role": "arn:aws:iam::1234:role/exec"}, "not the ARN of an IAM", id="role-account"
        ),
        pytest.param(
            {}, {"Role": "arn:aws:s3:::bucket"}, "not the ARN of an IAM role", id="role-other-arn"
        ),
        pytest.param(
            {"environment": {"region": "eu-west-1"}},
            {"FunctionName": "arn:aws:lambda:us-east-1:123456789012:function:fn-a"},
            "in region us-east-1 but",
            id="arn-other-region",
        ),
        pytest.param(
            {"environment": {"region": "eu-west-1", "account": "111111111111"}},
            {"FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:fn-a"},
            "in account 123456789012 but",
            id="arn-other-account",
        ),
    ],
)
async def test_names_aws_would_refuse_are_invalid_at_plan_time(
    repo: GitRepo, depdef: dict[str, object], definition: dict[str, object], words: str
) -> None:
    function_files(repo, "fns/a/a", "fn-a")
    function_files(repo, "fns/good/good", "good")
    current = {"alias": "live", "environment": {"region": "eu-west-1"}, **depdef}
    repo.write("fns/a/a_lambdadepdef.json", current)
    if definition:
        import json

        body = json.loads((repo.path / "fns/a/a_lambdadef.json").read_text())
        repo.write("fns/a/a_lambdadef.json", {**body, **definition})
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    (rejection,) = plan.rejected
    assert rejection.prefix == "fns/a/a"
    assert words in rejection.one_line()
    assert _actions(plan)["fns/good/good"] == "create"


async def test_gitmoxi_keys_are_warnings_in_the_recorded_plan(repo: GitRepo) -> None:
    """A depdef with Gitmoxi's ECS keys deploys; the plan records one warning per key."""
    function_files(repo, "fns/a/a", "fn-a")
    repo.write(
        "fns/a/a_lambdadepdef.json",
        {
            "alias": "live",
            "stabilityCheck": {"timeoutPerTask": 25, "timeout": 220},
            "gmDeploymentCircuitBreaker": {"rollback": True, "failureThresholdPercent": 50},
        },
    )
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    assert _actions(plan) == {"fns/a/a": "create"}
    (planned,) = [e for e in plan.repo_events if isinstance(e, CommitPlanned)]
    assert [(w.prefix, w.file, w.message.split(":")[0]) for w in planned.warnings] == [
        ("fns/a/a", "fns/a/a_lambdadepdef.json", "key 'gmDeploymentCircuitBreaker' ignored"),
        ("fns/a/a", "fns/a/a_lambdadepdef.json", "key 'stabilityCheck' ignored"),
    ]


QUEUE = "arn:aws:sqs:eu-west-1:123456789012:orders"


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        pytest.param({"BatchSize": "ten"}, "BatchSize must be an integer", id="batch-size-text"),
        pytest.param({"Bogus": 1}, "unknown key 'EventSourceMapping[0].Bogus'", id="unknown-key"),
        pytest.param(
            {"StartingPosition": "NOWISH"}, "StartingPosition 'NOWISH'", id="starting-position"
        ),
        pytest.param({"EventSourceArn": ["a"]}, "EventSourceArn must be a string", id="arn-list"),
        pytest.param({"EventSourceArn": {"a": 1}}, "EventSourceArn must be a string", id="arn-obj"),
        pytest.param({"EventSourceArn": "not-an-arn"}, "is not an ARN", id="not-an-arn"),
        pytest.param({"FunctionName": "fn-other"}, "names function 'fn-other'", id="other-fn"),
        pytest.param(
            {"FunctionName": "arn:aws:lambda:eu-west-1:123456789012:function:fn-other"},
            "names function 'fn-other'",
            id="other-fn-arn",
        ),
        pytest.param({"FunctionName": "fn-a:old"}, "qualified by 'old'", id="other-qualifier"),
    ],
)
async def test_event_source_mappings_aws_would_refuse_are_invalid_at_plan_time(
    repo: GitRepo, mapping: dict[str, object], words: str
) -> None:
    """A mapping is checked against CreateEventSourceMapping's model (types, keys, the ARN
    pattern, StartingPosition) and must invoke its own function: each was planned "create"
    and failed, or mapped another function's events, at deploy time. Only that function is
    invalid, naming its file; the others are planned."""
    function_files(repo, "fns/a/a", "fn-a")
    function_files(repo, "fns/good/good", "good")
    function_files(repo, "fns/other/other", "fn-other")
    repo.write(
        "fns/a/a_lambdaeventsourcedef.json",
        {"PullEventSources": {"EventSourceMapping": {"EventSourceArn": QUEUE, **mapping}}},
    )
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    (rejection,) = plan.rejected
    assert rejection.prefix == "fns/a/a"
    assert rejection.file == "fns/a/a_lambdaeventsourcedef.json"
    assert words in rejection.one_line()
    actions = _actions(plan)
    assert (actions["fns/good/good"], actions["fns/other/other"]) == ("create", "create")
    assert actions.get("fns/a/a", "nothing") == "nothing"


@pytest.mark.parametrize(
    "name",
    [
        "fn-a",
        "fn-a:live",
        "arn:aws:lambda:eu-west-1:123456789012:function:fn-a",
        "123456789012:function:fn-a",
    ],
)
async def test_a_mapping_of_its_own_function_is_planned_on_the_alias(
    repo: GitRepo, name: str
) -> None:
    """Every form of the function's own name is accepted, and mapped through the alias."""
    function_files(repo, "fns/a/a", "fn-a")
    mapping = {"EventSourceArn": QUEUE, "FunctionName": name, "StartingPosition": "LATEST"}
    repo.write(
        "fns/a/a_lambdaeventsourcedef.json", {"PullEventSources": {"EventSourceMapping": mapping}}
    )
    repo.commit()
    plan = await plan_head(repo, Log(), None)
    assert not plan.rejected
    assert _actions(plan) == {"fns/a/a": "create"}
    (desired,) = plan.desired.values()
    (planned,) = desired.event_sources.mappings
    assert planned["FunctionName"].endswith("fn-a:live")
