"""What ``glam plan`` reads of the engine's defaults off the log (``defaults_from_log``): the
region and the account of the functions whose definition named none, when they agree, and
whether any definition left its region unnamed (no re-keying under the region placeholder
otherwise). Pure: summaries in, defaults out."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.cli.plan_log import LogDefaults, defaults_from_log, region_placeholder_key
from engine.deployed import DeployedIndex, DeployedSummary
from engine.streams import function_stream

ACCOUNTS = ("111111111111", "222222222222")
REGIONS = ("eu-west-1", "us-east-1")

summaries = st.lists(
    st.tuples(
        st.sampled_from(ACCOUNTS),
        st.sampled_from(REGIONS),
        st.one_of(st.none(), st.tuples(st.booleans(), st.booleans())),
    ),
    max_size=12,
)


def _index(rows: list[tuple[str, str, tuple[bool, bool] | None]]) -> DeployedIndex:
    made = [
        DeployedSummary(stream=function_stream(account, region, f"f{n}"), named=named)
        for n, (account, region, named) in enumerate(rows)
    ]
    return DeployedIndex({s.stream: s for s in made}, {})


@given(summaries)
def test_the_defaults_are_those_of_the_unnamed_and_agree_or_are_none(
    rows: list[tuple[str, str, tuple[bool, bool] | None]],
) -> None:
    regions = {region for _, region, named in rows if named is not None and not named[0]}
    accounts = {account for account, _, named in rows if named is not None and not named[1]}
    expected = LogDefaults(
        next(iter(regions)) if len(regions) == 1 else None,
        next(iter(accounts)) if len(accounts) == 1 else None,
        unnamed_region=bool(regions),
    )
    assert defaults_from_log(_index(rows)) == expected


@given(summaries)
def test_without_an_unnamed_region_the_placeholder_moves_no_function(
    rows: list[tuple[str, str, tuple[bool, bool] | None]],
) -> None:
    """What lets ``glam plan`` skip the re-keying: it would leave every stream as it is."""
    index = _index(rows)
    moved = [
        stream
        for stream, summary in index.summaries.items()
        if region_placeholder_key(stream, summary.named) != stream
    ]
    assert bool(moved) == defaults_from_log(index).unnamed_region


def test_a_log_of_named_definitions_tells_no_defaults() -> None:
    rows = [(ACCOUNTS[0], REGIONS[0], (True, True)), (ACCOUNTS[1], REGIONS[1], None)]
    assert defaults_from_log(_index(rows)) == LogDefaults(None, None, unnamed_region=False)
