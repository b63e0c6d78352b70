"""The prefixes the plans of the golden log 0.2-listing recorded, as the next plan reads them:
a complete listing, a change from it, and a refused prefix that makes the next plan list the
whole tree; the logs of 0.1, which record no listing, know none."""

from __future__ import annotations

from engine.observe import RepoState, evolve_repo
from engine.store.records import to_recorded
from tests.golden.generate import C1, C2, REPO, rows


def _states(name: str) -> list[RepoState]:
    state, out = RepoState(), []
    for row in rows(name):
        record = to_recorded(row)
        if record.stream == REPO:
            state = evolve_repo(state, record.event)
            out.append(state)
    return out


def test_the_listings_of_the_golden_log_fold_into_the_prefixes() -> None:
    first, second, refused = _states("0.2-listing")
    assert first.known is not None
    assert (first.known.sha, first.known.prefixes) == (
        C1,
        frozenset({"apps/billing/billing", "apps/orders/orders"}),
    )
    assert second.known is not None
    assert (second.known.sha, second.known.prefixes) == (
        C2,
        frozenset({"apps/orders/orders", "apps/payments/payments"}),
    )
    assert refused.known is None  # a refused file is looked at again in the whole tree


def test_a_log_of_a_glam_that_recorded_no_listing_knows_no_prefixes() -> None:
    states = _states("0.1")
    assert states
    assert all(s.known is None for s in states)
    assert states[-1].last_planned is not None
