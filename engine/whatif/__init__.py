"""``glam whatif``: a past deployment replayed against another schedule or alarm threshold,
decided by the saga's own pure code on a replayed clock (engine.whatif.replay)."""

from engine.whatif.alarms import AlarmTimeline
from engine.whatif.replay import Schedule, WhatIf, what_if

__all__ = ["AlarmTimeline", "Schedule", "WhatIf", "what_if"]
