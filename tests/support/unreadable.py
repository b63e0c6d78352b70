"""The rows a newer glam could write that this one must refuse (an unknown type, a newer
schema version): ``@unreadable_rows`` parametrizes a test with the column to change, the
value and the refusal's words."""

from __future__ import annotations

import pytest

unreadable_rows = pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        pytest.param("type", "FluxCapacitorCharged", "unknown event type", id="unknown-type"),
        pytest.param("schema_version", 7, "schema version 7", id="future-schema-version"),
    ],
)
