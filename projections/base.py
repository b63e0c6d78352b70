"""What every view shares: the row base model and the time format."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict


class Row(BaseModel):
    """A view row: immutable, so ``apply`` returns a new one and a fold can be rerun safely.

    ``position`` is the log position of the last event that changed the row; ``updated_at``
    when that event was recorded."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    position: int
    updated_at: datetime
