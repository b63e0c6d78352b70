"""Notifications: deployments announced to webhooks and Slack-compatible incoming webhooks.

    messages.py   which events are worth a notification, and the two payloads (glam's JSON;
                  Slack text + blocks), pure
    delivery.py   the Notifier: a bounded queue drained by one owned task, bounded retries
                  with jittered backoff (5xx and timeouts retried, 4xx not), outcomes counted
    http.py       the HTTP adapter (aiohttp) behind the ``Poster`` port

The Notifier is fed by the engine's ``on_event`` hook and never waits: a full queue drops the
notification (and counts it) rather than slowing a saga. URLs are references (an environment
variable, or a Secrets Manager / SSM ARN), resolved when a delivery needs them and never
logged. ``COUNTERS`` holds every delivery's outcome for a metrics endpoint to read.
"""

from __future__ import annotations

from engine.notify.delivery import (
    COUNTERS,
    DeliveryCounters,
    Notifier,
    Poster,
    RetryPolicy,
    Route,
    routes_from,
)
from engine.notify.messages import Notification, notification_for, slack_payload, webhook_payload

__all__ = [
    "COUNTERS",
    "DeliveryCounters",
    "Notification",
    "Notifier",
    "Poster",
    "RetryPolicy",
    "Route",
    "notification_for",
    "routes_from",
    "slack_payload",
    "webhook_payload",
]
