"""The sink fixture of the notification tests, shared by both modules."""

from tests.notify.test_notify import sink

__all__ = ["sink"]
