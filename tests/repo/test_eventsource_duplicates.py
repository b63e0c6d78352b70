"""Event source definitions: one mapping per source, rejected with the file and the reason."""

from __future__ import annotations

import pytest

from engine.definitions.eventsources import parse_event_sources
from engine.errors import DefinitionError

QUEUE = "arn:aws:sqs:us-east-1:123456789012:q"
FILE = "apps/orders/orders_lambdaeventsourcedef.json"


def test_two_mappings_of_one_source_are_rejected() -> None:
    """Two mappings of the same queue name the file, the index and the source."""
    raw = {
        "PullEventSources": {
            "EventSourceMapping": [
                {"EventSourceArn": QUEUE, "BatchSize": 10},
                {"EventSourceArn": QUEUE, "BatchSize": 5},
            ]
        }
    }
    with pytest.raises(DefinitionError) as caught:
        parse_event_sources(raw, "orders", "live", FILE)
    assert caught.value.file == FILE
    assert "EventSourceMapping[1]" in str(caught.value)
    assert QUEUE in str(caught.value)


def test_a_mapping_without_a_source_is_rejected() -> None:
    """A mapping with neither EventSourceArn nor SelfManagedEventSource is rejected."""
    raw = {"PullEventSources": {"EventSourceMapping": [{"BatchSize": 10}]}}
    with pytest.raises(DefinitionError, match="needs EventSourceArn"):
        parse_event_sources(raw, "orders", "live", FILE)


def test_distinct_sources_pass() -> None:
    raw = {
        "PullEventSources": {
            "EventSourceMapping": [
                {"EventSourceArn": QUEUE},
                {"EventSourceArn": QUEUE + "-2"},
            ]
        }
    }
    assert len(parse_event_sources(raw, "orders", "live", FILE).mappings) == 2
